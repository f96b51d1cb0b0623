"""The :class:`~core.ceremony.ports.Exporter` port over :func:`core.media.write_export`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.ceremony.ports import ExportedFile

__all__ = ["FolderExporter"]


class FolderExporter:
    """The :class:`Exporter` port over :func:`core.media.write_export` on a folder medium.

    The demo writes to ``workspace/exports``; the TUI passes a removable medium instead.

    Attributes:
        progress: optional ``progress(bytes_done, bytes_total, current_file)`` called during
            the write (the TUI sets it before the export step; it may run in a worker thread).
        unmount: unmount a real removable medium after the sync (``write_export(unmount=)``).
        last: the :class:`core.media.ExportResult` of the last successful write (``None``
            before one, and reset to ``None`` when a write starts): ``safe_to_remove`` and
            ``unmounted`` tell the screen when the medium may be taken out.
        writer: injectable ``os.write`` for fault tests (slow or failing media).
        scratch: a folder medium at ``root`` is a throwaway demo folder (nothing to take
            out after a write); False when it is the ceremony's own medium.
        label: how the screens name the folder medium (default: the medium's label).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        medium: Any = None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        unmount: bool = False,
        writer: Callable[[int, Any], int] | None = None,
        scratch: bool = True,
        label: str = "",
    ) -> None:
        self.root = Path(root)
        self.medium = medium
        self.progress = progress
        self.unmount = unmount
        self.writer = writer
        self.scratch = scratch
        self._label = label
        self.last: Any = None

    @property
    def label(self) -> str:
        """How the screens name the medium written to ("" : the medium's own label)."""
        return "" if self.medium is not None else self._label

    def use(self, medium: Any = None) -> None:
        """Write to ``medium`` from now on (``None``: back to the folder at ``root``).

        A real removable medium (not the demo folder) is unmounted after the verify and
        sync, so the screen can say it is safe to remove; a folder never is.
        """
        self.medium = medium
        self.unmount = bool(medium is not None and medium.removable and not medium.demo)

    def target(self) -> Any:
        """The medium written to (a :class:`core.media.Medium`)."""
        from core import media

        return self.medium or media.folder_medium(self.root)

    def write(
        self, folder: str, files: Mapping[str, bytes], *, ceremony_id: str
    ) -> list[ExportedFile]:
        """Write atomically, verify, sync, never overwrite (see core.media)."""
        from core import media

        self.last = None
        extra: dict[str, Any] = {}
        if self.writer is not None:
            extra["writer"] = self.writer
        target = self.target()
        # A medium the media helper made writable (core.removable.PreparedMedium) is
        # released by the helper: unmounted *and* read-only again; others are unmounted here.
        release = getattr(target, "release", None)
        res = media.write_export(
            target,
            files,
            ceremony_id=ceremony_id,
            directory=folder,
            progress=self.progress,
            unmount=self.unmount and not callable(release),
            **extra,
        )
        if self.unmount and callable(release):
            try:
                release()
                res = dataclasses.replace(res, unmounted=True)
            except media.MediaError as exc:
                res = dataclasses.replace(res, notes=[*res.notes, exc.message])
        self.last = res
        return [
            ExportedFile(name=n, path=str(res.directory / n), sha256=h, size=len(files[n]))
            for n, h in sorted(res.files.items())
            if n in files
        ]
