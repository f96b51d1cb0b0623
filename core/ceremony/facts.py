"""Small pure helpers of the engine: public facts, fingerprints and words, hashes, time.

Nothing here holds state or a secret: these turn public values (fingerprints, KCVs,
manifests) into what is journaled and shown.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.carriers.errors import CarrierError
from core.words import to_words

__all__ = [
    "fp_words",
    "grouped_kcv",
    "int_or_str",
    "is_carrier_error",
    "public_facts",
    "raw_signature",
    "same_fingerprint",
    "sha256_hex",
    "utc_now",
]


def utc_now() -> str:
    """The current UTC time as journal text (microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of public bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def grouped_kcv(kcv: str) -> str:
    """``d2c8dbb00338c76c`` -> ``d2c8 dbb0 0338 c76c`` (as read aloud and shown)."""
    flat = kcv.replace(" ", "")
    return " ".join(flat[i : i + 4] for i in range(0, len(flat), 4))


def is_carrier_error(exc: BaseException) -> bool:
    """An error of the card/QR/scanner layer (core.carriers.errors): retry, nothing lost."""
    return isinstance(exc, CarrierError)


def raw_signature(block: Mapping[str, Any]) -> bytes:
    """The raw signature bytes of a signature block (base64 ``value``)."""
    return base64.b64decode(str(block["value"]))


def int_or_str(v: Any) -> int | str:
    """``v`` as an int when it is one (a set id), else as text."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def same_fingerprint(shown: str, copy: str) -> bool:
    """Compare a shown hex fingerprint with a witness's copy (hex, or KCV words)."""
    norm = "".join(ch for ch in copy.lower() if ch in "0123456789abcdef")
    if copy.strip() and all(w.isalpha() for w in copy.split()) and len(copy.split()) >= 2:
        return copy.lower().split() == fp_words(shown)
    return bool(norm) and norm == shown.lower()


def fp_words(hex_fp: str) -> list[str]:
    """The words of a hex fingerprint's first 8 bytes, as read aloud ([] if not hex)."""
    try:
        return to_words(bytes.fromhex(hex_fp.replace(":", "").replace(" ", ""))[:8])
    except ValueError:
        return []


_PUBLIC_TYPES = (str, int, float, bool, type(None), list, dict)


def public_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Keep JSON-public values; bytes become hex (public values only reach here)."""
    out: dict[str, Any] = {}
    for k, v in facts.items():
        if isinstance(v, bytes):
            out[k] = v.hex()
        elif isinstance(v, tuple):
            out[k] = list(v)
        elif isinstance(v, _PUBLIC_TYPES):
            out[k] = v
    return out
