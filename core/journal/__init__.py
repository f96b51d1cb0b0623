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

from core.journal.chain import (  # noqa: F401
    VerifyResult,
    _check_signature,
    _fail,
    _verify_chain,
    verify_rows,
)
from core.journal.files import (  # noqa: F401
    _VERDICT_HELP,
    _anchor_from_manifest,
    _events_from_path,
    _fmt_details,
    _load_jsonl,
    _load_jsonl_signed,
    _open_out,
    _parse_final,
    _signature_lines,
    _signed_source,
    cli_main,
    export_jsonl,
    export_transcript,
    verify,
    verify_transcript,
)
from core.journal.model import (  # noqa: F401
    _FIELDS,
    _HEX64,
    _MNEMONIC_RUN,
    _SECRET_KEYS,
    CLOSED,
    EVENT_KINDS,
    FORMAT_VERSION,
    GENESIS_PREV_HASH,
    OPENED,
    Event,
    JournalClosedError,
    JournalError,
    SecretRefusedError,
    _BadDetails,
    _check_not_mnemonic,
    _check_public,
    _utc_now,
    canonical_json,
    hash_words,
    row_hash,
)
from core.journal.store import (  # noqa: F401
    Journal,
    _connect,
    _event_from_row,
    _read_head,
    _write_row,
    read_events,
    read_signature,
)

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
