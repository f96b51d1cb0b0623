"""What a step still needs before Continue can complete it (issue 15), named for the room.

Continue stays enabled (a disabled button is skipped by Tab): the runner marks it as
waiting, shows "Continue needs: ..." beside it and refuses a press with that line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kcm_tui.backend import StepView
from kcm_tui.widgets.ack import AckBox

__all__ = ["continue_needs"]


def continue_needs(
    view: StepView,
    boxes: Iterable[AckBox],
    role_name: Callable[[str], str],
    *,
    action: str | None,
    needs_perform: bool,
) -> list[str]:
    """What is missing on ``view`` (empty: Continue may complete the step): a retry of a
    failed step, the step's action, the witness's confirmation, the people not ticked
    present, the checklist items still unticked, then the roles whose acknowledgement is
    missing. ``action`` is the label of the
    step's action button, ``needs_perform`` whether the step must be performed first."""
    if view.state == "failed":
        return ["Retry (the step failed)"]
    out: list[str] = []
    if needs_perform and not view.performed:
        out.append(f"the action '{action}'" if action else "the step's check")
    items = absent = 0
    acks: list[str] = []
    for box in boxes:
        if box.value or not box.id:
            continue
        if box.has_class("present"):
            absent += 1
        elif box.has_class("item"):
            items += 1
        elif box.has_class("confirm"):
            out.append(f"{role_name(box.id.removeprefix('confirm-'))}'s confirmation that the words match")
        elif box.has_class("ack"):
            acks.append(role_name(box.id.removeprefix("ack-")))
    if absent:
        out.append(f"{absent} more person(s) ticked present")
    if items:
        out.append(f"{items} checklist item(s) ticked")
    if acks:
        out.append("acknowledgement by " + ", ".join(acks))
    return out
