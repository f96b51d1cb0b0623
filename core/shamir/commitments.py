"""Salted hash commitments to shares, for the public genesis manifest.

``commitment = SHA-256("openkcm-ceremony/v1/share-commitment" || salt || share)`` where
``salt`` is 16 random public bytes and ``share`` is the share's canonical form: its word
indices, 2 bytes each, big endian (the same bytes the keyholder holds). The salt makes a
commitment useless for guessing attacks across sets and keeps equal shares of different
ceremonies unlinkable; a share has at least 128 bits of entropy, so the commitment does not
help to guess it.

A custodian's share is checked against the manifest alone: its public metadata (set,
group, member) selects the manifest entry, and the commitment is recomputed from the
typed share. No other share is needed. The share is fed to SHA-256 from locked memory
(``update`` takes a memoryview); OpenSSL clears its context when it is freed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes

from core.secmem import ct_equal
from core.shamir.errors import Slip39Error

__all__ = [
    "COMMITMENT_TAG",
    "CommitmentError",
    "ShareCommitment",
    "check_against_manifest",
    "commit_share",
    "share_metadata",
]

COMMITMENT_TAG: Final = b"openkcm-ceremony/v1/share-commitment"
SALT_BYTES: Final = 16


class CommitmentError(Slip39Error):
    """A share does not match its commitment in the genesis manifest."""

    code = "commitment"


@dataclass(frozen=True)
class ShareCommitment:
    """Public commitment to one share (group and member are 0-based)."""

    identifier: int
    group_index: int
    member_index: int
    salt: bytes
    digest: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest (1-based group/member for people; hex values)."""
        return {
            "set": self.identifier,
            "group": self.group_index + 1,
            "member": self.member_index + 1,
            "salt": self.salt.hex(),
            "commitment": self.digest.hex(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShareCommitment:
        """Parse the manifest form."""
        return cls(
            int(d["set"]),
            int(d["group"]) - 1,
            int(d["member"]) - 1,
            bytes.fromhex(str(d["salt"])),
            bytes.fromhex(str(d["commitment"])),
        )


def _digest(salt: bytes, indices: memoryview | bytearray) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(COMMITMENT_TAG)
    h.update(salt)
    h.update(indices)
    return h.finalize()


def share_metadata(indices: memoryview | bytearray) -> tuple[int, int, int]:
    """Public (identifier, group_index, member_index) read from a share's first 4 words."""
    if len(indices) < 8:
        raise Slip39Error("too short to be a share")
    w = [(indices[2 * k] << 8) | indices[2 * k + 1] for k in range(4)]  # public words only
    identifier = ((w[0] << 10) | w[1]) >> 5
    sp = (w[2] << 10) | w[3]
    return identifier, (sp >> 16) & 15, (sp >> 4) & 15


def commit_share(indices: memoryview | bytearray, salt: bytes | None = None) -> ShareCommitment:
    """Commit to a share (its word indices); a fresh random salt unless one is given."""
    identifier, gi, mi = share_metadata(indices)
    salt = os.urandom(SALT_BYTES) if salt is None else salt  # public salt
    return ShareCommitment(identifier, gi, mi, salt, _digest(salt, indices))


def verify_commitment(c: ShareCommitment, indices: memoryview | bytearray) -> bool:
    """True if ``indices`` is the share committed to by ``c``."""
    return ct_equal(_digest(c.salt, indices), c.digest)


def check_against_manifest(
    indices: memoryview | bytearray, commitments: Iterable[ShareCommitment]
) -> ShareCommitment:
    """Check one share against the manifest's commitments alone.

    Returns:
        The matching commitment.

    Raises:
        CommitmentError: no entry for this share's set/group/member, or the share differs.
    """
    identifier, gi, mi = share_metadata(indices)
    for c in commitments:
        if (c.identifier, c.group_index, c.member_index) == (identifier, gi, mi):
            if verify_commitment(c, indices):
                return c
            raise CommitmentError(
                f"share {mi + 1} of group {gi + 1} (set {identifier}) does not match its "
                "commitment in the genesis manifest: a word is wrong or the share was altered"
            )
    raise CommitmentError(
        f"the genesis manifest has no share {mi + 1} of group {gi + 1} in set {identifier}"
    )
