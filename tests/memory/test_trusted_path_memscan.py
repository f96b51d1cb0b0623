"""Trusted path (issue 14): no byte of a share passes through the UI process.

The real UI (Textual's Linux driver on a pty that is its controlling terminal; the real
keyholder behind it, see tests/memory/ui_entry_app.py) is driven through share entry, and
the UI process's memory is then searched for every 3-word window of the share, spaced and
joined, in Latin-1, UTF-16 and UTF-32, and as the window's 4-digit QR runs:

(a) typing in 5-character bursts, (b) a plain paste of the whole share, (c) a bracketed
paste, (d) a 132-digit wedge-scanner burst, (e) a checksum error whose suggestion is asked
for. Target: 0 copies each time. A positive control (the same UI told to keep a window)
proves the scan finds a copy.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.shamir.wordlist import WORDS
from tests.memory import memscan

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]

# SLIP-39 test vector 20 (256 bits, no sharing): a valid 33-word share
SHARE = (
    "theory painting academic academic armed sweater year military elder discuss acne wildlife "
    "boring employer fused large satoshi bundle carbon diagnose anatomy hamster leaves tracks "
    "paces beyond phantom capital marvel lips brave detect luck"
).split()
INDEX = {w: i for i, w in enumerate(WORDS)}


ENCODINGS = ("latin-1", "utf-16-le", "utf-32-le")


def windows() -> dict[str, str]:
    """Every 3-word window of the share: spaced, joined, and as 4-digit QR runs."""
    out: dict[str, str] = {}
    for i in range(len(SHARE) - 2):
        win = SHARE[i : i + 3]
        out[f"w{i + 1}-spaced"] = " ".join(win)
        out[f"w{i + 1}-joined"] = "".join(win)
        out[f"w{i + 1}-qr"] = "".join(f"{INDEX[w]:04d}" for w in win)
    return out


def scan_ui(pid: int) -> list[str]:
    """Names (window-form-encoding) of the windows found in the writable memory of ``pid``
    (where a process keeps what it reads or builds).

    One regular expression of every window (Latin-1) runs over the memory as is, over its
    two byte lanes (UTF-16) and its four byte lanes (UTF-32); each candidate is confirmed
    by the exact encoded window in the original memory."""
    wins = windows()
    by_text = {t.encode("latin-1"): n for n, t in wins.items()}
    rx = re.compile(b"|".join(re.escape(t) for t in sorted(by_text, key=len, reverse=True)))
    found: set[str] = set()
    maps = [m for m in memscan.read_mappings(pid) if "w" in m.perms[:2] or not m.path]
    unreadable: list[str] = []
    for _mp, _addr, data in memscan.iter_memory(pid, maps, unreadable):
        for enc, step in zip(ENCODINGS, (1, 2, 4), strict=True):
            for lane in range(step):
                view = data if step == 1 else data[lane::step]
                for m in rx.finditer(view):
                    name = by_text[m.group()]
                    exact = wins[name].encode(enc).rstrip(b"\0")
                    if exact in data:
                        found.add(f"{name}-{enc}")
    return sorted(found)


class UI:
    """The UI process on a pty of 80x24, and a reader of what it draws."""

    def __init__(self, *args: str) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            os.chdir(ROOT)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "PYTHON"))}
            env["TERM"] = "xterm-256color"
            env["PYTHONPATH"] = str(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "tests.memory.ui_entry_app", *args], env)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.out = bytearray()
        self._stop = False
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        while not self._stop:
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.out.extend(chunk)

    def wait(self, pattern: bytes, since: int = 0, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while pattern not in self.out[since:]:
            if time.monotonic() > end:
                raise AssertionError(f"{pattern!r} not drawn: {bytes(self.out[-1500:])!r}")
            time.sleep(0.02)

    def type(self, data: bytes, expect: bytes | None = None) -> None:
        since = len(self.out)
        os.write(self.fd, data)
        if expect is not None:
            self.wait(expect, since)

    def entry(self, key: bytes = b"t") -> None:
        """Choose the carrier on the UI; wait for the keyholder's entry screen."""
        since = len(self.out)
        os.write(self.fd, key)
        self.wait(b"keys 0\r", since)

    def back_in_ui(self) -> None:
        """The keyholder handed the terminal back and the app redrew (alternate screen)."""
        since = len(self.out)
        self.wait(b"\x1b[?1049h", since - 200000 if since > 200000 else 0)
        time.sleep(1.0)  # let the app finish handling the result

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self._stop = True
        self._t.join(5)
        os.close(self.fd)


@pytest.fixture
def ui() -> UI:  # type: ignore[misc]
    u = UI()
    u.wait(b"Typed")  # the collection screen's carrier choice
    time.sleep(0.5)
    yield u
    u.close()


def typed_in_bursts(ui: UI) -> None:
    keys = 0
    for w in SHARE:
        chunk = (w[:5] if len(w) >= 5 else w + " ").encode()
        keys += len(chunk)
        ui.type(chunk, b"keys %d\r" % keys)
    ui.type(b"\r")


def plain_paste(ui: UI) -> None:
    ui.type(" ".join(SHARE).encode() + b"\r", b"a paste was refused")
    ui.type(b"\x1b")
    time.sleep(0.1)
    ui.type(b"\x1b")


def bracketed_paste(ui: UI) -> None:
    ui.type(b"\x1b[200~" + " ".join(SHARE).encode() + b"\x1b[201~", b"A paste was refused")
    ui.type(b"\x1b")
    time.sleep(0.1)
    ui.type(b"\x1b")


def scanner_burst(ui: UI) -> None:
    digits = "".join(f"{INDEX[w]:04d}" for w in SHARE).encode()
    assert len(digits) == 132
    ui.type(digits + b"\r")


def typo_hint_asked(ui: UI) -> None:
    wrong = list(SHARE)
    wrong[9] = "exceed"
    keys = 0
    for w in wrong:
        keys += 4
        ui.type(w[:4].encode(), b"keys %d\r" % keys)
    ui.type(b"\r", b"Word 10 is probably wrong")
    ui.type(b"?", b"Suggestion for word 10: discuss")
    ui.type(b"disc", b"replaced")
    ui.type(b"\r")


CASES: dict[str, tuple[bytes, Callable[[UI], None]]] = {
    "a-5-char-bursts": (b"t", typed_in_bursts),
    "b-plain-paste": (b"t", plain_paste),
    "c-bracketed-paste": (b"t", bracketed_paste),
    "d-scanner-burst": (b"s", scanner_burst),
    "e-typo-hint-asked": (b"t", typo_hint_asked),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_share_window_in_the_ui_process(ui: UI, case: str) -> None:
    if not memscan.is_root():
        pytest.skip("memory scans need root (CAP_SYS_PTRACE)")
    key, drive = CASES[case]
    ui.entry(key)
    drive(ui)
    ui.back_in_ui()
    found = scan_ui(ui.pid)
    assert found == [], f"{case}: share windows in the UI process: {found[:10]}"


def test_positive_control_finds_a_planted_window(tmp_path: Path) -> None:
    if not memscan.is_root():
        pytest.skip("memory scans need root (CAP_SYS_PTRACE)")
    plant = tmp_path / "plant.txt"
    plant.write_text(" ".join(SHARE[9:12]))
    u = UI("--plant", str(plant))
    try:
        u.wait(b"Typed")
        time.sleep(0.5)
        found = scan_ui(u.pid)
    finally:
        u.close()
    assert "w10-spaced-latin-1" in found


def test_control_a_paste_read_by_the_ui_itself_leaves_copies(ui: UI) -> None:
    """What the trusted path prevents: the same paste sent while the UI owns the terminal
    (the carrier choice, no entry open) is read by Textual's driver and leaves copies."""
    if not memscan.is_root():
        pytest.skip("memory scans need root (CAP_SYS_PTRACE)")
    ui.type(b"\x1b[200~" + " ".join(SHARE).encode() + b"\x1b[201~")
    time.sleep(1.5)
    assert scan_ui(ui.pid) != []
