"""The journal in SQLite: :class:`Journal` (create, open, append, close, sign) and reading
its rows."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from core.journal.chain import verify_rows
from core.journal.model import (
    _FIELDS,
    CLOSED,
    FORMAT_VERSION,
    GENESIS_PREV_HASH,
    OPENED,
    Event,
    JournalClosedError,
    JournalError,
    _BadDetails,
    _check_public,
    _utc_now,
    canonical_json,
    row_hash,
)


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
