"""``kcm-ceremony script check FILE...`` and ``kcm-ceremony script print FILE --pdf OUT``.

``check`` prints every problem as ``FILE:LINE: message [path]``; ``print`` writes the script
as a tickable checklist PDF (:mod:`core.printing.script`) and prints its SHA-256 as hex and
as words. Exit status 0 on success, 1 when a script has problems (or the PDF cannot be
written), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import re
import sys

from core.ceremony.script import ScriptError, check_script, load_script

__all__ = ["script_main"]


def script_main(argv: list[str]) -> int:
    """Entry point for ``kcm-ceremony script``."""
    parser = argparse.ArgumentParser(prog="kcm-ceremony script")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pc = sub.add_parser("check", help="validate ceremony scripts and list every problem")
    pc.add_argument("files", nargs="+", metavar="FILE")
    pp = sub.add_parser(
        "print",
        help="write the script as a printed, tickable checklist (PDF) with its SHA-256 as words",
        description="Write a ceremony script as a checklist to print before the ceremony: acts "
        "with time estimates, steps to tick, the acknowledgements each step needs, signature "
        "lines, and the script's SHA-256 as hex and words (the start screen shows the same "
        "words).",
    )
    pp.add_argument("file", metavar="SCRIPT")
    pp.add_argument("--pdf", required=True, metavar="FILE", help="the PDF file to write")
    pp.add_argument("--paper", choices=("a4", "letter"), default="a4", help="paper size (default a4)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    if args.cmd == "print":
        return _print(args.file, args.pdf, args.paper)
    status = 0
    for f in args.files:
        problems = check_script(f)
        if problems:
            status = 1
            for p in problems:
                print(p)
            print(f"{f}: {len(problems)} problem(s)", file=sys.stderr)
        else:
            s = load_script(f)
            steps = sum(len(a.steps) for a in s.acts)
            mark = " PRACTICE" if s.practice else ""
            print(
                f"{f}: OK ({s.name} {s.version}, {s.purpose}{mark}, {len(s.acts)} acts, {steps} steps)"
            )
    return status


def _print(path: str, out: str, paper: str) -> int:
    try:
        script = load_script(path)
    except ScriptError as exc:
        for p in exc.problems:
            print(p)
        print(f"{path}: {len(exc.problems)} problem(s): fix them before printing", file=sys.stderr)
        return 1
    from core.printing.pdf import write_pdf
    from core.printing.script import script_pdf
    from core.words import to_words

    data = script_pdf(script, paper=paper)
    try:
        written = write_pdf(out, data)
    except OSError as exc:
        print(f"cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    print(f"wrote {written} ({paper.upper() if paper == 'a4' else 'Letter'}, {pages} pages): "
          f"checklist of {script.name} {script.version}")
    print(f"script SHA-256: {script.sha256}")
    print(f"as words:       {' '.join(to_words(bytes.fromhex(script.sha256)))}")
    return 0
