"""Distribute-shares: the split, and each custodian's share handed over on its carrier.

The engine keeps, per custodian, where their share is (:class:`~core.ceremony.state.Handover`:
due, shown, written down, checked, or check skipped with a reason) and journals each
change as its own event; screens read it through
:class:`~core.ceremony.state.DistributionProgress`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from core.ceremony import groups, records
from core.ceremony.errors import (
    CarrierRefusedError,
    EngineError,
    ShareRefusedError,
)
from core.ceremony.facts import (
    fp_words,
    grouped_kcv,
    int_or_str,
    is_carrier_error,
    public_facts,
    sha256_hex,
)
from core.ceremony.manifests import manifest_bytes
from core.ceremony.model import (
    RoleKind,
    StepKind,
)
from core.ceremony.ports import (
    CardAccess,
)
from core.ceremony.state import (
    DistributionProgress,
    GroupProgress,
    Handover,
    HandoverState,
    StepRun,
    StepState,
)
from core.ceremony.steps.base import CeremonyBase
from core.keyholder.errors import KeyholderDied

__all__ = ["DistributionSteps"]


class DistributionSteps(CeremonyBase):
    """The distribute-shares step (split, show, cards, written, checked, skipped)."""

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
        data = manifest_bytes(manifest)
        path = (
            self.workspace
            / "manifests"
            / f"{'PRACTICE-' if self.practice else ''}set-{set_id}.json"
        )
        self.ws.write_new("manifests", path.name, data)
        self.manifest = manifest
        self._manifest_path = path
        run.display = {"set_id": set_id, "carriers": carriers, "cards": {}}
        run.handovers = {c: Handover(c, carriers[c]) for c in self._custodians_for_split()}
        return self._result(
            run,
            {
                "set_id": set_id,
                "manifest_file": str(path.relative_to(self.workspace)),
                "manifest_sha256": sha256_hex(data),
                "manifest": manifest,
                "supersedes": supersedes,
                "fingerprint": manifest.get("fingerprint", ""),
                "kcv": grouped_kcv(str(manifest.get("kcv", ""))),
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
                self._administrator(),
            )
        if display == "card":
            return self._write_card(run, custodian, order.index(custodian), card)
        try:
            out = public_facts(self.keyholder.show_share(order.index(custodian), display))
        except Exception as exc:
            if is_carrier_error(exc):
                raise self._carrier_refused(run, exc, display, shown_to=custodian) from None
            self._fail(run, exc)
            raise self._failed(run) from None
        self._handed_over(run, custodian, display, HandoverState.SHOWN)
        self._record(
            "step.input",
            {"shown_to": custodian, "display": display, **out},
            role=custodian,
            run=run,
        )
        return out

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
            module=self._card_module(run, card), serial=serial, pin=card.pin, sealed=None,
            pin_from_terminal=card.pin_from_terminal,
        )
        try:
            port = self._carrier_port("write shares to smart cards")
            res = port.write_card(
                member,
                access,
                commitment=commitment,
                meta={"set": int_or_str(self.manifest["set_id"]), "custodian": custodian},
                bits=int(run.step.params.get("card_key_bits", 3072)),
                store_on_card=bool(run.step.params.get("card_data_object", True)),
            )
        except Exception as exc:
            if is_carrier_error(exc):
                raise self._carrier_refused(run, exc, "card", shown_to=custodian) from None
            self._fail(run, exc)
            raise self._failed(run) from None
        facts = public_facts(dict(res.get("card") or {}))
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
            entry["sealed_sha256"] = sha256_hex(data)
        if holder is not None:
            holder.update(entry)
        manifest_sha = self._save_manifest()
        self._handed_over(
            run,
            custodian,
            "card",
            HandoverState.CHECKED if entry["verified"] else HandoverState.SHOWN,
        )
        run.display.setdefault("cards", {})[custodian] = dict(entry)
        out = {
            **entry,
            "key_fingerprint_words": fp_words(str(entry["key_fingerprint"])),
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
        data = manifest_bytes(self.manifest)
        if self._manifest_path is not None:
            self.ws.replace("manifests", self._manifest_path.name, data)
        for run in self.steps:
            if run.kind is StepKind.DISTRIBUTE_SHARES and run.results.get("set_id") == str(
                self.manifest["set_id"]
            ):
                run.results["manifest"] = self.manifest
                run.results["manifest_sha256"] = sha256_hex(data)
        return sha256_hex(data)

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
                public_facts(t)
                for t in port.list_cards(self._card_module(run, CardAccess(module=module)))
            ]
        except NotImplementedError as exc:
            raise EngineError(str(exc)) from None
        except Exception as exc:
            if is_carrier_error(exc):
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
            if is_carrier_error(exc):
                raise CarrierRefusedError(
                    str(exc), carrier="card", code=getattr(exc, "code", None)
                ) from None
            raise
        return [public_facts(t) for t in tokens]

    # ------------------------------------------------------------------ the room's record

    def _handed_over(self, run: StepRun, custodian: str, display: str, state: HandoverState) -> None:
        if custodian not in run.shown:
            run.shown.append(custodian)
        h = run.handovers.setdefault(
            custodian, Handover(custodian, self.share_carriers(run).get(custodian, "screen"))
        )
        h.display = display
        h.state = state

    def _handover(self, custodian: str, *wanted: HandoverState) -> tuple[StepRun, Handover]:
        """The current distribute-shares step and ``custodian``'s handover, which must be
        in one of the ``wanted`` states."""
        run = self._require_running()
        if run.kind is not StepKind.DISTRIBUTE_SHARES or not run.performed:
            raise EngineError("shares are handed out only in a distribute-shares step, after the split")
        if run.state is StepState.FAILED:
            raise EngineError("the step failed: retry it first")
        h = run.handovers.get(custodian)
        if h is None:
            raise EngineError(f"{custodian} is not a custodian of the new share set")
        if h.state not in wanted:
            if h.state is HandoverState.DUE:
                raise EngineError(f"{custodian} has not been shown their share yet")
            raise EngineError(f"{custodian}'s share is already {h.state.value}")
        return run, h

    def distribution_progress(self, run: StepRun | None = None) -> DistributionProgress | None:
        """Read-only view of a distribute-shares step (default: the current step; None when
        it is not one, or before the split)."""
        run = run or self.current_step
        if run is None or run.kind is not StepKind.DISTRIBUTE_SHARES or not run.handovers:
            return None
        order = tuple(self._custodians_for_split())
        progress = DistributionProgress(
            set_id=str(run.results.get("set_id", "")),
            order=order,
            handovers={c: dataclasses.replace(h) for c, h in run.handovers.items()},
            acknowledge=tuple(r for r in run.required_roles if r in order),
            acks=tuple(run.acks),
        )
        policy = self.script.policy
        if policy is None:
            return progress
        # one line per group, by the script's names: its custodians done so far (issue 18)
        lines = groups.distribution_lines(
            policy.as_public(), [c for c in order if progress.is_done(c)]
        )
        return dataclasses.replace(
            progress,
            groups=tuple(
                GroupProgress(g.number, g.name, g.received, g.threshold, len(g.members))
                for g in lines
            ),
        )

    def share_written(self, custodian: str) -> None:
        """The custodian says every word of their share is written down (or, for a QR,
        copied square by square onto their QR grid card). Journaled as ``share.written``.

        Raises:
            EngineError: not in a distribute-shares step, the share was not shown yet, or
                it is past that point (checked, skipped).
        """
        run, h = self._handover(custodian, HandoverState.SHOWN)
        h.state = HandoverState.WRITTEN
        self._record(
            "share.written",
            {"custodian": custodian, "display": h.display},
            role=custodian,
            run=run,
        )

    def check_typed_share(self, custodian: str) -> dict[str, Any]:
        """Check the share the custodian typed back (the keyholder's finished entry)
        against the one handed out to them: the same set, and the same group and member as
        the manifest gives this custodian. The keyholder compares the entry with the
        manifest's commitments and wipes it; only the verdict comes back.

        Journaled as ``share.checked`` (``ok`` true or false). A mismatch raises
        :class:`ShareRefusedError` (code ``check-wrong-share`` for another custodian's
        share of this set, else ``commitment``); the custodian may type it again.

        Raises:
            EngineError: not in a distribute-shares step, or the share was not shown yet.
            ShareRefusedError: the typed share is not this custodian's share.
            StepFailedError: the keyholder cannot check typed shares (step FAILED).
        """
        run, h = self._handover(custodian, HandoverState.SHOWN, HandoverState.WRITTEN)
        if self.manifest is None:
            raise EngineError("the split has not been done")
        verify = getattr(self.keyholder, "verify_entry", None)
        try:
            if not callable(verify):
                raise NotImplementedError("this keyholder cannot check a typed-back share")
            res = public_facts(verify(list(self.manifest.get("commitments") or [])))
        except (NotImplementedError, KeyholderDied) as exc:
            self._fail(run, exc)
            raise self._failed(run) from None
        except Exception as exc:  # no finished entry, a malformed one...: type it again
            h.failed_checks += 1
            reason = str(exc) or type(exc).__name__
            code = str(getattr(exc, "code", "") or ShareRefusedError.code)
            self._record(
                "share.checked",
                {"custodian": custodian, "ok": False, "reason": reason, "code": code},
                role=custodian,
                run=run,
            )
            raise ShareRefusedError(reason, code=code) from None
        holder = next(
            (
                x
                for x in self.manifest.get("holders") or []
                if isinstance(x, dict) and x.get("custodian") == custodian
            ),
            None,
        )
        got = (int_or_str(res.get("group")), int_or_str(res.get("member")))
        same = holder is not None and (int_or_str(holder.get("group")), int_or_str(holder.get("member"))) == got
        matches = bool(res.get("matches"))
        details: dict[str, Any] = {"custodian": custodian, "group": got[0], "member": got[1]}
        if matches and same:
            h.state = HandoverState.CHECKED
            self._record("share.checked", {**details, "ok": True}, role=custodian, run=run)
            return {"ok": True, "message": "the share typed back is exactly the share handed out"}
        h.failed_checks += 1
        if matches:
            policy = self.manifest.get("policy") if self.manifest else None
            gname = (
                groups.group_name(policy, got[0])
                if isinstance(policy, Mapping) and policy.get("groups")
                else got[0]
            )
            reason = f"that is share {got[1]} of group {gname}, not this custodian's share"
            code = "check-wrong-share"
        else:
            reason = "the share typed back does NOT match the share handed out: check the sheet"
            code = "commitment"
        self._record(
            "share.checked", {**details, "ok": False, "reason": reason, "code": code}, role=custodian, run=run
        )
        raise ShareRefusedError(reason, code=code)

    def skip_share_check(self, custodian: str, reason: str, who: str = "") -> None:
        """Skip the typed-back check of ``custodian``'s share, saying why. Journaled as
        ``share.check_skipped`` (with the reason and who decided) and recorded on the
        exception sheet.

        Raises:
            EngineError: no reason, not in a distribute-shares step, the share was not
                shown yet, or it was already checked.
        """
        if not reason.strip():
            raise EngineError("say why the check is skipped (it is recorded)")
        run, h = self._handover(custodian, HandoverState.SHOWN, HandoverState.WRITTEN)
        who = who or self._administrator()
        self.record_exception(f"share check skipped for {custodian}: {reason.strip()}", who)
        h.state = HandoverState.SKIPPED
        h.reason = reason.strip()
        self._record(
            "share.check_skipped",
            {"custodian": custodian, "reason": h.reason, "who": who},
            role=who if who in self.script.roles else "",
            run=run,
        )

    def _administrator(self) -> str:
        return next(
            (r.id for r in self.script.roles.values() if r.kind is RoleKind.ADMINISTRATOR),
            "administrator",
        )
