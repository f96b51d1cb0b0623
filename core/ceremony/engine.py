"""The ceremony's lifecycle: load, acknowledge, perform (dispatched by step kind),
complete, skip, abort, finish.

:class:`Ceremony` combines the step handlers of :mod:`core.ceremony.steps` and dispatches
each :class:`~core.ceremony.model.StepKind` through the explicit table :data:`HANDLERS`.
The API for the UI is described in :mod:`core.ceremony` (the package docstring); the
names callers used to import from here are re-exported.
"""

from __future__ import annotations

import os
import re
import secrets as _secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.ceremony import records
from core.ceremony.adapters.exporter import FolderExporter
from core.ceremony.adapters.keyholder import ClientKeyholder
from core.ceremony.adapters.preflight import core_preflight
from core.ceremony.adapters.recipients import WorkspaceRecipients
from core.ceremony.errors import (
    CarrierRefusedError,
    EngineError,
    ShareRefusedError,
    StepFailedError,
)
from core.ceremony.manifests import ManifestStore, is_practice_manifest
from core.ceremony.model import (
    CONFIRMED_KINDS,
    NO_ACTION_KINDS,
    QR_CARRIERS,
    RoleKind,
    Script,
    StepKind,
)
from core.ceremony.ports import (
    CardAccess,
    CarrierKeyholder,
    ExportedFile,
    Exporter,
    Keyholder,
    PreflightPort,
    QRCamera,
    RecipientSource,
)
from core.ceremony.script import load_script
from core.ceremony.state import CeremonyState, StepRun, StepState
from core.ceremony.steps import byok, rotation
from core.ceremony.steps.collection import CollectionSteps
from core.ceremony.steps.distribution import DistributionSteps
from core.ceremony.steps.finish import FinishSteps
from core.ceremony.steps.simple import SimpleSteps
from core.ceremony.workspace import Workspace
from core.journal import Journal

__all__ = [
    "HANDLERS",
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

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")


#: A step handler: ``handler(ceremony, run, **inputs) -> public results``.
Handler = Callable[..., dict[str, Any]]

#: The action of each step kind (``perform``); kinds in ``NO_ACTION_KINDS`` have none.
HANDLERS: Mapping[StepKind, Handler] = {
    StepKind.CHECKLIST: SimpleSteps._do_checklist,
    StepKind.ATTENDANCE: SimpleSteps._do_attendance,
    StepKind.PREFLIGHT: SimpleSteps._do_preflight,
    StepKind.VERIFY_FINGERPRINT: SimpleSteps._do_verify_fingerprint,
    StepKind.GENERATE: SimpleSteps._do_generate,
    StepKind.VERIFY_KCV: SimpleSteps._do_verify_kcv,
    StepKind.DISTRIBUTE_SHARES: DistributionSteps._do_distribute_shares,
    StepKind.COLLECT_SHARES: CollectionSteps._do_collect_shares,
    StepKind.CHECK_SHARES: CollectionSteps._do_check_shares,
    StepKind.RECOVER: FinishSteps._do_recover,
    StepKind.SEAL: FinishSteps._do_seal,
    StepKind.EXPORT: FinishSteps._do_export,
    StepKind.WIPE: FinishSteps._do_wipe,
    StepKind.CONTINUITY_STATEMENT: rotation.write_statement,
    StepKind.MARK_ROTATED_OUT: rotation.mark_old_set,
    StepKind.BYOK: byok.do_byok,
}


def _share_set_mismatch(script: Script, ws: Path) -> str:
    """Why ``script`` cannot run on medium ``ws`` before its first step ('' when it may): it
    collects or checks a share set it has not made itself, and the medium holds only sets
    of the other kind (:meth:`ManifestStore.kind_mismatch`)."""
    uses: list[str | None] = []
    for _act, step in script.steps():
        if step.kind is StepKind.DISTRIBUTE_SHARES:
            break  # later steps may use the set this ceremony makes
        if step.kind in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES):
            name = step.params.get("manifest")
            uses.append(str(name) if name else None)
    if not uses or not (ws / "manifests").is_dir():
        return ""
    store = ManifestStore(Workspace(ws), practice=script.practice, purpose=script.purpose)
    return store.kind_mismatch(uses)


class Ceremony(SimpleSteps, DistributionSteps, CollectionSteps, FinishSteps):
    """A running ceremony. See :mod:`core.ceremony` for the API."""

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
        mismatch = _share_set_mismatch(script, ws)
        if mismatch:
            raise EngineError(mismatch, code="share-set-kind")
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
    def progress(self) -> tuple[int, int]:
        """(steps done or skipped, total steps)."""
        done = sum(1 for s in self.steps if s.state in (StepState.DONE, StepState.SKIPPED))
        return done, len(self.steps)

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
        if run.kind in NO_ACTION_KINDS:
            run.performed = True
        if run.kind is StepKind.SUMMARY:
            self._summary_results(run)

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

    def withdraw_ack(self, role: str) -> None:
        """A role takes back its acknowledgment of the current step before the step is done
        (the box was unticked); recorded as ``step.ack_withdrawn``. Nothing if it had none."""
        run = self._require_running()
        self._role(role)
        if role not in run.acks:
            return
        run.acks.remove(role)
        self._record("step.ack_withdrawn", {"name": self.script.roles[role].name}, role=role, run=run)

    def perform(self, **inputs: Any) -> dict[str, Any]:
        """Run the current step's action; returns its public results.

        A failure marks the step FAILED (recorded with the reason) and raises
        :class:`StepFailedError`; earlier work is kept; :meth:`retry` re-opens the step.
        """
        run = self._require_running()
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it first")
        if run.kind in NO_ACTION_KINDS:
            return {}
        handler = HANDLERS.get(run.kind)
        if handler is None:  # pragma: no cover - every kind has one (tests check the table)
            raise EngineError(f"{run.kind.value} steps have no action")
        try:
            result: dict[str, Any] = handler(self, run, **inputs)
        except (EngineError, TypeError):
            raise
        except Exception as exc:  # anything from the keyholder, media or recipient files
            self._fail(run, exc)
            raise self._failed(run) from None
        return result

    def retry(self) -> None:
        """Re-open a FAILED step (collected shares, envelopes and exports are kept)."""
        run = self._require_running()
        if run.state is not StepState.FAILED:
            raise EngineError("only a failed step can be retried")
        run.state = StepState.ACTIVE
        self._record("step.retry", {"previous_error": run.error}, run=run)
        run.error = ""
        run.error_code = ""

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
        if run.kind in CONFIRMED_KINDS and not run.confirmed_by:
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
        self._void_own_set("aborted", reason.strip(), who)
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

    def _void_own_set(self, cause: str, reason: str, who: str) -> None:
        """The share set this ceremony made (genesis, reshare, rotation) is void when the
        ceremony does not finish: mark it on the medium (``retired/``) and journal it. A
        failure to write the mark is journaled; the abort goes on."""
        path = self._manifest_path
        if path is None or self.manifest is None:
            return
        from core.ceremony import retirement

        rot = self.rotation
        if rot is not None and rot.marked is not None:
            # the old set is already marked rotated out (signed, irrevocable): voiding the
            # new one too would leave no usable set; the journal says why it stays
            self._record(
                "set.aborted",
                {
                    "set_id": self.manifest.get("set_id"),
                    "cause": cause,
                    "kept": "the old set is already marked rotated out: the new set replaces it",
                },
            )
            return

        name = self.script.roles[who].name if who in self.script.roles else who
        details: dict[str, Any] = {
            "set_id": self.manifest.get("set_id"),
            "manifest_file": f"manifests/{path.name}",
            "cause": cause,
        }
        try:
            data = self.ws.read(f"manifests/{path.name}")
            retirement.write(
                self.ws,
                {**self.manifest, "_file": path.name},
                manifest_file=path.name,
                manifest_data=data,
                cause=cause,
                ceremony_id=self.ceremony_id,
                who=name or "the administrator",
                why=reason,
            )
            details["retirement_file"] = (
                f"{retirement.FOLDER}/{retirement.record_name(self.manifest.get('set_id'), self.practice)}"
            )
        except Exception as exc:  # the abort must go on: say so in the journal
            details["error"] = str(exc) or type(exc).__name__
        self._record("set.aborted", details, role=who if who in self.script.roles else "")

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
                    wanted.append(("transcript", "transcript.md.sig", self.exports["transcript_sig"]))
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
