"""The real UI, for the trusted-path memory scans (issue 14): run under a pty by the test.

The ceremony app (``CeremonyApp`` with Textual's real Linux driver on the pty, which is
this process's controlling terminal) opens on the collection screen. Its session is a
test session except for share entry, which is the product's own code path:
:meth:`kcm_tui.backend.Session.entry_terminal` over a real keyholder process, which takes
``/dev/tty`` (the pty) while the app is suspended.

This process is never told the share: a share word may only reach its memory through the
terminal. ``--plant FILE`` (the positive control) reads a text from FILE and keeps it, as
a leaky UI would.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from core.keyholder.client import KeyholderClient
from kcm_tui.backend import Session, ShareDisplay
from kcm_tui.screens.collection import CollectionScreen
from tests.tui.snapshot_app import FakeBackend, FakeSession, SnapApp, step

PLANTED: list[str] = []


class RealEntrySession(FakeSession):
    """Collection bookkeeping is the test double's; share entry is the real client call."""

    def __init__(self, view: Any, client: KeyholderClient, display: ShareDisplay) -> None:
        super().__init__(view, practice=True)
        self.client = client
        self._lock = threading.RLock()
        self.backend_display = display

    @property
    def backend(self) -> Any:  # what Session.entry_terminal reads
        class _B:
            share_display = self.backend_display

        return _B()

    @backend.setter
    def backend(self, value: Any) -> None:
        pass

    def share_words(self) -> int:
        return 33

    def keyholder_gone_message(self) -> str:
        return Session.keyholder_gone_message(self)  # type: ignore[arg-type]

    def entry_terminal(self, purpose: str = "collect", **kw: Any) -> dict[str, Any]:
        return Session.entry_terminal(self, purpose, **kw)  # type: ignore[arg-type]


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--plant"]:
        with open(args[1], encoding="ascii") as fh:
            PLANTED.append(fh.read().strip())
    # the display terminal is fixed at spawn: the controlling pty (demo mode allows a pty)
    client = KeyholderClient.start(allow_unlocked=True, stderr=sys.stderr, terminal="/dev/tty", demo=True)
    view = step("collect-shares", 4, params={"carriers": ["typed", "qr"]}, results={"set_id": "1"})
    session = RealEntrySession(view, client, ShareDisplay("/dev/tty"))
    app = SnapApp(FakeBackend(session=session), CollectionScreen)
    try:
        app.run()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
