"""Reading a ceremony script's text: TOML parsing and the source map.

``tomllib`` reports line numbers only for syntax errors, so :class:`SourceMap` scans the raw
text for table headers (``[roles.admin]``, ``[[acts]]``, ``[[acts.steps]]``) and keys, and
maps a data path such as ``("acts", 1, "steps", 0, "kind")`` back to the line that defines
it (the key's line, else its table header's line).

:mod:`core.ceremony.validate` and :mod:`core.ceremony.script` both build on this module
(neither imports the other's internals: validation reads the parsed data and the source
map; loading parses, validates, then builds the model).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.ceremony.model import Problem

__all__ = ["PathItem", "SourceMap", "parse_script"]

PathItem = str | int

_HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\]]+?)\s*(\]\]|\])\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*(\.|=)""")



@dataclass
class _Section:
    instance: tuple[PathItem, ...]
    line: int
    keys: dict[str, int] = field(default_factory=dict)


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


class SourceMap:
    """Locates data paths of a TOML document in its text (best effort, never raises)."""

    def __init__(self, text: str) -> None:
        self.sections: list[_Section] = [_Section((), 1)]
        counters: dict[tuple[PathItem, ...], int] = {}
        for lineno, raw in enumerate(text.splitlines(), 1):
            m = _HEADER.match(raw)
            if m and not raw.lstrip().startswith("#"):
                names = [_unquote(p) for p in m.group(2).split(".")]
                is_array = m.group(1) == "[["
                instance = self._resolve(names[:-1])
                last: tuple[PathItem, ...] = (*instance, names[-1])
                if is_array:
                    idx = counters.get(last, 0)
                    counters[last] = idx + 1
                    last = (*last, idx)
                self.sections.append(_Section(last, lineno))
                continue
            k = _KEY.match(raw)
            if k and not raw.lstrip().startswith("#"):
                self.sections[-1].keys.setdefault(_unquote(k.group(1)), lineno)

    def _resolve(self, names: list[str]) -> tuple[PathItem, ...]:
        # a dotted parent such as "acts" in [[acts.steps]] means the latest acts[i]
        out: tuple[PathItem, ...] = ()
        for name in names:
            out = (*out, name)
            latest = None
            for s in self.sections:
                if len(s.instance) == len(out) + 1 and s.instance[: len(out)] == out:
                    if isinstance(s.instance[-1], int):
                        latest = s.instance[-1]
            if latest is not None:
                out = (*out, latest)
        return out

    def line_of(self, path: Sequence[PathItem]) -> int:
        """Best line for a data path (key line, else table header line, else 1)."""
        p = tuple(path)
        best: _Section | None = None
        for s in self.sections:
            n = len(s.instance)
            if p[:n] == s.instance and (best is None or n > len(best.instance)):
                best = s
        if best is None:
            return 1
        rest = p[len(best.instance) :]
        if rest and isinstance(rest[0], str) and rest[0] in best.keys:
            return best.keys[rest[0]]
        if rest:
            # a table with no header of its own (only sub-tables such as [roles.x]): point at
            # its first sub-table
            for s in self.sections:
                if len(s.instance) > len(p) and s.instance[: len(p)] == p:
                    return s.line
        return best.line


def parse_script(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any] | None, SourceMap, list[Problem], bytes]:
    """Read and TOML-parse a script.

    Returns:
        (data or None, source map, syntax problems, raw bytes).
    """
    p = Path(path)
    fname = str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        return (
            None,
            SourceMap(""),
            [Problem(fname, 1, f"cannot read the script: {exc.strerror}")],
            b"",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, SourceMap(""), [Problem(fname, line, "the script is not UTF-8 text")], raw
    smap = SourceMap(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else 1
        return None, smap, [Problem(fname, line, f"TOML syntax error: {exc}")], raw
    return data, smap, [], raw
