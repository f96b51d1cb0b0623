"""The BYOK screen sends what the room does to the engine, keyboard only (issue 16).

Over the fake session (canned public state): the time typed for AWS reaches ``perform``
as ``window_start_utc``; Y sends the witness's confirmation of the words shown, N reports a
difference, a typed copy goes as ``out_of_band`` (the engine and the keyholder compare it);
W is refused before a confirmation. The real engine and keyholder behind it are exercised
by tests/unit/test_engine_byok.py and tests/interop/test_byok_ceremony.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kcm_tui.screens.byok import ByokScreen
from tests.support.fake_session import FakeSession
from tests.tui.helpers import start_ready, type_keys
from tests.tui.snapshot_app import FakeBackend, SnapApp, step
from tests.tui.test_snapshots import BYOK_AWS, BYOK_SHOWN


def _app(**kw: Any) -> tuple[SnapApp, FakeSession]:
    v = step("byok", 5, params=kw.pop("params", BYOK_AWS), **kw)
    s = FakeSession(v)
    return SnapApp(FakeBackend(session=s), ByokScreen), s


async def _test_time_typed_reaches_perform() -> None:
    app, s = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
        await type_keys(pilot, list("2027-01-15T09:30:00Z"))
        await pilot.press("enter")
        await pilot.pause()
    assert s.performed_inputs == [{"window_start_utc": "2027-01-15T09:30:00Z"}]


async def _test_vault_shows_the_fingerprint_at_once() -> None:
    params = {"provider": "vault", "witness": "witness", "wrapping_key_file": "byok/v.pem", "key_name": "k"}
    app, s = _app(params=params)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
    assert s.performed_inputs == [{}]


async def _test_y_confirms_n_differs_typed_copy_is_sent() -> None:
    for keys, expected in (
        (["y"], ("witness", True, None)),
        (["n"], ("witness", False, None)),
        (["tab", *list("4d7c" * 16), "enter"], ("witness", True, "4d7c" * 16)),
    ):
        app, s = _app(display=BYOK_SHOWN)
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            if keys[0] == "tab":
                await pilot.press("tab")
                keys = keys[1:]
            await type_keys(pilot, keys)
            await pilot.pause()
        assert s.confirmations == [expected], keys


async def _test_w_before_the_confirmation_does_nothing() -> None:
    app, s = _app(display=BYOK_SHOWN)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
        screen = app.screen
        assert isinstance(screen, ByokScreen)
        screen.action_wrap()
        await pilot.pause()
        assert screen.busy == ""
    assert s.performed_inputs == [] and s.confirmations == []


def test_time_typed_reaches_perform() -> None:
    asyncio.run(_test_time_typed_reaches_perform())


def test_vault_shows_the_fingerprint_at_once() -> None:
    asyncio.run(_test_vault_shows_the_fingerprint_at_once())


def test_y_confirms_n_differs_typed_copy_is_sent() -> None:
    asyncio.run(_test_y_confirms_n_differs_typed_copy_is_sent())


def test_w_before_the_confirmation_does_nothing() -> None:
    asyncio.run(_test_w_before_the_confirmation_does_nothing())
