"""GF(2^8) arithmetic: the table-free multiply agrees with the field, Shamir round trips."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from core.shamir import gf256


def _slow_mul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return r


def test_mul_acc_matches_the_field_for_every_pair() -> None:
    src = bytearray(range(256))
    for c in range(256):
        acc = bytearray(256)
        gf256.mul_acc(acc, src, c)
        assert list(acc) == [_slow_mul(s, c) for s in range(256)], c


def test_public_mul_div_inverse() -> None:
    for a, b in itertools.product(range(1, 256), (1, 2, 3, 0x53, 0xCA, 255)):
        assert gf256.gf_mul(a, b) == _slow_mul(a, b)
        assert gf256.gf_div(gf256.gf_mul(a, b), b) == a


def test_known_product() -> None:
    # AES field: 0x53 * 0xCA = 0x01
    assert gf256.gf_mul(0x53, 0xCA) == 1


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=40),
    k=st.integers(1, 8),
    extra=st.integers(0, 6),
    data=st.data(),
)
def test_interpolation_recovers_any_point_from_any_k(secret: bytes, k: int, extra: int, data: st.DataObject) -> None:
    n = len(secret)
    rng = data.draw(st.randoms(use_true_random=False))
    # polynomial of degree k-1 through (255, secret) and k-1 random points
    base = [(255, bytearray(secret))] + [
        (x, bytearray(rng.randbytes(n))) for x in range(k - 1)
    ]
    xs = list(range(k - 1, k - 1 + k + extra))
    shares = []
    for x in xs:
        out = bytearray(n)
        gf256.interpolate_into(out, base, x)
        shares.append((x, out))
    subset = rng.sample(shares, k)
    out = bytearray(n)
    gf256.interpolate_into(out, subset, 255)
    assert bytes(out) == secret


def test_interpolate_at_a_known_point_copies() -> None:
    out = bytearray(3)
    gf256.interpolate_into(out, [(1, bytearray(b"abc")), (2, bytearray(b"xyz"))], 2)
    assert out == b"xyz"


def test_duplicate_x_rejected() -> None:
    import pytest

    with pytest.raises(ValueError):
        gf256.lagrange_coefficients([1, 1], 255)
