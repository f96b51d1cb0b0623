"""The keyholder's display terminal: fixed when the keyholder is spawned, never by a request.

Whoever starts the keyholder opens the custodian terminal and hands it over as an open
descriptor (``--terminal-fd N``): the keyholder launcher as root from its root-owned policy
(``/dev/tty1`` on the ceremony ISO, :mod:`core.keyholder.launcher`), or
:meth:`core.keyholder.client.KeyholderClient.start` (the UI's own controlling terminal, when
the UI starts its keyholder directly). :func:`fix` records it once, before the first request
is read; after that nothing changes it, and a request cannot name another terminal: a UI
that opened ``/dev/ptmx`` and asked for the matching ``/dev/pts/N`` would read every share.

Outside demo mode a pseudo-terminal (Unix98 pty majors 136-143) is refused, with the reason:
whatever sits on its other side (a terminal multiplexer, an ssh session, a terminal
emulator's scrollback) can keep copies of what is shown. In demo mode it is allowed, and
every display carries :attr:`DisplayTerminal.notice`.

Interface for code inside the keyholder that shows or reads a secret on the terminal
(share reveals, QR reveals, trusted-path share entry)::

    from core.keyholder import terminal
    term = terminal.display_terminal("shares")   # raises TerminalRefused with the reason
    fd = os.dup(term.fd)                           # the caller's own copy; close it after
    ... term.notice ...                            # "" or the DEMO line to draw first

Standard library only; no UI imports.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Final

from core.keyholder.errors import Refused

__all__ = [
    "PTY_MAJORS",
    "DisplayTerminal",
    "TerminalRefused",
    "current",
    "display_terminal",
    "fix",
    "is_pty",
]

#: Unix98 pseudo-terminal slave majors (``/dev/pts/N``): 136-143.
PTY_MAJORS: Final = range(136, 144)


class TerminalRefused(Refused):
    """No display terminal, the wrong one, or a pseudo-terminal outside demo mode."""


@dataclass(frozen=True)
class DisplayTerminal:
    """The terminal fixed at spawn.

    Attributes:
        fd: the open descriptor (non-blocking, close-on-exec); owned by this module: dup it.
        path: its name (``/dev/tty1``, ``/dev/pts/3``), for messages.
        pty: it is a pseudo-terminal.
        demo: the keyholder runs in demo mode (a pty is then allowed, with a notice).
    """

    fd: int
    path: str
    pty: bool
    demo: bool

    @property
    def notice(self) -> str:
        """A line to show with every secret on a pseudo-terminal in demo mode, else ``""``."""
        if self.pty and self.demo:
            return f"DEMO: pseudo-terminal {self.path}, refused in a real ceremony"
        return ""

    def public(self) -> dict[str, object]:
        """What the keyholder tells the UI about it (HELLO): public facts only."""
        return {"path": self.path, "pty": self.pty, "usable": not self.pty or self.demo}


_fixed: DisplayTerminal | None = None


def is_pty(fd: int) -> bool:
    """Whether ``fd`` is a Unix98 pseudo-terminal (major 136-143)."""
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PTY_MAJORS


def fix(fd: int, *, demo: bool) -> DisplayTerminal:
    """Make ``fd`` this process's display terminal for good (called once, at start).

    A pseudo-terminal is accepted here even outside demo mode, so that the keyholder starts
    and the refusal reaches the people in the room with its reason at the first display
    (:func:`display_terminal`) and in the HELLO answer.

    Raises:
        ValueError: ``fd`` is not a terminal, or a terminal was fixed already.
    """
    global _fixed
    if _fixed is not None:
        raise ValueError("the display terminal is fixed already")
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or not os.isatty(fd):
        raise ValueError("not a terminal")
    os.set_inheritable(fd, False)
    os.set_blocking(fd, False)
    try:
        path = os.ttyname(fd)
    except OSError:
        path = f"terminal {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    _fixed = DisplayTerminal(fd=fd, path=path, pty=is_pty(fd), demo=demo)
    return _fixed


def current() -> DisplayTerminal | None:
    """The fixed terminal, or ``None`` (no terminal was given at spawn)."""
    return _fixed


def _same_device(path: str, fd: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.fstat(fd).st_rdev


def display_terminal(what: str = "secrets", requested: str = "") -> DisplayTerminal:
    """The terminal to show ``what`` on (the one fixed at spawn), or a refusal with reason.

    Args:
        what: the thing to be shown, for the messages ("shares", "share QRs").
        requested: a terminal named in a request (old clients sent one). Only ``""``,
            ``/dev/tty`` ("the terminal") or the fixed device itself are accepted: a request
            cannot move a secret to another terminal.

    Raises:
        TerminalRefused: none was fixed at spawn, a request named another terminal, or the
            fixed one is a pseudo-terminal outside demo mode.
    """
    term = _fixed
    if term is None:
        raise TerminalRefused(
            f"{what} cannot be shown: this keyholder was started without a display terminal "
            "(the terminal is given when the keyholder is started, never in a request)"
        )
    if requested and requested != "/dev/tty" and not _same_device(requested, term.fd):
        raise TerminalRefused(
            f"{what} are shown only on this keyholder's terminal ({term.path}), fixed when it "
            f"was started; a request cannot name another terminal ({requested} is refused)"
        )
    if term.pty and not term.demo:
        raise TerminalRefused(
            f"{what} cannot be shown on {term.path}: it is a pseudo-terminal, and a terminal "
            "multiplexer, an ssh session or a terminal emulator on its other side can keep "
            "copies of what is shown; run the ceremony on a console (e.g. /dev/tty1) or a "
            "serial line"
        )
    return term
