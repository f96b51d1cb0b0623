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
from pathlib import Path

from core.ceremony.demovalues import demo_values
from core.ceremony.model import Problem, Script
from core.ceremony.script import ScriptError, check_script, load_script, parse_script
from core.errors import KcmError

__all__ = ["recipient_problems", "script_main"]


def script_main(argv: list[str]) -> int:
    """Entry point for ``kcm-ceremony script``."""
    parser = argparse.ArgumentParser(prog="kcm-ceremony script")
    sub = parser.add_subparsers(dest="cmd", required=True)
    pc = sub.add_parser(
        "check",
        help="validate ceremony scripts and list every problem",
        description="Validate ceremony scripts: every problem as FILE:LINE: message [path]. A "
        "real script that still carries demo values (cluster_id 'openkcm-demo', DEMO- card "
        "serials) is reported too: edit it before a real ceremony. With --media (or "
        "--workspace) each recipient's public key file is read from that folder, as the "
        "ceremony will read it. Exit status 0 when every script is ready, 1 otherwise, 2 on "
        "usage errors.",
    )
    pc.add_argument("files", nargs="+", metavar="FILE", help="ceremony script(s) (*.toml)")
    where = pc.add_mutually_exclusive_group()
    where.add_argument(
        "--media",
        type=Path,
        metavar="DIR",
        help="the ceremony medium folder: check each recipient's public_key_file there",
    )
    where.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="a demo workspace ('kcm-ceremony demo init DIR'): check the recipient key files "
        "in its medium folder",
    )
    pc.add_argument(
        "--demo",
        action="store_true",
        help="a demo run: demo values are shown as notes, not counted as problems",
    )
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
    media = args.media
    if args.workspace is not None:
        from core.demo import DemoError, load_workspace

        try:
            media = load_workspace(args.workspace).media
        except DemoError as exc:
            print(f"--workspace: {exc}", file=sys.stderr)
            return 2
    if media is not None and not media.is_dir():
        print(f"--media: {media} is not a folder: give the ceremony medium's folder", file=sys.stderr)
        return 2
    status = 0
    for f in args.files:
        if not _check(f, media, demo=args.demo):
            status = 1
    return status


def _check(f: str, media: Path | None, *, demo: bool) -> bool:
    """Check one script; print its problems or its OK line. True when it is ready."""
    problems = check_script(f)
    if problems:
        for p in problems:
            print(p)
        print(f"{f}: {len(problems)} problem(s)", file=sys.stderr)
        return False
    s = load_script(f)
    counted = []
    for p in demo_values(f):
        print(f"{p} (--demo: allowed)" if demo else p)
        if not demo:
            counted.append(p)
    for p in recipient_problems(s, media) if media is not None else []:
        print(p)
        counted.append(p)
    if counted:
        print(f"{f}: {len(counted)} problem(s)", file=sys.stderr)
        return False
    steps = sum(len(a.steps) for a in s.acts)
    mark = " PRACTICE" if s.practice else ""
    print(f"{f}: OK ({s.name} {s.version}, {s.purpose}{mark}, {len(s.acts)} acts, {steps} steps)")
    if s.recipients and media is None:
        print(f"{f}: note: recipient key files not checked (give --media DIR, the ceremony "
              "medium's folder)")
    return True


def recipient_problems(script: Script, media: Path) -> list[Problem]:
    """Each recipient's public key file read from ``media`` as the ceremony reads it
    (inside the folder, a public key of a usable type and size), and compared with the
    script's ``fingerprint`` when it gives one. Returns the problems, with file and line."""
    from core.ceremony.adapters.recipients import WorkspaceRecipients
    from core.ceremony.facts import same_fingerprint

    _data, smap, _p, _raw = parse_script(script.source)
    source = WorkspaceRecipients(media, script)
    out: list[Problem] = []
    for rid, spec in script.recipients.items():
        path = ("recipients", rid, "public_key_file")
        if not (media / spec.public_key_file).exists():
            out.append(Problem(str(script.source), smap.line_of(path),
                               f"recipient {rid!r}: {spec.public_key_file} is not in {media}: "
                               "copy the recipient's public key file there (or correct "
                               "public_key_file)", ".".join(path)))
            continue
        try:
            facts, _rec = source.load(rid)
        except (KcmError, ValueError) as exc:
            reason = exc.message if isinstance(exc, KcmError) else str(exc)
            out.append(Problem(str(script.source), smap.line_of(path),
                               f"recipient {rid!r}: {spec.public_key_file} in {media}: {reason}",
                               ".".join(path)))
            continue
        fp = str(facts["fingerprint"])
        if spec.fingerprint and not same_fingerprint(fp, spec.fingerprint):
            out.append(Problem(str(script.source), smap.line_of(("recipients", rid, "fingerprint")),
                               f"recipient {rid!r}: the key in {spec.public_key_file} has "
                               f"fingerprint {fp}, not the script's {spec.fingerprint}: wrong "
                               "key file, or wrong fingerprint", f"recipients.{rid}.fingerprint"))
        else:
            print(f"{script.source}: recipient {rid}: {spec.public_key_file} OK, fingerprint {fp}")
    return out


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
