"""RS1024 checksum of SLIP-39 (a Reed-Solomon code over GF(1024), distance 4).

Two implementations of the same ``polymod``:

* :func:`polymod_public` on Python ints, for public data (tests, table building);
* :func:`polymod_words` on a buffer of word indices stored as 2 bytes each (big endian),
  for secret shares. Its 30-bit state is kept as six byte-sized ints (three 10-bit
  limbs, each split into a 2-bit high and an 8-bit low part) and the generator is applied
  with masks instead of branches, so no Python int larger than 255 ever holds a
  secret-derived value and the work does not depend on the data.

The code is GF(2)-linear: ``polymod(v) = F^n(1) XOR sum_k F^(n-1-k)(v_k)`` where ``F`` is
the state update without input. An error ``e`` (XOR difference) in the word at distance
``d`` from the end changes the final state by ``F^d(e)``. That is the basis of the typo
locator in :mod:`core.shamir.typo`: the *syndrome* ``polymod(r) XOR 1`` of a received
share ``r = c XOR e`` equals the syndrome of the error alone, independent of the correct
share ``c``, so it may be handled as a plain int.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Final

__all__ = [
    "CHECKSUM_WORDS",
    "GEN",
    "create_checksum_words",
    "error_image_table",
    "polymod_public",
    "polymod_words",
    "syndrome_words",
]

CHECKSUM_WORDS: Final = 3
GEN: Final = (
    0xE0E040,
    0x1C1C080,
    0x3838100,
    0x7070200,
    0xE0E0009,
    0x1C0C2412,
    0x38086C24,
    0x3090FC48,
    0x21B1F890,
    0x3F3F120,
)


def polymod_public(values: Iterable[int]) -> int:
    """The RS1024 polymod of PUBLIC values (ints 0..1023)."""
    chk = 1
    for v in values:
        b = chk >> 20
        chk = (chk & 0xFFFFF) << 10 ^ v
        for i in range(10):
            if (b >> i) & 1:
                chk ^= GEN[i]
    return chk


def _split30(v: int) -> tuple[int, int, int, int, int, int]:
    a, b, c = (v >> 20) & 0x3FF, (v >> 10) & 0x3FF, v & 0x3FF
    return (a >> 8, a & 0xFF, b >> 8, b & 0xFF, c >> 8, c & 0xFF)


_GEN6: Final = tuple(_split30(g) for g in GEN)


class _State:
    """30-bit polymod state as six byte-sized ints (hi/lo of three 10-bit limbs)."""

    __slots__ = ("ah", "al", "bh", "bl", "ch", "cl")

    def __init__(self) -> None:
        self.ah = self.al = self.bh = self.bl = self.ch = 0
        self.cl = 1

    def step(self, vh: int, vl: int) -> None:
        th, tl = self.ah, self.al
        ah, al, bh, bl, ch, cl = self.bh, self.bl, self.ch, self.cl, vh, vl
        for i in range(10):
            m = -((tl >> i) & 1) if i < 8 else -((th >> (i - 8)) & 1)
            g = _GEN6[i]
            ah ^= g[0] & m
            al ^= g[1] & m
            bh ^= g[2] & m
            bl ^= g[3] & m
            ch ^= g[4] & m
            cl ^= g[5] & m
        self.ah, self.al, self.bh, self.bl, self.ch, self.cl = ah, al, bh, bl, ch, cl

    def clear(self) -> None:
        self.ah = self.al = self.bh = self.bl = self.ch = self.cl = 0


def _run(custom: bytes, words: memoryview | bytearray, tail_zeros: int) -> _State:
    st = _State()
    for c in custom:  # public customization string
        st.step(0, c)
    for k in range(0, len(words), 2):
        st.step(words[k], words[k + 1])
    for _ in range(tail_zeros):
        st.step(0, 0)
    return st


def polymod_words(custom: bytes, words: memoryview | bytearray) -> bool:
    """True if the checksum of ``words`` (2 bytes per index, checksum included) verifies."""
    st = _run(custom, words, 0)
    ok = (st.ah | st.al | st.bh | st.bl | st.ch) == 0 and st.cl == 1
    st.clear()
    return ok


def create_checksum_words(custom: bytes, data: memoryview | bytearray, out: memoryview) -> None:
    """Write the 3 checksum words (6 bytes) for ``data`` (2 bytes per index) into ``out``."""
    st = _run(custom, data, CHECKSUM_WORDS)
    st.cl ^= 1
    out[0], out[1], out[2], out[3], out[4], out[5] = st.ah, st.al, st.bh, st.bl, st.ch, st.cl
    st.clear()


def syndrome_words(custom: bytes, words: memoryview | bytearray) -> int:
    """``polymod XOR 1`` as an int: 0 for a valid share, else a function of the error only."""
    st = _run(custom, words, 0)
    v = (
        (((st.ah << 8) | st.al) << 20) | (((st.bh << 8) | st.bl) << 10) | ((st.ch << 8) | st.cl)
    ) ^ 1
    st.clear()
    return v


def _step_linear(chk: int) -> int:
    """The input-free state update ``F`` (GF(2)-linear)."""
    b = chk >> 20
    chk = (chk & 0xFFFFF) << 10
    for i in range(10):
        if (b >> i) & 1:
            chk ^= GEN[i]
    return chk


@cache
def _basis(distance: int) -> tuple[int, ...]:
    """``F^distance(2^bit)`` for bit = 0..9 (public)."""
    if distance == 0:
        return tuple(1 << bit for bit in range(10))
    return tuple(_step_linear(v) for v in _basis(distance - 1))


@cache
def error_image_table(distance: int) -> dict[int, int]:
    """Map syndrome -> error value for a single error at ``distance`` words from the end.

    ``F^d`` is injective on 10-bit values (RS1024 detects every single-word error), so the
    map is well defined; 1023 entries, built once per distance with XORs of basis images.
    """
    basis = _basis(distance)
    images = [0] * 1024
    table: dict[int, int] = {}
    for e in range(1, 1024):
        low = (e & -e).bit_length() - 1
        images[e] = images[e & (e - 1)] ^ basis[low]
        table[images[e]] = e
    return table
