"""The script's acts as the step runner's outline shows them (public data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.ceremony.state import StepState
from kcm_tui.views import ActLine

if TYPE_CHECKING:
    from core.ceremony.engine import Ceremony

__all__ = ["act_outline"]


def act_outline(c: Ceremony) -> list[ActLine]:
    """Each act of ``c``'s script in order: ``current`` (the current step's act), ``done``
    (every step done or skipped) or ``todo``; its steps done; the script's
    ``estimate_minutes`` (None when the script gives none: nothing is guessed)."""
    current = c.current_step
    out: list[ActLine] = []
    for act in c.script.acts:
        runs = [r for r in c.steps if r.act_id == act.id]
        done = sum(1 for r in runs if r.state in (StepState.DONE, StepState.SKIPPED))
        if current is not None and current.act_id == act.id:
            state = "current"
        else:
            state = "done" if runs and done == len(runs) else "todo"
        out.append(ActLine(str(act.title), state, done, len(runs), act.estimate_minutes))
    return out
