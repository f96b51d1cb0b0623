"""The custodian's terminal: where the keyholder itself shows a share (words or QR).

Shared by :mod:`core.shamir.display` and :mod:`core.carriers.qr`: open only a terminal
device (never a file), wait for one key press without echo, then erase the screen *and*
the scrollback so that the next person at the keyboard cannot scroll back to the share.
"""

from __future__ import annotations

import os
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["CLEAR", "custodian_tty", "read_key", "wait_for_key_then_clear"]

#: Erase the screen (2J), the scrollback (3J) and home the cursor.
CLEAR: Final = b"\x1b[2J\x1b[3J\x1b[H"


def read_key(fd: int) -> int:
    """Wait for one key press (raw, no echo) on a tty ``fd``; its first byte, -1 if none.

    A key press here only moves the display on: it is never secret.
    """
    if not os.isatty(fd):
        return -1
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~(termios.ICANON | termios.ECHO)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, new)
    try:
        key = os.read(fd, 1)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)
    return key[0] if key else -1


def wait_for_key_then_clear(fd: int, *, wait: bool = True) -> None:
    """Wait for one key press (raw, no echo; only when ``fd`` is a tty), then erase."""
    try:
        if wait:
            read_key(fd)
    finally:
        os.write(fd, CLEAR)


@contextmanager
def custodian_tty(path: str, what: str) -> Iterator[int]:
    """Open the custodian's terminal ``path`` (e.g. /dev/tty2) read-write.

    Raises:
        ValueError: ``path`` is not under /dev or is not a terminal (``what`` names the
            thing that was to be shown, for the message).
    """
    if not path.startswith("/dev/"):
        raise ValueError(f"{what} are shown only on a terminal device (/dev/...), never a file")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        if not os.isatty(fd):
            raise ValueError(f"{path} is not a terminal")
        yield fd
    finally:
        os.close(fd)
