"""Share groups by name: one line per group, and messages that use the names (issue 18).

A script names its SLIP-39 groups (``[[policy.groups]] name = "eu"``); the manifest keeps
the script's policy (``manifest["policy"]["groups"]``). The keyholder knows groups only by
number (the share's group index), so the names are put back here, on the public side,
from the policy and the accepted shares' public facts (group and member numbers):

* :func:`collection_lines` / :func:`distribution_lines`: per group its name, threshold,
  member count and how many shares were received (collection) or handed out
  (distribution);
* :func:`collection_message`: what is still needed, in words for the room, e.g.
  ``set 1187: 1 of 2 groups complete (eu); need 1 more share from us, or 1 from vault``.

A policy without groups is one group, named ``custodians``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SINGLE_GROUP_NAME",
    "GroupLine",
    "collection_lines",
    "collection_message",
    "distribution_lines",
    "group_name",
    "line_text",
    "name_groups_in",
    "policy_groups",
]

#: The name of the one group of a policy without ``[[policy.groups]]``.
SINGLE_GROUP_NAME = "custodians"


@dataclass(frozen=True)
class GroupLine:
    """One group's line: ``received`` of ``threshold`` needed (``members`` in the group)."""

    number: int  # 1-based, the SLIP-39 group index + 1 (what a share says)
    name: str
    threshold: int
    members: tuple[str, ...]
    received: int

    @property
    def complete(self) -> bool:
        """The group has its threshold of shares."""
        return self.received >= self.threshold

    @property
    def more(self) -> int:
        """Shares still needed from this group (0 once complete)."""
        return max(0, self.threshold - self.received)

    def as_dict(self) -> dict[str, Any]:
        """Public JSON form (for the journal and the screens)."""
        return {
            "group": self.number,
            "name": self.name,
            "threshold": self.threshold,
            "members": len(self.members),
            "received": self.received,
            "complete": self.complete,
        }


def policy_groups(policy: Mapping[str, Any]) -> list[tuple[str, int, tuple[str, ...]]]:
    """(name, threshold, members) per group of a policy in its script/manifest form."""
    groups = policy.get("groups") or []
    if groups:
        return [
            (
                str(g.get("name") or f"group {i + 1}"),
                int(g["threshold"]),
                tuple(str(m) for m in g.get("members") or ()),
            )
            for i, g in enumerate(groups)
        ]
    return [
        (
            SINGLE_GROUP_NAME,
            int(policy.get("threshold") or 0),
            tuple(str(m) for m in policy.get("custodians") or ()),
        )
    ]


def group_threshold(policy: Mapping[str, Any]) -> int:
    """How many groups must be complete (1 without groups)."""
    return int(policy.get("group_threshold") or 1) if policy.get("groups") else 1


def group_name(policy: Mapping[str, Any], number: Any) -> str:
    """The name of group ``number`` (1-based, as a share says it); ``group N`` if unknown."""
    try:
        n = int(number)
    except (TypeError, ValueError):
        return "group ?"
    groups = policy_groups(policy)
    return groups[n - 1][0] if 1 <= n <= len(groups) else f"group {n}"


def collection_lines(
    policy: Mapping[str, Any], accepted: Iterable[Mapping[str, Any]]
) -> list[GroupLine]:
    """Per group: shares received so far (``accepted``: the public facts of each accepted
    share, with its 1-based ``group``)."""
    got: dict[int, int] = {}
    for a in accepted:
        try:
            g = int(a.get("group") or 1)
        except (TypeError, ValueError):
            continue
        got[g] = got.get(g, 0) + 1
    return [
        GroupLine(i + 1, name, t, members, got.get(i + 1, 0))
        for i, (name, t, members) in enumerate(policy_groups(policy))
    ]


def distribution_lines(policy: Mapping[str, Any], handed_out: Iterable[str]) -> list[GroupLine]:
    """Per group: how many of its custodians have received their share (``handed_out``:
    custodian role ids). ``threshold`` is the group's recovery threshold, for the room to
    see what each group will need."""
    done = set(handed_out)
    return [
        GroupLine(i + 1, name, t, members, sum(1 for m in members if m in done))
        for i, (name, t, members) in enumerate(policy_groups(policy))
    ]


def _shares(n: int) -> str:
    return f"{n} more share" + ("" if n == 1 else "s")


def collection_message(
    policy: Mapping[str, Any], lines: Sequence[GroupLine], *, set_id: Any, complete: bool
) -> str:
    """What is still needed, naming the groups. ``complete``: the keyholder's verdict
    (the authority: it has the shares)."""
    if complete:
        return f"set {set_id}: enough shares to recover"
    if len(lines) == 1:
        line = lines[0]
        return (
            f"set {set_id}: {line.received} of {line.threshold} shares; need {_shares(line.more)}"
        )
    gt = group_threshold(policy)
    done = [g for g in lines if g.complete]
    missing = gt - len(done)
    head = f"set {set_id}: {len(done)} of {gt} group{'s' if gt != 1 else ''} complete"
    if done:
        head += " (" + ", ".join(g.name for g in done) + ")"
    open_ = sorted((g for g in lines if not g.complete), key=lambda g: (not g.received, g.more))
    if missing == 1:
        first, *rest = open_
        need = f"need {_shares(first.more)} from {first.name}"
        need += "".join(f", or {g.more} from {g.name}" for g in rest)
    else:
        need = f"need {missing} more complete groups from: " + ", ".join(
            f"{g.name} ({g.more} more)" for g in open_
        )
    return f"{head}; {need}"


def line_text(line: GroupLine, *, verb: str = "received") -> str:
    """``eu       2 of 3 needed   received 1  OK`` (fits 80 columns)."""
    mark = "  complete" if line.complete else ""
    return (
        f"{line.name[:16]:<16} {line.threshold} of {len(line.members)} needed   "
        f"{verb} {line.received}{mark}"
    )


_GROUP_NUMBER = re.compile(r"\bgroup (\d+)\b")


def name_groups_in(text: str, policy: Mapping[str, Any]) -> str:
    """``group 2 share 1 was already given`` -> ``group us share 1 ...``: the keyholder's
    messages know groups by number; a policy with named groups names them (a policy
    without groups, or a number it does not have, is left as it is)."""
    if not policy.get("groups"):
        return text
    count = len(policy_groups(policy))

    def named(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"group {group_name(policy, n)}" if 1 <= n <= count else m.group(0)

    return _GROUP_NUMBER.sub(named, text)
