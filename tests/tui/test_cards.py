"""Pilot end to end with real SoftHSM2 tokens: genesis where Custodian 1's share is written
to their card (card picked in the token list, PIN typed on the keyholder's own terminal,
issue 14: the UI never holds it; serial,
key fingerprint words and the read-back verification shown), then unseal-and-seal where
the share comes back from that card: a wrong PIN first (the engine's message is shown, the
step stays, nothing is lost), then the right one; the camera way shows the engine's own
error (no camera here)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from core.demo import init_workspace
from kcm_tui.screens.card import CardPanel
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.distribution import DistributionScreen
from tests.tui.helpers import (
    CustodianTerminal,
    begin,
    make_app,
    screen_text,
    settle,
    type_share,
)
from tests.tui.test_e2e import run_steps

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HAVE_SOFTHSM = bool(os.path.exists(MODULE) and shutil.which("softhsm2-util"))
PIN = "246810"
SO_PIN = "13572468"
SIZE = (80, 24)

pytestmark = pytest.mark.skipif(not HAVE_SOFTHSM, reason="SoftHSM2 missing")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cards")
    tokendir = root / "tokens"
    tokendir.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # the keyholder child inherits it
    try:
        env = dict(os.environ)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "custodian-1", "--so-pin", SO_PIN, "--pin", PIN],
                       check=True, capture_output=True, env=env)
        out = subprocess.run(["softhsm2-util", "--show-slots"], check=True, capture_output=True, text=True, env=env).stdout
        m = re.search(r"Label:\s*custodian-1\s.*?Serial number:\s*(\S+)|Serial number:\s*(\S+)\s.*?Label:\s*custodian-1", out, re.S)
        assert m, out
        serial = m.group(1) or m.group(2)
        ws = init_workspace(root / "ws")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # the demo workspace made its own tokens
        g = ws.scripts / "genesis.toml"
        # c1's card: the demo bound it to its own DEMO-0001 token's serial; use ours
        text = re.sub(r'card_serial = "[^"]*"(  # demo token DEMO-0001)?', f'card_serial = "{serial}"',
                      g.read_text(), count=1)
        text = re.sub(r"^card_module = .*\n", "", text, flags=re.MULTILINE)  # the test names its own
        assert 'display = ["screen", "qr", "card"]\n' in text
        text = text.replace('display = ["screen", "qr", "card"]\n', 'display = ["screen", "qr", "card"]\n'
                            'carriers = { c1 = "card" }\ncard_module = "softhsm2"\ncard_key_bits = 2048\n')
        g.write_text(text)
        u = ws.scripts / "unseal-and-seal.toml"
        utext = re.sub(r"^card_module = .*\n", "", u.read_text(), flags=re.MULTILINE)
        assert utext.count('carriers = ["typed", "qr", "card"]') == 1
        u.write_text(utext.replace('carriers = ["typed", "qr", "card"]', 'carriers = ["typed", "qr", "card"]\ncard_module = "softhsm2"'))
        yield {"ws": ws, "serial": serial}
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def test_card_genesis_then_collection_with_wrong_pin_first(world: dict[str, Any]) -> None:
    terminal = CustodianTerminal()
    serial = world["serial"]
    cards_seen: list[str] = []

    async def distribute(pilot: Any, term: CustodianTerminal) -> None:
        app = pilot.app
        for _ in range(5):
            await pilot.pause()
            if not isinstance(app.screen, DistributionScreen):
                break
            if app.screen.query(CardPanel):
                text = screen_text(app)
                assert serial in text and "custodian-1" in text, text  # the token picker
                assert "PIN ok" in text, text
                panel = app.screen.query_one(CardPanel)
                await pilot.press("enter")
                # the keyholder asks for the PIN on its own terminal (the custodian's pty here)
                await asyncio.to_thread(term.type_pin, PIN)
                await settle(pilot, lambda p=panel: not p.busy, timeout=120)
                assert PIN.encode() not in term.raw  # the keyholder drew only the mask
                text = screen_text(app)
                assert f"share written to card {serial}" in text, text
                assert "Read back and checked against the manifest: OK" in text, text
                words = list(app.screen.card_result["key_fingerprint_words"])
                assert words and all(w in text for w in words[:4]), text
                cards_seen.append(serial)
                await pilot.press("enter")  # Continue
                await pilot.pause()
                continue
            before = len(term.share_words)
            await pilot.press("r")
            await pilot.pause()
            assert len(term.share_words) == before + 1, screen_text(app)
            await pilot.press("y")
            await pilot.pause()
            await type_share(pilot, term.share_words[-1], prefix_only=True)
            await pilot.pause()
        assert not isinstance(app.screen, DistributionScreen), screen_text(app)

    async def genesis() -> None:
        app = make_app(world["ws"], terminal, script="genesis.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            await run_steps(pilot, terminal, None, [], distribute_fn=distribute)
            session = app.backend.session
            assert session.state == "completed"
            m = session.c.manifest
            holder = next(h for h in m["holders"] if h["custodian"] == "c1")
            assert holder["card_serial"] == serial and holder["verified"] is True
            assert session.verify_journal()[0]
            app.backend.close()

    asyncio.run(genesis())
    assert cards_seen == [serial]
    assert len(terminal.share_words) == 4  # c2..c5 on the screen, c1 on the card
    notes: list[str] = []

    async def collect(pilot: Any, shares: list[list[str]], seen: list[str]) -> None:
        app = pilot.app
        session = app.backend.session
        # no camera on this machine: the engine's own message is shown, nothing changes
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot, lambda: bool(app.screen.last_refusal) and not app.screen.scanning)
        text = screen_text(app)
        assert "camera" in text.lower(), text
        notes.append("camera-error")
        # the card, with a wrong PIN first
        await pilot.press("c")
        await pilot.pause()
        assert serial in screen_text(app)
        panel = app.screen.query_one(CardPanel)
        await pilot.press("enter")
        await asyncio.to_thread(terminal.type_pin, "999999")
        await settle(pilot, lambda: not panel.busy and bool(panel.error_code))
        text = screen_text(app)
        assert "PIN" in text and ("wrong" in text.lower() or "incorrect" in text.lower()), text
        panel = app.screen.query_one(CardPanel)
        assert panel.error_code == "card-pin-incorrect"
        assert isinstance(app.screen, CollectionScreen)
        assert len(session.current().display.get("accepted") or []) == 0
        notes.append("wrong-pin")
        await pilot.press("enter")
        await asyncio.to_thread(terminal.type_pin, PIN)
        await settle(pilot, lambda: not panel.busy and bool(session.current().display.get("accepted")),
                     timeout=120)
        accepted = session.current().display.get("accepted") or []
        assert len(accepted) == 1, screen_text(app)
        assert accepted[0].get("card_serial") == serial
        notes.append("card-accepted")
        for words in shares[:2]:
            await pilot.press("t")
            await pilot.pause()
            await type_share(pilot, words)
            await pilot.pause()
        assert not isinstance(app.screen, CollectionScreen), screen_text(app)

    async def unseal() -> None:
        app = make_app(world["ws"], terminal, script="unseal-and-seal.toml")
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            await run_steps(pilot, terminal, terminal.share_words, [], collect_fn=collect)
            session = app.backend.session
            assert session.state == "completed"
            assert session.verify_journal()[0]
            app.backend.close()

    asyncio.run(unseal())
    terminal.close()
    assert notes == ["camera-error", "wrong-pin", "card-accepted"]
