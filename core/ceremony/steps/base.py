"""The state a ceremony's steps share, and the journaling every step uses.

:class:`CeremonyBase` holds what the engine knows about a running ceremony (script,
ports, journal, steps, key facts, manifests, envelopes, exports) and the few operations
every step needs: record an event, fail the step, record its result, refuse a carrier.
The step handlers (:mod:`core.ceremony.steps`) and the lifecycle
(:mod:`core.ceremony.engine`) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.ceremony import records
from core.ceremony.errors import (
    NOT_AVAILABLE,
    CarrierRefusedError,
    EngineError,
    StepFailedError,
)
from core.ceremony.facts import (
    utc_now,
)
from core.ceremony.manifests import ManifestStore
from core.ceremony.model import (
    DEFAULT_CARD_MODULE,
    Script,
)
from core.ceremony.ports import (
    CardAccess,
    CarrierKeyholder,
    ExportedFile,
    Exporter,
    Keyholder,
    PreflightPort,
    RecipientSource,
)
from core.ceremony.state import (
    CeremonyState,
    StepRun,
    StepState,
)
from core.ceremony.workspace import Workspace
from core.journal import Event, Journal

__all__ = ["CeremonyBase"]


class CeremonyBase:
    """A ceremony's shared state and journaling (see :class:`core.ceremony.engine.Ceremony`)."""

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
        #: The share-set manifests of the workspace, as this ceremony sees them.
        self.manifest_store = ManifestStore(
            self.ws, practice=script.practice, purpose=script.purpose
        )
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
        #: A MasterKey rotation in progress (``rotate`` purpose): :mod:`core.ceremony.steps.rotation`
        self.rotation: Any = None
        #: The keyholder's answer to ``rotation_begin`` (kept so a retried generate does
        #: not ask to begin twice)
        self.rotation_begun: dict[str, Any] | None = None
        #: The rotated-out set a ``transition`` ceremony opened, or ``verify-shares`` checks
        self.rotated_out: records.RotatedOut | None = None
        self.rotated_out_file = ""
        #: What the keyholder's ``transition_begin`` answered (set, window, successor)
        self.transition_opened: dict[str, Any] = {}
        self.final_hash = ""
        self.final_words: list[str] = []
        self.exports: dict[str, Path] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._index = 0

    @property
    def current_step(self) -> StepRun | None:
        """The step to show, or None when the ceremony is over."""
        if self.state is not CeremonyState.RUNNING or self._index >= len(self.steps):
            return None
        return self.steps[self._index]

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

    def _role(self, role: str) -> None:
        if role not in self.script.roles:
            raise EngineError(f"{role!r} is not a role of this ceremony")

    def record_exception(self, text: str, who: str) -> None:
        """Write an exception (free text) on the current step, or the ceremony if over."""
        if not text.strip() or not who.strip():
            raise EngineError("an exception needs a text and who reports it")
        run = self.current_step
        entry = {"text": text.strip(), "who": who.strip(), "when": utc_now()}
        if run is not None:
            run.exceptions.append(entry)
        role = who if who in self.script.roles else ""
        if self.journal.closed:
            raise EngineError("the journal is closed; write the exception on the paper log")
        self._record("exception", entry, role=role, run=run)

    def _fail(self, run: StepRun, exc: BaseException) -> None:
        msg = str(exc) or type(exc).__name__
        code = str(getattr(exc, "code", "") or StepFailedError.code)
        if isinstance(exc, NotImplementedError):
            msg = f"not available yet: {msg}"
            code = NOT_AVAILABLE
        run.state = StepState.FAILED
        run.error = msg
        run.error_code = code
        self._record(
            "step.failed",
            {"error": msg, "error_type": type(exc).__name__, "code": code},
            run=run,
        )

    def _failed(self, run: StepRun) -> StepFailedError:
        """The error to raise for the step just failed (its message and code)."""
        return StepFailedError(run.error, code=run.error_code)

    def _result(
        self, run: StepRun, results: Mapping[str, Any], *, performed: bool = True
    ) -> dict[str, Any]:
        run.results.update(results)
        if performed:
            run.performed = True
        self._record("step.result", dict(results), run=run)
        return dict(results)

    def _expected_fingerprint(self) -> str | None:
        if self.manifest is None:
            return None
        fp = self.manifest.get("fingerprint")
        return str(fp) if fp else None

    def _custodians_for_split(self) -> list[str]:
        return list(self.script.policy.custodians) if self.script.policy else []

    def _card_module(self, run: StepRun, card: CardAccess | None) -> str:
        if card is not None and card.module:
            return card.module
        return str(run.step.params.get("card_module") or DEFAULT_CARD_MODULE)

    def _carrier_port(self, what: str) -> CarrierKeyholder:
        kh = self.keyholder
        if not isinstance(kh, CarrierKeyholder):
            raise NotImplementedError(f"this keyholder cannot {what}")
        return kh

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

    # ------------------------------------------------------------------ manifests

    @property
    def refused_manifests(self) -> dict[str, str]:
        """Files of ``manifests/`` left out at the last read, with the reason."""
        return self.manifest_store.refused

    def _manifests(self) -> list[dict[str, Any]]:
        return self.manifest_store.read_all()

    def superseded_by(self, set_id: str) -> dict[str, Any] | None:
        """The manifest that superseded ``set_id``, or None.

        Only manifests of this ceremony's kind count: a practice reshare never supersedes
        a real set, nor a real one a practice set.
        """
        return self.manifest_store.superseded_by(set_id)

    def manifest_choices(self) -> list[dict[str, Any]]:
        """Active share sets this ceremony may collect or check, for a chooser.

        Each: ``file`` (name in ``manifests/``), ``set_id``, ``ceremony_id``, ``practice``.
        A practice ceremony lists only PRACTICE sets (``PRACTICE-set-*.json``), a real one
        only real sets; superseded sets are left out. ``perform(manifest=file)`` takes one.
        """
        return self.manifest_store.choices()
