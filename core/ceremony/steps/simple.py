"""The simple steps: checklist, attendance, preflight, fingerprint and KCV checks, generate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.ceremony.errors import (
    EngineError,
    StepFailedError,
)
from core.ceremony.facts import (
    fp_words,
    public_facts,
    same_fingerprint,
)
from core.ceremony.model import CONFIRMED_KINDS, StepKind
from core.ceremony.state import (
    StepRun,
)
from core.ceremony.steps.base import CeremonyBase

__all__ = ["SimpleSteps"]


class SimpleSteps(CeremonyBase):
    """Handlers of the simple step kinds, and the witness confirmation."""

    def _do_checklist(self, run: StepRun, checked: Sequence[int] = ()) -> dict[str, Any]:
        items = list(run.step.params.get("items", []))
        missing = [items[i] for i in range(len(items)) if i not in set(checked)]
        if missing:
            raise EngineError("not ticked yet: " + "; ".join(missing))
        return self._result(run, {"checked": items})

    def attendance_roles(self, run: StepRun | None = None) -> list[str]:
        """Role ids an attendance step lists (default: the current step), ``custodians``
        expanded to every custodian role, in script order without repeats."""
        run = run or self._require_running()
        return self._attendance_roles(run)

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
        run.display = {"subject": subject, "fingerprint": fp, "words": fp_words(fp)}
        return self._result(run, {"subject": subject, **public_facts(facts)})

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
        if run.kind not in CONFIRMED_KINDS:
            raise EngineError("this step has nothing to confirm")
        self._role(witness)
        if witness != run.step.params.get("witness"):
            raise EngineError(
                f"the script names {run.step.params.get('witness')} to confirm, not {witness}"
            )
        if not run.performed:
            raise EngineError("show the fingerprint first")
        shown = str(run.display.get("fingerprint", ""))
        if matches and out_of_band is not None and not same_fingerprint(shown, out_of_band):
            matches = False
        if not matches:
            self._fail(run, StepFailedError(f"{witness} reports the fingerprint does NOT match"))
            return
        if run.kind is StepKind.VERIFY_KCV and self.key_verified is False:
            # the keyholder compares what the witness confirmed (their typed copy, or the
            # words shown that they compared) with the key it holds, and only then lets it
            # be sealed or split
            copy = out_of_band if out_of_band is not None else " ".join(run.display.get("words") or [])
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
        if self.script.purpose == "rotate":
            from core.ceremony.steps import rotation

            return rotation.generate_new(self, run)
        if self.key_facts is not None:
            return dict(run.results)
        facts = self.keyholder.generate_master()
        self.key_facts = public_facts(facts)
        self.key_verified = True
        self._signing_key_known()
        return self._result(run, self.key_facts)

    def _do_verify_kcv(self, run: StepRun) -> dict[str, Any]:
        if self.rotation is not None:
            from core.ceremony.steps import rotation

            with rotation.using(self.keyholder, rotation.key_for(run) or "old"):
                facts = public_facts(self.keyholder.fingerprint())
            expected = rotation.expected_fingerprint(self, run)
        else:
            facts = public_facts(self.keyholder.fingerprint())
            expected = self._expected_fingerprint()
        if expected and expected.lower() != str(facts.get("fingerprint", "")).lower():
            raise StepFailedError(
                "the key's fingerprint differs from the manifest's: this is not the key of set "
                f"{self.manifest.get('set_id') if self.manifest else '?'}"
            )
        run.display = {
            "fingerprint": facts.get("fingerprint", ""),
            "kcv": facts.get("kcv", ""),
            "words": facts.get("kcv_words") or fp_words(str(facts.get("fingerprint", ""))),
            "expected": expected or "",
            # a rebuilt key no manifest vouches for: the witness's comparison is the check
            "not_verified": self.key_verified is False,
        }
        return self._result(run, {**facts, "matches_manifest": bool(expected)})
