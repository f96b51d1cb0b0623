"""What a screen or a panel may ask of the application: the :class:`AppContext` Protocol.

Screens and panels type against this Protocol instead of importing
:class:`kcm_tui.app.CeremonyApp` (the app imports the screens; the screens never import
the app: no cycle). :func:`context_of` returns the running app as an :class:`AppContext`,
checked at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from textual.app import App

    from kcm_tui.backend import Backend

__all__ = ["AppContext", "context_of"]


@runtime_checkable
class AppContext(Protocol):
    """The ceremony application as its screens see it."""

    #: Workstation services, and the open ceremony (``backend.session``).
    backend: Backend
    #: A script name to choose on the start screen ("" for none).
    preselect_script: str
    #: Power the machine off at the end (the live image) instead of exiting.
    poweroff: bool
    #: Seconds of inactivity in a secret entry before a warning, and before the wipe.
    idle_warn: float
    idle_wipe: float

    def after_first_paint(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` once the first screen has been painted (quick first screen)."""
        ...

    def action_refuse_copy(self) -> None:
        """Refuse Ctrl+C (nothing is copied to a clipboard in a ceremony)."""
        ...

    def wipe_and_exit(self) -> None:
        """Close the ceremony (the keyholder wipes) and exit or power off."""
        ...


def context_of(app: App[object]) -> AppContext:
    """``app`` as an :class:`AppContext` (it must be the ceremony application)."""
    if not isinstance(app, AppContext):
        raise TypeError(f"{type(app).__name__} is not the ceremony application")
    return app
