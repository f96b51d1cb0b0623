"""Abort end to end (issue 15): a real genesis (real keyholder process, custodian terminal
on a pty, real journal) aborted with F10 in the middle of the share hand-out, with a
reason; the next unseal-and-seal refuses that share set, naming the abort and its reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core import journal as jmod
from core.demo import init_workspace
from kcm_tui.screens.closing import AbortModal
from kcm_tui.screens.runner import ACTION_LABEL, RunnerScreen
from kcm_tui.screens.summary import SummaryScreen
from tests.tui.helpers import (
    CustodianTerminal,
    begin,
    make_app,
    press,
    screen_text,
    settle,
    tick_all,
    wait_until,
)
from tests.tui.test_e2e import run_steps

SIZE = (80, 24)


def _flat(app: Any) -> str:
    return " ".join(screen_text(app).split())  # lines wrap at 80 columns


def test_aborted_genesis_set_is_refused_by_the_next_unseal(tmp_path: Any) -> None:
    ws = init_workspace(tmp_path / "ws")
    terminal = CustodianTerminal()
    facts: dict[str, Any] = {}

    async def abort_mid_distribution(pilot: Any, term: CustodianTerminal) -> None:
        app = pilot.app
        await pilot.press("r")  # the first custodian's share on their terminal
        await settle(pilot, lambda: bool(term.share_words))
        # (after "written down" the typed re-entry would own the custodian's terminal)
        await pilot.press("f10")
        await wait_until(pilot, lambda: isinstance(app.screen, AbortModal))
        await pilot.press("enter")  # no reason: refused, nothing aborted
        await pilot.pause()
        assert "Say why the ceremony is aborted" in _flat(app)
        assert app.backend.session.state == "running"
        await pilot.press(*"custodian", "space", "3", "space", *"ill", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen))

    async def genesis() -> None:
        app = make_app(ws, terminal, script="genesis.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            await run_steps(pilot, terminal, None, [], distribute_fn=abort_mid_distribution)
            session = app.backend.session
            assert session.state == "aborted"
            assert "CEREMONY ABORTED" in screen_text(app)
            facts["journal"] = session.journal_path
            facts["cid"] = session.ceremony_id
            app.backend.close()

    async def unseal() -> None:
        app = make_app(ws, terminal, script="unseal-and-seal.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            for _ in range(20):
                assert isinstance(app.screen, RunnerScreen), screen_text(app)
                view = app.backend.session.current()
                if view.kind == "collect-shares":
                    break
                if view.kind in ACTION_LABEL and not view.performed:
                    await press(pilot, "#action")
                    await settle(pilot)
                await tick_all(pilot)
                await press(pilot, "#continue")
                await settle(pilot)
            assert app.backend.session.current().kind == "collect-shares"
            await press(pilot, "#action")
            await settle(pilot)
            assert isinstance(app.screen, RunnerScreen)  # no collection opened
            text = _flat(app)
            assert f"was made by ceremony {facts['cid']}, which was aborted" in text, text
            assert "custodian 3 ill" in text, text
            app.backend.close()

    asyncio.run(genesis())
    rows = jmod._events_from_path(facts["journal"])
    aborted = next(e for e in rows if e.kind == "ceremony.aborted")
    assert aborted.role == "admin" and aborted.details["reason"] == "custodian 3 ill"
    assert aborted.details["at_step"] == "shares.distribute"
    void = next(e for e in rows if e.kind == "set.aborted")
    record = json.loads((ws.media / void.details["retirement_file"]).read_text())
    assert record["cause"] == "aborted" and record["ceremony_id"] == facts["cid"]
    assert jmod.verify(facts["journal"]).ok
    asyncio.run(unseal())
