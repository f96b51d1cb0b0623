"""The SLIP-39 exception family. Messages never contain secret material."""

from __future__ import annotations

from core.errors import KcmError

__all__ = [
    "ChecksumError",
    "DigestError",
    "RecoveryError",
    "ShareFormatError",
    "Slip39Error",
]


class Slip39Error(KcmError, ValueError):
    """A share or a set of shares cannot be used; ``code`` is stable for programs."""

    code = "slip39"


class ShareFormatError(Slip39Error):
    """A single share is malformed (length, padding, parameters)."""

    code = "share-format"


class ChecksumError(ShareFormatError):
    """The RS1024 checksum of a share does not verify (a word is wrong)."""

    code = "checksum"


class DigestError(Slip39Error):
    """The shares combine, but the digest share says the result is wrong."""

    code = "digest"


class RecoveryError(Slip39Error):
    """A share does not fit the recovery in progress (other set, duplicate, mismatch)."""

    code = "recovery"
