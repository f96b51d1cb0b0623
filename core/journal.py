"""The tamper-evident ceremony journal: an append-only, hash-chained SQLite event log.

One row per event in table ``events``::

    seq          1, 2, 3, ... (no gaps)
    ts           UTC time, ISO 8601 with microseconds and a ``Z``
    ceremony_id  the ceremony this journal belongs to (same on every row)
    act, step    the script position ("" for ceremony-level events)
    role         the role that caused the event ("" if none)
    kind         event kind, e.g. ``step.ack`` (see :data:`EVENT_KINDS`)
    details      public details as canonical JSON
    prev_hash    hash of the previous row (64 zeros on row 1)
    hash         SHA-256( bytes.fromhex(prev_hash) || canonical_json(row without hash) )

``canonical_json`` is ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` encoded as UTF-8; in the hashed row ``details`` is the
decoded object (not its text), so a JSON Lines export can be re-verified with any JSON
library. Row 1 is ``journal.opened`` (ceremony id, script name and version, PRACTICE flag);
the last row of a finished ceremony is ``journal.closed`` carrying the number of rows before
it. After ``journal.closed`` nothing can be appended.

Durability: every append is one transaction committed with ``journal_mode=DELETE`` and
``synchronous=FULL``: the rollback journal and the database file are fsync-ed before
:meth:`Journal.append` returns, so an event is on the media before the UI shows the step as
done. DELETE mode (rather than WAL) was chosen because the database lives on removable media
that is carried away: after each commit the ``.db`` file alone is complete (no ``-wal`` or
``-shm`` side files to lose when copying, no shared-memory mapping on vfat/exFAT). At
ceremony pace the extra fsyncs are irrelevant. A crash in the middle of a commit leaves a
hot ``-journal`` file that SQLite rolls back the next time the file is opened writable,
so the journal then ends at the last committed event.

Threads: a :class:`Journal` may be used from any thread (the TUI runs card writes, camera
scans, sealing and exports in worker threads while the UI thread reads the state). Its
connection is opened with ``check_same_thread=False`` and every access (append, close,
read of the rows or of the last row, shutdown) holds one re-entrant lock, so appends are
serialised: each takes the previous row's hash and the next sequence number, and commits
(``synchronous=FULL``) before the next append can start. The chain order is the commit
order and has no gaps, whichever threads append.

What verification can detect:

* modified row (any column, including details): the row's hash no longer matches;
* deleted row in the middle: the sequence jumps and the next row's ``prev_hash`` breaks;
* inserted row: the sequence repeats or the ``prev_hash`` link breaks at the inserted row;
* reordered rows: the ``prev_hash`` link breaks at the first moved row;
* truncated tail: a hash chain alone cannot see a clean cut at the end. Three layers:
  (1) table ``head`` holds the row count and last hash, updated in the same transaction as
  each append, so a naive ``DELETE`` of the last rows is reported ("head records N rows");
  (2) a finished ceremony ends with ``journal.closed``: a journal without it is reported as
  *open* (``kcm-ceremony journal verify`` exits 3 unless ``--allow-open``, used after a
  crash); (3) the only anchor a deliberate attacker cannot rewrite is outside the file:
  the final hash written on the paper log (hex or words) and in the exported transcript.
  Pass it as ``--final`` to prove that nothing after it was removed or replaced.

Secrets: callers never pass secret values (the keyholder never hands them out). As a
guard, :meth:`Journal.append` accepts only JSON types (``str``, ``int``, ``float``,
``bool``, ``None``, lists and str-keyed dicts): ``bytes``, ``bytearray``, ``memoryview``
and any other object (such as a secure buffer) raise :class:`SecretRefusedError`, as do keys
named like secrets (``mnemonic``, ``secret``, ``passphrase``, ...) and any string that holds
20 or more SLIP-39 words in a row (a share mnemonic is 20 or 33). Word renderings of public
hashes are therefore never stored: they are derived from the hex when displayed.

Command line (``kcm-ceremony journal ...``)::

    journal verify PATH [--final HEX_OR_WORDS] [--fingerprint KCV] [--manifest FILE]
                        [--allow-open]        (.db, .jsonl, or a transcript .md with .sig)
    journal export PATH [--out DIR]     writes PATH.jsonl and PATH.transcript.md
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import json
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from core import words as _words
from core.errors import KcmError

__all__ = [
    "EVENT_KINDS",
    "GENESIS_PREV_HASH",
    "Event",
    "Journal",
    "JournalClosedError",
    "JournalError",
    "SecretRefusedError",
    "VerifyResult",
    "canonical_json",
    "cli_main",
    "export_jsonl",
    "export_transcript",
    "hash_words",
    "read_events",
    "row_hash",
    "verify",
    "verify_rows",
]

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


def _connect(path: Path) -> sqlite_utils.Database:
    # check_same_thread=False: the Journal serialises every use of the connection with its
    # own lock (see "Threads" above), so worker threads may append.
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    return sqlite_utils.Database(conn)


class Journal:
    """An open, writable ceremony journal.

    Create one with :meth:`create` (new file) or :meth:`open` (continue after a restart;
    the chain is verified first). Each :meth:`append` is durable when it returns.
    """

    def __init__(self, db: sqlite_utils.Database, path: Path, clock: Callable[[], str]) -> None:
        self._db = db
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        events = read_events(db)
        if not events:
            raise JournalError(f"{path}: journal has no rows")
        self.ceremony_id = events[0].ceremony_id
        self._last = events[-1]

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        ceremony_id: str,
        *,
        details: Mapping[str, Any] | None = None,
        clock: Callable[[], str] | None = None,
    ) -> Journal:
        """Create a new journal file with its ``journal.opened`` row.

        Args:
            path: database file to create (must not exist).
            ceremony_id: identifier recorded on every row.
            details: public facts for the first row (script name/version, practice flag).
            clock: returns the UTC timestamp text (tests inject a fixed clock).

        Raises:
            JournalError: the file exists already.
        """
        p = Path(path)
        if p.exists():
            raise JournalError(f"{p}: a journal already exists here; use a new ceremony folder")
        p.parent.mkdir(parents=True, exist_ok=True)
        db = _connect(p)
        with db.atomic():
            db.table("events").create(
                {
                    "seq": int,
                    "ts": str,
                    "ceremony_id": str,
                    "act": str,
                    "step": str,
                    "role": str,
                    "kind": str,
                    "details": str,
                    "prev_hash": str,
                    "hash": str,
                },
                pk="seq",
                not_null={"ts", "ceremony_id", "kind", "details", "prev_hash", "hash"},
            )
            db.table("head").create({"id": int, "count": int, "hash": str}, pk="id")
        clk = clock or _utc_now
        first = {"format": FORMAT_VERSION, "ceremony_id": ceremony_id, **dict(details or {})}
        _check_public(first, "details")
        row = {
            "seq": 1,
            "ts": clk(),
            "ceremony_id": ceremony_id,
            "act": "",
            "step": "",
            "role": "",
            "kind": OPENED,
            "details": first,
            "prev_hash": GENESIS_PREV_HASH,
        }
        _write_row(db, row)
        return cls(db, p, clk)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, clock: Callable[[], str] | None = None
    ) -> Journal:
        """Open an existing journal to continue it (after a crash or restart).

        Raises:
            JournalError: the file is missing, or its chain does not verify.
            JournalClosedError: the journal is closed.
        """
        p = Path(path)
        if not p.exists():
            raise JournalError(f"{p}: no journal at this path")
        db = _connect(p)
        result = verify_rows(read_events(db), head=_read_head(db))
        if not result.ok:
            db.close()
            raise JournalError(f"{p}: {result.message}")
        if result.closed:
            db.close()
            raise JournalClosedError(f"{p}: the journal is closed; start a new ceremony")
        return cls(db, p, clock or _utc_now)

    @property
    def count(self) -> int:
        """Number of rows."""
        return self._last.seq

    @property
    def closed(self) -> bool:
        """True once ``journal.closed`` has been written."""
        return self._last.kind == CLOSED

    def final_hash(self) -> str:
        """Hash of the last row (hex): the value for the paper log once closed."""
        with self._lock:
            return self._last.hash

    def last(self) -> Event:
        """The last row written."""
        with self._lock:
            return self._last

    def events(self) -> list[Event]:
        """All rows, in order."""
        with self._lock:
            return read_events(self._db)

    def append(
        self,
        kind: str,
        details: Mapping[str, Any] | None = None,
        *,
        act: str = "",
        step: str = "",
        role: str = "",
    ) -> Event:
        """Append one event and commit it durably (fsync) before returning.

        Args:
            kind: event kind (see :data:`EVENT_KINDS`).
            details: PUBLIC details only (hex for bytes). Never pass a secret.
            act: act id, step: step id, role: role id (may be empty).

        Returns:
            The written event, with its hash.

        Raises:
            SecretRefusedError: details contain a non-public type or a mnemonic-like value.
            JournalClosedError: the journal is closed.
        """
        if not kind or kind in (OPENED,):
            raise JournalError(f"event kind {kind!r} cannot be appended")
        det: dict[str, Any] = dict(details or {})
        _check_public(det, "details")
        for name, val in (("act", act), ("step", step), ("role", role), ("kind", kind)):
            _check_public(val, name)
        with self._lock:
            return self._append_locked(kind, det, act=act, step=step, role=role)

    def _append_locked(
        self, kind: str, det: dict[str, Any], *, act: str, step: str, role: str
    ) -> Event:
        if self.closed:
            raise JournalClosedError("the journal is closed; nothing can be appended")
        row = {
            "seq": self._last.seq + 1,
            "ts": self._clock(),
            "ceremony_id": self.ceremony_id,
            "act": act,
            "step": step,
            "role": role,
            "kind": kind,
            "details": det,
            "prev_hash": self._last.hash,
        }
        self._last = _write_row(self._db, row)
        return self._last

    def close(self, details: Mapping[str, Any] | None = None) -> Event:
        """Write ``journal.closed`` (with the count of rows before it). Idempotent refusal after."""
        with self._lock:
            det = {**dict(details or {}), "rows_before": self._last.seq}
            return self.append(CLOSED, det)

    def add_signature(self, block: Mapping[str, Any]) -> None:
        """Store the signature of the closed journal's final hash (table ``signatures``,
        outside the hash chain, which it covers). Once; only after ``journal.closed``.

        Raises:
            JournalError: the journal is not closed, or is already signed.
        """
        with self._lock:
            if not self.closed:
                raise JournalError("only a closed journal is signed (its final hash)")
            if read_signature(self._db) is not None:
                raise JournalError("the journal is already signed")
            with self._db.atomic():
                if "signatures" not in self._db.table_names():
                    self._db.table("signatures").create({"purpose": str, "block": str}, pk="purpose")
                self._db.table("signatures").insert(
                    {"purpose": "journal-final-hash", "block": canonical_json(dict(block))}
                )

    def signature(self) -> dict[str, Any] | None:
        """The final-hash signature block, once signed."""
        with self._lock:
            return read_signature(self._db)

    def shutdown(self) -> None:
        """Close the database connection (the journal stays open as a record)."""
        with self._lock:
            self._db.close()


def _write_row(db: sqlite_utils.Database, row: dict[str, Any]) -> Event:
    h = row_hash(row["prev_hash"], row)
    stored = {**row, "details": canonical_json(row["details"]), "hash": h}
    with db.atomic():
        db.table("events").insert(stored)
        db.table("head").upsert({"id": 1, "count": row["seq"], "hash": h}, pk="id")
    return Event(hash=h, **row)


def _read_head(db: sqlite_utils.Database) -> tuple[int, str] | None:
    if "head" not in db.table_names():
        return None
    rows = list(db.query("SELECT count, hash FROM head WHERE id = 1"))
    if not rows:
        return None
    return int(rows[0]["count"]), str(rows[0]["hash"])


class _BadDetails(dict[str, Any]):
    """Marker for a details column that is not valid JSON (verification reports it)."""


def read_events(db: sqlite_utils.Database) -> list[Event]:
    """Read every row of a journal database ordered by ``seq``."""
    out: list[Event] = []
    for r in db.query(f"SELECT {', '.join(_FIELDS)}, hash FROM events ORDER BY seq"):
        out.append(_event_from_row(r))
    return out


def _event_from_row(r: Mapping[str, Any]) -> Event:
    raw = r.get("details")
    details: dict[str, Any]
    try:
        decoded = json.loads(raw) if isinstance(raw, str) else raw
        details = decoded if isinstance(decoded, dict) else _BadDetails(value=decoded)
        if isinstance(raw, str) and canonical_json(details) != raw:
            details = _BadDetails(value=decoded, reason="details text is not canonical JSON")
    except (TypeError, ValueError):
        details = _BadDetails(value=str(raw))
    return Event(
        seq=r["seq"],
        ts=r["ts"],
        ceremony_id=r["ceremony_id"],
        act=r["act"],
        step=r["step"],
        role=r["role"],
        kind=r["kind"],
        details=details,
        prev_hash=r["prev_hash"],
        hash=r["hash"],
    )


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    Attributes:
        ok: the chain is intact (and matches ``expected_final`` if one was given).
        count: rows read.
        closed: the last row is ``journal.closed``.
        final_hash: hash of the last row ("" if none).
        bad_seq: the first bad row (its expected sequence number) or None.
        message: a sentence for a person.
        signed: the journal carries a signature of its final hash (it verified: a
            signature that does not verify makes ``ok`` False).
        signer: the MasterKey fingerprint (hex) that signed it ("" if unsigned).
        anchored: the signer was checked against a fingerprint given from outside the
            journal (``fingerprint=``: the paper log, a manifest kept elsewhere).
        final_matched: the final hash from the paper log (``expected_final``) matched.
    """

    ok: bool
    count: int
    closed: bool
    final_hash: str
    bad_seq: int | None
    message: str
    signed: bool = False
    signer: str = ""
    anchored: bool = False
    final_matched: bool = False

    @property
    def proven(self) -> bool:
        """Intact AND tied to something outside the journal: the paper log's final hash,
        or a valid signature by the MasterKey fingerprint given. A chain alone can be
        recomputed by whoever edits the file; only this is "OK"."""
        return self.ok and (self.final_matched or (self.signed and self.anchored))

    @property
    def status(self) -> str:
        """``OK``, ``FAILED``, ``OPEN``, ``UNSIGNED`` or ``UNANCHORED`` (see the CLI)."""
        if not self.ok:
            return "FAILED"
        if self.proven:
            return "OK" if self.closed else "OPEN"
        if not self.closed:
            return "OPEN"
        return "UNANCHORED" if self.signed else "UNSIGNED"


def _fail(events: Sequence[Event], i: int, bad_seq: int, why: str) -> VerifyResult:
    last = events[i - 1].hash if i > 0 else ""
    return VerifyResult(False, len(events), False, last, bad_seq, f"row {bad_seq}: {why}")


def verify_rows(
    events: Sequence[Event],
    *,
    head: tuple[int, str] | None = None,
    expected_final: str | None = None,
    signature: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
) -> VerifyResult:
    """Recompute the chain over rows in file order and name the first bad row; check the
    signature of the final hash.

    Args:
        events: rows as stored (ordered by ``seq`` for a database, file order for JSONL).
        head: (count, hash) from the ``head`` table, if the source has one.
        expected_final: the final hash from the paper log (hex), if known.
        signature: the journal's ``journal-final-hash`` signature block, if it has one.
        fingerprint: the MasterKey fingerprint to check the signer against (64 hex, or the
            KCV as 16 hex or 7 words), from outside the journal.

    Returns:
        A :class:`VerifyResult`; ``ok`` is False on the first problem found.
    """
    res = _verify_chain(events, head=head, expected_final=expected_final)
    if not res.ok:
        return res
    return _check_signature(res, events[-1], signature, fingerprint)


def _check_signature(
    res: VerifyResult,
    last: Event,
    signature: Mapping[str, Any] | None,
    fingerprint: str | None,
) -> VerifyResult:
    """The signature step of :func:`verify_rows` (the chain is intact)."""
    from core import signatures as sig

    def failed(why: str) -> VerifyResult:
        return dataclasses.replace(res, ok=False, bad_seq=None, message=why)

    claimed = last.details.get("signed_by") if res.closed else None
    if signature is None:
        if claimed:
            return failed(
                f"the closing row says the journal is signed by the MasterKey "
                f"{' '.join(sig.kcv_words(str(claimed)))}, but it carries no signature: the "
                "signature was removed (or signing failed at the end of the ceremony: see the "
                "paper log)"
            )
        if fingerprint:
            return failed(
                "the journal carries no signature, so it cannot be checked against the "
                "fingerprint given"
            )
        return res
    try:
        signer = sig.verify_block(
            dict(signature),
            sig.journal_message(last.ceremony_id, last.seq, last.hash),
            purpose="journal-final-hash",
        )
    except sig.SignatureError as exc:
        return failed(f"journal signature: {exc}")
    if claimed and claimed != signer:
        return failed("the journal is signed by another key than the one its closing row names")
    words = " ".join(sig.kcv_words(signer))
    anchored = False
    if fingerprint:
        try:
            if not sig.fingerprint_matches(fingerprint, signer):
                return failed(
                    f"the journal is signed by the key with KCV words '{words}', not by the "
                    "MasterKey fingerprint given: it is not this MasterKey's record"
                )
        except sig.SignatureError as exc:
            raise JournalError(f"--fingerprint: {exc}") from None
        anchored = True
    note = f"; signed by the MasterKey with KCV words '{words}'" + (
        " (the fingerprint given)" if anchored else ""
    )
    return dataclasses.replace(
        res, signed=True, signer=signer, anchored=anchored, message=res.message + note
    )


def _verify_chain(
    events: Sequence[Event],
    *,
    head: tuple[int, str] | None,
    expected_final: str | None,
) -> VerifyResult:
    """The hash chain, the head table and the paper-log final hash."""
    if not events:
        return VerifyResult(
            False, 0, False, "", 1, "row 1: journal is empty (journal.opened missing)"
        )
    prev = GENESIS_PREV_HASH
    cid = events[0].ceremony_id
    for i, ev in enumerate(events):
        want = i + 1
        if ev.seq != want:
            if ev.seq > want:
                return _fail(
                    events, i, want, f"missing (next row found has sequence {ev.seq}): deleted row"
                )
            return _fail(
                events,
                i,
                want,
                f"sequence {ev.seq} found where {want} was expected: inserted or reordered row",
            )
        if isinstance(ev.details, _BadDetails):
            return _fail(events, i, want, "details are not canonical JSON: modified row")
        if i == 0 and ev.kind != OPENED:
            return _fail(events, i, want, f"first row must be {OPENED}, found {ev.kind!r}")
        if ev.ceremony_id != cid:
            return _fail(
                events,
                i,
                want,
                f"ceremony id {ev.ceremony_id!r} differs from {cid!r}: inserted row",
            )
        if ev.prev_hash != prev:
            return _fail(
                events,
                i,
                want,
                "previous-hash link broken: a row before it was changed, or this row was inserted or moved",
            )
        if not _HEX64.match(ev.hash or "") or row_hash(prev, ev.as_dict()) != ev.hash:
            return _fail(events, i, want, "hash does not match its contents: modified row")
        if ev.kind == CLOSED and i != len(events) - 1:
            return _fail(events, i + 1, want + 1, f"rows after {CLOSED}: appended after closing")
        prev = ev.hash
    last = events[-1]
    closed = last.kind == CLOSED
    if closed and last.details.get("rows_before") != last.seq - 1:
        return _fail(events, len(events) - 1, last.seq, "closing row's count does not match")
    if head is not None and (head[0] != last.seq or head[1] != last.hash):
        if head[0] > last.seq:
            return VerifyResult(
                False,
                len(events),
                closed,
                last.hash,
                last.seq + 1,
                f"row {last.seq + 1}: missing: the journal head records {head[0]} rows, "
                f"only {last.seq} are present (truncated)",
            )
        return VerifyResult(
            False,
            len(events),
            closed,
            last.hash,
            last.seq,
            f"row {last.seq}: the journal head records {head[0]} rows ending in {head[1][:16]}..., "
            "which does not match the rows present",
        )
    if expected_final is not None:
        exp = expected_final.lower()
        seqs = [e.seq for e in events if e.hash == exp]
        if not seqs:
            return VerifyResult(
                False,
                len(events),
                closed,
                last.hash,
                None,
                "the final hash from the paper log is not in this journal: rows were replaced or removed",
            )
        if seqs[0] != last.seq:
            return VerifyResult(
                False,
                len(events),
                closed,
                last.hash,
                seqs[0] + 1,
                f"row {seqs[0] + 1}: rows after the paper-log final hash (row {seqs[0]}) were appended",
            )
    state = (
        "closed"
        if closed
        else "OPEN (no journal.closed row: unfinished ceremony or truncated tail)"
    )
    return VerifyResult(
        True,
        len(events),
        closed,
        last.hash,
        None,
        f"{len(events)} rows verified, {state}",
        final_matched=expected_final is not None,
    )


def _load_jsonl(path: Path) -> list[Event]:
    return _load_jsonl_signed(path)[0]


def _load_jsonl_signed(path: Path) -> tuple[list[Event], dict[str, Any] | None]:
    """Rows of a JSON Lines export, and its signature trailer (``{"signature": {...}}``,
    the last line) if it has one."""
    out: list[Event] = []
    signature: dict[str, Any] | None = None
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise JournalError(f"{path}:{n}: not JSON ({exc})") from None
        if signature is not None:
            raise JournalError(f"{path}:{n}: a line after the signature trailer")
        if isinstance(obj, dict) and set(obj) == {"signature"}:
            if not isinstance(obj["signature"], dict):
                raise JournalError(f"{path}:{n}: the signature trailer is not an object")
            signature = obj["signature"]
            continue
        if not isinstance(obj, dict) or "details" not in obj:
            raise JournalError(f"{path}:{n}: not a journal row")
        det = obj["details"]
        obj = {**obj, "details": canonical_json(det) if isinstance(det, dict) else det}
        out.append(_event_from_row(obj))
    return out, signature


def verify(
    path: str | os.PathLike[str],
    *,
    expected_final: str | None = None,
    fingerprint: str | None = None,
) -> VerifyResult:
    """Verify a journal database (``.db``) or a JSON Lines export (``.jsonl``).

    The database is opened read-only where possible so verification does not change the
    evidence (a file with a hot rollback journal after a crash is opened writable so SQLite
    can roll the unfinished transaction back).

    Args:
        path: the file.
        expected_final: final hash from the paper log, hex or words.
        fingerprint: the MasterKey fingerprint the signature must be by (64 hex, or the
            KCV as 16 hex or 7 words), from the paper log or a manifest.
    """
    p = Path(path)
    if not p.exists():
        raise JournalError(f"{p}: no such file")
    exp = _parse_final(expected_final) if expected_final else None
    if p.suffix == ".jsonl":
        rows, signature = _load_jsonl_signed(p)
        return verify_rows(rows, expected_final=exp, signature=signature, fingerprint=fingerprint)
    hot = Path(str(p) + "-journal").exists()
    uri = f"file:{p.resolve()}?mode=ro"
    conn = sqlite3.connect(str(p)) if hot else sqlite3.connect(uri, uri=True)
    db = sqlite_utils.Database(conn)
    try:
        if "events" not in db.table_names():
            raise JournalError(f"{p}: not a ceremony journal (no events table)")
        return verify_rows(
            read_events(db),
            head=_read_head(db),
            expected_final=exp,
            signature=read_signature(db),
            fingerprint=fingerprint,
        )
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{p}: cannot read the journal database ({exc})") from None
    finally:
        db.close()


def _parse_final(text: str) -> str:
    t = text.strip().lower()
    if _HEX64.match(t):
        return t
    try:
        return _words.from_words(text.lower(), 32).hex()
    except ValueError as exc:
        raise JournalError(
            f"--final: neither 64 hex digits nor the 26 hash words ({exc})"
        ) from None


def export_jsonl(
    events: Iterable[Event],
    out: str | os.PathLike[str],
    *,
    signature: Mapping[str, Any] | None = None,
) -> Path:
    """Write rows as JSON Lines (one canonical JSON object per line), then the signature
    of the final hash as a last line ``{"signature": {...}}`` if there is one; returns the
    path."""
    p = Path(out)
    with _open_out(p) as f:
        for ev in events:
            f.write(canonical_json(ev.as_dict()) + "\n")
        if signature is not None:
            f.write(canonical_json({"signature": dict(signature)}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return p


def _open_out(p: Path) -> Any:
    """Open an export file for writing without following a link planted at its name."""
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JournalError(f"{p} is a symbolic link: refused (nothing was written)") from None
        raise
    return open(fd, "w", encoding="utf-8")


def _fmt_details(d: Mapping[str, Any]) -> str:
    parts = []
    for k in sorted(d):
        v = d[k]
        parts.append(f"{k}={v if isinstance(v, str) else canonical_json(v)}")
    return "; ".join(parts)


def export_transcript(
    events: Sequence[Event],
    out: str | os.PathLike[str],
    *,
    signature: Mapping[str, Any] | None = None,
) -> Path:
    """Write the readable Markdown transcript for the paper log; returns the path.

    Every step with its events (acknowledgments by role, inputs, results such as
    fingerprints and file hashes, exceptions), then the final hash as hex and words, and
    who signed it (``signature``: the journal's final-hash signature block).
    """
    if not events:
        raise JournalError("cannot write a transcript of an empty journal")
    first = events[0]
    practice = bool(first.details.get("practice"))
    banner = "PRACTICE - NOT A REAL KEY - " if practice else ""
    lines = [
        f"# {banner}Ceremony transcript: {first.details.get('script_name', '')}",
        "",
    ]
    if practice:
        lines += ["**PRACTICE CEREMONY: throwaway key, no real key material.**", ""]
    lines += [
        f"- Ceremony id: `{first.ceremony_id}`",
        f"- Script: {first.details.get('script_name', '?')} version {first.details.get('script_version', '?')}",
        f"- Opened: {first.ts}",
        f"- Rows: {len(events)}",
        "",
    ]
    current: tuple[str, str] | None = None
    for ev in events:
        if (ev.act, ev.step) != current and (ev.act or ev.step):
            current = (ev.act, ev.step)
            title = ev.details.get("step_title") or ev.step
            act_title = ev.details.get("act_title") or ev.act
            lines += ["", f"## {banner}{act_title} / {title} (`{ev.act}.{ev.step}`)", ""]
        elif not (ev.act or ev.step) and current is not None:
            current = None
            lines += ["", f"## {banner}Ceremony", ""]
        who = f" [{ev.role}]" if ev.role else ""
        det = {k: v for k, v in ev.details.items() if k not in ("step_title", "act_title")}
        lines.append(f"- {ev.seq:>4} {ev.ts} **{ev.kind}**{who} {_fmt_details(det)}".rstrip())
    last = events[-1]
    lines += [
        "",
        "## Final hash (copy to the paper log)",
        "",
        f"- State: {'closed' if last.kind == CLOSED else 'OPEN (ceremony not finished)'}",
        f"- Rows: {last.seq}",
        f"- Hex: `{last.hash}`",
        f"- Words: {' '.join(hash_words(last.hash))}",
        "",
        "Verify with: `kcm-ceremony journal verify JOURNAL.db --final <hex or words>`",
        "",
    ]
    lines += _signature_lines(signature)
    p = Path(out)
    with _open_out(p) as f:
        f.write("\n".join(lines))
        f.flush()
        os.fsync(f.fileno())
    return p


def _signature_lines(signature: Mapping[str, Any] | None) -> list[str]:
    if signature is None:
        return [
            "## Signature",
            "",
            "UNSIGNED: no MasterKey was held in this ceremony, so nothing signed this journal.",
            "Its final hash on the paper log is the only anchor.",
            "",
        ]
    from core import signatures as sig

    pub = str(signature.get("public_key", ""))
    words = " ".join(sig.kcv_words(pub)) if len(pub) == 64 else "?"
    return [
        "## Signature",
        "",
        "The final hash is signed by the MasterKey signing key (Ed25519, purpose",
        "`journal-final-hash`):",
        "",
        f"- MasterKey fingerprint: `{pub}`",
        f"- KCV words: {words}",
        f"- Signature: `{signature.get('value', '')}`",
        "",
        "Verify with: `kcm-ceremony journal verify JOURNAL.db --fingerprint <KCV words from the",
        "paper log>` (or `--manifest manifest-set-N.json`). The transcript itself is signed in",
        "`transcript.md.sig`.",
        "",
    ]


def read_signature(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The journal's final-hash signature block (table ``signatures``), or None."""
    if "signatures" not in db.table_names():
        return None
    rows = list(db.query("SELECT block FROM signatures WHERE purpose = 'journal-final-hash'"))
    if not rows:
        return None
    try:
        block = json.loads(rows[0]["block"])
    except (TypeError, ValueError):
        return {"malformed": True}
    return block if isinstance(block, dict) else {"malformed": True}


def verify_transcript(
    path: str | os.PathLike[str], *, fingerprint: str | None = None
) -> tuple[bool, str, str]:
    """Check a transcript against its detached signature ``PATH.sig``.

    Returns:
        (ok, signer fingerprint hex, message); ``ok`` needs the signature to verify and,
        if ``fingerprint`` is given, to be by that MasterKey.
    """
    from core import signatures as sig

    p = Path(path)
    try:
        data = p.read_bytes()
        doc = json.loads(Path(str(p) + ".sig").read_text("utf-8"))
    except FileNotFoundError as exc:
        return False, "", f"{exc.filename}: missing (an unsigned transcript proves nothing)"
    except (OSError, ValueError) as exc:
        return False, "", f"cannot read the transcript or its signature ({exc})"
    try:
        signer = sig.verify_block(
            doc.get("signature") if isinstance(doc, dict) else None,
            sig.transcript_message(p.name, data),
            purpose="ceremony-transcript",
        )
    except sig.SignatureError as exc:
        return False, "", f"transcript signature: {exc}"
    words = " ".join(sig.kcv_words(signer))
    if fingerprint and not sig.fingerprint_matches(fingerprint, signer):
        return False, signer, f"signed by the key with KCV words '{words}', not the one given"
    return True, signer, f"signed by the MasterKey with KCV words '{words}'"


def _events_from_path(p: Path) -> list[Event]:
    if p.suffix == ".jsonl":
        return _load_jsonl(p)
    db = sqlite_utils.Database(sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True))
    try:
        return read_events(db)
    finally:
        db.close()


def _anchor_from_manifest(path: Path) -> str:
    """The MasterKey fingerprint of a genesis manifest, after checking the manifest's own
    signature by that key (a manifest kept apart from the journal, e.g. the exported one)."""
    from core import signatures as sig

    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise JournalError(f"--manifest {path}: cannot read it ({exc})") from None
    fp = manifest.get("fingerprint") if isinstance(manifest, dict) else None
    if not isinstance(fp, str) or not _HEX64.match(fp):
        raise JournalError(f"--manifest {path}: it names no MasterKey fingerprint")
    if "signature" in manifest:
        try:
            signer = sig.verify_block(
                manifest["signature"], sig.manifest_message(manifest), purpose="genesis-manifest"
            )
        except sig.SignatureError as exc:
            raise JournalError(f"--manifest {path}: {exc}") from None
        if signer != fp:
            raise JournalError(f"--manifest {path}: signed by another key than its fingerprint")
    return fp


def _signed_source(p: Path) -> tuple[list[Event], dict[str, Any] | None]:
    if p.suffix == ".jsonl":
        return _load_jsonl_signed(p)
    db = sqlite_utils.Database(sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True))
    try:
        return read_events(db), read_signature(db)
    finally:
        db.close()


_VERDICT_HELP: Final = {
    "UNSIGNED": "the journal carries no signature (no MasterKey was held in this ceremony, "
    "or it is an old journal): only the final hash on the paper log can prove it; pass --final",
    "UNANCHORED": "the chain and its signature are intact, but nothing outside the journal "
    "says the signing key is the MasterKey (an edited journal can be re-signed with another "
    "key): pass --fingerprint (KCV words from the paper log), --manifest or --final",
}


def cli_main(argv: list[str]) -> int:
    """``kcm-ceremony journal verify|export PATH``.

    Exit status: 0 OK (intact, closed, and proven by the paper log's final hash or by a
    signature of the MasterKey fingerprint given; an open journal with ``--allow-open``);
    1 tampering, a signature that does not verify or is by another key, a mismatch with
    ``--final``; 2 usage or unreadable file; 3 intact but not closed; 4 intact but UNSIGNED
    or UNANCHORED (nothing outside the journal vouches for it).
    """
    parser = argparse.ArgumentParser(prog="kcm-ceremony journal")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser("verify", help="recompute the hash chain, check the signature")
    pv.add_argument("path", help="journal.db, journal.jsonl, or a transcript.md (with .sig)")
    pv.add_argument("--final", help="final hash from the paper log (64 hex or 26 words)")
    pv.add_argument(
        "--fingerprint",
        help="the MasterKey fingerprint the journal must be signed by: 64 hex, or the KCV "
        "(16 hex or 7 words) from the paper log",
    )
    pv.add_argument(
        "--manifest", help="a genesis manifest (kept apart): its fingerprint is the anchor"
    )
    pv.add_argument(
        "--allow-open", action="store_true", help="accept a journal without journal.closed"
    )
    pe = sub.add_parser("export", help="write JSON Lines and a Markdown transcript")
    pe.add_argument("path")
    pe.add_argument("--out", help="output folder (default: next to the journal)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    path = Path(args.path)
    try:
        if args.cmd == "verify":
            anchor = args.fingerprint
            if args.manifest:
                anchor = _anchor_from_manifest(Path(args.manifest))
            if path.suffix == ".md":
                ok, _signer, message = verify_transcript(path, fingerprint=anchor)
                verdict = ("OK" if anchor else "UNANCHORED") if ok else "FAILED"
                print(f"{path}: {verdict}: {message}")
                return 0 if verdict == "OK" else (1 if not ok else 4)
            res = verify(path, expected_final=args.final, fingerprint=anchor)
            verdict = res.status
            print(f"{path}: {verdict}: {res.message}")
            if res.final_hash:
                print(f"final hash: {res.final_hash}")
                print(f"words:      {' '.join(hash_words(res.final_hash))}")
            if not res.ok:
                return 1
            if not res.closed and not args.allow_open:
                print("journal is not closed (use --allow-open after a crash)", file=sys.stderr)
                return 3
            if not res.closed:
                return 0
            if not res.proven:
                print(f"{verdict}: {_VERDICT_HELP[verdict]}", file=sys.stderr)
                return 4
            return 0
        events, signature = _signed_source(path)
        res = verify_rows(events, signature=signature)
        if not res.ok:
            print(f"{path}: FAILED: {res.message}; refusing to export", file=sys.stderr)
            return 1
        outdir = Path(args.out) if args.out else path.parent
        outdir.mkdir(parents=True, exist_ok=True)
        stem = path.stem
        j = export_jsonl(events, outdir / f"{stem}.jsonl", signature=signature)
        t = export_transcript(events, outdir / f"{stem}.transcript.md", signature=signature)
        print(f"wrote {j}\nwrote {t}\nfinal hash: {res.final_hash}")
        return 0
    except JournalError as exc:
        print(f"kcm-ceremony journal: {exc}", file=sys.stderr)
        return 2
