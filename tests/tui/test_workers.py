"""Long card and camera calls run in workers: the screen stays live, says the card must not
be removed and refuses Escape until the call returns. The card call asks the keyholder for
the PIN on its own screen (``pin_from_terminal``): this process never holds it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from textual.worker import WorkerState

from core.demo import init_workspace
from kcm_tui.screens.card import CardPanel
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.widgets.pin_prompt import KeyholderPinPrompt
from tests.tui.helpers import make_app, screen_text, settle, start_ready
from tests.tui.snapshot_app import CARD_WRITTEN, FakeBackend, FakeSession, SnapApp, step

SIZE = (100, 40)


class SlowCardSession(FakeSession):
    """write_card / add_camera wait for the test; how the card call was asked is recorded."""

    def __init__(self, view: Any) -> None:
        super().__init__(view)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.asked: dict[str, Any] = {}
        self.thread = ""

    def write_card(self, custodian: str, serial: str | None, pin: memoryview | None = None, *,
                   pin_from_terminal: bool = False) -> dict[str, Any]:
        self.asked = {"pin": pin, "pin_from_terminal": pin_from_terminal}
        self.thread = threading.current_thread().name
        self.entered.set()
        assert self.release.wait(20)
        return dict(CARD_WRITTEN)

    def add_camera(self, device: str = "/dev/video0", timeout_s: int = 30) -> dict[str, Any]:
        self.thread = threading.current_thread().name
        self.entered.set()
        assert self.release.wait(20)
        return super().add_camera(device, timeout_s)


async def wait_for(pilot: Any, cond: Any, timeout: float = 60.0) -> None:
    """Poll ``cond`` (real state, not Pilot's idle guess) for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out:\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


def test_card_write_in_worker_escape_refused_no_pin_in_the_ui() -> None:
    v = step("distribute-shares", 6, params={"display": ["screen", "card"], "carriers": {"c1": "card"}},
             acknowledge=("admin", "c1"), performed=True, results={"set_id": "4821"})
    session = SlowCardSession(v)
    session.carriers = {"c1": "card"}
    app = SnapApp(FakeBackend(session=session), DistributionScreen)

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await pilot.press("enter")
            try:
                await wait_for(pilot, session.entered.is_set)
                await pilot.pause()
                prompt = app.screen.query_one(KeyholderPinPrompt)
                panel = app.screen.query_one(CardPanel)
                text = screen_text(app)
                assert "type the PIN on its screen" in text and "Do not remove the card" in text
                assert "cannot be stopped half-way" in text
                assert panel.busy and prompt.in_use
                await pilot.press("escape")  # refused: still on the distribution screen
                await pilot.press("enter")  # a second Enter starts nothing
                await pilot.pause()
                assert isinstance(app.screen, DistributionScreen)
            finally:
                session.release.set()
            await settle(pilot)
            assert session.thread != threading.main_thread().name
            # the product path: no PIN passed, the keyholder reads it on its own terminal
            assert session.asked == {"pin": None, "pin_from_terminal": True}
            assert not prompt.in_use
            assert "share written to card" in screen_text(app)

    asyncio.run(run())


def test_camera_scan_in_worker() -> None:
    v = step("collect-shares", 4, params={"carriers": ["typed", "qr"]}, performed=True, results={"set_id": "4821"})
    session = SlowCardSession(v)
    app = SnapApp(FakeBackend(session=session), CollectionScreen)

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await pilot.press("k")
            await pilot.pause()
            await pilot.press("enter")
            try:
                await wait_for(pilot, session.entered.is_set)
                await pilot.pause()
                assert "Scanning with the camera" in screen_text(app)
                await pilot.press("escape")  # refused while scanning
                await pilot.pause()
                assert isinstance(app.screen, CollectionScreen) and app.screen.scanning
            finally:
                session.release.set()
            await settle(pilot)
            assert session.thread != threading.main_thread().name
            assert "cannot open the camera" in screen_text(app)
            assert not app.screen.scanning

    asyncio.run(run())


def test_card_result_handled_only_after_the_worker_finished() -> None:
    """Regression: the card worker handed its result to the UI with ``call_from_thread``
    while still RUNNING; the UI then replaced the card panel (its owner), Textual cancelled
    the panel's workers on unmount, and if the worker thread had not returned yet the worker
    ended CANCELLED (``WorkerCancelled`` in test_card_genesis_then_collection_with_wrong_pin_first
    on a loaded machine). Here the thread is made to linger after any ``call_from_thread``:
    the worker must still end in SUCCESS and the result be shown."""
    v = step("distribute-shares", 6, params={"display": ["screen", "card"], "carriers": {"c1": "card"}},
             acknowledge=("admin", "c1"), performed=True, results={"set_id": "4821"})
    session = SlowCardSession(v)
    session.carriers = {"c1": "card"}
    app = SnapApp(FakeBackend(session=session), DistributionScreen)
    real_call_from_thread = app.call_from_thread

    def lingering_call_from_thread(callback: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_call_from_thread(callback, *args, **kwargs)
        time.sleep(1.0)  # a worker thread descheduled on a busy machine
        return result

    app.call_from_thread = lingering_call_from_thread  # type: ignore[method-assign]

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await pilot.press("enter")
            try:
                await wait_for(pilot, session.entered.is_set)
                workers = [w for w in app.workers if w.name == "card-operation"]
                assert len(workers) == 1
            finally:
                session.release.set()
            await wait_for(pilot, lambda: "share written to card" in screen_text(app))
            await app.workers.wait_for_complete()
            assert workers[0].state == WorkerState.SUCCESS
            assert not app.screen.query(CardPanel)

    asyncio.run(run())


def test_leaving_at_the_first_frame_is_not_an_internal_error(tmp_path: Path) -> None:
    """Regression: leaving right after the first screen was drawn (what the start-up
    benchmark does) crashed with NoMatches: the start screen's after-refresh step looked
    for its script list on a screen already being taken down."""
    ws = init_workspace(tmp_path / "ws")
    app = make_app(ws)

    class LeaveAtOnce(type(app)):  # type: ignore[misc]
        def on_ready(self) -> None:
            self.call_after_refresh(self.exit)

    app.__class__ = LeaveAtOnce

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()

    asyncio.run(run())
    app.backend.close()
    assert app._exception is None, repr(app._exception)



def test_checks_run_in_a_worker_and_begin_waits_for_them() -> None:
    """The workstation checks run in a worker thread (the first frame is not held up by
    them); until their results are shown, Begin is refused with the reason."""
    from kcm_tui.screens.start import StartScreen
    from tests.tui.snapshot_app import FailingChecks, FakeBackend

    class SlowChecks(FakeBackend):
        def __init__(self) -> None:
            super().__init__(demo=False, checks=FailingChecks)
            self.entered = threading.Event()
            self.release = threading.Event()
            self.thread = ""

        def preflight(self) -> Any:
            self.thread = threading.current_thread().name
            self.entered.set()
            assert self.release.wait(20)
            return super().preflight()

    backend = SlowChecks()
    app = SnapApp(backend)

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            try:
                await wait_for(pilot, backend.entered.is_set)
                await wait_for(pilot, lambda: bool(app.screen.query("#begin")))
                screen = app.screen
                assert isinstance(screen, StartScreen)
                assert "Workstation: checking..." in screen_text(app)
                screen.begin()
                await pilot.pause()
                assert "checks are still running" in screen_text(app)
                assert isinstance(app.screen, StartScreen)
            finally:
                backend.release.set()
            await start_ready(pilot)
            assert backend.thread != threading.main_thread().name
            text = screen_text(app)
            assert "1 FAIL" in text and "checking..." not in text
            screen.begin()  # now refused for the failed check, not for waiting
            await pilot.pause()
            assert "Cannot begin: 1 check(s) failed" in screen_text(app)

    asyncio.run(run())


def test_abort_from_a_sub_screen_unwinds_to_the_summary() -> None:
    """The first screen is the app's base screen (not pushed over Textual's default one): an
    abort confirmed on a sub-screen pushed over the runner pops back to the runner and
    replaces it with the summary, leaving one screen on the stack."""
    from kcm_tui.screens.runner import RunnerScreen
    from kcm_tui.screens.summary import SummaryScreen

    v = step("collect-shares", 4, params={"carriers": ["typed", "qr"]}, performed=True, results={"set_id": "4821"})
    session = FakeSession(v)
    app = SnapApp(FakeBackend(session=session), RunnerScreen)

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            assert len(app.screen_stack) == 1 and isinstance(app.screen, RunnerScreen)
            app.push_screen(CollectionScreen())
            await wait_for(pilot, lambda: isinstance(app.screen, CollectionScreen))
            await pilot.press("f10")
            await wait_for(pilot, lambda: bool(app.screen.query("#yes")))
            await pilot.press("enter")  # no reason: refused, said, nothing aborted
            await pilot.pause()
            assert "Say why the ceremony is aborted" in screen_text(app)
            assert session.state != "aborted" and bool(app.screen.query("#yes"))
            await pilot.press(*"no", "space", *"quorum")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
            assert len(app.screen_stack) == 1
            assert session.state == "aborted" and session.abort_reason == "no quorum"

    asyncio.run(run())
