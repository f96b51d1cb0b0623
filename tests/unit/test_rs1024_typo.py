"""RS1024: secret-safe polymod equals the public one; prefix entry; locating a wrong word.

The location test measures, over all 33 positions of sample 256-bit shares (and all 20
of 128-bit ones), how many single-word errors are located with exactly one candidate, and
asserts 100% (RS1024 has distance 4, so two different single substitutions cannot both
give a valid share). The rate is printed (``pytest -s``) and timed in ``make bench``.
"""

from __future__ import annotations

import random

import pytest
import shamir_mnemonic

from core.shamir import rs1024, slip39, typo
from core.shamir.wordlist import (
    WORDS,
    indices_from_mnemonic,
    lookup_typed,
    mnemonic_from_indices,
    nearest_words,
    word_index,
)


def _sample_shares() -> list[str]:
    rnd = random.Random(7)
    out = []
    for nbytes, ext in ((32, True), (32, False), (16, True), (16, False)):
        groups = shamir_mnemonic.generate_mnemonics(
            1, [(3, 5)], rnd.randbytes(nbytes), extendable=ext, iteration_exponent=0
        )
        out += groups[0][:2]
    return out


SAMPLES = _sample_shares()


@pytest.mark.parametrize("mnemonic", SAMPLES)
def test_secret_polymod_equals_public(mnemonic: str) -> None:
    idx = [word_index(w) for w in mnemonic.split()]
    ext = (idx[1] >> 4) & 1
    custom = slip39.customization(bool(ext))
    with indices_from_mnemonic(mnemonic) as buf, buf.view() as mv:
        assert rs1024.polymod_words(custom, mv)
        assert rs1024.syndrome_words(custom, mv) == 0
        mv[9] ^= 1
        assert not rs1024.polymod_words(custom, mv)
        assert rs1024.syndrome_words(custom, mv) == rs1024.polymod_public(list(custom) + idx[:4] + [idx[4] ^ 1] + idx[5:]) ^ 1


def test_prefix_completion() -> None:
    assert lookup_typed(bytearray(b"acad")) .index == word_index("academic")
    assert lookup_typed(bytearray(b"ACADEMIC")).index == word_index("academic")
    assert lookup_typed(bytearray(b"acade")).status == "accepted"
    assert lookup_typed(bytearray(b"aca")).status == "ambiguous"
    assert lookup_typed(bytearray(b"acadx")).status == "unknown"
    assert lookup_typed(bytearray(b"")).status == "unknown"
    # every word is completed from its first 4 letters
    for i, w in enumerate(WORDS):
        assert lookup_typed(bytearray(w[:4].encode())).index == i


def test_unknown_word_gets_nearest_words() -> None:
    assert lookup_typed(bytearray(b"acadenic")).status == "unknown"
    assert "academic" in nearest_words(bytearray(b"acadenic"))
    assert nearest_words(bytearray(b"scholr"))[0] == "scholar"
    assert "fridge" in nearest_words(bytearray(b"firdge"))  # transposition


def test_valid_share_has_no_candidates() -> None:
    with indices_from_mnemonic(SAMPLES[0]) as buf, buf.view() as mv:
        assert typo.locate_wrong_word(mv) == []


def test_every_single_word_error_is_located_exactly() -> None:
    """Over every position of the sample shares, substitute random wrong words."""
    rnd = random.Random(1)
    total = exact = 0
    for mnemonic in SAMPLES:
        words = mnemonic.split()
        for pos in range(len(words)):
            for _ in range(12):
                wrong = rnd.choice([w for w in rnd.sample(WORDS, 3) if w != words[pos]])
                typed = words.copy()
                typed[pos] = wrong
                with indices_from_mnemonic(" ".join(typed)) as buf, buf.view() as mv:
                    cands = typo.locate_wrong_word(mv)
                    before = mv.tobytes()
                    assert mv.tobytes() == before  # never corrected silently
                total += 1
                if len(cands) == 1 and len(cands[0].words) == 1:
                    exact += 1
                    assert cands[0].position == pos
                    assert cands[0].words == (words[pos],)
    rate = exact / total
    print(f"\nsingle-word errors located with exactly one candidate: {exact}/{total} = {rate:.1%}")
    assert rate == 1.0


def test_exhaustive_one_share_all_substitutions() -> None:
    """One 33-word share: every position x every one of the 1023 wrong words."""
    mnemonic = SAMPLES[0]
    words = mnemonic.split()
    exact = total = 0
    with indices_from_mnemonic(mnemonic) as buf, buf.view() as mv:
        for pos in range(len(words)):
            hi, lo = mv[2 * pos], mv[2 * pos + 1]
            for e in range(1, 1024):
                mv[2 * pos] = hi ^ (e >> 8)
                mv[2 * pos + 1] = lo ^ (e & 0xFF)
                cands = typo.locate_wrong_word_raw(mv)
                total += 1
                exact += cands == [(pos, hi, lo)]
            mv[2 * pos], mv[2 * pos + 1] = hi, lo
    print(f"\nexhaustive single substitutions located exactly: {exact}/{total}")
    assert exact == total == 33 * 1023


def test_two_wrong_words_are_not_silently_fixed() -> None:
    """With two wrong words a candidate may appear, but never the original share."""
    rnd = random.Random(3)
    for mnemonic in SAMPLES[:2]:
        words = mnemonic.split()
        for _ in range(30):
            a, b = rnd.sample(range(len(words)), 2)
            typed = words.copy()
            typed[a] = rnd.choice([w for w in WORDS if w != words[a]])
            typed[b] = rnd.choice([w for w in WORDS if w != words[b]])
            with indices_from_mnemonic(" ".join(typed)) as buf, buf.view() as mv:
                for c in typo.locate_wrong_word(mv):
                    fixed = typed.copy()
                    fixed[c.position] = c.words[0]
                    assert fixed != words


def test_reencoded_share_words_stable() -> None:
    with indices_from_mnemonic(SAMPLES[0]) as buf, buf.view() as mv:
        assert mnemonic_from_indices(mv) == SAMPLES[0]
