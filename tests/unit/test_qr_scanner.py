"""Keyboard-wedge scanner bursts: timing, validation, wiping."""

from __future__ import annotations

import random

import pytest
import shamir_mnemonic

from core.carriers.errors import QRPayloadError, ScannerError
from core.carriers.scanner import WedgeBurst
from core.shamir.wordlist import indices_from_mnemonic


def mnemonic(secret_len: int = 32, seed: int = 5) -> str:
    rnd = random.Random(seed)
    return shamir_mnemonic.generate_mnemonics(
        1, [(2, 3)], rnd.randbytes(secret_len), iteration_exponent=0
    )[0][0]


def digits(m: str) -> bytes:
    return "".join(f"{w:04d}" for w in shamir_mnemonic.wordlist.mnemonic_to_indices(m)).encode()


def burst(p: WedgeBurst, keys: bytes, t0: float = 100.0, gap: float = 0.004) -> list[object]:
    results = [p.feed(k, t0 + i * gap) for i, k in enumerate(keys)]
    results.append(p.feed(0x0D, t0 + len(keys) * gap))
    return results


@pytest.mark.parametrize("secret_len", [16, 32])
def test_scanner_burst_gives_the_share(secret_len: int) -> None:
    m = mnemonic(secret_len)
    p = WedgeBurst()
    res = burst(p, digits(m))
    last = res[-1]
    assert all(r.status == "pending" for r in res[:-1])  # type: ignore[attr-defined]
    assert last.status == "complete" and last.indices is not None  # type: ignore[attr-defined]
    ref = indices_from_mnemonic(m)
    with last.indices.view() as a, ref.view() as b:  # type: ignore[attr-defined]
        assert bytes(a) == bytes(b)
    assert p.count == 0


def test_slow_typing_is_not_a_scanner() -> None:
    p = WedgeBurst(max_gap_s=0.05)
    d = digits(mnemonic())
    assert p.feed(d[0], 1.0).status == "pending"
    assert p.feed(d[1], 1.02).status == "pending"
    r = p.feed(d[2], 1.3)  # a person's pace
    assert r.status == "not-scanner" and p.count == 1
    assert p.feed(0x0D, 2.0).status == "not-scanner" and p.count == 0


def test_burst_with_non_digits() -> None:
    p = WedgeBurst()
    with pytest.raises(ScannerError, match="other than digits"):
        burst(p, b"https://example.com/x")
    assert p.count == 0


@pytest.mark.parametrize("cut", [4, 10, 131])
def test_incomplete_burst(cut: int) -> None:
    p = WedgeBurst()
    with pytest.raises(ScannerError, match="incomplete or too long"):
        burst(p, digits(mnemonic())[:cut])


def test_too_long_burst() -> None:
    p = WedgeBurst()
    with pytest.raises(ScannerError, match="incomplete or too long"):
        burst(p, digits(mnemonic()) + b"0000")


@pytest.mark.parametrize("word", range(33))
def test_bad_checksum_burst(word: int) -> None:
    """Any one word changed to another valid word is caught by the RS1024 checksum.

    The old version bumped one digit unless the word's index began with "10" (to stay
    below 1024) and then sent the share unchanged: it failed for about 3% of the random
    mnemonics. Here every word becomes the next index (mod 1024), always a different,
    valid word, so the checksum is what must refuse it."""
    d = bytearray(digits(mnemonic()))
    at = 4 * word
    index = int(d[at:at + 4])
    d[at:at + 4] = b"%04d" % ((index + 1) % 1024)
    p = WedgeBurst()
    with pytest.raises(QRPayloadError, match="checksum"):
        burst(p, bytes(d))
    assert p.count == 0


def test_word_beyond_the_list_burst() -> None:
    d = bytearray(digits(mnemonic()))
    d[48:52] = b"1024"
    with pytest.raises(QRPayloadError, match="beyond the 1024-word list"):
        burst(WedgeBurst(), bytes(d))


def test_enter_alone_is_idle_and_buffer_is_wiped() -> None:
    p = WedgeBurst()
    assert p.feed(0x0D, 1.0).status == "idle"
    p.feed(0x31, 2.0)
    p.reset()
    with p._buf.view() as mv:
        assert not any(mv)
    p.close()
