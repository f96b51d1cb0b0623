"""Blank share cards to print before a ceremony: word cards and QR grid cards.

* **Word card** (:func:`word_cards_pdf`): numbered boxes for the 20 or 33 words of a
  SLIP-39 share, and fields for set, group, member, custodian, date and bag number.
* **QR grid card** (:func:`grid_cards_pdf`): an empty grid the size of a share QR (33x33
  modules for 33 words, QR version 4 at level M; 29x29 for 20 words, version 3) on which
  the custodian blacks in, square by square, the modules shown on the custodian terminal
  (the SeedQR practice). The finder, timing and alignment patterns (the same in every code
  of that size) are printed solid, so the custodian fills only the data modules and the
  camera has exact anchors; rows and columns are numbered on all four sides as on the
  screen; a black frame (:data:`core.carriers.qrgrid.FRAME_GAP` and
  :data:`~core.carriers.qrgrid.FRAME_WIDTH`) lets :mod:`core.carriers.gridcard` find the
  grid in a photo.

Blank cards are public; a filled-in card *is* the share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.carriers.qrgrid import (
    FIXED_DARK,
    FRAME_GAP,
    FRAME_WIDTH,
    VERSION_FOR_WORDS,
    fixed_map,
    size_for_version,
)
from core.printing.pdf import PAPERS, Doc, Paper, new_doc

__all__ = ["GridGeometry", "grid_cards_pdf", "grid_geometry", "word_cards_pdf"]

WORD_COUNTS: Final = (20, 33)
#: Cells of room for the row/column numbers outside the frame, each side.
_NUMBER_ROOM: Final = 1.7
_HEADER_MM: Final = 38.0
_FOOTER_MM: Final = 24.0
_MAX_CELL_MM: Final = 6.0


@dataclass(frozen=True)
class GridGeometry:
    """Where a grid card's grid lies on the page, in millimetres from the top-left corner.

    Attributes:
        paper: the paper.
        size: modules per side (29 or 33).
        cell: the side of one cell (one module).
        x0: left edge of the grid.
        y0: top edge of the grid.
    """

    paper: Paper
    size: int
    cell: float
    x0: float
    y0: float

    @property
    def frame_outer(self) -> tuple[float, float, float, float]:
        """The frame's outer rectangle (x, y, w, h)."""
        d = (FRAME_GAP + FRAME_WIDTH) * self.cell
        side = self.size * self.cell + 2 * d
        return self.x0 - d, self.y0 - d, side, side


def grid_geometry(paper: Paper | str, size: int, *, margin: float = 12.0) -> GridGeometry:
    """The grid's position and cell size on ``paper`` for a ``size`` x ``size`` card."""
    p = PAPERS[paper.lower()] if isinstance(paper, str) else paper
    across = size + 2 * (FRAME_GAP + FRAME_WIDTH + _NUMBER_ROOM)
    avail_w = p.width - 2 * margin
    avail_h = p.height - 2 * margin - _HEADER_MM - _FOOTER_MM
    cell = min(avail_w / across, avail_h / across, _MAX_CELL_MM)
    cell = int(cell * 20) / 20  # a round figure (0.05 mm) for the printed legend
    x0 = (p.width - size * cell) / 2
    y0 = margin + _HEADER_MM + (avail_h - across * cell) / 2 + (across - size) / 2 * cell
    return GridGeometry(p, size, cell, x0, y0)


def _fields(doc: Doc, y: float) -> float:
    """Set / group / member / custodian / date / bag fields; returns the y below them."""
    left = doc.margin
    right = doc.paper.width - doc.margin
    w = right - left
    doc.field(left, y, "Set", 0.22 * w)
    doc.field(left + 0.25 * w, y, "Group", 0.14 * w)
    doc.field(left + 0.40 * w, y, "of", 0.08 * w)
    doc.field(left + 0.51 * w, y, "Member", 0.17 * w)
    doc.field(left + 0.71 * w, y, "of", 0.08 * w)
    doc.field(left + 0.82 * w, y, "Bag no.", 0.18 * w)
    y += 8.5
    doc.field(left, y, "Custodian", 0.55 * w)
    doc.field(left + 0.58 * w, y, "Ceremony / date", 0.42 * w)
    return y + 5


def _header(doc: Doc, title: str, subtitle: str) -> float:
    y = doc.margin + 5
    doc.font(14, "B")
    doc.text(doc.margin, y, title)
    doc.font(8.5)
    doc.text(doc.margin, y + 5.5, subtitle)
    doc.font(8.5, "B")
    doc.text(doc.margin, y + 10, "SECRET once filled in: this card is the share.")
    doc.text(
        doc.margin,
        y + 14,
        "Keep it in its tamper-evident bag; never photograph it outside a ceremony.",
    )
    return y + 20


def word_cards_pdf(*, paper: str = "a4", words: int = 33, count: int = 1) -> bytes:
    """Blank SLIP-39 word cards, one per page.

    Args:
        paper: "a4" or "letter".
        words: 20 or 33 numbered word boxes.
        count: how many cards (pages).

    Raises:
        ValueError: unknown paper, word count or count below 1.
    """
    if words not in WORD_COUNTS:
        raise ValueError(f"a share has 20 or 33 words, not {words}")
    if count < 1:
        raise ValueError("print at least one card")
    doc = new_doc(paper, f"SLIP-39 share card, {words} words")
    cols = 3 if words == 33 else 2
    rows = -(-words // cols)
    for page in range(count):
        doc.add_page()
        y = _header(
            doc,
            f"SLIP-39 SHARE CARD - {words} words",
            f"OpenKCM Ceremony - card {page + 1} of {count} - write each word in capitals, "
            "in order; the first 4 letters identify a word",
        )
        y = _fields(doc, y)
        left, right = doc.margin, doc.paper.width - doc.margin
        gap = 4.0
        bw = (right - left - (cols - 1) * gap) / cols
        avail = doc.paper.height - doc.margin - _FOOTER_MM - y - 4
        bh = min(16.0, (avail - (rows - 1) * 2.0) / rows)
        top = y + 4
        for i in range(words):
            c, r = divmod(i, rows)  # numbers run down each column, as the screen shows them
            x = left + c * (bw + gap)
            by = top + r * (bh + 2.0)
            doc.pdf.set_draw_color(0)
            doc.pdf.set_line_width(0.3)
            doc.pdf.rect(x, by, bw, bh)
            doc.pdf.set_fill_color(230)
            doc.pdf.rect(x, by, 9, bh, style="DF")
            doc.font(11, "B")
            label = str(i + 1)
            doc.text(x + 4.5 - doc.width(label) / 2, by + bh / 2 + 1.5, label)
            doc.hline(x + 12, x + bw - 3, by + bh - 3.2, grey=150, width=0.2)
        fy = doc.paper.height - doc.margin - _FOOTER_MM + 6
        doc.box(doc.margin, fy - 3)
        doc.font(9)
        doc.text(doc.margin + 5.5, fy, "typed back and checked on the ceremony screen")
        doc.box(doc.margin + 95, fy - 3)
        doc.text(doc.margin + 100.5, fy, "custodian and witness initials:")
        doc.hline(doc.margin + 152, doc.paper.width - doc.margin, fy + 0.8)
        doc.font(8)
        doc.para(
            doc.margin,
            fy + 4,
            doc.paper.width - 2 * doc.margin,
            "Any SLIP-39 tool can rebuild the key from enough of these shares (threshold "
            "written in the ceremony script); a wrong word is found by its checksum. "
            f"Printed on {doc.paper.name} paper at 100% scale.",
            3.6,
        )
    return doc.finish()


def draw_grid_card(doc: Doc, geo: GridGeometry, *, number: int, count: int) -> None:
    """Draw one blank QR grid card on the current page of ``doc``."""
    n = geo.size
    version = (n - 17) // 4
    words = next(w for w, v in VERSION_FOR_WORDS.items() if v == version)
    y = _header(
        doc,
        f"SHARE QR GRID CARD - {n} x {n}",
        f"OpenKCM Ceremony - for a {words}-word share (QR version {version}, level M) - "
        f"card {number} of {count} - squares of {geo.cell:.2f} mm at 100% scale",
    )
    _fields(doc, y)
    cell, x0, y0 = geo.cell, geo.x0, geo.y0
    pdf = doc.pdf
    # the frame the camera finds the card by
    fx, fy, fw, _ = geo.frame_outer
    t = FRAME_WIDTH * cell
    pdf.set_fill_color(0)
    pdf.rect(fx, fy, fw, t, style="F")
    pdf.rect(fx, fy + fw - t, fw, t, style="F")
    pdf.rect(fx, fy, t, fw, style="F")
    pdf.rect(fx + fw - t, fy, t, fw, style="F")
    # printed modules: finder, timing and alignment patterns
    fixed = fixed_map(version)
    for r in range(n):
        for c in range(n):
            if fixed[r * n + c] == FIXED_DARK:
                pdf.rect(x0 + c * cell, y0 + r * cell, cell, cell, style="F")
    # the grid the custodian fills in
    for i in range(n + 1):
        heavy = i in (0, n)
        doc.hline(x0, x0 + n * cell, y0 + i * cell, grey=0 if heavy else 150, width=0.3 if heavy else 0.15)
        pdf.set_draw_color(0 if heavy else 150)
        pdf.set_line_width(0.3 if heavy else 0.15)
        pdf.line(x0 + i * cell, y0, x0 + i * cell, y0 + n * cell)
    # row and column numbers on every side, outside the frame
    size_pt = min(8.0, cell * 1.6)
    doc.font(size_pt, mono=True)
    off = (FRAME_GAP + FRAME_WIDTH) * cell + 0.8
    for i in range(n):
        label = str(i + 1)
        w = doc.width(label)
        cx = x0 + (i + 0.5) * cell
        cy = y0 + (i + 0.5) * cell + size_pt * 0.12
        doc.text(cx - w / 2, y0 - off - 0.6, label)
        doc.text(cx - w / 2, y0 + n * cell + off + size_pt * 0.3, label)
        doc.text(x0 - off - w, cy, label)
        doc.text(x0 + n * cell + off, cy, label)
    fy = doc.paper.height - doc.margin - _FOOTER_MM + 5
    doc.font(8.5)
    doc.para(
        doc.margin,
        fy,
        doc.paper.width - 2 * doc.margin,
        "On the custodian screen \u2588\u2588 means fill the square, \u2592\u2592 is printed "
        "here already, \u00b7 means leave it blank. Fill each square completely with a black "
        "pen, row by row (rows and columns are numbered as on the screen), then check every "
        "row again. At the next ceremony the camera or a photo file reads this card.",
        3.8,
    )


def grid_cards_pdf(*, paper: str = "a4", words: int = 33, count: int = 1) -> bytes:
    """Blank QR grid cards, one per page.

    Args:
        paper: "a4" or "letter".
        words: 33 (33x33 grid) or 20 (29x29 grid).
        count: how many cards (pages).

    Raises:
        ValueError: unknown paper, word count or count below 1.
    """
    if words not in WORD_COUNTS:
        raise ValueError(f"a share has 20 or 33 words, not {words}")
    if count < 1:
        raise ValueError("print at least one card")
    size = size_for_version(VERSION_FOR_WORDS[words])
    doc = new_doc(paper, f"Share QR grid card, {size}x{size}")
    geo = grid_geometry(doc.paper, size, margin=doc.margin)
    for i in range(count):
        doc.add_page()
        draw_grid_card(doc, geo, number=i + 1, count=count)
    return doc.finish()
