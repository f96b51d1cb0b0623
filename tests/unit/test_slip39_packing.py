"""The generated bit packing (value bytes <-> 10-bit words) against a bit-by-bit reference."""

from __future__ import annotations

import random

import pytest

from core.shamir import slip39

BASE = 8  # the value words start after the 4 metadata words


def _layout(n: int) -> tuple[int, int]:
    value_words = -(-n * 8 // 10)
    return value_words, value_words * 10 - n * 8


def _reference_words(value: bytes, pad: int) -> bytes:
    bits = "0" * pad + "".join(f"{b:08b}" for b in value)
    out = bytearray()
    for j in range(0, len(bits), 10):
        w = int(bits[j : j + 10], 2)
        out += bytes((w >> 8, w & 0xFF))
    return bytes(out)


@pytest.mark.parametrize("n", range(16, 66, 2))
def test_packing_matches_the_bitwise_reference_both_ways(n: int) -> None:
    rnd = random.Random(n)
    value_words, pad = _layout(n)
    for value in (bytes(n), b"\xff" * n, *(rnd.randbytes(n) for _ in range(20))):
        words = bytearray(BASE + 2 * value_words)
        slip39._value_to_words(memoryview(value), memoryview(words), BASE, value_words, pad)
        assert bytes(words[BASE:]) == _reference_words(value, pad)
        assert bytes(words[:BASE]) == bytes(BASE)
        back = bytearray(n)
        padbits = slip39._words_to_value(words, BASE, value_words, pad, memoryview(back))
        assert padbits == 0
        assert bytes(back) == value


@pytest.mark.parametrize("n", [16, 32])
def test_nonzero_padding_is_reported(n: int) -> None:
    value_words, pad = _layout(n)
    words = bytearray(BASE + 2 * value_words)
    for bit in range(pad):  # each padding bit alone
        stream_bit = bit  # padding is the first `pad` bits of the first value word
        k, pos = (BASE, 1 - stream_bit) if stream_bit < 2 else (BASE + 1, 9 - stream_bit)
        words[k] = 1 << pos
        assert slip39._words_to_value(words, BASE, value_words, pad, memoryview(bytearray(n)))
        words[k] = 0
