"""The :class:`~core.ceremony.ports.Keyholder` port over the real keyholder process
(:class:`core.keyholder.client.KeyholderClient`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.ceremony.errors import ShareRefusedError
from core.ceremony.model import DEFAULT_CARD_MODULE
from core.ceremony.ports import FINISHED_ENTRY, CardAccess, QRCamera
from core.keyholder.errors import KeyholderDied, KeyholderError

__all__ = ["ClientKeyholder", "carrier_progress"]


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
        #: In a MasterKey rotation, which key each key use names ("old" or "new"; the
        #: keyholder refuses an unnamed use while it holds two). None outside a rotation.
        #: Set by :mod:`core.ceremony.steps.rotation`.
        self.key: str | None = None

    def _key(self) -> dict[str, Any]:
        return {"key": self.key} if self.key else {}

    @property
    def practice(self) -> bool:
        """True if the keyholder was started in practice mode (checked by the engine)."""
        return bool(getattr(self.client, "info", {}).get("practice", False))

    def generate_master(self) -> dict[str, Any]:
        """See :class:`Keyholder`."""
        return dict(self.client.generate_master(**self._key()))

    def fingerprint(self) -> dict[str, Any]:
        """See :class:`Keyholder`."""
        return dict(self.client.fingerprint(**self._key()))

    def wipe(self) -> None:
        """See :class:`Keyholder`."""
        self._members = []
        self.client.wipe()
        self.key = None

    def wipe_keep_signing(self) -> None:
        """Wipe every secret but the MasterKey's derived signing key, which then signs
        only the closed journal's final hash and the transcript (once each)."""
        self._members = []
        self.client.wipe(keep_signing_key=True, **self._key())
        self.key = None

    def signing_available(self) -> bool:
        """True while the keyholder holds the MasterKey or its kept signing key."""
        st = self.client.status()
        return bool(st.get("master_held") or st.get("signing_key_held"))

    def sign(self, purpose: str, message: bytes) -> dict[str, Any]:
        """The keyholder's domain-separated SIGN: ``signature`` (bytes) and the signing
        key's ``fingerprint`` (hex)."""
        from core.keyholder import ops_core

        reply = self.client.call(ops_core.SIGN, purpose=purpose, message=message, **self._key())
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
            self.client, {"group_threshold": gt, "groups": slip, "extendable": True}, **self._key()
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
        extra: dict[str, Any] = {"meta": dict(meta), "store_on_card": store_on_card}
        if commitment is not None:
            extra["commitment"] = dict(commitment)
        if card.pin_from_terminal:
            # one call, one PIN typed on the keyholder's own terminal: key made, share written
            reply = cc.write_share(module, serial, None, group, mem, None, provision={"bits": bits},
                                   pin_from_terminal=True, **extra)
            key = dict(reply.get("key") or {})
        else:
            key = cc.provision(module, serial, card.pin, bits=bits)
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
        extra = verify_fields(manifest) if manifest is not None else {}
        self._carrier_call(lambda: self._carriers().scanner_reset(**extra))
        self._scanner_check = want

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """See :class:`CarrierKeyholder`."""
        self._scanner_mode(None)
        reply = self._carrier_call(lambda: self._carriers().scanner_key(key, t_us))
        if "share" not in reply:
            return {"status": reply.get("status"), "count": reply.get("count", 0)}
        return {"status": "complete", **carrier_progress(reply)}

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
        return {"status": "complete", **carrier_verdict(reply, manifest)}

    @staticmethod
    def _carrier_call(fn: Callable[[], Any]) -> dict[str, Any]:
        """Run a carrier operation; a share refused by the recovery becomes
        :class:`ShareRefusedError` (with its set), carrier errors pass unchanged."""
        from core.keyholder import ops_shares  # noqa: F401  (registers SharesError)

        try:
            return dict(fn() or {})
        except KeyholderError as exc:
            if isinstance(exc, KeyholderDied):
                raise
            raise ShareRefusedError(exc.message, set_id=exc.set_id, code=exc.code) from None

    def _scan_one(self, cc: Any, key: memoryview, t_us: int) -> dict[str, Any]:
        return self._carrier_call(lambda: cc.scanner_key(key, t_us))

    def _add_by_carrier(self, carrier: str, payload: Any) -> dict[str, Any]:
        reply = self._read_by_carrier(carrier, payload, None)
        out = carrier_progress(reply)
        if carrier == "card":
            out.update(card_facts(reply))
        return out

    def _read_by_carrier(
        self, carrier: str, payload: Any, manifest: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Read a share by a carrier into the keyholder: into the recovery (``manifest``
        None) or verify-only against ``manifest``'s commitments. The raw public reply."""
        cc = self._carriers()
        verify = verify_fields(manifest) if manifest is not None else {}
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
            if payload.pin_from_terminal:
                extra["pin_from_terminal"] = True
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
        if isinstance(payload, str) and payload == FINISHED_ENTRY:
            fin = dict(ops_shares.client_entry_finish(self.client))
            if fin.get("status") != "ok":
                raise ShareRefusedError("the typed share is not complete and checked yet")
            return fin
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

        try:
            self.client.call(ops_shares.ENTRY_CLEAR)
        except KeyholderError:
            pass  # the keyholder is gone or has no entry: nothing left to clear

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Typed entry word by word, checksum, then add to the recovery; other carriers
        through ``ops_carriers`` (the keyholder adds the share it read to the recovery)."""
        from core.keyholder import ops_shares

        if _held_entry(carrier, payload):
            carrier = "typed"  # a scanner burst read on the keyholder's terminal: held as its entry
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

        if _held_entry(carrier, payload):
            carrier = "typed"
        if carrier != "typed":
            reply = self._read_by_carrier(carrier, payload, manifest)
            out = carrier_verdict(reply, manifest)
            if carrier == "card":
                out.update(card_facts(reply))
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

    def verify_entry(self, commitments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Check the finished typed entry the keyholder holds (a share typed back at
        distribution) against ``commitments``, then wipe the entry. Returns ``matches``,
        ``set_id``, ``group``, ``member`` (public)."""
        from core.keyholder import ops_shares

        try:
            res = dict(self.client.call(ops_shares.VERIFY_SHARE, commitments=list(commitments)))
        finally:
            self._clear_entry()
        return {
            "matches": bool(res.get("matches")),
            "set_id": str(res.get("set", "")),
            "group": res.get("group"),
            "member": res.get("member"),
        }

    def recover(self) -> dict[str, Any]:
        """Rebuild the key (the keyholder checks the expected fingerprint itself)."""
        from core.keyholder import ops_shares

        return dict(ops_shares.client_recover(self.client))

    def byok_export(
        self,
        provider: str,
        *,
        wrapping_key: bytes,
        witness: str,
        confirmed_fingerprint: str,
        fields: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Wrap the MasterKey for a provider's import (``core.keyholder.ops_seal``
        ``byok_aws``/``gcp``/``azure``/``vault``). ``confirmed_fingerprint`` is what the
        witness confirmed (hex or the 26 words); the keyholder checks it against
        ``wrapping_key`` and refuses a mismatch. Returns ``files`` (name -> bytes, public),
        ``valid_until_utc``, ``method`` and ``record`` (the metadata)."""
        from core.keyholder import ops_seal

        call = {
            "aws": ops_seal.byok_aws,
            "gcp": ops_seal.byok_gcp,
            "azure": ops_seal.byok_azure,
            "vault": ops_seal.byok_vault,
        }.get(provider)
        if call is None:
            raise ValueError(f"unknown BYOK provider {provider!r}")
        reply = call(
            self.client,
            wrapping_key=wrapping_key,
            witness=witness,
            confirmed_fingerprint=confirmed_fingerprint,
            **dict(fields),
            **self._key(),
        )
        return dict(reply)

    def confirm_kcv(self, witness: str, kcv: str) -> dict[str, Any]:
        """A witness confirmed the KCV of a key rebuilt without a manifest fingerprint; the
        keyholder compares it with the key and only then allows sealing or splitting."""
        return dict(self.client.kcv_confirm(witness, kcv, **self._key()))

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
            transition_expires_utc=header.get("transition_expires_utc") or None,
            **self._key(),
        )
        return bytes(reply["envelope"])

    def rotation_begin(self, old_set_id: int, old_policy: Mapping[str, Any]) -> dict[str, Any]:
        """Enter a MasterKey rotation: the held (recovered, verified) key becomes the old
        one; the new key's slot opens (``core.keyholder.ops_rotation``)."""
        from core.keyholder import ops_rotation

        return ops_rotation.client_rotation_begin(
            self.client, old_set_id=old_set_id, old_policy=dict(old_policy)
        )

    def transition_begin(self, manifest: bytes) -> dict[str, Any]:
        """Open the held rotated-out key for a transition ceremony, under its signed mark
        (the keyholder checks the mark and takes the window and successor from it)."""
        from core.keyholder import ops_rotation

        return ops_rotation.client_transition_begin(self.client, manifest)

    def rotation_statement(self, **fields: Any) -> dict[str, Any]:
        """The continuity statement, built and signed by both keys in the keyholder."""
        from core.keyholder import ops_rotation

        return ops_rotation.client_rotation_statement(self.client, **fields)


def verify_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields of a verify-only carrier read against ``manifest``."""
    return {"purpose": "verify", "commitments": list(manifest.get("commitments") or [])}


def card_facts(reply: Mapping[str, Any]) -> dict[str, Any]:
    card = dict(reply.get("card") or {})
    return {
        "card_serial": card.get("serial", ""),
        "key_fingerprint": card.get("key_fingerprint", ""),
        "card_source": card.get("source", ""),
    }


def carrier_verdict(reply: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
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


def carrier_progress(reply: Mapping[str, Any]) -> dict[str, Any]:
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


def _held_entry(carrier: str, payload: Any) -> bool:
    """A wedge-scanner burst the keyholder read on its own terminal (``entry_terminal``):
    the share is held as its finished entry, exactly like a typed one."""
    return carrier == "scanner" and isinstance(payload, str) and payload == FINISHED_ENTRY


if TYPE_CHECKING:
    from core.ceremony.ports import CarrierKeyholder, EntryKeyholder, Keyholder

    def _conforms(port: ClientKeyholder) -> tuple[Keyholder, CarrierKeyholder, EntryKeyholder]:
        """mypy: the real adapter satisfies every keyholder port of the engine."""
        return port, port, port
