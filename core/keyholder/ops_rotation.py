"""Rotation operations (0x04xx): a second MasterKey, entered explicitly, and the statement.

A rotation replaces the MasterKey (ADR-201: immutable "except via full rotation"). It is
the only flow in which the keyholder holds two keys, and it is entered explicitly:

1. The old key is rebuilt from its share set (``recovery_begin`` ... ``recover``, with the
   old manifest's fingerprint) and so verified.
2. ``rotation_begin`` (this module) turns it into the **old** key and opens the second
   locked slot for the **new** key. From then on every operation that uses a key names it
   (``key``: ``old``/``new``; :meth:`core.keyholder.ops.KeyholderState.require_key`), and
   every reply carries ``rotation_keys``: both keys' fingerprints and KCVs.
3. The new key is drawn into its slot (``generate_master`` or ``genesis_split`` with
   ``key="new"``; never over a held key), split and self-tested, its shares shown or
   written (every carrier), sealed (envelopes, BYOK) and used to sign; the old key is
   sealed only as a transitional envelope to online recipients (``seal_envelope`` with
   ``key="old"`` and ``transition_expires_utc``: :mod:`core.keyholder.ops_seal`).
4. ``rotation_statement`` (this module) builds the continuity statement from the two keys
   it holds and the public facts it recorded, and signs it with both
   (:mod:`core.continuity`; SIGN purposes ``rotation-old`` and ``rotation-new``, which the
   generic ``sign`` operation refuses).
5. ``wipe`` wipes both keys and ends the rotation.

| opcode | name               | request fields | reply fields |
|--------|--------------------|----------------|--------------|
| 0x0401 | rotation_begin     | old_set_id (int), old_policy (JSON ``{group_threshold, groups: [[m, n], ...]}``: the old manifest's ``policy.slip39`` form) | rotation (true), old (key facts: fingerprint, kcv, kcv_words, key, set_id, policy) |
| 0x0402 | rotation_statement | ceremony_id, cluster_id, region_id, [created_utc], [transition_expires_utc] | statement (bytes: the file), sha256, body (JSON), old, new (key facts) |
| 0x0403 | transition_begin   | manifest (bytes: the rotated-out share-set manifest, version 2) | transition (JSON: set_id, ceremony_id, expires_utc, successor_fingerprint), fingerprint, kcv |

``transition_begin`` (a ``transition`` ceremony, outside any rotation) accepts only a key
rebuilt from shares here and verified, and a manifest that is the rotated-out manifest of
exactly that key and set: version 2, its ``rotated_out`` mark well formed, its signature
verified here with the held key's own fingerprint (only the old key could have made it),
its window still open by this keyholder's clock. From then on the key leaves only as a
transitional envelope to an online recipient whose expiry and successor are the mark's
(a request cannot choose them), and never by BYOK.

``rotation_begin`` refuses: a rotation already in progress; no key held; a key NOT
VERIFIED (no manifest fingerprint and no witness KCV confirmation); a key that was not
rebuilt from shares in this keyholder (a freshly generated key has no share set to rotate
out); genesis shares still held; an ``old_set_id`` other than the set the key was rebuilt
from; an ``old_policy`` whose group threshold, group count or member thresholds differ
from those the recovered shares carry (the member counts are the manifest's word: shares
do not carry them).

``rotation_statement`` refuses until the new key has been split (its set id and policy
go into the statement); its ``transition_expires_utc`` must equal the expiry of the
transitional envelopes already sealed (and fixes it for any sealed later), be in the
future and at most ``core.continuity.MAX_TRANSITION_DAYS`` away. The statement is checked
with :func:`core.continuity.verify` before it is returned.

Client helpers (parent side) are at the end of this module.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core import continuity
from core.crypto.fingerprint import sign_with_master
from core.keyholder.errors import MalformedRequest, NoMasterKey, Refused
from core.keyholder.ops import KEY_NEW, KEY_OLD, KeyholderState, Request, op
from core.seal.envelope import utc_now
from core.signatures import signed_bytes

__all__ = [
    "ROTATION_BEGIN",
    "ROTATION_STATEMENT",
    "TRANSITION_BEGIN",
    "client_rotation_begin",
    "client_rotation_statement",
    "client_transition_begin",
]

ROTATION_BEGIN = 0x0401
ROTATION_STATEMENT = 0x0402
TRANSITION_BEGIN = 0x0403


def _old_facts(state: KeyholderState) -> dict[str, Any]:
    sets = state.key_sets.get(KEY_OLD, {})
    return {
        **state.key_fields(KEY_OLD),
        "set_id": sets.get("set_id"),
        "policy": sets.get("policy"),
    }


@op(ROTATION_BEGIN, "rotation_begin")
def op_rotation_begin(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Enter a rotation: the verified, recovered key becomes the old key; the new key's
    locked slot opens (empty)."""
    if state.rotation:
        raise Refused("a rotation is already in progress in this keyholder")
    if state.master is None or state.master.closed:
        raise NoMasterKey(
            "no MasterKey is held: rebuild the old key from its share set first (a rotation "
            "starts from the key it replaces)"
        )
    state.require_verified_master("rotate it")
    if state.master_origin != "recovered":
        raise Refused(
            f"a rotation replaces a key rebuilt from its share set; this key was "
            f"{state.master_origin} in this keyholder and has no set to rotate out"
        )
    shares = state.ext.get("shares")
    if getattr(shares, "genesis", None) is not None:
        raise Refused("shares of a genesis split are still held: finish or wipe them first")
    recovered = state.key_sets.get(KEY_OLD)
    if not recovered or recovered.get("set_id") is None:
        raise Refused("the set this key was rebuilt from is not known: recover it again")
    old_set_id = req.integer("old_set_id")
    try:
        policy = continuity.check_policy(req.json("old_policy"), "old_policy")
    except continuity.StatementError as exc:
        raise MalformedRequest(str(exc)) from None
    if old_set_id != recovered["set_id"]:
        raise Refused(
            f"the key was rebuilt from set {recovered['set_id']}, not from set {old_set_id}: "
            "use the manifest of the set whose shares were collected"
        )
    groups = policy["groups"]
    if (
        policy["group_threshold"] != recovered["group_threshold"]
        or len(groups) != recovered["group_count"]
    ):
        raise Refused(
            f"old_policy says {policy['group_threshold']} of {len(groups)} group(s); the "
            f"shares of set {old_set_id} say {recovered['group_threshold']} of "
            f"{recovered['group_count']}: that is not this set's manifest"
        )
    for gi, mt in recovered["member_thresholds"].items():
        if groups[gi - 1][0] != mt:
            raise Refused(
                f"old_policy says group {gi} needs {groups[gi - 1][0]} share(s); the shares of "
                f"set {old_set_id} say {mt}: that is not this set's manifest"
            )
    state.key_sets[KEY_OLD] = {**recovered, "policy": policy}
    state.rotation = True
    return {"rotation": True, "old": _old_facts(state)}


def _key_facts(state: KeyholderState, key: str) -> continuity.KeyFacts:
    fp = state.fingerprint_of(key)
    sets = state.key_sets.get(key, {})
    return continuity.KeyFacts(
        fingerprint=fp.hex,
        kcv=fp.public_key[:8].hex(),
        set_id=int(sets["set_id"]),
        policy=dict(sets["policy"]),
    )


@op(ROTATION_STATEMENT, "rotation_statement")
def op_rotation_statement(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Build the continuity statement from the two held keys and sign it with both."""
    if not state.rotation:
        raise Refused("no rotation is in progress: a continuity statement needs both keys")
    old = state.require_verified_master("sign the continuity statement")
    new = state.key_buffer(KEY_NEW)
    if "policy" not in state.key_sets.get(KEY_NEW, {}):
        raise Refused(
            "the new key has not been split yet: the statement names its share set and policy"
        )
    now = utc_now()
    created = req.text("created_utc", "") or now
    expires = req.text("transition_expires_utc", "") or None
    if state.transition_expires is not None and expires != state.transition_expires:
        raise Refused(
            f"transitional envelopes of the old key expire at {state.transition_expires}: the "
            f"statement must give that same transition expiry (not {expires or 'none'})"
        )
    try:
        if expires is not None:
            continuity.check_transition_expiry(expires, now)
        body = continuity.build_body(
            ceremony_id=req.text("ceremony_id"),
            cluster_id=req.text("cluster_id"),
            region_id=req.text("region_id"),
            created_utc=created,
            old=_key_facts(state, KEY_OLD),
            new=_key_facts(state, KEY_NEW),
            transition_expires_utc=expires,
            practice=state.practice,
        )
    except continuity.StatementError as exc:
        raise MalformedRequest(f"statement refused: {exc}") from None
    msg = continuity.message(body)
    with old.view() as mv:
        sig_old = sign_with_master(mv, signed_bytes(continuity.PURPOSE_OLD, msg))
    with new.view() as mv:
        sig_new = sign_with_master(mv, signed_bytes(continuity.PURPOSE_NEW, msg))
    data = continuity.serialise(continuity.assemble(body, sig_old, sig_new))
    # what leaves the room must verify as any reader will check it
    continuity.verify(
        data,
        old_fingerprint=body["old"]["fingerprint"],
        new_fingerprint=body["new"]["fingerprint"],
    )
    sha = hashlib.sha256(data).hexdigest()
    state.statement_sha256 = sha
    state.transition_expires = expires
    return {
        "statement": data,
        "sha256": sha,
        "body": body,
        "old": state.key_fields(KEY_OLD),
        "new": state.key_fields(KEY_NEW),
    }


@op(TRANSITION_BEGIN, "transition_begin")
def op_transition_begin(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Open a rotated-out key for a transition ceremony, under its signed mark."""
    import re
    from datetime import UTC, datetime

    from core import signatures, strictjson

    if state.rotation:
        raise Refused("a rotation is in progress: a transition opens a rotated-out key alone")
    if state.transition_open is not None:
        raise Refused("a transition is already open in this keyholder")
    if state.master is None or state.master.closed:
        raise NoMasterKey("no MasterKey is held: rebuild the rotated-out key from its shares first")
    state.require_verified_master("open it for a transition")
    if state.master_origin != "recovered":
        raise Refused("a transition opens a key rebuilt from its (rotated-out) share set")
    recovered = state.key_sets.get(KEY_OLD) or {}
    try:
        manifest = strictjson.loads(req.blob("manifest"))
    except (strictjson.StrictJSONError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise MalformedRequest("manifest: not a JSON object")
    fp = state.fingerprint_of("").hex
    set_id = manifest.get("set_id")
    if manifest.get("fingerprint") != fp or set_id != recovered.get("set_id"):
        raise Refused(
            f"this is the manifest of set {set_id}, not of the key held here (rebuilt from set "
            f"{recovered.get('set_id')}): a transition opens only the key its manifest names"
        )
    mark = manifest.get("rotated_out")
    if manifest.get("version") != 2 or not isinstance(mark, dict):
        raise Refused(f"set {set_id} is not marked rotated out: a transition has nothing to open")
    try:
        signer = signatures.verify_block(
            manifest.get("signature"),
            signatures.manifest_message(manifest),
            purpose="genesis-manifest",
        )
    except signatures.SignatureError as exc:
        raise Refused(f"the rotated-out manifest of set {set_id} is not trusted: {exc}") from None
    if signer != fp:
        raise Refused(f"the rotated-out mark of set {set_id} is not signed by its own key")
    expires = mark.get("transition_expires_utc")
    successor = mark.get("new_fingerprint")
    if (
        not isinstance(successor, str)
        or not re.fullmatch(r"[0-9a-f]{64}", successor)
        or successor == fp
    ):
        raise Refused(f"the rotated-out mark of set {set_id} names no other key as its successor")
    if expires is None:
        raise Refused(
            f"set {set_id} was rotated out by {mark.get('ceremony_id')} without a transition "
            "window: it can no longer be opened"
        )
    try:
        end = datetime.strptime(str(expires), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedRequest(
            f"the mark's transition_expires_utc {expires!r} is not a time"
        ) from None
    if datetime.now(UTC) >= end:
        raise Refused(
            f"the transition window of set {set_id} ended at {expires}: the rotated-out key "
            "can no longer be opened"
        )
    state.transition_open = {
        "set_id": set_id,
        "ceremony_id": str(mark.get("ceremony_id", "")),
        "expires_utc": str(expires),
        "successor_fingerprint": successor,
    }
    return {"transition": dict(state.transition_open), **state.key_fields("")}


# --------------------------------------------------------------------------- client helpers


def client_rotation_begin(
    client: Any, *, old_set_id: int, old_policy: dict[str, Any]
) -> dict[str, Any]:
    """Parent side of ``rotation_begin``: ``old_policy`` is the old manifest's
    ``policy.slip39`` (``group_threshold`` and ``groups`` are used)."""
    policy = {"group_threshold": old_policy["group_threshold"], "groups": old_policy["groups"]}
    return dict(client.call(ROTATION_BEGIN, old_set_id=int(old_set_id), old_policy=policy))


def client_rotation_statement(
    client: Any,
    *,
    ceremony_id: str,
    cluster_id: str,
    region_id: str,
    transition_expires_utc: str | None = None,
    created_utc: str = "",
) -> dict[str, Any]:
    """Parent side of ``rotation_statement``: returns ``statement`` (the file's bytes, to
    write as it is), ``sha256``, ``body``, ``old`` and ``new`` (key facts)."""
    fields: dict[str, Any] = {
        "ceremony_id": ceremony_id,
        "cluster_id": cluster_id,
        "region_id": region_id,
    }
    if transition_expires_utc:
        fields["transition_expires_utc"] = transition_expires_utc
    if created_utc:
        fields["created_utc"] = created_utc
    return dict(client.call(ROTATION_STATEMENT, **fields))


def client_transition_begin(client: Any, manifest: bytes) -> dict[str, Any]:
    """Parent side of ``transition_begin``: ``manifest`` is the rotated-out manifest file."""
    return dict(client.call(TRANSITION_BEGIN, manifest=bytes(manifest)))
