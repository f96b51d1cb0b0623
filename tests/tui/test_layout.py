"""Layout (issue 15, items 4 and 5): nothing cut at 80x24, the "enlarge the terminal"
screen below it, the space used at 160x50, and the start screen's medium chooser."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Input, OptionList

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


# ---------------------------------------------------------------- nothing cut at 80x24


def run_scenario(name: str, size: tuple[int, int]) -> str:
    from tests.tui.test_snapshots import SCENARIOS

    factory, steps = SCENARIOS[name]

    async def run() -> str:
        app: Any = factory()
        async with app.run_test(size=size) as pilot:
            await start_ready(pilot)
            await steps(pilot)
            await settle(pilot)
            return screen_text(app)

    return asyncio.run(run())


def test_role_names_are_not_cut_at_80x24() -> None:
    """The acknowledgement boxes were three a row: "Ceremony Administrat…"."""
    for name in ("attendance", "export_chosen"):
        text = run_scenario(name, (80, 24))
        assert "[ ] Ceremony Administrator" in text and "[ ] Internal Witness" in text, text
        assert "\u2026" not in text, text
    text = run_scenario("attendance", (80, 24))
    for n in range(1, 6):
        assert f"[ ] Custodian {n}" in text


def test_start_screen_at_80x24_shows_every_warning_and_begin() -> None:
    """An unfinished ceremony listed used to push Begin off the screen; the checks box showed
    its first PASS lines and hid the WARN below them without saying so."""
    text = run_scenario("start_unfinished", (80, 24))
    lines = text.splitlines()
    assert "\u2026" not in text
    assert any("WARN kernel-cmdline     init_on_free=1 missing" in line for line in lines)
    # the "do:" line keeps the reason column's indent
    assert any(line.startswith("\u2502                         do: boot the ceremony ISO") for line in lines), text
    assert "more lines" in text  # the box says there is more below
    assert "UNFINISHED genesis-20270115T100000Z-ab12" in text
    assert "Begin" in lines[-3] and "F4 Medium" in lines[-3]  # the medium row, above the keys
    assert "Script SHA-256" in text and "spend" in text  # the hash words are all shown


def test_fail_and_warn_come_first_and_wrap_under_their_column() -> None:
    text = run_scenario("start_fail_refused", (80, 24))
    rows = [line for line in text.splitlines() if line.startswith("\u2502 ")]
    assert rows[0].startswith("\u2502 FAIL swap")
    assert rows[1].startswith("\u2502                         do: swapoff -a")
    assert rows[2].startswith("\u2502 WARN kernel-cmdline")


# ---------------------------------------------------------------- 160x50


def test_start_screen_at_160x50_uses_the_rows() -> None:
    async def run() -> None:
        app: Any = SnapApp(FakeBackend())
        async with app.run_test(size=(160, 50)) as pilot:
            await start_ready(pilot)
            await settle(pilot)
            text = screen_text(app)
            assert "more lines" not in text  # every check is shown
            for check in ("network-interfaces", "terminal-size", "kernel-cmdline"):
                assert check in text
            scripts = app.screen.query_one("#scripts")
            box = app.screen.query_one("#preflight-box")
            assert box.outer_size.height == 13  # 10 checks, 1 "do:" line, the border
            # the script list takes the rest of the rows, down to the medium row
            assert scripts.outer_size.height > 20
            blank = [line for line in text.splitlines() if not line.strip()]
            assert len(blank) <= 1, text

    asyncio.run(run())


# ---------------------------------------------------------------- the ceremony medium chooser


def test_start_screen_chooses_the_ceremony_medium(tmp_path: Path) -> None:
    """F4 lists the removable media with label and size (a read-only one with the reason,
    not choosable); F5 lists them again after a stick is inserted; Enter puts the chosen
    mount point into the field; letters typed in the chooser never reach the field."""
    from core import removable
    from kcm_tui.widgets.media_chooser import GUIDANCE, MediumModal
    from tests.tui.test_export_chooser import fake_root, mountinfo

    root = fake_root(tmp_path, usb=False)

    async def run() -> None:
        backend = FakeBackend(demo=False)
        backend.media_chooser = removable.ExportMediaChooser(None, root)
        app: Any = SnapApp(backend)
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            field = app.screen.query_one("#media", Input)
            before = field.value
            await pilot.press("f4")
            await settle(pilot, lambda: isinstance(app.screen, MediumModal))
            text = screen_text(app)
            assert GUIDANCE.split(";")[0] in text and "F5 refreshes." in text
            assert "SDCARD" in text and "READ-ONLY, cannot be chosen" in text
            assert "KCM-USB" not in text
            listing = app.screen.query_one("#media-list", OptionList)
            assert listing.get_option_at_index(0).disabled
            await pilot.press("enter", "x", "y")  # nothing choosable yet; letters go nowhere
            assert isinstance(app.screen, MediumModal)
            mountinfo(root, usb=True)  # the stick is inserted
            await pilot.press("f5")
            await settle(pilot, lambda: "KCM-USB" in screen_text(app))
            text = screen_text(app)
            assert "KCM-USB  /dev/sdb1  vfat  size" in text
            listing = app.screen.query_one("#media-list", OptionList)
            listing.focus()
            listing.highlighted = 1
            await pilot.press("enter")
            await settle(pilot, lambda: isinstance(app.screen, StartScreen))
            assert field.value == str(root / "media" / "KCM-USB") != before
            assert app.focused is app.screen.query_one("#begin")
            # Esc keeps the field as it was
            await pilot.press("f4")
            await settle(pilot, lambda: isinstance(app.screen, MediumModal))
            await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, StartScreen))
            assert field.value == str(root / "media" / "KCM-USB")
            # typing a folder stays possible (demo, practice)
            field.focus()
            await pilot.press("end", "/", "x")
            assert field.value.endswith("KCM-USB/x")

    asyncio.run(run())


def test_a_long_script_description_says_there_is_more_and_f3_shows_it() -> None:
    """The description line was cut at 150 characters and at the edge of the screen."""
    from dataclasses import replace

    from kcm_tui.app import BUNDLED_SCRIPTS
    from kcm_tui.screens.common import MessageModal
    from kcm_tui.scriptlist import script_info

    info = replace(script_info(BUNDLED_SCRIPTS / "practice-genesis.toml"), path=Path("practice-genesis.toml"))
    assert len(info.description) > 200

    async def run() -> None:
        app: Any = SnapApp(FakeBackend(scripts=[info]))
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            text = screen_text(app)
            assert "[PRACTICE] practice-genesis.toml  (genesis)" in text
            assert "(more: F3)" in text and "\u2026" not in text
            lines = [line.rstrip() for line in text.splitlines()]
            start = next(i for i, line in enumerate(lines) if line.startswith("PRACTICE ONLY (throwaway key)."))
            shown = " ".join(lines[start:start + 2]).replace(" (more: F3)", "")
            assert info.description.startswith(shown)  # cut at a word, in order, nothing lost before it
            await pilot.press("f3")
            await settle(pilot, lambda: isinstance(app.screen, MessageModal))
            assert "and exports the sealed envelope, the genesis manifest and the journal." in screen_text(app)

    asyncio.run(run())


def test_begin_stays_on_the_screen_in_the_worst_case_at_80x24() -> None:
    """A FAIL, an unfinished ceremony, the DEMO banner and a two-line error at once: the
    medium row and Begin are still on the screen, whole, and Begin is reached by Tab."""
    from tests.tui.snapshot_app import CRASHED, FailingChecks

    async def run() -> None:
        backend = FakeBackend(checks=FailingChecks)
        backend.unfinished_views = [CRASHED]
        app: Any = SnapApp(backend)
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            await settle(pilot, lambda: "UNFINISHED" in screen_text(app))
            app.screen.show_error("x " * 70)  # two lines
            await settle(pilot)
            begin = app.screen.query_one("#begin")
            region = begin.region
            assert region.y >= 0 and region.bottom <= 24 - 1 - 2, region  # above the error and the keys
            assert app.screen.scroll_y == 0
            await pilot.press("tab", "tab")
            assert app.focused is begin

    asyncio.run(run())


def test_the_preselected_script_is_in_view_when_the_list_is_short() -> None:
    """A workstation with many WARN lines (a CI host: interfaces up, a default route) gives
    the script list half the rows at 80x24; the script chosen for the operator (the next
    practice step, last of 12) must still be on the screen, not scrolled out of it (the
    README walkthrough waited for it and failed on a fresh machine)."""
    from kcm_tui.views import Check, ScriptInfo
    from tests.tui.snapshot_app import CeremonyApp

    checks = [Check(f"check-{i}", "WARN", "something on this host is not as on the ceremony ISO " * 2,
                    "boot the ceremony ISO") for i in range(6)]
    scripts = [ScriptInfo(Path(f"script-{i:02d}.toml"), f"script-{i:02d}", "genesis", True, "A script.")
               for i in range(12)]
    backend = FakeBackend(checks=checks, scripts=scripts)

    class Last(SnapApp):
        def __init__(self) -> None:
            CeremonyApp.__init__(self, backend, preselect_script="script-11.toml")
            self.screen_factory = None

    async def run() -> None:
        app: Any = Last()
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            await settle(pilot)
            lst = app.screen.query_one("#scripts", OptionList)
            assert lst.highlighted == 11
            assert lst.size.height - 2 < 12, "the list is not short here: the test proves nothing"
            assert "script-11.toml" in screen_text(app), screen_text(app)

    asyncio.run(run())
