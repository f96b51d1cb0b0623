"""A path on an 80-column screen: broken after a ``/``, never inside a name (issue 15)."""

from __future__ import annotations

import re

__all__ = ["fold_path"]


def fold_path(label: str, path: str, width: int = 78, indent: int = 2) -> str:
    """``label`` then ``path``, in lines of at most ``width`` columns. A line breaks only
    before a ``/`` (the continuation lines indented by ``indent``), so no directory or file
    name is cut in two; only a single name longer than a whole line is split."""
    pieces = re.findall(r"/?[^/]+|/", path) or [path]
    lines: list[str] = []
    current = f"{label} " if label else ""
    for piece in pieces:
        if len(current) + len(piece) > width and current.strip():
            lines.append(current.rstrip())
            current = " " * indent
        while len(current) + len(piece) > width:  # one name longer than a line
            room = width - len(current)
            lines.append(current + piece[:room])
            current, piece = " " * indent, piece[room:]
        current += piece
    lines.append(current.rstrip())
    return "\n".join(lines)
