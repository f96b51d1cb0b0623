"""Where the ceremony is, on the step runner (issue 15, item 3): the custodian table follows
the engine's record in a practice ceremony (shown, checked; shares collected), the act
outline is a side panel from 120 columns and a one-line breadcrumb below (following a
resize), and F1 shows the current step's text and runbook."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from core.ceremony.model import StepKind
from core.demo import init_workspace
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.screens.runner import ACTION_LABEL, RunnerScreen
from kcm_tui.stephelp import RUNBOOK
from kcm_tui.views import ActLine
from kcm_tui.widgets.progress import CRUMB_WIDTH, breadcrumb
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
from tests.tui.snapshot_app import FakeBackend, FakeSession, SnapApp, step
from tests.tui.test_e2e import run_steps

GENESIS = "practice-genesis.toml"
UNSEAL = "practice-unseal-and-seal.toml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A demo workspace whose practice genesis hands every share out as words (the demo's
    two card custodians too: cards are covered by test_cards.py)."""
    ws = init_workspace(tmp_path_factory.mktemp("progress") / "ws")
    script = ws.scripts / GENESIS
    text = script.read_text()
    text = re.sub(r"(?m)^(carriers|card_module) = .*$\n", "", text)
    script.write_text(text)
    return ws


def custodian_line(app: Any, name: str) -> str:
    """The table's cell for custodian ``name`` (its text up to the next cell)."""
    text = screen_text(app)
    m = re.search(rf"{re.escape(name)}(?: \(\w+\))?: ([a-z ()]+?)(?:\s{{2,}}|\s*$)", text, re.MULTILINE)
    assert m, f"{name} is not in the table:\n{text}"
    return m.group(1).strip()


async def to_step(pilot: Any, kind: str) -> None:
    """Drive the runner (acting, ticking, continuing) until the current step is ``kind``."""
    app = pilot.app
    for _ in range(30):
        await pilot.pause()
        view = app.backend.session.current()
        assert view is not None and isinstance(app.screen, RunnerScreen), screen_text(app)
        if view.kind == kind:
            return
        assert not app.screen.error, f"{view.kind}: {app.screen.error}"
        if view.kind in ACTION_LABEL and not view.performed:
            await press(pilot, "#action")
            await settle(pilot, lambda: not app.screen.busy)
        await tick_all(pilot)
        await press(pilot, "#continue")
    raise AssertionError(f"no {kind} step")


async def leave(pilot: Any) -> None:
    """Esc out of the distribution / collection (asks first), back on the runner."""
    app = pilot.app
    for _ in range(3):
        if isinstance(app.screen, RunnerScreen):
            return
        await pilot.press("escape")
        await settle(pilot)
        if not isinstance(app.screen, (DistributionScreen, CollectionScreen, RunnerScreen)):
            await pilot.press("y")  # the "leave?" question
            await settle(pilot)
    assert isinstance(app.screen, RunnerScreen), screen_text(app)


def test_custodian_table_follows_the_engine(workspace: Any) -> None:
    """Practice genesis: everyone "not yet"; custodian 1's share shown, written down and
    typed back: "checked"; custodian 2's shown: "shown". Then the practice unseal: no share
    in, then "1 of 3 shares in" naming the custodian."""
    terminal = CustodianTerminal()

    async def genesis() -> None:
        app = make_app(workspace, terminal, script=GENESIS)
        async with app.run_test(size=(80, 24)) as pilot:
            await begin(pilot)
            await to_step(pilot, "distribute-shares")
            assert "Shares to hand out: 5 custodians, none yet" in screen_text(app)
            assert [custodian_line(app, f"Custodian {i}") for i in range(1, 6)] == ["not yet"] * 5

            await press(pilot, "#action")  # the split; the distribution screen
            assert isinstance(app.screen, DistributionScreen)
            await pilot.press("r")  # custodian 1's share on the keyholder's terminal
            await pilot.pause()
            await pilot.press("y")  # written down: the typed-back entry starts (in a worker)
            await pilot.pause()
            await type_share(pilot, terminal.share_words[-1], prefix_only=True)  # typed back: checked
            await pilot.press("r")  # custodian 2's share shown
            await pilot.pause()
            await leave(pilot)

            text = screen_text(app)
            assert custodian_line(app, "Custodian 1") == "checked (typed back)", text
            assert custodian_line(app, "Custodian 2") == "shown", text
            assert [custodian_line(app, f"Custodian {i}") for i in (3, 4, 5)] == ["not yet"] * 3
            session = app.backend.session
            progress = session.distribution()
            assert progress is not None and f"Share set {progress.set_id}: " in text
            # the table reads the engine's record: the same states
            assert [progress.status(c).value for c in ("c1", "c2", "c3")] == ["checked", "shown", "due"]

            # the split is done but custodians 3-5 have nothing: the runner says so and keeps a
            # button that takes the administrator back to the distribution
            assert f"Share set {progress.set_id}: 3 of 5 still to hand out; 1 verified." in text, text
            assert "every custodian has been shown" not in text
            assert str(app.screen.query_one("#action").label) == "Resume handing out the shares"
            # the rest of the ceremony as tests/tui/test_e2e.py drives it (custodian 2 at "written down?")
            await press(pilot, "#action")
            assert isinstance(app.screen, DistributionScreen), screen_text(app)
            await pilot.press("y")
            await pilot.pause()
            await type_share(pilot, terminal.share_words[-1], prefix_only=True)
            for _ in range(3):
                await pilot.press("r")
                await pilot.pause()
                await pilot.press("y")
                await pilot.pause()
                await type_share(pilot, terminal.share_words[-1], prefix_only=True)
            await settle(pilot, lambda: isinstance(app.screen, RunnerScreen))
            assert [custodian_line(app, f"Custodian {i}") for i in range(1, 6)] == ["checked (typed back)"] * 5
            await run_steps(pilot, terminal, None, [])
            assert session.state == "completed"
            app.backend.close()

    async def unseal() -> None:
        app = make_app(workspace, terminal, script=UNSEAL)
        async with app.run_test(size=(80, 24)) as pilot:
            await begin(pilot)
            await to_step(pilot, "collect-shares")
            assert "No share in yet." in screen_text(app)
            await press(pilot, "#action")
            await settle(pilot, lambda: isinstance(app.screen, CollectionScreen))
            await pilot.press("t")
            await pilot.pause()
            await type_share(pilot, terminal.share_words[0])  # custodian 1's share
            await settle(pilot)
            await leave(pilot)
            text = screen_text(app)
            assert re.search(r"Set \d+: 1 of 3 shares in", text), text
            assert "in: Custodian 1" in text
            app.backend.close()

    asyncio.run(genesis())
    asyncio.run(unseal())
    terminal.close()


def acts(current: int) -> list[ActLine]:
    titles = ["Act 1: Open the ceremony", "Act 2: Generate the MasterKey", "Act 3: Split and hand out the shares",
              "Act 4: Seal and export", "Act 5: Close"]
    return [ActLine(t, "done" if i < current else "current" if i == current else "todo", 0, 2, 5)
            for i, t in enumerate(titles)]


def test_breadcrumb_fits_and_marks_the_current_act() -> None:
    # the full titles take 100 columns: the others are cut to their first word
    assert breadcrumb(acts(2)) == "Open > Generate > [Split and hand out the shares] > Seal > Close"
    assert breadcrumb(acts(2), 200) == (
        "Open the ceremony > Generate the MasterKey > [Split and hand out the shares] > Seal and export > Close"
    )
    assert breadcrumb(acts(2), 50) == "1 > 2 > [Split and hand out the shares] > 4 > 5"
    long = [ActLine(f"Act {i + 1}: " + "a very long act title indeed " * 3, "current" if i == 4 else "done", 0, 1)
            for i in range(9)]
    for width in (CRUMB_WIDTH, 60, 40):
        out = breadcrumb(long, width)
        assert len(out) <= width and "\n" not in out, out
        assert out.count("[") == 1, out


def _distribution_runner() -> SnapApp:
    """The step runner at a distribute-shares step (act 3 of 5, step 7 of 11) over a fake session."""
    view = step("distribute-shares", 6, act_title="Act 3: Split and hand out the shares",
                acknowledge=("admin", "c1", "c2", "c3", "c4", "c5"), params={"display": ["screen"]})
    return SnapApp(FakeBackend(session=FakeSession(view)), RunnerScreen)


def test_outline_at_120_columns_breadcrumb_below_following_a_resize() -> None:
    app = _distribution_runner()

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            text = screen_text(app)
            assert "Open > Generate > [Split and hand out the shares] > Seal > Close  step 7 of 11" in text, text
            assert "Script's estimate" not in text
            assert "[distribute-shares]" not in text  # the step head gives way to the breadcrumb
            await pilot.resize_terminal(120, 40)
            await settle(pilot)
            text = screen_text(app)
            assert "[Split and hand out the shares]" not in text, text
            assert "Act 3: Split and hand out the shares   step 7 of 11   [distribute-shares]" in text
            assert re.search(r"x 1 Open the ceremony +10 min", text), text
            assert re.search(r"> 3 Split and hand out the", text), text
            assert "Script's estimate: 60 min in all" in text
            await pilot.resize_terminal(119, 40)
            await settle(pilot)
            text = screen_text(app)
            assert "Open > Generate > [Split and hand out the shares] > Seal > Close  step 7 of 11" in text, text
            assert "Script's estimate" not in text

    asyncio.run(run())


def test_f1_shows_the_current_steps_text(workspace: Any) -> None:
    """On the real step runner: the step's title, the script's instruction and its runbook."""
    app = make_app(workspace, None, script=GENESIS)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await begin(pilot)
            view = app.backend.session.current()
            assert view is not None and view.kind == "attendance"
            await pilot.press("f1")
            await settle(pilot)
            text = screen_text(app)
            flat = " ".join(re.sub(r"[│┃]", " ", text).split())  # the help box's lines, unwrapped
            assert "Help: Step runner" in text
            assert f"step 1 of {app.backend.session.total_steps()}: {view.title}" in flat, text
            assert "The script says: " + view.instruction in flat, text
            assert "Runbook (attendance): The administrator calls each role" in flat, text
            assert "F10" in text  # the keys are still there
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, RunnerScreen)
            app.backend.close()

    asyncio.run(run())


def test_every_step_kind_has_its_runbook() -> None:
    assert {k.value for k in StepKind} <= set(RUNBOOK)
    assert Path(__file__).name in (Path(__file__).parents[2] / "kcm_tui" / "stephelp.py").read_text()


def test_f1_runbook_longer_than_the_box_scrolls_with_the_keyboard() -> None:
    """At 80x24 the distribution's runbook is longer than its box: End shows its last line."""
    app = _distribution_runner()

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f1")
            await settle(pilot)
            last = "The table shows each custodian's share state."

            def flat() -> str:
                return " ".join(re.sub(r"[│┃]", " ", screen_text(app)).split())

            assert last not in flat() and "Help: Step runner" in flat()
            await pilot.press("end")
            await settle(pilot)
            assert last in flat(), screen_text(app)
            assert "Help: Step runner" in flat() and "F10" in flat()  # the title and keys stay

    asyncio.run(run())


def test_the_app_switches_to_the_outline_at_the_progress_widths_breakpoint() -> None:
    """app.py names the 120 columns literally (importing the widget would cost the first
    screen's start-up): it must stay the outline's WIDE."""
    from kcm_tui.app import CeremonyApp
    from kcm_tui.widgets.progress import WIDE

    assert dict((cls, width) for width, cls in CeremonyApp.HORIZONTAL_BREAKPOINTS)["-wide"] == WIDE
