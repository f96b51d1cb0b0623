"""Journal: hash chain, durability settings, secret guard, tamper detection, export, CLI."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from core import journal as jr
from core.journal import Journal, SecretRefusedError


def _clock() -> str:
    _clock.n += 1  # type: ignore[attr-defined]
    return f"2026-11-28T10:00:{_clock.n:02d}.000000Z"  # type: ignore[attr-defined]


_clock.n = 0  # type: ignore[attr-defined]


def make_journal(tmp_path: Path, rows: int = 8, close: bool = True) -> Path:
    path = tmp_path / "journal.db"
    j = Journal.create(
        path, "cer-1", details={"script_name": "genesis", "script_version": "1"}, clock=_clock
    )
    for i in range(rows):
        j.append(
            "step.ack",
            {"n": i, "kcv": "ab12 cd34", "step_title": f"Step {i}"},
            act="a1",
            step=f"s{i}",
            role="witness",
        )
    if close:
        j.close()
    j.shutdown()
    return path


def _sql(path: Path, *stmts: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for s in stmts:
            conn.execute(s)
    conn.close()


def test_chain_and_pragmas(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    res = jr.verify(path)
    assert res.ok and res.closed and res.count == 10
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    rows = conn.execute("SELECT seq, prev_hash, hash FROM events ORDER BY seq").fetchall()
    assert rows[0][1] == "0" * 64
    for a, b in itertools.pairwise(rows):
        assert b[1] == a[2]
    conn.close()


def test_row_hash_is_sha256_over_prev_and_canonical_row(tmp_path: Path) -> None:
    import hashlib

    path = make_journal(tmp_path, rows=1)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    r = dict(conn.execute("SELECT * FROM events WHERE seq = 2").fetchone())
    conn.close()
    body = {k: r[k] for k in jr._FIELDS}
    body["details"] = json.loads(r["details"])
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert r["hash"] == hashlib.sha256(bytes.fromhex(r["prev_hash"]) + text.encode()).hexdigest()


def test_writer_connection_is_synchronous_full(tmp_path: Path) -> None:
    j = Journal.create(tmp_path / "j.db", "c")
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    j.shutdown()


@pytest.mark.parametrize(
    "details",
    [
        {"share": b"\x01\x02"},
        {"x": bytearray(b"k")},
        {"x": memoryview(b"k")},
        {"x": object()},
        {"mnemonic": "abc"},
        {"nested": {"passphrase": "x"}},
        {"x": float("nan")},
        {1: "int key"},
        {"words": " ".join(["academic"] * 20)},
        {"words": ["academic"] * 33},
    ],
)
def test_secret_guard_refuses(tmp_path: Path, details: dict[object, object]) -> None:
    j = Journal.create(tmp_path / "j.db", "c")
    with pytest.raises(SecretRefusedError):
        j.append("step.result", details)  # type: ignore[arg-type]
    # nothing was written
    assert j.count == 1
    j.shutdown()
    assert jr.verify(tmp_path / "j.db").count == 1


def test_public_words_under_threshold_are_accepted(tmp_path: Path) -> None:
    j = Journal.create(tmp_path / "j.db", "c")
    j.append("step.result", {"kcv_words": ["academic"] * 7, "fingerprint": "ab" * 32})
    j.shutdown()


def test_closed_journal_refuses_appends_and_reopen(tmp_path: Path) -> None:
    path = make_journal(tmp_path, rows=2)
    with pytest.raises(jr.JournalClosedError):
        Journal.open(path)


def test_reopen_continues_chain(tmp_path: Path) -> None:
    path = make_journal(tmp_path, rows=2, close=False)
    j = Journal.open(path)
    j.append("step.done", {"ok": True}, act="a", step="b")
    j.close()
    j.shutdown()
    assert jr.verify(path).ok


def test_create_refuses_existing(tmp_path: Path) -> None:
    path = make_journal(tmp_path, rows=1)
    with pytest.raises(jr.JournalError):
        Journal.create(path, "again")


# --- tampering: each kind detected at the right row ---------------------------------------


def test_modified_details_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(
        path,
        """UPDATE events SET details = '{"kcv":"ffff ffff","n":3,"step_title":"Step 3"}' WHERE seq = 5""",
    )
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 5, res.message


def test_modified_role_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(path, "UPDATE events SET role = 'admin' WHERE seq = 4")
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 4


def test_modified_and_rehashed_row_detected_at_next_row(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    r = dict(conn.execute("SELECT * FROM events WHERE seq = 4").fetchone())
    r["details"] = json.loads(r["details"])
    r["role"] = "admin"
    new = jr.row_hash(r["prev_hash"], r)
    with conn:
        conn.execute("UPDATE events SET role='admin', hash=? WHERE seq=4", (new,))
    conn.close()
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 5 and "link" in res.message


def test_deleted_row_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(path, "DELETE FROM events WHERE seq = 6")
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 6 and "deleted" in res.message


def test_inserted_row_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    r4 = dict(conn.execute("SELECT * FROM events WHERE seq = 4").fetchone())
    with conn:
        conn.execute("UPDATE events SET seq = seq + 100 WHERE seq >= 5")
        conn.execute("UPDATE events SET seq = seq - 99 WHERE seq >= 105")
        fake = {**r4, "seq": 5, "prev_hash": r4["hash"], "kind": "step.ack", "role": "intruder"}
        fake["details"] = json.loads(r4["details"])
        fake["hash"] = jr.row_hash(fake["prev_hash"], fake)
        fake["details"] = jr.canonical_json(fake["details"])
        conn.execute(
            "INSERT INTO events (seq, ts, ceremony_id, act, step, role, kind, details, prev_hash, hash)"
            " VALUES (:seq, :ts, :ceremony_id, :act, :step, :role, :kind, :details, :prev_hash, :hash)",
            fake,
        )
    conn.close()
    res = jr.verify(path)
    # the forged row 5 hashes correctly, but the original row (now 6) links to row 4
    assert not res.ok and res.bad_seq == 6 and "link" in res.message


def test_swapped_rows_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(
        path,
        "UPDATE events SET seq = -1 WHERE seq = 3",
        "UPDATE events SET seq = 3 WHERE seq = 7",
        "UPDATE events SET seq = 7 WHERE seq = -1",
    )
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 3


def test_truncated_tail_detected_by_head(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(path, "DELETE FROM events WHERE seq >= 8")
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 8 and "truncated" in res.message


def test_truncated_tail_with_forged_head_detected_by_paper_hash(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    final = jr.verify(path).final_hash
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM events WHERE seq >= 8")
        h = conn.execute("SELECT hash FROM events WHERE seq = 7").fetchone()[0]
        conn.execute("UPDATE head SET count = 7, hash = ?", (h,))
    conn.close()
    res = jr.verify(path)
    assert res.ok and not res.closed  # the chain alone cannot tell: it reports OPEN
    res = jr.verify(path, expected_final=final)
    assert not res.ok and "paper log" in res.message
    words = " ".join(jr.hash_words(final))
    assert not jr.verify(path, expected_final=words).ok
    assert jr.cli_main(["verify", str(path)]) == 3  # open journal: non-zero
    assert jr.cli_main(["verify", str(path), "--final", final]) == 1


def test_paper_hash_in_words_accepted(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    final = jr.verify(path).final_hash
    assert jr.verify(path, expected_final=" ".join(jr.hash_words(final))).ok
    assert jr.cli_main(["verify", str(path), "--final", final]) == 0


def test_appended_after_close_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path, rows=2)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    last = dict(conn.execute("SELECT * FROM events ORDER BY seq DESC LIMIT 1").fetchone())
    extra = {**last, "seq": last["seq"] + 1, "prev_hash": last["hash"], "kind": "step.ack"}
    extra["details"] = {}
    extra["hash"] = jr.row_hash(extra["prev_hash"], extra)
    extra["details"] = "{}"
    with conn:
        conn.execute(
            "INSERT INTO events VALUES (:seq, :ts, :ceremony_id, :act, :step, :role, :kind, :details, :prev_hash, :hash)",
            extra,
        )
        conn.execute("UPDATE head SET count = ?, hash = ?", (extra["seq"], extra["hash"]))
    conn.close()
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == extra["seq"]


def test_noncanonical_details_detected(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    conn = sqlite3.connect(path)
    d = conn.execute("SELECT details FROM events WHERE seq = 3").fetchone()[0]
    with conn:
        conn.execute(
            "UPDATE events SET details = ? WHERE seq = 3", (json.dumps(json.loads(d), indent=1),)
        )
    conn.close()
    res = jr.verify(path)
    assert not res.ok and res.bad_seq == 3


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_journal(tmp_path)
    # intact but unsigned: not "OK" without the paper log's final hash (issue 12)
    assert jr.cli_main(["verify", str(path)]) == 4
    assert "UNSIGNED" in capsys.readouterr().out
    final = jr.verify(path).final_hash
    assert jr.cli_main(["verify", str(path), "--final", final]) == 0
    assert ": OK:" in capsys.readouterr().out
    _sql(path, "UPDATE events SET kind = 'x' WHERE seq = 2")
    assert jr.cli_main(["verify", str(path)]) == 1
    assert "row 2" in capsys.readouterr().out
    assert jr.cli_main(["verify", str(tmp_path / "missing.db")]) == 2
    open_path = make_journal(tmp_path / "o", close=False)
    assert jr.cli_main(["verify", str(open_path)]) == 3
    assert jr.cli_main(["verify", str(open_path), "--allow-open"]) == 0


def test_verify_does_not_modify_file(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    before = path.read_bytes()
    jr.verify(path)
    assert path.read_bytes() == before


# --- export ---------------------------------------------------------------------------------


def test_export_jsonl_and_transcript(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    assert jr.cli_main(["export", str(path), "--out", str(tmp_path / "out")]) == 0
    jl = tmp_path / "out" / "journal.jsonl"
    md = tmp_path / "out" / "journal.transcript.md"
    res = jr.verify(jl)
    assert res.ok and res.closed and res.count == 10
    text = md.read_text()
    final = jr.verify(path).final_hash
    assert final in text
    assert " ".join(jr.hash_words(final)) in text
    assert "Step 3" in text and "[witness]" in text
    # the JSONL export is tamper-evident too
    lines = jl.read_text().splitlines()
    row = json.loads(lines[4])
    row["role"] = "admin"
    lines[4] = json.dumps(row)
    jl.write_text("\n".join(lines) + "\n")
    res = jr.verify(jl)
    assert not res.ok and res.bad_seq == 5


def test_export_refuses_tampered(tmp_path: Path) -> None:
    path = make_journal(tmp_path)
    _sql(path, "UPDATE events SET role = 'x' WHERE seq = 2")
    assert jr.cli_main(["export", str(path), "--out", str(tmp_path / "o")]) == 1


def test_practice_marked_in_transcript(tmp_path: Path) -> None:
    j = Journal.create(
        tmp_path / "p.db", "c", details={"practice": True, "script_name": "practice"}
    )
    j.append("step.done", {"step_title": "Generate"}, act="a", step="s")
    events = j.events()
    j.shutdown()
    md = jr.export_transcript(events, tmp_path / "p.md").read_text()
    assert md.startswith("# PRACTICE")
    assert md.count("PRACTICE") >= 3


def test_dispatcher_runs_journal_verify(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = make_journal(tmp_path)
    root = Path(__file__).resolve().parents[2]
    final = jr.verify(path).final_hash
    ok = subprocess.run(
        [sys.executable, "-m", "kcm_tui.cli", "journal", "verify", str(path), "--final", final],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "OK" in ok.stdout
    _sql(path, "DELETE FROM events WHERE seq = 4")
    bad = subprocess.run(
        [sys.executable, "-m", "kcm_tui.cli", "journal", "verify", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "row 4" in bad.stdout
