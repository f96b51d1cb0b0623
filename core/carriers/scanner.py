"""Handheld QR scanners in keyboard-wedge mode: the scanner "types" the payload.

A scanner sends the decoded QR content as a burst of key presses a few milliseconds apart,
ending with Enter. :class:`WedgeBurst` accumulates one burst in a locked buffer (the
digits are the share) and, on Enter, validates it and converts it to word indices.

The parser tells a scanner from a person by timing: a gap longer than ``max_gap_s`` between
two keys means a person is typing, so the burst is discarded (wiped) and the keys are left
to the ordinary word entry. The keyholder runs this parser: the UI forwards each key press
(one character as a secret field, plus its timestamp) and never keeps the characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.carriers.errors import ScannerError
from core.carriers.qr import DIGITS_PER_WORD, VALID_WORD_COUNTS, Alloc, payload_to_indices
from core.secmem import SecretBuffer

__all__ = ["BurstResult", "WedgeBurst"]

ENTER_KEYS: Final = (0x0D, 0x0A)
MAX_DIGITS: Final = DIGITS_PER_WORD * max(VALID_WORD_COUNTS)


def _alloc(size: int) -> SecretBuffer:
    return SecretBuffer(size)


@dataclass
class BurstResult:
    """What a key press did.

    Attributes:
        status: ``"pending"`` (burst continues), ``"complete"`` (``indices`` holds the
            share), ``"not-scanner"`` (too slow: a person typing; the burst was wiped) or
            ``"idle"`` (Enter with nothing buffered).
        count: digits buffered so far (public: a progress figure).
        indices: the share's word indices when complete (the caller owns and closes it).
    """

    status: str
    count: int = 0
    indices: SecretBuffer | None = None


class WedgeBurst:
    """Accumulates one scanner burst in locked memory.

    Args:
        alloc: allocator for locked buffers (the keyholder passes ``state.alloc``).
        max_gap_s: longest gap between two keys of one burst. Scanners send a key every
            1 to 20 ms; people rarely type faster than 60 ms per key.
    """

    def __init__(self, *, alloc: Alloc = _alloc, max_gap_s: float = 0.05) -> None:
        self._alloc = alloc
        self._buf = alloc(MAX_DIGITS + 1)
        self._n = 0
        self._overflow = False
        self._bad_char = False
        self._last_t: float | None = None
        self.max_gap_s = max_gap_s

    @property
    def count(self) -> int:
        """Characters buffered in the current burst."""
        return self._n

    def reset(self) -> None:
        """Wipe the buffered burst."""
        self._buf.wipe()
        self._n = 0
        self._overflow = False
        self._bad_char = False
        self._last_t = None

    def close(self) -> None:
        """Wipe and release the buffer."""
        self._buf.close()

    def feed(self, key: int, t: float) -> BurstResult:
        """Feed one key press.

        Args:
            key: the character's code point (digits 0x30..0x39; Enter is 0x0D or 0x0A).
            t: when the key arrived, in seconds (monotonic clock).

        Returns:
            The burst's status.

        Raises:
            ScannerError: on Enter, when the burst was not a share payload (wrong length,
                characters other than digits); the burst is wiped.
            QRPayloadError: on Enter, when the digits fail validation (word range,
                checksum); the burst is wiped.
        """
        gap_ok = self._last_t is None or (t - self._last_t) <= self.max_gap_s
        if not gap_ok and self._n:
            self.reset()
            if key in ENTER_KEYS:
                return BurstResult("not-scanner")
            self._last_t = t
            self._append(key)
            return BurstResult("not-scanner", self._n)
        self._last_t = t
        if key in ENTER_KEYS:
            return self._finish()
        self._append(key)
        return BurstResult("pending", self._n)

    def _append(self, key: int) -> None:
        if not 0x30 <= key <= 0x39:
            self._bad_char = True
            return
        if self._n >= MAX_DIGITS:
            self._overflow = True
            return
        with self._buf.view() as mv:
            mv[self._n] = key
        self._n += 1

    def _finish(self) -> BurstResult:
        if self._n == 0 and not self._bad_char:
            self.reset()
            return BurstResult("idle")
        try:
            if self._bad_char:
                raise ScannerError(
                    "the scanner sent characters other than digits: this is not a share QR, "
                    "or the scanner adds a prefix/suffix (configure it to send the code as is)"
                )
            if (
                self._overflow
                or self._n % DIGITS_PER_WORD
                or (self._n // DIGITS_PER_WORD not in VALID_WORD_COUNTS)
            ):
                raise ScannerError(
                    "the scanner sent an incomplete or too long code "
                    "(a share QR holds 80 or 132 digits): scan it again"
                )
            with self._buf.view(0, self._n) as mv:
                indices = payload_to_indices(mv, alloc=self._alloc)
            return BurstResult("complete", self._n // DIGITS_PER_WORD, indices)
        finally:
            self.reset()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser
            pass
