"""The journal's rows: event kinds, errors, the canonical JSON and the row hash, the refusal
of secret-looking values, :class:`Event`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from core import words as _words
from core.errors import KcmError

FORMAT_VERSION: Final = 1

GENESIS_PREV_HASH: Final = "0" * 64

OPENED: Final = "journal.opened"

CLOSED: Final = "journal.closed"

#: Event kinds written by the journal and the ceremony engine (others are allowed but should
#: be added here and documented in docs/scripts.md).
EVENT_KINDS: Final = frozenset(
    {
        OPENED,
        CLOSED,
        "ceremony.started",
        "ceremony.completed",
        "ceremony.aborted",
        "step.started",
        "step.ack",
        "step.ack_withdrawn",
        "step.input",
        "step.result",
        "step.done",
        "step.failed",
        "step.retry",
        "exception",
        "share.written",
        "share.checked",
        "share.check_skipped",
        "export.verdict",
        "keyholder.wiped",
        "journal.unsigned",
        "set.aborted",
        "set.retired",
        "ceremony.interrupted",
    }
)

_FIELDS: Final = ("seq", "ts", "ceremony_id", "act", "step", "role", "kind", "details", "prev_hash")

_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")

_SECRET_KEYS: Final = frozenset(
    {
        "secret",
        "secrets",
        "mnemonic",
        "mnemonics",
        "passphrase",
        "password",
        "pin",
        "plaintext",
        "private_key",
        "master_key",
        "masterkey",
        "seed",
        "share_words",
        "share_value",
        "data_key",
    }
)

_MNEMONIC_RUN: Final = 20

class JournalError(KcmError):
    """A journal cannot be opened, written or verified."""

    code = "journal"

class SecretRefusedError(JournalError):
    """A value offered to the journal is not plainly public (bytes, objects, mnemonic-like)."""

    code = "journal-secret-refused"

class JournalClosedError(JournalError):
    """The journal ends with ``journal.closed``; nothing can be appended."""

    code = "journal-closed"

def canonical_json(obj: Any) -> str:
    """Return the canonical JSON text used for hashing and storage."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )

def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """Compute a row's hash: SHA-256 over the previous hash (32 raw bytes) and the row.

    Args:
        prev_hash: hex hash of the previous row (64 zeros for row 1).
        row: the fields of :data:`_FIELDS` with ``details`` as a decoded object.

    Returns:
        Lower-case hex SHA-256.
    """
    body = {k: row[k] for k in _FIELDS}
    return hashlib.sha256(
        bytes.fromhex(prev_hash) + canonical_json(body).encode("utf-8")
    ).hexdigest()

def hash_words(hex_hash: str) -> list[str]:
    """Words (SLIP-39 list, 10 bits each) of a hex hash, to read aloud or copy on paper."""
    return _words.to_words(bytes.fromhex(hex_hash))

def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

def _check_public(value: Any, path: str) -> None:
    """Raise SecretRefusedError unless ``value`` is made of plain public JSON types."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SecretRefusedError(f"{path}: NaN/infinity cannot be journaled")
        return
    if isinstance(value, str):
        _check_not_mnemonic(value, path)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_public(item, f"{path}[{i}]")
        _check_not_mnemonic(" ".join(v for v in value if isinstance(v, str)), path)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SecretRefusedError(f"{path}: keys must be strings, got {type(key).__name__}")
            if key.lower() in _SECRET_KEYS:
                raise SecretRefusedError(f"{path}.{key}: a field named like a secret is refused")
            _check_public(item, f"{path}.{key}")
        return
    raise SecretRefusedError(
        f"{path}: {type(value).__name__} is not a public JSON value; the journal takes only "
        "str, int, float, bool, None, lists and dicts (encode public bytes as hex first)"
    )

def _check_not_mnemonic(text: str, path: str) -> None:
    tokens = text.lower().split()
    if len(tokens) < _MNEMONIC_RUN:
        return
    known = set(_words.wordlist())
    run = 0
    for tok in tokens:
        run = run + 1 if tok in known else 0
        if run >= _MNEMONIC_RUN:
            raise SecretRefusedError(
                f"{path}: text with {_MNEMONIC_RUN}+ SLIP-39 words in a row looks like a share "
                "and is refused"
            )

@dataclass(frozen=True)
class Event:
    """One journal row, with ``details`` decoded."""

    seq: int
    ts: str
    ceremony_id: str
    act: str
    step: str
    role: str
    kind: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The row as a dict (the JSON Lines export format)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "ceremony_id": self.ceremony_id,
            "act": self.act,
            "step": self.step,
            "role": self.role,
            "kind": self.kind,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

class _BadDetails(dict[str, Any]):
    """Marker for a details column that is not valid JSON (verification reports it)."""
