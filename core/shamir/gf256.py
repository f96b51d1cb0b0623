"""GF(2^8) arithmetic for Shamir's scheme, on byte buffers in locked memory.

Field: GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) (0x11B), as SLIP-39 specifies.

Design choice (why no tables on secrets): in Shamir interpolation every product is
*secret byte* x *public constant* (the Lagrange basis value depends only on the public
x-coordinates). A product by a public constant ``c`` is GF(2)-linear in the secret byte
``s``: ``s*c = XOR over bits i of s of (c * x^i)``. We precompute the eight public values
``c * x^i`` (:data:`_XPOW`, indexed by the public ``c``) and multiply each by the bit
``s >> i & 1`` (0 or 1: the integer product is 0 or the constant), so the work and the
memory accesses do not depend on ``s``: no lookup table is ever indexed by a secret byte
(log/exp tables would leak through the data cache). Log/exp tables are used only on public
x-coordinates. Every intermediate is a small int in 0..255, which CPython caches, so no
heap object carries secret bits.

Speed (the 16 x 16 split + recover is ~34 interpolations of 16 points): outputs that share
the same points (the missing shares of a split; the secret and digest at recovery) are
computed two at a time, so the bits of each secret byte are extracted once per pair, and
the loop runs byte-outer so each sum stays in a local and each output byte is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, TypeAlias

__all__ = [
    "DIGEST_INDEX",
    "SECRET_INDEX",
    "gf_div",
    "gf_mul",
    "interpolate_into",
    "interpolate_many",
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


# Public: indexed only by public constants (Lagrange values), never by a secret byte.
_XPOW: Final = tuple(_xtime_powers(c) for c in range(256))


def mul_acc(acc: memoryview | bytearray, src: memoryview | bytearray, c: int) -> None:
    """``acc[i] ^= src[i] * c`` for every byte, with ``c`` public and ``src`` secret.

    Constant-pattern: eight bit-times-constant products XORed per byte, no secret-indexed
    table, no branch on secret data.
    """
    if len(acc) != len(src):
        raise ValueError("buffers of different lengths")
    c0, c1, c2, c3, c4, c5, c6, c7 = _XPOW[c]
    for i in range(len(src)):
        s = src[i]
        acc[i] ^= (
            ((s & 1) * c0)
            ^ (((s >> 1) & 1) * c1)
            ^ (((s >> 2) & 1) * c2)
            ^ (((s >> 3) & 1) * c3)
            ^ (((s >> 4) & 1) * c4)
            ^ (((s >> 5) & 1) * c5)
            ^ (((s >> 6) & 1) * c6)
            ^ ((s >> 7) * c7)
        )
    s = 0


_Buf: TypeAlias = memoryview | bytearray


def _combine_one(out: _Buf, ys: Sequence[_Buf], cs: Sequence[int]) -> None:
    """``out[i] = XOR_j ys[j][i] * cs[j]`` (``out`` overwritten).

    Byte-outer loop: the sum stays in a local (a cached small int) and each output byte is
    written once.
    """
    rows = [(y, _XPOW[c]) for y, c in zip(ys, cs, strict=True)]
    for i in range(len(out)):
        acc = 0
        for y, (p0, p1, p2, p3, p4, p5, p6, p7) in rows:
            s = y[i]
            acc ^= (
                ((s & 1) * p0)
                ^ (((s >> 1) & 1) * p1)
                ^ (((s >> 2) & 1) * p2)
                ^ (((s >> 3) & 1) * p3)
                ^ (((s >> 4) & 1) * p4)
                ^ (((s >> 5) & 1) * p5)
                ^ (((s >> 6) & 1) * p6)
                ^ ((s >> 7) * p7)
            )
        out[i] = acc
    acc = s = 0


def _combine_two(
    out0: _Buf, out1: _Buf, ys: Sequence[_Buf], cs0: Sequence[int], cs1: Sequence[int]
) -> None:
    """Two outputs from the same points: the bits of each secret byte are taken once."""
    rows = [(y, _XPOW[c], _XPOW[d]) for y, c, d in zip(ys, cs0, cs1, strict=True)]
    for i in range(len(out0)):
        a0 = a1 = 0
        for y, (p0, p1, p2, p3, p4, p5, p6, p7), (q0, q1, q2, q3, q4, q5, q6, q7) in rows:
            s = y[i]
            b0 = s & 1
            b1 = (s >> 1) & 1
            b2 = (s >> 2) & 1
            b3 = (s >> 3) & 1
            b4 = (s >> 4) & 1
            b5 = (s >> 5) & 1
            b6 = (s >> 6) & 1
            b7 = s >> 7
            a0 ^= (
                (b0 * p0) ^ (b1 * p1) ^ (b2 * p2) ^ (b3 * p3)
                ^ (b4 * p4) ^ (b5 * p5) ^ (b6 * p6) ^ (b7 * p7)
            )  # fmt: skip
            a1 ^= (
                (b0 * q0) ^ (b1 * q1) ^ (b2 * q2) ^ (b3 * q3)
                ^ (b4 * q4) ^ (b5 * q5) ^ (b6 * q6) ^ (b7 * q7)
            )  # fmt: skip
        out0[i] = a0
        out1[i] = a1
    a0 = a1 = s = b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0


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

    ``out`` is overwritten; y-values are secret buffers of equal length.
    """
    interpolate_many([(x, out)], points)


def interpolate_many(
    outs: Sequence[tuple[int, memoryview | bytearray]],
    points: Sequence[tuple[int, memoryview | bytearray]],
) -> None:
    """Write ``f(x)`` into ``out`` for every ``(x, out)`` of ``outs`` (see :func:`interpolate_into`).

    Outputs are computed two at a time, sharing the bit masks of each secret byte.
    """
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    lengths = {len(y) for y in ys}
    pending: list[tuple[memoryview | bytearray, list[int]]] = []
    for x, out in outs:
        if lengths != {len(out)}:
            raise ValueError("all share values must have the same length")
        if x in xs:  # the point itself: a copy (memoryview slice assignment, no bytes)
            out[:] = ys[xs.index(x)]
        else:
            pending.append((out, lagrange_coefficients(xs, x)))
    for k in range(0, len(pending) - 1, 2):
        (o0, c0), (o1, c1) = pending[k], pending[k + 1]
        _combine_two(o0, o1, ys, c0, c1)
    if len(pending) % 2:
        o, c = pending[-1]
        _combine_one(o, ys, c)
