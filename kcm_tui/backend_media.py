"""Where an export may go: the removable media the backend offers, and why one cannot be
chosen. Split out of :mod:`kcm_tui.backend` (which re-exports these names)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["default_media_helper", "export_media_choices", "read_only_reason"]


def export_media_choices(root: str | Path = "/", demo_folder: Path | None = None) -> list[Any]:
    """Where an export may go (``core.media.Medium`` objects): the demo workspace's folder
    first (demo mode only), then every mounted removable medium under ``root``
    (``core.media.list_removable``; the live system's own disks are never listed).
    Read-only media are listed too: the screen shows them with the reason, not selectable.
    (Without a media helper; a :class:`Backend` lists through its ``media_chooser``, which on
    the ceremony image adds the unmounted removable devices, ``core.removable``.)"""
    from core import removable

    return list(removable.ExportMediaChooser(None, root).choices(demo_folder))


def _media_chooser(backend: Any) -> Any:
    """The backend's export-media chooser (one per backend: it remembers the medium made
    writable), or a stateless one without a helper."""
    chooser = getattr(backend, "media_chooser", None)
    if chooser is None:
        from core import removable

        chooser = removable.ExportMediaChooser(None, getattr(backend, "media_root", "/"))
    return chooser


def default_media_helper(demo: bool) -> Any:
    """The media helper of the ceremony image (``kcm-media``), if this machine has it; never
    in demo mode (the demo writes to a folder)."""
    if demo:
        return None
    from core import removable

    service = removable.MediaHelper.via_service()  # the ISO: the UI is not root
    if service.available():
        return service
    helper = removable.MediaHelper()
    return helper if helper.available() and os.geteuid() == 0 else None


def read_only_reason(medium: Any) -> str:
    """Why a medium cannot be chosen ('' when it can)."""
    if medium.read_only:
        return "write-protected or mounted read-only; slide the lock switch off, re-insert it, press F5"
    return ""


class LazyMediaChooser:
    """The backend's export-medium chooser, made on first use: ``core.removable`` is about
    10 ms of the first screen's start-up, and the first screen lists no medium."""

    _media_helper: Any
    _media_chooser: Any
    demo: bool
    media_root: Path

    @property
    def media_chooser(self) -> Any:
        """The export-medium chooser (``core.removable.ExportMediaChooser``), made on first use."""
        if self._media_chooser is None:
            from core import removable

            helper = self._media_helper if self._media_helper is not None else default_media_helper(self.demo)
            self._media_chooser = removable.ExportMediaChooser(helper, self.media_root)
        return self._media_chooser

    @media_chooser.setter
    def media_chooser(self, chooser: Any) -> None:
        self._media_chooser = chooser
