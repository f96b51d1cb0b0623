"""What a screen or a panel may ask of the application: the :class:`AppContext` Protocol.

Screens and panels type against this Protocol instead of importing
:class:`kcm_tui.app.CeremonyApp` (the app imports the screens; the screens never import
the app: no cycle). :func:`context_of` returns the running app as an :class:`AppContext`,
checked at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from textual.app import App

    from core.ceremony.state import CollectionProgress, DistributionProgress, ExportVerdict
    from kcm_tui.backend import Backend, Session
    from kcm_tui.views import ActLine, StepView

__all__ = ["AppContext", "CeremonySession", "context_of"]


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

@runtime_checkable
class CeremonySession(Protocol):
    """One open ceremony as the screens see it: :class:`kcm_tui.backend.Session` over the
    engine, or a test's fake session (``tests/support/fake_session.py``). Every method is
    one engine call and returns public data, or raises a :mod:`kcm_tui.errors` error."""

    @property
    def practice(self) -> bool:
        """A practice ceremony (PRACTICE on every screen)."""
        ...

    @property
    def ceremony_id(self) -> str:
        """The ceremony id."""
        ...

    @property
    def folder(self) -> Path:
        """The ceremony's folder on the medium."""
        ...

    @property
    def journal_path(self) -> Path:
        """The journal's database file."""
        ...

    @property
    def state(self) -> str:
        """``running``, ``completed`` or ``aborted``."""
        ...

    def progress(self) -> tuple[int, int]:
        """(steps done or skipped, total steps)."""
        ...

    def current(self) -> StepView | None:
        """The step to show now (None once the ceremony is over)."""
        ...

    def total_steps(self) -> int:
        """Steps in the script."""
        ...

    def act_outline(self) -> list[ActLine]:
        """The script's acts: done, current or to do, with the script's estimates."""
        ...

    def role_name(self, role_id: str) -> str:
        """A role's name (the id when unknown)."""
        ...

    def card_serial_of(self, role_id: str) -> str | None:
        """The card serial the script names for a custodian (None if none)."""
        ...

    def role_kind(self, role_id: str) -> str:
        """A role's kind (``custodian``...; "" when unknown)."""
        ...

    def attendance_roles(self, step: StepView) -> list[str]:
        """Role ids an attendance step lists (``custodians`` expanded; the engine's list)."""
        ...

    def split_custodians(self) -> list[str]:
        """Custodians of the new share set, in policy order."""
        ...

    def group_of(self) -> dict[str, str]:
        """Custodian id -> group name (SLIP-39 groups), empty without groups."""
        ...

    def administrator(self) -> str:
        """The role id of the ceremony administrator (who records exceptions)."""
        ...

    def keyholder_warnings(self) -> list[str]:
        """The keyholder's warnings (memory not locked...)."""
        ...

    @property
    def SUPPORTED_CARRIERS(self) -> tuple[str, ...]:
        """The carriers this build can drive."""
        ...

    @property
    def SUPPORTED_DISPLAYS(self) -> tuple[str, ...]:
        """The share displays this build can drive."""
        ...

    def manifest_choices(self) -> list[tuple[str, str, str]]:
        """Active share-set manifests this ceremony may collect: (file, set id, ceremony id)."""
        ...

    def perform(self, **inputs: Any) -> dict[str, Any]:
        """Run the current step's action."""
        ...

    def acknowledge(self, role: str) -> None:
        """A required role acknowledges the current step."""
        ...

    def withdraw_ack(self, role: str) -> None:
        """A role takes back its acknowledgement of the current step (box unticked)."""
        ...

    def confirm(self, witness: str, matches: bool, *, out_of_band: str | None = None) -> None:
        """The witness compares the fingerprint (``matches`` False fails the step);
        ``out_of_band`` is the witness's typed copy, if they typed one."""
        ...

    def complete(self) -> None:
        """Complete the current step."""
        ...

    def retry(self) -> None:
        """Re-open a failed step."""
        ...

    def record_exception(self, text: str, who: str = "") -> None:
        """Write an exception in the journal."""
        ...

    def abort(self, reason: str, who: str = "") -> None:
        """Abort the ceremony (the keyholder wipes)."""
        ...

    def show_share(self, custodian: str, display: str = "screen", *, override_reason: str | None = None) -> dict[str, Any]:
        """Show a share on the custodian terminal (``screen`` words or a ``qr`` code)."""
        ...

    def share_carriers(self) -> dict[str, str]:
        """Custodian -> carrier the script declares for their share (``screen`` default)."""
        ...

    def export_medium(self) -> dict[str, Any]:
        """Where export steps write: ``label``, ``demo`` (the demo folder, nothing to remove),..."""
        ...

    def export_media_choices(self) -> list[Any] | None:
        """Media the export step may write to (see :func:`export_media_choices`): the demo..."""
        ...

    def set_export_medium(self, medium: Any | None) -> None:
        """Export steps write to ``medium`` from now on (a real removable medium is unmounted..."""
        ...

    def set_export_progress(self, cb: Callable[[int, int, str], None] | None) -> None:
        """Progress callback for the next export write (called in the worker thread)."""
        ...

    def export_status(self) -> dict[str, Any] | None:
        """The medium state after the last export write: ``safe_to_remove`` (verified and..."""
        ...

    def write_card(
        self, custodian: str, serial: str | None, pin: memoryview | None = None, *, pin_from_terminal: bool = False
    ) -> dict[str, Any]:
        """Genesis: write ``custodian``'s share to their card (``pin_from_terminal``: the keyholder asks for the PIN)..."""
        ...

    def list_cards(self) -> list[dict[str, Any]]:
        """The cards in the readers (label, serial, manufacturer, PIN state flags)."""
        ...

    def rescan_cards(self) -> list[dict[str, Any]]:
        """The keyholder re-initialises its PKCS#11 module, then lists the cards."""
        ...

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Collect or check a share by ``carrier``."""
        ...

    def add_card(
        self, serial: str | None, pin: memoryview | None = None, *, pin_from_terminal: bool = False
    ) -> dict[str, Any]:
        """Collect or check the share on a card (``pin_from_terminal``: the keyholder asks for the PIN)."""
        ...

    def add_qr_file(self, path: str) -> dict[str, Any]:
        """Collect or check the share in a QR image file (decoded by the keyholder)."""
        ...

    def add_camera(self, device: str = "/dev/video0", timeout_s: int = 30) -> dict[str, Any]:
        """Collect or check the share shown to a camera (decoded by the keyholder)."""
        ...

    def share_words(self) -> int:
        """Words in a share of the current set (33 for a 256-bit MasterKey)."""
        ...

    def group_label(self, number: Any) -> str:
        """``group eu`` (the script's name for a share's group number), ``group 1``."""
        ...

    def entry_terminal(
        self,
        purpose: str = "collect",
        *,
        scanner: bool = False,
        idle_warn: float = 120.0,
        idle_wipe: float = 180.0,
    ) -> dict[str, Any]:
        """Share entry on the keyholder's own terminal (the app is suspended meanwhile)..."""
        ...

    def keyholder_gone_message(self) -> str:
        """What the room must know when the keyholder died during an entry."""
        ...

    def distribution(self) -> DistributionProgress | None:
        """The engine's read-only view of the distribute-shares step (None elsewhere)."""
        ...

    def share_written(self, custodian: str) -> None:
        """The custodian has written their share down (or copied the QR); journaled."""
        ...

    def check_typed_share(self, custodian: str) -> str:
        """The engine checks the share typed back against the one handed out (journaled);..."""
        ...

    def skip_share_check(self, custodian: str, reason: str) -> None:
        """Skip the typed-back check, with the reason (journaled, and an exception)."""
        ...

    def collection(self) -> CollectionProgress | None:
        """The engine's read-only view of the collect-/check-shares step (None elsewhere)."""
        ...

    def export_verdict(self) -> ExportVerdict | None:
        """The engine's verdict on the export medium after the last write (None before)."""
        ...

    def entry_cancel(self) -> None:
        """Wipe the partial entry in the keyholder. Never raises (used on timeouts)."""
        ...

    @property
    def final_hash(self) -> str:
        """The closed journal's final hash."""
        ...

    @property
    def final_words(self) -> tuple[str, ...]:
        """The final hash as words."""
        ...

    def exports(self) -> list[str]:
        """Every file written for this ceremony."""
        ...

    def verify_journal(self) -> tuple[bool, str]:
        """Re-read the closed journal: its chain, and its signature against this ceremony's..."""
        ...

    def emergency_wipe(self, reason: str) -> list[str]:
        """After an unexpected error: wipe and journal the abort; what was done."""
        ...

    def close(self) -> None:
        """Stop the keyholder (it wipes)."""
        ...


def context_of(app: App[object]) -> AppContext:
    """``app`` as an :class:`AppContext` (it must be the ceremony application)."""
    if not isinstance(app, AppContext):
        raise TypeError(f"{type(app).__name__} is not the ceremony application")
    return app


if TYPE_CHECKING:

    def _session_conforms(session: Session) -> CeremonySession:
        """mypy: the real session satisfies the Protocol the screens type against."""
        return session
