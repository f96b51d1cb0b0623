"""The headless ceremony engine: a UI-free state machine over a validated script.

The TUI (or a test) drives a :class:`Ceremony`; the engine drives the keyholder through the
narrow :class:`Keyholder` port, writes public files through the :class:`Exporter` port and
records every event in the tamper-evident :class:`~core.journal.Journal` before it returns.
The engine never holds a secret: shares go from the carrier to the keyholder as opaque
payloads, and only public facts come back (set id, share index, KCV, manifests, sealed
envelopes).

API for the UI
--------------

Create::

    c = Ceremony.load(script_path, workspace, keyholder,
                      exporter=None, recipients=None, preflight=None, clock=None)
        # validates the script (raises ScriptError listing every problem), creates
        # WORKSPACE/ceremonies/<ceremony_id>/journal.db and records ceremony.started

State to display::

    c.script                 the Script (roles, policy, acts)
    c.ceremony_id, c.practice (True: show PRACTICE on every screen)
    c.state                  CeremonyState.RUNNING | COMPLETED | ABORTED
    c.steps                  list[StepRun], in order
    c.current_step           the StepRun to show (None when finished)
    c.progress               (done, total)
    c.manifest               the active public share-set manifest (dict) or None
    c.manifest_choices()     active share sets this ceremony may collect/check, for a
                             chooser: [{file, set_id, ceremony_id, practice}] (PRACTICE
                             sets only in a practice ceremony, real sets only in a real one)
    c.final_hash, c.final_words, c.exports   once completed or aborted
    c.subscribe(fn)          fn(event: core.journal.Event) after every journal event

    StepRun: act_id, act_title, step_id, kind (StepKind), title, instruction,
             required_roles, state (StepState: PENDING/ACTIVE/DONE/FAILED/SKIPPED),
             acks (role ids), exceptions (list[dict]), results (public dict),
             error (message of the last failure), performed (action done),
             shown (custodians whose share was shown), display (per-kind UI data).

Intents (each raises :class:`EngineError` with a message for the room when not allowed;
a failure of the action itself marks the step FAILED instead, keeps all earlier work and is
undone by :meth:`Ceremony.retry`)::

    c.perform(**inputs)      run the current step's action (see "Step kinds" below)
    c.acknowledge(role)      a required role signs the step off
    c.confirm(witness, matches=True, method="words")
                             verify-fingerprint / verify-kcv: the named witness compares
    c.show_share(custodian, display=None, *, card=None, override_reason=None)
                             distribute-shares, one custodian at a time, on the carrier the
                             script declares (see "Share carriers" below)
    c.add_share(carrier, payload)                 collect-shares / check-shares
    c.scanner_key(key, t_us) collect-/check-shares: one key press of a wedge QR scanner
    c.rescan_cards(module=None)                   the keyholder's PKCS#11 module looks for
                             cards again (SoftHSM2 sees only tokens present at its start)
    c.complete_step()        when performed + acknowledged: DONE, next step becomes ACTIVE
    c.skip_act(reason, who)  skip the rest of an optional act
    c.record_exception(text, who)                 at any time (exception sheet)
    c.retry()                a FAILED step becomes ACTIVE again
    c.abort(reason, who)     wipe the keyholder, record why, close the journal

Step kinds (``perform`` inputs and what must happen before ``complete_step``):

==================  ========================================================================
instruction,        nothing to perform; acknowledgments only
summary
checklist           ``perform(checked=[item indices])``: every item must be ticked
attendance          ``perform(present=[role ids])``: every role the step lists must be present
preflight           ``perform()``: runs the preflight port; a FAIL fails the step
verify-fingerprint  ``perform()`` shows the subject's fingerprint (``display``); then
                    ``confirm(witness, matches)``
generate            ``perform()``: new MasterKey in the keyholder; KCV in ``results``
verify-kcv          ``perform()`` shows the KCV (and the manifest's expected KCV); ``confirm``;
                    for a key rebuilt NOT VERIFIED (no manifest fingerprint) the keyholder
                    checks the KCV the witness confirmed (``confirm_kcv``) before sealing
distribute-shares   ``perform()`` splits (once); ``show_share`` + ``acknowledge`` per custodian
collect-shares      ``perform(manifest=None)`` starts recovery; ``add_share`` until complete
check-shares        ``perform(manifest=None)``; ``add_share`` checks one share at a time
                    against the manifest's commitments (any carrier; nothing is recovered)
recover             ``perform()``: rebuild the key, compare its KCV with the manifest (no
                    fingerprint in it: ``verified`` False, NOT VERIFIED: seal and
                    distribute-shares refuse until a verify-kcv witness confirmed it)
seal                ``perform()``: one envelope per recipient (recipients must be confirmed),
                    then the signed seal manifest (exported with the envelopes)
export              ``perform()``: writes the listed files through the exporter
wipe                ``perform()``: the keyholder wipes every secret but the MasterKey signing
                    key, which then signs only the closed journal and the transcript
                    (:mod:`core.ceremony.records`)
==================  ========================================================================

Share carriers
--------------

Distribution (``show_share``): the step's ``carriers`` table names each custodian's carrier
(``c.share_carriers()``; default ``screen``): ``screen`` shows the words on the custodian
terminal (typed later or written on paper), ``qr`` shows a share QR there, ``card`` needs
``card=CardAccess(module=None, serial=None, pin=<view of the UI's locked PIN buffer>)``: a
key is generated on the card, the share is written, read back and checked against its
manifest commitment; the card serial and key fingerprint go into the manifest (rewritten in
``manifests/``; ``c.manifest``), the journal and ``run.display["cards"]``. A card that keeps
no data object (step ``card_data_object = false``, or the card refuses one) gets a sealed
share file (public) in ``workspace/card-shares/`` and ``c.card_files``, exported with the
manifest. ``c.list_cards(module=None)`` lists the cards in the readers;
``c.rescan_cards(module=None)`` makes the keyholder re-initialise the PKCS#11 module first
(SoftHSM2 and some modules only see tokens present when they were loaded; readers with
pcscd report new cards without it) and returns the same list.

Collection (``add_share``): ``typed`` (word views), ``card`` (:class:`CardAccess`: module,
serial, PIN view; a serial not in the manifest is refused before the card is touched),
``qr-file`` (image path), ``qr-camera`` (:class:`QRCamera`, ``replay`` for recorded frames),
``scanner`` (``[(one-byte view, t_us), ...]``, or :meth:`Ceremony.scanner_key` key by key).
A script's ``qr`` allows the three QR ways (``c.carrier_allowed(carrier)``). Errors of the
card/QR layer raise :class:`CarrierRefusedError` (a :class:`ShareRefusedError` with ``code``,
e.g. ``card-pin-incorrect``, ``card-wrong-card``, ``card-removed``, ``qr-not-found``):
the step stays ACTIVE, every share collected (or handed out) so far is kept; retry. A share
of another set (typed or read by any carrier) is refused as a :class:`ShareRefusedError`
with ``code`` ``other-set`` and ``set_id`` (the share's set); when a manifest the engine
knows names that set in ``supersedes``, the message says which set superseded it.

Checking (check-shares, ``add_share`` with the same carriers and payloads; the scanner also
key by key with :meth:`Ceremony.scanner_key`): the keyholder reads the share, checks it
against the manifest's salted commitment and wipes it at once; only the verdict comes back
(``ok``, ``set_id``, ``group``, ``index``, ``message``, ``source`` and for cards
``card_serial``/``key_fingerprint``) and is recorded in the journal. Nothing enters a
recovery. A share that does not match raises :class:`ShareRefusedError` (``code``
``commitment``, or ``other-set`` naming the share's set, or the set that superseded it).

The workspace (ceremony media; the demo uses a folder) holds ``recipients/`` (public keys
brought in), ``manifests/set-<id>.json`` (public share-set manifests; a manifest whose set is
named in a later manifest's ``supersedes`` is superseded; a practice ceremony writes and uses
only ``manifests/PRACTICE-set-<id>.json``, a real ceremony never uses those: see
:func:`is_practice_manifest`), ``card-shares/`` (sealed share
files of cards without data objects), ``ceremonies/<id>/`` (journal,
JSON Lines, transcript) and, with the default exporter, ``exports/<folder>/``. Every
access to it goes through :mod:`core.ceremony.workspace` (directory descriptors, no link
followed: the workspace is a medium someone else prepared). Manifests are signed by the
MasterKey signing key and refused when their signature does not verify; the closed
journal and the transcript are signed too (``c.journal_signature``; unsigned when no key
was held).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets as _secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core import strictjson
from core.carriers.errors import CarrierError
from core.ceremony import records
from core.ceremony.model import Act, RoleKind, Script, Step, StepKind
from core.ceremony.script import load_script
from core.ceremony.workspace import Workspace
from core.journal import Event, Journal
from core.keyholder.errors import KeyholderDied
from core.safeio import MAX_KEY_FILE, SafeIOError
from core.words import to_words

__all__ = [
    "QR_CARRIERS",
    "CardAccess",
    "CarrierKeyholder",
    "CarrierRefusedError",
    "Ceremony",
    "CeremonyState",
    "ClientKeyholder",
    "EngineError",
    "ExportedFile",
    "Exporter",
    "FolderExporter",
    "Keyholder",
    "PreflightPort",
    "QRCamera",
    "RecipientSource",
    "ShareRefusedError",
    "StepFailedError",
    "StepRun",
    "StepState",
    "WorkspaceRecipients",
    "core_preflight",
    "is_practice_manifest",
]


class EngineError(Exception):
    """An intent is not allowed now (wrong step, missing acknowledgment, ...)."""


class StepFailedError(Exception):
    """Raised inside an action to fail the current step with a message for the room."""


class ShareRefusedError(Exception):
    """A share was refused (wrong set, superseded set, duplicate, bad checksum...).

    Keyholder adapters raise it (or any exception with a ``set_id`` attribute) so the engine
    can name a superseded set.
    """

    def __init__(self, message: str, *, set_id: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.set_id = set_id
        self.code = code


class CarrierRefusedError(ShareRefusedError):
    """A share carrier failed (wrong PIN, card removed, wrong card, unreadable QR...).

    The step stays ACTIVE and everything collected or handed out so far is kept: fix the
    cause (PIN, card, image) and try again. ``code`` is the carrier error code
    (``card-pin-incorrect``, ``card-wrong-card``, ``card-removed``, ``qr-not-found``, ...;
    see :mod:`core.carriers.errors`), ``carrier`` the carrier or display that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        carrier: str,
        code: str | None = None,
        set_id: str | None = None,
    ) -> None:
        super().__init__(message, set_id=set_id, code=code)
        self.carrier = carrier


#: Collection carriers a script allows with the umbrella name ``qr``.
QR_CARRIERS = ("qr-file", "qr-camera", "scanner")
#: PKCS#11 module used when neither the step nor the caller names one.
DEFAULT_CARD_MODULE = "opensc"


@dataclass(frozen=True)
class CardAccess:
    """How to reach one custodian's smart card (public facts plus a view of the PIN).

    Attributes:
        module: PKCS#11 module name (``opensc``, ``ykcs11``, ``softhsm2`` for the demo),
            one the keyholder was started with; None: the step's ``card_module`` (default
            ``opensc``).
        serial: the card's serial; None: the only (expected) card in the readers.
        pin: a memoryview over the caller's own locked PIN buffer (sent to the keyholder
            as a protocol ``Secret``, never copied by the engine); None: the reader's PIN pad.
        sealed: the card's sealed share file (public JSON) for cards that hold no data
            object; None: the engine looks in ``workspace/card-shares/`` itself.
        expected_serials: filled by the engine at collection (the manifest's card serials).
        set_id: filled by the engine at collection (the set being collected).
    """

    module: str | None = None
    serial: str | None = None
    pin: memoryview | None = field(default=None, repr=False, compare=False)
    sealed: bytes | None = field(default=None, repr=False)
    expected_serials: tuple[str, ...] = ()
    set_id: str | None = None


@dataclass(frozen=True)
class QRCamera:
    """Scan a share QR with a camera (``qr-camera``).

    Attributes:
        device: V4L2 device.
        timeout_s: give up after this many seconds.
        replay: image files replayed as camera frames instead of the device (tests,
            and a recorded scan); the same decode pipeline as the camera.
    """

    device: str = "/dev/video0"
    timeout_s: int = 30
    replay: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- ports


@runtime_checkable
class Keyholder(Protocol):
    """What a ceremony needs from the keyholder. Every return value is PUBLIC.

    Dicts returned carry at least: ``fingerprint`` (hex) and ``kcv`` for key facts;
    ``set_id``, ``kcv``/``fingerprint``, ``policy`` and per-share public commitments for a
    manifest; ``complete`` (bool), ``index`` and ``message`` for share progress.
    """

    def generate_master(self) -> dict[str, Any]:
        """Create the MasterKey; returns its public fingerprint facts."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """Public fingerprint facts of the held key."""
        ...

    def genesis_split(self, policy: Mapping[str, Any], *, supersedes: str | None) -> dict[str, Any]:
        """Split the held key under ``policy``; returns the public manifest."""
        ...

    def show_share(self, member: int, display: str) -> dict[str, Any]:
        """Show share ``member`` (0-based, policy order) to its custodian on ``display``."""
        ...

    def begin_recovery(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Start collecting shares of the manifest's set."""
        ...

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Feed one share (opaque payload from a carrier); returns public progress."""
        ...

    def check_share(
        self, manifest: Mapping[str, Any], carrier: str, payload: Any
    ) -> dict[str, Any]:
        """Check one share against the manifest commitments without recovery."""
        ...

    def recover(self) -> dict[str, Any]:
        """Combine the collected shares into the MasterKey; returns fingerprint facts."""
        ...

    def seal(self, recipient: Any, header: Mapping[str, Any]) -> bytes:
        """Seal the held key to ``recipient`` (opaque handle); returns envelope bytes."""
        ...

    def wipe(self) -> None:
        """Wipe every secret held."""
        ...


@runtime_checkable
class CarrierKeyholder(Protocol):
    """Optional extension of :class:`Keyholder` for smart cards and the wedge scanner.

    Collection through every carrier goes through :meth:`Keyholder.add_share` (``carrier``
    ``card`` with a :class:`CardAccess`, ``qr-file`` with a path, ``qr-camera`` with a
    :class:`QRCamera`, ``scanner`` with ``[(key view, t_us), ...]``); showing a QR goes
    through :meth:`Keyholder.show_share` (``display="qr"``). A keyholder without these
    methods cannot write cards or take single scanner keys (the engine says so).

    Optional methods, looked up by name (not part of this protocol, so existing ports
    still match it): ``rescan_cards(module) -> list[dict]`` (re-initialise the PKCS#11
    module, for :meth:`Ceremony.rescan_cards`) and ``scanner_check_key(manifest, key,
    t_us) -> dict`` (one scanner key press in check-shares; a completed burst returns the
    verdict of :meth:`Keyholder.check_share` with ``status`` ``complete``).
    """

    def write_card(
        self,
        member: int,
        card: CardAccess,
        *,
        commitment: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        bits: int,
        store_on_card: bool,
    ) -> dict[str, Any]:
        """Provision a key on the card, write share ``member`` to it, read it back, check.

        Returns ``{"card": public facts (serial, key_fingerprint, key_id, oaep_hash, bits,
        stored_on_card, verified, notes), "sealed": bytes (the public sealed share file)}``.
        """
        ...

    def list_cards(self, module: str) -> list[dict[str, Any]]:
        """The cards in the readers (public token facts)."""
        ...

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """One wedge-scanner key press; returns ``status``/``count`` and, once a burst
        completes, the same public progress as :meth:`Keyholder.add_share`."""
        ...


@dataclass(frozen=True)
class ExportedFile:
    """A public file written to media."""

    name: str
    path: str
    sha256: str
    size: int


class Exporter(Protocol):
    """Writes public files into a folder on the export media."""

    def write(
        self, folder: str, files: Mapping[str, bytes], *, ceremony_id: str
    ) -> list[ExportedFile]:
        """Write every file (never overwriting); returns what was written."""
        ...


class RecipientSource(Protocol):
    """Loads a script recipient's public key from the workspace."""

    def load(self, recipient_id: str) -> tuple[dict[str, Any], Any]:
        """Return (public facts with ``fingerprint`` hex, opaque handle for sealing)."""
        ...


PreflightPort = Callable[[], dict[str, Any]]


# ----------------------------------------------------------------------------- state


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
    performed: bool = False
    confirmed_by: str = ""
    shown: list[str] = field(default_factory=list)

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


_NO_ACTION = (StepKind.INSTRUCTION, StepKind.SUMMARY)
_CONFIRMED_KINDS = (StepKind.VERIFY_FINGERPRINT, StepKind.VERIFY_KCV)


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")


def _utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_practice_manifest(manifest: Mapping[str, Any]) -> bool:
    """True for a PRACTICE share-set manifest: ``"practice": true`` in it, or its file in
    ``manifests/`` (``_file``, as the engine lists them) named ``PRACTICE-...``.

    A practice ceremony uses only these; a real ceremony never does.
    """
    if manifest.get("practice") is True:
        return True
    return str(manifest.get("_file", "")).upper().startswith("PRACTICE-")


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


class Ceremony:
    """A running ceremony. See the module docstring for the API."""

    def __init__(
        self,
        script: Script,
        workspace: Path,
        keyholder: Keyholder,
        journal: Journal,
        *,
        exporter: Exporter,
        recipients: RecipientSource,
        preflight: PreflightPort | None,
    ) -> None:
        self.script = script
        self.workspace = workspace
        self.ws = Workspace(workspace)
        self.keyholder = keyholder
        self.journal = journal
        self.exporter = exporter
        self.recipients = recipients
        self.preflight = preflight
        self.ceremony_id = journal.ceremony_id
        self.practice = script.practice
        self.state = CeremonyState.RUNNING
        self.steps: list[StepRun] = [
            StepRun(act=a, step=s, required_roles=s.acknowledge) for a, s in script.steps()
        ]
        self.manifest: dict[str, Any] | None = None
        self.refused_manifests: dict[str, str] = {}
        self.collected_set: str | None = None
        self.key_facts: dict[str, Any] | None = None
        #: False while a rebuilt key is NOT VERIFIED against any manifest (no fingerprint
        #: to compare with): nothing is sealed or split until a witness confirmed its KCV
        #: in a verify-kcv step. None while no key is held.
        self.key_verified: bool | None = None
        #: The MasterKey fingerprint that signs this ceremony's records (set once a key
        #: is held and verified, and the keyholder can sign); "" while none.
        self.signing_fp = ""
        #: Signed list of the sealed envelopes (``seal-manifest.json``), after the seal step.
        self.seal_manifest: bytes | None = None
        #: The journal's final-hash signature block once closed (None: unsigned), and why
        #: signing failed if it did.
        self.journal_signature: dict[str, Any] | None = None
        self.signature_error = ""
        self.confirmed_recipients: dict[str, dict[str, Any]] = {}
        self.envelopes: dict[str, tuple[str, bytes]] = {}  # recipient -> (file name, bytes)
        self.written: dict[str, list[ExportedFile]] = {}  # folder -> files
        # sealed share files of cards that hold no data object: name -> public bytes
        self.card_files: dict[str, bytes] = {}
        self._manifest_path: Path | None = None
        self.final_hash = ""
        self.final_words: list[str] = []
        self.exports: dict[str, Path] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._index = 0

    # ------------------------------------------------------------------ creation

    @classmethod
    def load(
        cls,
        script_path: str | os.PathLike[str],
        workspace: str | os.PathLike[str],
        keyholder: Keyholder,
        *,
        exporter: Exporter | None = None,
        recipients: RecipientSource | None = None,
        preflight: PreflightPort | None = None,
        clock: Callable[[], str] | None = None,
        ceremony_id: str | None = None,
    ) -> Ceremony:
        """Validate a script and start a ceremony with a new journal.

        Args:
            script_path: the TOML script.
            workspace: the ceremony media folder.
            keyholder: the keyholder port (:class:`ClientKeyholder` in production).
            exporter: where exports go (default: :class:`FolderExporter` on
                ``workspace/exports``).
            recipients: recipient loader (default: :class:`WorkspaceRecipients`).
            preflight: preflight port (default: :func:`core_preflight` in demo mode).
            clock: UTC timestamp text source (tests).
            ceremony_id: override the generated id (tests).

        Raises:
            ScriptError: the script is invalid (every problem listed); nothing is created.
            EngineError: the keyholder's practice mode does not match the script's.
        """
        script = load_script(script_path)
        kh_practice = getattr(keyholder, "practice", None)
        if kh_practice is not None and bool(kh_practice) != script.practice:
            raise EngineError(
                "a PRACTICE script needs a keyholder started in practice mode"
                if script.practice
                else "this keyholder was started in practice mode: restart it for a real ceremony"
            )
        ws = Path(workspace)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = script.name
        if script.practice:  # PRACTICE-unseal-and-seal-..., not PRACTICE-practice-unseal-...
            base = re.sub(r"^practice-", "", base, flags=re.IGNORECASE) or base
        cid = ceremony_id or f"{base}-{stamp}-{_secrets.token_hex(2)}"
        if script.practice and not cid.startswith("PRACTICE-"):
            cid = f"PRACTICE-{cid}"
        if not _SAFE_ID.match(cid):
            raise EngineError(f"ceremony id {cid!r} is not a safe folder name")
        ws.mkdir(parents=True, exist_ok=True)
        # the ceremony's own folder is new (no link on the way to it, nothing planted in it)
        folder = Workspace(ws).folder(f"ceremonies/{cid}", create=True, exclusive=True)
        journal = Journal.create(
            folder / "journal.db",
            cid,
            details={
                "script_name": script.name,
                "script_version": script.version,
                "script_sha256": script.sha256,
                "purpose": script.purpose,
                "practice": script.practice,
                "cluster_id": script.cluster_id,
                "region_id": script.region_id,
            },
            clock=clock,
        )
        c = cls(
            script,
            ws,
            keyholder,
            journal,
            exporter=exporter or FolderExporter(ws / "exports"),
            recipients=recipients or WorkspaceRecipients(ws, script),
            preflight=preflight if preflight is not None else core_preflight,
        )
        c._record(
            "ceremony.started",
            {
                "roles": {
                    r.id: {
                        "kind": r.kind.value,
                        "name": r.name,
                        **({"card_serial": r.card_serial} if r.card_serial else {}),
                        **({"key_fingerprint": r.key_fingerprint} if r.key_fingerprint else {}),
                    }
                    for r in script.roles.values()
                },
                "policy": script.policy.as_public() if script.policy else None,
                "steps": len(c.steps),
            },
        )
        c._activate()
        return c

    # ------------------------------------------------------------------ state

    @property
    def current_step(self) -> StepRun | None:
        """The step to show, or None when the ceremony is over."""
        if self.state is not CeremonyState.RUNNING or self._index >= len(self.steps):
            return None
        return self.steps[self._index]

    @property
    def progress(self) -> tuple[int, int]:
        """(steps done or skipped, total steps)."""
        done = sum(1 for s in self.steps if s.state in (StepState.DONE, StepState.SKIPPED))
        return done, len(self.steps)

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` after every journal event (already durable)."""
        self._listeners.append(listener)

    def _record(
        self,
        kind: str,
        details: Mapping[str, Any] | None = None,
        *,
        role: str = "",
        run: StepRun | None = None,
    ) -> Event:
        det = dict(details or {})
        if run is not None:
            det.setdefault("step_title", run.title)
            det.setdefault("act_title", run.act_title)
            det.setdefault("step_kind", run.kind.value)
        if self.practice:
            det["practice"] = True
        ev = self.journal.append(
            kind,
            det,
            act=run.act_id if run else "",
            step=run.step_id if run else "",
            role=role,
        )
        for fn in list(self._listeners):
            fn(ev)
        return ev

    def _require_running(self) -> StepRun:
        run = self.current_step
        if run is None:
            raise EngineError(f"the ceremony is {self.state.value}; nothing more can be done")
        return run

    def _activate(self) -> None:
        run = self.current_step
        if run is None:
            return
        run.state = StepState.ACTIVE
        self._record(
            "step.started",
            {"required_roles": list(run.required_roles), "instruction": run.instruction},
            run=run,
        )
        if run.kind in _NO_ACTION:
            run.performed = True

    def _role(self, role: str) -> None:
        if role not in self.script.roles:
            raise EngineError(f"{role!r} is not a role of this ceremony")

    # ------------------------------------------------------------------ intents

    def acknowledge(self, role: str) -> None:
        """A required role acknowledges the current step (recorded once).

        Raises:
            EngineError: the role is not required here, or a custodian acknowledges a share
                not yet shown to them.
        """
        run = self._require_running()
        self._role(role)
        if role not in run.required_roles:
            raise EngineError(
                f"{role} does not acknowledge this step (it needs: {', '.join(run.required_roles)})"
            )
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it (or record an exception and abort) first")
        if (
            run.kind is StepKind.DISTRIBUTE_SHARES
            and self.script.roles[role].kind is RoleKind.CUSTODIAN
            and role not in run.shown
        ):
            raise EngineError(f"{role} has not been shown their share yet")
        if role in run.acks:
            return
        run.acks.append(role)
        self._record("step.ack", {"name": self.script.roles[role].name}, role=role, run=run)

    def record_exception(self, text: str, who: str) -> None:
        """Write an exception (free text) on the current step, or the ceremony if over."""
        if not text.strip() or not who.strip():
            raise EngineError("an exception needs a text and who reports it")
        run = self.current_step
        entry = {"text": text.strip(), "who": who.strip(), "when": _utc()}
        if run is not None:
            run.exceptions.append(entry)
        role = who if who in self.script.roles else ""
        if self.journal.closed:
            raise EngineError("the journal is closed; write the exception on the paper log")
        self._record("exception", entry, role=role, run=run)

    def perform(self, **inputs: Any) -> dict[str, Any]:
        """Run the current step's action; returns its public results.

        A failure marks the step FAILED (recorded with the reason) and raises
        :class:`StepFailedError`; earlier work is kept; :meth:`retry` re-opens the step.
        """
        run = self._require_running()
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it first")
        if run.kind in _NO_ACTION:
            return {}
        action = getattr(self, "_do_" + run.kind.value.replace("-", "_"))
        try:
            result: dict[str, Any] = action(run, **inputs)
        except (EngineError, TypeError):
            raise
        except Exception as exc:  # anything from the keyholder, media or recipient files
            self._fail(run, exc)
            raise StepFailedError(run.error) from None
        return result

    def _fail(self, run: StepRun, exc: BaseException) -> None:
        msg = str(exc) or type(exc).__name__
        if isinstance(exc, NotImplementedError):
            msg = f"not available yet: {msg}"
        run.state = StepState.FAILED
        run.error = msg
        self._record("step.failed", {"error": msg, "error_type": type(exc).__name__}, run=run)

    def _result(
        self, run: StepRun, results: Mapping[str, Any], *, performed: bool = True
    ) -> dict[str, Any]:
        run.results.update(results)
        if performed:
            run.performed = True
        self._record("step.result", dict(results), run=run)
        return dict(results)

    def retry(self) -> None:
        """Re-open a FAILED step (collected shares, envelopes and exports are kept)."""
        run = self._require_running()
        if run.state is not StepState.FAILED:
            raise EngineError("only a failed step can be retried")
        run.state = StepState.ACTIVE
        self._record("step.retry", {"previous_error": run.error}, run=run)
        run.error = ""

    def complete_step(self) -> None:
        """Mark the current step DONE (performed and acknowledged) and move on.

        Raises:
            EngineError: the action was not performed, a confirmation or acknowledgment is
                missing (the message says which).
        """
        run = self._require_running()
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it or abort")
        if not run.performed:
            raise EngineError(f"{run.title}: the step's action has not been done yet")
        if run.kind in _CONFIRMED_KINDS and not run.confirmed_by:
            raise EngineError(f"{run.title}: the witness has not confirmed yet")
        if run.kind is StepKind.DISTRIBUTE_SHARES:
            missing = [r for r in self._custodians_for_split() if r not in run.shown]
            if missing:
                raise EngineError(f"shares not shown yet to: {', '.join(missing)}")
        if run.missing_acks:
            raise EngineError(f"waiting for acknowledgment by: {', '.join(run.missing_acks)}")
        run.state = StepState.DONE
        self._record("step.done", {"acks": list(run.acks)}, run=run)
        self._index += 1
        if self._index >= len(self.steps):
            self._finish(CeremonyState.COMPLETED, "ceremony.completed", {})
        else:
            self._activate()

    def skip_act(self, reason: str, who: str) -> None:
        """Skip the rest of the current act if the script marks it optional."""
        run = self._require_running()
        if not run.act.optional:
            raise EngineError(f"{run.act_title} is not optional")
        if run.state is StepState.DONE:
            raise EngineError("the step is done")
        if not reason.strip():
            raise EngineError("say why the act is skipped")
        act = run.act
        while (cur := self.current_step) is not None and cur.act is act:
            cur.state = StepState.SKIPPED
            self._record("step.done", {"skipped": True, "reason": reason, "who": who}, run=cur)
            self._index += 1
        # a skipped act may have started recovery or held a key: wipe to be safe
        self._wipe_quietly("skipped optional act")
        if self._index >= len(self.steps):
            self._finish(CeremonyState.COMPLETED, "ceremony.completed", {})
        else:
            self._activate()

    def abort(self, reason: str, who: str) -> None:
        """Stop the ceremony: wipe the keyholder, record who and why, close the journal."""
        if self.state is not CeremonyState.RUNNING:
            raise EngineError(f"the ceremony is already {self.state.value}")
        if not reason.strip():
            raise EngineError("say why the ceremony is aborted")
        self._wipe_quietly("abort")
        run = self.current_step
        self._finish(
            CeremonyState.ABORTED,
            "ceremony.aborted",
            {
                "reason": reason.strip(),
                "who": who,
                "at_step": f"{run.act_id}.{run.step_id}" if run else "",
            },
            role=who if who in self.script.roles else "",
        )

    def _wipe_quietly(self, why: str) -> None:
        try:
            records.wipe(self.keyholder, keep_signing=bool(self.signing_fp))
            self._record("keyholder.wiped", {"why": why})
        except Exception as exc:
            self._record("keyholder.wiped", {"why": why, "error": str(exc) or type(exc).__name__})

    def _finish(
        self, state: CeremonyState, kind: str, details: dict[str, Any], role: str = ""
    ) -> None:
        self._record(kind, details, role=role)
        self.state = state
        closing = {"state": state.value}
        if self.practice:
            closing["practice"] = "PRACTICE"
        closed = records.close_and_sign(
            self.journal,
            self.keyholder,
            closing=closing,
            signed_by=self.signing_fp or None,
            prefix="PRACTICE-" if self.practice else "",
            record=lambda kind, det: self._record(kind, det),
        )
        self.final_hash = closed.final_hash
        self.final_words = closed.final_words
        self.exports.update(closed.exports)
        self.journal_signature = closed.signature
        self.signature_error = closed.signature_error
        prefix = "PRACTICE-" if self.practice else ""
        # journal/transcript copies requested by export steps (written after closing: their
        # hashes cannot be in the journal they describe; the final hash covers the content)
        for run in self.steps:
            if run.kind is StepKind.EXPORT and run.state is StepState.DONE:
                wanted = [
                    ("journal", "journal.jsonl", self.exports["jsonl"]),
                    ("transcript", "transcript.md", self.exports["transcript"]),
                ]
                if "transcript_sig" in self.exports:
                    wanted.append(
                        ("transcript", "transcript.md.sig", self.exports["transcript_sig"])
                    )
                files = {
                    prefix + name: path.read_bytes()
                    for key, name, path in wanted
                    if key in run.step.params.get("files", [])
                }
                if files:
                    # beside the export it belongs to (which may carry the ceremony id)
                    base = str(run.results.get("folder") or run.step.params.get("folder", "export"))
                    self._write_export(base + "-journal", files)
        self.journal.shutdown()

    # ------------------------------------------------------------------ per-kind actions

    def _do_checklist(self, run: StepRun, checked: Sequence[int] = ()) -> dict[str, Any]:
        items = list(run.step.params.get("items", []))
        missing = [items[i] for i in range(len(items)) if i not in set(checked)]
        if missing:
            raise EngineError("not ticked yet: " + "; ".join(missing))
        return self._result(run, {"checked": items})

    def _attendance_roles(self, run: StepRun) -> list[str]:
        names = run.step.params.get("roles") or list(self.script.roles)
        out: list[str] = []
        for n in names:
            for r in [c.id for c in self.script.custodians()] if n == "custodians" else [n]:
                if r not in out:
                    out.append(r)
        return out

    def _do_attendance(self, run: StepRun, present: Sequence[str] = ()) -> dict[str, Any]:
        for r in present:
            self._role(r)
        required = self._attendance_roles(run)
        missing = [r for r in required if r not in present]
        if missing:
            names = ", ".join(f"{self.script.roles[r].name} ({r})" for r in missing)
            raise StepFailedError(f"not present: {names}; the ceremony cannot go on without them")
        return self._result(
            run,
            {"present": {r: self.script.roles[r].name for r in present}, "required": required},
        )

    def _do_preflight(self, run: StepRun) -> dict[str, Any]:
        if self.preflight is None:
            raise StepFailedError("no preflight check is configured")
        res = self.preflight()
        results = self._result(run, {"preflight": res}, performed=bool(res.get("ok")))
        if not res.get("ok"):
            raise StepFailedError(
                "the workstation failed its preflight checks: " + str(res.get("failed", ""))
            )
        return results

    def _do_verify_fingerprint(self, run: StepRun) -> dict[str, Any]:
        subject = str(run.step.params["subject"])
        target, _, ref = subject.partition(":")
        if subject == "kcv":
            facts = self.keyholder.fingerprint()
            fp = str(facts["fingerprint"])
            expected = self._expected_fingerprint()
        elif target == "recipient":
            facts, _handle = self.recipients.load(ref)
            fp = str(facts["fingerprint"])
            expected = self.script.recipients[ref].fingerprint
        else:
            role = self.script.roles[ref]
            if not role.key_fingerprint:
                raise StepFailedError(f"{role.name} has no key fingerprint in the script")
            fp = role.key_fingerprint.replace(":", "").lower()
            facts = {"fingerprint": fp}
            expected = None
        if expected and expected.replace(":", "").lower() != fp.lower():
            raise StepFailedError(
                f"{subject}: the fingerprint {fp[:16]}... differs from the one in the script"
            )
        run.display = {"subject": subject, "fingerprint": fp, "words": _fp_words(fp)}
        return self._result(run, {"subject": subject, **_public_facts(facts)})

    def _expected_fingerprint(self) -> str | None:
        if self.manifest is None:
            return None
        fp = self.manifest.get("fingerprint")
        return str(fp) if fp else None

    def confirm(
        self,
        witness: str,
        *,
        matches: bool = True,
        method: str = "words",
        out_of_band: str | None = None,
    ) -> None:
        """The named witness compares the fingerprint read aloud with their copy.

        Args:
            witness: the role the script names as ``witness`` for this step.
            matches: False when the witness reports a difference: the step FAILS (do not go
                on with a key nobody can vouch for).
            method: how it was compared (``words`` or ``hex``), for the record.
            out_of_band: optionally the witness's copy as typed (hex, any spacing, or the
                words of the first 8 bytes); the engine compares it too.
        """
        run = self._require_running()
        if run.kind not in _CONFIRMED_KINDS:
            raise EngineError("this step has nothing to confirm")
        self._role(witness)
        if witness != run.step.params.get("witness"):
            raise EngineError(
                f"the script names {run.step.params.get('witness')} to confirm, not {witness}"
            )
        if not run.performed:
            raise EngineError("show the fingerprint first")
        shown = str(run.display.get("fingerprint", ""))
        if matches and out_of_band is not None and not _same_fingerprint(shown, out_of_band):
            matches = False
        if not matches:
            self._fail(run, StepFailedError(f"{witness} reports the fingerprint does NOT match"))
            return
        if run.kind is StepKind.VERIFY_KCV and self.key_verified is False:
            # the keyholder compares what the witness confirmed (their typed copy, or the
            # words shown that they compared) with the key it holds, and only then lets it
            # be sealed or split
            copy = (
                out_of_band if out_of_band is not None else " ".join(run.display.get("words") or [])
            )
            confirm_kcv = getattr(self.keyholder, "confirm_kcv", None)
            try:
                if callable(confirm_kcv):
                    confirm_kcv(self.script.roles[witness].name, copy)
            except Exception as exc:
                self._fail(run, exc)
                return
            self.key_verified = True
            self._signing_key_known()
        run.confirmed_by = witness
        details = {"confirmed": True, "method": method, "fingerprint": shown}
        self._record("step.input", details, role=witness, run=run)
        subject = str(run.step.params.get("subject", ""))
        if subject.startswith("recipient:"):
            self.confirmed_recipients[subject.split(":", 1)[1]] = {
                "witness": self.script.roles[witness].name,
                "witness_role": witness,
                "method": method,
                "fingerprint": shown,
            }

    def _do_generate(self, run: StepRun) -> dict[str, Any]:
        if self.key_facts is not None:
            return dict(run.results)
        facts = self.keyholder.generate_master()
        self.key_facts = _public_facts(facts)
        self.key_verified = True
        self._signing_key_known()
        return self._result(run, self.key_facts)

    def _do_verify_kcv(self, run: StepRun) -> dict[str, Any]:
        facts = _public_facts(self.keyholder.fingerprint())
        expected = self._expected_fingerprint()
        if expected and expected.lower() != str(facts.get("fingerprint", "")).lower():
            raise StepFailedError(
                "the key's fingerprint differs from the manifest's: this is not the key of set "
                f"{self.manifest.get('set_id') if self.manifest else '?'}"
            )
        run.display = {
            "fingerprint": facts.get("fingerprint", ""),
            "kcv": facts.get("kcv", ""),
            "words": facts.get("kcv_words") or _fp_words(str(facts.get("fingerprint", ""))),
            "expected": expected or "",
            # a rebuilt key no manifest vouches for: the witness's comparison is the check
            "not_verified": self.key_verified is False,
        }
        return self._result(run, {**facts, "matches_manifest": bool(expected)})

    def _custodians_for_split(self) -> list[str]:
        return list(self.script.policy.custodians) if self.script.policy else []

    def _do_distribute_shares(self, run: StepRun) -> dict[str, Any]:
        if run.results.get("set_id"):
            return dict(run.results)  # retry: the set exists, keep it
        assert self.script.policy is not None  # validated
        self._require_verified_key("split the key into a new share set")
        supersedes = self.collected_set if run.step.params.get("supersedes_collected") else None
        policy = self.script.policy.as_public()
        manifest = dict(
            self.keyholder.genesis_split(
                {
                    **policy,
                    "custodian_names": {c: self.script.roles[c].name for c in policy["custodians"]},
                },
                supersedes=supersedes,
            )
        )
        if supersedes and str(manifest.get("supersedes")) != str(supersedes):
            manifest["supersedes"] = int(supersedes) if str(supersedes).isdigit() else supersedes
        manifest.setdefault("ceremony_id", self.ceremony_id)
        manifest.setdefault("cluster_id", self.script.cluster_id)
        manifest.setdefault("region_id", self.script.region_id)
        if self.practice:
            manifest["practice"] = True
        carriers = self.share_carriers(run)
        for h in manifest.get("holders") or []:
            if isinstance(h, dict) and h.get("custodian") in carriers:
                h["carrier"] = carriers[h["custodian"]]
        set_id = str(manifest["set_id"])
        manifest = records.signed_manifest(self.keyholder, manifest)  # genesis-manifest
        data = _manifest_bytes(manifest)
        path = (
            self.workspace
            / "manifests"
            / f"{'PRACTICE-' if self.practice else ''}set-{set_id}.json"
        )
        self.ws.write_new("manifests", path.name, data)
        self.manifest = manifest
        self._manifest_path = path
        run.display = {"set_id": set_id, "carriers": carriers, "cards": {}}
        return self._result(
            run,
            {
                "set_id": set_id,
                "manifest_file": str(path.relative_to(self.workspace)),
                "manifest_sha256": _sha256(data),
                "manifest": manifest,
                "supersedes": supersedes,
                "fingerprint": manifest.get("fingerprint", ""),
                "kcv": _grouped_kcv(str(manifest.get("kcv", ""))),
            },
        )

    def share_carriers(self, run: StepRun | None = None) -> dict[str, str]:
        """How each custodian of the split receives their share: ``screen`` (words on the
        custodian terminal, to be typed or written on paper), ``qr`` (QR on that terminal)
        or ``card`` (written to their smart card). From the step's ``carriers`` table;
        custodians not listed get ``screen``."""
        run = run or self.current_step
        declared: Mapping[str, str] = {}
        if run is not None and run.kind is StepKind.DISTRIBUTE_SHARES:
            declared = run.step.params.get("carriers") or {}
        return {c: str(declared.get(c, "screen")) for c in self._custodians_for_split()}

    def show_share(
        self,
        custodian: str,
        display: str | None = None,
        *,
        card: CardAccess | None = None,
        override_reason: str | None = None,
    ) -> dict[str, Any]:
        """Hand ``custodian``'s share over on its carrier (distribute-shares).

        Args:
            custodian: the custodian role.
            display: ``screen``, ``qr`` or ``card`` (one of the step's ``display``); None:
                the carrier the script declares for this custodian (``screen`` when none).
                When the step's ``carriers`` table names this custodian, another carrier
                needs ``override_reason`` (recorded as an exception).
            card: for ``card``: module, serial and PIN view (:class:`CardAccess`). The
                card key is generated on the card, the share is written, read back and
                checked against the manifest commitment before this returns; the card
                serial and key fingerprint go into the manifest and the journal.
            override_reason: why the declared carrier is not used.

        Raises:
            EngineError: not allowed now (wrong step, unknown custodian, display).
            CarrierRefusedError: the card/QR layer failed (wrong PIN, card removed, wrong
                card...): nothing is lost, the share was not handed out; try again.
            StepFailedError: the keyholder failed otherwise (the step is FAILED).
        """
        run = self._require_running()
        if run.kind is not StepKind.DISTRIBUTE_SHARES or not run.performed:
            raise EngineError("shares are shown only in a distribute-shares step, after the split")
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it first")
        order = self._custodians_for_split()
        if custodian not in order:
            raise EngineError(f"{custodian} is not a custodian of the new share set")
        declared = self.share_carriers(run)[custodian]
        explicit = custodian in (run.step.params.get("carriers") or {})
        display = display or declared
        allowed = run.step.params.get("display") or ["screen"]
        if display not in allowed:
            raise EngineError(
                f"display {display!r} not allowed here (allowed: {', '.join(allowed)})"
            )
        if explicit and display != declared:
            if not (override_reason and override_reason.strip()):
                raise EngineError(
                    f"the script gives {custodian} their share by {declared}, not {display}: "
                    "give a reason to override (it is recorded as an exception)"
                )
            self.record_exception(
                f"{custodian}'s share handed over by {display} instead of {declared}: "
                f"{override_reason.strip()}",
                next(
                    (r.id for r in self.script.roles.values() if r.kind is RoleKind.ADMINISTRATOR),
                    "administrator",
                ),
            )
        if display == "card":
            return self._write_card(run, custodian, order.index(custodian), card)
        try:
            out = _public_facts(self.keyholder.show_share(order.index(custodian), display))
        except Exception as exc:
            if _is_carrier_error(exc):
                raise self._carrier_refused(run, exc, display, shown_to=custodian) from None
            self._fail(run, exc)
            raise StepFailedError(run.error) from None
        if custodian not in run.shown:
            run.shown.append(custodian)
        self._record(
            "step.input",
            {"shown_to": custodian, "display": display, **out},
            role=custodian,
            run=run,
        )
        return out

    def _card_module(self, run: StepRun, card: CardAccess | None) -> str:
        if card is not None and card.module:
            return card.module
        return str(run.step.params.get("card_module") or DEFAULT_CARD_MODULE)

    def _carrier_port(self, what: str) -> CarrierKeyholder:
        kh = self.keyholder
        if not isinstance(kh, CarrierKeyholder):
            raise NotImplementedError(f"this keyholder cannot {what}")
        return kh

    def _write_card(
        self, run: StepRun, custodian: str, member: int, card: CardAccess | None
    ) -> dict[str, Any]:
        role = self.script.roles[custodian]
        card = card or CardAccess()
        serial = card.serial or role.card_serial
        if role.card_serial and serial != role.card_serial:
            raise EngineError(
                f"the script gives {role.name} card {role.card_serial}, not card {serial}: "
                "insert the card named in the script"
            )
        if self.manifest is None:
            raise EngineError("the split has not been done")
        holders = [h for h in self.manifest.get("holders") or [] if isinstance(h, dict)]
        holder = next((h for h in holders if h.get("custodian") == custodian), None)
        others = {
            str(h["card_serial"])
            for h in holders
            if h.get("card_serial") and h.get("custodian") != custodian
        }
        if serial and serial in others:
            raise EngineError(f"card {serial} already holds another custodian's share of this set")
        commitment = None
        if holder is not None:
            commitment = next(
                (
                    c
                    for c in self.manifest.get("commitments") or []
                    if isinstance(c, dict)
                    and c.get("group") == holder.get("group")
                    and c.get("member") == holder.get("member")
                ),
                None,
            )
        access = CardAccess(
            module=self._card_module(run, card), serial=serial, pin=card.pin, sealed=None
        )
        try:
            port = self._carrier_port("write shares to smart cards")
            res = port.write_card(
                member,
                access,
                commitment=commitment,
                meta={"set": _int_or_str(self.manifest["set_id"]), "custodian": custodian},
                bits=int(run.step.params.get("card_key_bits", 3072)),
                store_on_card=bool(run.step.params.get("card_data_object", True)),
            )
        except Exception as exc:
            if _is_carrier_error(exc):
                raise self._carrier_refused(run, exc, "card", shown_to=custodian) from None
            self._fail(run, exc)
            raise StepFailedError(run.error) from None
        facts = _public_facts(dict(res.get("card") or {}))
        sealed = res.get("sealed")
        got_serial = str(facts.get("serial", serial or ""))
        entry: dict[str, Any] = {
            "carrier": "card",
            "card_serial": got_serial,
            "key_fingerprint": facts.get("key_fingerprint", ""),
            "card_key_id": facts.get("key_id", ""),
            "card_key_bits": facts.get("bits"),
            "oaep_hash": facts.get("oaep_hash", ""),
            "stored_on_card": bool(facts.get("stored_on_card")),
            "verified": bool(facts.get("verified")),
        }
        if isinstance(sealed, bytes | bytearray) and not entry["stored_on_card"]:
            prefix = "PRACTICE-" if self.practice else ""
            name = f"{prefix}card-share-set-{self.manifest['set_id']}-{got_serial}.sealed.json"
            data = bytes(sealed)
            self.ws.replace("card-shares", name, data)
            self.card_files[name] = data
            entry["sealed_file"] = name
            entry["sealed_sha256"] = _sha256(data)
        if holder is not None:
            holder.update(entry)
        manifest_sha = self._save_manifest()
        if custodian not in run.shown:
            run.shown.append(custodian)
        run.display.setdefault("cards", {})[custodian] = dict(entry)
        out = {
            **entry,
            "key_fingerprint_words": _fp_words(str(entry["key_fingerprint"])),
            "notes": facts.get("notes", []),
            "manifest_sha256": manifest_sha,
        }
        self._record(
            "step.input",
            {"shown_to": custodian, "display": "card", **out},
            role=custodian,
            run=run,
        )
        return out

    def _save_manifest(self) -> str:
        """Rewrite this ceremony's manifest after card facts were added; returns its sha."""
        assert self.manifest is not None
        # the card facts changed the manifest: sign it again (the key is still held)
        self.manifest = records.signed_manifest(self.keyholder, self.manifest)
        data = _manifest_bytes(self.manifest)
        if self._manifest_path is not None:
            self.ws.replace("manifests", self._manifest_path.name, data)
        for run in self.steps:
            if run.kind is StepKind.DISTRIBUTE_SHARES and run.results.get("set_id") == str(
                self.manifest["set_id"]
            ):
                run.results["manifest"] = self.manifest
                run.results["manifest_sha256"] = _sha256(data)
        return _sha256(data)

    def _carrier_refused(
        self, run: StepRun, exc: BaseException, carrier: str, *, shown_to: str | None = None
    ) -> CarrierRefusedError:
        """Record a carrier failure (the step stays active) and build the error to raise."""
        reason = str(exc) or type(exc).__name__
        code = getattr(exc, "code", None)
        code = str(code) if code else None
        set_id = getattr(exc, "set_id", None)
        details: dict[str, Any] = {
            "accepted": False,
            "carrier": carrier,
            "reason": reason,
            "code": code or "",
        }
        if shown_to is not None:
            details = {"shown_to": shown_to, "display": carrier, "ok": False, **details}
            del details["accepted"]
        self._record("step.input", details, role=shown_to or "", run=run)
        return CarrierRefusedError(
            reason,
            carrier=carrier,
            code=code,
            set_id=str(set_id) if set_id is not None else None,
        )

    def list_cards(self, module: str | None = None) -> list[dict[str, Any]]:
        """The cards in the readers (public facts: serial, label, PIN state, PIN pad).

        ``module``: as in :class:`CardAccess` (default: the current step's ``card_module``).

        Raises:
            CarrierRefusedError: no reader, module missing...
        """
        run = self._require_running()
        try:
            port = self._carrier_port("list smart cards")
            return [
                _public_facts(t)
                for t in port.list_cards(self._card_module(run, CardAccess(module=module)))
            ]
        except NotImplementedError as exc:
            raise EngineError(str(exc)) from None
        except Exception as exc:
            if _is_carrier_error(exc):
                raise CarrierRefusedError(
                    str(exc), carrier="card", code=getattr(exc, "code", None)
                ) from None
            raise

    def rescan_cards(self, module: str | None = None) -> list[dict[str, Any]]:
        """Make the keyholder's PKCS#11 module look for cards again, then list them.

        SoftHSM2 (the demo's cards) and some modules only see the tokens present when the
        module was initialised: the keyholder finalizes and re-initialises it (refused while
        a card operation is running). Readers with pcscd report new cards without this.
        ``module``: as in :class:`CardAccess`. Optional port method: a keyholder without
        ``rescan_cards(module)`` raises :class:`EngineError`.

        Raises:
            CarrierRefusedError: a card operation is running, module missing...
        """
        run = self._require_running()
        rescan = getattr(self.keyholder, "rescan_cards", None)
        if not callable(rescan):
            raise EngineError("this keyholder cannot rescan the card readers")
        try:
            tokens = rescan(self._card_module(run, CardAccess(module=module)))
        except Exception as exc:
            if _is_carrier_error(exc):
                raise CarrierRefusedError(
                    str(exc), carrier="card", code=getattr(exc, "code", None)
                ) from None
            raise
        return [_public_facts(t) for t in tokens]

    # --- collecting and checking shares

    def _manifests(self) -> list[dict[str, Any]]:
        """The share-set manifests in ``manifests/``, read under the strict JSON rules of
        docs/formats.md section 0 (a duplicate key, ``1.0`` or a BOM makes a file unusable:
        two readers could see two different sets) and through the workspace's descriptors
        (a link, a device or an oversized file there is no manifest of ours). Unusable files
        are left out and named, with the reason, in :attr:`refused_manifests`."""
        out = []
        self.refused_manifests = {}
        for name in self.ws.list_files("manifests", ".json"):
            try:
                m = strictjson.loads(self.ws.read(f"manifests/{name}"))
            except SafeIOError as exc:
                self.refused_manifests[name] = str(exc)
                continue
            except OSError as exc:
                self.refused_manifests[name] = f"cannot be read ({exc.strerror})"
                continue
            except strictjson.StrictJSONError as exc:
                self.refused_manifests[name] = str(exc)
                continue
            if isinstance(m, dict) and "set_id" in m:
                m["_file"] = name
                out.append(m)
        return out

    def _refused_note(self) -> str:
        refused = self.refused_manifests
        if not refused:
            return ""
        return " (refused: " + "; ".join(f"{n}: {why}" for n, why in sorted(refused.items())) + ")"

    def _own_manifests(self) -> list[dict[str, Any]]:
        """The manifests this ceremony may use: PRACTICE ones in a practice ceremony,
        real ones in a real ceremony (never both)."""
        return [m for m in self._manifests() if is_practice_manifest(m) == self.practice]

    def superseded_by(self, set_id: str) -> dict[str, Any] | None:
        """The manifest that superseded ``set_id``, or None.

        Only manifests of this ceremony's kind count: a practice reshare never supersedes
        a real set, nor a real one a practice set.
        """
        for m in self._own_manifests():
            if str(m.get("supersedes")) == str(set_id):
                return m
        return None

    def manifest_choices(self) -> list[dict[str, Any]]:
        """Active share sets this ceremony may collect or check, for a chooser.

        Each: ``file`` (name in ``manifests/``), ``set_id``, ``ceremony_id``, ``practice``.
        A practice ceremony lists only PRACTICE sets (``PRACTICE-set-*.json``), a real one
        only real sets; superseded sets are left out. ``perform(manifest=file)`` takes one.
        """
        return [
            {
                "file": str(m["_file"]),
                "set_id": str(m["set_id"]),
                "ceremony_id": str(m.get("ceremony_id", "?")),
                "practice": is_practice_manifest(m),
            }
            for m in self._own_manifests()
            if self.superseded_by(str(m["set_id"])) is None
        ]

    def _wrong_kind_message(self, files: Sequence[str]) -> str:
        """Why no manifest of this ceremony's kind is here although the other kind is."""
        found = ", ".join(files)
        if self.practice:
            return (
                "only real share sets are here, and a PRACTICE ceremony never uses them; run "
                f"the practice-genesis script first to make a PRACTICE share set (found: {found})"
            )
        return (
            f"only PRACTICE share sets are here; run the practice-{self.script.purpose} script "
            f"to rehearse (found: {found})"
        )

    def _select_manifest(self, run: StepRun, name: str | None) -> dict[str, Any]:
        name = name or run.step.params.get("manifest")
        every = self._manifests()
        ms = [m for m in every if is_practice_manifest(m) == self.practice]
        others = [m["_file"] for m in every if is_practice_manifest(m) != self.practice]
        if name:
            chosen = [m for m in ms if m["_file"] == name]
            if not chosen:
                if name in others:
                    raise StepFailedError(
                        f"manifest {name} is a PRACTICE share set: a real ceremony never uses it"
                        if not self.practice
                        else f"manifest {name} is a real share set: a PRACTICE ceremony never "
                        "uses it"
                    )
                if name in self.refused_manifests:
                    raise StepFailedError(
                        f"manifest {name} is not a valid share-set file: "
                        f"{self.refused_manifests[name]}"
                    )
                raise StepFailedError(f"manifest {name} is not in the workspace's manifests folder")
        else:
            chosen = [m for m in ms if self.superseded_by(str(m["set_id"])) is None]
            if not chosen and others:
                raise StepFailedError(self._wrong_kind_message(others))
            if len(chosen) != 1:
                files = ", ".join(m["_file"] for m in chosen) or "none"
                kind = "PRACTICE " if self.practice else ""
                raise StepFailedError(
                    f"expected exactly one active {kind}share-set manifest in manifests/, "
                    f"found: {files}{self._refused_note()}"
                )
        m = chosen[0]
        newer = self.superseded_by(str(m["set_id"]))
        if newer is not None:
            raise StepFailedError(
                f"share set {m['set_id']} was superseded by set {newer['set_id']} "
                f"(ceremony {newer.get('ceremony_id', '?')}); its shares are refused"
            )
        m = {k: v for k, v in m.items() if k != "_file"}
        try:
            m["_signed"] = records.check_manifest(m)
        except records.ManifestSignatureError as exc:
            raise StepFailedError(
                f"share-set manifest of set {m['set_id']} refused: {exc}. Use the manifest "
                "exported at genesis (kept apart from this medium)"
            ) from None
        return m

    def _do_collect_shares(self, run: StepRun, manifest: str | None = None) -> dict[str, Any]:
        if run.results.get("set_id"):
            return dict(run.results)  # retry: recovery already started, shares kept
        m = self._select_manifest(run, manifest)
        signed = bool(m.pop("_signed"))
        self.keyholder.begin_recovery(m)
        self.manifest = m
        self.collected_set = str(m["set_id"])
        run.display = {"set_id": self.collected_set, "accepted": [], "manifest_signed": signed}
        return self._result(
            run,
            {
                "set_id": self.collected_set,
                "manifest_sha256": _sha256(_manifest_bytes(m)),
                "manifest_signed": signed,
            },
            performed=False,
        )

    def _do_check_shares(self, run: StepRun, manifest: str | None = None) -> dict[str, Any]:
        if run.results.get("set_id"):
            return dict(run.results)  # retry: keep the checks done so far
        m = self._select_manifest(run, manifest)
        signed = bool(m.pop("_signed"))
        self.manifest = m
        run.display = {"set_id": str(m["set_id"]), "checked": [], "manifest_signed": signed}
        return self._result(
            run, {"set_id": str(m["set_id"]), "manifest_signed": signed}, performed=False
        )

    def carrier_allowed(self, carrier: str, run: StepRun | None = None) -> bool:
        """True if the current collect/check step accepts shares by ``carrier``.

        A script's ``qr`` allows every QR way in (``qr-file``, ``qr-camera``, ``scanner``).
        """
        run = run or self.current_step
        if run is None:
            return False
        allowed = run.step.params.get("carriers") or ["typed"]
        return carrier in allowed or (carrier in QR_CARRIERS and "qr" in allowed)

    def _share_step(self) -> StepRun:
        run = self._require_running()
        if (
            run.kind not in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES)
            or "set_id" not in run.results
        ):
            raise EngineError(
                "shares are entered in a collect-shares or check-shares step, after it started"
            )
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it first")
        return run

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Feed one share to the keyholder (collect- or check-shares).

        Carriers and payloads (the engine never sees a share; the keyholder reads it):

        * ``typed``: one memoryview per word over the UI's locked input buffer;
        * ``card``: a :class:`CardAccess` (module, serial, PIN view); the engine adds the
          manifest's card serials (a card not in the manifest is refused before it is
          touched) and the card's sealed share file from ``workspace/card-shares/``;
        * ``qr-file``: the path of an image file (photo or scan of the share QR);
        * ``qr-camera``: a :class:`QRCamera` (device, or replayed frames);
        * ``scanner``: the key presses of a keyboard-wedge scanner, ``[(one-byte view,
          t_us monotonic microseconds), ...]`` ending with Enter (or use
          :meth:`scanner_key` one key at a time);
        * ``qr``: the TUI's QR-file payload ``{"image": path}``.

        A refused share does not fail the step: the refusal is recorded with its reason and
        the custodian may try again; a carrier failure (wrong PIN, removed card, unreadable
        QR...) raises :class:`CarrierRefusedError` (a :class:`ShareRefusedError`) and keeps
        everything collected so far. Returns the public progress / check result.
        """
        run = self._share_step()
        if not self.carrier_allowed(carrier, run):
            allowed = run.step.params.get("carriers") or ["typed"]
            raise EngineError(
                f"carrier {carrier!r} not allowed here (allowed: {', '.join(allowed)})"
            )
        if carrier == "card":
            payload = self._card_payload(run, payload)
        try:
            if run.kind is StepKind.CHECK_SHARES:
                assert self.manifest is not None
                out = _public_facts(self.keyholder.check_share(self.manifest, carrier, payload))
            else:
                out = _public_facts(self.keyholder.add_share(carrier, payload))
        except (NotImplementedError, KeyholderDied) as exc:
            self._fail(run, exc)
            raise StepFailedError(run.error) from None
        except Exception as exc:
            raise self._share_refused(run, carrier, exc) from None
        return self._share_accepted(run, carrier, out)

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """Forward one key press of a keyboard-wedge QR scanner (collect- or check-shares,
        ``qr``).

        ``key``: a one-byte view over the UI's locked key buffer; ``t_us``: when it
        arrived (monotonic microseconds). Returns ``status`` (``pending``, ``not-scanner``:
        too slow for a scanner, the burst was dropped, ``idle``) and ``count``; when a burst
        completes, the share is added (collect-shares; the progress of :meth:`add_share`) or
        checked against the manifest (check-shares; the verdict of :meth:`add_share`), with
        ``status`` ``complete``.

        Raises:
            CarrierRefusedError: the burst was not a share QR.
            ShareRefusedError: the share was refused (other set, no match...).
        """
        run = self._share_step()
        if not self.carrier_allowed("scanner", run):
            raise EngineError("the scanner is not a carrier of this step")
        try:
            port = self._carrier_port("read a keyboard-wedge scanner")
            if run.kind is StepKind.CHECK_SHARES:
                check_key = getattr(port, "scanner_check_key", None)
                if not callable(check_key):
                    raise NotImplementedError(
                        "this keyholder cannot check shares from a scanner key by key"
                    )
                assert self.manifest is not None
                reply = dict(check_key(self.manifest, key, t_us))
            else:
                reply = dict(port.scanner_key(key, t_us))
        except (NotImplementedError, KeyholderDied) as exc:
            self._fail(run, exc)
            raise StepFailedError(run.error) from None
        except Exception as exc:
            raise self._share_refused(run, "scanner", exc) from None
        if reply.get("status") != "complete":
            return {"status": reply.get("status", ""), "count": reply.get("count", 0)}
        out = self._share_accepted(run, "scanner", _public_facts(reply))
        return {**out, "status": "complete"}

    def _card_payload(self, run: StepRun, payload: Any) -> CardAccess:
        if not isinstance(payload, CardAccess):
            raise EngineError("a card share is entered with a CardAccess (module, serial, PIN)")
        m = self.manifest or {}
        holders = [h for h in m.get("holders") or [] if isinstance(h, dict)]
        cards = {str(h["card_serial"]): h for h in holders if h.get("card_serial")}
        if payload.serial and cards and payload.serial not in cards:
            exc = self._card_of_old_set(str(payload.serial)) or _WrongCardSerial(
                f"card {payload.serial} is not one of share set {m.get('set_id', '?')}'s cards "
                f"(expected one of: {', '.join(sorted(cards))}); insert the custodian's card"
            )
            raise self._share_refused(run, "card", exc)
        sealed = payload.sealed
        if sealed is None and payload.serial in cards:
            name = cards[str(payload.serial)].get("sealed_file")
            if name:
                try:
                    sealed = self.ws.read(f"card-shares/{name}")
                except FileNotFoundError:
                    sealed = None
                except (SafeIOError, OSError) as exc:
                    raise self._share_refused(run, "card", exc) from None
        return CardAccess(
            module=self._card_module(run, payload),
            serial=payload.serial,
            pin=payload.pin,
            sealed=sealed,
            expected_serials=tuple(sorted(cards)),
            set_id=str(m["set_id"]) if m.get("set_id") is not None else None,
        )

    def _card_of_old_set(self, serial: str) -> _WrongCardSerial | None:
        """The refusal for a card that holds a share of a superseded set (manifests in the
        workspace), or None."""
        for old in self._manifests():
            holders = [h for h in old.get("holders") or [] if isinstance(h, dict)]
            if not any(str(h.get("card_serial", "")) == serial for h in holders):
                continue
            newer = self.superseded_by(str(old["set_id"]))
            if newer is not None:
                return _WrongCardSerial(
                    f"card {serial} holds a share of set {old['set_id']}, superseded by set "
                    f"{newer['set_id']} (ceremony {newer.get('ceremony_id', '?')}); it is "
                    "refused: bring the card that holds the share of the current set",
                    set_id=str(old["set_id"]),
                )
        return None

    def _share_refused(self, run: StepRun, carrier: str, exc: BaseException) -> ShareRefusedError:
        """Record a refused share (the step stays active); the error to raise."""
        if _is_carrier_error(exc):
            return self._carrier_refused(run, exc, carrier)
        reason = str(exc) or type(exc).__name__
        set_id = getattr(exc, "set_id", None)
        newer = self.superseded_by(str(set_id)) if set_id is not None else None
        if newer is not None:
            reason = (
                f"this share belongs to set {set_id}, superseded by set {newer['set_id']} "
                f"(ceremony {newer.get('ceremony_id', '?')}); it is refused"
            )
        policy = (self.manifest or {}).get("policy")
        if isinstance(policy, Mapping):
            from core.ceremony.groups import name_groups_in

            reason = name_groups_in(reason, policy)  # the script's names (issue 18)
        code = getattr(exc, "code", None)
        expected = self.collected_set or (
            str(self.manifest["set_id"]) if self.manifest and "set_id" in self.manifest else None
        )
        if set_id is not None and expected is not None and str(set_id) != expected:
            code = "other-set"  # another set or a superseded one (docs/scripts.md), any port
        details: dict[str, Any] = {"accepted": False, "carrier": carrier, "reason": reason}
        if isinstance(code, str) and code:
            details["code"] = code
        self._record("step.input", details, run=run)
        return ShareRefusedError(
            reason,
            set_id=str(set_id) if set_id is not None else None,
            code=code if isinstance(code, str) else None,
        )

    def _check_refusal(self, out: Mapping[str, Any]) -> tuple[str, str, str | None]:
        """(reason, code, set id) for a share that did not pass check-shares."""
        expected = str(self.manifest["set_id"]) if self.manifest else None
        got = out.get("set_id")
        got = str(got) if got not in (None, "") else None
        if got is not None and expected is not None and got != expected:
            newer = self.superseded_by(got)
            if newer is not None:
                return (
                    f"this share belongs to set {got}, superseded by set {newer['set_id']} "
                    f"(ceremony {newer.get('ceremony_id', '?')}); it is refused",
                    "other-set",
                    got,
                )
            return (
                f"this share belongs to set {got}, not to set {expected} being checked; "
                "it is refused",
                "other-set",
                got,
            )
        return str(out.get("message") or "the share does not match the manifest"), "commitment", got

    def _share_accepted(self, run: StepRun, carrier: str, out: dict[str, Any]) -> dict[str, Any]:
        ok = bool(out.get("ok", True)) if run.kind is StepKind.CHECK_SHARES else True
        if run.kind is StepKind.COLLECT_SHARES and self.manifest is not None:
            self._name_groups(run, out)
        details: dict[str, Any] = {"accepted": ok, "carrier": carrier, **out}
        refusal: tuple[str, str, str | None] | None = None
        if not ok:
            refusal = self._check_refusal(out)
            details.update(reason=refusal[0], code=refusal[1])
        self._record("step.input", details, run=run)
        if run.kind is StepKind.CHECK_SHARES:
            run.display.setdefault("checked", []).append(out)
            run.performed = True
            if refusal is not None:
                raise ShareRefusedError(refusal[0], set_id=refusal[2], code=refusal[1])
        else:
            run.display.setdefault("accepted", []).append(out)
            if out.get("complete"):
                run.performed = True
                self._record(
                    "step.result", {"complete": True, "set_id": self.collected_set}, run=run
                )
        return out

    def _name_groups(self, run: StepRun, out: dict[str, Any]) -> None:
        """Put the script's group names into an accepted share's progress: ``groups`` (one
        line per group: name, threshold, received) and a ``message`` that names them (the
        keyholder knows groups by number only)."""
        from core.ceremony import groups

        policy = (self.manifest or {}).get("policy")
        if not isinstance(policy, Mapping):
            return
        try:
            accepted = [*run.display.get("accepted", []), out]
            lines = groups.collection_lines(policy, accepted)
            out["groups"] = [line.as_dict() for line in lines]
            out["group_name"] = groups.group_name(policy, out.get("group"))
            out["message"] = groups.collection_message(
                policy,
                lines,
                set_id=out.get("set_id") or self.collected_set,
                complete=bool(out.get("complete")),
            )
        except (KeyError, TypeError, ValueError):
            return  # a manifest without a usable policy keeps the keyholder's message

    def _do_recover(self, run: StepRun) -> dict[str, Any]:
        if self.key_facts is not None and run.results:
            return dict(run.results)
        facts = _public_facts(self.keyholder.recover())
        expected = self._expected_fingerprint()
        if expected and expected.lower() != str(facts.get("fingerprint", "")).lower():
            raise StepFailedError(
                "the rebuilt key's fingerprint differs from the manifest: a share is wrong or "
                "from another set; the key was not accepted"
            )
        self.key_facts = facts
        self.key_verified = bool(expected)
        if expected:
            self._signing_key_known()
        dry = bool(run.step.params.get("dry_run"))
        verification = (
            "matches the share set's manifest"
            if expected
            else "NOT VERIFIED against any manifest (the manifest has no fingerprint): a "
            "witness must compare the KCV words with the genesis record before anything is "
            "sealed or split"
        )
        return self._result(
            run,
            {
                **facts,
                "matches_manifest": bool(expected),
                "verified": bool(expected),
                "verification": verification,
                "dry_run": dry,
            },
        )

    def _signing_key_known(self) -> None:
        """The held key is verified: it signs this ceremony's records (if the port signs)."""
        if records.can_sign(self.keyholder) and self.key_facts:
            self.signing_fp = str(self.key_facts.get("fingerprint", ""))

    def _require_verified_key(self, action: str) -> None:
        if self.key_verified is False:
            raise StepFailedError(
                f"cannot {action}: the rebuilt key is NOT VERIFIED against any manifest. A "
                "witness must first compare its KCV words with the genesis record (the "
                "verify-kcv step)"
            )

    def _do_seal(self, run: StepRun) -> dict[str, Any]:
        if self.key_facts is None:
            raise StepFailedError("no key is held: generate or recover it first")
        self._require_verified_key("seal")
        prefix = "PRACTICE-" if self.practice else ""
        for rid in run.step.params["recipients"]:
            if rid in self.envelopes:
                continue  # retry: already sealed
            if rid not in self.confirmed_recipients:
                raise StepFailedError(
                    f"recipient {rid}'s fingerprint has not been confirmed by a witness in this ceremony"
                )
            facts, handle = self.recipients.load(rid)
            header = {
                "cluster_id": self.script.cluster_id,
                "region_id": self.script.region_id,
                "kind": "masterkey",
                "ceremony_id": self.ceremony_id,
                "masterkey_fingerprint": self.key_facts.get("fingerprint", ""),
                "recipient": rid,
                "practice": self.practice,
                "confirmation": dict(self.confirmed_recipients[rid]),
            }
            data = self.keyholder.seal(handle, header)
            spec = self.script.recipients[rid]
            name = prefix + spec.file if not spec.file.startswith(prefix) else spec.file
            self.envelopes[rid] = (name, bytes(data))
            self._record(
                "step.result",
                {
                    "recipient": rid,
                    "recipient_fingerprint": facts.get("fingerprint", ""),
                    "file": name,
                    "sha256": _sha256(data),
                    "size": len(data),
                },
                run=run,
            )
        if records.can_sign(self.keyholder) and self.seal_manifest is None:
            from core.seal import envelope as _envelope

            self.seal_manifest = _envelope.seal_manifest(
                dict(self.envelopes.values()),
                ceremony_id=self.ceremony_id,
                signer=lambda purpose, msg: _raw_signature(
                    records.sign_block(self.keyholder, purpose, msg)
                ),
            )
            self._record(
                "step.result",
                {
                    "seal_manifest": f"{prefix}seal-manifest.json",
                    "sha256": _sha256(self.seal_manifest),
                    "signed": True,
                },
                run=run,
            )
        run.performed = True
        return {rid: {"file": n, "sha256": _sha256(d)} for rid, (n, d) in self.envelopes.items()}

    def _do_export(self, run: StepRun) -> dict[str, Any]:
        folder = str(run.step.params.get("folder", "export"))
        if self.practice and not folder.startswith("PRACTICE-"):
            folder = "PRACTICE-" + folder
        if folder in self.written:
            return dict(run.results)  # retry: written and recorded already
        contents = run.step.params.get("files", [])
        files: dict[str, bytes] = {}
        if "envelopes" in contents:
            if not self.envelopes:
                raise StepFailedError("there is no sealed envelope to export")
            files.update(dict(self.envelopes.values()))
            if self.seal_manifest is not None:
                prefix = "PRACTICE-" if self.practice else ""
                files[f"{prefix}seal-manifest.json"] = self.seal_manifest
        if "manifest" in contents:
            if self.manifest is None:
                raise StepFailedError("there is no manifest to export")
            prefix = "PRACTICE-" if self.practice else ""
            files[f"{prefix}manifest-set-{self.manifest['set_id']}.json"] = _manifest_bytes(
                self.manifest
            )
        if "manifest" in contents or "card-shares" in contents:
            # sealed share files of cards without data objects travel with the manifest
            files.update(self.card_files)
        if not files:
            run.performed = True
            return self._result(run, {"folder": folder, "files": {}, "deferred": list(contents)})
        written, folder = self._write_export(folder, files)
        return self._result(
            run,
            {
                "folder": folder,
                "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in written},
                "deferred": [c for c in contents if c in ("journal", "transcript")],
            },
        )

    def _write_export(
        self, folder: str, files: Mapping[str, bytes]
    ) -> tuple[list[ExportedFile], str]:
        """Write ``files`` into a new ``folder`` on the export medium; returns what was written
        and the folder's name.

        A folder of that name already on the medium (an earlier ceremony's, e.g. a second
        rehearsal in one workspace) is never touched: the export goes to
        ``<folder>-<ceremony id>`` instead (unique: the ceremony id names this ceremony's own
        folder, created exclusively), and the name written is in the step's result and the
        journal. Anything else (a link planted there, a full or read-only medium) raises.
        """
        from core.ceremony.exportnames import unique_folder_names
        from core.media import NameClash

        clash: NameClash | None = None
        for name in unique_folder_names(folder, self.ceremony_id):
            try:
                written = self.exporter.write(name, files, ceremony_id=self.ceremony_id)
            except NameClash as exc:
                clash = clash or exc
                continue
            self.written[name] = written
            return written, name
        assert clash is not None
        raise clash

    def _do_wipe(self, run: StepRun) -> dict[str, Any]:
        # the MasterKey goes now; only its signing key stays (locked), to sign the journal
        # and the transcript when the journal is closed (core.ceremony.records)
        records.wipe(self.keyholder, keep_signing=bool(self.signing_fp))
        self.key_facts = None
        self.key_verified = None
        return self._result(
            run, {"wiped": True, "signing_key_kept_for_the_journal": bool(self.signing_fp)}
        )


def _grouped_kcv(kcv: str) -> str:
    """``d2c8dbb00338c76c`` -> ``d2c8 dbb0 0338 c76c`` (as read aloud and shown)."""
    flat = kcv.replace(" ", "")
    return " ".join(flat[i : i + 4] for i in range(0, len(flat), 4))


class _WrongCardSerial(Exception):
    """The card named by the caller is not in the manifest (refused before it is touched)."""

    code = "card-wrong-card"

    def __init__(self, message: str, *, set_id: str | None = None) -> None:
        super().__init__(message)
        self.set_id = set_id


_CARRIER_CODES = ("carrier", "qr-", "card", "scanner")


def _is_carrier_error(exc: BaseException) -> bool:
    """An error of the card/QR/scanner layer (core.carriers.errors): retry, nothing lost."""
    if isinstance(exc, _WrongCardSerial):
        return True
    if isinstance(exc, CarrierError):
        return True
    code = getattr(exc, "code", None)
    return isinstance(code, str) and code.startswith(_CARRIER_CODES)


def _raw_signature(block: Mapping[str, Any]) -> bytes:
    import base64

    return base64.b64decode(str(block["value"]))


def _int_or_str(v: Any) -> int | str:
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def _same_fingerprint(shown: str, copy: str) -> bool:
    """Compare a shown hex fingerprint with a witness's copy (hex, or KCV words)."""
    norm = "".join(ch for ch in copy.lower() if ch in "0123456789abcdef")
    if copy.strip() and all(w.isalpha() for w in copy.split()) and len(copy.split()) >= 2:
        return copy.lower().split() == _fp_words(shown)
    return bool(norm) and norm == shown.lower()


def _fp_words(hex_fp: str) -> list[str]:
    try:
        return to_words(bytes.fromhex(hex_fp.replace(":", "").replace(" ", ""))[:8])
    except ValueError:
        return []


_PUBLIC_TYPES = (str, int, float, bool, type(None), list, dict)


def _public_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Keep JSON-public values; bytes become hex (public values only reach here)."""
    out: dict[str, Any] = {}
    for k, v in facts.items():
        if isinstance(v, bytes):
            out[k] = v.hex()
        elif isinstance(v, tuple):
            out[k] = list(v)
        elif isinstance(v, _PUBLIC_TYPES):
            out[k] = v
    return out


# ----------------------------------------------------------------------------- adapters


class ClientKeyholder:
    """The :class:`Keyholder` port over the real :class:`core.keyholder.client.KeyholderClient`.

    * generate / fingerprint / wipe: core operations (0x00xx);
    * split, show, typed entry, recovery, share check: ``core.keyholder.ops_shares``;
    * seal: ``core.keyholder.ops_seal.seal_envelope``.

    * cards, QR and the wedge scanner: ``core.keyholder.ops_carriers`` (the keyholder
      talks to the card, decodes the QR image and parses the scanner burst itself, so the
      share goes straight into its locked memory and into the recovery in progress).

    Share payloads: for the ``typed`` carrier the payload is a sequence of memoryviews, one
    per word, over the UI's own locked input buffer (each word is sent as a protocol
    ``Secret`` and never copied here). ``card``: a :class:`CardAccess` (its PIN view is
    sent as a ``Secret``); ``qr-file``: an image path (``qr``: ``{"image": path}``);
    ``qr-camera``: a :class:`QRCamera`; ``scanner``: ``[(one-byte key view, t_us), ...]``.
    Checking a share against the manifest (check-shares) works with every carrier: typed
    words through ``verify_share``, the others through the carrier operations with
    ``purpose="verify"`` (the keyholder checks the share it read against the commitments
    and wipes it; nothing enters a recovery).

    ``show_share`` writes the share (words, or ``display="qr"`` a QR code) to the terminal
    device ``tty`` (the keyholder opens it itself and waits for a key press there): the UI
    must release the terminal (suspend) while it runs.
    """

    def __init__(self, client: Any, *, tty: str = "/dev/tty") -> None:
        self.client = client
        self.tty = tty
        self._members: list[tuple[int, int, str]] = []  # (group, member, custodian name)
        self._group_names: list[str] = []  # the script's group names (none without groups)
        self._scanner_check: str | None = None  # set id the scanner bursts are checked for

    @property
    def practice(self) -> bool:
        """True if the keyholder was started in practice mode (checked by the engine)."""
        return bool(getattr(self.client, "info", {}).get("practice", False))

    def generate_master(self) -> dict[str, Any]:
        """See :class:`Keyholder`."""
        return dict(self.client.generate_master())

    def fingerprint(self) -> dict[str, Any]:
        """See :class:`Keyholder`."""
        return dict(self.client.fingerprint())

    def wipe(self) -> None:
        """See :class:`Keyholder`."""
        self._members = []
        self.client.wipe()

    def wipe_keep_signing(self) -> None:
        """Wipe every secret but the MasterKey's derived signing key, which then signs
        only the closed journal's final hash and the transcript (once each)."""
        self._members = []
        self.client.wipe(keep_signing_key=True)

    def signing_available(self) -> bool:
        """True while the keyholder holds the MasterKey or its kept signing key."""
        st = self.client.status()
        return bool(st.get("master_held") or st.get("signing_key_held"))

    def sign(self, purpose: str, message: bytes) -> dict[str, Any]:
        """The keyholder's domain-separated SIGN: ``signature`` (bytes) and the signing
        key's ``fingerprint`` (hex)."""
        from core.keyholder import ops_core

        reply = self.client.call(ops_core.SIGN, purpose=purpose, message=message)
        return {"signature": bytes(reply["signature"]), "fingerprint": str(reply["fingerprint"])}

    def genesis_split(self, policy: Mapping[str, Any], *, supersedes: str | None) -> dict[str, Any]:
        """Split with ``ops_shares.genesis_split`` (extendable, so a reshare keeps the key).

        Returns the public manifest: set id, policy (script form and SLIP-39 form), which
        custodian holds which (group, member), salted commitments, fingerprint and KCV.
        """
        from core.keyholder import ops_shares

        names: Mapping[str, str] = policy.get("custodian_names", {})
        groups = policy.get("groups") or []
        if groups:
            slip = [[int(g["threshold"]), len(g["members"])] for g in groups]
            holders = [
                (gi + 1, mi + 1, m)
                for gi, g in enumerate(groups)
                for mi, m in enumerate(g["members"])
            ]
            gt = int(policy["group_threshold"])
        else:
            slip = [[int(policy["threshold"]), int(policy["shares"])]]
            holders = [(1, mi + 1, m) for mi, m in enumerate(policy["custodians"])]
            gt = 1
        reply = ops_shares.client_genesis_split(
            self.client, {"group_threshold": gt, "groups": slip, "extendable": True}
        )
        self._members = [(g, m, names.get(c, c)) for g, m, c in holders]
        self._group_names = [str(g.get("name") or "") for g in groups]
        public_policy = {k: v for k, v in policy.items() if k != "custodian_names"}
        return {
            "format": "openkcm-share-set",
            "version": 1,
            "set_id": int(reply["identifier"]),
            "policy": {**public_policy, "slip39": reply["policy"]},
            "holders": [
                {"group": g, "member": m, "custodian": c, "name": names.get(c, c)}
                for g, m, c in holders
            ],
            "commitments": reply["commitments"],
            "selftest": reply.get("selftest"),
            "fingerprint": reply["fingerprint"],
            # the file's KCV is 16 hex digits, as in the envelope header (no grouping)
            "kcv": str(reply["fingerprint"])[:16],
            "supersedes": int(supersedes) if supersedes else None,
        }

    def show_share(self, member: int, display: str) -> dict[str, Any]:
        """Show share ``member`` (policy order) on the custodian terminal."""
        from core.keyholder import ops_shares

        group, mem, name = self._members[member]
        # the script's name of the group, for the custodian's screen (issue 18)
        gname = self._group_names[group - 1] if 0 < group <= len(self._group_names) else ""
        if display == "qr":
            from core.keyholder import ops_carriers

            extra = {"group_name": gname} if gname else {}
            return dict(
                self.client.call(
                    ops_carriers.QR_SHOW,
                    group=group,
                    member=mem,
                    tty=self.tty,
                    custodian=name,
                    **extra,
                )
            )
        if display != "screen":
            raise NotImplementedError(f"showing a share by {display}: use write_card")
        return dict(ops_shares.client_show_share(self.client, group, mem, self.tty, name, gname))

    @staticmethod
    def _module_path(module: str | None) -> str:
        # a NAME: the keyholder maps it to the module it was started with, and refuses
        # anything else (a path from a script or a medium never reaches dlopen)
        return module or DEFAULT_CARD_MODULE

    def _carriers(self) -> Any:
        from core.keyholder import ops_carriers

        return ops_carriers.CarrierClient(self.client)

    def list_cards(self, module: str) -> list[dict[str, Any]]:
        """See :class:`CarrierKeyholder`."""
        return list(self._carriers().list_cards(self._module_path(module)))

    def rescan_cards(self, module: str) -> list[dict[str, Any]]:
        """Re-initialise the PKCS#11 module in the keyholder (``card_rescan``); the cards."""
        return list(self._carriers().rescan(self._module_path(module)))

    def write_card(
        self,
        member: int,
        card: CardAccess,
        *,
        commitment: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        bits: int,
        store_on_card: bool,
    ) -> dict[str, Any]:
        """Provision a card key (generated on the card), write the share, read it back.

        ``card_provision`` then ``card_write_share`` (which checks the read-back share
        against ``commitment`` in the keyholder). With no serial, the only card in the
        readers is used.
        """
        from core.carriers.errors import CardNoToken

        cc = self._carriers()
        module = self._module_path(card.module)
        serial = card.serial
        if not serial:
            tokens = cc.list_cards(module)
            if len(tokens) != 1:
                raise CardNoToken(
                    "no card in any reader: insert the custodian's card and try again"
                    if not tokens
                    else "several cards are inserted: keep only the custodian's card in "
                    "the reader (or name its serial)"
                )
            serial = str(tokens[0]["serial"])
        group, mem, _name = self._members[member]
        key = cc.provision(module, serial, card.pin, bits=bits)
        extra: dict[str, Any] = {"meta": dict(meta), "store_on_card": store_on_card}
        if commitment is not None:
            extra["commitment"] = dict(commitment)
        reply = cc.write_share(module, serial, card.pin, group, mem, key, **extra)
        result = dict(reply.get("result") or {})
        key_facts = dict(result.get("key") or key)
        return {
            "card": {
                "serial": str(key_facts.get("serial", serial)),
                "key_fingerprint": key_facts.get("fingerprint", ""),
                "key_id": key_facts.get("key_id", ""),
                "bits": key_facts.get("bits"),
                "oaep_hash": key_facts.get("oaep_hash", ""),
                "stored_on_card": bool(result.get("stored_on_card")),
                "verified": bool(result.get("verified")),
                "notes": list(result.get("notes") or []),
            },
            "sealed": bytes(reply["sealed"]),
        }

    def _scanner_mode(self, manifest: Mapping[str, Any] | None) -> None:
        """Arm the keyholder's scanner for recovery (None) or for checks against
        ``manifest``; a change of mode discards a partial burst."""
        want = str(manifest["set_id"]) if manifest is not None else None
        if want == self._scanner_check:
            return
        extra = _verify_fields(manifest) if manifest is not None else {}
        self._carrier_call(lambda: self._carriers().scanner_reset(**extra))
        self._scanner_check = want

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """See :class:`CarrierKeyholder`."""
        self._scanner_mode(None)
        reply = self._carrier_call(lambda: self._carriers().scanner_key(key, t_us))
        if "share" not in reply:
            return {"status": reply.get("status"), "count": reply.get("count", 0)}
        return {"status": "complete", **_carrier_progress(reply)}

    def scanner_check_key(
        self, manifest: Mapping[str, Any], key: memoryview, t_us: int
    ) -> dict[str, Any]:
        """One wedge-scanner key press in check-shares: a completed burst is checked
        against ``manifest`` (verify-only) and the verdict of :meth:`check_share` returned
        with ``status`` ``complete``."""
        self._scanner_mode(manifest)
        reply = self._carrier_call(lambda: self._carriers().scanner_key(key, t_us))
        if "share" not in reply:
            return {"status": reply.get("status"), "count": reply.get("count", 0)}
        return {"status": "complete", **_carrier_verdict(reply, manifest)}

    @staticmethod
    def _carrier_call(fn: Callable[[], Any]) -> dict[str, Any]:
        """Run a carrier operation; a share refused by the recovery becomes
        :class:`ShareRefusedError` (with its set), carrier errors pass unchanged."""
        from core.keyholder import ops_shares  # noqa: F401  (registers SharesError)
        from core.keyholder.errors import KeyholderError

        try:
            return dict(fn() or {})
        except KeyholderError as exc:
            if _is_carrier_error(exc) or isinstance(exc, KeyholderDied):
                raise
            m = re.search(r"belongs to set (\d+)", exc.message)
            raise ShareRefusedError(
                exc.message, set_id=m.group(1) if m else None, code=exc.code
            ) from None

    def _scan_one(self, cc: Any, key: memoryview, t_us: int) -> dict[str, Any]:
        return self._carrier_call(lambda: cc.scanner_key(key, t_us))

    def _add_by_carrier(self, carrier: str, payload: Any) -> dict[str, Any]:
        reply = self._read_by_carrier(carrier, payload, None)
        out = _carrier_progress(reply)
        if carrier == "card":
            out.update(_card_facts(reply))
        return out

    def _read_by_carrier(
        self, carrier: str, payload: Any, manifest: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Read a share by a carrier into the keyholder: into the recovery (``manifest``
        None) or verify-only against ``manifest``'s commitments. The raw public reply."""
        cc = self._carriers()
        verify = _verify_fields(manifest) if manifest is not None else {}
        if carrier == "card":
            if not isinstance(payload, CardAccess):
                raise ShareRefusedError("a card share needs a CardAccess (module, serial, PIN)")
            extra: dict[str, Any] = {}
            if payload.expected_serials:
                extra["expected_serials"] = list(payload.expected_serials)
            if payload.set_id is not None and str(payload.set_id).isdigit():
                extra["set_id"] = int(payload.set_id)
            if payload.sealed is not None:
                extra["sealed"] = bytes(payload.sealed)
            module = self._module_path(payload.module)
            return self._carrier_call(
                lambda: cc.read_share(module, payload.serial, payload.pin, **extra, **verify)
            )
        if carrier in ("qr-file", "qr"):
            path = payload.get("image") if isinstance(payload, Mapping) else payload
            return self._carrier_call(lambda: cc.decode_file(str(path), **verify))
        if carrier == "qr-camera":
            cam = payload if isinstance(payload, QRCamera) else QRCamera(device=str(payload))
            if cam.replay:
                return self._carrier_call(
                    lambda: cc.scan_replay([str(p) for p in cam.replay], **verify)
                )
            return self._carrier_call(lambda: cc.scan_camera(cam.device, cam.timeout_s, **verify))
        if carrier == "scanner":
            from core.carriers.errors import ScannerError

            self._scanner_check = None
            self._carrier_call(lambda: cc.scanner_reset(**verify))
            last: dict[str, Any] = {}
            try:
                for key, t_us in payload:
                    last = self._scan_one(cc, key, int(t_us))
                    if "share" in last:
                        return last
            finally:
                self._carrier_call(cc.scanner_reset)  # back to recovery mode, burst dropped
            raise ScannerError(
                "the scanner input ended without a complete share code "
                f"({last.get('status', 'nothing')} after {last.get('count', 0)} digits): "
                "scan the QR again"
            )
        raise NotImplementedError(f"carrier {carrier!r} is not known to this keyholder")

    def begin_recovery(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Start a recovery bound to the manifest's set, commitments and fingerprint."""
        from core.keyholder import ops_shares

        return dict(
            ops_shares.client_recovery_begin(
                self.client,
                identifier=int(manifest["set_id"]),
                commitments=list(manifest.get("commitments") or []),
                fingerprint=str(manifest["fingerprint"]) if manifest.get("fingerprint") else None,
            )
        )

    def _enter_typed(self, carrier: str, payload: Any) -> dict[str, Any]:
        from core.keyholder import ops_shares

        if carrier != "typed":
            raise NotImplementedError(
                f"entering a share by {carrier} is not wired to core.keyholder.ops_carriers yet"
            )
        words = list(payload)
        ops_shares.client_entry_begin(self.client, len(words))
        try:
            for pos, word in enumerate(words, 1):
                res = ops_shares.client_entry_word(self.client, pos, word)
                if res.get("status") != "accepted":
                    raise ShareRefusedError(
                        f"word {pos} is not a word of the list (or is ambiguous)"
                    )
            fin = ops_shares.client_entry_finish(self.client)
        except Exception:
            # never leave a partial share in the keyholder's entry buffer
            self._clear_entry()
            raise
        if fin.get("status") != "ok":
            self.client.call(ops_shares.ENTRY_CLEAR)
            # candidate words stay with the custodian's screen (UI); only positions here
            positions = [c["position"] for c in fin.get("candidates", [])]
            where = f" (check word {', '.join(map(str, positions))})" if positions else ""
            raise ShareRefusedError(f"the share's checksum is wrong{where}", code="checksum")
        return fin

    def _clear_entry(self) -> None:
        from core.keyholder import ops_shares
        from core.keyholder.errors import KeyholderError

        try:
            self.client.call(ops_shares.ENTRY_CLEAR)
        except KeyholderError:
            pass  # the keyholder is gone or has no entry: nothing left to clear

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Typed entry word by word, checksum, then add to the recovery; other carriers
        through ``ops_carriers`` (the keyholder adds the share it read to the recovery)."""
        from core.keyholder import ops_shares
        from core.keyholder.errors import KeyholderError

        if carrier != "typed":
            return self._add_by_carrier(carrier, payload)
        fin = self._enter_typed(carrier, payload)
        try:
            reply = ops_shares.client_add_share(self.client)
        except KeyholderError as exc:
            # the recovery's code (other-set, duplicate, conflict, commitment...) travels on
            raise ShareRefusedError(str(exc), set_id=str(fin["set"]), code=exc.code) from None
        progress = reply["progress"]
        return {
            "set_id": str(reply["share"]["set"]),
            "group": reply["share"]["group"],
            "index": reply["share"]["member"],
            "complete": bool(progress["complete"]),
            "message": progress["message"],
        }

    def check_share(
        self, manifest: Mapping[str, Any], carrier: str, payload: Any
    ) -> dict[str, Any]:
        """Check one share against the manifest's commitments alone, no recovery.

        Typed: entry, then ``verify_share``. Card, QR (file, camera, replay) and scanner:
        the carrier operation with ``purpose="verify"``: the keyholder reads the share,
        checks it and wipes it. Returns the verdict ``ok``, ``set_id``, ``group``,
        ``index``, ``message`` (plus ``source``, card facts).
        """
        from core.keyholder import ops_shares

        if carrier != "typed":
            reply = self._read_by_carrier(carrier, payload, manifest)
            out = _carrier_verdict(reply, manifest)
            if carrier == "card":
                out.update(_card_facts(reply))
            return out
        self._enter_typed(carrier, payload)
        try:
            res = self.client.call(
                ops_shares.VERIFY_SHARE, commitments=list(manifest.get("commitments") or [])
            )
        finally:
            self.client.call(ops_shares.ENTRY_CLEAR)
        ok = bool(res["matches"]) and str(res["set"]) == str(manifest["set_id"])
        return {
            "ok": ok,
            "set_id": str(res["set"]),
            "group": res["group"],
            "index": res["member"],
            "message": "matches the manifest" if ok else "does NOT match the manifest",
        }

    def recover(self) -> dict[str, Any]:
        """Rebuild the key (the keyholder checks the expected fingerprint itself)."""
        from core.keyholder import ops_shares

        return dict(ops_shares.client_recover(self.client))

    def confirm_kcv(self, witness: str, kcv: str) -> dict[str, Any]:
        """A witness confirmed the KCV of a key rebuilt without a manifest fingerprint; the
        keyholder compares it with the key and only then allows sealing or splitting."""
        return dict(self.client.kcv_confirm(witness, kcv))

    def seal(self, recipient: Any, header: Mapping[str, Any]) -> bytes:
        """Seal through ``core.keyholder.ops_seal.seal_envelope``.

        ``recipient`` is the :class:`core.seal.recipients.Recipient` from
        :class:`WorkspaceRecipients`; the witness confirmation recorded by the engine is
        attached with :func:`core.seal.recipients.confirm` (which re-checks the fingerprint).
        """
        from core.keyholder import ops_seal
        from core.seal import recipients as rc

        conf = header["confirmation"]
        confirmed = rc.confirm(recipient, str(conf["witness"]), str(conf["fingerprint"]))
        reply = ops_seal.seal_envelope(
            self.client,
            confirmed,
            kind="masterkey",
            cluster_id=str(header["cluster_id"]),
            region_id=str(header["region_id"]),
            ceremony_id=str(header["ceremony_id"]),
        )
        return bytes(reply["envelope"])


def _verify_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields of a verify-only carrier read against ``manifest``."""
    return {"purpose": "verify", "commitments": list(manifest.get("commitments") or [])}


def _card_facts(reply: Mapping[str, Any]) -> dict[str, Any]:
    card = dict(reply.get("card") or {})
    return {
        "card_serial": card.get("serial", ""),
        "key_fingerprint": card.get("key_fingerprint", ""),
        "card_source": card.get("source", ""),
    }


def _carrier_verdict(reply: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The public verdict of a verify-only carrier read (same keys as a typed check)."""
    share = dict(reply.get("share") or {})
    set_id = str(share.get("set", ""))
    ok = bool(reply.get("matches")) and set_id == str(manifest["set_id"])
    out: dict[str, Any] = {
        "ok": ok,
        "set_id": set_id,
        "group": share.get("group"),
        "index": share.get("member"),
        "message": "matches the manifest" if ok else "does NOT match the manifest",
        "source": share.get("source", ""),
    }
    for k in ("decoder", "variant"):
        if k in reply:
            out[k] = reply[k]
    return out


def _carrier_progress(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The public progress of a share taken by a carrier operation (ops_carriers reply)."""
    share = dict(reply.get("share") or {})
    progress = dict(reply.get("progress") or {})
    out: dict[str, Any] = {
        "set_id": str(share.get("set", "")),
        "group": share.get("group"),
        "index": share.get("member"),
        "complete": bool(progress.get("complete")),
        "message": str(progress.get("message", "")),
        "source": share.get("source", ""),
    }
    for k in ("decoder", "variant"):
        if k in reply:
            out[k] = reply[k]
    return out


class FolderExporter:
    """The :class:`Exporter` port over :func:`core.media.write_export` on a folder medium.

    The demo writes to ``workspace/exports``; the TUI passes a removable medium instead.

    Attributes:
        progress: optional ``progress(bytes_done, bytes_total, current_file)`` called during
            the write (the TUI sets it before the export step; it may run in a worker thread).
        unmount: unmount a real removable medium after the sync (``write_export(unmount=)``).
        last: the :class:`core.media.ExportResult` of the last successful write (``None``
            before one, and reset to ``None`` when a write starts): ``safe_to_remove`` and
            ``unmounted`` tell the screen when the medium may be taken out.
        writer: injectable ``os.write`` for fault tests (slow or failing media).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        medium: Any = None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        unmount: bool = False,
        writer: Callable[[int, Any], int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.medium = medium
        self.progress = progress
        self.unmount = unmount
        self.writer = writer
        self.last: Any = None

    def use(self, medium: Any = None) -> None:
        """Write to ``medium`` from now on (``None``: back to the folder at ``root``).

        A real removable medium (not the demo folder) is unmounted after the verify and
        sync, so the screen can say it is safe to remove; a folder never is.
        """
        self.medium = medium
        self.unmount = bool(medium is not None and medium.removable and not medium.demo)

    def target(self) -> Any:
        """The medium written to (a :class:`core.media.Medium`)."""
        from core import media

        return self.medium or media.folder_medium(self.root)

    def write(
        self, folder: str, files: Mapping[str, bytes], *, ceremony_id: str
    ) -> list[ExportedFile]:
        """Write atomically, verify, sync, never overwrite (see core.media)."""
        from core import media

        self.last = None
        extra: dict[str, Any] = {}
        if self.writer is not None:
            extra["writer"] = self.writer
        target = self.target()
        # A medium the media helper made writable (core.removable.PreparedMedium) is
        # released by the helper: unmounted *and* read-only again; others are unmounted here.
        release = getattr(target, "release", None)
        res = media.write_export(
            target,
            files,
            ceremony_id=ceremony_id,
            directory=folder,
            progress=self.progress,
            unmount=self.unmount and not callable(release),
            **extra,
        )
        if self.unmount and callable(release):
            try:
                release()
                res = dataclasses.replace(res, unmounted=True)
            except media.MediaError as exc:
                res = dataclasses.replace(res, notes=[*res.notes, exc.message])
        self.last = res
        return [
            ExportedFile(name=n, path=str(res.directory / n), sha256=h, size=len(files[n]))
            for n, h in sorted(res.files.items())
            if n in files
        ]


class WorkspaceRecipients:
    """The :class:`RecipientSource` port: public keys from ``workspace/<public_key_file>``."""

    def __init__(self, workspace: Path, script: Script) -> None:
        self.workspace = workspace
        self.script = script

    def load(self, recipient_id: str) -> tuple[dict[str, Any], Any]:
        """Parse and check the recipient's public key (core.seal.recipients)."""
        from core.seal import recipients as rc

        spec = self.script.recipients[recipient_id]
        try:
            data = Workspace(self.workspace).read(spec.public_key_file, limit=MAX_KEY_FILE)
        except SafeIOError as exc:
            raise StepFailedError(f"recipient {recipient_id}: {exc.message}") from None
        except OSError as exc:
            raise StepFailedError(f"cannot read {spec.public_key_file}: {exc.strerror}") from None
        key = rc.parse_public_key(data)
        kind = spec.kind  # validated against RecipientKind names
        name, key_id = recipient_id, spec.description or recipient_id
        if self.script.practice:
            # the envelope header has no practice field: its recipient name and key id
            # say PRACTICE (with the PRACTICE- ceremony id and the practice cluster id)
            name = f"PRACTICE-{recipient_id}"
            if not key_id.upper().startswith("PRACTICE"):
                key_id = f"PRACTICE {key_id}"
        rec = rc.recipient_from_key(key, name=name, kind=kind, key_id=key_id)
        return {
            "fingerprint": rec.fingerprint_hex,
            "kind": spec.kind,
            "description": spec.description,
        }, rec


def core_preflight() -> dict[str, Any]:
    """The default preflight port: :func:`core.preflight.run_all` (``KCM_DEMO=1``: demo mode)."""
    from core import preflight

    mode = "demo" if os.environ.get("KCM_DEMO") == "1" else "ceremony"
    results = preflight.run_all(mode=mode)
    failed = [r.name for r in results if r.status == "FAIL"]
    return {
        "ok": not failed,
        "mode": mode,
        "failed": failed,
        "checks": {r.name: r.status for r in results},
    }
