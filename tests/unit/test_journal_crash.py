"""Crash test: SIGKILL of a process appending to the journal leaves a journal that verifies.

Each append is reported on stdout only after it returned (committed with synchronous=FULL),
so every reported event must be in the file after the kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from core import journal as jr

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from core.journal import Journal
    j = Journal.create(sys.argv[1], "crash-1", details={"script_name": "crash"})
    i = 0
    while True:
        i += 1
        ev = j.append("step.ack", {"n": i, "pad": "x" * 200}, act="a", step=f"s{i}", role="r")
        print(ev.seq, ev.hash, flush=True)
    """
)


def test_sigkill_mid_append_leaves_verifiable_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    reported: list[tuple[int, str]] = []
    for line in proc.stdout:
        seq, h = line.split()
        reported.append((int(seq), h))
        if len(reported) >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = jr.verify(path)
    assert res.ok, res.message
    assert not res.closed
    last_seq, last_hash = reported[-1]
    assert res.count >= last_seq
    # the last reported (committed) event is present with the same hash
    j = jr.Journal.open(path)
    events = {e.seq: e.hash for e in j.events()}
    j.shutdown()
    assert events[last_seq] == last_hash
    assert jr.cli_main(["verify", str(path), "--allow-open"]) == 0
