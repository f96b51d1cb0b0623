"""The custodian terminal in tests: a pty whose slave side the keyholder writes shares to.

A thread reads the master side like a custodian reading the screen: it keeps the words of
each share shown (in order), reads each QR shown (with ``read_qr``, part by part), ends a
word or QR reveal as the custodian does (Enter, then Enter to confirm) and presses a key
between QR parts. Typed entry happens on this terminal too (the keyholder owns it meanwhile, issue
14): :meth:`CustodianTerminal.type_words` types a share in step with the keyholder's
redraws. One class for the engine, carrier and UI tests.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["PIN_SCREEN", "QR_DONE", "QR_NEXT", "TERMINALS", "WORD_PROMPT", "CustodianTerminal", "pin", "typed"]

#: What the keyholder writes under a share's words, and between and after QR parts.
WORD_PROMPT = b"Press Enter when done"
QR_NEXT = b"Any key: part "
QR_DONE = b"Done: Enter, then Enter again, erases the screen"
#: The keyholder's card PIN screen (the mask line).
PIN_SCREEN = b"PIN: \x1b[1;33m"
_WORD = re.compile(rb"(\d+)\. ([a-z]+)")


class CustodianTerminal:
    """A pty standing in for the custodian's terminal.

    Attributes:
        path: the slave side (the keyholder's display target).
        share_words: the words of each share shown, in order.
        qr_reads: what ``read_qr`` returned for each QR shown (all its parts).
        raw: everything written to the terminal.
    """

    def __init__(self, *, read_qr: Callable[[bytes], Any] | None = None) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.share_words: list[list[str]] = []
        self.qr_reads: list[Any] = []
        self.raw = bytearray()
        self._read_qr = read_qr
        self.mark = 0  # where the current typed entry starts in ``raw``
        self.pins_typed_at = 0  # where ``raw`` ended when the last PIN was typed
        self._stop = False
        TERMINALS[self.path] = self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def shares(self) -> list[str]:
        """Each share shown, as its words separated by spaces."""
        return [" ".join(words) for words in self.share_words]

    def _run(self) -> None:
        buf = b""
        qr_parts = b""
        while not self._stop:
            # poll, so that close() can stop this thread before the descriptors are closed
            # (their numbers are reused by the next test's terminal)
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            self.raw += chunk
            if WORD_PROMPT in buf:
                found = {int(n): w.decode() for n, w in _WORD.findall(buf)}
                self.share_words.append([found[i] for i in sorted(found)])
                buf = b""
                os.write(self.master, b"\r\r")  # Enter, and Enter again to confirm
                continue
            elif QR_DONE in buf:  # the last part of the QR: read every square shown
                if self._read_qr is not None:
                    self.qr_reads.append(self._read_qr(qr_parts + buf))
                qr_parts = b""
            elif QR_NEXT in buf:  # a part of the QR: press a key for the next part
                cut = buf.index(QR_NEXT) + len(QR_NEXT)
                qr_parts += buf[:cut]
                buf = buf[cut:]
                os.write(self.master, b" ")
                continue
            else:
                if len(buf) > 1 << 18:  # entry screens: nothing to read here
                    buf = buf[-4096:]
                continue
            buf = b""
            os.write(self.master, b"\r\r")  # Enter, and Enter again to confirm

    # ------------------------------------------------------------- typed entry

    def wait_for(self, pattern: bytes, timeout: float = 60.0, *, since: int | None = None) -> None:
        """Wait until the keyholder drew ``pattern`` (after ``since``, default the mark)."""
        start = self.mark if since is None else since
        deadline = time.monotonic() + timeout
        while pattern not in self.raw[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not drawn on the custodian terminal: {bytes(self.raw[-800:])!r}"
                )
            time.sleep(0.01)

    def entry_open(self) -> bool:
        """The keyholder has drawn a fresh entry since the mark."""
        return b"keys 0\r" in self.raw[self.mark :]

    def send(self, data: bytes, keys: int) -> None:
        """Type ``data`` and wait until the keyholder counted ``keys`` keys in this entry."""
        since = len(self.raw)
        os.write(self.master, data)
        self.wait_for(b"keys %d\r" % keys, since=since)

    def type_words(self, words: list[str], *, prefix_only: bool = False) -> int:
        """Type a share word by word (one burst a word), in step with the keyholder's
        redraws. Returns the keys typed."""
        self.wait_for(b"keys 0\r")
        keys = 0
        for w in words:
            data = (w[:4] if prefix_only else w + " ").encode()
            keys += len(data)
            self.send(data, keys)
        return keys

    def type_pin(self, pin: str, *, timeout: float = 60.0) -> None:
        """Type a card PIN on the keyholder's PIN screen (issue 14: the keyholder reads it),
        key by key at a person's pace, then Enter. Waits for a PIN screen drawn since the
        last PIN typed here."""
        self.wait_for(PIN_SCREEN, timeout, since=self.pins_typed_at)
        for ch in pin.encode() + b"\r":
            time.sleep(0.08)
            os.write(self.master, bytes([ch]))
        self.pins_typed_at = len(self.raw)

    def close(self) -> None:
        """Stop reading and close both sides."""
        self._stop = True
        self._thread.join(5)
        TERMINALS.pop(self.path, None)
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass


#: Live custodian terminals by path (an app's backend names its terminal by path).
TERMINALS: dict[str, CustodianTerminal] = {}


def typed(mnemonic: str) -> list[memoryview]:
    """What the UI passes for a typed share: one view per word over its input buffer."""
    return [memoryview(bytearray(w.encode())) for w in mnemonic.split()]


def pin(text: str) -> memoryview:
    """What the UI passes for a PIN: a view over its own (locked) PIN buffer."""
    return memoryview(bytearray(text.encode()))
