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
from functools import cache, lru_cache
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


def _limbs(v: int) -> tuple[int, int, int, int]:
    """Split a 30-bit value into (H, a, b, c): H packs the three 2-bit high parts."""
    a, b, c = (v >> 20) & 0x3FF, (v >> 10) & 0x3FF, v & 0x3FF
    return ((a >> 8) << 4) | ((b >> 8) << 2) | (c >> 8), a & 0xFF, b & 0xFF, c & 0xFF


_G: Final = tuple(_limbs(g) for g in GEN)
(_G0H, _G0A, _G0B, _G0C), (_G1H, _G1A, _G1B, _G1C), (_G2H, _G2A, _G2B, _G2C) = _G[0], _G[1], _G[2]
(_G3H, _G3A, _G3B, _G3C), (_G4H, _G4A, _G4B, _G4C), (_G5H, _G5A, _G5B, _G5C) = _G[3], _G[4], _G[5]
(_G6H, _G6A, _G6B, _G6C), (_G7H, _G7A, _G7B, _G7C), (_G8H, _G8A, _G8B, _G8C) = _G[6], _G[7], _G[8]
(_G9H, _G9A, _G9B, _G9C) = _G[9]

State = tuple[int, int, int, int]
_INITIAL: Final[State] = (0, 0, 0, 1)


def _steps(st: State, words: memoryview | bytearray | bytes, start: int, stop: int) -> State:
    """Run the polymod over ``words[start:stop]`` (2 bytes per word) from state ``st``.

    The state is four byte-sized ints ``(H, a, b, c)``: ``a, b, c`` are the low 8 bits of
    the three 10-bit limbs and ``H`` packs their 2-bit high parts (``a``'s in bits 4-5).
    The generator is applied with masks ``-(bit)`` (0 or -1): no branch, no table indexed
    by the data, no int above 255. Unrolled because this is the hot loop.
    """
    h, a, b, c = st
    for k in range(start, stop, 2):
        t = a
        th = h >> 4
        h = ((h & 0x0F) << 2) | words[k]
        a, b, c = b, c, words[k + 1]
        m = -(t & 1)
        h ^= _G0H & m
        a ^= _G0A & m
        b ^= _G0B & m
        c ^= _G0C & m
        m = -((t >> 1) & 1)
        h ^= _G1H & m
        a ^= _G1A & m
        b ^= _G1B & m
        c ^= _G1C & m
        m = -((t >> 2) & 1)
        h ^= _G2H & m
        a ^= _G2A & m
        b ^= _G2B & m
        c ^= _G2C & m
        m = -((t >> 3) & 1)
        h ^= _G3H & m
        a ^= _G3A & m
        b ^= _G3B & m
        c ^= _G3C & m
        m = -((t >> 4) & 1)
        h ^= _G4H & m
        a ^= _G4A & m
        b ^= _G4B & m
        c ^= _G4C & m
        m = -((t >> 5) & 1)
        h ^= _G5H & m
        a ^= _G5A & m
        b ^= _G5B & m
        c ^= _G5C & m
        m = -((t >> 6) & 1)
        h ^= _G6H & m
        a ^= _G6A & m
        b ^= _G6B & m
        c ^= _G6C & m
        m = -((t >> 7) & 1)
        h ^= _G7H & m
        a ^= _G7A & m
        b ^= _G7B & m
        c ^= _G7C & m
        m = -(th & 1)
        h ^= _G8H & m
        a ^= _G8A & m
        b ^= _G8B & m
        c ^= _G8C & m
        m = -((th >> 1) & 1)
        h ^= _G9H & m
        a ^= _G9A & m
        b ^= _G9B & m
        c ^= _G9C & m
    t = th = m = 0
    return h, a, b, c


@cache
def _custom_state(custom: bytes) -> State:
    """Public state after the customization string."""
    return _steps(_INITIAL, bytes(x for ch in custom for x in (0, ch)), 0, 2 * len(custom))


_ZEROS: Final = bytes(2 * CHECKSUM_WORDS)


@lru_cache(maxsize=1024)
def _prefix_state(custom: bytes, metadata: bytes) -> State:
    """Public state after the customization string and the 4 public metadata words."""
    return _steps(_custom_state(custom), metadata, 0, len(metadata))


def _run(custom: bytes, words: memoryview | bytearray, tail_zeros: int) -> State:
    # The first 4 words (identifier, flags, group/member numbers) are public metadata:
    # their part of the polymod is computed once per set and cached.
    if len(words) >= 8:
        st = _steps(_prefix_state(custom, bytes(words[:8])), words, 8, len(words))
    else:
        st = _steps(_custom_state(custom), words, 0, len(words))
    if tail_zeros:
        st = _steps(st, _ZEROS, 0, 2 * tail_zeros)
    return st


def polymod_words(custom: bytes, words: memoryview | bytearray) -> bool:
    """True if the checksum of ``words`` (2 bytes per index, checksum included) verifies."""
    h, a, b, c = _run(custom, words, 0)
    return (h | a | b) == 0 and c == 1


def create_checksum_words(custom: bytes, data: memoryview | bytearray, out: memoryview) -> None:
    """Write the 3 checksum words (6 bytes) for ``data`` (2 bytes per index) into ``out``."""
    h, a, b, c = _run(custom, data, CHECKSUM_WORDS)
    out[0], out[1], out[2], out[3], out[4], out[5] = h >> 4, a, (h >> 2) & 3, b, h & 3, c ^ 1
    h = a = b = c = 0


def syndrome_words(custom: bytes, words: memoryview | bytearray) -> int:
    """``polymod XOR 1`` as an int: 0 for a valid share, else a function of the error only."""
    h, a, b, c = _run(custom, words, 0)
    return (
        (((h >> 4) << 8 | a) << 20) | ((((h >> 2) & 3) << 8 | b) << 10) | ((h & 3) << 8 | c)
    ) ^ 1


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
