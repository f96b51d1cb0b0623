"""Where the ceremony is, on the step runner: the act outline, the breadcrumb and the
custodian table.

* :class:`ActOutline`: the script's acts, done ones ticked, the current one marked, with
  the script's own ``estimate_minutes`` per act (nothing is guessed when a script gives
  none). A side panel when the terminal is at least :data:`WIDE` columns wide.
* :class:`Breadcrumb`: the same on one line at narrower widths, shortened to fit
  :data:`CRUMB_WIDTH` columns (never wrapped).
* :class:`CustodianTable`: at a distribute-shares step, each custodian's share state
  (the engine's record); at a collect-/check-shares step, the shares in per group against
  its threshold and whose they are.

Everything shown is public (names, states, counts), read from the session
(:class:`kcm_tui.context.CeremonySession`); no share material reaches this process.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from kcm_tui.views import ActLine, StepView

if TYPE_CHECKING:
    from core.ceremony.state import CollectionProgress, DistributionProgress


class ProgressSource(Protocol):
    """What the table reads of the open ceremony (a part of
    :class:`kcm_tui.context.CeremonySession`: public data only)."""

    def distribution(self) -> DistributionProgress | None: ...
    def collection(self) -> CollectionProgress | None: ...
    def group_of(self) -> dict[str, str]: ...
    def split_custodians(self) -> list[str]: ...
    def role_name(self, role_id: str) -> str: ...

__all__ = [
    "CRUMB_WIDTH",
    "WIDE",
    "ActOutline",
    "Breadcrumb",
    "CustodianTable",
    "ProgressSource",
    "breadcrumb",
    "custodian_cells",
    "short_title",
]

#: Columns from which the outline is a side panel (below: the breadcrumb).
WIDE = 120
#: The breadcrumb never takes more columns than this (an 80-column console, minus margins).
CRUMB_WIDTH = 78
#: Steps whose custodians the table lists.
DISTRIBUTION = ("distribute-shares",)
COLLECTION = ("collect-shares", "check-shares")

#: A distribution's handover state as the room reads it, by carrier where it differs.
HANDOVER_WORDS = {
    "due": "not yet",
    "shown": "shown",
    "written": "written down",
    "checked": "checked (typed back)",
    "skipped": "check skipped",
}
HANDOVER_STYLE = {"due": "grey70", "shown": "yellow", "written": "yellow", "checked": "bold green", "skipped": "bold yellow"}


def short_title(title: str) -> str:
    """An act's title without its ``Act 3:`` prefix."""
    return re.sub(r"^\s*act\s+\d+\s*[:.\-]\s*", "", title, flags=re.IGNORECASE).strip() or title


def _clip(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 3, 1)].rstrip() + "..."


def breadcrumb(acts: Sequence[ActLine], width: int = CRUMB_WIDTH) -> str:
    """``Open > Generate > [Hand out the shares] > Seal > Close`` in at most ``width``
    columns: the other acts are shortened to their first word, then to their number, then
    the current act's title is clipped."""
    names = [short_title(a.title) for a in acts]
    cur = next((i for i, a in enumerate(acts) if a.state == "current"), -1)

    def line(labels: Sequence[str]) -> str:
        return " > ".join(f"[{label}]" if i == cur else label for i, label in enumerate(labels))

    tries = [
        names,
        [n if i == cur else n.split()[0] for i, n in enumerate(names)],
        [n if i == cur else str(i + 1) for i, n in enumerate(names)],
    ]
    for labels in tries:
        if len(line(labels)) <= width:
            return line(labels)
    labels = tries[-1]
    if cur >= 0:
        room = width - (len(line(labels)) - len(labels[cur]))
        labels = [_clip(n, room) if i == cur else n for i, n in enumerate(labels)]
    return _clip(line(labels), width)


class Breadcrumb(Static):
    """The acts on one line (narrow terminals), then ``where`` (e.g. ``step 7 of 11``):
    together at most :data:`CRUMB_WIDTH` columns; redrawn for its width on resize."""

    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.acts: list[ActLine] = []
        self.where = ""

    def show(self, acts: Sequence[ActLine], where: str = "") -> None:
        """Show ``acts`` and ``where``."""
        self.acts = list(acts)
        self.where = where
        self.redraw()

    def redraw(self) -> None:
        """Draw the breadcrumb for the current width."""
        width = min(self.size.width or CRUMB_WIDTH, CRUMB_WIDTH)
        tail = f"  {self.where}" if self.where else ""
        text = breadcrumb(self.acts, width - len(tail))
        t = Text(text, no_wrap=True, overflow="crop", style="aqua")
        start = text.find("[")
        end = text.find("]", start)
        if start >= 0 and end > start:
            t.stylize("bold yellow", start, end + 1)
        t.append(tail, style="bold")
        self.update(t)

    def on_resize(self, _event: Resize) -> None:
        """Fit the new width."""
        self.redraw()


class ActOutline(Static):
    """The acts as a side panel: ``x`` done, ``>`` current (with its steps done), estimates."""

    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.acts: list[ActLine] = []

    def show(self, acts: Sequence[ActLine]) -> None:
        """Show ``acts``."""
        self.acts = list(acts)
        self.redraw()

    def redraw(self) -> None:
        """Draw the outline for the current width."""
        inner = max((self.content_region.width or 34), 20)
        t = Text(no_wrap=True, overflow="crop")
        t.append("Acts", style="bold")
        t.append("  (x done, > now)\n", style="grey70")
        total = 0
        for i, act in enumerate(self.acts):
            mark = "x" if act.state == "done" else ">" if act.state == "current" else " "
            est = f"{act.estimate_minutes} min" if act.estimate_minutes else ""
            total += act.estimate_minutes or 0
            room = max(inner - 2 - len(est) - 1, 8)
            lines = textwrap.wrap(f"{i + 1} {short_title(act.title)}", room, subsequent_indent="  ") or [""]
            style = "bold yellow" if act.state == "current" else "green" if act.state == "done" else "white"
            for n, part in enumerate(lines):
                t.append(f"{mark} " if n == 0 else "  ", style=style)
                t.append(part.ljust(room + 1) if n == 0 else part, style=style)
                t.append((est if n == 0 else "") + "\n", style="grey70")
            if act.state == "current":
                t.append(f"    step {min(act.done + 1, act.steps)} of {act.steps} in this act\n", style="grey70")
        if total:
            t.append(f"Script's estimate: {total} min in all", style="grey70")
        self.update(t)

    def on_resize(self, _event: Resize) -> None:
        """Fit the new width."""
        self.redraw()


def custodian_cells(session: ProgressSource, view: StepView) -> tuple[str, list[tuple[str, str]]]:
    """The table's heading and its cells (text, style) for ``view``'s step, from the
    session's public record ("" and no cells for a step without custodians)."""
    if view.kind in DISTRIBUTION:
        return _distribution_cells(session)
    if view.kind in COLLECTION:
        return _collection_cells(session, view)
    return "", []


def _distribution_cells(session: ProgressSource) -> tuple[str, list[tuple[str, str]]]:
    progress = session.distribution()
    group = session.group_of()
    order = list(progress.order) if progress is not None else session.split_custodians()
    cells: list[tuple[str, str]] = []
    for c in order:
        state = progress.status(c).value if progress is not None else "due"
        carrier = progress.carrier(c) if progress is not None else "screen"
        word = HANDOVER_WORDS.get(state, state)
        if carrier == "qr" and state == "written":
            word = "QR copied"
        elif carrier == "card" and state == "checked":
            word = "card verified"
        elif carrier == "card" and state == "shown":
            word = "card written"
        where = f" ({group[c]})" if group.get(c) else ""
        cells.append((f"{session.role_name(c)}{where}: {word}", HANDOVER_STYLE.get(state, "white")))
    if progress is None:
        head = f"Shares to hand out: {len(order)} custodians, none yet"
    else:
        head = f"Share set {progress.set_id}: {progress.done} of {progress.total} custodians done"
    return head, cells


def _collection_cells(session: ProgressSource, view: StepView) -> tuple[str, list[tuple[str, str]]]:
    progress = session.collection()
    verb = "checked" if view.kind == "check-shares" else "in"
    if progress is None:
        return f"No share {verb} yet.", []
    if len(progress.groups) == 1:  # "2 of 3", as Vault's unseal progress
        g = progress.groups[0]
        head = f"Set {progress.set_id}: {g.have} of {g.threshold} shares {verb}"
        cells = [(f"{verb}: {', '.join(g.holders) if g.holders else 'none yet'}", "bold green" if g.complete else "white")]
    else:
        head = (
            f"Set {progress.set_id}: {progress.groups_complete()} of the {progress.group_threshold} groups"
            f" needed complete; {progress.accepted} shares {verb}"
        )
        cells = []
        for g in progress.groups:
            who = ", ".join(g.holders) if g.holders else "none yet"
            style = "bold green" if g.complete else "yellow" if g.have else "grey70"
            cells.append((f"{g.name}: {g.have} of {g.threshold} {verb} - {who}", style))
    if progress.refused:
        head += f"; {progress.refused} refused"
    return head, cells


class CustodianTable(Static):
    """The custodians of a distribution or collection step, in as many columns as fit."""

    #: The narrowest column (cells side by side when the longest fits; a cell longer than
    #: the screen is clipped, never wrapped).
    COLUMN = 30

    def __init__(self, **kw: object) -> None:
        super().__init__("", **kw)  # type: ignore[arg-type]
        self.head = ""
        self.cells: list[tuple[str, str]] = []

    def show(self, session: ProgressSource, view: StepView) -> None:
        """Fill from the session's record for ``view``'s step (hidden for other steps)."""
        self.head, self.cells = custodian_cells(session, view)
        self.display = bool(self.head)
        self.redraw()

    def redraw(self) -> None:
        """Lay the cells out for the current width."""
        width = self.content_region.width or 78
        longest = max((len(text) for text, _ in self.cells), default=0)
        per_row = max(1, width // max(self.COLUMN, longest + 2))
        col = width // per_row if per_row > 1 else width
        t = Text(no_wrap=True, overflow="crop")
        t.append(_clip(self.head, width), style="bold")
        for i, (text, style) in enumerate(self.cells):
            t.append("\n" if i % per_row == 0 else "")
            cell = _clip(text, col - 1)
            t.append(cell.ljust(col) if (i % per_row) < per_row - 1 else cell, style=style)
        self.update(t)

    def on_resize(self, _event: Resize) -> None:
        """Fit the new width."""
        self.redraw()
