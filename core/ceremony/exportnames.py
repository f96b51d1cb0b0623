"""Export folder names that never collide with an earlier ceremony's (issue 18).

A script names its export folder (``folder = "unseal-export"``). The medium may already
hold a folder of that name: the same script run before in this workspace (a second
rehearsal), or another ceremony's export on the same stick. Nothing on a medium is ever
overwritten (:mod:`core.media`), so the export then goes to ``<folder>-<ceremony id>``: the
ceremony id is unique (this ceremony's own folder under ``ceremonies/`` was created
exclusively), and it tells an auditor at a glance which ceremony wrote the folder.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["MAX_NAME", "unique_folder_names"]

#: Longest folder name tried (file systems allow 255 bytes; leave room for ``-journal``).
MAX_NAME = 200


def unique_folder_names(folder: str, ceremony_id: str) -> Iterator[str]:
    """The names to try, in order: ``folder`` itself, then ``folder-<ceremony id>``, then
    ``folder-<ceremony id>-2`` ... ``-9`` (a retry of this very ceremony after a failed
    write left its folder behind).

    >>> list(unique_folder_names("unseal-export", "unseal-and-seal-20260101T000000Z-ab12"))[:3]
    ['unseal-export', 'unseal-export-unseal-and-seal-20260101T000000Z-ab12', \
'unseal-export-unseal-and-seal-20260101T000000Z-ab12-2']
    """
    yield folder
    if not ceremony_id or ceremony_id in folder:
        return
    unique = f"{folder}-{ceremony_id}"[:MAX_NAME]
    yield unique
    for n in range(2, 10):
        yield f"{unique}-{n}"
