"""Printed material (issue 15, item 6; issue 18, item 2): every page rendered and checked.

Each PDF is rendered to PNG with ``pdftoppm`` and read back with ``pdftotext`` (Debian's
poppler-utils, installed by tools/install-debian-deps.sh), on A4 and on Letter:

* the ceremony script checklist: page size and count, "page N of M" on every page, every
  act (with its time estimate), step, role and acknowledgement, the SHA-256 as hex and the
  same words the start screen shows, the signature block;
* blank word cards: numbered boxes 1..20 or 1..33 (counted in the pixels), the set / group /
  member fields;
* blank QR grid cards: the printed patterns, the frame and the empty squares exactly where
  the card reader and the transcription display expect them (pixel checks at 150 dpi),
  row and column numbers, the fields.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.carriers.qrgrid import DATA, FIXED_DARK, FRAME_GAP, FRAME_WIDTH, fixed_map
from core.ceremony.script import load_script
from core.printing import cards
from core.printing.pdf import PAPERS
from core.printing.script import script_pdf
from core.words import to_words
from kcm_tui.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "ceremony_scripts"

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="poppler-utils missing (tools/install-debian-deps.sh installs it as root)",
)


def render(pdf: bytes, tmp: Path, dpi: int = 50) -> list[Image.Image]:
    """Every page of ``pdf`` as a grayscale image."""
    src = tmp / "doc.pdf"
    src.write_bytes(pdf)
    for old in tmp.glob("page-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(src), str(tmp / "page")], check=True)
    pages = sorted(tmp.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    return [Image.open(p).convert("L") for p in pages]


def text_of(pdf: bytes, tmp: Path) -> list[str]:
    """The text of each page (pdftotext, pages split on form feeds)."""
    src = tmp / "doc.pdf"
    src.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(src), "-"], check=True, capture_output=True, text=True).stdout
    return out.split("\f")[: -1 or None]


def expected_px(paper: str, dpi: int) -> tuple[int, int]:
    p = PAPERS[paper]
    return round(p.width / 25.4 * dpi), round(p.height / 25.4 * dpi)


def assert_page_size(img: Image.Image, paper: str, dpi: int) -> None:
    w, h = expected_px(paper, dpi)
    assert abs(img.width - w) <= 1 and abs(img.height - h) <= 1, (img.size, (w, h), paper)


# --- the ceremony script ----------------------------------------------------------------


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("name", ["genesis", "practice-unseal-and-seal", "reshare", "practice-byok"])
def test_script_checklist_pages(name: str, paper: str, tmp_path: Path) -> None:
    s = load_script(SCRIPTS / f"{name}.toml")
    pdf = script_pdf(s, paper=paper)
    pages = render(pdf, tmp_path)
    texts = text_of(pdf, tmp_path)
    assert len(pages) == len(texts) >= 3
    for i, (img, text) in enumerate(zip(pages, texts, strict=True), 1):
        assert_page_size(img, paper, 50)
        assert f"page {i} of {len(pages)}" in text
        assert s.sha256[:16] in text  # every page names the script's hash
        ink = np.asarray(img) < 128
        assert ink.mean() > 0.002  # not a blank page
    everything = re.sub(r"\s+", " ", " ".join(texts))
    assert s.sha256[:16] in texts[0] and " ".join(s.sha256[i : i + 16] for i in range(0, 64, 16)) in everything
    words = to_words(bytes.fromhex(s.sha256))
    first = re.sub(r"\s+", " ", texts[0])
    positions = [first.find(f" {w} ") for w in words]
    assert all(p >= 0 for p in positions), [w for w, p in zip(words, positions, strict=True) if p < 0]
    for act in s.acts:
        assert act.title in everything
        assert act.estimate_minutes and f"(about {act.estimate_minutes} min)" in everything
        for step in act.steps:
            assert step.title in everything
    total = sum(a.estimate_minutes or 0 for a in s.acts)
    assert f"about {total} minutes in all" in everything
    for role in s.roles.values():
        assert role.name in everything
    assert "Acknowledged by:" in everything and "initials" in everything
    assert "Signatures" in texts[-1] and texts[-1].count("signature") >= len(s.roles)
    assert ("PRACTICE" in texts[0]) is s.practice
    if name == "practice-byok":  # each provider's wrapping key is confirmed on paper too
        for provider in ("aws", "gcp", "azure", "vault"):
            assert f"{provider} wrapping key fingerprint words" in everything
        assert everything.count("the words match the provider's copy") == 4


def test_checklist_lists_what_each_step_needs(tmp_path: Path) -> None:
    s = load_script(SCRIPTS / "practice-genesis.toml")
    everything = re.sub(r"\s+", " ", " ".join(text_of(script_pdf(s), tmp_path)))
    for item in ("Export media bag number matches the paper log", "present: Custodian 5",
                 "key check value (KCV) words:", "journal final hash (words):",
                 "Custodian 3 (words): [ ] shown [ ] written [ ] checked"):
        assert item in everything, item
    # one acknowledgement line per role and step
    acks = sum(len(st.acknowledge) for _a, st in s.steps())
    assert everything.count("initials") >= acks


def test_checklist_prints_names_outside_latin1(tmp_path: Path) -> None:
    text = (SCRIPTS / "genesis.toml").read_text()
    text = text.replace('name = "Custodian 3"', 'name = "Łukasz Żółć"')
    text = text.replace('name = "Custodian 4"', 'name = "Ιωάννα Παπαδοπούλου"')
    path = tmp_path / "named.toml"
    path.write_text(text)
    everything = " ".join(text_of(script_pdf(load_script(path)), tmp_path))
    assert "Łukasz Żółć" in everything and "Ιωάννα Παπαδοπούλου" in everything


def test_act_without_estimate_is_named(tmp_path: Path) -> None:
    text = (SCRIPTS / "genesis.toml").read_text().replace("estimate_minutes = 10\n", "", 1)
    path = tmp_path / "partial.toml"
    path.write_text(text)
    everything = re.sub(r"\s+", " ", " ".join(text_of(script_pdf(load_script(path)), tmp_path)))
    assert "no estimate for: Act 2: Generate the MasterKey" in everything


def test_script_print_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "genesis.pdf"
    assert cli_main(["script", "print", str(SCRIPTS / "genesis.toml"), "--pdf", str(out), "--paper", "letter"]) == 0
    said = capsys.readouterr().out
    s = load_script(SCRIPTS / "genesis.toml")
    assert s.sha256 in said and " ".join(to_words(bytes.fromhex(s.sha256))) in said
    assert out.read_bytes().startswith(b"%PDF-")
    pages = render(out.read_bytes(), tmp_path)
    assert f"({'Letter'}, {len(pages)} pages)" in said
    assert_page_size(pages[0], "letter", 50)
    # an invalid script is not printed; problems are listed
    bad = ROOT / "tests/data/bad_scripts/estimate_out_of_range.toml"
    assert cli_main(["script", "print", str(bad), "--pdf", str(tmp_path / "bad.pdf")]) == 1
    assert "estimate_minutes" in capsys.readouterr().out
    assert not (tmp_path / "bad.pdf").exists()
    assert cli_main(["script", "print", str(SCRIPTS / "genesis.toml")]) == 2  # --pdf missing
    assert cli_main(["script", "print", "--help"]) == 0


def test_pdfs_are_reproducible() -> None:
    s = load_script(SCRIPTS / "genesis.toml")
    assert script_pdf(s) == script_pdf(s)
    assert cards.grid_cards_pdf() == cards.grid_cards_pdf()


# --- word cards -------------------------------------------------------------------------


def _boxes_down(img: Image.Image, x_frac: float, min_px: int) -> int:
    """How many grey number columns (runs of grey at least ``min_px`` tall) a vertical
    line at ``x_frac`` of the width crosses."""
    a = np.asarray(img)
    col = a[:, int(img.width * x_frac)]
    grey = ((col > 200) & (col < 245)).astype(np.int8)
    edges = np.diff(np.r_[0, grey, 0])
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int(np.sum((ends - starts) >= min_px))


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize(("words", "cols"), [(33, 3), (20, 2)])
def test_word_cards(words: int, cols: int, paper: str, tmp_path: Path) -> None:
    pdf = cards.word_cards_pdf(paper=paper, words=words, count=2)
    pages = render(pdf, tmp_path, dpi=100)
    texts = text_of(pdf, tmp_path)
    assert len(pages) == 2
    for k, (img, text) in enumerate(zip(pages, texts, strict=True), 1):
        assert_page_size(img, paper, 100)
        assert f"SLIP-39 SHARE CARD - {words} words" in text and f"card {k} of 2" in text
        for field in ("Set", "Group", "Member", "Custodian", "Bag no.", "Ceremony / date"):
            assert field in text
        numbers = {int(t) for t in re.findall(r"\b(\d{1,2})\b", text)}
        assert set(range(1, words + 1)) <= numbers
        # the number columns of the boxes, counted in the pixels of each column of boxes
        left = PAPERS[paper].width
        for c in range(cols):
            bw = (left - 24 - (cols - 1) * 4) / cols
            x = (12 + c * (bw + 4) + 1.2) / left
            assert _boxes_down(img, x, min_px=round(6 / 25.4 * 100)) == -(-words // cols)


def test_word_cards_refuse_other_lengths() -> None:
    with pytest.raises(ValueError, match="20 or 33"):
        cards.word_cards_pdf(words=24)
    with pytest.raises(ValueError, match="at least one"):
        cards.word_cards_pdf(count=0)


# --- QR grid cards ----------------------------------------------------------------------


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize(("words", "size"), [(33, 33), (20, 29)])
def test_grid_cards_print_where_the_reader_looks(words: int, size: int, paper: str, tmp_path: Path) -> None:
    dpi = 150
    pdf = cards.grid_cards_pdf(paper=paper, words=words, count=1)
    (img,) = render(pdf, tmp_path, dpi=dpi)
    (text,) = text_of(pdf, tmp_path)
    assert_page_size(img, paper, dpi)
    assert f"SHARE QR GRID CARD - {size} x {size}" in text
    assert f"{words}-word share (QR version {(size - 17) // 4}, level M)" in text
    for field in ("Set", "Group", "Member", "Custodian", "Bag no."):
        assert field in text
    numbers = re.findall(r"\b(\d{1,2})\b", text)
    for n in range(1, size + 1):
        assert numbers.count(str(n)) >= 4, n  # every row and column numbered on both sides
    geo = cards.grid_geometry(paper, size)
    a = np.asarray(img, dtype=np.float64)
    px = dpi / 25.4
    fixed = fixed_map((size - 17) // 4)

    def at(x_mm: float, y_mm: float) -> float:
        return float(a[round(y_mm * px), round(x_mm * px)])

    for r in range(size):
        for c in range(size):
            v = at(geo.x0 + (c + 0.5) * geo.cell, geo.y0 + (r + 0.5) * geo.cell)
            if fixed[r * size + c] == FIXED_DARK:
                assert v < 60, (r, c, v)
            else:
                assert v > 200, (r, c, v)  # blank squares to fill (DATA) and light patterns
    assert sum(1 for f in fixed if f == DATA) > 500
    # the frame: black at mid-width, white in the gap between frame and grid
    mid = geo.y0 + size * geo.cell / 2
    frame_x = geo.x0 - (FRAME_GAP + FRAME_WIDTH / 2) * geo.cell
    gap_x = geo.x0 - FRAME_GAP / 2 * geo.cell
    assert at(frame_x, mid) < 60 and at(gap_x, mid) > 200
    assert at(geo.x0 + size * geo.cell + (FRAME_GAP + FRAME_WIDTH / 2) * geo.cell, mid) < 60
    # grid lines between the squares: visible, lighter than the printed squares
    ly = round((geo.y0 + 12.5 * geo.cell) * px)
    lx = round((geo.x0 + 10 * geo.cell) * px)
    line = float(a[ly, lx - 2 : lx + 3].min())
    assert 60 < line < 235
    assert 4.0 <= geo.cell <= 6.0


def test_cards_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid.pdf"
    assert cli_main(["cards", "--qr-grid", "--pdf", str(out), "--words", "20", "--paper", "letter", "--count", "3"]) == 0
    assert "3 QR grid card(s) 29x29" in capsys.readouterr().out
    pages = render(out.read_bytes(), tmp_path)
    assert len(pages) == 3
    assert_page_size(pages[0], "letter", 50)
    assert cli_main(["cards", "--pdf", str(tmp_path / "words.pdf")]) == 0
    assert "word card(s) for 33-word shares, A4" in capsys.readouterr().out
    assert cli_main(["cards", "--pdf", str(tmp_path / "x.pdf"), "--words", "24"]) == 2
    assert cli_main(["cards", "--pdf", str(tmp_path / "x.pdf"), "--count", "0"]) == 2
    assert cli_main(["cards", "--pdf", str(tmp_path / "no" / "x.pdf")]) == 1
    assert cli_main(["cards", "--pdf", str(tmp_path)]) == 1  # a folder
    assert cli_main(["cards", "--help"]) == 0
    assert not list(tmp_path.glob(".*tmp*"))
