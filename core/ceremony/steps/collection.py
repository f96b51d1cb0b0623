"""Collect-shares and check-shares: the manifest chosen, each share taken on its carrier.

The engine keeps the tally of the step (:class:`~core.ceremony.state.ShareTally`: shares
accepted per group, refusals); screens read it through
:class:`~core.ceremony.state.CollectionProgress`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.carriers.errors import WrongCard
from core.ceremony import groups
from core.ceremony.errors import (
    EngineError,
    ShareRefusedError,
)
from core.ceremony.facts import (
    is_carrier_error,
    public_facts,
    sha256_hex,
)
from core.ceremony.groups import name_groups_in
from core.ceremony.manifests import manifest_bytes
from core.ceremony.model import (
    QR_CARRIERS,
    StepKind,
)
from core.ceremony.ports import (
    CardAccess,
)
from core.ceremony.state import (
    CollectionProgress,
    GroupProgress,
    StepRun,
    StepState,
    group_layout,
)
from core.ceremony.steps.base import CeremonyBase
from core.keyholder.errors import KeyholderDied
from core.safeio import SafeIOError

__all__ = ["CollectionSteps"]


class CollectionSteps(CeremonyBase):
    """The collect-shares and check-shares steps."""

    def _do_collect_shares(self, run: StepRun, manifest: str | None = None) -> dict[str, Any]:
        if run.results.get("set_id"):
            return dict(run.results)  # retry: recovery already started, shares kept
        m = self.manifest_store.select(manifest or run.step.params.get("manifest"))
        signed = bool(m.pop("_signed"))
        self.rotated_out = m.pop("_rotated_out", None)
        self.rotated_out_file = str(m.pop("_source_file", ""))
        self.keyholder.begin_recovery(m)
        self.manifest = m
        self.collected_set = str(m["set_id"])
        run.display = {"set_id": self.collected_set, "accepted": [], "manifest_signed": signed}
        extra: dict[str, Any] = {}
        if self.rotated_out is not None:  # a transition ceremony, inside the window
            extra["transition"] = self.rotated_out.to_dict()
            run.display["transition"] = self.rotated_out.describe()
            self._record(
                "transition.opened",
                {
                    "set_id": self.collected_set,
                    "note": f"share set {self.collected_set} is ROTATED OUT; this transition "
                    f"ceremony opens it for the online re-wrap only, until "
                    f"{self.rotated_out.transition_expires_utc}",
                    **self.rotated_out.to_dict(),
                },
                run=run,
            )
        return self._result(
            run,
            {
                "set_id": self.collected_set,
                "manifest_sha256": sha256_hex(manifest_bytes(m)),
                "manifest_signed": signed,
                **extra,
            },
            performed=False,
        )

    def _do_check_shares(self, run: StepRun, manifest: str | None = None) -> dict[str, Any]:
        if run.results.get("set_id"):
            return dict(run.results)  # retry: keep the checks done so far
        m = self.manifest_store.select(manifest or run.step.params.get("manifest"))
        signed = bool(m.pop("_signed"))
        self.rotated_out = m.pop("_rotated_out", None)
        m.pop("_source_file", None)
        self.manifest = m
        run.display = {"set_id": str(m["set_id"]), "checked": [], "manifest_signed": signed}
        extra: dict[str, Any] = {}
        if self.rotated_out is not None:  # checked, and reported as rotated out
            extra["rotated_out"] = self.rotated_out.to_dict()
            run.display["rotated_out"] = self.rotated_out.describe()
        return self._result(
            run, {"set_id": str(m["set_id"]), "manifest_signed": signed, **extra}, performed=False
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
                out = public_facts(self.keyholder.check_share(self.manifest, carrier, payload))
            else:
                out = public_facts(self.keyholder.add_share(carrier, payload))
        except (NotImplementedError, KeyholderDied) as exc:
            self._fail(run, exc)
            raise self._failed(run) from None
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
            raise self._failed(run) from None
        except Exception as exc:
            raise self._share_refused(run, "scanner", exc) from None
        if reply.get("status") != "complete":
            return {"status": reply.get("status", ""), "count": reply.get("count", 0)}
        out = self._share_accepted(run, "scanner", public_facts(reply))
        return {**out, "status": "complete"}

    def _card_payload(self, run: StepRun, payload: Any) -> CardAccess:
        if not isinstance(payload, CardAccess):
            raise EngineError("a card share is entered with a CardAccess (module, serial, PIN)")
        m = self.manifest or {}
        holders = [h for h in m.get("holders") or [] if isinstance(h, dict)]
        cards = {str(h["card_serial"]): h for h in holders if h.get("card_serial")}
        if payload.serial and cards and payload.serial not in cards:
            exc = self._card_of_old_set(str(payload.serial)) or WrongCard(
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
            pin_from_terminal=payload.pin_from_terminal,
            sealed=sealed,
            expected_serials=tuple(sorted(cards)),
            set_id=str(m["set_id"]) if m.get("set_id") is not None else None,
        )

    def _card_of_old_set(self, serial: str) -> WrongCard | None:
        """The refusal for a card that holds a share of a superseded set (manifests in the
        workspace), or None."""
        for old in self._manifests():
            holders = [h for h in old.get("holders") or [] if isinstance(h, dict)]
            if not any(str(h.get("card_serial", "")) == serial for h in holders):
                continue
            newer = self.superseded_by(str(old["set_id"]))
            if newer is not None:
                return WrongCard(
                    f"card {serial} holds a share of set {old['set_id']}, superseded by set "
                    f"{newer['set_id']} (ceremony {newer.get('ceremony_id', '?')}); it is "
                    "refused: bring the card that holds the share of the current set",
                    set_id=str(old["set_id"]),
                )
        return None

    def _share_refused(self, run: StepRun, carrier: str, exc: BaseException) -> ShareRefusedError:
        """Record a refused share (the step stays active); the error to raise."""
        run.tally.refused += 1
        if is_carrier_error(exc):
            return self._carrier_refused(run, exc, carrier)
        reason = str(exc) or type(exc).__name__
        set_id = getattr(exc, "set_id", None)
        newer = self.superseded_by(str(set_id)) if set_id is not None else None
        if newer is not None:
            reason = self.manifest_store.rotation_refusal(str(set_id)) or (
                f"this share belongs to set {set_id}, superseded by set {newer['set_id']} "
                f"(ceremony {newer.get('ceremony_id', '?')}); it is refused"
            )
        policy = (self.manifest or {}).get("policy")
        if isinstance(policy, Mapping):
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
                    self.manifest_store.rotation_refusal(got)
                    or f"this share belongs to set {got}, superseded by set {newer['set_id']} "
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
        elif run.kind is StepKind.CHECK_SHARES and self.rotated_out is not None:
            from core.ceremony.steps import rotation

            out.update(rotation.rotated_out_verdict(self.rotated_out))
            details.update(out)
        self._record("step.input", details, run=run)
        run.tally.message = str(out.get("message") or run.tally.message)
        if run.kind is StepKind.CHECK_SHARES:
            run.display.setdefault("checked", []).append(out)
            run.performed = True
            if ok:
                self._tally(run, out)
            else:
                run.tally.failed_checks += 1
            if refusal is not None:
                raise ShareRefusedError(refusal[0], set_id=refusal[2], code=refusal[1])
        else:
            run.display.setdefault("accepted", []).append(out)
            self._tally(run, out)
            run.tally.complete = bool(out.get("complete"))
            if out.get("complete"):
                run.performed = True
                self._record(
                    "step.result", {"complete": True, "set_id": self.collected_set}, run=run
                )
        return out

    def _name_groups(self, run: StepRun, out: dict[str, Any]) -> None:
        """Put the script's group names into an accepted share's progress: ``groups`` (one
        line per group: name, threshold, received), ``group_name`` and a ``message`` that
        names them (the keyholder knows groups by number only; issue 18)."""
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

    @staticmethod
    def _tally(run: StepRun, out: Mapping[str, Any]) -> None:
        try:
            key = (int(out.get("group") or 1), int(out.get("index") or 0))
        except (TypeError, ValueError):
            return
        if key[1] and key not in run.tally.accepted:
            run.tally.accepted.append(key)

    def _holder_names(self) -> dict[tuple[int, int], str]:
        """(group, member) -> the holder's name as the manifest records it (public; else the
        script's name for the custodian, else their id)."""
        out: dict[tuple[int, int], str] = {}
        for h in (self.manifest or {}).get("holders") or []:
            if not isinstance(h, Mapping):
                continue
            try:
                key = (int(h.get("group") or 1), int(h.get("member") or 0))
            except (TypeError, ValueError):
                continue
            cid = str(h.get("custodian") or "")
            role = self.script.roles.get(cid)
            out[key] = str(h.get("name") or (role.name if role is not None else cid) or f"share {key[1]}")
        return out

    def collection_progress(self, run: StepRun | None = None) -> CollectionProgress | None:
        """Read-only view of a collect-/check-shares step (default: the current step; None
        when it is not one, or before its manifest was chosen): shares in per group against
        the manifest's policy, refusals, and whether the key can be rebuilt."""
        run = run or self.current_step
        if (
            run is None
            or run.kind not in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES)
            or "set_id" not in run.results
        ):
            return None
        group_threshold, layout = group_layout(self.manifest)
        policy = (self.manifest or {}).get("policy")
        sizes = (
            {i + 1: len(members) for i, (_n, _t, members) in enumerate(groups.policy_groups(policy))}
            if isinstance(policy, Mapping)
            else {}
        )
        have: dict[int, int] = {}
        for g, _member in run.tally.accepted:
            have[g] = have.get(g, 0) + 1
        names = self._holder_names()
        holders: dict[int, list[str]] = {}
        for g, member in run.tally.accepted:
            holders.setdefault(g, []).append(names.get((g, member), f"share {member}"))
        return CollectionProgress(
            set_id=str(run.results["set_id"]),
            checking=run.kind is StepKind.CHECK_SHARES,
            groups=tuple(
                GroupProgress(n, name, have.get(n, 0), t, sizes.get(n, 0), tuple(holders.get(n, ())))
                for n, name, t in layout
            ),
            group_threshold=group_threshold,
            accepted=len(run.tally.accepted),
            refused=run.tally.refused + run.tally.failed_checks,
            complete=run.tally.complete,
            message=run.tally.message,
        )
