"""After a crash (issue 15): the UI is killed in the middle of the share hand-out of a real
genesis (real keyholder process, custodian terminal on a pty, real journal on the demo
medium); the next start finds the OPEN journal, says what happened (the last step, whose
share was handed out and that it is void), and closes it as interrupted with a reason and
the witness's acknowledgement; ``kcm-ceremony journal verify`` then says CLOSED
(interrupted), and the set the crashed genesis made is refused from then on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core import journal as jmod
from core.demo import init_workspace
from kcm_tui.screens.closing import InterruptedModal
from kcm_tui.screens.common import MessageModal
from tests.tui.helpers import make_app, screen_text, settle, start_ready

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from core.demo import load_workspace
    from tests.tui.helpers import CustodianTerminal, begin, make_app
    from tests.tui.test_e2e import run_steps

    ws = load_workspace(sys.argv[1])
    terminal = CustodianTerminal()

    async def one_share(pilot, term):
        await pilot.press("r")  # the first custodian's share on their terminal
        await pilot.pause()
        while not term.share_words:
            await pilot.pause(0.05)
        await pilot.press("y")  # written down
        await pilot.pause()
        print("SHOWN", pilot.app.backend.session.journal_path, flush=True)
        await asyncio.sleep(600)  # killed here

    async def main():
        app = make_app(ws, terminal, script="genesis.toml")
        async with app.run_test(size=(80, 24)) as pilot:
            await begin(pilot)
            await run_steps(pilot, terminal, None, [], distribute_fn=one_share)

    asyncio.run(main())
    """
)


def _kcm(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kcm-ceremony")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, check=False)


def test_kill_the_ui_mid_distribution_restart_and_close_as_interrupted(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws.root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("SHOWN"), line
        journal = Path(line.split(maxsplit=1)[1].strip())
        os.kill(proc.pid, signal.SIGKILL)  # the UI dies mid-distribution
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        # the keyholder the UI started notices its parent's death and ends; give it time,
        # then end whatever of that session is left (our own process group only)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)

    before = _kcm("journal", "verify", str(journal))
    assert before.returncode == 3 and ": OPEN:" in before.stdout, before

    app = make_app(ws, script="genesis.toml")

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            await settle(pilot, lambda: bool(getattr(app.screen, "unfinished", None)))
            text = " ".join(screen_text(app).split())  # lines wrap at 80 columns
            assert "UNFINISHED" in text and "shares.distribute" in text, text
            assert "1 share(s) handed out" in text and "F6" in text, text
            await pilot.press("f6")
            await settle(pilot, lambda: isinstance(app.screen, InterruptedModal))
            text = " ".join(screen_text(app).split())
            assert "Custodian 1" in text and "VOID" in text, text
            # no reason, no witness: refused, nothing written
            await pilot.press("tab", "tab", "tab", "enter")  # reason -> box -> Cancel -> Close
            await pilot.pause()
            assert "Say what happened" in " ".join(screen_text(app).split())
            assert jmod.verify(journal).closed is False
            app.screen.query_one("#interrupted-reason").focus()
            await pilot.press(*"power", "space", *"cut")
            await pilot.press("enter")  # -> the witness's box
            await pilot.press("tab", "tab", "enter")  # box unticked: refused
            await pilot.pause()
            assert "A witness must tick the box" in " ".join(screen_text(app).split())
            assert jmod.verify(journal).closed is False
            app.screen.query_one("#interrupted-reason").focus()
            await pilot.press("tab", "space", "tab", "tab", "enter")  # tick, Close journal
            await settle(pilot, lambda: isinstance(app.screen, MessageModal))
            text = " ".join(screen_text(app).split())
            assert "CLOSED (interrupted)" in text and "marked void" in text, text
            await pilot.press("enter")
            await settle(pilot, lambda: not app.screen.unfinished)
            assert "UNFINISHED" not in screen_text(app)
            app.backend.close()

    asyncio.run(run())

    after = _kcm("journal", "verify", str(journal))
    assert "CLOSED (interrupted)" in after.stdout, after
    assert after.returncode == 4 and "--final" in after.stderr  # the paper log proves it
    final = next(ln.split()[-1] for ln in after.stdout.splitlines() if ln.startswith("final hash:"))
    proven = _kcm("journal", "verify", str(journal), "--final", final)
    assert proven.returncode == 0 and "CLOSED (interrupted)" in proven.stdout, proven
    rows = jmod._events_from_path(journal)
    row = next(e for e in rows if e.kind == "ceremony.interrupted")
    assert row.details["reason"] == "power cut" and row.details["witness"] == "witness"
    assert row.details["shown_to"] == ["c1"] and row.details["witness_acknowledged"] is True
    void = list((ws.media / "retired").glob("set-*.json"))
    assert len(void) == 1 and '"cause": "interrupted"' in void[0].read_text()
    listing = _kcm("set", "list", str(ws.media))
    assert "VOID" in listing.stdout and "interrupted" in listing.stdout, listing
