"""The distribution screen leaves the typed-back check to the engine (issue 13): a refusal
is shown with the engine's message and the custodian types again; once the engine accepts
the share the refusal is no longer shown, and the engine's record moves on."""

from __future__ import annotations

import asyncio

from core.ceremony.state import HandoverState
from kcm_tui.errors import ShareRefused
from kcm_tui.screens.distribution import DistributionScreen
from tests.tui.helpers import screen_text, settle, start_ready
from tests.tui.snapshot_app import FakeBackend, FakeSession, SnapApp, step


class RefusingOnce(FakeSession):
    """The engine refuses the first share typed back (another custodian's)."""

    def __init__(self) -> None:
        super().__init__(step("distribute-shares", 6, params={"display": ["screen"]},
                              acknowledge=("admin", "c1", "c2", "c3", "c4", "c5"), performed=True,
                              results={"set_id": "4821"}))
        self.checks: list[str] = []

    def check_typed_share(self, custodian: str) -> str:
        self.checks.append(custodian)
        if len(self.checks) == 1:
            raise ShareRefused("that is share 2 of group 1, not this custodian's share", code="check-wrong-share")
        return super().check_typed_share(custodian)


def test_refusal_shown_then_cleared_once_the_engine_accepts() -> None:
    session = RefusingOnce()
    app = SnapApp(FakeBackend(session=session), DistributionScreen)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await start_ready(pilot)
            await pilot.press("r")
            await settle(pilot)
            await pilot.press("y")
            await settle(pilot)
            await pilot.press("enter")  # the (fake) entry is complete: the engine checks it
            await settle(pilot)
            assert "not this custodian's share" in screen_text(app)
            assert session.handovers["c1"].state is HandoverState.WRITTEN
            await pilot.press("enter")
            await settle(pilot)
            text = screen_text(app)
            assert "not this custodian's share" not in text
            assert session.checks == ["c1", "c1"]
            assert session.handovers["c1"].state is HandoverState.CHECKED
            assert "Custodian 2 comes to the screen alone" in text

    asyncio.run(run())
