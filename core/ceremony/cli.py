"""``kcm-ceremony script check FILE...``: validate ceremony scripts.

Prints every problem as ``FILE:LINE: message [path]``; exit status 0 when every file is
valid, 1 when any has problems, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys

from core.ceremony.script import check_script, load_script

__all__ = ["script_main"]


def script_main(argv: list[str]) -> int:
    """Entry point for ``kcm-ceremony script``."""
    parser = argparse.ArgumentParser(prog="kcm-ceremony script")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pc = sub.add_parser("check", help="validate ceremony scripts and list every problem")
    pc.add_argument("files", nargs="+", metavar="FILE")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
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
