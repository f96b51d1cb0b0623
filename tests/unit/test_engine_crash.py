"""Crash test: SIGKILL of a process in the middle of a ceremony.

A child process runs the genesis script headless (engine + real journal + the
KeyholderDouble TEST DOUBLE of the keyholder port); a listener prints every journal event
after it is durable. The parent kills the child with SIGKILL after the third step is done;
the journal must verify (open, not closed) and hold every event the child reported,
including the last completed step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import journal as jr

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    from tests.support.engine import drive, ok_preflight
    from tests.support.keyholder_double import KeyholderDouble
    from core.ceremony.engine import Ceremony

    c = Ceremony.load(sys.argv[1], sys.argv[2], KeyholderDouble(), preflight=ok_preflight)
    def show(ev):
        print(ev.seq, ev.kind, ev.step, ev.hash, flush=True)
        if ev.kind == "step.done":
            time.sleep(0.2)
    c.subscribe(show)
    drive(c)
    print("FINISHED", flush=True)
    """
)


def test_sigkill_mid_ceremony_leaves_verifiable_journal(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=3072)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(pem)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(ROOT / "ceremony_scripts/genesis.toml"),
            str(ws),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    reported: list[list[str]] = []
    done = 0
    for line in proc.stdout:
        assert not line.startswith("FINISHED"), "the ceremony finished before it was killed"
        reported.append(line.split())
        if reported[-1][1] == "step.done":
            done += 1
            if done == 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = next((ws / "ceremonies").glob("*/journal.db"))
    res = jr.verify(db)
    assert res.ok, res.message
    assert not res.closed
    events = {e.seq: e for e in jr._events_from_path(db)}
    for seq, kind, _step, h in (r if len(r) == 4 else [r[0], r[1], "", r[-1]] for r in reported):
        assert events[int(seq)].hash == h and events[int(seq)].kind == kind
    last_done = [e for e in events.values() if e.kind == "step.done"][-1]
    assert last_done.step == reported[-1][2] == "bags"
    assert jr.cli_main(["verify", str(db), "--allow-open"]) == 0
    assert jr.cli_main(["verify", str(db)]) == 3
