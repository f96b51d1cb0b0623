"""Trusted path (issue 14): the card PIN never enters the UI process.

The real UI (Textual's Linux driver on a pty that is its controlling terminal,
tests/memory/ui_card_app.py) on the distribution screen writes Custodian 1's share to a
real SoftHSM2 token: Enter suspends the UI, the real keyholder asks for the PIN on the
same pty, the test types it key by key, the keyholder makes the card key and writes the
share, the UI resumes and shows the written card. The UI process's memory is then searched
for the PIN in UTF-8, UTF-16 and UTF-32. Target: 0 copies.

The PIN is 16 characters so that a match cannot be chance (memscan drops patterns under 12
bytes). The control: the same UI, the same PIN pasted while the UI owns the terminal (what
a PIN typed into a UI widget amounts to), and the same scan finds copies.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.memory import memscan
from tests.support.softhsm import HAVE_SOFTHSM, SO_PIN

pytestmark = [pytest.mark.root, pytest.mark.skipif(not HAVE_SOFTHSM, reason="SoftHSM2 is not installed")]

ROOT = Path(__file__).resolve().parents[2]
PIN = "Kq7vR2mX9pL4tZ8w"


class UI:
    """The UI process on an 80x24 pty, and a reader of what it (and its keyholder) draw."""

    def __init__(self, conf: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            os.chdir(ROOT)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "PYTHON"))}
            env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT), SOFTHSM2_CONF=str(conf))
            os.execve(sys.executable, [sys.executable, "-m", "tests.memory.ui_card_app"], env)
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

    def wait(self, pattern: bytes, since: int = 0, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while pattern not in self.out[since:]:
            if time.monotonic() > end:
                raise AssertionError(f"{pattern!r} not drawn: {bytes(self.out[-1500:])!r}")
            time.sleep(0.02)

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
def ui(tmp_path: Path) -> Iterator[UI]:
    if not memscan.is_root():
        pytest.skip("memory scans need root (CAP_SYS_PTRACE)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "c1", "--so-pin", SO_PIN, "--pin", PIN],
                   check=True, capture_output=True, env=dict(os.environ, SOFTHSM2_CONF=str(conf)))
    u = UI(conf)
    u.wait(b"type it on the keyholder")  # the card panel's PIN line
    time.sleep(0.5)
    yield u
    u.close()


def test_no_copy_of_the_pin_in_the_ui_after_a_card_write(ui: UI) -> None:
    since = len(ui.out)
    os.write(ui.fd, b"\r")  # Enter on the PIN line: the keyholder takes the keyboard
    ui.wait(b"Type the PIN, Enter", since)
    for ch in PIN.encode():
        time.sleep(0.08)
        os.write(ui.fd, bytes([ch]))
    ui.wait(b"PIN: \x1b[1;33m" + b"*" * len(PIN), since)
    os.write(ui.fd, b"\r")
    ui.wait(b"share written to card", since, timeout=180)
    time.sleep(1.0)  # let the app finish handling the result
    assert PIN.encode() not in ui.out  # nothing drew it
    result = memscan.scan(ui.pid, {"pin": PIN})
    assert result.hits == [], result.summary()


def test_control_a_pin_read_by_the_ui_itself_leaves_copies(ui: UI) -> None:
    """What the keyholder's PIN pad prevents: the same PIN arriving while the UI owns the
    terminal (a bracketed paste, dropped by the PIN line) is decoded by Textual's driver and
    leaves copies that the same scan finds."""
    os.write(ui.fd, b"\x1b[200~" + PIN.encode() + b"\x1b[201~")
    ui.wait(b"Nothing is typed or pasted here")
    time.sleep(1.0)
    result = memscan.scan(ui.pid, {"pin": PIN})
    assert result.hits, result.summary()
