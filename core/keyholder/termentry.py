"""Share entry on the keyholder's own terminal: the software form of an HSM's PIN pad.

While a custodian types a share (or scans its QR with a keyboard-wedge scanner), the UI
process suspends its terminal driver and reads nothing; the keyholder opens its display
terminal, puts it in raw mode, reads every byte into a locked buffer and draws the masked
entry itself. Only public facts go back to the UI: the verdict, the share's set / group /
member numbers, counts. See docs/threat-model.md ("Trusted path").

Two parts:

* :class:`KeyEntry` is the entry state machine, without I/O (tests and the keystroke
  benchmark drive it byte by byte). A word completes by itself at its unique 4-letter
  prefix; letters typed after that which continue the completed word are swallowed (so
  typing whole words still works), a space ends the swallowing, a letter that does not
  continue the word starts the next one (the swallowed letters are re-read as its start).
* :func:`run_on_terminal` is the loop on a terminal file descriptor: it collects each
  burst of input (bytes arriving less than :data:`SETTLE_S` apart), tells typing from a
  paste (refused, wiped) and from a scanner burst (a valid QR share input), feeds keys to
  the machine, redraws, and handles the idle timeout.

Nothing here builds a ``str``, ``bytes`` or ``int`` from a secret: typed letters live in a
locked buffer, word indices are written byte by byte into the entry's locked buffer, the
screen is assembled in a locked buffer from the word list's public ``bytes`` objects and
the buffer is wiped after each write.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty as _tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from core import secmem
from core.custodian_tty import CLEAR, tty_write
from core.keyholder import terminal as _terminal
from core.keyholder.terminal import DisplayTerminal
from core.shamir import wordlist as _wl

__all__ = [
    "IDLE_WARN_S",
    "IDLE_WIPE_S",
    "KEYS_HELP",
    "SETTLE_S",
    "Check",
    "KeyEntry",
    "entry_terminal",
    "run_on_terminal",
]

#: Bytes arriving closer together than this form one burst (one classification).
SETTLE_S: Final = 0.03
#: A burst with more letters than this, or with two letter runs, is a paste.
MAX_BURST_LETTERS: Final = 8
#: A scanner burst has at least this many digits (a share QR: 80 or 132).
MIN_SCAN_DIGITS: Final = 20
IDLE_WARN_S: Final = 120.0
IDLE_WIPE_S: Final = 180.0
MAX_LETTERS: Final = 8
BURST_CAP: Final = 8192

K_BS: Final = (0x7F, 0x08)
K_ENTER: Final = (0x0D, 0x0A)
K_CTRL_W: Final = 0x17
K_CTRL_U: Final = 0x15
K_ESC: Final = 0x1B
K_HINT: Final = 0x3F  # '?'
K_CLIPBOARD: Final = (0x03, 0x16, 0x18)  # Ctrl+C, Ctrl+V, Ctrl+X

PASTE_START: Final = b"\x1b[200~"
PASTE_END: Final = b"\x1b[201~"

KEYS_HELP: Final = (
    b"4 letters a word: it completes itself (whole words and Space work too)."
    b"\r\nBackspace  Ctrl+W drops a word  Enter checks  ? suggestion  Esc Esc exits"
)

#: check(indices) -> ("ok", {set, group, member}) | ("checksum", [(position, words)])
#: | ("error", message). Supplied by ops_shares (SLIP-39 decode and typo location).
Check = Callable[[memoryview], tuple[str, Any]]


def entry_terminal(req: Any) -> DisplayTerminal:
    """The terminal the keyholder draws and reads share entry on (the one seam): the display
    terminal fixed when the keyholder was started (:mod:`core.keyholder.terminal`). A
    request naming another terminal is refused, and so is a pseudo-terminal outside demo.

    Raises:
        TerminalRefused: no terminal was fixed, the request named another one, or a pty
            outside demo mode.
    """
    return _terminal.display_terminal("shares typed or scanned", str(req.text("tty", "")))


@dataclass
class _Msg:
    """A status line: public text pieces and (rarely) word-list ``bytes`` objects; drawn
    into the locked screen buffer, never joined into a Python string."""

    kind: str = "muted"
    parts: tuple[bytes, ...] = ()


@dataclass
class KeyEntry:
    """The entry state machine. ``indices`` is the entry's locked buffer (2 bytes a word)."""

    words: int
    indices: secmem.SecretBuffer
    filled: list[bool]
    allow_unlocked: bool = False
    keystrokes: int = 0
    marked: int = 0  # probable typo position (1-based), 0 if none
    replacing: int = 0
    msg: _Msg = field(default_factory=_Msg)
    hint_words: tuple[str, ...] = ()  # candidate words for the marked position ('?' only)
    escape_armed: bool = False
    pastes_refused: int = 0
    # how this custodian types, for the one ambiguous case (the letters after a completed
    # word both end it and start a word): whole rests typed (whole words without a space)
    # against rests cut short by the next word's letters (4-letter prefixes)
    tail_runs: int = 0
    tail_breaks: int = 0

    def __post_init__(self) -> None:
        self.cur = secmem.SecretBuffer(16, allow_unlocked=self.allow_unlocked)
        self.n = 0  # letters of the current word
        self._sw: bytes | None = None  # the completed word being swallowed (list object)
        self._sw_at = 0  # letters of it matched so far
        self._sw_first = 0  # letters that were typed before completion

    # ------------------------------------------------------------------ state
    @property
    def count(self) -> int:
        return sum(self.filled)

    @property
    def pos(self) -> int:
        """The position being typed (1-based); ``words + 1`` when every word is in."""
        if self.replacing:
            return self.replacing
        for i, f in enumerate(self.filled):
            if not f:
                return i + 1
        return self.words + 1

    def close(self) -> None:
        self.cur.close()
        self._sw = None

    def wipe_current(self) -> None:
        self.cur.wipe()
        self.n = 0

    def _say(self, kind: str, *parts: bytes) -> None:
        self.msg = _Msg(kind, parts)

    # ------------------------------------------------------------------ trie
    def _node(self) -> Any:
        node: Any = _wl._TRIE
        with self.cur.view(0, self.n) as mv:
            for i in range(self.n):
                node = node.children.get(mv[i])
                if node is None:
                    return None
        return node

    @staticmethod
    def _below(node: Any, limit: int = 4) -> list[bytes]:
        out: list[bytes] = []
        stack = [node]
        while stack and len(out) < limit:
            nd = stack.pop()
            if nd.word >= 0:
                out.append(_wl.WORD_BYTES[nd.word])
            stack.extend(nd.children[k] for k in sorted(nd.children, reverse=True))
        return out

    # ------------------------------------------------------------------ keys
    def feed(self, key: int) -> str:
        """One key (a byte). Returns ``""``, ``"finish"`` (Enter on an empty word: check
        the share), ``"cancel"`` (Esc twice) or ``"hint"`` (show the suggestion)."""
        self.keystrokes += 1
        if key != K_ESC:
            self.escape_armed = False
        if 0x41 <= key <= 0x5A or 0x61 <= key <= 0x7A:
            self._letter(key | 0x20)
            return ""
        self._end_swallow(reinterpret=False)
        if key in (0x20, 0x09):
            if self.n:
                self._incomplete()
            return ""
        if key in K_ENTER:
            if self.n:
                self._incomplete()
                return ""
            return "finish"
        if key in K_BS:
            if self.n:
                self.n -= 1
                with self.cur.view(self.n, self.n + 1) as mv:
                    mv[0] = 0
            return ""
        if key in (K_CTRL_W, K_CTRL_U):
            if self.n:
                self.wipe_current()
                self._say("muted", b"Word cleared: type it again.")
            elif key == K_CTRL_W:
                self._undo()
            return ""
        if key == K_ESC:
            if self.escape_armed:
                return "cancel"
            self.escape_armed = True
            self._say("warn", b"Press Esc again to leave the entry (every word typed is wiped);"
                      b" any other key continues.")
            return ""
        if key == K_HINT:
            if self.marked and self.hint_words:
                return "hint"
            self._say("muted", b"No suggestion to show.")
            return ""
        if key in K_CLIPBOARD:
            self._say("warn", b"Copy, cut and paste are disabled during share entry.")
            return ""
        return ""

    def _letter(self, ch: int) -> None:
        if self._sw is not None:
            word = self._sw
            if self._sw_at < len(word) and word[self._sw_at] == ch:
                self._sw_at += 1  # the rest of the completed word: swallowed
                return
            # A letter that does not continue the word: were the swallowed letters the
            # start of the next word (a custodian typing 4-letter prefixes) or the end of
            # this one (whole words, no space)? The first when a word starts that way.
            # When only the letters alone start a word, a custodian who has been typing
            # prefixes meant them as the next word; one typing whole words did not.
            node: Any = _wl._TRIE
            for k in range(self._sw_first, self._sw_at):
                node = node.children.get(word[k])
                if node is None:
                    break
            alone = node is not None and self._sw_at > self._sw_first
            if node is not None:
                node = node.children.get(ch)
            prefix_style = self.tail_breaks >= self.tail_runs
            if self._sw_at >= len(word):
                self.tail_runs += 1  # the whole rest of the word was typed
            else:
                self.tail_breaks += 1  # the next word began before the rest was typed
            self._end_swallow(reinterpret=node is not None or (alone and prefix_style))
            if self._sw is not None:  # the re-read letters completed a word: ch follows it
                self._letter(ch)
                return
        pos = self.pos
        if pos > self.words:
            self._say("warn", b"All words are in: press Enter to check the share "
                      b"(Ctrl+W drops the last word).")
            return
        if self.n >= MAX_LETTERS:
            self._say("warn", b"A word has at most 8 letters: Backspace or Ctrl+W.")
            return
        with self.cur.view(self.n, self.n + 1) as mv:
            mv[0] = ch
        self.n += 1
        node = self._node()
        if node is None:
            self._say("error", b"Word ", _num(pos), b": no word of the list starts like this. "
                      b"Backspace, or space to see the nearest words.")
            return
        if self.n >= _wl.MIN_PREFIX and node.count == 1:
            self._accept(pos, node)
        elif self.n >= _wl.MIN_PREFIX and node.word >= 0 and not node.children:
            self._accept(pos, node)
        else:
            self._say("muted", b"")

    def _accept(self, pos: int, node: Any) -> None:
        index = node.only if node.only >= 0 else node.word
        with self.indices.view(2 * pos - 2, 2 * pos) as mv:
            mv[0] = index >> 8
            mv[1] = index & 0xFF
        self.filled[pos - 1] = True
        self._sw = _wl.WORD_BYTES[index]
        self._sw_at = self._sw_first = self.n
        self.wipe_current()
        if self.replacing:
            self.replacing = 0
            self.marked = 0
            self.hint_words = ()
            self._say("ok", b"Word ", _num(pos), b" replaced: press Enter to check the share again.")
        elif self.count >= self.words:
            self._say("ok", b"All words entered: press Enter to check the share.")
        else:
            self._say("ok", b"Word ", _num(pos), b" accepted.")

    def _end_swallow(self, *, reinterpret: bool) -> None:
        word, self._sw = self._sw, None
        start, stop = self._sw_first, self._sw_at
        self._sw_at = self._sw_first = 0
        if word is None or not reinterpret:
            return
        # the letters swallowed after completion were the start of the next word
        for k in range(start, stop):
            self._letter(word[k])

    def _incomplete(self) -> None:
        node = self._node()
        pos = self.pos
        if node is None:
            with self.cur.view(0, self.n) as mv:
                near = _wl.nearest_words(mv)
            self.wipe_current()
            parts: list[bytes] = [b"Word ", _num(pos), b" is not in the word list."]
            if near:
                parts.append(b" Nearest: ")
                for k, w in enumerate(near):
                    parts += [b", " if k else b"", _wl.WORD_BYTES[_wl.word_index(w)]]
                parts.append(b".")
            parts.append(b" Type it again.")
            self._say("error", *parts)
            return
        cands = self._below(node)
        parts = [b"Word ", _num(pos), b": type more letters (could be "]
        for k, wb in enumerate(cands):
            parts += [b", " if k else b"", wb]
        parts.append(b"...)." if node.count > len(cands) else b").")
        self._say("warn", *parts)

    def _undo(self) -> None:
        last = max((i + 1 for i, f in enumerate(self.filled) if f), default=0)
        if not last:
            self._say("muted", b"No word to drop.")
            return
        with self.indices.view(2 * last - 2, 2 * last) as mv:
            secmem.memset(mv)
        self.filled[last - 1] = False
        self.replacing = 0
        self._say("muted", b"Word ", _num(last), b" dropped: type it again.")

    def wipe_all(self) -> None:
        self.wipe_current()
        self._sw = None
        self.indices.wipe()
        for i in range(self.words):
            self.filled[i] = False
        self.marked = self.replacing = 0
        self.hint_words = ()

    # ------------------------------------------------------------------ verdicts
    def checksum_failed(self, candidates: list[tuple[int, tuple[str, ...]]], message: str) -> None:
        """The checksum is wrong: mark the probable position (position only on screen)."""
        if not candidates:
            self._say("error", b"Checksum wrong: ", message.encode("ascii", "replace"),
                      b" Check every word with the custodian's sheet.")
            return
        first, words = candidates[0]
        self.marked = self.replacing = first
        self.hint_words = words
        parts = [b"Checksum wrong. Word ", _num(first), b" is probably wrong"]
        others = [p for p, _w in candidates[1:4]]
        if others:
            parts.append(b" (or word " + b", ".join(_num(p) for p in others) + b")")
        parts.append(b". Re-type word " + _num(first) + b" now; ? shows a suggestion.")
        self._say("error", *parts)

    def show_hint(self) -> None:
        """The suggestion for the marked word, on the custodian's screen only."""
        parts = [b"Suggestion for word ", _num(self.marked), b": "]
        for k, w in enumerate(self.hint_words[:4]):
            parts += [b" or " if k else b"", _wl.WORD_BYTES[_wl.word_index(w)]]
        parts.append(b" (hidden at the next key).")
        self._say("warn", *parts)


def _num(n: int) -> bytes:
    """A public position number as ASCII."""
    return str(n).encode()


# --------------------------------------------------------------------------- drawing

_STYLE: Final = {
    "muted": b"\x1b[0m",
    "ok": b"\x1b[1;32m",
    "warn": b"\x1b[1;33m",
    "error": b"\x1b[1;31m",
}
_COLS: Final = 6
_WORD_IDS: Final = frozenset(id(w) for w in _wl.WORD_BYTES)


class _Screen:
    """Assembles one frame in a locked buffer (wiped after each write)."""

    def __init__(self, buf: secmem.SecretBuffer) -> None:
        self.buf = buf
        self.n = 0

    def put(self, data: bytes) -> None:
        room = self.buf.size - self.n
        data = data[:room]
        with self.buf.view(self.n, self.n + len(data)) as mv:
            mv[:] = data
        self.n += len(data)

    def put_wrapped(self, parts: tuple[bytes, ...], width: int = 79) -> None:
        """Write a message wrapped at ``width`` columns, breaking at spaces. Word-list
        entries are written whole and never split or joined (no copy of them is made);
        the public text pieces are split at their spaces."""
        col = 0
        for part in parts:
            tokens: list[bytes] = [part] if id(part) in _WORD_IDS else part.split(b" ")
            for k, tok in enumerate(tokens):
                if k:  # a space from the text
                    if col + 1 + len(tokens[k]) > width:
                        self.put(b"\r\n")
                        col = 0
                    else:
                        self.put(b" ")
                        col += 1
                elif col and col + len(tok) > width and tok[:1] not in (b",", b".", b")"):
                    self.put(b"\r\n")
                    col = 0
                self.put(tok)
                col += len(tok)

    def flush(self, fd: int) -> None:
        try:
            with self.buf.view(0, self.n) as mv:
                tty_write(fd, mv)
        finally:
            self.buf.wipe()
            self.n = 0


def draw(fd: int, scr: _Screen, e: KeyEntry, title: bytes, *, scanning: int = 0) -> None:
    """Redraw the whole entry: title, counter, the masked grid, the status line, keys."""
    pos = e.pos
    scr.put(CLEAR)
    for line in title.split(b"\n"):  # a DEMO notice is a line of its own
        scr.put(b"\x1b[1m" + line[:78] + b"\x1b[0m\r\n")
    head = b"Word " + _num(min(pos, e.words)) + b" of " + _num(e.words)
    if e.replacing:
        head += b"  (re-typing the flagged word)"
    if pos > e.words:
        head = b"All " + _num(e.words) + b" words in"
    scr.put(b"\x1b[1;33m" + head + b"\x1b[0m   words " + _num(e.count) + b"/" + _num(e.words)
            + b"   keys " + _num(e.keystrokes) + b"\r\n\r\n")
    rows = -(-e.words // _COLS)
    for r in range(rows):
        for c in range(_COLS):
            i = r + c * rows + 1
            if i > e.words:
                continue
            if i == pos:
                cell = b"\x1b[1;30;43m" + b"*" * e.n + b"_" * (MAX_LETTERS - e.n)
            elif i == e.marked:
                cell = b"\x1b[1;37;41m????    "
            elif e.filled[i - 1]:
                cell = b"\x1b[32m####    "
            else:
                cell = b"\x1b[90m....    "
            scr.put(b"\x1b[1m" + b"%02d" % i + b"\x1b[0m " + cell + b"\x1b[0m")
            if c < _COLS - 1:
                scr.put(b"  ")
        scr.put(b"\r\n")
    scr.put(b"\r\n")
    if scanning:
        scr.put(b"\x1b[1;33mScanner: " + _num(scanning) + b" digits received\x1b[0m\r\n")
    scr.put(_STYLE.get(e.msg.kind, b""))
    scr.put_wrapped(e.msg.parts)
    scr.put(b"\x1b[0m\r\n\r\n\x1b[90m" + KEYS_HELP + b"\x1b[0m")
    scr.flush(fd)


# --------------------------------------------------------------------------- the loop


class _Burst:
    """One burst of input bytes in a locked buffer."""

    def __init__(self, allow_unlocked: bool) -> None:
        self.buf = secmem.SecretBuffer(BURST_CAP, allow_unlocked=allow_unlocked)
        self.n = 0
        self.overflow = False

    def read(self, fd: int, first_wait: float) -> int:
        """Wait up to ``first_wait`` seconds for input, then read until the input has been
        quiet for :data:`SETTLE_S`. Returns the bytes read (0: nothing; -1: hang-up)."""
        self.n = 0
        self.overflow = False
        wait = first_wait
        while True:
            ready, _w, _x = select.select([fd], [], [], wait)
            if not ready:
                return self.n
            with self.buf.view(self.n if self.n < BURST_CAP else 0) as mv:
                try:
                    got = os.readv(fd, [mv])
                except BlockingIOError:
                    got = 0
                except OSError:
                    return -1
            if got == 0 and ready:
                if self.n == 0:
                    return -1
                return self.n
            if self.n >= BURST_CAP:
                self.overflow = True  # the rest was read over the start: a paste anyway
            else:
                self.n += got
            wait = SETTLE_S

    def wipe(self) -> None:
        self.buf.wipe()
        self.n = 0

    def close(self) -> None:
        self.buf.close()


def _find(mv: memoryview, pat: bytes) -> int:
    n, m = len(mv), len(pat)
    for i in range(n - m + 1):
        if mv[i] == pat[0] and mv[i : i + m] == pat:
            return i
    return -1


def _classify(mv: memoryview) -> str:
    """``keys`` (typing), ``paste``, ``scan`` (digits of a scanner burst), ``escape`` (a
    terminal sequence: arrows, focus reports) or ``bracketed`` (a bracketed paste)."""
    if _find(mv, PASTE_START) >= 0:
        return "bracketed"
    n = len(mv)
    if n > 1 and mv[0] == K_ESC and mv[1] in (0x5B, 0x4F):
        return "escape"
    letters = digits = runs = 0
    in_run = False
    for i in range(n):
        b = mv[i]
        if 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A:
            letters += 1
            if not in_run:
                runs += 1
                in_run = True
        else:
            in_run = False
            if 0x30 <= b <= 0x39:
                digits += 1
    if digits and not letters:
        return "scan"
    if letters > MAX_BURST_LETTERS or (runs >= 2 and letters > 2) or n > 2 * MAX_BURST_LETTERS:
        return "paste"
    return "keys"


def run_on_terminal(
    fd: int,
    entry: KeyEntry,
    check: Check,
    *,
    title: bytes,
    scan: Callable[[memoryview], tuple[str, Any]] | None = None,
    idle_warn: float = IDLE_WARN_S,
    idle_wipe: float = IDLE_WIPE_S,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Run the entry on terminal ``fd`` until the share checks, Esc twice, or idle.

    ``scan(digits)`` takes a completed scanner burst (the digits, without Enter) and
    returns what ``check`` returns (the share is put into ``entry.indices`` by it).
    Returns public facts only: ``status`` (ok, cancelled, idle, hangup), the share's
    numbers when ok, ``via`` (typed, scanner), ``keystrokes``, ``pastes_refused``.
    """
    scr_buf = secmem.SecretBuffer(8192, allow_unlocked=entry.allow_unlocked)
    scr = _Screen(scr_buf)
    burst = _Burst(entry.allow_unlocked)
    digits = secmem.SecretBuffer(512, allow_unlocked=entry.allow_unlocked)
    ndig = 0
    last_digit_t = 0.0
    old = termios.tcgetattr(fd) if os.isatty(fd) else None
    if old is not None:
        _tty.setraw(fd, termios.TCSANOW)
    tty_write(fd, b"\x1b[?2004h\x1b[?25l")  # bracketed paste on, cursor off
    last_key = clock()
    warned = False
    result: dict[str, Any] = {"status": "cancelled"}
    try:
        entry._say("muted", b"The keyholder has the keyboard: nothing you type reaches the "
                   b"ceremony program.")
        draw(fd, scr, entry, title)
        while True:
            n = burst.read(fd, 0.5)
            now = clock()
            if n < 0:
                result = {"status": "hangup"}
                return result
            if n == 0:
                idle = now - last_key
                if idle >= idle_wipe:
                    entry.wipe_all()
                    result = {"status": "idle"}
                    return result
                if idle >= idle_warn and not warned:
                    warned = True
                    entry._say("warn", b"No key pressed for a while: the entry is wiped in "
                               + _num(int(idle_wipe - idle)) + b" s unless you continue.")
                    draw(fd, scr, entry, title)
                continue
            last_key = now
            warned = False
            action = ""
            drain = False
            verdict: tuple[str, Any] = ("", None)
            try:
                with burst.buf.view(0, n) as mv:
                    kind = _classify(mv)
                    if ndig and (kind != "scan" or now - last_digit_t > 0.2):
                        # a scanner burst that stopped without Enter: drop it
                        if not (n == 1 and mv[0] in K_ENTER):
                            digits.wipe()
                            ndig = 0
                    if kind == "bracketed":
                        drain = _find(mv, PASTE_END) < 0
                        entry.pastes_refused += 1
                        entry._say("error", b"A paste was refused: share words are typed by the "
                                   b"custodian (or scanned from the QR). Nothing of it was kept.")
                    elif kind == "paste" or burst.overflow:
                        entry.pastes_refused += 1
                        entry._say("error", b"That came in too fast for typing: a paste was "
                                   b"refused (share words are typed, or scanned from the QR). "
                                   b"Nothing of it was kept.")
                    elif kind == "scan" or (ndig and mv[0] in K_ENTER):
                        ended = False
                        for i in range(n):
                            b = mv[i]
                            if 0x30 <= b <= 0x39 and ndig < digits.size:
                                with digits.view(ndig, ndig + 1) as dv:
                                    dv[0] = b
                                ndig += 1
                            elif b in K_ENTER:
                                ended = True
                                break
                        last_digit_t = now
                        if ended and ndig >= MIN_SCAN_DIGITS and scan is not None:
                            with digits.view(0, ndig) as dv:
                                verdict = scan(dv)
                            digits.wipe()
                            ndig = 0
                            if verdict[0] != "ok":
                                entry._say("error", str(verdict[1]).encode("ascii", "replace"))
                        elif ended:
                            digits.wipe()
                            ndig = 0
                            entry._say("warn", b"Digits are not share words: type the words "
                                       b"(or scan the whole QR).")
                    elif kind == "keys":
                        for i in range(n):
                            action = entry.feed(mv[i])
                            if action:
                                break
            finally:
                burst.wipe()
            while drain:  # the rest of a bracketed paste: read and dropped
                got = burst.read(fd, 2.0)
                if got > 0:
                    with burst.buf.view(0, got) as mv:
                        drain = _find(mv, PASTE_END) < 0
                else:
                    drain = False
                burst.wipe()
            if verdict[0] == "ok":
                result = {"status": "ok", "via": "scanner", **dict(verdict[1] or {})}
                return result
            if action == "cancel":
                entry.wipe_all()
                result = {"status": "cancelled"}
                return result
            if action == "hint":
                entry.show_hint()
            elif action == "finish":
                with entry.indices.view() as iv:
                    verdict = check(iv) if entry.count >= entry.words else ("incomplete", None)
                if verdict[0] == "ok":
                    result = {"status": "ok", "via": "typed", **dict(verdict[1] or {})}
                    return result
                if verdict[0] == "checksum":
                    entry.checksum_failed(list(verdict[1] or ()), "")
                elif verdict[0] == "incomplete":
                    entry._say("warn", _num(entry.words - entry.count) + b" word(s) missing: "
                               b"type word " + _num(entry.pos) + b" next.")
                else:
                    entry._say("error", str(verdict[1]).encode("ascii", "replace"))
            draw(fd, scr, entry, title, scanning=ndig)
    finally:
        result.setdefault("keystrokes", entry.keystrokes)
        result.setdefault("pastes_refused", entry.pastes_refused)
        digits.close()
        burst.close()
        try:
            tty_write(fd, b"\x1b[?2004l" + CLEAR + b"\x1b[?25h")
        except OSError:
            pass
        if old is not None:
            try:
                termios.tcflush(fd, termios.TCIFLUSH)  # nothing typed ahead is left for the UI
                termios.tcsetattr(fd, termios.TCSANOW, old)
            except termios.error:
                pass
        scr_buf.close()
