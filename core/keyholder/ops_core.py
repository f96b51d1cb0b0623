"""Core operations (0x00xx): hello, generate, fingerprint, sign, wipe, status, kcv_confirm.

Client helpers for these live on :class:`core.keyholder.client.KeyholderClient`.

| opcode | name            | request fields | reply fields |
|--------|-----------------|----------------|--------------|
| 0x0001 | hello           | | pid, protocol, areas, hardening, secmem_backend, insecure, practice, ... |
| 0x0002 | generate_master | [key] (rotation: ``new``) | origin, locked, fingerprint, kcv, kcv_words, [key] |
| 0x0003 | fingerprint     | [key] | origin, fingerprint, kcv, kcv_words, [key] |
| 0x0004 | sign            | purpose, message (bytes), [key] | signature, fingerprint, kcv, kcv_words, [key] (after a kept-key wipe: and ``signing_key_left``) |
| 0x0005 | wipe            | [keep_signing_key] (bool), [key] (rotation, with keep_signing_key: whose) | wiped, signing_key_kept, fingerprint, [key] |
| 0x0006 | status          | | master_held, origin, verified, rotation, new_master_held, live_buffers, areas_state, signing_key_held, signing_purposes_left |
| 0x0007 | kcv_confirm     | witness, kcv (7 words, 16 or 64 hex), [key] | verified, witness, fingerprint, kcv, kcv_words, [key] |

``key`` (``"old"`` or ``"new"``) is refused outside a rotation and required in one
(:meth:`core.keyholder.ops.KeyholderState.require_key`; code ``ambiguous-key`` when it is
missing). In a rotation: ``generate_master`` takes ``key="new"`` only (it fills the second
slot, never a held key); ``sign`` refuses the purposes ``rotation-old``/``rotation-new``
(only ``rotation_statement`` signs those, :mod:`core.keyholder.ops_rotation`); ``wipe``
wipes both keys and ends the rotation.
"""

from __future__ import annotations

from typing import Any

from core import secmem
from core import signatures as _sig
from core.crypto.fingerprint import (
    Fingerprint,
    derive_fingerprint,
    derive_signing_seed,
    key_from_seed,
    sign_with_master,
)
from core.keyholder.errors import MalformedRequest, NoMasterKey, Refused
from core.keyholder.ops import KEY_NEW, KEY_OLD, KeyholderState, Request, op

HELLO = 0x0001
GENERATE_MASTER = 0x0002
FINGERPRINT = 0x0003
SIGN = 0x0004
WIPE = 0x0005
STATUS = 0x0006
KCV_CONFIRM = 0x0007

MASTER_KEY_BYTES = 32  # ADR-201: 256-bit MasterKey


def fingerprint_fields(state: KeyholderState, key: str = "") -> dict[str, Any]:
    """Public fingerprint fields of the held MasterKey (in a rotation: of the ``key``
    named, with ``key`` in the reply)."""
    return state.key_fields(key)


def _origin(state: KeyholderState, key: str) -> str:
    return state.new_origin if key == KEY_NEW else state.master_origin


@op(HELLO, "hello")
def hello(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Protocol handshake: public facts about this keyholder."""
    return {
        "secmem_backend": secmem.backend(),
        "insecure": list(secmem.insecure_reasons),
        "demo_unlocked_allowed": state.allow_unlocked,
        "practice": state.practice,
    }


@op(GENERATE_MASTER, "generate_master")
def generate_master(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Draw a fresh 256-bit MasterKey with getrandom straight into locked memory (in a
    rotation: the new key, into its own slot, ``key="new"``)."""
    key = state.requested_key(req)
    origin = "practice" if state.practice else "generated"
    if key == KEY_OLD:
        raise Refused(
            "the old MasterKey is never generated or replaced: it is the key rebuilt from "
            "its shares; generate the new one (key='new')"
        )
    if key == KEY_NEW:
        if state.new_master is not None and not state.new_master.closed:
            raise Refused("the new MasterKey is already held: a key is never replaced in place")
        buf = state.alloc(MASTER_KEY_BYTES)
        buf.fill_random()
        state.install_new(buf, origin)
        return {"origin": origin, "locked": buf.locked, **state.key_fields(KEY_NEW)}
    state.refuse_if_master("generate a MasterKey")
    buf = state.alloc(MASTER_KEY_BYTES)
    buf.fill_random()
    state.set_master(buf, origin)
    return {"origin": state.master_origin, "locked": buf.locked, **fingerprint_fields(state)}


@op(FINGERPRINT, "fingerprint")
def fingerprint(state: KeyholderState, req: Request) -> dict[str, Any]:
    """The held MasterKey's public fingerprint (KCV); in a rotation, the named key's."""
    key = state.requested_key(req)
    return {"origin": _origin(state, key), **fingerprint_fields(state, key)}


#: What the parent may ask the keyholder to sign. The signed bytes are always
#: ``SIGN_DOMAIN || purpose || 0x00 || message`` (:func:`core.signatures.signed_bytes`), so
#: a signature made through this operation can never pass as an envelope signature (those
#: are made inside the keyholder over their own, differently prefixed, encodings).
SIGN_DOMAIN = _sig.SIGN_DOMAIN
SIGN_PURPOSES = _sig.PURPOSES
#: What a signing key kept after the wipe step may still sign, once each: the records
#: made when the journal is closed, after the MasterKey is gone.
AFTER_WIPE_PURPOSES = ("journal-final-hash", "ceremony-transcript")
signed_bytes = _sig.signed_bytes


@op(SIGN, "sign")
def sign(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Sign a public message, for a named purpose, with the MasterKey-derived key.

    With the MasterKey held: any purpose but the rotation statement's (in a rotation, with
    the key the request names). After a wipe that kept the signing key: only the purposes
    of :data:`AFTER_WIPE_PURPOSES`, each once; the key is wiped after the last.
    """
    purpose = req.text("purpose")
    if purpose not in SIGN_PURPOSES:
        raise MalformedRequest(f"cannot sign for purpose {purpose!r}: one of {', '.join(SIGN_PURPOSES)}")
    if purpose in _sig.ROTATION_PURPOSES:
        raise Refused(
            f"{purpose!r} signatures are made only by rotation_statement, which builds the "
            "statement from the two keys it holds: no request can make a key vouch for "
            "another it does not hold"
        )
    message = req.blob("message")
    if state.master is not None and not state.master.closed:
        name, buf = state.require_key(req, "sign", verified=False)
        with buf.view() as mv:
            signature = sign_with_master(mv, signed_bytes(purpose, message))
        return {"signature": signature, **fingerprint_fields(state, name)}
    signer = state.signer
    if signer is None or signer.closed:
        raise NoMasterKey("no MasterKey is held (and no signing key was kept): nothing can sign")
    if req.has("key") and req.text("key") != state.signer_key:
        raise Refused(
            f"the signing key kept after the wipe is the {state.signer_key or 'only'} key's, "
            f"not the {req.text('key')!r} key's"
        )
    if purpose not in state.signer_purposes:
        raise Refused(
            f"the MasterKey was wiped; its signing key signs only "
            f"{', '.join(sorted(state.signer_purposes)) or 'nothing more'} now, not {purpose!r}"
        )
    with signer.view() as seed:
        key = key_from_seed(seed)
        signature = key.sign(signed_bytes(purpose, message))
        del key
    public, kept_key = state.signer_public, state.signer_key
    state.signer_purposes.discard(purpose)
    if not state.signer_purposes:
        state.drop_signer()
    return {
        "signature": signature,
        "fingerprint": public,
        "kcv": Fingerprint(bytes.fromhex(public)).kcv,
        "kcv_words": Fingerprint(bytes.fromhex(public)).words,
        "signing_key_left": state.signer is not None,
        **({"key": kept_key} if kept_key else {}),
    }


def _kcv_matches(copy: str, fp_hex: str, kcv_words: list[str]) -> bool:
    """A witness's copy of the key check value: the 7 KCV words, the KCV hex (16 digits),
    or the whole fingerprint (64 digits); spaces, colons and case are ignored."""
    words = copy.lower().split()
    if len(words) >= 2 and all(w.isalpha() for w in words):
        return words == kcv_words
    digits = "".join(ch for ch in copy.lower() if ch not in " :")
    if len(digits) not in (16, 64) or any(ch not in "0123456789abcdef" for ch in digits):
        return False
    return fp_hex.startswith(digits)


@op(KCV_CONFIRM, "kcv_confirm")
def kcv_confirm(state: KeyholderState, req: Request) -> dict[str, Any]:
    """A named witness compared the held key's KCV with their copy from the genesis record.

    ``witness`` (name), ``kcv`` (what the witness confirmed: the 7 words, the 16-digit KCV
    or the 64-digit fingerprint). The keyholder compares it with the key it holds; a match
    marks a rebuilt key that had no manifest fingerprint as verified (it may then be
    sealed or split); a difference is refused and changes nothing.
    """
    witness = req.text("witness").strip()
    if not witness:
        raise MalformedRequest("kcv_confirm needs the witness's name")
    key, _buf = state.require_key(req, "confirm its KCV", verified=False)
    facts = fingerprint_fields(state, key)
    if not _kcv_matches(req.text("kcv"), facts["fingerprint"], facts["kcv_words"]):
        which = f"the {key} key" if key else "the key held"
        raise Refused(
            f"the KCV {witness} confirmed does not match {which}: do not seal or split "
            "it; the shares or the passphrase are not those of the recorded key"
        )
    if key != KEY_NEW:
        state.master_verified = True
    return {"verified": True, "witness": witness, **facts}


@op(WIPE, "wipe")
def wipe(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Wipe every secret held (the MasterKey, shares, entries).

    ``keep_signing_key`` (default false): keep only the Ed25519 seed derived from the
    MasterKey, in locked memory, so that the journal's final hash and the transcript can
    be signed when the journal is closed, after this wipe (see :func:`sign`); it is wiped
    after those two signatures, by a wipe without the flag, or when the keyholder ends.
    In a rotation both keys are wiped and the rotation ends; ``keep_signing_key`` then
    needs ``key`` (``old`` or ``new``): whose signing key signs the journal.
    """
    keep = req.flag("keep_signing_key", False)
    if req.has("key") and not keep:
        raise MalformedRequest(
            "wipe always wipes every key; 'key' only says whose signing key to keep "
            "(with keep_signing_key)"
        )
    key = ""
    if keep and state.master is not None and not state.master.closed and state.signer is None:
        key, source = state.require_key(req, "keep its signing key", verified=False)
        buf = state.alloc(32)
        try:
            with source.view() as mv, buf.view() as out:
                derive_signing_seed(mv, out)
                public = derive_fingerprint(mv).hex
        except BaseException:
            buf.close()
            raise
        state.signer = buf
        state.signer_public = public
        state.signer_purposes = set(AFTER_WIPE_PURPOSES)
        state.signer_key = key
    state.wipe(keep_signer=keep)
    kept = state.signer is not None
    return {
        "wiped": True,
        "signing_key_kept": kept,
        "fingerprint": state.signer_public if kept else "",
        **({"key": state.signer_key} if kept and state.signer_key else {}),
    }


@op(STATUS, "status")
def status(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Public state: whether a key is held, buffers alive."""
    held = state.master is not None and not state.master.closed
    return {
        "master_held": held,
        "origin": state.master_origin if held else "",
        "verified": state.master_verified if held else False,
        "rotation": state.rotation,
        "new_master_held": state.new_master is not None and not state.new_master.closed,
        "live_buffers": len(secmem._live),
        "areas_state": sorted(state.ext.keys()),
        "signing_key_held": state.signer is not None,
        "signing_purposes_left": sorted(state.signer_purposes),
    }
