"""Core operations (0x00xx): hello, generate, fingerprint, sign, wipe, status.

Client helpers for these live on :class:`core.keyholder.client.KeyholderClient`.
"""

from __future__ import annotations

from typing import Any

from core import secmem
from core.keyholder.errors import MalformedRequest
from core.keyholder.fingerprint import derive_fingerprint, sign_with_master
from core.keyholder.ops import KeyholderState, Request, op

HELLO = 0x0001
GENERATE_MASTER = 0x0002
FINGERPRINT = 0x0003
SIGN = 0x0004
WIPE = 0x0005
STATUS = 0x0006

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
        "live_buffers": len(secmem._live),
        "areas_state": sorted(state.ext.keys()),
    }
