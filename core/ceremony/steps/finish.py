"""The steps that end a ceremony's work with the key: recover, seal, export, wipe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.ceremony import records
from core.ceremony.errors import (
    StepFailedError,
)
from core.ceremony.facts import (
    fp_words,
    public_facts,
    raw_signature,
    sha256_hex,
)
from core.ceremony.manifests import manifest_bytes
from core.ceremony.model import StepKind
from core.ceremony.ports import ExportedFile
from core.ceremony.state import (
    ExportVerdict,
    StepRun,
    decide_medium_verdict,
)
from core.ceremony.steps.base import CeremonyBase

__all__ = ["FinishSteps"]


class FinishSteps(CeremonyBase):
    """Handlers of recover, seal, export and wipe."""

    def _do_recover(self, run: StepRun) -> dict[str, Any]:
        if self.key_facts is not None and run.results:
            return dict(run.results)
        facts = public_facts(self.keyholder.recover())
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

    def _do_seal(self, run: StepRun) -> dict[str, Any]:
        if self.key_facts is None:
            raise StepFailedError("no key is held: generate or recover it first")
        self._require_verified_key("seal")
        if run.step.params.get("key") == "old":
            from core.ceremony.steps import rotation

            if self.script.purpose == "transition":
                return rotation.seal_in_transition(self, run)
            return rotation.seal_transitional(self, run)
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
            rfp = str(facts.get("fingerprint", ""))
            # public: what the room sees after sealing (recipient, its key's fingerprint
            # words, the envelope file and its size)
            run.results.setdefault("sealed", {})[rid] = {
                "recipient": spec.description or rid,
                "kind": str(facts.get("kind", "")),
                "fingerprint": rfp,
                "fingerprint_words": fp_words(rfp),
                "file": name,
                "sha256": sha256_hex(data),
                "size": len(data),
            }
            self._record(
                "step.result",
                {
                    "recipient": rid,
                    "recipient_fingerprint": facts.get("fingerprint", ""),
                    "file": name,
                    "sha256": sha256_hex(data),
                    "size": len(data),
                },
                run=run,
            )
        if records.can_sign(self.keyholder) and self.seal_manifest is None:
            from core.seal import envelope as _envelope

            self.seal_manifest = _envelope.seal_manifest(
                dict(self.envelopes.values()),
                ceremony_id=self.ceremony_id,
                signer=lambda purpose, msg: raw_signature(
                    records.sign_block(self.keyholder, purpose, msg)
                ),
            )
            run.results["seal_manifest"] = {
                "file": f"{prefix}seal-manifest.json",
                "sha256": sha256_hex(self.seal_manifest),
                "size": len(self.seal_manifest),
            }
            self._record(
                "step.result",
                {
                    "seal_manifest": f"{prefix}seal-manifest.json",
                    "sha256": sha256_hex(self.seal_manifest),
                    "signed": True,
                },
                run=run,
            )
        run.performed = True
        return {rid: {"file": n, "sha256": sha256_hex(d)} for rid, (n, d) in self.envelopes.items()}

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

    def _do_export(self, run: StepRun) -> dict[str, Any]:
        try:
            results = self._export(run)
        except Exception as exc:
            self._medium_verdict(run, error=str(exc) or type(exc).__name__)
            raise
        if not results.get("files"):
            self._medium_verdict(run, nothing=True)
        return results

    def _export(self, run: StepRun) -> dict[str, Any]:
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
            files[f"{prefix}manifest-set-{self.manifest['set_id']}.json"] = manifest_bytes(
                self.manifest
            )
        if "manifest" in contents or "card-shares" in contents:
            # sealed share files of cards without data objects travel with the manifest
            files.update(self.card_files)
        if self.rotation is not None or "statement" in contents:
            from core.ceremony.steps import rotation

            files.update(rotation.export_files(self, contents))
        if not files:
            run.performed = True
            return self._result(run, {"folder": folder, "files": {}, "deferred": list(contents)})
        written, folder = self._write_export(folder, files)
        self._medium_verdict(run)
        return self._result(
            run,
            {
                "folder": folder,
                "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in written},
                "deferred": [c for c in contents if c in ("journal", "transcript")],
            },
        )

    def _medium_verdict(self, run: StepRun, *, error: str = "", nothing: bool = False) -> None:
        """Decide what the room is told about the export medium, keep it on the step and
        journal it (``export.verdict``)."""
        target = getattr(self.exporter, "target", None)
        medium = target() if callable(target) else None
        label = str(getattr(self.exporter, "label", "") or "")
        label = label or (str(medium.label) if medium is not None else "the export medium")
        scratch = bool(getattr(medium, "demo", False)) and bool(getattr(self.exporter, "scratch", True))
        last = getattr(self.exporter, "last", None)
        run.verdict = decide_medium_verdict(
            label,
            error=error,
            nothing=nothing,
            safe_to_remove=None if last is None else bool(last.safe_to_remove),
            unmounted=bool(getattr(last, "unmounted", False)),
            scratch=scratch,
            notes=[str(n) for n in getattr(last, "notes", ())],
            directory=str(getattr(last, "directory", "")),
        )
        self._record("export.verdict", run.verdict.as_public(), run=run)

    @property
    def export_verdict(self) -> ExportVerdict | None:
        """The verdict on the medium of the last export step that wrote (or failed)."""
        for run in reversed(self.steps):
            if run.verdict is not None:
                return run.verdict
        return None

    def _do_wipe(self, run: StepRun) -> dict[str, Any]:
        # the MasterKey goes now; only its signing key stays (locked), to sign the journal
        # and the transcript when the journal is closed (core.ceremony.records)
        records.wipe(self.keyholder, keep_signing=bool(self.signing_fp))
        self.key_facts = None
        self.key_verified = None
        return self._result(
            run, {"wiped": True, "signing_key_kept_for_the_journal": bool(self.signing_fp)}
        )

    def _summary_results(self, run: StepRun) -> None:
        """The summary step's public results, shown before the witness acknowledges: the
        share set id, the key's check value and words, the files written so far (name and
        size) and the journal's rows so far."""
        key: dict[str, Any] = {}
        set_id: Any = self.manifest.get("set_id") if self.manifest else None
        for other in self.steps:
            res = other.results
            if other.kind in (StepKind.GENERATE, StepKind.RECOVER) and res.get("fingerprint"):
                key = dict(res)  # the last one: the new key of a rotation
            if set_id is None and res.get("set_id"):
                set_id = res.get("set_id")
        fp = str(key.get("fingerprint", ""))
        files: list[dict[str, Any]] = []
        if self._manifest_path is not None:
            try:
                size = len(self.ws.read(f"manifests/{self._manifest_path.name}"))
            except Exception:  # the summary shows what it can
                size = -1
            files.append({"name": f"manifests/{self._manifest_path.name}", "size": size})
        for folder, written in self.written.items():
            files += [{"name": f"{folder}/{f.name}", "size": f.size} for f in written]
        run.results.update(
            {
                "set_id": "" if set_id is None else str(set_id),
                "kcv": str(key.get("kcv", "")),
                "fingerprint": fp,
                "kcv_words": list(key.get("kcv_words") or fp_words(fp)),
                "files": files,
                "journal_rows": self.journal.count,
            }
        )
