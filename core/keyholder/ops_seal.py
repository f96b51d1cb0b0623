"""Seal operations (0x02xx): envelopes and BYOK wraps, run where the secrets live.

The parent sends only public inputs (a recipient's public key and its witness
confirmation, ids, provider wrapping keys, import tokens); the keyholder seals the held
MasterKey, or a held share, and answers with ciphertext only.

| opcode | name            | request fields                                        | reply fields |
|--------|-----------------|-------------------------------------------------------|--------------|
| 0x0201 | seal_envelope   | recipient (JSON, ``Recipient.to_public_dict()`` with a confirmation), kind (``masterkey``/``shard``), cluster_id, region_id, ceremony_id, [created_utc], [share_index] (shard), [key] (rotation), [transition_expires_utc] (rotation, ``key="old"``) | envelope (bytes), sha256, header (JSON), kcv; in a rotation also key, fingerprint, kcv_words, transitional (bool) |
| 0x0210 | byok_aws        | wrapping_key (bytes), import_token (bytes), wrapping_algorithm, key_id, parameters_obtained_utc, wrapping_key_confirmation (JSON), [key] (rotation: ``new`` only) | files (JSON name->base64), valid_until_utc, record (JSON), [key] |
| 0x0211 | byok_gcp        | wrapping_key, import_method, import_job, key_name, job_created_utc, wrapping_key_confirmation | same |
| 0x0212 | byok_azure      | wrapping_key (KEK), kek_kid, [file_name], wrapping_key_confirmation | same |
| 0x0213 | byok_vault      | wrapping_key, key_name, [hash_function], wrapping_key_confirmation | same |

**In a rotation** (:mod:`core.keyholder.ops_rotation`) every request names its key
(``key``: ``old``/``new``). The new key is sealed, split into shard envelopes and exported
for BYOK as any key. The old key leaves only as a **transitional envelope**
(docs/formats.md 1.9): ``kind`` ``masterkey``, ``key`` ``old``, an online recipient
(``core.seal.envelope.ONLINE_RECIPIENT_KINDS``: never a custodian) and
``transition_expires_utc`` (in the future, at most
``core.continuity.MAX_TRANSITION_DAYS`` after sealing, the same for every transitional
envelope of the rotation and for its statement); the header then names the new key as its
``successor_fingerprint``, so the new key must have been generated first. Shard envelopes
and BYOK exports of the old key are refused.

``wrapping_key_confirmation`` is ``{"witness": NAME, "fingerprint": HEX or WORDS}``: the
SHA-256 of the wrapping key's SubjectPublicKeyInfo *as the witness confirmed it* out of
band (never computed from the key being sent); the keyholder recomputes it from the key
and refuses a mismatch or a missing confirmation. The same holds for envelopes: a
recipient's ``confirmation`` carries the ``fingerprint`` the witness confirmed, and the
keyholder checks it against the recipient key it is asked to seal to. A BYOK wrap
whose validity window has already passed is refused (the provider would reject it).

Every envelope is signed with the MasterKey-derived key (docs/formats.md 1.3); a request
with ``sign`` false is refused (older clients sent it; an unsigned envelope is not a valid
version-1 envelope).

Shares: a shard envelope seals a share the *shares area* holds. That area registers a
resolver in ``state.ext["seal_share_source"]``: a callable ``(state, index) ->
(SecretBuffer, payload_encoding, shard_meta)`` where ``payload_encoding`` is
``slip39-indices-u16be`` and ``shard_meta`` maps exactly ``index``, ``set_id``,
``group_index``, ``group_threshold``, ``member_index`` and ``threshold`` to integers
(``core.seal.envelope.SHARD_FIELDS``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from core import secmem
from core.crypto.fingerprint import derive_fingerprint, sign_with_master
from core.keyholder.errors import MalformedRequest, Refused
from core.keyholder.ops import KEY_NEW, KEY_OLD, KeyholderState, Request, op
from core.seal import byok
from core.seal import envelope as env
from core.seal.recipients import (
    Recipient,
    RecipientError,
    confirmation_matches,
    parse_public_key,
)

__all__ = [
    "BYOK_AWS",
    "BYOK_AZURE",
    "BYOK_GCP",
    "BYOK_VAULT",
    "SEAL_ENVELOPE",
    "byok_aws",
    "byok_azure",
    "byok_gcp",
    "byok_vault",
    "seal_envelope",
]

SEAL_ENVELOPE = 0x0201
BYOK_AWS = 0x0210
BYOK_GCP = 0x0211
BYOK_AZURE = 0x0212
BYOK_VAULT = 0x0213

ShareSource = Callable[[KeyholderState, int], tuple[secmem.SecretBuffer, str, dict[str, int]]]


def _recipient(req: Request) -> Recipient:
    try:
        r = Recipient.from_public_dict(req.json("recipient"))
    except (RecipientError, TypeError, AttributeError) as exc:
        raise MalformedRequest(f"recipient refused: {exc}") from None
    if r.confirmation is None:
        raise Refused(
            f"{r.name}: no witness has confirmed this recipient's fingerprint; sealing refused"
        )
    # The witness's confirmation carries the fingerprint they confirmed; it must be this
    # key's (recomputed here from the key itself), else the key is not the one confirmed.
    if not r.confirmation.fingerprint:
        raise Refused(
            f"{r.name}: the confirmation does not say which fingerprint {r.confirmation.witness} "
            "confirmed; sealing refused"
        )
    if not confirmation_matches(r.fingerprint, r.confirmation.fingerprint):
        raise Refused(
            f"{r.name}: the fingerprint {r.confirmation.witness} confirmed is not this key's; "
            "the key sent for sealing is not the one the witness checked. Sealing refused."
        )
    return r


def _signer(state: KeyholderState, key: str = "") -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        with state.key_buffer(key).view() as mv:
            return sign_with_master(mv, message)

    return sign


def _transition(
    state: KeyholderState, req: Request, key: str, kind: str, recipient: Recipient, created: str | None
) -> dict[str, str] | None:
    """The ``transition`` header member of a transitional envelope (the old key in a
    rotation), after every rule of docs/formats.md 1.9; None for any other envelope."""
    from core import continuity

    expires = req.text("transition_expires_utc", "") or None
    opened = state.transition_open
    if opened is not None and not key:
        # a transition ceremony: the rotated-out key leaves only as a transitional
        # envelope, with the window and successor of its signed mark (never the caller's)
        if expires is not None and expires != opened["expires_utc"]:
            raise Refused(
                f"the rotation gave set {opened['set_id']} a transition window until "
                f"{opened['expires_utc']}: a transitional envelope carries exactly that expiry"
            )
        expires = str(opened["expires_utc"])
        successor = str(opened["successor_fingerprint"])
    elif key != KEY_OLD:
        if expires is not None:
            raise Refused(
                "only the old MasterKey, in a rotation, is sealed as a transitional envelope"
            )
        return None
    if kind != "masterkey":
        raise Refused(
            "the old MasterKey's shares are not sealed in a rotation: its share set is being "
            "rotated out (shard envelopes are made of the new key's shares)"
        )
    if expires is None:  # (a transition always has its mark's)
        raise Refused(
            "the old MasterKey leaves a rotation only as a transitional envelope: give its "
            "expiry (transition_expires_utc)"
        )
    if recipient.kind.value not in env.ONLINE_RECIPIENT_KINDS:
        raise Refused(
            f"{recipient.name}: the old MasterKey is sealed to online recipients only "
            f"({', '.join(env.ONLINE_RECIPIENT_KINDS)}), for the re-wrap of the IVKs; never "
            f"to a {recipient.kind.value}"
        )
    if opened is None:
        successor = state.fingerprint_of(KEY_NEW).hex  # NoMasterKey until the new key exists
    now = env.utc_now()
    try:
        # after the header's creation time and after now (the keyholder's clock), and at
        # most MAX_TRANSITION_DAYS after either
        continuity.check_transition_expiry(expires, created or now)
        continuity.check_transition_expiry(expires, now)
    except continuity.StatementError as exc:
        raise Refused(f"transition_expires_utc refused: {exc}") from None
    if state.transition_expires is not None and expires != state.transition_expires:
        raise Refused(
            f"this rotation's transition window ends at {state.transition_expires}; every "
            "transitional envelope and the statement carry that same expiry"
        )
    return {"expires_utc": expires, "successor_fingerprint": successor}


@op(SEAL_ENVELOPE, "seal_envelope")
def _seal_envelope(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Seal the MasterKey (or a held share) to one confirmed recipient; in a rotation the
    named key (the old one only as a transitional envelope)."""
    recipient = _recipient(req)
    key, master = state.require_key(req, "seal it")
    fp = state.fingerprint_of(key)
    kind = req.text("kind")
    created = req.text("created_utc", "") or None
    if not req.flag("sign", True):
        raise Refused("envelopes are always signed with the MasterKey's signing key")
    transition = _transition(state, req, key, kind, recipient, created)
    try:
        if kind == "masterkey":
            source, encoding, shard = master, "raw", None
        elif kind == "shard":
            resolver: ShareSource | None = state.ext.get("seal_share_source")
            if resolver is None:
                raise Refused("no shares are held in this keyholder: split or recover first")
            source, encoding, shard = resolver(state, req.integer("share_index"))
        else:
            raise MalformedRequest("kind must be masterkey or shard")
        with source.view() as secret:
            header = env.build_header(
                kind=kind,
                cluster_id=req.text("cluster_id"),
                region_id=req.text("region_id"),
                masterkey_fingerprint=fp.hex,
                ceremony_id=req.text("ceremony_id"),
                recipient=recipient,
                payload_encoding=encoding,
                payload_length=secret.nbytes,
                created_utc=created,
                shard=shard,
                transition=transition,
            )
            data = env.seal(
                secret,
                header,
                recipient,
                signer=_signer(state, key),
                allow_unlocked=state.allow_unlocked,
            )
    except env.EnvelopeError as exc:
        raise MalformedRequest(str(exc)) from None
    if kind == "shard":
        mark = state.ext.get("seal_share_sealed")
        if mark is not None:
            mark(state, req.integer("share_index"))
    if transition is not None:
        state.transition_expires = transition["expires_utc"]
    reply: dict[str, Any] = {
        "envelope": data,
        "sha256": hashlib.sha256(data).hexdigest(),
        "header": header,
        "kcv": fp.kcv,
    }
    if key:  # a rotation: say which key, with its own fingerprint, and whether transitional
        reply.update(state.key_fields(key), transitional=transition is not None)
    return reply


def _confirmed_wrapping_key(req: Request) -> bytes:
    raw = req.blob("wrapping_key")
    conf = req.json("wrapping_key_confirmation")
    if (
        not isinstance(conf, dict)
        or not isinstance(conf.get("witness"), str)
        or not isinstance(conf.get("fingerprint"), str)
        or not conf["witness"].strip()
        or not conf["fingerprint"].strip()
    ):
        raise Refused("no witness has confirmed the provider's wrapping key fingerprint")
    try:
        key = parse_public_key(raw)
    except RecipientError as exc:
        raise MalformedRequest(f"wrapping key refused: {exc}") from None
    if isinstance(key, str):
        raise MalformedRequest("wrapping key refused: providers' wrapping keys are RSA keys")
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not confirmation_matches(hashlib.sha256(spki).digest(), conf["fingerprint"]):
        raise Refused(
            f"the fingerprint {conf['witness']} confirmed does not match this wrapping key; "
            "export refused"
        )
    return raw


def _utc(req: Request, name: str) -> datetime:
    try:
        return datetime.strptime(req.text(name), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedRequest(f"{name} must look like 2026-01-31T12:00:00Z") from None


def _reply(export: byok.ByokExport) -> dict[str, Any]:
    if export.expired():
        raise Refused(
            f"the {export.provider} import window ended at {export.valid_until_utc}: get new "
            "import parameters from the provider and start the export again"
        )
    return {
        "files": {k: base64.b64encode(v).decode("ascii") for k, v in export.files.items()},
        "valid_until_utc": export.valid_until_utc,
        "method": export.method,
        "record": export.record,
    }


def _byok(
    fn: Callable[[memoryview, str], byok.ByokExport], state: KeyholderState, req: Request
) -> dict[str, Any]:
    if state.transition_open is not None:
        raise Refused(
            "this key was rotated out: in a transition it leaves only as a transitional "
            "envelope to an online recipient, with the rotation's expiry"
        )
    key, master = state.require_key(
        req,
        "export it for BYOK",
        refuse={
            KEY_OLD: "in a rotation the old key leaves only as a transitional envelope to an "
            "online recipient, with an expiry"
        },
    )
    try:
        with master.view() as mv:
            export = fn(mv, derive_fingerprint(mv).hex)
    except byok.ByokError as exc:
        raise MalformedRequest(str(exc)) from None
    reply = _reply(export)
    if key:
        reply.update(state.key_fields(key))
    return reply


@op(BYOK_AWS, "byok_aws")
def _byok_aws(state: KeyholderState, req: Request) -> dict[str, Any]:
    """AWS KMS ImportKeyMaterial files for the MasterKey."""
    wk = _confirmed_wrapping_key(req)
    return _byok(
        lambda mv, fp: byok.aws_import(
            mv,
            wrapping_key=wk,
            import_token=req.blob("import_token"),
            wrapping_algorithm=req.text("wrapping_algorithm"),
            key_id=req.text("key_id"),
            parameters_obtained_utc=_utc(req, "parameters_obtained_utc"),
            masterkey_fingerprint=fp,
            allow_unlocked=state.allow_unlocked,
        ),
        state,
        req,
    )


@op(BYOK_GCP, "byok_gcp")
def _byok_gcp(state: KeyholderState, req: Request) -> dict[str, Any]:
    """GCP Cloud KMS import-job files for the MasterKey."""
    wk = _confirmed_wrapping_key(req)
    return _byok(
        lambda mv, fp: byok.gcp_import(
            mv,
            wrapping_key=wk,
            import_method=req.text("import_method"),
            import_job=req.text("import_job"),
            key_name=req.text("key_name"),
            job_created_utc=_utc(req, "job_created_utc"),
            masterkey_fingerprint=fp,
            allow_unlocked=state.allow_unlocked,
        ),
        state,
        req,
    )


@op(BYOK_AZURE, "byok_azure")
def _byok_azure(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Azure ``.byok`` file for the MasterKey."""
    wk = _confirmed_wrapping_key(req)
    return _byok(
        lambda mv, fp: byok.azure_byok(
            mv,
            kek=wk,
            kek_kid=req.text("kek_kid"),
            file_name=req.text("file_name", "masterkey.byok"),
            masterkey_fingerprint=fp,
            allow_unlocked=state.allow_unlocked,
        ),
        state,
        req,
    )


@op(BYOK_VAULT, "byok_vault")
def _byok_vault(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Vault / OpenBao transit import files for the MasterKey."""
    wk = _confirmed_wrapping_key(req)
    return _byok(
        lambda mv, fp: byok.vault_transit_import(
            mv,
            wrapping_key=wk,
            key_name=req.text("key_name"),
            hash_function=req.text("hash_function", "SHA256"),
            masterkey_fingerprint=fp,
            allow_unlocked=state.allow_unlocked,
        ),
        state,
        req,
    )


# Client helpers (parent side) ------------------------------------------------------------


def _decode_files(reply: dict[str, Any]) -> dict[str, Any]:
    reply["files"] = {k: base64.b64decode(v) for k, v in reply["files"].items()}
    return reply


def seal_envelope(
    client: Any,
    recipient: Recipient,
    *,
    kind: str,
    cluster_id: str,
    region_id: str,
    ceremony_id: str,
    share_index: int | None = None,
    created_utc: str = "",
    key: str | None = None,
    transition_expires_utc: str | None = None,
) -> dict[str, Any]:
    """Ask the keyholder to seal the MasterKey (or share ``share_index``) to ``recipient``.

    In a rotation ``key`` names the key (``new``; or ``old`` with
    ``transition_expires_utc`` for a transitional envelope to an online recipient).

    Returns:
        ``{"envelope": bytes, "sha256": str, "header": dict, "kcv": str}``; in a rotation
        also ``key``, ``fingerprint``, ``kcv_words`` and ``transitional`` (bool).
    """
    fields: dict[str, Any] = {
        "recipient": recipient.to_public_dict(),
        "kind": kind,
        "cluster_id": cluster_id,
        "region_id": region_id,
        "ceremony_id": ceremony_id,
    }
    if created_utc:
        fields["created_utc"] = created_utc
    if share_index is not None:
        fields["share_index"] = share_index
    if key is not None:
        fields["key"] = key
    if transition_expires_utc:
        fields["transition_expires_utc"] = transition_expires_utc
    reply: dict[str, Any] = client.call(SEAL_ENVELOPE, **fields)
    return reply


def wrapping_key_fingerprint(wrapping_key: bytes) -> str:
    """SHA-256 of a provider wrapping key's SPKI (hex), to SHOW to the witness, who compares
    it with the provider's copy and confirms (or types) it. Never pass this value as the
    confirmation itself: the confirmation is what the witness confirmed."""
    key = parse_public_key(wrapping_key)
    if isinstance(key, str):
        raise RecipientError("providers' wrapping keys are RSA keys")
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _byok_call(
    client: Any,
    opcode: int,
    wrapping_key: bytes,
    witness: str,
    confirmed_fingerprint: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    return _decode_files(
        client.call(
            opcode,
            wrapping_key=wrapping_key,
            wrapping_key_confirmation={"witness": witness, "fingerprint": confirmed_fingerprint},
            **fields,
        )
    )


def byok_aws(
    client: Any, *, wrapping_key: bytes, witness: str, confirmed_fingerprint: str, **fields: Any
) -> dict[str, Any]:
    """AWS import files; ``fields``: import_token, wrapping_algorithm, key_id,
    parameters_obtained_utc (and for every BYOK helper: ``key="new"`` in a rotation). ``confirmed_fingerprint`` is the wrapping key's fingerprint as
    ``witness`` confirmed it against the provider's copy (hex or the 26 words); the
    keyholder checks it against the key itself."""
    return _byok_call(client, BYOK_AWS, wrapping_key, witness, confirmed_fingerprint, fields)


def byok_gcp(
    client: Any, *, wrapping_key: bytes, witness: str, confirmed_fingerprint: str, **fields: Any
) -> dict[str, Any]:
    """GCP import files; ``fields``: import_method, import_job, key_name, job_created_utc."""
    return _byok_call(client, BYOK_GCP, wrapping_key, witness, confirmed_fingerprint, fields)


def byok_azure(
    client: Any, *, wrapping_key: bytes, witness: str, confirmed_fingerprint: str, **fields: Any
) -> dict[str, Any]:
    """Azure ``.byok``; ``fields``: kek_kid, [file_name]."""
    return _byok_call(client, BYOK_AZURE, wrapping_key, witness, confirmed_fingerprint, fields)


def byok_vault(
    client: Any, *, wrapping_key: bytes, witness: str, confirmed_fingerprint: str, **fields: Any
) -> dict[str, Any]:
    """Vault transit import; ``fields``: key_name, [hash_function]."""
    return _byok_call(client, BYOK_VAULT, wrapping_key, witness, confirmed_fingerprint, fields)
