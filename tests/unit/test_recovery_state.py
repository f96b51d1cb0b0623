"""Recovery state machine: progress per group, and every rejection path."""

from __future__ import annotations

import pytest
import shamir_mnemonic

from core.shamir import slip39
from core.shamir.errors import DigestError, RecoveryError
from core.shamir.recovery import RecoveryState
from core.shamir.wordlist import indices_from_mnemonic

SECRET = bytes(range(32))


def _gen(gt: int, groups: list[tuple[int, int]], *, ext: bool = True, e: int = 0, secret: bytes = SECRET) -> list[list[str]]:
    return shamir_mnemonic.generate_mnemonics(gt, groups, secret, extendable=ext, iteration_exponent=e)


def _add(state: RecoveryState, mnemonic: str):  # type: ignore[no-untyped-def]
    with indices_from_mnemonic(mnemonic) as buf, buf.view() as mv:
        return state.add_indices(mv)


def _recover(state: RecoveryState) -> bytes:
    with state.recover() as m, m.view() as mv:
        return mv.tobytes()


def test_three_of_five_progress_and_recover() -> None:
    shares = _gen(1, [(3, 5)])[0]
    st = RecoveryState()
    assert st.progress().message() == "enter the first share"
    p = _add(st, shares[4])
    assert not p.complete and p.groups[0].more == 2
    assert "2 more share(s) from group 1" in p.message()
    with pytest.raises(RecoveryError) as info:
        st.recover()
    assert info.value.code == "insufficient"
    _add(st, shares[1])
    p = _add(st, shares[2])
    assert p.complete and p.groups[0].members == (1, 2, 4)
    assert _recover(st) == SECRET
    st.wipe()
    assert len(st) == 0


def test_two_level_progress_names_groups() -> None:
    g = _gen(2, [(2, 3), (2, 3), (3, 5)])
    st = RecoveryState()
    p = _add(st, g[2][0])
    assert p.groups[2].more == 2 and p.groups[0].more == -1
    assert "2 more share(s) from group 3" in p.message()
    assert "shares from 1 more group(s)" in p.message()
    _add(st, g[0][1])
    p = _add(st, g[0][2])
    assert p.complete_groups == 1 and not p.complete
    assert p.message().startswith(f"set {p.identifier}: 1 of 2 group(s) complete")
    _add(st, g[2][3])
    p = _add(st, g[2][4])
    assert p.complete
    assert _recover(st) == SECRET


def test_share_of_another_set_is_rejected() -> None:
    a = _gen(1, [(2, 3)])[0]
    b = _gen(1, [(2, 3)])[0]
    st = RecoveryState()
    p = _add(st, a[0])
    with pytest.raises(RecoveryError) as info:
        _add(st, b[1])
    assert info.value.code == "other-set"
    with indices_from_mnemonic(b[1]) as buf, buf.view() as mv:
        share = slip39.decode_share(mv)
        other_id = share.params.identifier
        share.close()
    assert f"belongs to set {other_id}; this recovery expects set {p.identifier}" in info.value.message
    assert len(st) == 1  # state kept


def test_expected_identifier_from_manifest() -> None:
    a = _gen(1, [(2, 3)])[0]
    st = RecoveryState(expected_identifier=1)
    with pytest.raises(RecoveryError) as info:
        _add(st, a[0])
    assert info.value.code == "other-set" and "expects set 1" in info.value.message


def test_duplicate_and_conflict() -> None:
    a = _gen(1, [(3, 5)])[0]
    st = RecoveryState()
    _add(st, a[0])
    with pytest.raises(RecoveryError) as info:
        _add(st, a[0])
    assert info.value.code == "duplicate" and "already given" in info.value.message
    # same set, same member index, different value: build by re-splitting with same id
    ems_id = st.params.identifier if st.params else 0
    from core.secmem import SecretBuffer

    with SecretBuffer(32) as m, m.view() as mv:
        mv[:] = bytes(32)
        other = slip39.split_master(mv, group_threshold=1, groups=[(3, 5)], identifier=ems_id, iteration_exponent=0)
    with pytest.raises(RecoveryError) as info:
        st.add(other[0][0])
    assert info.value.code == "conflict"
    for s in other[0]:
        s.close()


def test_parameter_mismatches() -> None:
    from core.secmem import SecretBuffer

    def split(**kw):  # type: ignore[no-untyped-def]
        with SecretBuffer(32) as m, m.view() as mv:
            mv[:] = SECRET
            args = {"group_threshold": 1, "groups": [(2, 3)], "identifier": 77, "iteration_exponent": 0}
            args.update(kw)
            return slip39.split_master(mv, **args)

    base = split()
    st = RecoveryState()
    st.add(base[0][0])
    cases = [
        (split(iteration_exponent=1)[0][1], "mismatch", "iteration exponent"),
        (split(groups=[(2, 3), (2, 3)])[0][1], "mismatch", "group count"),
        (split(groups=[(3, 3)])[0][1], "mismatch", "needs 3 shares"),
        (split(extendable=False)[0][1], "extendable-mix", "cannot be mixed"),
    ]
    for share, code, text in cases:
        with pytest.raises(RecoveryError) as info:
            st.add(share)
        assert info.value.code == code, info.value.message
        assert text in info.value.message
        assert share.value.closed  # a rejected share is wiped
    with SecretBuffer(16) as m, m.view() as mv:
        mv[:] = SECRET[:16]
        short = slip39.split_master(mv, group_threshold=1, groups=[(2, 3)], identifier=77, iteration_exponent=0)
    with pytest.raises(RecoveryError) as info:
        st.add(short[0][1])
    assert info.value.code == "mismatch" and "secret length" in info.value.message
    st.add(base[0][2])
    assert _recover(st) == SECRET


def test_wrong_share_detected_by_digest() -> None:
    """Two shares of two splits that share an identifier: the digest catches it."""
    from core.secmem import SecretBuffer

    with SecretBuffer(32) as m, m.view() as mv:
        mv[:] = SECRET
        a = slip39.split_master(mv, group_threshold=1, groups=[(2, 3)], identifier=5, iteration_exponent=0)
        mv[0] ^= 1
        b = slip39.split_master(mv, group_threshold=1, groups=[(2, 3)], identifier=5, iteration_exponent=0)
    st = RecoveryState()
    st.add(a[0][0])
    st.add(b[0][1])
    with pytest.raises(DigestError):
        st.recover()
