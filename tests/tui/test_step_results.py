"""Issue 15 (results and feedback on steps), over the real app, engine and keyholder: a
genesis driven with the keyboard at 80x24.

- a Continue that is not ready yet is reached by Tab, names what it needs and refuses;
- an acknowledgement ticked before leaving for the distribution is still ticked on return
  (recorded when ticked; unticking takes it back, both journaled);
- after each good type-back the distribution says "Share verified" naming the custodian,
  and the entry is gone;
- the seal step shows the recipient, its key's fingerprint words (the ones the witness
  compared earlier) and the envelope with its size;
- the summary step shows the set id, KCV words, files and journal rows before anyone
  acknowledges it, and its instruction asks to copy only what it shows;
- V on the completion screen visibly verifies the journal again.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from core import journal as jmod
from core.demo import init_workspace
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.screens.entry import EntryPanel
from kcm_tui.screens.runner import ACTION_LABEL, RunnerScreen
from kcm_tui.screens.summary import SummaryScreen
from kcm_tui.widgets.ack import AckBox
from tests.tui.helpers import (
    CustodianTerminal,
    begin,
    make_app,
    press,
    screen_text,
    settle,
    tick_all,
    type_share,
)

SIZE = (80, 24)


def flat(text: str) -> str:
    """The screen's words on one line (wrapped lines joined)."""
    return " ".join(text.split())


async def tab_to_continue(pilot: Any) -> None:
    """Tab until Continue has the focus (it must be reachable)."""
    for _ in range(30):
        if pilot.app.focused is not None and pilot.app.focused.id == "continue":
            return
        await pilot.press("tab")
    raise AssertionError(f"Tab never reached Continue:\n{screen_text(pilot.app)}")


async def distribute_checked(pilot: Any, terminal: CustodianTerminal, verified: list[str]) -> None:
    """Hand out every share (reveal, written down, typed back) and note the confirmation
    line seen after each good type-back."""
    app = pilot.app
    session = app.backend.session
    while isinstance(app.screen, DistributionScreen):
        custodian = app.screen.custodian
        name = session.role_name(custodian)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        await type_share(pilot, terminal.share_words[-1], prefix_only=True)
        await pilot.pause()
        if isinstance(app.screen, DistributionScreen):  # the last one returns to the step
            text = flat(screen_text(app))
            assert f"Share verified {name}: the share typed back is exactly the share handed out." in text, text
            assert not list(app.screen.query(EntryPanel)), "the finished entry is still on screen"
            assert "type your share back" not in text
            verified.append(name)


def test_results_and_feedback_on_a_genesis(tmp_path: Any) -> None:
    ws = init_workspace(tmp_path / "ws")
    terminal = CustodianTerminal()
    app = make_app(ws, terminal, script="genesis.toml")
    seen: dict[str, Any] = {"verified": []}

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            session = app.backend.session
            c = session.c
            for _ in range(40):
                await pilot.pause()
                if isinstance(app.screen, SummaryScreen):
                    break
                if isinstance(app.screen, DistributionScreen):
                    await distribute_checked(pilot, terminal, seen["verified"])
                    await settle(pilot)
                    # back on the step: the box ticked before leaving is still ticked
                    box = app.screen.query_one("#ack-admin", AckBox)
                    assert box.value, screen_text(app)
                    assert "Shares verified (typed back or read back from the card): 5 of 5" in flat(screen_text(app))
                    seen["ack_kept"] = True
                    continue
                assert isinstance(app.screen, RunnerScreen), type(app.screen)
                view = session.current()
                assert view is not None
                if view.kind == "generate" and not view.performed:
                    # Continue is not ready: reached by Tab, names what it needs, refuses
                    await tab_to_continue(pilot)
                    text = flat(screen_text(app))
                    assert "Continue needs: the action 'Generate the MasterKey'" in text, text
                    assert "acknowledgement by Ceremony Administrator, Internal Witness" in text
                    await pilot.press("enter")
                    await pilot.pause()
                    now = session.current()
                    assert now is not None and now.index == view.index and not now.performed
                    assert app.screen.query_one("#continue-needs").has_class("-refused")
                    seen["refused"] = True
                if view.kind == "distribute-shares" and not view.performed:
                    # tick the administrator's box (Space), then leave for the distribution
                    app.screen.query_one("#ack-admin", AckBox).focus()
                    await pilot.press("space")
                    await pilot.pause()
                    assert "admin" in c.current_step.acks  # recorded when ticked
                    await pilot.press("space")  # untick: taken back
                    await pilot.pause()
                    assert "admin" not in c.current_step.acks
                    await pilot.press("space")
                    await pilot.pause()
                    await press(pilot, "#action")
                    continue
                if view.kind in ACTION_LABEL and not view.performed:
                    await press(pilot, "#action")
                    await settle(pilot, lambda: not app.screen.busy)
                    view = session.current()
                    assert view is not None and view.performed, screen_text(app)
                if view.kind == "seal":
                    text = flat(screen_text(app))
                    sealed = c.envelopes["kms"]
                    fp_step = next(s for s in c.steps if s.kind.value == "verify-fingerprint")
                    words = list(fp_step.display["words"])
                    assert "Sealed for 1 recipient(s)" in text, text
                    assert "key fingerprint: " + " ".join(words) in text, text
                    size = len(sealed[1])
                    assert re.search(rf"envelope: {re.escape(sealed[0])} {size / 1024:.1f} KiB", text), text
                    seen["seal"] = text
                if view.kind == "summary":
                    text = flat(screen_text(app))
                    assert not view.acks  # shown before anyone acknowledges
                    assert "final hash" not in view.instruction
                    set_id = str(c.manifest["set_id"])
                    gen = next(s for s in c.steps if s.kind.value == "generate")
                    kcv_words = gen.results.get("kcv_words") or view.results["kcv_words"]
                    assert f"Share set {set_id}" in text, text
                    assert "KCV words: " + " ".join(kcv_words) in text, text
                    assert f"set-{set_id}.json" in text and "masterkey-kms.sealed.json" in text, text
                    assert f"Journal: {c.journal.count} rows so far." in text, text
                    seen["summary"] = text
                await tick_all(pilot)
                # every tick recorded by the engine before Continue (under load the box
                # messages were still queued: Continue refused, the loop met the step again)
                await settle(pilot, lambda: (cur := session.current()) is None or set(cur.acknowledge) <= set(cur.acks))
                await press(pilot, "#continue")
            assert isinstance(app.screen, SummaryScreen), screen_text(app)
            before = flat(screen_text(app))
            assert "Journal verified" in before and "Checked again" not in before
            await pilot.press("v")
            await pilot.pause()
            after = flat(screen_text(app))
            assert "Checked again (V, 1x): Journal verified" in after, after
            journal_path = session.journal_path
            app.backend.close()
        kinds = [e.kind for e in jmod.read_events(jmod._connect(journal_path))]
        assert "step.ack_withdrawn" in kinds

    try:
        asyncio.run(run())
    finally:
        terminal.close()
    assert seen.get("refused") and seen.get("ack_kept") and "seal" in seen and "summary" in seen
    assert seen["verified"] == [f"Custodian {n}" for n in range(1, 5)]


def test_continue_names_unticked_items(tmp_path: Any) -> None:
    """A checklist step: Continue names the items still unticked and the acknowledgements;
    ticking them all clears the line."""
    ws = init_workspace(tmp_path / "ws")
    app = make_app(ws, script="genesis.toml")

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            session = app.backend.session
            for _ in range(5):
                view = session.current()
                assert view is not None
                if view.kind == "checklist":
                    break
                await tick_all(pilot)
                await press(pilot, "#continue")
            text = flat(screen_text(app))
            n = len(view.params["items"])
            assert f"Continue needs: {n} checklist item(s) ticked" in text, text
            await tick_all(pilot)
            assert "Continue needs" not in flat(screen_text(app))
            assert not app.screen.query_one("#continue").has_class("-waiting")
            app.backend.close()

    asyncio.run(run())


def test_continue_names_the_people_not_ticked_present(tmp_path: Any) -> None:
    """The attendance step: Continue names how many people are not ticked present yet."""
    ws = init_workspace(tmp_path / "ws")
    app = make_app(ws, script="genesis.toml")

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            view = app.backend.session.current()
            assert view is not None and view.kind == "attendance"
            people = len(list(app.screen.query(".present")))
            text = flat(screen_text(app))
            assert f"Continue needs: {people} more person(s) ticked present" in text, text
            box = next(iter(app.screen.query(".present").results(AckBox)))
            box.focus()
            await pilot.press("space")
            await pilot.pause()
            assert f"Continue needs: {people - 1} more person(s) ticked present" in flat(screen_text(app))
            app.backend.close()

    asyncio.run(run())
