"""Verifying a chain of events: order, hashes, the closing row and its signature
(:class:`VerifyResult`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.journal.model import (
    _HEX64,
    CLOSED,
    GENESIS_PREV_HASH,
    OPENED,
    Event,
    JournalError,
    _BadDetails,
    row_hash,
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
        interrupted: the journal was closed after a crash (``journal.closed`` with
            ``state: interrupted``, by :mod:`core.ceremony.interrupted`): no key was held
            to sign it, so only the paper log's final hash proves it.
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
    interrupted: bool = False

    @property
    def proven(self) -> bool:
        """Intact AND tied to something outside the journal: the paper log's final hash,
        or a valid signature by the MasterKey fingerprint given. A chain alone can be
        recomputed by whoever edits the file; only this is "OK"."""
        return self.ok and (self.final_matched or (self.signed and self.anchored))

    @property
    def status(self) -> str:
        """``OK``, ``FAILED``, ``OPEN``, ``CLOSED (interrupted)``, ``UNSIGNED`` or
        ``UNANCHORED`` (see the CLI)."""
        if not self.ok:
            return "FAILED"
        if self.closed and self.interrupted:
            return "CLOSED (interrupted)"
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
    interrupted = closed and last.details.get("state") == "interrupted"
    state = (
        "closed (interrupted: the ceremony stopped before its end, see ceremony.interrupted)"
        if interrupted
        else "closed"
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
        interrupted=interrupted,
    )
