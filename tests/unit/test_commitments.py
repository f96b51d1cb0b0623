"""Per-share commitments, the genesis self-test, and the share display."""

from __future__ import annotations

import json
import os

import pytest
import shamir_mnemonic

from core.secmem import SecretBuffer
from core.shamir import genesis, slip39
from core.shamir.commitments import (
    CommitmentError,
    ShareCommitment,
    check_against_manifest,
    commit_share,
)
from core.shamir.display import CLEAR, show_share
from core.shamir.recovery import RecoveryState
from core.shamir.wordlist import mnemonic_from_indices


@pytest.fixture()
def master() -> SecretBuffer:
    buf = SecretBuffer(32)
    buf.fill_random()
    return buf


def _genesis(master: SecretBuffer, gt: int = 1, groups: tuple[tuple[int, int], ...] = ((3, 5),)) -> genesis.GenesisResult:
    with master.view() as mv:
        return genesis.genesis_split(mv, genesis.GenesisPolicy(gt, groups, iteration_exponent=0))


def test_commitment_checks_one_share_alone(master: SecretBuffer) -> None:
    res = _genesis(master)
    manifest = json.loads(json.dumps([c.to_dict() for c in res.commitments]))  # public JSON
    commitments = [ShareCommitment.from_dict(d) for d in manifest]
    for gs in res.shares:
        with gs.indices.view() as mv:
            assert check_against_manifest(mv, commitments) == gs.commitment
    # an altered share (one word changed) fails
    with res.shares[2].indices.view() as mv:
        mv[20] ^= 1
        with pytest.raises(CommitmentError, match="does not match its commitment"):
            check_against_manifest(mv, commitments)
        mv[20] ^= 1
    # a share from another ceremony fails: no entry
    other = _genesis(master)
    with other.shares[0].indices.view() as mv:
        with pytest.raises(CommitmentError, match="has no share"):
            check_against_manifest(mv, commitments)
    res.close()
    other.close()


def test_salt_makes_commitments_differ(master: SecretBuffer) -> None:
    res = _genesis(master)
    with res.shares[0].indices.view() as mv:
        a = commit_share(mv)
        b = commit_share(mv)
        c = commit_share(mv, salt=a.salt)
    assert a.digest != b.digest and a.digest == c.digest
    res.close()


def test_recovery_checks_commitments(master: SecretBuffer) -> None:
    res = _genesis(master)
    st = RecoveryState(commitments=res.commitments)
    for gs in res.shares[:3]:
        with gs.indices.view() as mv:
            st.add_indices(mv)
    with st.recover() as rec, rec.view() as rmv, master.view() as mmv:
        assert rmv.tobytes() == mmv.tobytes()
    st.wipe()
    res.close()


def test_genesis_shares_recovered_by_reference(master: SecretBuffer) -> None:
    res = _genesis(master, 2, ((2, 3), (2, 3), (3, 5)))
    assert res.selftest.mode == "exhaustive"
    assert res.selftest.member_subsets == 3 + 3 + 10 and res.selftest.group_combinations == 3
    words = {}
    for gs in res.shares:
        with gs.indices.view() as mv:
            words[(gs.params.group_index, gs.params.member_index)] = mnemonic_from_indices(mv)
    chosen = [words[(0, 0)], words[(0, 2)], words[(2, 1)], words[(2, 3)], words[(2, 4)]]
    with master.view() as mv:
        assert shamir_mnemonic.combine_mnemonics(chosen) == mv.tobytes()
    res.close()


def test_self_test_fails_on_a_corrupted_share(master: SecretBuffer) -> None:
    res = _genesis(master)
    with res.shares[3].indices.view() as mv:
        # rewrite share 4 with a valid-looking share of another split (same id/params)
        with SecretBuffer(32) as other, other.view() as omv:
            other.fill_random()
            alien = slip39.split_master(omv, group_threshold=1, groups=[(3, 5)], identifier=res.identifier, iteration_exponent=0)
        with slip39.encode_share(alien[0][3]) as enc, enc.view() as emv:
            mv[:] = emv
        for s in alien[0]:
            s.close()
    with pytest.raises(genesis.GenesisSelfTestError, match="disagree"):
        genesis.self_test(res.shares, res.policy, res.kcv)
    res.close()


def test_self_test_fails_on_a_wrong_kcv(master: SecretBuffer) -> None:
    res = _genesis(master)
    with pytest.raises(genesis.GenesisSelfTestError, match="fingerprint"):
        genesis.self_test(res.shares, res.policy, bytes(32))
    res.close()


def test_self_test_large_policy_uses_consistency_mode(master: SecretBuffer) -> None:
    res = _genesis(master, 1, ((8, 16),))
    assert res.selftest.mode == "consistency"
    res.close()


def test_display_renders_33_words_then_clears(master: SecretBuffer) -> None:
    res = _genesis(master)
    r, w = os.pipe()
    with res.shares[0].indices.view() as mv:
        show_share(w, mv, title="Set 1 group 1 share 1: Alice")
        words = mnemonic_from_indices(mv).split()
    os.close(w)
    out = os.read(r, 65536)
    os.close(r)
    text = out.decode()
    lines = text.replace(CLEAR.decode(), "").split("\r\n")
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    for k, word in enumerate(words, 1):
        assert f"{k:2d}. {word}" in text
    assert out.endswith(CLEAR)
    res.close()
