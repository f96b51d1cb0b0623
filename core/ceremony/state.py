"""The ceremony's state as the engine keeps it, and read-only views of it for the UI.

* :class:`StepState`, :class:`CeremonyState`, :class:`StepRun`: where the ceremony and
  each step are (public data only).
* Distribution: per custodian a :class:`Handover` (due, shown, written down, checked, or
  check skipped with a reason); each change is journaled by the engine as its own event.
* Collection: a :class:`ShareTally` per collect-/check-shares step (shares accepted and
  refused, per group).
* Export: an :class:`ExportVerdict` (may the medium be removed?).

Screens read these through the frozen views :class:`DistributionProgress`,
:class:`CollectionProgress` and :class:`ExportVerdict` (in the style of
python-shamir-mnemonic's ``RecoveryState``: small predicates, no setters). Only the engine
changes the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.ceremony.model import Act, Step, StepKind

__all__ = [
    "CeremonyState",
    "CollectionProgress",
    "DistributionProgress",
    "ExportVerdict",
    "GroupProgress",
    "Handover",
    "HandoverState",
    "MediumVerdict",
    "ShareTally",
    "StepRun",
    "StepState",
    "decide_medium_verdict",
    "group_layout",
]


class StepState(StrEnum):
    """Where a step is."""

    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class CeremonyState(StrEnum):
    """Where the ceremony is."""

    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


class HandoverState(StrEnum):
    """Where one custodian's share is in a distribute-shares step."""

    DUE = "due"
    """Not handed over yet."""
    SHOWN = "shown"
    """Shown on the custodian terminal (words or QR), or written to a card not verified."""
    WRITTEN = "written"
    """The custodian says every word is written down (or the QR copied onto the grid card)."""
    CHECKED = "checked"
    """Typed back and matched the share handed out (a card: read back and verified)."""
    SKIPPED = "skipped"
    """The check was skipped, with a reason (journaled)."""


@dataclass
class Handover:
    """One custodian's share in a distribute-shares step (kept by the engine)."""

    custodian: str
    carrier: str
    state: HandoverState = HandoverState.DUE
    display: str = ""
    reason: str = ""
    failed_checks: int = 0

    @property
    def handed_out(self) -> bool:
        """The share left the keyholder (shown, written down, checked or skipped)."""
        return self.state is not HandoverState.DUE

    @property
    def settled(self) -> bool:
        """Nothing more is asked of this custodian's share: checked, or check skipped with
        a reason, or a QR copied (a QR is not typed back)."""
        if self.state in (HandoverState.CHECKED, HandoverState.SKIPPED):
            return True
        return self.state is HandoverState.WRITTEN and self.display == "qr"


@dataclass
class ShareTally:
    """Shares taken in one collect-/check-shares step (kept by the engine)."""

    accepted: list[tuple[int, int]] = field(default_factory=list)
    refused: int = 0
    failed_checks: int = 0
    complete: bool = False
    message: str = ""


@dataclass
class StepRun:
    """One step instance as the UI shows it (public data only)."""

    act: Act
    step: Step
    required_roles: tuple[str, ...]
    state: StepState = StepState.PENDING
    acks: list[str] = field(default_factory=list)
    exceptions: list[dict[str, str]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    display: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    error_code: str = ""
    performed: bool = False
    confirmed_by: str = ""
    shown: list[str] = field(default_factory=list)
    #: distribute-shares: custodian -> where their share is (the engine's record).
    handovers: dict[str, Handover] = field(default_factory=dict)
    #: collect-/check-shares: shares accepted and refused, per group (the engine's record).
    tally: ShareTally = field(default_factory=lambda: ShareTally())
    #: export: what the room is told about the medium after the write (None before one).
    verdict: ExportVerdict | None = None

    @property
    def act_id(self) -> str:
        """Id of the act."""
        return self.act.id

    @property
    def act_title(self) -> str:
        """Title of the act."""
        return self.act.title

    @property
    def step_id(self) -> str:
        """Id of the step."""
        return self.step.id

    @property
    def kind(self) -> StepKind:
        """Kind of the step."""
        return self.step.kind

    @property
    def title(self) -> str:
        """Title of the step."""
        return self.step.title

    @property
    def instruction(self) -> str:
        """Instruction text for the room."""
        return self.step.instruction

    @property
    def missing_acks(self) -> list[str]:
        """Required roles that have not acknowledged yet."""
        return [r for r in self.required_roles if r not in self.acks]


@dataclass(frozen=True)
class DistributionProgress:
    """Read-only view of a distribute-shares step: who still needs their share."""

    set_id: str
    order: tuple[str, ...]
    handovers: Mapping[str, Handover]
    acknowledge: tuple[str, ...]
    acks: tuple[str, ...]
    #: one line per group of the new set (issue 18): custodians done of each group
    groups: tuple[GroupProgress, ...] = ()

    def status(self, custodian: str) -> HandoverState:
        """Where ``custodian``'s share is."""
        h = self.handovers.get(custodian)
        return h.state if h is not None else HandoverState.DUE

    def carrier(self, custodian: str) -> str:
        """The carrier the script declares for ``custodian`` (``screen`` by default)."""
        h = self.handovers.get(custodian)
        return h.carrier if h is not None else "screen"

    def is_done(self, custodian: str) -> bool:
        """Handed out and, when the step asks it, acknowledged by the custodian."""
        h = self.handovers.get(custodian)
        if h is None or not h.handed_out:
            return False
        return custodian not in self.acknowledge or custodian in self.acks

    def due(self) -> list[str]:
        """Custodians still due (not handed out, or not yet acknowledged), in policy order."""
        return [c for c in self.order if not self.is_done(c)]

    @property
    def total(self) -> int:
        """Custodians of the new set."""
        return len(self.order)

    @property
    def done(self) -> int:
        """Custodians done (handed out and acknowledged)."""
        return self.total - len(self.due())

    def is_complete(self) -> bool:
        """Every custodian is done."""
        return not self.due()


@dataclass(frozen=True)
class GroupProgress:
    """One SLIP-39 group, by the script's name: ``have`` of ``threshold`` shares (in a
    collection: received; in a distribution: custodians of the group done) among its
    ``members`` custodians (0 when unknown). ``holders``: in a collection, the names of the
    custodians whose share is in (the manifest's holders; public)."""

    number: int
    name: str
    have: int
    threshold: int
    members: int = 0
    holders: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """The group has its threshold of shares."""
        return self.have >= self.threshold


@dataclass(frozen=True)
class CollectionProgress:
    """Read-only view of a collect-/check-shares step."""

    set_id: str
    checking: bool
    groups: tuple[GroupProgress, ...]
    group_threshold: int
    accepted: int
    refused: int
    complete: bool
    message: str

    def group_status(self, number: int) -> tuple[int, int]:
        """(shares in, threshold) of group ``number`` (1-based)."""
        for g in self.groups:
            if g.number == number:
                return g.have, g.threshold
        return 0, 0

    def groups_complete(self) -> int:
        """Groups that have their threshold."""
        return sum(1 for g in self.groups if g.complete)

    def is_complete(self) -> bool:
        """collect-shares: enough shares to rebuild the key (the keyholder's word)."""
        return self.complete


class MediumVerdict(StrEnum):
    """What the room is told about the export medium after a write."""

    NOT_WRITTEN = "not-written"
    """The write failed and was cleaned up: do not rely on the medium; Retry."""
    NOTHING = "nothing-written"
    """The step had nothing to write now."""
    UNCONFIRMED = "unconfirmed"
    """Written, but the medium did not report the sync: do not remove it yet."""
    FOLDER = "folder"
    """Written and verified to the demo folder: nothing to remove."""
    SAFE_TO_REMOVE = "safe-to-remove"
    """Written, read back, verified, synced and unmounted."""
    STILL_MOUNTED = "still-mounted"
    """Written, verified and synced, but still mounted: do not remove it yet."""


@dataclass(frozen=True)
class ExportVerdict:
    """The engine's verdict on the export medium after a write (journaled)."""

    verdict: MediumVerdict
    label: str
    notes: tuple[str, ...] = ()
    directory: str = ""
    error: str = ""

    @property
    def safe_to_remove(self) -> bool:
        """The medium may be taken out now (or is a folder: nothing to take out)."""
        return self.verdict in (MediumVerdict.SAFE_TO_REMOVE, MediumVerdict.FOLDER, MediumVerdict.NOTHING)

    def as_public(self) -> dict[str, Any]:
        """The verdict as journal details."""
        return {
            "verdict": self.verdict.value,
            "medium": self.label,
            "notes": list(self.notes),
            "directory": self.directory,
            **({"error": self.error} if self.error else {}),
        }


def decide_medium_verdict(
    label: str,
    *,
    error: str = "",
    nothing: bool = False,
    safe_to_remove: bool | None = None,
    unmounted: bool = False,
    scratch: bool = False,
    notes: Sequence[str] = (),
    directory: str = "",
) -> ExportVerdict:
    """The verdict on an export medium after a write.

    Args:
        label: how the room names the medium.
        error: why the write failed ("" when it did not).
        nothing: the step had nothing to write.
        safe_to_remove: the medium's report after the write (None: no report):
            written, read back, verified and synced (:class:`core.media.ExportResult`).
        unmounted: the medium was unmounted after the sync.
        scratch: the medium is the demo's throwaway folder (nothing to take out).
        notes, directory: from the medium's report.
    """
    if error:
        return ExportVerdict(MediumVerdict.NOT_WRITTEN, label, error=error)
    if nothing:
        return ExportVerdict(MediumVerdict.NOTHING, label)
    if not safe_to_remove:
        return ExportVerdict(MediumVerdict.UNCONFIRMED, label)
    if scratch:
        verdict = MediumVerdict.FOLDER
    elif unmounted:
        verdict = MediumVerdict.SAFE_TO_REMOVE
    else:
        verdict = MediumVerdict.STILL_MOUNTED
    return ExportVerdict(verdict, label, tuple(str(n) for n in notes), directory)


def group_layout(manifest: Mapping[str, Any] | None) -> tuple[int, list[tuple[int, str, int]]]:
    """(group threshold, [(group number, name, member threshold)]) of a manifest's policy."""
    policy = dict((manifest or {}).get("policy") or {})
    groups: Sequence[Any] = policy.get("groups") or []
    if groups:
        out = [
            (i + 1, str(g.get("name") or i + 1), int(g.get("threshold") or 1))
            for i, g in enumerate(groups)
            if isinstance(g, Mapping)
        ]
        return int(policy.get("group_threshold") or 1), out
    return 1, [(1, "1", int(policy.get("threshold") or 1))]
