"""An independent checker of the continuity statement, written from docs/formats.md
sections 10.2 to 10.4 alone: Python's ``json``, ``base64``, ``datetime``, ``re`` and
``cryptography``'s Ed25519, nothing of the project (tests/unit/test_continuity.py,
tests/unit/test_rotation_real.py)."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Rejected", "independent_check"]

class Rejected(Exception):
    pass


def _canonical_b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise Rejected("value is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise Rejected(f"value is not base64: {exc}") from None
    if len(raw) != 64 or base64.b64encode(raw).decode() != text:  # 0.2: strict base64
        raise Rejected("value is not 64 bytes of canonical base64")
    return raw


def independent_check(data: bytes, old_fingerprint: str) -> dict[str, Any]:
    """docs/formats.md 10.4, as a stranger to this code base would write it."""

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise Rejected("duplicate member")
        return dict(pairs)

    if len(data) > 16 * 1024:
        raise Rejected("too large")
    try:
        doc: dict[str, Any] = json.loads(data.decode("ascii"), object_pairs_hook=no_dupes)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(f"not JSON: {exc}") from None
    if doc.get("format") != "openkcm-rotation-statement" or doc.get("version") != 1:
        raise Rejected("format/version")
    if type(doc["version"]) is not int:
        raise Rejected("version is not an integer")
    top = {"format", "version", "ceremony_id", "cluster_id", "region_id", "created_utc", "old",
           "new", "transition_expires_utc", "signatures"}  # fmt: skip
    if not top <= set(doc) or set(doc) - top - {"practice"}:
        raise Rejected("members")
    if "practice" in doc and doc["practice"] is not True:
        raise Rejected("practice")
    safe = re.compile(r"^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,256}$")
    for k in ("ceremony_id", "cluster_id", "region_id"):
        if not isinstance(doc[k], str) or not safe.match(doc[k]):
            raise Rejected(k)
    created = datetime.strptime(doc["created_utc"], "%Y-%m-%dT%H:%M:%SZ")
    for side in ("old", "new"):
        key = doc[side]
        if set(key) != {"fingerprint", "kcv", "set_id", "policy"}:
            raise Rejected(f"{side} members")
        if (
            not re.fullmatch(r"[0-9a-f]{64}", key["fingerprint"])
            or key["kcv"] != key["fingerprint"][:16]
        ):
            raise Rejected(f"{side} fingerprint/kcv")
        if type(key["set_id"]) is not int or not 0 <= key["set_id"] <= 32767:
            raise Rejected(f"{side} set_id")
        pol = key["policy"]
        if set(pol) != {"group_threshold", "groups"} or not 1 <= len(pol["groups"]) <= 16:
            raise Rejected(f"{side} policy")
        for g in pol["groups"]:
            if len(g) != 2 or not all(type(x) is int for x in g) or not 1 <= g[0] <= g[1] <= 16:
                raise Rejected(f"{side} group")
        if type(pol["group_threshold"]) is not int or not 1 <= pol["group_threshold"] <= len(
            pol["groups"]
        ):
            raise Rejected(f"{side} group_threshold")
    if (
        doc["old"]["fingerprint"] == doc["new"]["fingerprint"]
        or doc["old"]["set_id"] == doc["new"]["set_id"]
    ):
        raise Rejected("old and new are the same")
    if doc["transition_expires_utc"] is not None:
        end = datetime.strptime(doc["transition_expires_utc"], "%Y-%m-%dT%H:%M:%SZ")
        if not created < end <= created + timedelta(days=90):
            raise Rejected("transition window")
    if set(doc["signatures"]) != {"old", "new"}:
        raise Rejected("signatures members")
    body = {k: v for k, v in doc.items() if k != "signatures"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")
    for side in ("old", "new"):
        block = doc["signatures"][side]
        if set(block) != {"alg", "purpose", "public_key", "value"} or block["alg"] != "Ed25519":
            raise Rejected(f"signatures.{side} block")
        if (
            block["purpose"] != f"rotation-{side}"
            or block["public_key"] != doc[side]["fingerprint"]
        ):
            raise Rejected(f"signatures.{side} purpose/public_key")
        signed = b"openkcm-ceremony/v1/sign:" + block["purpose"].encode() + b"\x00" + message
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(block["public_key"])).verify(
                _canonical_b64(block["value"]), signed
            )
        except InvalidSignature:
            raise Rejected(f"the {side} signature does not verify") from None
    if len(old_fingerprint) == 64:
        anchored = doc["old"]["fingerprint"] == old_fingerprint
    else:
        anchored = doc["old"]["kcv"] == old_fingerprint
    if not anchored:
        raise Rejected("the old key is not the one I know")
    return doc
