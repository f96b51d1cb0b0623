"""GF(2^8) arithmetic for Shamir's scheme, on byte buffers in locked memory.

Field: GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) (0x11B), as SLIP-39 specifies.

Design choice (why no tables on secrets): in Shamir interpolation every product is
*secret byte* x *public constant* (the Lagrange basis value depends only on the public
x-coordinates). A product by a public constant ``c`` is GF(2)-linear in the secret byte
``s``: ``s*c = XOR over bits i of s of (c * x^i)``. We precompute the eight public values
``c * x^i`` and combine them with masks ``-(s >> i & 1)`` (0 or -1), so the work and the
memory accesses do not depend on ``s``: no lookup table is ever indexed by a secret byte
(log/exp tables would leak through the data cache). Log/exp tables are used only on public
x-coordinates. Every intermediate is a small int in 0..255 or -1, which CPython caches, so
no heap object carries secret bits. Throughput (~1-2 us per byte) is irrelevant next to
PBKDF2, which dominates SLIP-39.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

__all__ = [
    "DIGEST_INDEX",
    "SECRET_INDEX",
    "gf_div",
    "gf_mul",
    "interpolate_into",
    "lagrange_coefficients",
    "mul_acc",
]

SECRET_INDEX: Final = 255
DIGEST_INDEX: Final = 254


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 255
    log = [0] * 256
    poly = 1
    for i in range(255):
        exp[i] = poly
        log[poly] = i
        poly = (poly << 1) ^ poly  # multiply by the generator x + 1
        if poly & 0x100:
            poly ^= 0x11B
    return exp, log


# Public tables: indexed only by public x-coordinates and public Lagrange values.
_EXP, _LOG = _tables()


def gf_mul(a: int, b: int) -> int:
    """Multiply two PUBLIC field elements (table based; never call with secrets)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[(_LOG[a] + _LOG[b]) % 255]


def gf_div(a: int, b: int) -> int:
    """Divide two PUBLIC field elements."""
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def _xtime_powers(c: int) -> tuple[int, int, int, int, int, int, int, int]:
    """``c * x^i`` for i = 0..7 (public)."""
    out = []
    v = c
    for _ in range(8):
        out.append(v)
        v <<= 1
        if v & 0x100:
            v ^= 0x11B
    return (out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7])


def mul_acc(acc: memoryview | bytearray, src: memoryview | bytearray, c: int) -> None:
    """``acc[i] ^= src[i] * c`` for every byte, with ``c`` public and ``src`` secret.

    Constant-pattern: eight masked XORs per byte, no secret-indexed table, no branch on
    secret data.
    """
    if len(acc) != len(src):
        raise ValueError("buffers of different lengths")
    c0, c1, c2, c3, c4, c5, c6, c7 = _xtime_powers(c)
    for i in range(len(src)):
        s = src[i]
        acc[i] ^= (
            (-(s & 1) & c0)
            ^ (-((s >> 1) & 1) & c1)
            ^ (-((s >> 2) & 1) & c2)
            ^ (-((s >> 3) & 1) & c3)
            ^ (-((s >> 4) & 1) & c4)
            ^ (-((s >> 5) & 1) & c5)
            ^ (-((s >> 6) & 1) & c6)
            ^ (-((s >> 7) & 1) & c7)
        )
    s = 0


def lagrange_coefficients(xs: Sequence[int], x: int) -> list[int]:
    """Lagrange basis values ``L_j(x)`` for the public points ``xs`` (all distinct).

    In characteristic 2, subtraction is XOR: ``L_j(x) = prod_{m != j} (x ^ x_m) / (x_j ^ x_m)``.
    Cached: the inputs are public share indices.
    """
    return list(_lagrange(tuple(xs), x))


@lru_cache(maxsize=4096)
def _lagrange(xs: tuple[int, ...], x: int) -> tuple[int, ...]:
    if len(set(xs)) != len(xs):
        raise ValueError("share indices must be unique")
    coeffs = []
    for j, xj in enumerate(xs):
        num = 1
        den = 1
        for m, xm in enumerate(xs):
            if m != j:
                num = gf_mul(num, x ^ xm)
                den = gf_mul(den, xj ^ xm)
        coeffs.append(gf_div(num, den))
    return tuple(coeffs)


def interpolate_into(
    out: memoryview | bytearray,
    points: Sequence[tuple[int, memoryview | bytearray]],
    x: int,
) -> None:
    """Write ``f(x)`` into ``out``, where ``f`` passes through ``points`` (x_j, y_j).

    ``out`` is overwritten (first zeroed); y-values are secret buffers of equal length.
    """
    xs = [p[0] for p in points]
    if any(len(p[1]) != len(out) for p in points):
        raise ValueError("all share values must have the same length")
    for i in range(len(out)):
        out[i] = 0
    for xj, yj in points:
        if xj == x:  # the point itself: a copy (memoryview slice assignment, no bytes)
            out[:] = yj
            return
    for (_, yj), c in zip(points, lagrange_coefficients(xs, x), strict=True):
        mul_acc(out, yj, c)
