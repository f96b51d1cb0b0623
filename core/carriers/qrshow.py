"""The share QR shown on the custodian's terminal, part by part, for copying onto a grid
card (split out of :mod:`core.carriers.qr`, which keeps ``show_qr`` as its entry point).

A reveal follows the word reveal's rules (issue 14, :func:`core.custodian_tty.hold_until_confirmed`):
a key pages forward, B back; on the last part only Enter, then Enter again, erases the
screen (any other key does nothing), and an idle code is hidden after a set time.
"""

from __future__ import annotations

import os
import select
import termios
import time

from core.carriers.qr import (
    QR_CONFIRM_PROMPT,
    QR_DONE_PROMPT,
    make_matrix,
    render_transcription,
    text_length,
    transcription_layout,
)
from core.custodian_tty import CLEAR, REVEAL_IDLE_S, confirm_keys, terminal_size, tty_write
from core.secmem import SecretBuffer

__all__ = ["show_qr"]


def _write_page(fd: int, page: SecretBuffer) -> None:
    """Write a rendered page line by line (CR LF for raw ttys) from locked memory."""
    n = text_length(page)
    with page.view() as mv:
        pos = 0
        while pos < n:
            end = pos
            while end < n and mv[end] != 0x0A:
                end += 1
            tty_write(fd, mv[pos:end])
            if end < n:
                tty_write(fd, b"\r\n")
            pos = end + 1


class _PageKeys:
    """Key presses on the custodian's terminal while a QR is shown: non-canonical, no echo,
    no signals; each read is one key press (an arrow's escape sequence counts once). A key
    press here only moves the display on: it is never secret."""

    def __init__(self, fd: int, idle: float) -> None:
        self.fd = fd
        self.idle = idle
        self.old = termios.tcgetattr(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
        new[6][termios.VMIN] = 1
        new[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, new)

    def next(self) -> bytes | str:
        """The bytes of the next key press, or ``"idle"`` (none for :attr:`idle` seconds)
        or ``"hangup"``."""
        deadline = time.monotonic() + self.idle
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "idle"
            if not select.select([self.fd], [], [], left)[0]:
                continue
            try:
                keys = os.read(self.fd, 64)
            except BlockingIOError:
                continue
            except OSError:
                return "hangup"
            return keys if keys else "hangup"

    def close(self) -> None:
        try:
            termios.tcflush(self.fd, termios.TCIFLUSH)  # nothing typed here reaches the UI
            termios.tcsetattr(self.fd, termios.TCSANOW, self.old)
        except termios.error:
            pass


def show_qr(
    fd: int,
    indices: SecretBuffer | memoryview,
    *,
    title: str,
    wait: bool = True,
    idle: float = REVEAL_IDLE_S,
) -> str:
    """Show a share's QR on a terminal ``fd`` for copying onto a grid card, then clear.

    The code is shown module for module (:func:`render_transcription`), in as many parts as
    the terminal needs (two at 80x24); a key shows the next part, B the previous one. The
    last part follows the word reveal's rule (:func:`core.custodian_tty.hold_until_confirmed`):
    only Enter, then Enter again to confirm, erases the screen and the scrollback; B still
    goes back; any other key does nothing (a stray key never destroys the reveal). With no
    key for ``idle`` seconds the code is hidden (it can be shown again). Each page is built
    in locked memory and written from a memoryview (:func:`~core.custodian_tty.tty_write`: a
    terminal that stops accepting output fails the hand-over instead of blocking the
    keyholder).

    Args:
        fd: a terminal opened read-write (any fd in tests; then every part is written in
            turn and no key is awaited).
        indices: the share's word indices (locked).
        title: public heading (set, group, member, custodian).
        wait: wait for key presses (on a tty) before moving on and erasing.
        idle: seconds without a key before the code is hidden.

    Returns:
        ``"custodian"`` (ended by Enter + Enter, or not waited for), ``"idle"`` (hidden
        after ``idle`` seconds without a key) or ``"hangup"`` (the terminal went away).

    Raises:
        ValueError: the terminal is too small (nothing of the share was shown).
        TimeoutError: the terminal stopped accepting output (the screen is erased; the
            hand-over is not counted).
    """
    cols, lines = terminal_size(fd)
    keys: _PageKeys | None = None
    try:
        with make_matrix(indices) as mat:
            layout = transcription_layout(mat.size, cols, lines)
            if wait and os.isatty(fd):
                keys = _PageKeys(fd, idle)
            part = 0
            while 0 <= part < len(layout.parts):
                page = render_transcription(mat, part, layout, title=title)
                try:
                    tty_write(fd, CLEAR)
                    _write_page(fd, page)
                finally:
                    page.close()
                if keys is None:
                    part += 1
                    continue
                last = part == len(layout.parts) - 1
                armed = False
                while True:
                    got = keys.next()
                    if isinstance(got, str):
                        return got
                    if got[0] in (0x62, 0x42) and part > 0:
                        part -= 1
                        break
                    if not last:
                        part += 1
                        break
                    done, armed = confirm_keys(got, armed)
                    if done:
                        return "custodian"
                    back = b"   B: back to part " + str(part).encode() if part > 0 else b""
                    tty_write(fd, b"\r\x1b[2K" + (QR_CONFIRM_PROMPT if armed else QR_DONE_PROMPT + back))
        return "custodian"
    finally:
        try:
            tty_write(fd, CLEAR)
        finally:
            if keys is not None:
                keys.close()
