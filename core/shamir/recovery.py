"""UI-free recovery state machine: shares arrive one at a time, in any order.

Each :meth:`RecoveryState.add` either accepts the share and returns a :class:`Progress`
(per group: how many shares are in, how many more are needed; overall: which groups can
still complete the set) or raises :class:`~core.shamir.errors.RecoveryError` with a
specific ``code`` and a message a person can act on, leaving the state unchanged:

* ``other-set``: the share belongs to another set (different identifier);
* ``extendable-mix``: same identifier, different extendable flag;
* ``mismatch``: parameters disagree with those already given (iteration exponent, group
  threshold or count, the member threshold of its group, the secret length);
* ``duplicate``: the same share was already given; ``conflict``: another share with the
  same group and member index but a different value (one of the two is wrong);
* ``commitment``: (when the manifest's commitments were given) the share is not the one
  committed to at genesis.

The state owns the accepted shares and wipes them in :meth:`wipe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.secmem import SecretBuffer, ct_equal
from core.shamir import slip39
from core.shamir.commitments import CommitmentError, ShareCommitment, check_against_manifest
from core.shamir.errors import RecoveryError
from core.shamir.slip39 import Share, ShareParams

__all__ = ["GroupProgress", "Progress", "RecoveryState"]


@dataclass(frozen=True)
class GroupProgress:
    """Progress of one group (0-based ``group_index``)."""

    group_index: int
    member_threshold: int  # 0 while no share of the group has been given
    have: int
    members: tuple[int, ...]  # member indices given (0-based)

    @property
    def more(self) -> int:
        """Shares still needed to complete this group (0 if complete, -1 if unknown)."""
        if self.member_threshold == 0:
            return -1
        return max(0, self.member_threshold - self.have)

    @property
    def complete(self) -> bool:
        """True once the group has its member threshold."""
        return self.member_threshold > 0 and self.have >= self.member_threshold


@dataclass(frozen=True)
class Progress:
    """Public progress of a recovery."""

    identifier: int | None
    group_threshold: int
    group_count: int
    groups: tuple[GroupProgress, ...] = field(default_factory=tuple)

    @property
    def complete_groups(self) -> int:
        """Number of complete groups."""
        return sum(1 for g in self.groups if g.complete)

    @property
    def complete(self) -> bool:
        """True once enough groups are complete to recover."""
        return self.identifier is not None and self.complete_groups >= self.group_threshold

    def message(self) -> str:
        """What is still needed, in words for the room."""
        if self.identifier is None:
            return "enter the first share"
        if self.complete:
            return f"set {self.identifier}: enough shares to recover"
        parts = []
        missing_groups = self.group_threshold - self.complete_groups
        for g in self.groups:
            if g.have and not g.complete:
                parts.append(f"{g.more} more share(s) from group {g.group_index + 1}")
        started = sum(1 for g in self.groups if g.have and not g.complete)
        fresh = missing_groups - started
        if fresh > 0:
            if self.group_count == 1:
                parts.append("more shares")
            else:
                parts.append(f"shares from {fresh} more group(s)")
        return (
            f"set {self.identifier}: {self.complete_groups} of {self.group_threshold} "
            f"group(s) complete; need " + " and ".join(parts)
        )

    def to_dict(self) -> dict[str, object]:
        """Public JSON form."""
        return {
            "identifier": self.identifier,
            "group_threshold": self.group_threshold,
            "group_count": self.group_count,
            "complete": self.complete,
            "message": self.message(),
            "groups": [
                {
                    "group": g.group_index + 1,
                    "member_threshold": g.member_threshold,
                    "have": g.have,
                    "more": g.more,
                    "complete": g.complete,
                    "members": [m + 1 for m in g.members],
                }
                for g in self.groups
            ],
        }


class RecoveryState:
    """Collects shares of one set and recovers the master secret.

    Args:
        expected_identifier: the set this ceremony expects (from the manifest), if known.
        commitments: the manifest's share commitments; each share is checked on entry.
    """

    def __init__(
        self,
        *,
        expected_identifier: int | None = None,
        commitments: Sequence[ShareCommitment] | None = None,
    ) -> None:
        self.expected_identifier = expected_identifier
        self.commitments = list(commitments or [])
        self._shares: list[Share] = []

    @property
    def params(self) -> ShareParams | None:
        """Parameters of the first accepted share."""
        return self._shares[0].params if self._shares else None

    def _reject(self, share: Share, message: str, *, code: str) -> RecoveryError:
        set_id = str(share.params.identifier)
        share.close()
        return RecoveryError(message, code=code, set_id=set_id)

    def add_indices(self, indices: memoryview | bytearray) -> Progress:
        """Decode a share given as word indices, check it, and add it."""
        if self.commitments:
            try:
                check_against_manifest(indices, self.commitments)
            except CommitmentError as exc:
                raise RecoveryError(exc.message, code="commitment") from None
        return self.add(slip39.decode_share(indices))

    def add(self, share: Share) -> Progress:
        """Add a decoded share (the state takes ownership; a rejected share is wiped)."""
        p = share.params
        who = f"group {p.group_index + 1} share {p.member_index + 1}"
        expected = self.expected_identifier
        first = self.params
        if first is not None:
            expected = first.identifier
        if expected is not None and p.identifier != expected:
            raise self._reject(
                share,
                f"this share belongs to set {p.identifier}; this recovery expects set {expected}",
                code="other-set",
            )
        if first is not None:
            if p.extendable != first.extendable:
                raise self._reject(
                    share,
                    f"set {p.identifier}: extendable and non-extendable shares cannot be mixed",
                    code="extendable-mix",
                )
            for name, a, b in (
                ("iteration exponent", p.iteration_exponent, first.iteration_exponent),
                ("group threshold", p.group_threshold, first.group_threshold),
                ("group count", p.group_count, first.group_count),
                ("secret length", len(share.value), len(self._shares[0].value)),
            ):
                if a != b:
                    raise self._reject(
                        share,
                        f"{who} says {name} {a}, but the shares already given say {b}",
                        code="mismatch",
                    )
            for s in self._shares:
                q = s.params
                if q.group_index != p.group_index:
                    continue
                if q.member_threshold != p.member_threshold:
                    raise self._reject(
                        share,
                        f"{who} says its group needs {p.member_threshold} shares, but "
                        f"group {p.group_index + 1} shares already given say {q.member_threshold}",
                        code="mismatch",
                    )
                if q.member_index == p.member_index:
                    with s.value.view() as a_mv, share.value.view() as b_mv:
                        same = ct_equal(a_mv, b_mv)
                    if same:
                        raise self._reject(share, f"{who} was already given", code="duplicate")
                    raise self._reject(
                        share,
                        f"{who} was already given with different words: one of the two is wrong",
                        code="conflict",
                    )
        self._shares.append(share)
        return self.progress()

    def progress(self) -> Progress:
        """Current public progress."""
        first = self.params
        if first is None:
            return Progress(None, 0, 0)
        groups = []
        for gi in range(first.group_count):
            members = [s.params for s in self._shares if s.params.group_index == gi]
            groups.append(
                GroupProgress(
                    gi,
                    members[0].member_threshold if members else 0,
                    len(members),
                    tuple(sorted(m.member_index for m in members)),
                )
            )
        return Progress(first.identifier, first.group_threshold, first.group_count, tuple(groups))

    def recover(self, passphrase: memoryview | None = None) -> SecretBuffer:
        """Recover the master secret (caller owns the result).

        Raises:
            RecoveryError: not enough shares yet (``insufficient``).
            DigestError: the shares combine to a wrong result.
        """
        prog = self.progress()
        if not prog.complete:
            raise RecoveryError(prog.message(), code="insufficient")
        return slip39.combine(self._shares, passphrase)

    def wipe(self) -> None:
        """Wipe every share held."""
        for s in self._shares:
            s.close()
        self._shares.clear()

    def __len__(self) -> int:
        return len(self._shares)
