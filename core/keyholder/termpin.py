"""Card PIN entry on the keyholder's own terminal: the PIN pad of the trusted path.

A card PIN is a secret crossing the terminal, so the keyholder owns the terminal for it
too (issue 14; docs/threat-model.md, "Trusted path"). A card request with
``pin_from_terminal`` carries no PIN: the UI suspends its terminal driver and reads
nothing; the keyholder opens the display terminal fixed at its spawn
(:mod:`core.keyholder.terminal`), puts it in raw mode, reads the PIN into a locked buffer
(``state.alloc``), draws one ``*`` per character and nothing else, then uses the PIN for
the card operation it was asked for and wipes it. The reply carries public facts only:
the card's result, or the carrier error (wrong PIN with the tries the card reports,
locked, ``card-pin-cancelled``).

Keys: printable ASCII characters (at most :data:`MAX_PIN`), Backspace, Ctrl+U clears,
Enter uses the PIN, Esc cancels (nothing is sent to the card). A bracketed paste, or a
burst of more than :data:`MAX_BURST` characters arriving faster than typing (a paste, a
wedge scanner), is refused: its bytes are read into locked memory and wiped unread, and
the PIN typed so far is wiped too (what was pasted into a PIN field is not trusted).

Nothing here builds a ``str``, ``bytes`` or ``int`` from the PIN: bytes are moved one by
one from the locked burst buffer into the locked PIN buffer (a byte value is one of
CPython's cached small ints). The PIN becomes a ``str`` only inside python-pkcs11's login
(the accepted residue of :mod:`core.carriers.pkcs11`).
"""

from __future__ import annotations

import os
import termios
import time
import tty as _tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from core.carriers.errors import CardPinCancelled
from core.custodian_tty import CLEAR, tty_write
from core.keyholder import terminal as _terminal
from core.keyholder.errors import MalformedRequest, Refused
from core.keyholder.termentry import PASTE_START, _Burst, _find

__all__ = ["MAX_BURST", "MAX_PIN", "PIN_IDLE_S", "pin_for", "read_pin"]

#: The longest PIN accepted (PKCS#11 cards: 4-16 as a rule, some up to 32).
MAX_PIN: Final = 32
#: A burst (bytes arriving less than SETTLE_S apart) with more printable characters than
#: this is not typing: refused. Two covers key rollover of a fast typist.
MAX_BURST: Final = 2
#: The PIN is wiped and the entry ends after this many idle seconds.
PIN_IDLE_S: Final = 180.0

K_BS: Final = (0x7F, 0x08)
K_ENTER: Final = (0x0D, 0x0A)
K_ESC: Final = 0x1B
K_CTRL_U: Final = 0x15

HELP: Final = b"Type the PIN, Enter.  Backspace  Ctrl+U clears  Esc cancels (nothing reaches the card)"


def _draw(fd: int, title: bytes, typed: int, note: bytes, kind: bytes = b"\x1b[0m") -> None:
    """The whole PIN screen: the title, one ``*`` per character typed, a note, the keys.
    Only the count of characters is drawn (public: the room sees the mask anyway)."""
    out = CLEAR
    for line in title.split(b"\n"):
        out += b"\x1b[1m" + line[:78] + b"\x1b[0m\r\n"
    out += b"\r\n\x1b[1mPIN: \x1b[1;33m" + b"*" * typed + b"\x1b[0m" + (b"_" if typed < MAX_PIN else b"")
    out += b"\r\n\r\n" + kind + note + b"\x1b[0m\r\n\r\n\x1b[90m" + HELP + b"\x1b[0m"
    tty_write(fd, out)


def read_pin(
    fd: int,
    pin: Any,
    *,
    title: bytes,
    allow_unlocked: bool = False,
    idle: float = PIN_IDLE_S,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Read a PIN on terminal ``fd`` into the locked buffer ``pin`` (a
    :class:`core.secmem.SecretBuffer` of at least :data:`MAX_PIN` bytes).

    Returns public facts: ``status`` (``ok``, ``cancelled``, ``idle``, ``hangup``),
    ``length`` (characters in ``pin`` when ok, else 0) and ``pastes_refused``. The
    terminal is left in raw mode with the cursor hidden; :func:`pin_for` restores it.
    On anything but ``ok`` the PIN buffer is wiped.
    """
    burst = _Burst(allow_unlocked)
    n = 0
    refused = 0
    note = b"The keyholder has the keyboard: the PIN never reaches the ceremony program."
    kind = b"\x1b[0m"
    last = clock()
    status = "cancelled"
    try:
        _draw(fd, title, n, note, kind)
        while True:
            got = burst.read(fd, 0.5)
            now = clock()
            if got < 0:
                status = "hangup"
                return {"status": status, "length": 0, "pastes_refused": refused}
            if got == 0:
                if now - last >= idle:
                    status = "idle"
                    return {"status": status, "length": 0, "pastes_refused": refused}
                continue
            last = now
            action = ""
            try:
                with burst.buf.view(0, got) as mv:
                    printable = sum(1 for i in range(got) if 0x20 <= mv[i] <= 0x7E)
                    if _find(mv, PASTE_START) >= 0 or burst.overflow or printable > MAX_BURST:
                        # a paste or a scanner: nothing of it is kept, nor the PIN before it
                        refused += 1
                        pin.wipe()
                        n = 0
                        note, kind = (b"Refused: that came in faster than typing (a paste or a "
                                      b"scanner). The PIN is typed by hand; everything was wiped: "
                                      b"type it again.", b"\x1b[1;31m")
                        # the rest of a bracketed paste (up to its end) is dropped unread by
                        # the next bursts: they are refused the same way
                    elif mv[0] == K_ESC and got > 1:
                        pass  # an arrow or a terminal report: ignored
                    else:
                        for i in range(got):
                            b = mv[i]
                            if b == K_ESC:
                                action = "cancel"
                                break
                            if b in K_ENTER:
                                if n:
                                    action = "ok"
                                    break
                                note, kind = b"Type the PIN first.", b"\x1b[1;33m"
                            elif b in K_BS:
                                if n:
                                    n -= 1
                                    with pin.view(n, n + 1) as pv:
                                        pv[0] = 0
                                note, kind = b"", b"\x1b[0m"
                            elif b == K_CTRL_U:
                                pin.wipe()
                                n = 0
                                note, kind = b"PIN cleared: type it again.", b"\x1b[0m"
                            elif 0x21 <= b <= 0x7E:
                                if n >= MAX_PIN:
                                    note, kind = b"A PIN has at most 32 characters.", b"\x1b[1;33m"
                                else:
                                    with pin.view(n, n + 1) as pv:
                                        pv[0] = b
                                    n += 1
                                    note, kind = b"", b"\x1b[0m"
            finally:
                burst.wipe()
            if action == "cancel":
                status = "cancelled"
                return {"status": status, "length": 0, "pastes_refused": refused}
            if action == "ok":
                status = "ok"
                return {"status": status, "length": n, "pastes_refused": refused}
            _draw(fd, title, n, note, kind)
    finally:
        burst.close()
        if status != "ok":
            pin.wipe()


def _title(state: Any, what: str, serial: str, notice: str) -> bytes:
    raw = f"Card PIN - {what}" + (f" - card {serial}" if serial else "")
    title = "".join(ch if " " <= ch <= "~" else "?" for ch in raw)[:78].encode("ascii")
    if getattr(state, "practice", False):
        title = b"PRACTICE - " + title
    if notice:
        title = notice.encode("ascii", "replace") + b"\n" + title
    return title


@contextmanager
def pin_for(state: Any, req: Any, what: str) -> Iterator[memoryview | None]:
    """The PIN for one card operation, as a view valid inside the ``with`` block.

    ``pin`` in the request (a protocol ``Secret``, for API callers and test doubles): a
    view of the locked receive buffer. ``pin_from_terminal``: read on the keyholder's own
    terminal now (:func:`read_pin`), into ``state.alloc`` memory wiped when the block
    ends; while the card works, the terminal says so; afterwards it is restored and
    cleared. Neither: None (the reader's PIN pad).

    Raises:
        CardPinCancelled: the custodian cancelled (Esc), the entry idled out or the
            terminal hung up; nothing was sent to the card.
        MalformedRequest: both a PIN and ``pin_from_terminal``.
        TerminalRefused: no display terminal (or a pty outside demo mode).
    """
    from_terminal = req.flag("pin_from_terminal", False)
    if not from_terminal:
        yield req.secret("pin") if req.has("pin") else None
        return
    if req.has("pin"):
        raise MalformedRequest("a card request carries a PIN or asks for it on the terminal, not both")
    term = _terminal.display_terminal("card PINs", "")
    title = _title(state, what, req.text("serial", ""), term.notice)
    buf = state.alloc(MAX_PIN)
    fd = -1
    old: Any = None
    try:
        try:
            fd = os.dup(term.fd)
            old = termios.tcgetattr(fd) if os.isatty(fd) else None
            if old is not None:
                _tty.setraw(fd, termios.TCSANOW)
            tty_write(fd, b"\x1b[?2004h\x1b[?25l")  # bracketed paste on (to refuse it), cursor off
            got = read_pin(fd, buf, title=title, allow_unlocked=state.allow_unlocked,
                           idle=float(req.integer("idle_wipe", int(PIN_IDLE_S))))
        except (OSError, ValueError) as exc:
            raise Refused(f"cannot use the terminal {term.path} for the card PIN: {exc}") from None
        if got["status"] != "ok":
            reason = {
                "idle": "no key was pressed for a while: the PIN entry ended",
                "hangup": "the keyholder's terminal hung up",
            }.get(got["status"], "the PIN entry was cancelled (Esc)")
            raise CardPinCancelled(f"{reason}; nothing was sent to the card. Try again when ready.")
        tty_write(fd, CLEAR + title.split(b"\n")[-1] + b"\r\n\r\n\x1b[1;33mPIN taken. Working with "
                  b"the card: do not remove it. This screen returns to the ceremony program when "
                  b"the card is done.\x1b[0m\r\n")
        with buf.view(0, got["length"]) as mv:
            yield mv
    finally:
        buf.close()
        if fd >= 0:
            try:
                tty_write(fd, b"\x1b[?2004l" + CLEAR + b"\x1b[?25h")
            except OSError:
                pass
            if old is not None:
                try:
                    termios.tcflush(fd, termios.TCIFLUSH)  # nothing typed ahead reaches the UI
                    termios.tcsetattr(fd, termios.TCSANOW, old)
                except termios.error:
                    pass
            os.close(fd)
