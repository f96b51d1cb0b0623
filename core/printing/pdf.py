"""Common parts of the printed material: paper sizes, fonts, check boxes, fields.

Printed matter is made with fpdf2 (a maintained pure-Python PDF library), imported only
here and only when something is printed: the TUI's start never loads it. Every document
is public (blank cards, the ceremony script); no secret is ever printed by this tool.

Text is set in DejaVu Sans (Debian's ``fonts-dejavu-core``, embedded in the PDF) so that
any name in a script prints as written; without that font the PDF core font Helvetica is
used, which knows Latin-1 only, and other characters print as ``?`` (a warning says so).
PDFs are reproducible: the same input gives the same bytes (fixed creation date, file id
derived from the content).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["FONT_DIR", "PAPERS", "Doc", "Paper", "new_doc", "write_pdf"]

FONT_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")
_FONTS: Final = {
    "": "DejaVuSans.ttf",
    "B": "DejaVuSans-Bold.ttf",
    "M": "DejaVuSansMono.ttf",
}
#: The date stamped into every PDF (reproducible output; the real date is written by hand).
_EPOCH: Final = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class Paper:
    """A paper size in millimetres, portrait."""

    name: str
    width: float
    height: float
    fpdf_format: str


PAPERS: Final = {
    "a4": Paper("A4", 210.0, 297.0, "A4"),
    "letter": Paper("Letter", 215.9, 279.4, "Letter"),
}


class Doc:
    """A PDF document with the few drawing primitives the printed material needs.

    Attributes:
        pdf: the fpdf2 ``FPDF`` object (for anything not wrapped here).
        paper: the paper size.
        margin: page margin in mm.
        unicode: True when DejaVu is embedded (else Helvetica, Latin-1 only).
    """

    def __init__(self, paper: Paper, *, title: str, margin: float = 12.0) -> None:
        from fpdf import FPDF

        self.paper = paper
        self.margin = margin
        self.pdf: Any = FPDF(orientation="P", unit="mm", format=paper.fpdf_format)
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(margin, margin, margin)
        self.pdf.set_creation_date(_EPOCH)
        self.pdf.set_title(title)
        self.pdf.set_creator("OpenKCM Ceremony (kcm-ceremony)")
        self.pdf.set_producer("OpenKCM Ceremony")
        self.unicode = all((FONT_DIR / f).is_file() for f in _FONTS.values())
        if self.unicode:
            for style, fname in _FONTS.items():
                family, st = ("DejaVuMono", "") if style == "M" else ("DejaVu", style)
                self.pdf.add_font(family, st, str(FONT_DIR / fname))
        else:
            print(
                "warning: DejaVu fonts not found (Debian package fonts-dejavu-core); "
                "printing with Helvetica, characters outside Latin-1 print as '?'",
                file=sys.stderr,
            )
        self._replaced = False

    # ------------------------------------------------------------------ text

    def font(self, size: float, style: str = "", mono: bool = False) -> None:
        """Select the text font: ``style`` "" or "B"; ``mono`` for hashes and numbers."""
        if self.unicode:
            self.pdf.set_font("DejaVuMono" if mono else "DejaVu", "" if mono else style, size)
        else:
            self.pdf.set_font("Courier" if mono else "Helvetica", style, size)

    def clean(self, text: str) -> str:
        """Text the current font can print (non-Latin-1 becomes ``?`` without DejaVu)."""
        if self.unicode:
            return text
        out = text.encode("latin-1", "replace").decode("latin-1")
        if out != text:
            self._replaced = True
        return out

    def text(self, x: float, y: float, text: str) -> None:
        """Text with its baseline at ``y``."""
        self.pdf.text(x, y, self.clean(text))

    def width(self, text: str) -> float:
        """Width of ``text`` in the current font, in mm."""
        return float(self.pdf.get_string_width(self.clean(text)))

    def para(self, x: float, y: float, w: float, text: str, line: float) -> float:
        """A wrapped paragraph at (x, y) in width ``w``; returns the y below it."""
        self.pdf.set_xy(x, y)
        self.pdf.multi_cell(w, line, self.clean(text), new_x="LMARGIN", new_y="NEXT")
        return float(self.pdf.get_y())

    def para_height(self, w: float, text: str, line: float) -> float:
        """Height :meth:`para` would take."""
        lines = self.pdf.multi_cell(w, line, self.clean(text), dry_run=True, output="LINES")
        return line * max(1, len(lines))

    # ------------------------------------------------------------------ shapes

    def box(self, x: float, y: float, size: float = 3.6) -> None:
        """An empty check box with its top-left corner at (x, y)."""
        self.pdf.set_draw_color(0)
        self.pdf.set_line_width(0.3)
        self.pdf.rect(x, y, size, size)

    def field(self, x: float, y: float, label: str, w: float, *, size: float = 9) -> float:
        """``label`` then a line to write on, ``w`` mm long in total; returns the end x."""
        self.font(size)
        self.text(x, y, label)
        lx = x + self.width(label) + 1.5
        self.pdf.set_draw_color(0)
        self.pdf.set_line_width(0.25)
        self.pdf.line(lx, y + 0.8, x + w, y + 0.8)
        return x + w

    def hline(self, x1: float, x2: float, y: float, *, grey: int = 0, width: float = 0.25) -> None:
        """A horizontal line."""
        self.pdf.set_draw_color(grey)
        self.pdf.set_line_width(width)
        self.pdf.line(x1, y, x2, y)

    def add_page(self) -> None:
        """Start a new page."""
        self.pdf.add_page()

    @property
    def pages(self) -> int:
        """Pages so far."""
        return int(self.pdf.page_no())

    def finish(self) -> bytes:
        """The PDF as bytes (warns once if characters were replaced)."""
        if self._replaced:
            print("warning: some characters could not be printed and show as '?'", file=sys.stderr)
        return bytes(self.pdf.output())


def new_doc(paper: str, title: str) -> Doc:
    """A new document on ``paper`` ("a4" or "letter").

    Raises:
        ValueError: unknown paper size.
    """
    try:
        p = PAPERS[paper.lower()]
    except KeyError:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, not {paper!r}") from None
    return Doc(p, title=title)


def write_pdf(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write a PDF atomically (a temporary file beside it, then rename); never a directory.

    Raises:
        OSError: the folder does not exist or is not writable (the message says which).
    """
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder: give a file name such as cards.pdf")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return out
