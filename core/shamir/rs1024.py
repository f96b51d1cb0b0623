"""RS1024 checksum of SLIP-39 (a Reed-Solomon code over GF(1024), distance 4).

Two implementations of the same ``polymod``:

* :func:`polymod_public` on Python ints, for public data (tests, table building);
* :func:`polymod_words` on a buffer of word indices stored as 2 bytes each (big endian),
  for secret shares. Its 30-bit state is kept as four byte-sized ints (the 8-bit low
  parts of the three 10-bit limbs, and their three 2-bit high parts packed in one) and
  the generator is applied by multiplying public constants with state bits (0 or 1)
  instead of branching, so no Python int larger than 255 ever holds a secret-derived
  value and the work does not depend on the data.

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


State = tuple[int, int, int, int]
_INITIAL: Final[State] = (0, 0, 0, 1)


def _steps(st: State, words: memoryview | bytearray | bytes, start: int, stop: int) -> State:
    """Run the polymod over ``words[start:stop]`` (2 bytes per word) from state ``st``.

    The state is four byte-sized ints ``(H, a, b, c)``: ``a, b, c`` are the low 8 bits of
    the three 10-bit limbs and ``H`` packs their 2-bit high parts (``a``'s in bits 4-5).
    The generator is applied with the bits ``m_i`` (0 or 1) of the outgoing top limb as
    multipliers of the public generator limbs (``C * m_i`` is 0 or ``C``): no branch, no
    table indexed by the data, no int above 255. This is the hot loop, so it is unrolled
    with the limbs of ``GEN`` written as literals (zero terms left out) and each new limb
    computed as one XOR expression; ``test_rs1024_typo`` checks it against
    :func:`polymod_public`, and :func:`_check_literals` checks every literal against
    ``GEN`` at import.
    """
    h, a, b, c = st
    for k in range(start, stop, 2):
        t = a
        m0 = a & 1
        m1 = (a >> 1) & 1
        m2 = (a >> 2) & 1
        m3 = (a >> 3) & 1
        m4 = (a >> 4) & 1
        m5 = (a >> 5) & 1
        m6 = (a >> 6) & 1
        m7 = a >> 7
        m8 = (h >> 4) & 1
        m9 = h >> 5
        h = (
            (((h & 0x0F) << 2) | words[k])
            ^ m2 ^ (0x06 * m3) ^ (0x0c * m4) ^ (0x1c * m5)
            ^ (0x38 * m6) ^ (0x30 * m7) ^ (0x20 * m8) ^ m9
        )
        # a-limb terms of bits 0..6 are 0x0e << i (no reduction): a carry-less a * 0x0e
        # as three masked shifts (masks before shifts: every value stays <= 255)
        a = (
            b
            ^ ((a & 0x7F) << 1) ^ ((a & 0x3F) << 2) ^ ((a & 0x1F) << 3)
            ^ (0x09 * m7) ^ (0x1b * m8) ^ (0x3f * m9)
        )
        b = (
            c
            ^ (0x38 * m0) ^ (0x70 * m1) ^ (0xe0 * m2) ^ (0xc0 * m3)
            ^ (0x80 * m4) ^ (0x09 * m5) ^ (0x1b * m6) ^ (0x3f * m7)
            ^ (0x7e * m8) ^ (0xfc * m9)
        )
        # c-limb: bits 0..1 give 0x40 << i, bits 4..7 give 0x09 << (i - 4) = u ^ u << 3
        c = (
            words[k + 1]
            ^ ((t & 3) << 6) ^ (t >> 4) ^ ((t >> 4) << 3)
            ^ (0x90 * m8) ^ (0x20 * m9)
        )
    t = m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = m8 = m9 = 0
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


def _check_literals() -> None:
    """Each bit of the outgoing top limb, alone, must add exactly ``GEN[bit]`` (public)."""
    for bit in range(10):
        top = 1 << bit
        st = ((top >> 8) << 4, top & 0xFF, 0, 0)
        if _steps(st, _ZEROS, 0, 2) != _limbs(_step_linear(top << 20)):
            raise RuntimeError(f"rs1024: unrolled generator literal for bit {bit} is wrong")


_check_literals()
