"""Genesis: split the MasterKey into SLIP-39 shares, commit to them, and self-test.

The self-test runs before genesis is declared complete. It works from the *encoded*
shares (word indices, exactly what custodians will carry), so it also exercises the
encoding, the checksum and the decoding:

1. every share is decoded back from its words;
2. within each group, **every** subset of ``member_threshold`` members is interpolated at
   x=255 and compared (constant time) with the group secret recovered from the first
   subset, whose digest share is verified;
3. across groups, **every** combination of ``group_threshold`` groups is interpolated and
   compared with the EMS recovered (and digest-checked) from the first combination;
4. that EMS is decrypted with the passphrase and the KCV of the result is compared in
   constant time with the KCV of the MasterKey.

Since decryption is deterministic, equal EMS values imply equal MasterKeys and equal KCVs,
so step 4 covers every subset without paying PBKDF2 per subset. Checking member subsets per
group and group combinations separately covers every qualifying share set (recovery is
hierarchical), at the cost of ``sum C(n_g, m_g) + C(G, T)`` interpolations instead of
their product. Bound: with the 16x16 limits a single level may have up to C(16, 8) = 12870
subsets; beyond :data:`EXHAUSTIVE_LIMIT` subsets in one level we check instead that *all*
points lie on the polynomial through the first ``m`` (which implies that every
``m``-subset interpolates the same polynomial) and say so in the report (``mode``).

Any failure raises :class:`GenesisSelfTestError`; the caller wipes everything.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Final

from core.secmem import SecretBuffer, ct_equal
from core.shamir import gf256, slip39
from core.shamir._mem import scratch as _scratch
from core.shamir.commitments import ShareCommitment, commit_share
from core.shamir.errors import Slip39Error
from core.shamir.slip39 import Share, ShareParams

__all__ = [
    "EXHAUSTIVE_LIMIT",
    "GenesisPolicy",
    "GenesisResult",
    "GenesisSelfTestError",
    "GenesisShare",
    "SelfTestReport",
    "genesis_split",
    "self_test",
]

EXHAUSTIVE_LIMIT: Final = 5000

#: KCV function: public fingerprint bytes of a MasterKey held in locked memory.
KcvFunction = Callable[[memoryview], bytes]


def default_kcv(master: memoryview) -> bytes:
    """The MasterKey fingerprint (HKDF-derived Ed25519 public key, 32 bytes)."""
    from core.crypto.fingerprint import derive_fingerprint

    return derive_fingerprint(master).public_key


class GenesisSelfTestError(Slip39Error):
    """The shares just made do not all give back the MasterKey: genesis must abort."""

    code = "selftest"


@dataclass(frozen=True)
class GenesisPolicy:
    """Sharing policy: ``groups`` is ``[(member_threshold, member_count), ...]``."""

    group_threshold: int
    groups: tuple[tuple[int, int], ...]
    extendable: bool = True
    iteration_exponent: int = 1

    def validate(self) -> None:
        """Raise :class:`Slip39Error` if SLIP-39 cannot express this policy."""
        slip39.validate_policy(self.group_threshold, self.groups)
        if not 0 <= self.iteration_exponent < 16:
            raise Slip39Error("the iteration exponent must be between 0 and 15")

    def to_dict(self) -> dict[str, object]:
        """Public JSON form."""
        return {
            "group_threshold": self.group_threshold,
            "groups": [list(g) for g in self.groups],
            "extendable": self.extendable,
            "iteration_exponent": self.iteration_exponent,
        }


@dataclass
class GenesisShare:
    """One share of a new set: public params, commitment, and its words (secret)."""

    params: ShareParams
    indices: SecretBuffer  # word indices, 2 bytes each
    commitment: ShareCommitment

    def close(self) -> None:
        """Wipe the words."""
        self.indices.close()


@dataclass(frozen=True)
class SelfTestReport:
    """What the genesis self-test checked."""

    member_subsets: int
    group_combinations: int
    mode: str  # "exhaustive" or "consistency" (see module docstring)
    kcv_checked: bool

    def to_dict(self) -> dict[str, object]:
        """Public JSON form."""
        return {
            "member_subsets": self.member_subsets,
            "group_combinations": self.group_combinations,
            "mode": self.mode,
            "kcv_checked": self.kcv_checked,
        }


@dataclass
class GenesisResult:
    """A new share set. The caller owns the shares (``close()``)."""

    identifier: int
    policy: GenesisPolicy
    shares: list[GenesisShare]
    kcv: bytes
    selftest: SelfTestReport
    commitments: list[ShareCommitment] = field(default_factory=list)

    def close(self) -> None:
        """Wipe every share."""
        for s in self.shares:
            s.close()


def _check_level(
    n: int,
    threshold: int,
    points: Sequence[tuple[int, memoryview]],
    reference: memoryview,
    scratch: memoryview,
    what: str,
) -> tuple[int, str]:
    """Compare every ``threshold``-subset of ``points`` at x=255 with ``reference``."""
    if threshold == 1:
        for x, v in points:  # 1-of-1 (or 1-of-n group level): every value is the secret
            if not ct_equal(v, reference):
                raise GenesisSelfTestError(f"self-test failed: {what} {x + 1} differs")
        return len(points), "exhaustive"
    count = math.comb(n, threshold)
    if count <= EXHAUSTIVE_LIMIT:
        for subset in itertools.combinations(points, threshold):
            gf256.interpolate_into(scratch, subset, gf256.SECRET_INDEX)
            if not ct_equal(scratch, reference):
                members = ", ".join(str(x + 1) for x, _ in subset)
                raise GenesisSelfTestError(f"self-test failed: {what}s {members} disagree")
        return count, "exhaustive"
    base = list(points[:threshold])
    for x, v in points[threshold:]:
        gf256.interpolate_into(scratch, base, x)
        if not ct_equal(scratch, v):
            raise GenesisSelfTestError(f"self-test failed: {what} {x + 1} is inconsistent")
    return n - threshold + 1, "consistency"


def self_test(
    shares: Sequence[GenesisShare],
    policy: GenesisPolicy,
    expected_kcv: bytes,
    passphrase: memoryview | None = None,
    kcv: KcvFunction = default_kcv,
) -> SelfTestReport:
    """Recover from every qualifying subset of the encoded shares (see module doc).

    Raises:
        GenesisSelfTestError: a subset gives a different result, or the KCV differs.
    """
    decoded: list[Share] = []
    group_secrets: list[tuple[int, SecretBuffer]] = []
    mode = "exhaustive"
    member_checks = 0
    try:
        for gs in shares:
            with gs.indices.view() as mv:
                share = slip39.decode_share(mv)
            decoded.append(share)
            if share.params != gs.params:
                raise GenesisSelfTestError("self-test failed: a share does not decode to itself")
        if not decoded:
            raise GenesisSelfTestError("self-test failed: no shares")
        n = len(decoded[0].value)
        first = decoded[0].params
        with ExitStack() as stack:
            _buf, scratch = stack.enter_context(_scratch(n))
            for gi, (m, count) in enumerate(policy.groups):
                members = [s for s in decoded if s.params.group_index == gi]
                if len(members) != count:
                    raise GenesisSelfTestError(f"self-test failed: group {gi + 1} is incomplete")
                pts = [
                    (s.params.member_index, stack.enter_context(s.value.view())) for s in members
                ]
                gsec = slip39.recover_secret(m, pts[:m])
                group_secrets.append((gi, gsec))
                ref = stack.enter_context(gsec.view())
                checked, level_mode = _check_level(count, m, pts, ref, scratch, "share")
                member_checks += checked
                if level_mode != "exhaustive":
                    mode = level_mode
            gpts = [(gi, stack.enter_context(b.view())) for gi, b in group_secrets]
            ems = stack.enter_context(
                slip39.recover_secret(policy.group_threshold, gpts[: policy.group_threshold])
            )
            emv = stack.enter_context(ems.view())
            group_checks, level_mode = _check_level(
                len(gpts), policy.group_threshold, gpts, emv, scratch, "group"
            )
            if level_mode != "exhaustive":
                mode = level_mode
            _master, mmv = stack.enter_context(_scratch(n))
            slip39.decrypt_ems(
                emv, mmv, passphrase, first.iteration_exponent, first.identifier, first.extendable
            )
            if not ct_equal(kcv(mmv), expected_kcv):
                raise GenesisSelfTestError(
                    "self-test failed: the recovered key has a different fingerprint"
                )
    finally:
        for s in decoded:
            s.close()
        for _, b in group_secrets:
            b.close()
    return SelfTestReport(member_checks, group_checks, mode, True)


def genesis_split(
    master: memoryview,
    policy: GenesisPolicy,
    passphrase: memoryview | None = None,
    *,
    identifier: int | None = None,
    kcv: KcvFunction = default_kcv,
) -> GenesisResult:
    """Split the MasterKey, encode and commit to every share, and run the self-test.

    Returns:
        The new set; on any failure everything made so far is wiped and the error raised.
    """
    policy.validate()
    expected = kcv(master)
    groups = slip39.split_master(
        master,
        group_threshold=policy.group_threshold,
        groups=policy.groups,
        passphrase=passphrase,
        extendable=policy.extendable,
        iteration_exponent=policy.iteration_exponent,
        identifier=identifier,
    )
    out: list[GenesisShare] = []
    try:
        for group in groups:
            for s in group:
                idx = slip39.encode_share(s)
                s.close()
                with idx.view() as mv:
                    c = commit_share(mv)
                out.append(GenesisShare(s.params, idx, c))
        report = self_test(out, policy, expected, passphrase, kcv)
    except BaseException:
        for group in groups:
            for s in group:
                s.close()
        for gs in out:
            gs.close()
        raise
    return GenesisResult(
        identifier=out[0].params.identifier,
        policy=policy,
        shares=out,
        kcv=expected,
        selftest=report,
        commitments=[gs.commitment for gs in out],
    )
