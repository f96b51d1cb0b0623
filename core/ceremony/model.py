"""Ceremony script model: immutable dataclasses built from a validated TOML script.

See docs/scripts.md for the schema. Objects here hold only public data (names, policy,
card serials, public-key fingerprints, file names); they are built by
:func:`core.ceremony.script.load_script` after :mod:`core.ceremony.validate` found no
problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIRMED_KINDS",
    "DEFAULT_CARD_MODULE",
    "NO_ACTION_KINDS",
    "QR_CARRIERS",
    "Act",
    "Carrier",
    "Display",
    "Group",
    "Policy",
    "Problem",
    "Recipient",
    "Role",
    "RoleKind",
    "Script",
    "Step",
    "StepKind",
    "expand_carriers",
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


class Carrier(StrEnum):
    """How a share comes back at collection (or check-shares).

    ``qr`` in a script stands for every QR way in (:data:`QR_CARRIERS`): a photo or scan
    of the QR as an image file, the camera, a keyboard-wedge handheld scanner.
    """

    TYPED = "typed"
    QR = "qr"
    CARD = "card"
    QR_FILE = "qr-file"
    QR_CAMERA = "qr-camera"
    SCANNER = "scanner"


#: The collection carriers a script allows with the umbrella name ``qr``.
QR_CARRIERS: tuple[Carrier, ...] = (Carrier.QR_FILE, Carrier.QR_CAMERA, Carrier.SCANNER)


class Display(StrEnum):
    """How a share is handed over at distribution: ``screen`` (words on the custodian
    terminal, typed back later or written on paper), ``qr`` (a QR on that terminal),
    ``card`` (written to the custodian's smart card)."""

    SCREEN = "screen"
    QR = "qr"
    CARD = "card"


#: PKCS#11 module used when neither the step nor the caller names one.
DEFAULT_CARD_MODULE = "opensc"


def expand_carriers(wanted: Sequence[str]) -> list[Carrier]:
    """A step's carriers as offered to the room: ``qr`` becomes the three QR ways in;
    order kept, duplicates and unknown names dropped."""
    out: list[Carrier] = []
    for name in wanted:
        try:
            carrier = Carrier(name)
        except ValueError:
            continue
        for c in QR_CARRIERS if carrier is Carrier.QR else (carrier,):
            if c not in out:
                out.append(c)
    return out


#: Step kinds with no action: acknowledgments only.
NO_ACTION_KINDS: tuple[StepKind, ...] = (StepKind.INSTRUCTION, StepKind.SUMMARY)
#: Step kinds a named witness confirms (``Ceremony.confirm``) before they are done.
CONFIRMED_KINDS: tuple[StepKind, ...] = (StepKind.VERIFY_FINGERPRINT, StepKind.VERIFY_KCV)


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
