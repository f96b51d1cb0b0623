"""Sealed envelopes (format ``openkcm-envelope`` version 1): what leaves the room.

An envelope carries one secret (the MasterKey for ADR-201 mode B "Cloud Seal", or one
share for mode A "Sovereign shards") for one recipient::

    {"format":"openkcm-envelope","version":1,
     "header":{...canonical public header...},
     "wrapped_key":{"alg":"RSA-OAEP-256"|"RSA-OAEP"|"age-X25519"|"age-ssh-ed25519",
                    "recipient_fingerprint":HEX,"ciphertext":B64},
     "nonce":B64(12 bytes),
     "ciphertext":B64(AES-256-GCM ciphertext || 16-byte tag),
     "signature":{"alg":"Ed25519","value":B64(64 bytes)}}

* secret: AES-256-GCM under a fresh 32-byte data key, nonce 12 bytes, AAD = the canonical
  JSON of ``header`` (keys sorted, no spaces, UTF-8; every string value restricted to a
  safe ASCII set so Go's ``json.Marshal`` of the decoded header gives the same bytes).
* data key: wrapped for the recipient: RSAES-OAEP (SHA-256 + MGF1-SHA-256, or SHA-1 for
  HSMs without SHA-256) to the recipient's RSA key, or an age file to an X25519 recipient.
* signature (mandatory): Ed25519 with the MasterKey-derived signing key (its public key is
  ``header.masterkey_fingerprint``) over :func:`signed_message`.
* AAD: the bytes of the ``header`` value exactly as they stand in the file; a reader refuses
  a file whose header bytes are not the canonical JSON of the decoded header (so reading the
  raw bytes and re-canonicalising give the same AAD for every accepted file).

Readers apply the lexical rules of :mod:`core.strictjson` (duplicate keys, non-integer
numbers, unknown members at any level, non-canonical base64 are refused).

**Transitional envelopes (version 2).** In a MasterKey rotation the OLD key may be sealed,
to online recipients only (KMS, HSM, Vault transit), for the online re-wrap of the IVKs
during a transition window. Such an envelope is version 2: ``version`` and
``header.format_version`` are ``2`` and the header carries one more member,
``transition`` = ``{"expires_utc": TIME, "successor_fingerprint": HEX64}`` (the new
MasterKey). Everything else is version 1. A reader of version 1 alone refuses it (it cannot
enforce the expiry: that is the point of the new version); our readers accept both and
refuse a version-2 envelope at or after ``expires_utc`` (:func:`parse`), to a recipient
that is not online, with a window longer than ``core.continuity.MAX_TRANSITION_DAYS`` or
naming itself as its successor. docs/formats.md 1.9.

The full byte-level description with a worked example is ``docs/formats.md``.
Sealing (:func:`seal`) touches the secret and runs in the keyholder; :func:`parse`,
and :mod:`core.seal.envelope_cli` (``kcm-ceremony envelope inspect FILE``) need no key and
run anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import secmem, strictjson
from core.crypto.transient import transient_bytes
from core.errors import KcmError
from core.seal import age as _age
from core.seal.recipients import (
    ALG_AGE,
    ALG_AGE_SSH,
    ALG_OAEP_256,
    ALG_OAEP_SHA1,
    SAFE_TEXT,
    Recipient,
    RecipientKind,
    require_confirmed,
)

__all__ = [
    "FORMAT",
    "ONLINE_RECIPIENT_KINDS",
    "TRANSITIONAL_VERSION",
    "VERSION",
    "VERSIONS",
    "Envelope",
    "EnvelopeError",
    "build_header",
    "canonical_json",
    "parse",
    "seal",
    "seal_manifest",
    "signed_message",
    "verify_signature",
]

FORMAT: Final = "openkcm-envelope"
VERSION: Final = 1
#: The version of a transitional envelope (version 1 plus ``header.transition``).
TRANSITIONAL_VERSION: Final = 2
VERSIONS: Final = (VERSION, TRANSITIONAL_VERSION)
#: Recipients of the online system (ADR-203 seal wrappers), the only ones a transitional
#: envelope of the old key may be sealed to: never a custodian.
ONLINE_RECIPIENT_KINDS: Final = ("aws-kms", "gcp-kms", "azure-kv", "vault-transit", "pkcs11-hsm")
KINDS: Final = ("masterkey", "shard")
#: kind -> the one payload encoding a v1 envelope of that kind carries
PAYLOAD_ENCODING: Final = {"masterkey": "raw", "shard": "slip39-indices-u16be"}
PAYLOAD_ENCODINGS: Final = tuple(PAYLOAD_ENCODING.values())
#: share lengths in bytes (20 or 33 SLIP-39 words, 2 bytes each)
SHARD_PAYLOAD_LENGTHS: Final = (40, 66)
#: header.shard members and their ranges (every member required, no other allowed)
SHARD_FIELDS: Final = {
    "index": (1, 256),
    "set_id": (0, 32767),
    "group_index": (1, 16),
    "group_threshold": (1, 16),
    "member_index": (1, 16),
    "threshold": (1, 16),
}
RECIPIENT_KINDS: Final = tuple(k.value for k in RecipientKind)
TOP_LEVEL: Final = ("format", "version", "header", "wrapped_key", "nonce", "ciphertext", "signature")
MAX_FILE_BYTES: Final = 64 * 1024
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
DATA_KEY_LEN: Final = 32
SIG_DOMAIN: Final = b"openkcm-envelope/v1 signature\x00"
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")

Signer = Callable[[bytes], bytes]


class EnvelopeError(KcmError, ValueError):
    """An envelope cannot be built or does not follow the format (message says why)."""

    code = "envelope"


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 (ASCII for our headers)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(data: bytes | bytearray) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid standard base64") from None
    if not raw or base64.b64encode(raw).decode("ascii") != value:
        # padding bits not zero, or empty: strict base64 has exactly one spelling
        raise EnvelopeError(f"{what} is not canonical standard base64 (RFC 4648 section 4)")
    return raw


def _safe(what: str, value: object) -> str:
    if not isinstance(value, str) or not SAFE_TEXT.match(value):
        raise EnvelopeError(
            f"header field {what} is missing or has characters outside the safe set"
        )
    return value


def utc_now() -> str:
    """Current UTC time in the header's format (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_header(
    *,
    kind: str,
    cluster_id: str,
    region_id: str,
    masterkey_fingerprint: str,
    ceremony_id: str,
    recipient: Recipient,
    payload_encoding: str | None = None,
    payload_length: int,
    created_utc: str | None = None,
    shard: Mapping[str, int] | None = None,
    transition: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build and validate an envelope header (public): version 1, or version 2 with
    ``transition`` (a transitional envelope of the old MasterKey in a rotation).

    Args:
        kind: ``masterkey`` or ``shard``.
        cluster_id: ADR-204 ``Cluster_ID``.
        region_id: ADR-204 ``Region_ID``.
        masterkey_fingerprint: 64 hex digits, the MasterKey's Ed25519 fingerprint
            (``core.crypto.fingerprint``); the KCV is its first 16 hex digits.
        ceremony_id: the ceremony's id.
        recipient: the (confirmed) recipient.
        payload_encoding: how the plaintext is encoded: ``raw`` (the 32 MasterKey bytes)
            for a MasterKey, ``slip39-indices-u16be`` (the share's SLIP-39 word indices, 2
            bytes each, big-endian) for a shard; default: the one the kind allows.
        payload_length: plaintext length in bytes.
        created_utc: ``YYYY-MM-DDTHH:MM:SSZ``; default now.
        shard: for ``kind="shard"``: exactly the integers ``index``, ``set_id``,
            ``group_index``, ``group_threshold``, ``member_index``, ``threshold`` (the
            member threshold of the share's group); see :data:`SHARD_FIELDS`.
        transition: for a transitional envelope (kind ``masterkey``, an online recipient):
            exactly ``expires_utc`` (``YYYY-MM-DDTHH:MM:SSZ``, after ``created_utc`` and at
            most ``core.continuity.MAX_TRANSITION_DAYS`` later) and
            ``successor_fingerprint`` (the new MasterKey's fingerprint, 64 hex). Makes the
            header ``format_version`` 2.

    Raises:
        EnvelopeError: a field is missing or invalid.
    """
    mkfp = masterkey_fingerprint.replace(" ", "").lower()
    header: dict[str, Any] = {
        "format_version": VERSION if transition is None else TRANSITIONAL_VERSION,
        "kind": kind,
        "cluster_id": cluster_id,
        "region_id": region_id,
        "masterkey_fingerprint": mkfp,
        "kcv": mkfp[:16],
        "ceremony_id": ceremony_id,
        "created_utc": created_utc or utc_now(),
        "payload_encoding": payload_encoding or PAYLOAD_ENCODING.get(kind, ""),
        "payload_length": payload_length,
        "recipient": {
            "name": recipient.name,
            "kind": recipient.kind.value,
            "key_id": recipient.key_id,
            "key_version": recipient.key_version,
            "alg": recipient.alg,
            "fingerprint": recipient.fingerprint_hex,
        },
    }
    if shard is not None:
        header["shard"] = dict(shard)
    if transition is not None:
        header["transition"] = dict(transition)
    validate_header(header)
    return header


def validate_header(header: object) -> dict[str, Any]:
    """Check a decoded header against the version-1 rules; returns it."""
    if not isinstance(header, dict):
        raise EnvelopeError("header must be a JSON object")
    allowed = {
        "format_version", "kind", "cluster_id", "region_id", "masterkey_fingerprint", "kcv",
        "ceremony_id", "created_utc", "payload_encoding", "payload_length", "recipient", "shard",
    }  # fmt: skip
    fv = header.get("format_version")
    if not isinstance(fv, int) or isinstance(fv, bool) or fv not in VERSIONS:
        raise EnvelopeError(
            f"header format_version is {header.get('format_version')!r}, expected 1 (or 2, a "
            "transitional envelope)"
        )
    if fv == TRANSITIONAL_VERSION:
        allowed.add("transition")
    extra = set(header) - allowed
    if extra:
        raise EnvelopeError(f"header has unknown fields: {', '.join(sorted(extra))}")
    if header.get("kind") not in KINDS:
        raise EnvelopeError(f"header kind must be masterkey or shard, not {header.get('kind')!r}")
    for f in ("cluster_id", "region_id", "ceremony_id"):
        _safe(f, header.get(f))
    mkfp = header.get("masterkey_fingerprint")
    if not isinstance(mkfp, str) or not _HEX64.match(mkfp):
        raise EnvelopeError("header masterkey_fingerprint must be 64 lower-case hex digits")
    if header.get("kcv") != mkfp[:16] or not _HEX16.match(str(header.get("kcv"))):
        raise EnvelopeError("header kcv must be the first 16 hex digits of masterkey_fingerprint")
    if not isinstance(header.get("created_utc"), str) or not _TIME_RE.match(header["created_utc"]):
        raise EnvelopeError("header created_utc must look like 2026-01-31T12:00:00Z")
    if header.get("payload_encoding") != PAYLOAD_ENCODING[header["kind"]]:
        raise EnvelopeError(
            f"header payload_encoding of a {header['kind']} envelope must be "
            f"{PAYLOAD_ENCODING[header['kind']]}"
        )
    plen = header.get("payload_length")
    if not isinstance(plen, int) or isinstance(plen, bool):
        raise EnvelopeError("header payload_length must be an integer")
    if header["kind"] == "masterkey" and plen != 32:
        raise EnvelopeError("a MasterKey payload is 32 bytes (payload_length 32)")
    if header["kind"] == "shard" and plen not in SHARD_PAYLOAD_LENGTHS:
        raise EnvelopeError("a shard payload is 40 or 66 bytes (20 or 33 SLIP-39 word indices)")
    rec = header.get("recipient")
    if not isinstance(rec, dict) or set(rec) != {
        "name", "kind", "key_id", "key_version", "alg", "fingerprint"
    }:  # fmt: skip
        raise EnvelopeError(
            "header recipient must have name, kind, key_id, key_version, alg, fingerprint"
        )
    for f in ("name", "kind", "key_id", "alg"):
        _safe(f"recipient.{f}", rec[f])
    if rec["kind"] not in RECIPIENT_KINDS:
        raise EnvelopeError(f"unknown recipient kind {rec['kind']!r}")
    if rec["key_version"] != "":
        _safe("recipient.key_version", rec["key_version"])
    if rec["alg"] not in (ALG_OAEP_256, ALG_OAEP_SHA1, ALG_AGE, ALG_AGE_SSH):
        raise EnvelopeError(f"unknown wrap algorithm {rec['alg']!r}")
    if not isinstance(rec["fingerprint"], str) or not _HEX64.match(rec["fingerprint"]):
        raise EnvelopeError("header recipient.fingerprint must be 64 lower-case hex digits")
    shard = header.get("shard")
    if header["kind"] == "shard":
        if not isinstance(shard, dict) or set(shard) != set(SHARD_FIELDS):
            raise EnvelopeError(
                "a shard envelope's header shard object must have exactly "
                + ", ".join(SHARD_FIELDS)
            )
        for k, (lo, hi) in SHARD_FIELDS.items():
            v = shard[k]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise EnvelopeError(f"header shard.{k} must be an integer from {lo} to {hi}")
    elif "shard" in header:
        raise EnvelopeError("only shard envelopes carry a shard object")
    if fv == TRANSITIONAL_VERSION:
        _validate_transition(header)
    return header


def _validate_transition(header: dict[str, Any]) -> None:
    """The rules of a version-2 (transitional) header, docs/formats.md 1.9."""
    from core import continuity

    t = header.get("transition")
    if not isinstance(t, dict) or set(t) != {"expires_utc", "successor_fingerprint"}:
        raise EnvelopeError(
            "a version-2 (transitional) envelope's header must have a transition object with "
            "exactly expires_utc and successor_fingerprint"
        )
    if header["kind"] != "masterkey":
        raise EnvelopeError("only a MasterKey envelope can be transitional (not a shard)")
    if header["recipient"]["kind"] not in ONLINE_RECIPIENT_KINDS:
        raise EnvelopeError(
            f"a transitional envelope is sealed to an online recipient only "
            f"({', '.join(ONLINE_RECIPIENT_KINDS)}), not to {header['recipient']['kind']}"
        )
    succ = t["successor_fingerprint"]
    if not isinstance(succ, str) or not _HEX64.match(succ):
        raise EnvelopeError("header transition.successor_fingerprint must be 64 lower-case hex digits")
    if succ == header["masterkey_fingerprint"]:
        raise EnvelopeError("a transitional envelope names another key as its successor")
    if not isinstance(t["expires_utc"], str) or not _TIME_RE.match(t["expires_utc"]):
        raise EnvelopeError("header transition.expires_utc must look like 2026-01-31T12:00:00Z")
    try:
        continuity.check_transition_expiry(t["expires_utc"], header["created_utc"])
    except continuity.StatementError as exc:
        raise EnvelopeError(f"header transition: {exc}") from None


def transition_expired(header: Mapping[str, Any], now: datetime | None = None) -> bool:
    """True for a transitional header whose window has ended (``now`` at or after
    ``transition.expires_utc``); False for any other header."""
    t = header.get("transition")
    if not isinstance(t, Mapping):
        return False
    end = datetime.strptime(str(t["expires_utc"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) >= end


def _wrap_data_key(recipient: Recipient, data_key: memoryview, allow_unlocked: bool) -> bytes:
    if recipient.alg in (ALG_OAEP_256, ALG_OAEP_SHA1):
        h: hashes.HashAlgorithm = (
            hashes.SHA256() if recipient.alg == ALG_OAEP_256 else hashes.SHA1()
        )
        pad = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
        # RSAPublicKey.encrypt accepts only bytes: a wiped one-call copy of the data key
        # (a one-time random key, not the secret itself). See core/crypto/transient.py.
        with transient_bytes(data_key) as dk:
            return recipient.rsa_public_key().encrypt(dk, pad)
    if recipient.alg in (ALG_AGE, ALG_AGE_SSH):
        return _age.encrypt_to_recipient(
            recipient.age_recipient, data_key, allow_unlocked=allow_unlocked
        )
    raise EnvelopeError(f"unknown wrap algorithm {recipient.alg!r}")  # pragma: no cover


def signed_message(header_aad: bytes, alg: str, wrapped: bytes, nonce: bytes, ct: bytes) -> bytes:
    """The bytes an envelope signature covers.

    ``"openkcm-envelope/v1 signature\\0"`` followed by, for each of AAD (canonical
    header), ``wrapped_key.alg`` (ASCII), the wrapped data key, the nonce and the
    ciphertext||tag: a 4-byte big-endian length then the bytes.
    """
    out = bytearray(SIG_DOMAIN)
    for part in (header_aad, alg.encode("ascii"), wrapped, nonce, ct):
        out += struct.pack(">I", len(part)) + part
    return bytes(out)


def seal(
    secret: memoryview,
    header: dict[str, Any],
    recipient: Recipient,
    *,
    signer: Signer,
    allow_unlocked: bool = False,
) -> bytes:
    """Seal a secret for one recipient; returns the envelope file (ASCII JSON, public).

    Args:
        secret: the plaintext (memoryview of a locked buffer); never copied.
        header: from :func:`build_header` for this recipient and this payload length.
        recipient: must carry a witness confirmation.
        signer: signs :func:`signed_message` with the MasterKey-derived Ed25519 key
            (mandatory: a version-1 envelope is always signed).
        allow_unlocked: demo keyholders only (data key in unlocked memory).

    Raises:
        UnconfirmedRecipient: nobody confirmed the recipient's fingerprint.
        EnvelopeError: header and recipient or payload disagree.
    """
    require_confirmed(recipient)
    validate_header(header)
    if header["recipient"]["fingerprint"] != recipient.fingerprint_hex:
        raise EnvelopeError("the header names another recipient than the one sealed to")
    if header["recipient"]["alg"] != recipient.alg:
        raise EnvelopeError("the header's wrap algorithm differs from the recipient's")
    if header["payload_length"] != secret.nbytes:
        raise EnvelopeError("the header's payload_length differs from the secret's length")
    aad = canonical_json(header)
    nonce = os.urandom(NONCE_LEN)  # public
    ct = bytearray(secret.nbytes + TAG_LEN)
    with secmem.SecretBuffer(DATA_KEY_LEN, allow_unlocked=allow_unlocked) as dk_buf:
        dk_buf.fill_random()
        with dk_buf.view() as dk:
            AESGCM(dk).encrypt_into(nonce, secret, aad, ct)
            wrapped = _wrap_data_key(recipient, dk, allow_unlocked)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": header["format_version"],
        "header": header,
        "wrapped_key": {
            "alg": recipient.alg,
            "recipient_fingerprint": recipient.fingerprint_hex,
            "ciphertext": _b64(wrapped),
        },
        "nonce": _b64(nonce),
        "ciphertext": _b64(ct),
    }
    sig = signer(signed_message(aad, recipient.alg, wrapped, nonce, bytes(ct)))
    if len(sig) != 64:
        raise EnvelopeError("the signer returned a signature that is not 64 bytes")
    doc["signature"] = {"alg": "Ed25519", "value": _b64(sig)}
    return serialise(doc)


def serialise(doc: Mapping[str, Any]) -> bytes:
    """Envelope file bytes: one line per top-level member, the header in canonical form.

    The header is written exactly as its canonical JSON, so a reader that keeps the raw
    header bytes (Go ``json.RawMessage``) already holds the AAD.
    """
    lines = []
    for k in TOP_LEVEL:
        if k in doc:
            lines.append(f"  {json.dumps(k)}: " + canonical_json(doc[k]).decode("ascii"))
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("ascii")


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope (public parts only)."""

    header: dict[str, Any]
    aad: bytes
    alg: str
    recipient_fingerprint: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    signature: bytes | None

    @property
    def transition(self) -> dict[str, str] | None:
        """``header.transition`` of a transitional (version-2) envelope, else None."""
        t = self.header.get("transition")
        return dict(t) if isinstance(t, dict) else None

    def expired(self, now: datetime | None = None) -> bool:
        """True for a transitional envelope whose window has ended (see
        :func:`transition_expired`)."""
        return transition_expired(self.header, now)

    @property
    def sha256(self) -> str:
        """Not the file hash (formatting may vary): hash of AAD, wrapped key, nonce, ct."""
        return hashlib.sha256(
            signed_message(self.aad, self.alg, self.wrapped_key, self.nonce, self.ciphertext)
        ).hexdigest()


def parse(
    data: bytes,
    *,
    allow_unsigned: bool = False,
    now: datetime | None = None,
    allow_expired: bool = False,
) -> Envelope:
    """Parse and check an envelope file without any key (docs/formats.md 0 and 1.7).

    Checks, in this order: size and ASCII; the lexical rules (duplicate keys, integers
    only...); ``format`` and ``version``; the exact member set at every level; the header's
    bytes are its canonical JSON (they are the AAD); the header's fields; ``wrapped_key``
    agrees with the header's recipient; strict base64 and the lengths of every binary
    member; the signature's presence and form. The signature itself is checked by
    :func:`verify_signature`.

    Args:
        data: the file's bytes.
        allow_unsigned: accept a file without ``signature`` (``inspect --allow-unsigned``:
            only to look at the header of a stripped or third-party file; such an envelope
            must not be opened).
        now: the time to judge a transitional envelope's expiry at (default: the clock).
        allow_expired: accept a transitional envelope whose window has ended
            (``envelope inspect`` shows it, marked EXPIRED, and exits 1; nothing opens it).

    Raises:
        EnvelopeError: with the first problem found; for a transitional envelope at or
            after its ``transition.expires_utc``: "expired".
    """
    if len(data) > MAX_FILE_BYTES:
        raise EnvelopeError(f"{len(data)} bytes: larger than any envelope ({MAX_FILE_BYTES})")
    if b"\\" in data:
        # every string of an envelope is in the safe set, base64 or hex: no escape sequence
        # can occur, so none is accepted (a reader need not decide what "\\u0066" means)
        raise EnvelopeError("an envelope contains no backslash: escape sequences are refused")
    try:
        doc, spans = strictjson.members_with_spans(data)
    except strictjson.StrictJSONError as exc:
        raise EnvelopeError(f"not a well-formed envelope: {exc}") from None
    if doc.get("format") != FORMAT:
        raise EnvelopeError(f"not an {FORMAT} file (format member missing or different)")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in VERSIONS:
        raise EnvelopeError(
            f"envelope version {version!r} is not supported (expected 1, or 2 for a "
            "transitional envelope)"
        )
    extra = set(doc) - set(TOP_LEVEL)
    if extra:
        raise EnvelopeError(f"unknown top-level members: {', '.join(sorted(extra))}")
    required = [m for m in TOP_LEVEL if not (m == "signature" and allow_unsigned)]
    missing = [m for m in required if m not in doc]
    if missing:
        if missing == ["signature"]:
            raise EnvelopeError(
                "the signature is missing: every envelope is signed with the MasterKey's "
                "signing key; an unsigned envelope must not be used (it may have been altered)"
            )
        raise EnvelopeError(f"missing members: {', '.join(missing)}")
    header = validate_header(doc["header"])
    if header["format_version"] != version:
        # the copy inside the header is authenticated (AAD and signature): the unprotected
        # top-level member cannot turn a transitional envelope into a plain one, or back
        raise EnvelopeError(
            f"envelope version {version} differs from the header's format_version "
            f"{header['format_version']}"
        )
    start, end = spans["header"]
    aad = bytes(data[start:end])
    if aad != canonical_json(header):
        raise EnvelopeError(
            "the header is not written in canonical form (sorted keys, no spaces): the file "
            "was reformatted or altered; the AAD is the header's bytes as written"
        )
    wk = doc["wrapped_key"]
    if not isinstance(wk, dict) or set(wk) != {"alg", "recipient_fingerprint", "ciphertext"}:
        raise EnvelopeError("wrapped_key must have exactly alg, recipient_fingerprint, ciphertext")
    if wk["alg"] != header["recipient"]["alg"]:
        raise EnvelopeError("wrapped_key.alg differs from header recipient.alg")
    if wk["recipient_fingerprint"] != header["recipient"]["fingerprint"]:
        raise EnvelopeError("wrapped_key.recipient_fingerprint differs from the header's")
    wrapped = _unb64(wk["ciphertext"], "wrapped_key.ciphertext")
    if wk["alg"] in (ALG_OAEP_256, ALG_OAEP_SHA1):
        if not 384 <= len(wrapped) <= 1024:
            raise EnvelopeError(
                f"wrapped data key is {len(wrapped)} bytes: not an RSA-3072 or larger OAEP block"
            )
    else:
        try:
            stanzas = _age.parse_header(wrapped)
        except _age.AgeFormatError as exc:
            raise EnvelopeError(f"wrapped data key is not an age file: {exc}") from None
        want = "X25519" if wk["alg"] == ALG_AGE else "ssh-ed25519"
        if [st[0] for st in stanzas] != [want]:
            raise EnvelopeError(f"the age-wrapped data key must have exactly one {want} stanza")
    nonce = _unb64(doc["nonce"], "nonce")
    if len(nonce) != NONCE_LEN:
        raise EnvelopeError(f"nonce is {len(nonce)} bytes, expected 12")
    ct = _unb64(doc["ciphertext"], "ciphertext")
    if len(ct) != header["payload_length"] + TAG_LEN:
        raise EnvelopeError(
            f"ciphertext is {len(ct)} bytes; payload_length {header['payload_length']} + 16-byte "
            "tag expected (truncated or damaged)"
        )
    sig: bytes | None = None
    if "signature" in doc:
        sd = doc["signature"]
        if not isinstance(sd, dict) or set(sd) != {"alg", "value"} or sd["alg"] != "Ed25519":
            raise EnvelopeError("signature must be exactly {alg: Ed25519, value: base64}")
        sig = _unb64(sd["value"], "signature.value")
        if len(sig) != 64:
            raise EnvelopeError("an Ed25519 signature is 64 bytes")
    if not allow_expired and transition_expired(header, now):
        raise EnvelopeError(
            f"this transitional envelope of the old MasterKey expired at "
            f"{header['transition']['expires_utc']}: its transition window is over and it "
            f"must not be used (the successor key is {header['transition']['successor_fingerprint'][:16]})"
        )
    return Envelope(
        header=header,
        aad=aad,
        alg=wk["alg"],
        recipient_fingerprint=wk["recipient_fingerprint"],
        wrapped_key=wrapped,
        nonce=nonce,
        ciphertext=ct,
        signature=sig,
    )


def verify_signature(env: Envelope) -> bool | None:
    """Check the signature against ``header.masterkey_fingerprint``; None if unsigned."""
    if env.signature is None:
        return None
    from core.crypto.fingerprint import verify_signature as _verify

    msg = signed_message(env.aad, env.alg, env.wrapped_key, env.nonce, env.ciphertext)
    return _verify(bytes.fromhex(env.header["masterkey_fingerprint"]), msg, env.signature)


def seal_manifest(
    envelopes: Mapping[str, bytes],
    *,
    ceremony_id: str,
    signer: Callable[[str, bytes], bytes] | None = None,
) -> bytes:
    """Public list of sealed envelopes for the genesis manifest (ADR-204 "Ceremony Manifest").

    Each entry: file name, SHA-256 of the file bytes, kind, shard block, recipient
    (name, kind, key id, version, fingerprint). Optionally signed through the keyholder's
    domain-separated SIGN operation: ``signer(purpose, message)`` is
    ``KeyholderClient.sign``, the purpose is ``seal-manifest`` and the signature covers
    ``core.keyholder.ops_core.signed_bytes("seal-manifest", message)`` where ``message`` is
    ``"openkcm-seal-manifest/v1\\0"`` + the canonical ``body``.
    """
    entries = []
    mkfps = set()
    for name, data in sorted(envelopes.items()):
        env = parse(data)
        mkfps.add(env.header["masterkey_fingerprint"])
        entries.append(
            {
                "file": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "kind": env.header["kind"],
                "shard": env.header.get("shard"),
                "recipient": env.header["recipient"],
            }
        )
    if len(mkfps) > 1:
        raise EnvelopeError("the envelopes belong to different MasterKeys")
    body = {
        "format": "openkcm-seal-manifest",
        "version": 1,
        "ceremony_id": _safe("ceremony_id", ceremony_id),
        "masterkey_fingerprint": next(iter(mkfps)) if mkfps else "",
        "envelopes": entries,
    }
    doc: dict[str, Any] = {"body": body}
    if signer is not None:
        doc["signature"] = {
            "alg": "Ed25519",
            "value": _b64(
                signer("seal-manifest", b"openkcm-seal-manifest/v1\x00" + canonical_json(body))
            ),
        }
    return json.dumps(doc, sort_keys=True, indent=2).encode("ascii") + b"\n"
