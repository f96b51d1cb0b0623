"""The journal used from several threads: appends are serialised, the chain has no gaps."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from core import journal as jr
from core.journal import Journal

PER_THREAD = 40


def test_two_threads_append_concurrently_chain_verifies(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal.create(path, "cer-threads", details={"script_name": "t"})
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                j.append("step.input", {"thread": name, "i": i}, act="a", step="s")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    j.close()
    events = j.events()
    j.shutdown()
    assert [e.seq for e in events] == list(range(1, 2 * PER_THREAD + 3))
    for name in ("one", "two"):  # each thread's own order is kept
        mine = [e.details["i"] for e in events if e.details.get("thread") == name]
        assert mine == list(range(PER_THREAD))
    res = jr.verify(path)
    assert res.ok, res.message
    assert res.closed
    assert res.count == 2 * PER_THREAD + 2


def test_worker_thread_appends_after_main_thread_opened(tmp_path: Path) -> None:
    """The connection is opened on one thread and used from another (the TUI worker)."""
    path = tmp_path / "j.db"
    j = Journal.create(path, "cer-worker")
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(j.append("step.result", {"ok": True})))
    t.start()
    t.join(timeout=30)
    assert len(out) == 1 and isinstance(out[0], jr.Event)
    assert j.last().seq == 2
    j.append("step.done")  # and back on the opening thread
    j.shutdown()
    assert jr.verify(path).ok


def test_durability_pragmas_kept(tmp_path: Path) -> None:
    j = Journal.create(tmp_path / "j.db", "cer-pragmas")
    conn: sqlite3.Connection = j._db.conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    j.shutdown()
