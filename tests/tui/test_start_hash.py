"""The start screen shows the highlighted script's SHA-256 as the words printed on the
checklist (issue 15, item 6): the witness compares the paper with the screen."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.ceremony import script as script_mod
from core.printing.script import script_pdf
from core.words import to_words
from kcm_tui.scriptlist import script_info
from tests.tui.helpers import screen_text, start_ready
from tests.tui.snapshot_app import FakeBackend, SnapApp

SCRIPTS = Path(__file__).resolve().parents[2] / "ceremony_scripts"


def _printed_words(pdf: bytes, tmp: Path) -> str:
    (tmp / "s.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(tmp / "s.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout.split("\f")[0]
    block = text[text.index("The script's SHA-256") : text.index("Internal witness: the words")]
    pairs = re.findall(r"\b(\d{1,2}) ([a-z]+)\b", block)
    words = {int(n): w for n, w in pairs if 1 <= int(n) <= 26}
    assert sorted(words) == list(range(1, 27)), words
    return " ".join(words[i] for i in range(1, 27))


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils missing")
def test_start_screen_words_equal_the_printed_words(tmp_path: Path) -> None:
    asyncio.run(_printed_and_shown(tmp_path))


async def _printed_and_shown(tmp_path: Path) -> None:
    infos = [script_info(SCRIPTS / f"{n}.toml") for n in ("practice-genesis", "genesis")]
    assert all(i.valid and len(i.sha256) == 64 for i in infos)
    app: Any = SnapApp(FakeBackend(scripts=infos))
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
        shown = " ".join(screen_text(app).split())
        printed = _printed_words(script_pdf(script_mod.load_script(SCRIPTS / "practice-genesis.toml")), tmp_path)
        assert printed == " ".join(to_words(bytes.fromhex(infos[0].sha256)))
        assert printed in shown, shown
        await pilot.press("down")  # the next script: its own words
        await pilot.pause()
        shown = " ".join(screen_text(app).split())
        other = " ".join(to_words(bytes.fromhex(infos[1].sha256)))
        assert other in shown and printed not in shown


def test_an_edited_script_shows_other_words(tmp_path: Path) -> None:
    asyncio.run(_edited(tmp_path))


async def _edited(tmp_path: Path) -> None:
    src = (SCRIPTS / "genesis.toml").read_text()
    a = tmp_path / "a.toml"
    a.write_text(src)
    b = tmp_path / "b.toml"
    b.write_text(src.replace("region_id = \"eu10\"", "region_id = \"eu11\""))
    ia, ib = (script_info(p) for p in (a, b))
    assert ia.valid and ib.valid and ia.hash_words != ib.hash_words
    app: Any = SnapApp(FakeBackend(scripts=[ib]))
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
        shown = " ".join(screen_text(app).split())
        assert " ".join(ib.hash_words) in shown and " ".join(ia.hash_words) not in shown


def test_an_invalid_script_shows_no_words() -> None:
    asyncio.run(_invalid())


async def _invalid() -> None:
    app: Any = SnapApp(FakeBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await start_ready(pilot)
        for _ in range(3):
            await pilot.press("down")
        await pilot.pause()
        assert "Script SHA-256" not in screen_text(app)
