"""Checking a share against a manifest's salted commitments alone (no recovery, nothing
kept): for ``verify_share`` (a typed entry) and the carriers' verify-only reads."""

from __future__ import annotations

from typing import Any

from core.keyholder.errors import MalformedRequest
from core.shamir.commitments import (
    CommitmentError,
    ShareCommitment,
    check_against_manifest,
    share_metadata,
)

__all__ = ["parse_commitments", "verify_share_indices"]


def parse_commitments(raw: Any) -> list[ShareCommitment]:
    """The manifest's ``commitments`` entries (JSON list) as :class:`ShareCommitment`.

    Raises:
        MalformedRequest: not a list of manifest commitment entries.
    """
    if not isinstance(raw, list):
        raise MalformedRequest("commitments must be the manifest's list of commitment entries")
    try:
        return [ShareCommitment.from_dict(d) for d in raw]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise MalformedRequest(
            "commitments must be the manifest's list of commitment entries"
        ) from None


def verify_share_indices(indices: memoryview, commitments: list[ShareCommitment]) -> dict[str, Any]:
    """Check a share (word indices) against the manifest's commitments alone.

    Nothing is kept and no recovery is involved: for ``verify_share`` (typed entry) and
    the carriers' verify-only reads. Returns the public verdict ``{set, group, member,
    matches}`` (1-based group/member; ``matches`` False also when the manifest has no
    entry for this share, e.g. a share of another set).
    """
    set_, group, member = share_metadata(indices)
    try:
        check_against_manifest(indices, commitments)
        matches = True
    except CommitmentError:
        matches = False
    return {"set": set_, "group": group + 1, "member": member + 1, "matches": matches}
