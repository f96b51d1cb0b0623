"""Interoperability with the SLIP-39 reference (``shamir-mnemonic``), both ways.

Hypothesis draws random policies (1..16 groups, thresholds, extendable flag, 128/256-bit
secrets, passphrases, iteration exponent 0 to keep PBKDF2 cheap). The reference package is
a test dependency only; ``core`` never imports it.
"""

from __future__ import annotations

import random

import shamir_mnemonic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.secmem import SecretBuffer
from core.shamir import slip39
from core.shamir.wordlist import indices_from_mnemonic, mnemonic_from_indices


@st.composite
def policies(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    group_count = draw(st.integers(1, 16))
    groups = []
    for _ in range(group_count):
        n = draw(st.integers(1, 16))
        m = draw(st.integers(2, n)) if n > 1 else 1
        groups.append((m, n))
    return draw(st.integers(1, group_count)), groups


passphrases = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
secret_bytes = st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def _pick(groups: list[list[str]], group_threshold: int, policy: list[tuple[int, int]], rnd: random.Random) -> list[str]:
    chosen_groups = rnd.sample(range(len(groups)), group_threshold)
    out: list[str] = []
    for g in chosen_groups:
        out += rnd.sample(groups[g], policy[g][0])
    rnd.shuffle(out)
    return out


def _buf(data: bytes) -> SecretBuffer:
    buf = SecretBuffer(max(1, len(data)))
    with buf.view() as mv:
        mv[: len(data)] = data
    return buf


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), secret=secret_bytes, passphrase=passphrases, extendable=st.booleans(), seed=st.integers(0, 2**32))
def test_ours_recovered_by_reference(
    policy: tuple[int, list[tuple[int, int]]], secret: bytes, passphrase: str, extendable: bool, seed: int
) -> None:
    gt, groups = policy
    pw = passphrase.encode()
    with _buf(secret) as master, master.view() as mmv, _buf(pw) as pbuf, pbuf.view() as pmv:
        shares = slip39.split_master(
            mmv, group_threshold=gt, groups=groups, passphrase=pmv[: len(pw)],
            extendable=extendable, iteration_exponent=0,
        )  # fmt: skip
    mnemonics: list[list[str]] = []
    for group in shares:
        row = []
        for s in group:
            with s.value, slip39.encode_share(s) as idx, idx.view() as mv:
                row.append(mnemonic_from_indices(mv))
        mnemonics.append(row)
    subset = _pick(mnemonics, gt, groups, random.Random(seed))
    assert shamir_mnemonic.combine_mnemonics(subset, pw) == secret


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), secret=secret_bytes, passphrase=passphrases, extendable=st.booleans(), seed=st.integers(0, 2**32))
def test_reference_recovered_by_ours(
    policy: tuple[int, list[tuple[int, int]]], secret: bytes, passphrase: str, extendable: bool, seed: int
) -> None:
    gt, groups = policy
    pw = passphrase.encode()
    mnemonics = shamir_mnemonic.generate_mnemonics(
        gt, groups, secret, pw, extendable=extendable, iteration_exponent=0
    )
    subset = _pick(mnemonics, gt, groups, random.Random(seed))
    shares = []
    try:
        for m in subset:
            with indices_from_mnemonic(m) as idx, idx.view() as mv:
                shares.append(slip39.decode_share(mv))
        with _buf(pw) as pbuf, pbuf.view() as pmv:
            with slip39.combine(shares, pmv[: len(pw)]) as master, master.view() as mv:
                assert mv.tobytes() == secret
    finally:
        for s in shares:
            s.close()


def test_sixteen_groups_of_sixteen_both_ways() -> None:
    """The extreme policy: 16 groups of 16 (thresholds 16), both directions."""
    secret = bytes(range(32))
    groups = [(16, 16)] * 16
    with _buf(secret) as master, master.view() as mmv:
        shares = slip39.split_master(mmv, group_threshold=16, groups=groups, iteration_exponent=0)
    words = []
    for group in shares:
        row = []
        for s in group:
            with s.value, slip39.encode_share(s) as idx, idx.view() as mv:
                row.append(mnemonic_from_indices(mv))
        words.append(row)
    assert shamir_mnemonic.combine_mnemonics([w for row in words for w in row]) == secret
