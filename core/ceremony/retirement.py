"""Share sets that must never be used: aborted, interrupted or retired.

A share set is void when the ceremony that made it did not finish (an aborted genesis or
reshare, or one interrupted by a crash and closed afterwards: its key was wiped or lost,
and the shares handed out open nothing worth having), or when the people responsible
retire it (a set replaced by a reshare, or no longer wanted). Its manifest stays as it
was (signed by the MasterKey, which may be gone); beside it, a **retirement record**
``retired/[PRACTICE-]set-<id>.json`` on the medium says so (docs/formats.md, "Retired
share sets"):

    {"format": "openkcm-set-retirement", "version": 1, "set_id": 1234,
     "manifest_file": "set-1234.json", "manifest_sha256": "<hex>", "fingerprint": "<hex>",
     "practice": false, "cause": "aborted" | "interrupted" | "retired",
     "ceremony_id": "<the ceremony or retirement that voided it>",
     "who": "<role or name>", "why": "<reason>", "utc": "2026-12-04T06:00:00Z"}

The record is public and unsigned (the key that could sign it is usually gone); each
one is also in the journal of the ceremony or retirement it names, which is the evidence.
Removing a record makes a set usable again, so the journal is the record to trust; a
planted record only makes a ceremony refuse a set, the safe direction. A record that
cannot be read refuses its set too (the message says why).

:func:`check_not_retired` refuses a retired set with a message naming the cause, the
ceremony and the reason; :func:`retire_set` is the journaled "retire a share set" action
(``kcm-ceremony set retire``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import strictjson
from core.ceremony.workspace import Workspace
from core.errors import KcmError
from core.safeio import SafeIOError

__all__ = [
    "CAUSES",
    "FOLDER",
    "Retirement",
    "SetRetired",
    "check_not_retired",
    "find",
    "record_name",
    "retire_set",
    "write",
]

FORMAT = "openkcm-set-retirement"
FOLDER = "retired"
CAUSES = ("aborted", "interrupted", "retired")
MEMBERS = (
    "format",
    "version",
    "set_id",
    "manifest_file",
    "manifest_sha256",
    "fingerprint",
    "practice",
    "cause",
    "ceremony_id",
    "who",
    "why",
    "utc",
)
_MAX_TEXT = 400


class SetRetired(KcmError):
    """A share set that was aborted, interrupted or retired was asked for."""

    code = "set-retired"


@dataclass(frozen=True)
class Retirement:
    """Public facts of a void share set (or why its record cannot be read)."""

    set_id: str
    cause: str
    ceremony_id: str
    who: str
    why: str
    utc: str
    file: str
    #: the record cannot be read ("" when it was read): the set is refused anyway
    unreadable: str = ""

    def describe(self) -> str:
        """Which set, what voided it, who and why."""
        if self.unreadable:
            return (
                f"share set {self.set_id} has a retirement record ({FOLDER}/{self.file}) that "
                f"cannot be read ({self.unreadable})"
            )
        verb = {
            "aborted": "was made by ceremony {c}, which was aborted",
            "interrupted": "was made by ceremony {c}, which was interrupted and closed",
            "retired": "was retired by {c}",
        }.get(self.cause, "was voided by {c}")
        when = f" on {self.utc}" if self.utc else ""
        by = f" by {self.who}" if self.who else ""
        return (
            f"share set {self.set_id} {verb.format(c=self.ceremony_id)}{when}{by} "
            f"(reason: {self.why})"
        )


def record_name(set_id: object, practice: bool) -> str:
    """The record's file name in ``retired/``."""
    return f"{'PRACTICE-' if practice else ''}set-{set_id}.json"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str, what: str) -> str:
    text = " ".join(str(value).split())
    if not text:
        raise SetRetired(f"say {what}")
    if len(text) > _MAX_TEXT:
        raise SetRetired(f"{what} is longer than {_MAX_TEXT} characters")
    return text


def _manifest_facts(manifest: Mapping[str, Any]) -> tuple[Any, str, bool]:
    set_id = manifest.get("set_id")
    if set_id is None or not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", str(set_id)):
        raise SetRetired(f"the manifest names no usable set id ({set_id!r})")
    return set_id, str(manifest.get("fingerprint", "")), manifest.get("practice") is True


def write(
    ws: Workspace,
    manifest: Mapping[str, Any],
    *,
    manifest_file: str,
    manifest_data: bytes,
    cause: str,
    ceremony_id: str,
    who: str,
    why: str,
    utc: str | None = None,
) -> dict[str, Any]:
    """Write the retirement record of ``manifest``'s set; returns it (public facts).

    Raises:
        SetRetired: an unknown cause, an empty reason, or the set already has a different
            retirement record (it is void already: the message names it).
    """
    if cause not in CAUSES:
        raise SetRetired(f"unknown retirement cause {cause!r}")
    set_id, fingerprint, practice = _manifest_facts(manifest)
    practice = practice or Path(manifest_file).name.upper().startswith("PRACTICE-")
    record = {
        "format": FORMAT,
        "version": 1,
        "set_id": set_id,
        "manifest_file": Path(manifest_file).name,
        "manifest_sha256": hashlib.sha256(manifest_data).hexdigest(),
        "fingerprint": fingerprint,
        "practice": practice,
        "cause": cause,
        "ceremony_id": _text(ceremony_id, "which ceremony"),
        "who": _text(who, "who retires the set"),
        "why": _text(why, "why the set is retired"),
        "utc": utc or _utc_now(),
    }
    name = record_name(set_id, practice)
    existing = find(ws, set_id, practice)
    if existing is not None:
        raise SetRetired(f"{existing.describe()}: it is void already", set_id=str(set_id))
    data = (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    ws.write_new(FOLDER, name, data)
    return record


def find(ws: Workspace, set_id: object, practice: bool) -> Retirement | None:
    """The retirement of a set (None when it has no record)."""
    name = record_name(set_id, practice)
    if name not in ws.list_files(FOLDER, ".json"):
        return None
    try:
        doc = strictjson.loads(ws.read(f"{FOLDER}/{name}"))
    except (SafeIOError, strictjson.StrictJSONError) as exc:
        return _unreadable(set_id, name, str(exc))
    except OSError as exc:
        return _unreadable(set_id, name, exc.strerror or type(exc).__name__)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        return _unreadable(set_id, name, f"not an {FORMAT} version 1 record")
    if set(doc) != set(MEMBERS) or str(doc.get("set_id")) != str(set_id):
        return _unreadable(set_id, name, "its members or set id are not as docs/formats.md says")
    if doc.get("cause") not in CAUSES or not all(
        isinstance(doc.get(k), str) for k in ("ceremony_id", "who", "why", "utc")
    ):
        return _unreadable(set_id, name, "malformed cause, ceremony, who, why or time")
    return Retirement(
        set_id=str(set_id),
        cause=str(doc["cause"]),
        ceremony_id=str(doc["ceremony_id"]),
        who=str(doc["who"]),
        why=str(doc["why"]),
        utc=str(doc["utc"]),
        file=name,
    )


def _unreadable(set_id: object, name: str, why: str) -> Retirement:
    return Retirement(str(set_id), "", "", "", "", "", name, unreadable=why)


def check_not_retired(ws: Workspace, manifest: Mapping[str, Any]) -> None:
    """Refuse a set that was aborted, interrupted or retired.

    Raises:
        SetRetired: the message names the set, what voided it (the ceremony), who and why.
    """
    set_id = manifest.get("set_id")
    practice = manifest.get("practice") is True or str(manifest.get("_file", "")).upper().startswith(
        "PRACTICE-"
    )
    r = find(ws, set_id, practice)
    if r is None:
        return
    raise SetRetired(
        f"{r.describe()}. Its shares are refused: they open no MasterKey in use. "
        f"Use the shares of another set.",
        set_id=str(set_id),
    )


def retire_set(
    media: str | Path,
    manifest_file: str,
    *,
    who: str,
    why: str,
    witness: str,
    clock: Callable[[], str] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Retire a share set (replaced by a reshare, or no longer wanted), journaled.

    A small journal ``ceremonies/[PRACTICE-]retire-set-<id>-<time>-<hex>/journal.db``
    records ``set.retired`` (the set, fingerprint, who, the witness, why), then the record
    is written and the journal closed (``state: retired``): ``journal verify`` checks it.

    Returns:
        (the retirement record, the journal's path).

    Raises:
        SetRetired: no such manifest, already void, empty reason, who or witness.
    """
    from core.journal import Journal

    ws = Workspace(media)
    name = Path(manifest_file).name
    who = _text(who, "who retires the set")
    why = _text(why, "why the set is retired")
    witness = _text(witness, "which witness saw it")
    if name not in ws.list_files("manifests", ".json"):
        raise SetRetired(f"no share-set manifest {name} in {Path(media) / 'manifests'}")
    try:
        data = ws.read(f"manifests/{name}")
        manifest = strictjson.loads(data)
    except (SafeIOError, OSError, strictjson.StrictJSONError) as exc:
        raise SetRetired(f"manifests/{name} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise SetRetired(f"manifests/{name} is not a share-set manifest")
    manifest["_file"] = name
    set_id, fingerprint, practice = _manifest_facts(manifest)
    practice = practice or name.upper().startswith("PRACTICE-")
    existing = find(ws, set_id, practice)
    if existing is not None:
        raise SetRetired(f"{existing.describe()}: it is void already", set_id=str(set_id))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cid = f"{'PRACTICE-' if practice else ''}retire-set-{set_id}-{stamp}-{_secrets.token_hex(2)}"
    folder = ws.folder(f"ceremonies/{cid}", create=True, exclusive=True)
    journal = Journal.create(
        folder / "journal.db",
        cid,
        details={"purpose": "retire-set", "practice": practice},
        clock=clock,
    )
    try:
        facts = {
            "set_id": set_id,
            "manifest_file": name,
            "fingerprint": fingerprint,
            "who": who,
            "witness": witness,
            "why": why,
        }
        journal.append("set.retired", facts)
        try:
            record = write(
                ws,
                manifest,
                manifest_file=name,
                manifest_data=data,
                cause="retired",
                ceremony_id=cid,
                who=who,
                why=why,
            )
        except (OSError, SafeIOError) as exc:
            journal.append("exception", {"text": f"the retirement record was not written: {exc}"})
            journal.close({"state": "failed"})
            raise SetRetired(f"the retirement record could not be written: {exc}") from None
        journal.append(
            "step.result",
            {"retirement_file": f"{FOLDER}/{record_name(set_id, practice)}"},
        )
        journal.close({"state": "retired"})
    finally:
        journal.shutdown()
    return record, folder / "journal.db"
