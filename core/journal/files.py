"""The journal's files: JSON Lines and transcript exports, verifying a journal or a
transcript from its file, the ``kcm-ceremony journal`` command."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from core import words as _words
from core.journal.chain import VerifyResult, verify_rows
from core.journal.model import _HEX64, CLOSED, Event, JournalError, canonical_json, hash_words
from core.journal.store import _event_from_row, _read_head, read_events, read_signature


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
    "CLOSED (interrupted)": "the journal was closed after a crash, when no key could sign it: "
    "only the final hash written on the paper log at the closing proves it; pass --final",
    "UNANCHORED": "the chain and its signature are intact, but nothing outside the journal "
    "says the signing key is the MasterKey (an edited journal can be re-signed with another "
    "key): pass --fingerprint (KCV words from the paper log), --manifest or --final",
}

def cli_main(argv: list[str]) -> int:
    """``kcm-ceremony journal verify|export PATH``.

    Exit status: 0 OK (intact, closed, and proven by the paper log's final hash or by a
    signature of the MasterKey fingerprint given; an open journal with ``--allow-open``);
    1 tampering, a signature that does not verify or is by another key, a mismatch with
    ``--final``; 2 usage or unreadable file; 3 intact but not closed; 4 intact but UNSIGNED,
    UNANCHORED or CLOSED (interrupted) without ``--final`` (nothing outside the journal
    vouches for it). A journal closed after a crash (:mod:`core.ceremony.interrupted`)
    reads ``CLOSED (interrupted)``, and exits 0 with the paper log's ``--final``.
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
