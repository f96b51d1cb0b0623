"""Layout (issue 15, items 4 and 5): nothing cut at 80x24, the "enlarge the terminal"
screen below it, the space used at 160x50, and the start screen's medium chooser."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import Input

from kcm_tui.screens.start import StartScreen
from kcm_tui.screens.toosmall import TooSmallScreen
from tests.tui.helpers import screen_text, settle, start_ready
from tests.tui.snapshot_app import FakeBackend, SnapApp


def test_small_terminal_screen_takes_the_keys_and_goes_away() -> None:
    async def run() -> None:
        app: Any = SnapApp(FakeBackend())
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            field = app.screen.query_one("#media", Input)
            field.focus()
            before = field.value
            await pilot.resize_terminal(60, 20)
            await settle(pilot, lambda: isinstance(app.screen, TooSmallScreen))
            text = screen_text(app)
            assert "This terminal is 60x20." in text
            assert "Enlarge it to at least 80x24 to continue." in text
            assert before not in text  # the screen underneath is hidden
            await pilot.press("a", "b", "backspace", "enter", "escape", "f5", "tab")
            assert isinstance(app.screen, TooSmallScreen)
            await pilot.resize_terminal(79, 30)  # still too narrow: still shown, new size said
            await settle(pilot, lambda: "79x30" in screen_text(app))
            await pilot.resize_terminal(80, 24)
            await settle(pilot, lambda: isinstance(app.screen, StartScreen))
            assert field.value == before and app.focused is field
            assert "Enlarge" not in screen_text(app)
            await pilot.press("end", "x")  # the field takes keys again
            assert field.value == before + "x"

    asyncio.run(run())


def test_small_at_start_and_a_modal_pushed_meanwhile_stays_under_it() -> None:
    async def run() -> None:
        app: Any = SnapApp(FakeBackend())
        async with app.run_test(size=(70, 24)) as pilot:
            await settle(pilot, lambda: isinstance(app.screen, TooSmallScreen))
            from kcm_tui.screens.common import MessageModal

            app.push_screen(MessageModal("later", "pushed while small"))
            await pilot.pause()
            assert isinstance(app.screen, TooSmallScreen)
            await pilot.resize_terminal(80, 24)
            await settle(pilot, lambda: isinstance(app.screen, MessageModal))
            await pilot.press("enter")
            await settle(pilot, lambda: isinstance(app.screen, StartScreen))

    asyncio.run(run())
