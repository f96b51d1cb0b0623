"""Core operations (0x00xx): hello, generate, fingerprint, sign, wipe, status, kcv_confirm.

Client helpers for these live on :class:`core.keyholder.client.KeyholderClient`.
"""

from __future__ import annotations

from typing import Any

from core import secmem
from core.keyholder.errors import MalformedRequest, Refused
from core.keyholder.fingerprint import derive_fingerprint, sign_with_master
from core.keyholder.ops import KeyholderState, Request, op

HELLO = 0x0001
GENERATE_MASTER = 0x0002
FINGERPRINT = 0x0003
SIGN = 0x0004
WIPE = 0x0005
STATUS = 0x0006
KCV_CONFIRM = 0x0007

MASTER_KEY_BYTES = 32  # ADR-201: 256-bit MasterKey


def fingerprint_fields(state: KeyholderState) -> dict[str, Any]:
    """Public fingerprint fields of the held MasterKey."""
    master = state.require_master()
    with master.view() as mv:
        fp = derive_fingerprint(mv)
    return {"fingerprint": fp.hex, "kcv": fp.kcv, "kcv_words": fp.words}


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
    """Draw a fresh 256-bit MasterKey with getrandom straight into locked memory."""
    state.refuse_if_master("generate a MasterKey")
    buf = state.alloc(MASTER_KEY_BYTES)
    buf.fill_random()
    state.set_master(buf, "practice" if state.practice else "generated")
    return {"origin": state.master_origin, "locked": buf.locked, **fingerprint_fields(state)}


@op(FINGERPRINT, "fingerprint")
def fingerprint(state: KeyholderState, req: Request) -> dict[str, Any]:
    """The held MasterKey's public fingerprint (KCV)."""
    return {"origin": state.master_origin, **fingerprint_fields(state)}


#: What the parent may ask the keyholder to sign. The signed bytes are always
#: ``SIGN_DOMAIN || purpose || 0x00 || message``, so a signature made through this
#: operation can never pass as an envelope or seal-manifest signature (those are made
#: inside the keyholder over their own, differently prefixed, encodings).
SIGN_DOMAIN = b"openkcm-ceremony/v1/sign:"
SIGN_PURPOSES = ("journal-final-hash", "genesis-manifest", "seal-manifest", "ceremony-transcript")


def signed_bytes(purpose: str, message: bytes) -> bytes:
    """The exact bytes the SIGN operation signs (for verifiers)."""
    return SIGN_DOMAIN + purpose.encode("ascii") + b"\x00" + message


@op(SIGN, "sign")
def sign(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Sign a public message, for a named purpose, with the MasterKey-derived key."""
    purpose = req.text("purpose")
    if purpose not in SIGN_PURPOSES:
        raise MalformedRequest(f"cannot sign for purpose {purpose!r}: one of {', '.join(SIGN_PURPOSES)}")
    message = req.blob("message")
    master = state.require_master()
    with master.view() as mv:
        signature = sign_with_master(mv, signed_bytes(purpose, message))
    return {"signature": signature, **fingerprint_fields(state)}


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
    facts = fingerprint_fields(state)
    if not _kcv_matches(req.text("kcv"), facts["fingerprint"], facts["kcv_words"]):
        raise Refused(
            f"the KCV {witness} confirmed does not match the key held: do not seal or split "
            "it; the shares or the passphrase are not those of the recorded key"
        )
    state.master_verified = True
    return {"verified": True, "witness": witness, **facts}


@op(WIPE, "wipe")
def wipe(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Wipe every secret held (the MasterKey, shares, entries)."""
    state.wipe()
    return {"wiped": True}


@op(STATUS, "status")
def status(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Public state: whether a key is held, buffers alive."""
    held = state.master is not None and not state.master.closed
    return {
        "master_held": held,
        "origin": state.master_origin if held else "",
        "verified": state.master_verified if held else False,
        "live_buffers": len(secmem._live),
        "areas_state": sorted(state.ext.keys()),
    }
