"""Safety of the app itself: palette, clipboard, screenshots, crash handling, environment
refusal, idle timeout, borders, and the typed-entry widget's promises."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from textual import events

from core import journal as jmod
from core.demo import init_workspace
from kcm_tui import app as app_mod
from kcm_tui.backend import environment_leaks
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.runner import RunnerScreen
from tests.tui.helpers import begin, make_app, screen_text, settle, start_ready, type_keys
from tests.tui.snapshot_app import FakeBackend, FakeSession, SnapApp, step

KCM_TUI = Path(app_mod.__file__).resolve().parent
SECRET_WORD = "academic"


def collection_app(session: FakeSession | None = None) -> SnapApp:
    v = step("collect-shares", 4, params={"carriers": ["typed", "qr"]}, results={"set_id": "4821"})
    return SnapApp(FakeBackend(session=session or FakeSession(v)), CollectionScreen)


# ------------------------------------------------------------------ palette, clipboard, screenshots


def test_command_palette_is_disabled() -> None:
    async def run() -> None:
        app = collection_app()
        async with app.run_test() as pilot:
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert app.ENABLE_COMMAND_PALETTE is False
            assert app.use_command_palette is False
            assert type(app.screen).__name__ != "CommandPalette"

    asyncio.run(run())


def test_no_clipboard_write_anywhere_in_the_ui_code() -> None:
    calls = []
    for path in KCM_TUI.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"copy_to_clipboard\(|\]52;", line) and "def copy_to_clipboard" not in line and "(or OSC 52)" not in line:
                calls.append(f"{path.name}:{n}: {line.strip()}")
    assert calls == []


def test_clipboard_and_screenshot_are_refused(tmp_path: Path) -> None:
    async def run() -> None:
        app = collection_app()
        async with app.run_test() as pilot:
            written: list[str] = []
            driver = app._driver
            assert driver is not None
            orig = driver.write
            driver.write = lambda data: (written.append(data), orig(data))[1]  # type: ignore[method-assign]
            app.copy_to_clipboard("secret text")
            assert app.clipboard == ""  # Textual's own record stays empty
            assert not any("]52;" in w for w in written)
            assert app.clipboard_refusals == 1
            with pytest.raises(RuntimeError):
                app.save_screenshot(path=str(tmp_path))
            app.action_screenshot()
            await pilot.pause()
            assert list(tmp_path.iterdir()) == []
            await pilot.press("ctrl+c")  # copy selected text: refused
            await pilot.pause()
            assert app.clipboard_refusals == 2
            assert app.ALLOW_SELECT is False

    asyncio.run(run())


def test_typed_entry_is_handed_to_the_keyholder_and_the_ui_holds_no_entry_widget() -> None:
    """The UI has no widget that takes share letters any more: 't' hands the keyboard to
    the keyholder (entry_terminal) and shows only its public answer."""
    session: FakeSession | None = None

    async def run() -> None:
        nonlocal session
        v = step("collect-shares", 4, params={"carriers": ["typed", "qr"]}, results={"set_id": "4821"})
        session = FakeSession(v)
        session.terminal_answers = [{"status": "cancelled", "keystrokes": 3, "pastes_refused": 1}]
        app = SnapApp(FakeBackend(session=session), CollectionScreen)
        app.idle_warn, app.idle_wipe = 61.0, 91.0
        async with app.run_test() as pilot:
            await pilot.press("t")
            await settle(pilot)
            text = screen_text(app)
            assert "keyholder takes the keyboard" in text
            assert "1 paste(s) refused" in text
            assert not app.screen.query("Input")  # never an Input holding a share
            assert not app.screen.query("WordEntry") and not app.screen.query("ScannerSink")
            # Enter starts the entry again (default answer: checksum correct -> added)
            app.screen.query_one("EntryPanel").focus()
            await pilot.press("enter")
            await settle(pilot)
            assert "Share accepted" in text or len(session.terminal_calls) == 2

    asyncio.run(run())
    assert session is not None
    assert session.terminal_calls[0] == {"purpose": "collect", "scanner": False, "idle_warn": 61.0, "idle_wipe": 91.0}
    assert len(session.terminal_calls) == 2


def test_no_ui_module_reads_share_keys() -> None:
    """No widget of the UI handles share letters: the old word-entry and scanner widgets
    (Textual decoded every key into a str in this process) are gone."""
    names = {p.name for p in (KCM_TUI / "widgets").glob("*.py")}
    assert "word_entry.py" not in names and "scanner.py" not in names
    for path in KCM_TUI.rglob("*.py"):
        text = path.read_text()
        assert "entry_word(" not in text or path.name == "backend.py", path


def test_idle_wipe_in_the_keyholder_is_reported() -> None:
    async def run() -> None:
        v = step("collect-shares", 4, params={"carriers": ["typed"]}, results={"set_id": "1"})
        s = FakeSession(v)
        s.terminal_answers = [{"status": "idle", "keystrokes": 9}]
        app = SnapApp(FakeBackend(session=s), CollectionScreen)
        async with app.run_test() as pilot:
            await pilot.press("t")
            await settle(pilot)
            assert "wiped after the idle timeout" in screen_text(app)

    asyncio.run(run())


def test_keyholder_death_during_entry_says_what_is_lost_and_what_to_do() -> None:
    from kcm_tui.backend import KeyholderGone

    async def run() -> None:
        v = step("collect-shares", 4, params={"carriers": ["typed"]}, results={"set_id": "1"})
        s = FakeSession(v)
        s.terminal_answers = [KeyholderGone("The keyholder process stopped. Every secret it held is gone. "
                                            "Shares to enter again: group 1 share 2. What to do: press F10.")]
        app = SnapApp(FakeBackend(session=s), CollectionScreen)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("t")
            await settle(pilot)
            text = screen_text(app)
            assert "Every secret it held is gone" in text
            assert "ENTRY STOPPED" in text and "Shares to enter" in text and "What to do" in text
            panel = app.screen.query_one("EntryPanel")
            assert panel.lost  # type: ignore[attr-defined]
            await pilot.press("enter")  # entry does not start again on a dead keyholder
            await settle(pilot)
            assert len(s.terminal_calls) == 1

    asyncio.run(run())


# ------------------------------------------------------------------ crash handling


def test_crash_during_share_entry_shows_no_word_and_no_locals() -> None:
    wiped: list[str] = []

    class Crashing(FakeSession):
        def entry_terminal(self, purpose: str = "collect", **kw: Any) -> dict[str, Any]:
            leaked_word = SECRET_WORD  # a local holding the secret
            raise RuntimeError(f"bug while handling {leaked_word}")

        def emergency_wipe(self, reason: str) -> list[str]:
            wiped.append(reason)
            return ["the keyholder was told to wipe every secret it held"]

    app: Any = None

    async def run() -> None:
        nonlocal app
        v = step("collect-shares", 4, params={"carriers": ["typed"]}, results={"set_id": "1"})
        app = collection_app(Crashing(v))
        async with app.run_test() as pilot:
            await pilot.press("t")
            await pilot.pause()
            await pilot.pause(0.5)

    with pytest.raises(Exception):  # noqa: B017 - the app re-raises the worker's failure
        asyncio.run(run())
    report = app.crash_report
    assert "RuntimeError" in report
    assert SECRET_WORD not in report and "leaked_word" not in report and "bug while" not in report
    assert "What to do now" in report and "keyholder was told to wipe" in report
    rendered = "".join(str(r) for r in app._exit_renderables)
    assert SECRET_WORD not in rendered and "locals" not in rendered.lower()
    assert app.return_code == 1
    assert wiped


def test_crash_with_a_real_ceremony_wipes_and_journals_the_abort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    app = make_app(ws, script="genesis.toml")
    holder: dict[str, Any] = {}

    def boom(self: RunnerScreen) -> None:
        raise ValueError("unexpected")

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await begin(pilot)
            assert isinstance(app.screen, RunnerScreen)
            holder["session"] = app.backend.session
            monkeypatch.setattr(RunnerScreen, "next_step", boom)
            app.screen.query_one("#continue").disabled = False
            app.screen.query_one("#continue").press()
            await pilot.pause()

    with pytest.raises(ValueError):
        asyncio.run(run())
    session = holder["session"]
    assert session.state == "aborted"
    events_ = jmod.read_events(jmod._connect(session.journal_path))
    kinds = [e.kind for e in events_]
    assert "keyholder.wiped" in kinds and "ceremony.aborted" in kinds and kinds[-1] == "journal.closed"
    assert jmod.verify(session.journal_path).ok
    assert "ValueError" in app.crash_report
    app.backend.close()


# ------------------------------------------------------------------ environment refusal


def test_environment_leaks_detected() -> None:
    assert environment_leaks({}) == []
    assert environment_leaks({"TEXTUAL_LOG": "/tmp/x"}) == ["TEXTUAL_LOG"]
    assert environment_leaks({"TEXTUAL_SCREENSHOT": "1"}) == ["TEXTUAL_SCREENSHOT"]
    assert environment_leaks({"TEXTUAL": "devtools,debug"}) == ["TEXTUAL=debug,devtools"]
    assert environment_leaks({"TEXTUAL": "other"}) == []


@pytest.mark.parametrize("var,value", [("TEXTUAL_LOG", "/tmp/t.log"), ("TEXTUAL_SCREENSHOT", "2"), ("TEXTUAL", "devtools")])
def test_refuses_to_start_with_leaking_environment(var: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(var, value)
    started: list[bool] = []
    monkeypatch.setattr(app_mod, "make_app", lambda *a, **k: started.append(True))
    assert app_mod.main([]) == 2
    err = capsys.readouterr().err
    assert "refuses to start" in err and var in err and "unset" in err
    assert started == []


def test_demo_mode_allows_leaking_environment_with_a_warning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEXTUAL_LOG", "/tmp/t.log")

    class Stop(Exception):
        pass

    def fake_make_app(*a: Any, **k: Any) -> Any:
        raise Stop

    monkeypatch.setattr(app_mod, "make_app", fake_make_app)
    with pytest.raises(Stop):
        app_mod.main(["--demo"])
    assert "DEMO" in capsys.readouterr().err


# ------------------------------------------------------------------ borders and size


def test_stylesheet_uses_console_safe_borders_only() -> None:
    css = (KCM_TUI / "app.tcss").read_text()
    sources = css + "".join(p.read_text() for p in KCM_TUI.rglob("*.py"))
    bad = re.findall(r"border(?:-\w+)?:\s*(round|tall|wide|outer|inner|panel|hkey|vkey|thick|blank|dashed|double)\b", sources)
    assert bad == []


def test_start_screen_fits_80x24_with_begin_visible() -> None:
    async def run() -> None:
        app = SnapApp(FakeBackend())
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            begin_button = app.screen.query_one("#begin")
            r = begin_button.region
            assert r.right <= 80 and r.bottom <= 23 and r.height == 3

    asyncio.run(run())


# ------------------------------------------------------------------ card PIN promises

SECRET_PIN = "731946"


def test_card_pin_never_enters_the_ui() -> None:
    """Issue 14: the keyholder reads the card PIN on its own screen. The card panel holds no
    PIN buffer and no Input; digits typed or pasted here are dropped unread (with a hint);
    Enter asks for the card call with ``pin_from_terminal`` and no PIN; no message posted
    carries the digits."""
    from kcm_tui.widgets.pin_prompt import KeyholderPinPrompt

    got: list[tuple[bool, bool]] = []

    class Spy(FakeSession):
        def add_card(self, serial: str | None, pin: memoryview | None = None, *,
                     pin_from_terminal: bool = False) -> dict[str, Any]:
            got.append((pin is None, pin_from_terminal))
            return {"complete": False, "message": "2 of 3 shares"}

    seen_messages: list[Any] = []

    async def run() -> None:
        v = step("collect-shares", 4, params={"carriers": ["typed", "card"]}, results={"set_id": "1"})
        app = collection_app(Spy(v))
        async with app.run_test() as pilot:
            await pilot.press("c")
            await pilot.pause()
            prompt = app.screen.query_one(KeyholderPinPrompt)
            original = prompt.post_message

            def spy(message: Any) -> bool:
                seen_messages.append(message)
                return original(message)

            prompt.post_message = spy  # type: ignore[method-assign]
            assert not app.screen.query("Input")  # no Input.value holding a PIN
            assert not [k for k in vars(prompt) if "buf" in k]  # no buffer to hold one
            await type_keys(pilot, list(SECRET_PIN))
            original(events.Paste("999999"))  # a paste delivered to the PIN line (not recorded)
            await pilot.pause()
            text = screen_text(app)
            assert SECRET_PIN not in text and "*" not in text.split("PIN:")[-1][:20]
            assert "Not here" in text or "Nothing is typed or pasted here" in text
            await pilot.press("enter")
            await settle(pilot)

    asyncio.run(run())
    assert got == [(True, True)]
    for m in seen_messages:
        values = [v for v in vars(m).values() if isinstance(v, str)]
        assert not any(SECRET_PIN in v or "999999" in v for v in values), m


def test_not_written_down_reveals_the_share_again() -> None:
    """N on "written down?" reveals again (the keyholder allows it until the type-back
    check passes); before issue 14 it could only abort the ceremony."""
    from kcm_tui.screens.distribution import DistributionScreen

    shown: list[str] = []

    class S(FakeSession):
        def show_share(self, custodian: str, display: str = "screen", **kw: Any) -> dict[str, Any]:
            shown.append(display)
            return {"shown": True, "showing": len(shown)}

    async def run() -> None:
        v = step("distribute-shares", 6, params={"display": ["screen"]}, performed=True,
                 acknowledge=("admin", "witness", "c1", "c2", "c3", "c4", "c5"), results={"set_id": "1"})
        app = SnapApp(FakeBackend(session=S(v)), DistributionScreen)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("r")
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            assert "Abort now" not in screen_text(app)
            assert "written down every word" in screen_text(app)

    asyncio.run(run())
    assert shown == ["screen", "screen"]
