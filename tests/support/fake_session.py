"""The UI's fake session: canned PUBLIC answers standing in for
:class:`kcm_tui.backend.Session` (no keyholder, no journal, no clock, no randomness), so
every snapshot is stable. It satisfies the same Protocol as the real session
(:class:`kcm_tui.context.CeremonySession`; mypy checks it, see :func:`_conforms`).
Behaviour over the real engine and keyholder is covered by tests/tui/test_e2e.py and
test_safety.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.ceremony.state import (
    CollectionProgress,
    DistributionProgress,
    ExportVerdict,
    GroupProgress,
    Handover,
    HandoverState,
    decide_medium_verdict,
)
from kcm_tui.backend import Session
from kcm_tui.errors import BackendError, CarrierRefused, ShareRefused
from kcm_tui.views import ActLine, Check, StepView

if TYPE_CHECKING:
    from kcm_tui.context import CeremonySession


#: Fixed script hashes (the start screen shows them as words).
SCRIPT_SHA = {n: hashlib.sha256(n.encode()).hexdigest() for n in ("practice-genesis", "genesis", "unseal-and-seal")}
WORDS = ["academic", "acid", "acne", "acquire", "acrobat", "activity", "actress", "adapt"]
FP_WORDS = ["ocean", "zero", "maiden", "vocal", "bundle", "fatal", "silent", "rescue"]
FINAL_WORDS = [
    "amazing", "branch", "cradle", "darkness", "elegant", "fiber", "garlic", "hairy", "idle", "judicial",
    "keyboard", "laden", "mailman", "necklace", "obesity", "pacific", "quarter", "railroad", "sack",
    "tadpole", "ugly", "valid", "wavy", "wildlife", "withdraw", "yield",
]
CHECKS = [
    Check("network-interfaces", "PASS", "no interface up besides lo", "nothing to do"),
    Check("default-route", "PASS", "no default route", "nothing to do"),
    Check("swap", "PASS", "no swap active", "nothing to do"),
    Check("core-dumps", "PASS", "RLIMIT_CORE is 0", "nothing to do"),
    Check("memory-locking", "PASS", "memfd_secret available", "nothing to do"),
    Check("kernel-cmdline", "WARN", "init_on_free=1 missing", "boot the ceremony ISO"),
    Check("entropy", "PASS", "getrandom ready", "nothing to do"),
    Check("live-media", "PASS", "root is the read-only live medium", "nothing to do"),
    Check("environment", "PASS", "no leaking or risky variables set", "nothing to do"),
    Check("terminal-size", "PASS", "terminal is 80x24", "nothing to do"),
]
FailingChecks = [*CHECKS[:2], Check("swap", "FAIL", "swap is active: /dev/vda2 (2 GiB)", "swapoff -a, or boot the ceremony ISO"), *CHECKS[3:]]
ROLES = {
    "admin": ("ceremony-administrator", "Ceremony Administrator"),
    "witness": ("internal-witness", "Internal Witness"),
    **{f"c{i}": ("custodian", f"Custodian {i}") for i in range(1, 6)},
}


def step(kind: str, index: int, **kw: Any) -> StepView:
    base = StepView(
        index=index,
        act_id="act",
        act_title=kw.pop("act_title", "Act 2: Generate the MasterKey"),
        id=kind,
        kind=kind,
        title=kw.pop("title", f"The {kind} step"),
        instruction=kw.pop("instruction", "The administrator reads this instruction aloud; the witness follows it on paper."),
        acknowledge=kw.pop("acknowledge", ("admin", "witness")),
        params=kw.pop("params", {}),
    )
    return replace(base, **kw)


TOKENS = [
    {"label": "custodian-1", "serial": "5a1f0c22d8e94b01", "manufacturer": "SoftHSM project", "pin_state": "ok",
     "pin_pad": False, "pin_to_be_changed": False, "initialized": True},
    {"label": "custodian-2", "serial": "77c3e9a4105b2f6d", "manufacturer": "SoftHSM project", "pin_state": "final-try",
     "pin_pad": False, "pin_to_be_changed": False, "initialized": True},
    {"label": "old-card", "serial": "0b9e44d1c6a27f30", "manufacturer": "Yubico", "pin_state": "locked",
     "pin_pad": True, "pin_to_be_changed": False, "initialized": True},
]
CARD_WRITTEN = {
    "carrier": "card", "card_serial": "5a1f0c22d8e94b01", "key_fingerprint": "4e7a19c0" * 8,
    "key_fingerprint_words": ["ocean", "zero", "maiden", "vocal", "bundle", "fatal", "silent", "rescue"],
    "stored_on_card": True, "verified": True,
}
CARD_ERRORS = {
    "wrong_pin": CarrierRefused("wrong PIN for card 5a1f0c22d8e94b01: 2 tries left before the PIN locks",
                                code="card-pin-incorrect", carrier="card"),
    "pin_locked": CarrierRefused("the PIN of card 77c3e9a4105b2f6d is locked", code="card-pin-locked", carrier="card"),
    "wrong_card": CarrierRefused("card 0b9e44d1c6a27f30 is not one of share set 4821's cards (expected one of: "
                                 "5a1f0c22d8e94b01, 77c3e9a4105b2f6d); insert the custodian's card",
                                 code="card-wrong-card", carrier="card"),
    "removed": CarrierRefused("card 5a1f0c22d8e94b01 was removed during the operation", code="card-removed", carrier="card"),
}
CAMERA_MISSING = CarrierRefused(
    "cannot open the camera /dev/video0: No such file or directory. Check the cable or use an image file or the"
    " handheld scanner.", code="carrier", carrier="qr-camera")


#: Groups by name (issue 18): eu 2 of 2, us 2 of 2, vault 1 of 1; 2 groups recover.
GROUPS_POLICY: dict[str, Any] = {
    "group_threshold": 2,
    "groups": [
        {"name": "eu", "threshold": 2, "members": ["c1", "c2"]},
        {"name": "us", "threshold": 2, "members": ["c3", "c4"]},
        {"name": "vault", "threshold": 1, "members": ["c5"]},
    ],
}


#: The practice genesis script's acts and estimate_minutes (the outline of every fake step).
ACTS: list[tuple[str, int | None]] = [
    ("Act 1: Open the ceremony", 10),
    ("Act 2: Generate the MasterKey", 5),
    ("Act 3: Split and hand out the shares", 30),
    ("Act 4: Seal and export", 10),
    ("Act 5: Close", 5),
]


class FakeSession:
    """Canned public state for one screen."""

    SUPPORTED_CARRIERS = Session.SUPPORTED_CARRIERS
    SUPPORTED_DISPLAYS = Session.SUPPORTED_DISPLAYS

    def __init__(self, view: StepView | None, *, practice: bool = True, state: str = "running") -> None:
        self.view = view
        self.practice = practice
        self.state = state
        self.ceremony_id = "PRACTICE-genesis-20260101T000000Z-abcd"
        self.folder = Path("/media/ceremony/ceremonies") / self.ceremony_id
        self.journal_path = self.folder / "journal.db"
        self.final_hash = "3f9a0c41" * 8
        self.final_words = tuple(FINAL_WORDS)
        #: answers of the keyholder's terminal entry (public facts, or an exception to raise)
        self.terminal_answers: list[Any] = []
        self.terminal_calls: list[dict[str, Any]] = []
        self.refusal = ""
        self.journal_ok = True
        self.journal_message = "42 events, hash chain intact, closed"
        self.carriers: dict[str, str] = {}
        self.tokens = list(TOKENS)
        self.card_errors: list[CarrierRefused] = []
        #: how each card call was asked: a PIN passed (never, from the product UI) or read by the keyholder
        self.card_calls: list[dict[str, bool]] = []
        self.handovers: dict[str, Handover] = {}
        self.acks: list[str] = []
        self.groups = False  # True: GROUPS_POLICY (eu, us, vault)
        self.collected: list[int] = []  # group numbers of the shares collected (with groups)
        self.confirmations: list[tuple[str, bool, str | None]] = []
        self.performed_inputs: list[dict[str, Any]] = []

    # facts
    def current(self) -> StepView | None:
        return self.view

    def total_steps(self) -> int:
        return 11

    def act_outline(self) -> list[ActLine]:
        """The practice genesis script's acts (estimates as in practice-genesis.toml); the
        current one is the step's act (in place of the act of its number when it is not one
        of them)."""
        title = self.view.act_title if self.view is not None else ""
        acts = [t for t, _ in ACTS]
        if title and title not in acts:
            number = re.match(r"Act (\d+)", title)
            acts[min(int(number.group(1)) if number else 3, len(acts)) - 1] = title
        at = acts.index(title) if title in acts else len(acts)
        minutes = dict(ACTS)
        return [
            ActLine(t, "done" if i < at else "current" if i == at else "todo", 2 if i < at else 0, 2, minutes.get(t))
            for i, t in enumerate(acts)
        ]

    def progress(self) -> tuple[int, int]:
        return ((self.view.index if self.view else 11), 11)

    def role_name(self, role_id: str) -> str:
        return ROLES.get(role_id, ("", role_id))[1]

    def role_kind(self, role_id: str) -> str:
        return ROLES.get(role_id, ("", role_id))[0]

    def group_of(self) -> dict[str, str]:
        if not self.groups:
            return {}
        return {m: str(g["name"]) for g in GROUPS_POLICY["groups"] for m in g["members"]}

    def keyholder_warnings(self) -> list[str]:
        return []

    def attendance_roles(self, step: StepView) -> list[str]:
        return list(ROLES)

    def split_custodians(self) -> list[str]:
        return [f"c{i}" for i in range(1, 6)]

    def administrator(self) -> str:
        return "admin"

    def share_words(self) -> int:
        return 33

    def group_label(self, number: Any) -> str:
        return f"group {number}"

    def manifest_choices(self) -> list[tuple[str, str, str]]:
        return [
            ("set-4821.json", "4821", "genesis-20260101T090000Z-ab12"),
            ("set-1187.json", "1187", "genesis-20251201T090000Z-cd34"),
        ]

    # intents
    def perform(self, **inputs: Any) -> dict[str, Any]:
        self.performed_inputs.append(dict(inputs))
        return {}

    def acknowledge(self, role: str) -> None:
        self.acks.append(role)

    def withdraw_ack(self, role: str) -> None:
        if role in self.acks:
            self.acks.remove(role)

    def confirm(self, witness: str, matches: bool, *, out_of_band: str | None = None) -> None:
        self.confirmations.append((witness, matches, out_of_band))

    def complete(self) -> None:
        pass

    def retry(self) -> None:
        pass

    def record_exception(self, text: str, who: str = "") -> None:
        pass

    def abort(self, reason: str, who: str = "") -> None:
        self.abort_reason = reason
        self.state = "aborted"

    def show_share(self, custodian: str, display: str = "screen", *, override_reason: str | None = None) -> dict[str, Any]:
        self._handover(custodian).state = HandoverState.SHOWN
        self._handover(custodian).display = display
        return {"shown": True}

    def _handover(self, custodian: str) -> Handover:
        return self.handovers.setdefault(custodian, Handover(custodian, self.carriers.get(custodian, "screen")))

    def distribution(self) -> DistributionProgress | None:
        if self.view is None or self.view.kind != "distribute-shares":
            return None
        order = tuple(self.split_custodians())
        for c in order:
            self._handover(c)
        progress = DistributionProgress(
            set_id="4821",
            order=order,
            handovers={c: replace(h) for c, h in self.handovers.items()},
            acknowledge=tuple(r for r in self.view.acknowledge if r in order),
            acks=tuple(self.acks),
        )
        if not self.groups:
            return progress
        from core.ceremony import groups

        lines = groups.distribution_lines(GROUPS_POLICY, [c for c in order if progress.is_done(c)])
        return replace(progress, groups=tuple(
            GroupProgress(g.number, g.name, g.received, g.threshold, len(g.members)) for g in lines))

    def share_written(self, custodian: str) -> None:
        self._handover(custodian).state = HandoverState.WRITTEN

    def check_typed_share(self, custodian: str) -> str:
        self._handover(custodian).state = HandoverState.CHECKED
        return "the share typed back is exactly the share handed out"

    def skip_share_check(self, custodian: str, reason: str) -> None:
        self._handover(custodian).state = HandoverState.SKIPPED
        self._handover(custodian).reason = reason

    def collection(self) -> CollectionProgress | None:
        if not self.groups or self.view is None:
            return None
        from core.ceremony import groups

        lines = groups.collection_lines(GROUPS_POLICY, [{"group": g} for g in self.collected])
        return CollectionProgress(
            set_id="4821", checking=False,
            groups=tuple(GroupProgress(g.number, g.name, g.received, g.threshold, len(g.members),
                                       tuple(self.role_name(m) for m in g.members[:g.received])) for g in lines),
            group_threshold=2, accepted=len(self.collected), refused=0, complete=False,
            message=groups.collection_message(GROUPS_POLICY, lines, set_id=4821, complete=False))

    # export media: a fixed demo folder unless an ExportSession
    def export_medium(self) -> dict[str, Any]:
        return {"label": "demo", "demo": True, "path": str(self.folder), "describe": ""}

    def export_media_choices(self) -> list[Any] | None:
        return None

    def set_export_medium(self, medium: Any | None) -> None:
        raise BackendError("this ceremony's exporter writes to a fixed medium")

    def set_export_progress(self, cb: Callable[[int, int, str], None] | None) -> None:
        pass

    def export_status(self) -> dict[str, Any] | None:
        return None

    def export_verdict(self) -> ExportVerdict | None:
        return None

    def share_carriers(self) -> dict[str, str]:
        return {c: self.carriers.get(c, "screen") for c in self.split_custodians()}

    def card_serial_of(self, role_id: str) -> str | None:
        return None

    def list_cards(self) -> list[dict[str, Any]]:
        return list(self.tokens)

    def rescan_cards(self) -> list[dict[str, Any]]:
        return list(self.tokens)

    def write_card(self, custodian: str, serial: str | None, pin: memoryview | None = None, *,
                   pin_from_terminal: bool = False) -> dict[str, Any]:
        self.card_calls.append({"pin": pin is not None, "pin_from_terminal": pin_from_terminal})
        if self.card_errors:
            raise self.card_errors.pop(0)
        self._handover(custodian).state = HandoverState.CHECKED
        self._handover(custodian).display = "card"
        return dict(CARD_WRITTEN)

    def add_card(self, serial: str | None, pin: memoryview | None = None, *,
                 pin_from_terminal: bool = False) -> dict[str, Any]:
        self.card_calls.append({"pin": pin is not None, "pin_from_terminal": pin_from_terminal})
        if self.card_errors:
            raise self.card_errors.pop(0)
        return self.add_share("card", None)

    def add_qr_file(self, path: str) -> dict[str, Any]:
        return self.add_share("qr-file", path)

    def add_camera(self, device: str = "/dev/video0", timeout_s: int = 30) -> dict[str, Any]:
        raise CAMERA_MISSING

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        if self.refusal:
            raise ShareRefused(self.refusal)
        return {"complete": False, "message": "2 of 3 shares, 1 more needed from group Frankfurt"}

    def entry_terminal(self, purpose: str = "collect", *, scanner: bool = False,
                       idle_warn: float = 120.0, idle_wipe: float = 180.0) -> dict[str, Any]:
        """The keyholder's terminal entry, answered from ``terminal_answers`` (oldest first;
        an exception instance is raised); default: a share whose checksum is correct."""
        self.terminal_calls.append({"purpose": purpose, "scanner": scanner, "idle_warn": idle_warn,
                                    "idle_wipe": idle_wipe})
        if self.terminal_answers:
            answer = self.terminal_answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return dict(answer)
        return {"status": "ok", "via": "scanner" if scanner else "typed", "set": 4821, "group": 1,
                "member": 2, "keystrokes": 133, "pastes_refused": 0}

    def keyholder_gone_message(self) -> str:
        return ("The keyholder process stopped. Every secret it held is gone. Shares to enter again: "
                "the share being typed. What to do: press F10.")

    def entry_cancel(self) -> None:
        pass

    def exports(self) -> list[str]:
        return [str(self.folder / "journal.jsonl"), str(self.folder / "transcript.md")]

    def verify_journal(self) -> tuple[bool, str]:
        return self.journal_ok, self.journal_message

    def emergency_wipe(self, reason: str) -> list[str]:
        return ["the keyholder was told to wipe every secret it held"]

    def close(self) -> None:
        pass


EXPORT_FILES = {
    "PRACTICE-envelope-kms.json": b'{"recipient":"kms","sealed":"' + b"ab" * 3000 + b'"}',
    "PRACTICE-manifest-set-4821.json": b'{"set_id":"4821","threshold":3,"shares":5}',
}


class ExportSession(FakeSession):
    """An export step. With ``exporter`` (a real ``core.ceremony.engine.FolderExporter``,
    possibly with a slow or failing writer) the files really go through
    ``core.media.write_export``; without it the write is canned: one progress report, then
    it waits for ``gate`` (if any) and reports ``status``. With ``choices`` (a callable
    returning ``core.media.Medium`` objects) the screen shows the export-medium chooser and
    the chosen medium goes to the exporter (``FolderExporter.use``)."""

    def __init__(self, exporter: Any = None, *, medium: dict[str, Any] | None = None, gate: Any = None,
                 status: dict[str, Any] | None = None, choices: Any = None) -> None:
        super().__init__(step("export", 9, act_title="Act 3: Seal and export", title="Write the export media",
                              instruction="Insert the export medium; the envelope and the manifest are written, read back and verified.",
                              params={"folder": "export", "files": ["envelopes", "manifest"]}))
        self.exporter = exporter
        self.medium_info = medium or {"label": "KCM-EXPORT-1", "demo": False, "path": "/media/KCM-EXPORT-1", "describe": ""}
        self.gate = gate
        self.status = status
        self.progress_cb: Any = None
        self.choices = choices
        self.chosen: Any = None
        self.written: str | None = None  # None: no write yet; "": written; else the error

    def export_media_choices(self) -> list[Any] | None:
        return None if self.choices is None else list(self.choices())

    def set_export_medium(self, medium: Any) -> None:
        if medium is not None and medium.read_only:
            raise BackendError(f"{medium.label} cannot be used: read-only")
        self.chosen = medium
        if self.exporter is not None:
            self.exporter.use(medium)

    def export_medium(self) -> dict[str, Any]:
        if self.exporter is None:
            if self.chosen is not None:
                m = self.chosen
                return {"label": m.label, "demo": m.demo, "path": str(m.path), "describe": m.describe()}
            return dict(self.medium_info)
        m = self.exporter.target()
        return {"label": m.label, "demo": m.demo, "path": str(m.path), "describe": m.describe()}

    def set_export_progress(self, cb: Any) -> None:
        self.progress_cb = cb
        if self.exporter is not None:
            self.exporter.progress = cb

    def export_verdict(self) -> ExportVerdict | None:
        """The verdict the engine gives (core.ceremony.state.decide_medium_verdict) for this
        fake write: its error, or its medium's report."""
        if self.written is None:
            return None
        medium = self.export_medium()
        label = str(medium.get("label", "the export medium"))
        if self.written:
            return decide_medium_verdict(label, error=self.written)
        status = self.export_status()
        return decide_medium_verdict(
            label,
            safe_to_remove=None if status is None else bool(status.get("safe_to_remove")),
            unmounted=bool(status and status.get("unmounted")),
            scratch=bool(medium.get("demo")),
            notes=list(status.get("notes", [])) if status else [],
        )

    def export_status(self) -> dict[str, Any] | None:
        if self.exporter is None:
            return self.status
        res = self.exporter.last
        if res is None:
            return None
        return {"safe_to_remove": res.safe_to_remove, "unmounted": res.unmounted, "notes": list(res.notes),
                "directory": str(res.directory)}

    def perform(self, **inputs: Any) -> dict[str, Any]:
        assert self.view is not None
        if self.view.state == "failed":
            raise BackendError("the step failed: retry it first")
        try:
            if self.exporter is not None:
                names = [f.name for f in self.exporter.write("export", EXPORT_FILES, ceremony_id=self.ceremony_id)]
            else:
                if self.progress_cb is not None:
                    self.progress_cb(4096, 10240, "PRACTICE-envelope-kms.json")
                if self.gate is not None:
                    self.gate.wait(5)
                names = sorted(EXPORT_FILES)
        except Exception as exc:
            self.view = replace(self.view, state="failed", error=str(exc))
            self.written = str(exc)
            raise BackendError(str(exc)) from None
        self.written = ""
        self.view = replace(self.view, performed=True, results={"folder": "export", "files": {n: {} for n in names}})
        return dict(self.view.results)

    def retry(self) -> None:
        assert self.view is not None
        self.view = replace(self.view, state="active", error="")


if TYPE_CHECKING:

    def _conforms(fake: FakeSession) -> CeremonySession:
        """mypy: the fake satisfies the Protocol the screens type against."""
        return fake

    def _export_conforms(fake: ExportSession) -> CeremonySession:
        """mypy: so does the export step's fake."""
        return fake
