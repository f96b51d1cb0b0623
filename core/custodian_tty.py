"""The custodian's terminal: where the keyholder itself shows a share (words or QR).

Shared by :mod:`core.shamir.display` and :mod:`core.carriers.qr`: open only a terminal
device (never a file), wait for one key press without echo, then erase the screen *and*
the scrollback so that the next person at the keyboard cannot scroll back to the share.
"""

from __future__ import annotations

import os
import select
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = [
    "CLEAR",
    "KEY_TIMEOUT_S",
    "REVEAL_IDLE_S",
    "WRITE_TIMEOUT_S",
    "confirm_keys",
    "custodian_tty",
    "hold_until_confirmed",
    "read_key",
    "tty_write",
    "wait_for_key_then_clear",
]

#: Erase the screen (2J), the scrollback (3J) and home the cursor.
CLEAR: Final = b"\x1b[2J\x1b[3J\x1b[H"
#: How long a share stays on the custodian terminal without a key press: then it is erased
#: anyway and the hand-over fails (show it again).
KEY_TIMEOUT_S: Final = 600.0
#: How long a revealed share stays on screen without a key before it is hidden (it can be
#: shown again until its type-back check passes).
REVEAL_IDLE_S: Final = 180.0
#: The prompt under a revealed share, and the confirmation after Enter.
HOLD_PROMPT: Final = b"Write the words down in order. Press Enter when done (other keys do nothing)."
CONFIRM_PROMPT: Final = (
    b"Press Enter again to erase the screen; any other key keeps the share shown."
)
#: How long a terminal may refuse output (a serial line under flow control, a hung-up
#: line) before the hand-over fails instead of blocking the keyholder.
WRITE_TIMEOUT_S: Final = 30.0


def terminal_size(fd: int) -> tuple[int, int]:
    """Columns and lines of the terminal ``fd``; 80x24 (the smallest supported) when it is
    not a terminal (a pipe in tests) or reports no size."""
    try:
        ts = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    if ts.columns <= 0 or ts.lines <= 0:
        return 80, 24
    return ts.columns, ts.lines


def tty_write(fd: int, data: bytes | memoryview, *, timeout: float = WRITE_TIMEOUT_S) -> None:
    """Write everything to a (non-blocking) terminal, waiting at most ``timeout`` seconds
    for it to accept more.

    Raises:
        TimeoutError: the terminal stopped accepting output.
    """
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while len(view):
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            n = 0
        view = view[n:]
        if len(view):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the terminal accepted no output for {timeout:.0f} s")
            select.select([], [fd], [], left)


def read_key(fd: int, *, timeout: float = KEY_TIMEOUT_S) -> int:
    """Wait for one key press (raw, no echo) on a tty ``fd``; its first byte.

    A key press here only moves the display on: it is never secret. Returns -1 when ``fd``
    is not a tty (tests write to a pipe) or the terminal hung up.

    Raises:
        TimeoutError: no key came within ``timeout`` seconds.
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
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no key was pressed within {timeout:.0f} s")
            ready, _w, _x = select.select([fd], [], [], left)
            if ready:
                try:
                    key = os.read(fd, 1)
                except BlockingIOError:
                    continue
                return key[0] if key else -1
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)


def wait_for_key_then_clear(fd: int, *, wait: bool = True, timeout: float = KEY_TIMEOUT_S) -> None:
    """Wait for one key press (raw, no echo; only when ``fd`` is a tty), then erase.

    The screen is erased in every case; when no key came within ``timeout`` seconds (or
    the terminal hung up) :class:`TimeoutError` is raised after erasing: the custodian may
    not have seen the share, so its hand-over is not counted.
    """
    pressed = True
    try:
        if wait and os.isatty(fd):
            try:
                pressed = read_key(fd, timeout=timeout) != -1
            except TimeoutError:
                pressed = False
    finally:
        tty_write(fd, CLEAR)
    if not pressed:
        raise TimeoutError(
            f"no key was pressed on the custodian terminal within {timeout:.0f} s; the share "
            "was erased from the screen: show it again"
        )


def confirm_keys(keys: bytes, armed: bool) -> tuple[bool, bool]:
    """Feed key presses to the Enter-then-Enter rule of every reveal: Enter arms, a second
    Enter ends, any other key disarms. Returns (done, armed)."""
    for key in keys:
        enter = key in (0x0D, 0x0A)
        if armed and enter:
            return True, armed
        armed = enter and not armed
    return False, armed


def hold_until_confirmed(fd: int, *, idle: float = REVEAL_IDLE_S) -> str:
    """Keep a revealed share on screen until the custodian ends it deliberately: Enter,
    then Enter again to confirm (any other key in between keeps it shown; a stray key
    before does nothing). Erases the screen in every case.

    Returns:
        ``"custodian"`` (ended by Enter + Enter) or ``"idle"`` (no key for ``idle``
        seconds: hidden; it can be shown again), ``"hangup"`` (the terminal went away).
    """
    how = "hangup"
    if not os.isatty(fd):
        tty_write(fd, CLEAR)
        return "custodian"  # tests writing to a pipe: nobody to wait for
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, new)
    armed = False
    try:
        deadline = time.monotonic() + idle
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                how = "idle"
                break
            ready, _w, _x = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                keys = os.read(fd, 64)  # key presses here only move the display on
            except BlockingIOError:
                continue
            except OSError:
                break
            if not keys:
                break
            deadline = time.monotonic() + idle
            done, armed = confirm_keys(keys, armed)
            if done:
                how = "custodian"
                break
            tty_write(fd, b"\r\x1b[2K" + (CONFIRM_PROMPT if armed else HOLD_PROMPT))
    finally:
        try:
            tty_write(fd, CLEAR)
        finally:
            termios.tcflush(fd, termios.TCIFLUSH)
            termios.tcsetattr(fd, termios.TCSANOW, old)
    return how


@contextmanager
def custodian_tty(path: str, what: str) -> Iterator[int]:
    """Open the custodian's terminal ``path`` (e.g. /dev/tty2) read-write.

    Opened with ``O_NONBLOCK`` (a serial line whose modem has no carrier would otherwise
    block the open forever) and kept non-blocking: writes go through :func:`tty_write` and
    the key press is awaited with a timeout.

    Raises:
        ValueError: ``path`` is not under /dev or is not a terminal (``what`` names the
            thing that was to be shown, for the message).
    """
    if not path.startswith("/dev/"):
        raise ValueError(f"{what} are shown only on a terminal device (/dev/...), never a file")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not os.isatty(fd):
            raise ValueError(f"{path} is not a terminal")
        yield fd
    finally:
        os.close(fd)
