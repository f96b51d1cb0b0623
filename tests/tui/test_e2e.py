"""Pilot end to end: genesis 3-of-5 with typed re-entry of every share, then
unseal-and-seal from 3 of them (one typed with a typo that is located and fixed), sealing to
the demo KMS recipient and exporting; both journals verify."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest

from core import journal as jmod
from core.demo import init_workspace
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.screens.runner import ACTION_LABEL, RunnerScreen
from kcm_tui.screens.summary import SummaryScreen
from tests.tui.helpers import (
    CustodianTerminal,
    begin,
    entry_done,
    keyholder_keys,
    make_app,
    press,
    screen_text,
    settle,
    terminal_of,
    tick_all,
    type_keys,
    type_share,
)

SIZE = (80, 24)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return init_workspace(tmp_path_factory.mktemp("e2e") / "ws")


async def run_steps(pilot: Any, terminal: CustodianTerminal, shares_to_type: list[list[str]] | None, seen: list[str],
                    *, distribute_fn: Any = None, collect_fn: Any = None, others: dict[type, Any] | None = None) -> None:
    """Drive the runner until the summary screen, handling the sub-screens (``others``:
    screen class -> handler for further sub-screens)."""
    app = pilot.app
    for _ in range(60):
        await pilot.pause()
        screen = app.screen
        if isinstance(screen, SummaryScreen):
            return
        if others and type(screen) in others:
            await others[type(screen)](pilot)
            continue
        if isinstance(screen, DistributionScreen):
            await (distribute_fn or distribute)(pilot, terminal)
            continue
        if isinstance(screen, CollectionScreen):
            assert shares_to_type is not None
            await (collect_fn or collect)(pilot, shares_to_type, seen)
            continue
        assert isinstance(screen, RunnerScreen), type(screen)
        view = app.backend.session.current()
        assert view is not None
        seen.append(view.kind)
        assert not screen.error, f"{view.kind}: {screen.error}"
        if view.kind in ACTION_LABEL and not view.performed:
            await press(pilot, "#action")

            def acted(index: int = view.index) -> bool:
                if not isinstance(app.screen, RunnerScreen):
                    return True  # a sub-screen (distribution, collection) took over
                now = app.backend.session.current()
                done = now is None or now.index != index or now.performed
                return not app.screen.busy and (done or bool(app.screen.error))

            await settle(pilot, acted)  # seal and export run in worker threads
            if not isinstance(app.screen, RunnerScreen):
                continue
            assert not app.screen.error, f"{view.kind}: {app.screen.error}"
        await tick_all(pilot)
        await press(pilot, "#continue")
    raise AssertionError("the ceremony did not reach its summary")


async def distribute(pilot: Any, terminal: CustodianTerminal) -> None:
    app = pilot.app
    for _ in range(5):
        before = len(terminal.share_words)
        text_before = screen_text(app).split()
        await pilot.press("r")  # the custodian reveals: the keyholder writes to their tty
        await pilot.pause()
        assert len(terminal.share_words) == before + 1, screen_text(app)
        words = terminal.share_words[-1]
        assert len(words) == 33
        text = screen_text(app)
        tokens = text.split()
        # no numbered share word and no two consecutive share words on the UI's screen
        leaked = [w for w in words if re.search(rf"\b\d+\.?\s+{w}\b", text)]
        leaked += [f"{a} {b}" for a, b in itertools.pairwise(words) if f"{a} {b}" in " ".join(tokens)]
        assert text_before
        assert not leaked, f"share words on the UI screen: {leaked}"
        await pilot.press("y")  # written down
        await pilot.pause()
        await type_share(pilot, words, prefix_only=True)
        await pilot.pause()
    await pilot.pause()
    assert not isinstance(app.screen, DistributionScreen)


def share_qr_png(words: list[str], path: Path) -> Path:
    """The custodian's printed share card: the share's QR as a PNG (test data)."""
    from core.carriers import qr
    from core.words import wordlist

    index = {w: i for i, w in enumerate(wordlist())}
    raw = bytearray()
    for w in words:
        raw += index[w].to_bytes(2, "big")
    matrix = qr.make_matrix(memoryview(raw))
    path.write_bytes(qr.png_bytes(matrix))
    return path


async def collect(pilot: Any, shares: list[list[str]], seen: list[str]) -> None:
    app = pilot.app
    for n, words in enumerate(shares):
        if n == 2:  # the third share comes in as a photographed QR card on the medium
            image = share_qr_png(words, app.backend.media / "share-card.png")
            # first a torn copy of it: refused by the image decoder's sandbox, nothing lost
            torn = app.backend.media / "share-card-torn.png"
            torn.write_bytes(image.read_bytes()[:200])
            await pilot.press("q")
            await pilot.pause()
            await type_keys(pilot, list(str(torn)))
            await pilot.press("enter")
            await pilot.pause()
            text = screen_text(app)
            assert "share-card-torn.png is not an image file" in text, text
            assert "Choose a PNG or" in text, text  # the hint (wrapped at 80 columns)
            assert isinstance(app.screen, CollectionScreen), text
            torn.unlink()
            seen.append("qr-refused")
            await pilot.press("q")
            await pilot.pause()
            await type_keys(pilot, list(str(image)))
            await pilot.press("enter")
            await pilot.pause()
            image.unlink()
            seen.append("qr-share")
            continue
        await pilot.press("t")
        await pilot.pause()
        if n == 1:
            wrong = list(words)
            # a typo: word 17 replaced by another list word (the checksum catches it)
            wrong[16] = "academic" if words[16] != "academic" else "acid"
            keys = await type_share(pilot, wrong, check=False)
            term = terminal_of(app)
            await keyholder_keys(pilot, b"\r", keys + 1)
            # the keyholder draws the position on its own screen; the word only on '?'
            term.wait_for(b"Word 17 is probably wrong")
            assert not _drawn_outside_static_text(bytes(term.raw[term.mark:]), words[16])
            assert "probably wrong" not in screen_text(app)  # nothing of it in the UI
            seen.append("typo-located")
            await keyholder_keys(pilot, b"?", keys + 2)
            term.wait_for(b"Suggestion for word 17: " + words[16].encode())
            term.mark = len(term.raw)
            await keyholder_keys(pilot, words[16][:4].encode(), keys + 6)
            os.write(term.master, b"\r")
            await entry_done(pilot)
        else:
            await type_share(pilot, words)
        await pilot.pause()
    assert not isinstance(app.screen, CollectionScreen), screen_text(app)


def test_genesis_then_unseal_and_seal(workspace: Any) -> None:
    terminal = CustodianTerminal()

    async def genesis() -> list[str]:
        app = make_app(workspace, terminal, script="genesis.toml")
        seen: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            assert isinstance(app.screen, RunnerScreen), screen_text(app)
            await run_steps(pilot, terminal, None, seen)
            session = app.backend.session
            assert session.state == "completed"
            ok, msg = session.verify_journal()
            assert ok, msg
            text = screen_text(app)
            assert "CEREMONY COMPLETED" in text
            assert session.final_words[0] in text
            journal_path = session.journal_path
            app.backend.close()
        assert jmod.verify(journal_path).ok
        return seen

    seen = asyncio.run(genesis())
    assert {"generate", "distribute-shares", "seal", "export"} <= set(seen)
    assert len(terminal.share_words) == 5

    async def unseal() -> list[str]:
        app = make_app(workspace, terminal, script="unseal-and-seal.toml")
        seen2: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            await begin(pilot)
            assert isinstance(app.screen, RunnerScreen), screen_text(app)
            await run_steps(pilot, terminal, [terminal.share_words[0], terminal.share_words[2], terminal.share_words[4]], seen2)
            session = app.backend.session
            assert session.state == "completed"
            assert session.verify_journal()[0]
            files = session.exports()
            app.backend.close()
        assert any(Path(f).name.endswith(".sealed.json") for f in files) or files
        return seen2

    seen2 = asyncio.run(unseal())
    terminal.close()
    assert "typo-located" in seen2 and "qr-share" in seen2 and "qr-refused" in seen2
    assert {"collect-shares", "recover", "verify-kcv", "seal", "export"} <= set(seen2)


def _drawn_outside_static_text(raw: bytes, word: str) -> bool:
    """Whether ``word`` is drawn on the keyholder's entry screen other than in the entry's
    own fixed text (its help lines, drawn in the first frame): the share word being "type"
    or "enter" must not make the check fail by chance (it did: word 17 was "type")."""
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"\n", raw).decode("ascii", "replace")
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    end = next(i for i, ln in enumerate(lines) if "Esc Esc exits" in ln)
    static = set(lines[: end + 1])
    return any(re.search(rf"\b{word}\b", ln) for ln in lines if ln not in static)
