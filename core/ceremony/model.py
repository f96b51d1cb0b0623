"""Ceremony script model: immutable dataclasses built from a validated TOML script.

See docs/scripts.md for the schema. Objects here hold only public data (names, policy,
card serials, public-key fingerprints, file names); they are built by
:func:`core.ceremony.script.load_script` after :mod:`core.ceremony.validate` found no
problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "Act",
    "Group",
    "Policy",
    "Problem",
    "Recipient",
    "Role",
    "RoleKind",
    "Script",
    "Step",
    "StepKind",
]


class StepKind(StrEnum):
    """What a step does (drives the engine action and what the UI shows)."""

    INSTRUCTION = "instruction"
    CHECKLIST = "checklist"
    ATTENDANCE = "attendance"
    PREFLIGHT = "preflight"
    VERIFY_FINGERPRINT = "verify-fingerprint"
    GENERATE = "generate"
    DISTRIBUTE_SHARES = "distribute-shares"
    COLLECT_SHARES = "collect-shares"
    CHECK_SHARES = "check-shares"
    RECOVER = "recover"
    VERIFY_KCV = "verify-kcv"
    SEAL = "seal"
    EXPORT = "export"
    SUMMARY = "summary"
    WIPE = "wipe"
    #: MasterKey rotation (issue 19): the continuity statement, signed by both keys
    CONTINUITY_STATEMENT = "continuity-statement"
    #: MasterKey rotation: the old set's manifest marked rotated out, signed by the old key
    MARK_ROTATED_OUT = "mark-rotated-out"


class RoleKind(StrEnum):
    """Kinds of people in the room."""

    ADMINISTRATOR = "ceremony-administrator"
    WITNESS = "internal-witness"
    CUSTODIAN = "custodian"
    OBSERVER = "observer"


@dataclass(frozen=True)
class Problem:
    """One problem found in a script, with its location for the person fixing it."""

    file: str
    line: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        return f"{self.file}:{self.line}: {self.message}{where}"


@dataclass(frozen=True)
class Role:
    """A named role. Custodians carry the optional card serial / key fingerprint."""

    id: str
    kind: RoleKind
    name: str
    card_serial: str | None = None
    key_fingerprint: str | None = None


@dataclass(frozen=True)
class Group:
    """A SLIP-39 group: ``threshold`` of its ``members`` (custodian role ids)."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """Share policy. Without groups: one group of ``custodians``, ``threshold`` of ``shares``."""

    threshold: int
    shares: int
    custodians: tuple[str, ...]
    group_threshold: int = 1
    groups: tuple[Group, ...] = ()

    def as_public(self) -> dict[str, Any]:
        """The policy as plain JSON data (for the keyholder request and the journal)."""
        return {
            "threshold": self.threshold,
            "shares": self.shares,
            "custodians": list(self.custodians),
            "group_threshold": self.group_threshold,
            "groups": [
                {"name": g.name, "threshold": g.threshold, "members": list(g.members)}
                for g in self.groups
            ],
        }


@dataclass(frozen=True)
class Recipient:
    """Who a sealed envelope is for: a KMS/HSM/custodian public key."""

    id: str
    kind: str
    public_key_file: str
    file: str
    fingerprint: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Step:
    """One step of an act: its kind, texts, roles that acknowledge it and kind parameters."""

    id: str
    kind: StepKind
    title: str
    instruction: str
    acknowledge: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Act:
    """A named group of steps; ``estimate_minutes`` is how long the act is expected to take
    (printed on the ceremony checklist), if the script says."""

    id: str
    title: str
    steps: tuple[Step, ...]
    optional: bool = False
    estimate_minutes: int | None = None


@dataclass(frozen=True)
class Script:
    """A validated ceremony script."""

    name: str
    version: str
    description: str
    purpose: str
    practice: bool
    cluster_id: str
    region_id: str
    roles: Mapping[str, Role]
    policy: Policy | None
    recipients: Mapping[str, Recipient]
    acts: tuple[Act, ...]
    source: Path
    sha256: str

    def steps(self) -> list[tuple[Act, Step]]:
        """Every step in order with its act."""
        return [(a, s) for a in self.acts for s in a.steps]

    def custodians(self) -> list[Role]:
        """Custodian roles in script order."""
        return [r for r in self.roles.values() if r.kind is RoleKind.CUSTODIAN]
