"""``kcm-ceremony cards --pdf FILE``: blank share cards to print before a ceremony.

Word cards (numbered boxes for 20 or 33 words) or, with ``--qr-grid``, QR grid cards for
hand transcription (33x33 for 33 words, 29x29 for 20 words). Exit status 0 on success,
1 when the file cannot be written, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["cards_main"]


def cards_main(argv: list[str]) -> int:
    """Entry point for ``kcm-ceremony cards``."""
    parser = argparse.ArgumentParser(
        prog="kcm-ceremony cards",
        description="Print blank share cards: word cards with numbered boxes, or (--qr-grid) "
        "QR grid cards on which a custodian copies a share QR square by square. Every card has "
        "fields for set, group and member. Print at 100% scale (no 'fit to page').",
    )
    parser.add_argument("--pdf", required=True, metavar="FILE", help="the PDF file to write")
    parser.add_argument("--paper", choices=("a4", "letter"), default="a4", help="paper size (default a4)")
    parser.add_argument("--words", type=int, choices=(20, 33), default=33,
                        help="share length: 33 words (256-bit MasterKey, default) or 20 (128-bit)")
    parser.add_argument("--qr-grid", action="store_true",
                        help="QR grid cards (33x33 for 33 words, 29x29 for 20 words) instead of word cards")
    parser.add_argument("--count", type=int, default=1, metavar="N", help="number of cards, one per page (default 1)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    if not 1 <= args.count <= 200:
        print("kcm-ceremony cards: --count must be between 1 and 200", file=sys.stderr)
        return 2
    from core.printing.cards import grid_cards_pdf, word_cards_pdf
    from core.printing.pdf import write_pdf

    make = grid_cards_pdf if args.qr_grid else word_cards_pdf
    data = make(paper=args.paper, words=args.words, count=args.count)
    try:
        out = write_pdf(args.pdf, data)
    except OSError as exc:
        print(f"cannot write {args.pdf}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.qr_grid:
        side = 33 if args.words == 33 else 29
        what = f"QR grid card(s) {side}x{side} for {args.words}-word shares"
    else:
        what = f"word card(s) for {args.words}-word shares"
    paper = "A4" if args.paper == "a4" else "Letter"
    print(f"wrote {out}: {args.count} {what}, {paper}; print at 100% scale")
    return 0
