"""The keyholder dies in the middle of share entry (issue 14, item 7, second point).

The real UI on a pty (tests/memory/ui_entry_app.py: Textual's Linux driver, the real
keyholder behind it). The custodian has typed some words on the keyholder's screen; the
keyholder is killed (SIGKILL: no chance to clean up). The entry stops at once: the UI takes
the terminal back and says that every secret is gone, which shares must be entered again
and what to do; keys typed afterwards start nothing.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.memory.test_trusted_path_memscan import SHARE, UI


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _screen_text(raw: bytes) -> str:
    """The drawn text without escape sequences (enough to find a line of the UI)."""
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", b"", raw).decode("utf-8", "replace")


def test_keyholder_killed_mid_entry_stops_the_entry_and_says_what_to_do() -> None:
    ui = UI()
    try:
        ui.wait(b"Typed")
        time.sleep(0.5)
        ui.entry(b"t")
        keys = 0
        for w in SHARE[:5]:
            keys += 4
            ui.type(w[:4].encode(), b"keys %d\r" % keys)
        (keyholder,) = _children(ui.pid)
        since = len(ui.out)
        os.kill(keyholder, signal.SIGKILL)
        ui.wait(b"ENTRY STOPPED", since, timeout=30)
        time.sleep(1.0)
        text = _screen_text(bytes(ui.out[since:]))
        flat = " ".join(text.split())
        assert "Every secret it held is gone" in flat
        assert "Shares to enter again" in flat
        assert "What to do" in flat
        # entry stopped: typing goes nowhere (no keyholder draws, the UI starts nothing)
        mark = len(ui.out)
        os.write(ui.fd, SHARE[5][:4].encode() + b"\r")
        time.sleep(1.5)
        assert b"keys " not in ui.out[mark:]
        assert all(_state(c) in ("Z", "gone") for c in _children(ui.pid))  # no keyholder runs
    finally:
        ui.close()
