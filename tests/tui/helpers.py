"""Helpers for the TUI tests: screen text, the custodian terminal (tests.support.custodian),
an app factory over a demo workspace, and Pilot drivers for the ceremony steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kcm_tui.app import CeremonyApp
from kcm_tui.backend import Backend, ShareDisplay
from tests.support.custodian import TERMINALS, CustodianTerminal


def screen_text(app: CeremonyApp) -> str:
    """The visible screen as plain text (what a camera in the room would see)."""
    lines = []
    for strip in app.screen._compositor.render_strips():
        lines.append("".join(seg.text for seg in strip))
    return "\n".join(lines)


def make_app(workspace: Any, terminal: CustodianTerminal | None = None, *, script: str = "genesis.toml", **kw: Any) -> CeremonyApp:
    """The app over a demo workspace, in demo mode, preflight sized 80x24."""
    backend = Backend(
        demo=True,
        media=workspace.media,
        scripts_dirs=[workspace.scripts],
        share_display=ShareDisplay(terminal.path if terminal else "/nonexistent-tty"),
        env={},
        term_size=(80, 24),
    )
    return CeremonyApp(backend, preselect_script=script, **kw)


async def start_ready(pilot: Any) -> None:
    """Wait until the start screen has its script list (read in a worker thread)."""
    await settle(pilot, lambda: bool(getattr(pilot.app.screen, "scripts_loaded", True))
                 and bool(getattr(pilot.app.screen, "checks_done", True)))


def threads_pending(app: Any) -> bool:
    """True while a worker started with ``ThreadWork.run_in_thread`` on the current screen (or
    one of its widgets) has not had its result handled yet."""
    nodes = [app.screen, *app.screen.walk_children()]
    return any(getattr(n, "__dict__", {}).get("_thread_done") for n in nodes)


async def settle(pilot: Any, until: Callable[[], bool] | None = None, *, timeout: float = 120.0) -> None:
    """Wait until what the last key started has finished, whatever the machine's load:
    ``until()`` is true (the state the test expects the operation to reach; the operation
    may not even have started when this is called), no worker runs and every thread
    worker's result has been handled. Pilot's own pauses judge idleness by CPU time, which
    a busy machine fools; this polls real state, up to ``timeout`` seconds."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        # a screen that shares its rows over several refreshes (the start screen) says when
        # the layout is stable: a snapshot taken before that depends on the machine's load
        fitting = any(getattr(s, "fitting", False) for s in app.screen_stack)
        if (until is None or until()) and not fitting and not threads_pending(app) and not any(w.is_running for w in app.workers):
            await pilot.pause()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the UI did not settle in {timeout:.0f} s:\n{screen_text(app)}")
        await pilot.pause(0.02)


async def wait_until(pilot: Any, cond: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Poll ``cond`` (real state) for up to ``timeout`` seconds, then one more pause; for a
    state reached while a worker is still held (``settle`` waits for workers to end)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s:\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)
    await pilot.pause()


async def begin(pilot: Any) -> None:
    """On the start screen: the preselected script, the workspace medium, Begin."""
    app = pilot.app
    await start_ready(pilot)
    app.screen.query_one("#begin").press()
    await pilot.pause()


async def tick_all(pilot: Any) -> None:
    """Tick every unticked box on the runner screen (each person confirms aloud)."""
    from kcm_tui.widgets.ack import AckBox

    for box in list(pilot.app.screen.query(AckBox).results(AckBox)):
        if not box.value:
            box.value = True  # what Space on the focused box does
    await pilot.pause()


async def press(pilot: Any, selector: str) -> None:
    """Press a button by selector (keyboard: focus it, Enter)."""
    button = pilot.app.screen.query_one(selector)
    button.focus()
    await pilot.press("enter")
    await pilot.pause()


async def type_keys(pilot: Any, keys: list[str]) -> None:
    """Send key events the way the driver does (through the app to the focused widget),
    without Pilot's per-key idle wait (70 ms a key on a busy 2-core machine)."""
    from textual import events

    app = pilot.app
    for key in keys:
        char = " " if key == "space" else ("\r" if key == "enter" else (key if len(key) == 1 else None))
        app.post_message(events.Key(key, char))
    await pilot.pause()


def terminal_of(app: Any) -> CustodianTerminal:
    """The custodian terminal the app's keyholder uses."""
    return TERMINALS[app.backend.share_display.tty_path]


async def entry_done(pilot: Any) -> None:
    """Wait until the keyholder handed the keyboard back and the UI handled the result."""
    from kcm_tui.screens.entry import EntryPanel

    def idle() -> bool:
        return not any(p.running for p in pilot.app.screen.query(EntryPanel).results(EntryPanel))

    await settle(pilot, idle)


async def type_share(pilot: Any, words: list[str], *, prefix_only: bool = False, check: bool = True) -> int:
    """Type a share on the keyholder's terminal, as a custodian would (the UI reads nothing
    meanwhile), then Enter to check it (``check``). Returns the keys typed (Enter included)."""
    import asyncio
    import os

    term = terminal_of(pilot.app)
    await wait_until(pilot, term.entry_open)
    keys = await asyncio.to_thread(term.type_words, words, prefix_only=prefix_only)
    if check:
        term.mark = len(term.raw)
        os.write(term.master, b"\r")
        keys += 1
        await entry_done(pilot)
    return keys


async def keyholder_keys(pilot: Any, data: bytes, keys: int) -> None:
    """Type raw keys on the keyholder's terminal and wait for its redraw (``keys``: the
    entry's key count expected after them)."""
    import asyncio

    term = terminal_of(pilot.app)
    await asyncio.to_thread(term.send, data, keys)


def write_share_sheet(path: Path, words: list[str]) -> None:  # pragma: no cover - debugging aid
    path.write_text(" ".join(words))
