"""Pilot end to end over the real engine and keyholder (issue 16): the practice genesis,
then practice-byok through the runner and the BYOK screen, keyboard only at 80x24. For
each provider the time is typed (AWS, GCP), the 26 fingerprint words shown are those of
the DEMO wrapping key on the medium, the witness presses Y, W wraps and writes; the
import files land in PRACTICE-byok-<provider> and the journal verifies. (The files are
opened with openssl in tests/interop/test_byok_ceremony.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from core import journal as jmod
from core.demo import init_workspace
from core.seal.recipients import parse_public_key
from core.words import to_words
from kcm_tui.screens.byok import ByokScreen
from kcm_tui.screens.runner import RunnerScreen
from tests.tui.helpers import CustodianTerminal, begin, make_app, screen_text, settle, type_keys
from tests.tui.test_e2e import SIZE, run_steps
from tests.tui.test_rotation_e2e import distribute_n, typed_only


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ws = init_workspace(tmp_path_factory.mktemp("byok-e2e") / "ws")
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


def _fingerprint(path: Any) -> str:
    key = parse_public_key(path.read_bytes())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    return hashlib.sha256(der).hexdigest()


def test_practice_byok_through_the_screens(workspace: Any) -> None:
    terminal = CustodianTerminal()
    seen_providers: list[str] = []

    async def byok(pilot: Any) -> None:
        app = pilot.app
        screen = app.screen
        assert isinstance(screen, ByokScreen)
        provider = str(screen.view.params["provider"]) if screen.view else "?"
        if screen.phase == "when":
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            await type_keys(pilot, list(now))
            await pilot.press("enter")
            await pilot.pause()
        assert screen.phase == "compare", screen_text(app)
        # the words on the screen are the DEMO wrapping key's, as the witness's copy says
        fp = _fingerprint(workspace.media / str(screen.view.params["wrapping_key_file"]))  # type: ignore[union-attr]
        text = screen_text(app)
        assert fp in text
        assert all(f" {w} " in f" {' '.join(text.split())} " for w in to_words(bytes.fromhex(fp)))
        await pilot.press("y")
        await pilot.pause()
        assert screen.phase == "wrap", screen_text(app)
        await pilot.press("w")
        await settle(pilot, lambda: not screen.busy)
        assert screen.phase == "done", screen_text(app)
        assert "Wrapped and written" in screen_text(app)
        seen_providers.append(provider)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunnerScreen)

    async def genesis() -> None:
        app = make_app(workspace, terminal, script="practice-genesis.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            # practice-genesis: custodians 1 and 2 on their DEMO cards, 3 to 5 as words
            await run_steps(pilot, terminal, None, [], distribute_fn=distribute_n(5))
            assert app.backend.session.state == "completed"
            app.backend.close()

    async def export() -> Any:
        app = make_app(workspace, terminal, script="practice-byok.toml")
        seen: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            assert isinstance(app.screen, RunnerScreen), screen_text(app)
            shares = [terminal.share_words[0], terminal.share_words[1], terminal.share_words[2]]
            await run_steps(pilot, terminal, shares, seen, others={ByokScreen: byok}, collect_fn=typed_only)
            session = app.backend.session
            assert session.state == "completed"
            journal = session.journal_path
            app.backend.close()
        return journal

    asyncio.run(genesis())
    journal = asyncio.run(export())
    terminal.close()
    assert seen_providers == ["aws", "gcp", "azure", "vault"]
    assert jmod.verify(journal).ok
    out = workspace.media / "exports"
    for provider, main in (("aws", "EncryptedKeyMaterial.bin"), ("gcp", "wrapped-key.bin"),
                           ("azure", "PRACTICE-masterkey.byok"), ("vault", "vault-transit-import.json")):
        folder = out / f"PRACTICE-byok-{provider}"
        assert (folder / main).is_file() and (folder / f"{provider}-import.json").is_file()
