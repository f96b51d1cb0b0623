"""The ceremony scripts the start screen lists (public files, parsed in a worker thread):
each valid or not with its problems, its SHA-256, and the demo values a real script still
carries (issue 15: a real ceremony refuses them until the script is edited)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kcm_tui.views import ScriptInfo

__all__ = ["demo_values_problem", "read_scripts", "script_info"]


def read_scripts(folders: Sequence[Path], *, demo: bool) -> list[ScriptInfo]:
    """Every ``*.toml`` in ``folders`` (the first of a file name wins); in demo mode the
    practice scripts first."""
    found: list[ScriptInfo] = []
    seen: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            if path.name in seen:
                continue
            seen.add(path.name)
            found.append(script_info(path))
    if demo:
        found.sort(key=lambda s: (not s.practice, not s.valid))
    return found


def script_info(path: Path) -> ScriptInfo:
    """One script as the start screen shows it."""
    from core.ceremony import script as script_mod
    from core.ceremony.demovalues import demo_values

    try:
        s = script_mod.load_script(path)
    except script_mod.ScriptError as exc:
        probs = tuple(str(p) for p in exc.problems)
        return ScriptInfo(path, path.stem, "?", False, "", probs or ("invalid script",))
    except (OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ScriptInfo(path, path.stem, "?", False, "", (msg,))
    desc = " ".join(s.description.split())
    demo = tuple(f"line {p.line}: {p.message.removeprefix('demo value: ')}" for p in demo_values(path))
    return ScriptInfo(path, s.name, s.purpose, s.practice, desc, sha256=s.sha256, demo_values=demo)


def demo_values_problem(script: ScriptInfo, *, demo: bool) -> str:
    """Why a real ceremony cannot run ``script`` because it still carries demo values
    ('' when it can: none, a practice script, or demo mode)."""
    if demo or script.practice or not script.demo_values:
        return ""
    return (
        f"{script.path.name} still carries demo values ({len(script.demo_values)}): "
        f"{'; '.join(script.demo_values)}. Edit the script for this ceremony, check it with "
        f"'kcm-ceremony script check {script.path.name}', then start the program again."
    )
