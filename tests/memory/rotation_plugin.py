"""Driver commands for the rotation memory scan: enter the rotation, split the new key,
seal both keys (the old one as a transitional envelope), make the continuity statement.
Only public values cross this (parent) process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from core.keyholder import ops_rotation as rot
from core.keyholder import ops_seal
from core.keyholder import ops_shares as sh
from core.seal import recipients as R

COMMON = {"cluster_id": "cluster-eu-1", "region_id": "eu10", "ceremony_id": "rotate-memscan"}
_state: dict[str, Any] = {}


def _expires() -> str:
    if "expires" not in _state:
        _state["expires"] = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(_state["expires"])


def _recipient() -> R.Recipient:
    if "recipient" not in _state:
        key = rsa.generate_private_key(65537, 3072)
        r = R.recipient_from_key(key.public_key(), name="kms", kind="aws-kms", key_id="arn:k")
        _state["recipient"] = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
    return _state["recipient"]  # type: ignore[no-any-return]


def _rotation_begin(client: Any, arg: str) -> dict[str, Any]:
    return rot.client_rotation_begin(client, **json.loads(arg))


def _genesis_new(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_genesis_split(client, json.loads(arg), generate=True, key="new")


def _seal(client: Any, arg: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"transition_expires_utc": _expires()} if arg == "old" else {}
    reply = ops_seal.seal_envelope(
        client, _recipient(), kind="masterkey", key=arg, **extra, **COMMON
    )
    return {"sealed": len(reply["envelope"]) > 0, "transitional": reply.get("transitional")}


def _statement(client: Any, arg: str) -> dict[str, Any]:
    out = rot.client_rotation_statement(client, transition_expires_utc=_expires(), **COMMON)
    return {"sha256": out["sha256"], "old": out["body"]["old"], "new": out["body"]["new"]}


def _status(client: Any, arg: str) -> dict[str, Any]:
    return dict(client.status())


COMMANDS = {
    "rotation_begin": _rotation_begin,
    "genesis_new": _genesis_new,
    "seal": _seal,
    "statement": _statement,
    "status": _status,
}
