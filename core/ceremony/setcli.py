"""``kcm-ceremony set list MEDIA`` and ``kcm-ceremony set retire MEDIA SET --why ... --who
... --witness ...``: the share sets on a ceremony medium, and retiring one.

Retiring is for a set replaced by a reshare, or no longer wanted: a small journal records
it (``ceremonies/retire-set-<id>-.../journal.db``, closed, ``journal verify`` checks it),
and ``retired/[PRACTICE-]set-<id>.json`` makes every later ceremony refuse the set, naming
the retirement (:mod:`core.ceremony.retirement`). Exit status: 0 done, 1 refused (the
message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import strictjson
from core.ceremony import retirement
from core.ceremony.workspace import Workspace
from core.safeio import SafeIOError

__all__ = ["set_main"]


def set_main(argv: list[str]) -> int:
    """Entry point for ``kcm-ceremony set``."""
    parser = argparse.ArgumentParser(
        prog="kcm-ceremony set",
        description="The share sets on a ceremony medium: list them, retire one.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="list the share sets: active, aborted, interrupted, retired",
                        description="List the share-set manifests of MEDIA with their state.")
    pl.add_argument("media", metavar="MEDIA", help="the ceremony medium (folder with manifests/)")
    pr = sub.add_parser(
        "retire",
        help="retire a share set (journaled): every later ceremony refuses it",
        description="Retire a share set replaced by a reshare or no longer wanted. A journal "
        "records who, the witness and why; the set's record in retired/ makes every later "
        "ceremony refuse it, naming this retirement.",
    )
    pr.add_argument("media", metavar="MEDIA", help="the ceremony medium (folder with manifests/)")
    pr.add_argument("set", metavar="SET", help="the manifest file (set-1234.json) or the set id")
    pr.add_argument("--why", required=True, help="why the set is retired (goes into the journal)")
    pr.add_argument("--who", required=True, help="who retires it (the administrator's name)")
    pr.add_argument("--witness", required=True, help="the witness who saw it")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    media = Path(args.media)
    if not (media / "manifests").is_dir():
        print(f"kcm-ceremony set: {media} has no manifests/ folder: not a ceremony medium",
              file=sys.stderr)
        return 2
    if args.cmd == "list":
        return _list(media)
    name = _manifest_name(media, args.set)
    try:
        record, journal = retirement.retire_set(
            media, name, who=args.who, why=args.why, witness=args.witness
        )
    except retirement.SetRetired as exc:
        print(f"kcm-ceremony set: {exc}", file=sys.stderr)
        return 1
    print(f"share set {record['set_id']} retired ({retirement.FOLDER}/"
          f"{retirement.record_name(record['set_id'], record['practice'])})")
    print(f"journal: {journal}")
    return 0


def _manifest_name(media: Path, wanted: str) -> str:
    names = Workspace(media).list_files("manifests", ".json")
    if wanted in names:
        return wanted
    for name in names:
        if name in (f"set-{wanted}.json", f"PRACTICE-set-{wanted}.json"):
            return name
    return Path(wanted).name


def _list(media: Path) -> int:
    ws = Workspace(media)
    names = ws.list_files("manifests", ".json")
    if not names:
        print(f"{media}: no share sets")
    for name in names:
        try:
            m = strictjson.loads(ws.read(f"manifests/{name}"))
        except (SafeIOError, OSError, strictjson.StrictJSONError) as exc:
            print(f"{name}: unreadable ({exc})")
            continue
        if not isinstance(m, dict) or "set_id" not in m:
            continue
        practice = m.get("practice") is True or name.upper().startswith("PRACTICE-")
        r = retirement.find(ws, m["set_id"], practice)
        state = "active" if r is None else ("VOID: " + r.describe())
        print(f"{name}: set {m['set_id']} (ceremony {m.get('ceremony_id', '?')}): {state}")
    return 0
