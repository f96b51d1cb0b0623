"""Signature blocks on the ceremony's records, made by the MasterKey-derived key.

The keyholder signs, through its domain-separated SIGN operation
(:mod:`core.keyholder.ops_core`), four records: the journal's final hash, the genesis
manifest, the seal manifest and the transcript; and, inside its ``rotation_statement``
operation only (:mod:`core.keyholder.ops_rotation`), the MasterKey rotation's continuity
statement, once with each key (purposes ``rotation-old`` and ``rotation-new``,
:mod:`core.continuity`). The signing key is the Ed25519 key derived
from the MasterKey (:mod:`core.crypto.fingerprint`); its public key *is* the MasterKey
fingerprint, so a signature proves that the record was made by a process holding that
MasterKey, and the fingerprint on the paper log (or in a manifest kept elsewhere) is what
a verifier checks it against. Everything here is public data (docs/formats.md,
"Signature blocks").

A block::

    {"alg": "Ed25519", "purpose": "genesis-manifest",
     "public_key": "<64 hex: the MasterKey fingerprint>", "value": "<base64, 64 bytes>"}

over ``signed_bytes(purpose, message)`` = ``"openkcm-ceremony/v1/sign:" || purpose || 0x00
|| message``; the message of each record is defined below.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import KcmError
from core.words import to_words

__all__ = [
    "ALG",
    "PURPOSES",
    "ROTATION_PURPOSES",
    "SIGN_DOMAIN",
    "SignatureError",
    "canonical",
    "fingerprint_matches",
    "journal_message",
    "make_block",
    "manifest_message",
    "parse_anchor",
    "signed_bytes",
    "transcript_message",
    "verify_block",
]

#: What the SIGN operation may sign; the purpose is inside the signed bytes, so a
#: signature for one record can never pass for another (nor for an envelope signature).
SIGN_DOMAIN: Final = b"openkcm-ceremony/v1/sign:"
PURPOSES: Final = (
    "journal-final-hash",
    "genesis-manifest",
    "seal-manifest",
    "ceremony-transcript",
    "rotation-old",
    "rotation-new",
)
#: Purposes only the keyholder's ``rotation_statement`` operation signs (it builds the
#: statement itself from the two keys it holds); its SIGN operation refuses them, so no
#: request can make the old key vouch for a key the keyholder does not hold.
ROTATION_PURPOSES: Final = ("rotation-old", "rotation-new")
ALG: Final = "Ed25519"
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(KcmError, ValueError):
    """A signature block is missing a part, malformed, or does not verify."""

    code = "signature"


def signed_bytes(purpose: str, message: bytes) -> bytes:
    """The exact bytes the SIGN operation signs for ``purpose``."""
    return SIGN_DOMAIN + purpose.encode("ascii") + b"\x00" + message


def canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8), as in the journal."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def manifest_message(manifest: Mapping[str, Any]) -> bytes:
    """What a genesis manifest's signature covers: its canonical JSON without the
    ``signature`` member (and without ``_file``, which the engine adds when listing)."""
    return canonical({k: v for k, v in manifest.items() if k not in ("signature", "_file")})


def journal_message(ceremony_id: str, rows: int, final_hash: str) -> bytes:
    """What the journal's signature covers: the ceremony, its row count and final hash."""
    return canonical(
        {
            "format": "openkcm-journal-final-hash",
            "ceremony_id": ceremony_id,
            "rows": rows,
            "final_hash": final_hash,
        }
    )


def transcript_message(name: str, data: bytes) -> bytes:
    """What a transcript's detached signature covers: its file name and SHA-256."""
    import hashlib

    return canonical(
        {
            "format": "openkcm-transcript",
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    )


def make_block(purpose: str, public_key_hex: str, signature: bytes) -> dict[str, str]:
    """The public signature block for a record."""
    if purpose not in PURPOSES:
        raise SignatureError(f"unknown signature purpose {purpose!r}")
    if not _HEX64.match(public_key_hex) or len(signature) != 64:
        raise SignatureError("a signature block needs a 32-byte key and a 64-byte signature")
    return {
        "alg": ALG,
        "purpose": purpose,
        "public_key": public_key_hex,
        "value": base64.b64encode(signature).decode("ascii"),
    }


def verify_block(block: object, message: bytes, *, purpose: str) -> str:
    """Check a signature block over ``message``; returns the signer's public key (hex).

    Raises:
        SignatureError: malformed, another purpose, or the signature does not verify.
    """
    if not isinstance(block, dict):
        raise SignatureError("the signature block is not a JSON object")
    if block.get("alg") != ALG:
        raise SignatureError(f"signature algorithm {block.get('alg')!r}, expected {ALG}")
    if block.get("purpose") != purpose:
        raise SignatureError(f"signature for {block.get('purpose')!r}, expected {purpose!r}")
    pub = block.get("public_key")
    if not isinstance(pub, str) or not _HEX64.match(pub):
        raise SignatureError("the signature's public_key is not 64 hex digits")
    value = block.get("value")
    try:
        sig = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the signature value is not base64") from None
    if len(sig) != 64:
        raise SignatureError("an Ed25519 signature is 64 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub)).verify(
            sig, signed_bytes(purpose, message)
        )
    except (InvalidSignature, ValueError):
        raise SignatureError(
            "the signature does not verify: the record was changed after it was signed"
        ) from None
    return pub


def parse_anchor(text: str) -> tuple[str, str]:
    """A MasterKey fingerprint given by a person: ``("full", hex)`` for 64 hex digits,
    ``("kcv", hex)`` for the 16-digit KCV or its 7 words (spaces and colons ignored).

    Raises:
        SignatureError: neither.
    """
    t = text.strip().lower()
    words = t.split()
    if len(words) >= 2 and all(w.isalpha() for w in words):
        from core.words import from_words

        try:
            return "kcv", from_words(" ".join(words), 8).hex()
        except ValueError as exc:
            raise SignatureError(f"the fingerprint words are not 7 KCV words ({exc})") from None
    digits = "".join(ch for ch in t if ch not in " :")
    if re.fullmatch(r"[0-9a-f]{64}", digits):
        return "full", digits
    if re.fullmatch(r"[0-9a-f]{16}", digits):
        return "kcv", digits
    raise SignatureError(
        "a MasterKey fingerprint is 64 hex digits, or its KCV: 16 hex digits or 7 words"
    )


def fingerprint_matches(anchor: str, public_key_hex: str) -> bool:
    """True if the person-given ``anchor`` (see :func:`parse_anchor`) names this key.

    A KCV anchor is the first 8 bytes (64 bits) of the fingerprint: what the room reads
    aloud and writes on paper.
    """
    kind, value = parse_anchor(anchor)
    if kind == "full":
        return value == public_key_hex
    return public_key_hex.startswith(value)


def kcv_words(public_key_hex: str) -> list[str]:
    """The 7 KCV words of a fingerprint (first 8 bytes)."""
    return to_words(bytes.fromhex(public_key_hex)[:8])
