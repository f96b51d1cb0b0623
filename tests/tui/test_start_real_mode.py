"""The start screen in real mode (issue 15, item 5): keys that never type into the media
field, scripts that still carry demo values, ``--scripts DIR`` alone, and the
practice/real mismatch refused at Begin, before the first step."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList

from core.demo import init_workspace
from kcm_tui.app import BUNDLED_SCRIPTS, make_app
from kcm_tui.backend import Backend, BackendError, ShareDisplay
from kcm_tui.options import build_parser
from kcm_tui.screens.common import MessageModal
from kcm_tui.screens.start import StartScreen
from tests.tui.helpers import begin, screen_text, settle, start_ready
from tests.tui.helpers import make_app as demo_app

SIZE = (80, 24)


def edited_genesis(folder: Path) -> Path:
    """The shipped genesis with its demo values replaced, as the administrator does."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (BUNDLED_SCRIPTS / "genesis.toml").read_text()
    text = text.replace('cluster_id = "openkcm-demo"', 'cluster_id = "openkcm-prod-eu10"')
    text = text.replace('"DEMO-0001"', '"0F1E2D3C"').replace('"DEMO-0002"', '"0F1E2D3D"')
    (folder / "genesis.toml").write_text(text)
    return folder / "genesis.toml"


class CountingBackend(Backend):
    """The real backend; counts the workstation-check runs."""

    runs = 0

    def preflight(self) -> list[Any]:
        self.runs += 1
        return super().preflight()


# ---------------------------------------------------------------- keys


def test_recheck_is_f5_and_letters_in_the_media_field_are_text(tmp_path: Path) -> None:
    """Before: R re-ran the checks, and R in the media field typed "r" into the path. Now the
    key is F5, which works from the field too; "r" there is part of the path."""

    async def run() -> None:
        backend = CountingBackend(demo=True, media=tmp_path, scripts_dirs=[BUNDLED_SCRIPTS],
                                  share_display=ShareDisplay("/nonexistent-tty"), env={}, term_size=SIZE)
        from kcm_tui.app import CeremonyApp

        app = CeremonyApp(backend)
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            assert backend.runs == 1
            field = app.screen.query_one("#media", Input)
            field.focus()
            field.value = ""
            await pilot.press("f5")
            await settle(pilot, lambda: bool(app.screen.checks_done))
            assert backend.runs == 2 and field.value == ""
            await pilot.press("/", "r", "u", "n")
            await settle(pilot)
            assert field.value == "/run" and backend.runs == 2
            assert "F5  Re-check" in screen_text(app)

    asyncio.run(run())
    # no letter is bound on the start screen: a letter belongs to the field it is typed in
    assert not [b for b in StartScreen.BINDINGS if len(getattr(b, "key", "")) == 1]


# ---------------------------------------------------------------- demo values


def test_real_backend_refuses_a_script_with_demo_values(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    real = Backend(demo=False, media=media, scripts_dirs=[BUNDLED_SCRIPTS], env={}, term_size=SIZE)
    infos = {s.path.name: s for s in real.scripts()}
    genesis = infos["genesis.toml"]
    assert any("cluster_id = 'openkcm-demo'" in v for v in genesis.demo_values)
    assert any("card_serial = 'DEMO-0001'" in v for v in genesis.demo_values)
    assert infos["practice-genesis.toml"].demo_values == ()  # practice: allowed, never flagged
    with pytest.raises(BackendError, match=r"genesis\.toml still carries demo values") as err:
        real.open(genesis, media)
    assert err.value.code == "script-demo-values"
    assert list(media.iterdir()) == []  # nothing created, no keyholder started
    # a demo may run it
    assert Backend(demo=True, scripts_dirs=[BUNDLED_SCRIPTS]).demo_values_problem(genesis) == ""
    # edited, a real ceremony accepts it
    edited = Backend(demo=False, scripts_dirs=[edited_genesis(tmp_path / "mine").parent]).scripts()
    assert [(s.path.name, s.demo_values) for s in edited] == [("genesis.toml", ())]
    assert real.demo_values_problem(edited[0]) == ""


def test_start_screen_marks_demo_values_and_begin_lists_them() -> None:
    from dataclasses import replace

    from kcm_tui.scriptlist import script_info
    from tests.tui.snapshot_app import FakeBackend, SnapApp

    infos = [replace(script_info(BUNDLED_SCRIPTS / n), path=Path(n)) for n in ("practice-genesis.toml", "genesis.toml")]

    async def run() -> None:
        app: Any = SnapApp(FakeBackend(demo=False, scripts=infos))
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await pilot.press("down")
            text = screen_text(app)
            assert "┃ genesis.toml  (genesis)  DEMO VALUES" in text  # the file name once (issue 15 layout)
            assert "3 demo value(s): edit this script before a real ceremony (Begin lists them)." in text
            assert "practice-genesis.toml  (genesis)  DEMO" not in text
            await pilot.press("tab", "enter")  # to the media field, Enter: Begin
            await settle(pilot)
            assert isinstance(app.screen, MessageModal)
            text = screen_text(app)
            assert "genesis.toml still has demo values" in text and "line 16: cluster_id = 'openkcm-demo'" in text
            assert app.backend.session is None
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, StartScreen)

    asyncio.run(run())


# ---------------------------------------------------------------- --scripts DIR


def test_scripts_option_lists_only_that_folder(tmp_path: Path) -> None:
    mine = edited_genesis(tmp_path / "mine").parent
    app = make_app(build_parser().parse_args(["--scripts", str(mine)]))
    assert app.backend.scripts_dirs == [mine]
    assert [s.path for s in app.backend.scripts()] == [mine / "genesis.toml"]
    # without --scripts: the bundled scripts
    bundled = make_app(build_parser().parse_args([]))
    assert len(bundled.backend.scripts()) == len(list(BUNDLED_SCRIPTS.glob("*.toml"))) > 1
    # a demo workspace and --scripts: the two folders, not the bundled one
    ws = init_workspace(tmp_path / "ws")
    saved = os.environ.get("SOFTHSM2_CONF")  # make_app points it at the workspace's tokens
    try:
        both = make_app(build_parser().parse_args(["--workspace", str(ws.root), "--scripts", str(mine)]))
    finally:  # later tests in this process (and the programs they start) must not see it
        if saved is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = saved
    assert both.backend.scripts_dirs == [mine, ws.scripts]

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            assert app.screen.query_one("#scripts", OptionList).option_count == 1

    asyncio.run(run())


# ---------------------------------------------------------------- practice/real mismatch


def test_begin_refuses_a_real_unseal_on_practice_sets(tmp_path: Path) -> None:
    """Before: the real unseal refused the medium's PRACTICE set at its 4th step. Now Begin
    refuses it, naming the rehearsal script, and no ceremony is started."""
    ws = init_workspace(tmp_path / "ws")
    (ws.media / "manifests").mkdir(parents=True, exist_ok=True)
    (ws.media / "manifests" / "PRACTICE-set-1234.json").write_text(json.dumps({"set_id": "1234", "practice": True}))

    async def run() -> None:
        app = demo_app(ws, script="unseal-and-seal.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            await settle(pilot, lambda: isinstance(app.screen, MessageModal))
            # the whole message at 80x24 (the error line under Begin holds one line)
            text = " ".join(screen_text(app).split())
            assert "The ceremony cannot begin" in text
            assert "only PRACTICE share sets are here; run the practice-unseal-and-seal" in text
            assert "script to rehearse (found: PRACTICE-set-1234.json)" in text
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, StartScreen)
            assert app.screen.error.startswith("only PRACTICE share sets are here")
            assert app.backend.session is None

    asyncio.run(run())
    assert not (ws.media / "ceremonies").exists() or list((ws.media / "ceremonies").iterdir()) == []
