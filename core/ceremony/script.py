"""Loading ceremony scripts (TOML) with line numbers for every problem.

``tomllib`` reports line numbers only for syntax errors, so :class:`SourceMap` scans the raw
text for table headers (``[roles.admin]``, ``[[acts]]``, ``[[acts.steps]]``) and keys, and
maps a data path such as ``("acts", 1, "steps", 0, "kind")`` back to the line that defines
it (the key's line, else its table header's line).

Public API:

* :func:`check_script` (path) -> list of :class:`~core.ceremony.model.Problem` (empty = valid)
* :func:`load_script` (path) -> :class:`~core.ceremony.model.Script`, raising
  :class:`ScriptError` (which carries every problem) if the script is invalid.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.ceremony.model import (
    Act,
    Group,
    Policy,
    Problem,
    Recipient,
    Role,
    RoleKind,
    Script,
    Step,
    StepKind,
)
from core.ceremony.source import SourceMap, parse_script
from core.ceremony.validate import validate
from core.errors import KcmError

__all__ = ["ScriptError", "SourceMap", "check_script", "load_script", "parse_script"]

class ScriptError(KcmError):
    """A script cannot be used; ``problems`` lists every problem with file and line."""

    code = "script-invalid"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in the ceremony script"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


def check_script(path: str | os.PathLike[str]) -> list[Problem]:
    """Validate a script file; returns every problem found (empty list: valid)."""
    data, smap, problems, _raw = parse_script(path)
    if data is None:
        return problems
    return validate(data, smap, str(path))


def load_script(path: str | os.PathLike[str]) -> Script:
    """Load and validate a script.

    Raises:
        ScriptError: the script has problems (all listed, with file and line).
    """
    data, smap, problems, raw = parse_script(path)
    if data is None:
        raise ScriptError(problems)
    problems = validate(data, smap, str(path))
    if problems:
        raise ScriptError(problems)
    return _build(data, smap, Path(path), hashlib.sha256(raw).hexdigest())


def _build(data: dict[str, Any], smap: SourceMap, source: Path, sha: str) -> Script:
    meta = data["ceremony"]
    roles = {
        rid: Role(
            id=rid,
            kind=RoleKind(r["kind"]),
            name=r["name"],
            card_serial=r.get("card_serial"),
            key_fingerprint=r.get("key_fingerprint"),
        )
        for rid, r in data["roles"].items()
    }
    policy = None
    if "policy" in data:
        pol = data["policy"]
        groups = tuple(
            Group(name=g["name"], threshold=g["threshold"], members=tuple(g["members"]))
            for g in pol.get("groups", [])
        )
        custodians = tuple(pol.get("custodians") or [m for g in groups for m in g.members])
        policy = Policy(
            threshold=pol.get("threshold", 0),
            shares=pol.get("shares", len(custodians)),
            custodians=custodians,
            group_threshold=pol.get("group_threshold", 1),
            groups=groups,
        )
    recipients = {
        rid: Recipient(
            id=rid,
            kind=r["kind"],
            public_key_file=r["public_key_file"],
            file=r["file"],
            fingerprint=r.get("fingerprint"),
            description=r.get("description", ""),
        )
        for rid, r in data.get("recipients", {}).items()
    }
    acts = []
    for ai, a in enumerate(data["acts"]):
        steps = []
        for si, s in enumerate(a["steps"]):
            params = {
                k: v
                for k, v in s.items()
                if k not in ("id", "kind", "title", "instruction", "acknowledge")
            }
            steps.append(
                Step(
                    id=s["id"],
                    kind=StepKind(s["kind"]),
                    title=s["title"],
                    instruction=s.get("instruction", "").strip(),
                    acknowledge=tuple(
                        _expand_roles(
                            s.get("acknowledge", []),
                            roles,
                            # in a split, "custodians" means the holders of the new shares
                            policy.custodians
                            if policy is not None and s["kind"] == StepKind.DISTRIBUTE_SHARES
                            else None,
                        )
                    ),
                    params=params,
                    line=smap.line_of(("acts", ai, "steps", si)),
                )
            )
        acts.append(
            Act(
                id=a["id"],
                title=a["title"],
                steps=tuple(steps),
                optional=a.get("optional", False),
                estimate_minutes=a.get("estimate_minutes"),
            )
        )
    return Script(
        name=meta["name"],
        version=str(meta["version"]),
        description=meta.get("description", "").strip(),
        purpose=meta["purpose"],
        practice=bool(meta.get("practice", False)),
        cluster_id=data["cluster"]["cluster_id"],
        region_id=data["cluster"]["region_id"],
        roles=roles,
        policy=policy,
        recipients=recipients,
        acts=tuple(acts),
        source=source,
        sha256=sha,
    )


def _expand_roles(
    names: Sequence[str], roles: dict[str, Role], custodians: Sequence[str] | None = None
) -> list[str]:
    """``custodians`` stands for every custodian role (or the given ones); no duplicates."""
    every = (
        list(custodians)
        if custodians is not None
        else [r.id for r in roles.values() if r.kind is RoleKind.CUSTODIAN]
    )
    out: list[str] = []
    for n in names:
        for i in every if n == "custodians" else [n]:
            if i not in out:
                out.append(i)
    return out
