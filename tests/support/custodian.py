"""The custodian terminal in tests: a pty whose slave side the keyholder writes shares to.

A thread reads the master side like a custodian reading the screen: it keeps the words of
each share shown (in order), reads each QR shown (with ``read_qr``, part by part), and
presses a key when asked, as the custodian does. One class for the engine, carrier and UI
tests.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["QR_DONE", "QR_NEXT", "WORD_PROMPT", "CustodianTerminal", "pin", "typed"]

#: What the keyholder writes under a share's words, and between and after QR parts.
WORD_PROMPT = b"Press a key when done"
QR_NEXT = b"Any key: part "
QR_DONE = b"Done: any key erases the screen"
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
        self._stop = False
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
                continue
            buf = b""
            os.write(self.master, b"\n")  # the custodian presses a key

    def close(self) -> None:
        """Stop reading and close both sides."""
        self._stop = True
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass


def typed(mnemonic: str) -> list[memoryview]:
    """What the UI passes for a typed share: one view per word over its input buffer."""
    return [memoryview(bytearray(w.encode())) for w in mnemonic.split()]


def pin(text: str) -> memoryview:
    """What the UI passes for a PIN: a view over its own (locked) PIN buffer."""
    return memoryview(bytearray(text.encode()))
