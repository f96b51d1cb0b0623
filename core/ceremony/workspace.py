"""The ceremony workspace (the ceremony medium) reached without following links.

The workspace is a USB stick prepared before the ceremony: ``recipients/`` (public keys),
``manifests/`` (share-set manifests), ``card-shares/`` and ``ceremonies/<id>/``. Whoever
prepared it may have planted symbolic links where the ceremony writes (for instance all
32,768 ``manifests/set-N.json.tmp`` names, one per possible set id, pointing at a system
file) or where it reads. Every access here goes through :mod:`core.safeio`: the workspace
folder is opened with ``O_NOFOLLOW``, each folder below it component by component, new
files under random temporary names with ``O_EXCL|O_NOFOLLOW``; a link on the way is refused
and named.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from core import safeio

__all__ = ["MAX_PUBLIC_FILE", "Workspace"]

#: Manifests, sealed card-share files, exported journals read back: public files of a few
#: kilobytes; anything larger than this is refused before it is read.
MAX_PUBLIC_FILE: Final = 4 << 20


class Workspace:
    """File access below one workspace folder.

    Args:
        root: the workspace folder (the ceremony medium's folder).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _open(self, *, create: bool = False) -> safeio.Dir:
        return safeio.Dir.open_root(self.root, create=create)

    def folder(self, rel: str, *, create: bool = False, exclusive: bool = False) -> Path:
        """Make sure ``rel`` is a real folder below the workspace (no link on the way);
        create it when asked. Returns its path.

        ``exclusive``: the last folder must not exist yet (a ceremony's own folder): then
        nothing inside it can have been planted before the ceremony.

        Raises:
            SafeIOError: a link (named) or a mount point on the way.
            FileExistsError: ``exclusive`` and the folder exists.
        """
        with self._open(create=create) as root, root.sub(rel, create=create, exclusive=exclusive):
            pass
        return self.root / rel

    def read(self, rel: str, *, limit: int = MAX_PUBLIC_FILE) -> bytes:
        """A plain file ``a/b/name`` below the workspace (size checked before reading).

        Raises:
            SafeIOError: a link (named), a device or FIFO, too large.
            OSError: missing, unreadable.
        """
        with self._open() as root:
            return root.read_path(rel, limit=limit)

    def list_files(self, rel: str, suffix: str) -> list[str]:
        """Names of the entries of folder ``rel`` that end in ``suffix`` (sorted); an empty
        list when the folder does not exist."""
        try:
            with self._open() as root, root.sub(rel) as d:
                return [n for n in d.names() if n.endswith(suffix)]
        except FileNotFoundError:
            return []

    def write_new(self, rel: str, name: str, data: bytes) -> safeio.Written:
        """Write a new file ``rel/name`` (folders created); an identical file already there
        is accepted (a retried step), any other entry of that name is refused.

        Raises:
            FileExistsError: a different file (or a link) of that name exists.
            SafeIOError: a link on the way, or the bytes landed on another device.
        """
        with self._open() as root, root.sub(rel, create=True) as d:
            try:
                return d.write_new(name, data)
            except FileExistsError:
                try:
                    same = d.read(name, limit=len(data)) == data
                except (safeio.SafeIOError, OSError):
                    same = False
                if not same:
                    raise FileExistsError(
                        f"{rel}/{name} exists already with other content (or is not a plain "
                        "file); not overwriting"
                    ) from None
                return safeio.Written(name, len(data), "", d.dev)

    def replace(self, rel: str, name: str, data: bytes) -> safeio.Written:
        """Write ``rel/name`` atomically, replacing the plain file of that name.

        Raises:
            SafeIOError: a link (named) on the way or at ``name``.
        """
        with self._open() as root, root.sub(rel, create=True) as d:
            return d.replace(name, data)
