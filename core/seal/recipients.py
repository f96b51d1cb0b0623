"""Recipients: the public keys a secret is sealed to, read from media and checked.

A recipient is a KMS/HSM key or a custodian's key: its *kind* fixes which key types,
sizes and wrapping algorithm are acceptable. Public keys arrive as PEM, DER, JWK, an
OpenSSH ``ssh-rsa`` line, an age ``age1...`` X25519 recipient, or are read from a PKCS#11
token. Everything here is public data; this module runs in the ceremony process.

Every recipient has a fingerprint: SHA-256 of the DER SubjectPublicKeyInfo (RSA), or of
the ASCII ``age1...`` recipient string (X25519), or of ``ssh-ed25519 <base64>`` (no comment)
for an OpenSSH Ed25519 custodian key (sealed with age's ssh-ed25519 stanza). It is shown as hex and as words, and a
named witness confirms it against an out-of-band copy (:func:`confirm`); sealing to an
unconfirmed recipient is refused (:func:`require_confirmed`). A fingerprint written in the
recipients file is *not* a confirmation: it came in on the same medium as the key.

A private key supplied where a public key belongs is refused with
:class:`PrivateKeySupplied`; its text is never echoed, logged or written anywhere, and the
buffer it was read into is overwritten before the error is raised.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import safeio as _safeio
from core.errors import KcmError
from core.seal import age as _age
from core.words import to_words

__all__ = [
    "SAFE_TEXT",
    "Confirmation",
    "FingerprintMismatch",
    "MalformedKey",
    "PrivateKeySupplied",
    "Recipient",
    "RecipientError",
    "RecipientKind",
    "SymmetricKeySupplied",
    "UnconfirmedRecipient",
    "WeakKey",
    "WrongKeyType",
    "confirm",
    "confirmation_matches",
    "load_recipients_file",
    "parse_public_key",
    "read_pkcs11_public_key",
    "recipient_from_key",
    "require_confirmed",
]

#: Minimum RSA modulus for every recipient kind (KMS targets, HSM, custodians).
MIN_RSA_BITS = 3072
#: The one cap on key files and key bytes (core.safeio.MAX_KEY_FILE).
MAX_KEY_FILE = _safeio.MAX_KEY_FILE
#: Characters allowed in public header strings (ids, names): printable ASCII except the
#: double quote, backslash, <, > and &, so canonical JSON is identical in Python and Go
#: (json.Marshal escapes <, > and &; quotes and backslashes would need escaping).
SAFE_TEXT = re.compile(r"^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,256}$")


class RecipientError(KcmError, ValueError):
    """A recipient key or recipients file was refused; the message says why."""

    code = "recipient"


class MalformedKey(RecipientError):
    """The key file cannot be parsed in any supported encoding."""

    code = "key-malformed"


class WrongKeyType(RecipientError):
    """The key is of a type this recipient kind cannot use."""

    code = "key-wrong-type"


class WeakKey(RecipientError):
    """The key is too small or has unsafe parameters."""

    code = "key-weak"


class PrivateKeySupplied(RecipientError):
    """A private key was supplied where a public key belongs (it is not stored anywhere)."""

    code = "key-private"


class SymmetricKeySupplied(PrivateKeySupplied):
    """A symmetric (``oct``) key was supplied: secret material that can be no recipient."""

    code = "key-symmetric"


class UnconfirmedRecipient(RecipientError):
    """Sealing was asked for a recipient whose fingerprint no witness confirmed."""

    code = "recipient-unconfirmed"


class FingerprintMismatch(RecipientError):
    """The out-of-band fingerprint does not match the key brought in."""

    code = "fingerprint-mismatch"


class RecipientKind(StrEnum):
    """Who holds the private key, which fixes the acceptable keys and the wrap algorithm."""

    AWS_KMS = "aws-kms"
    GCP_KMS = "gcp-kms"
    AZURE_KV = "azure-kv"
    VAULT_TRANSIT = "vault-transit"
    PKCS11_HSM = "pkcs11-hsm"
    CUSTODIAN_RSA = "custodian-rsa"
    CUSTODIAN_AGE = "custodian-age"


RSA_KINDS = frozenset(
    {
        RecipientKind.AWS_KMS,
        RecipientKind.GCP_KMS,
        RecipientKind.AZURE_KV,
        RecipientKind.VAULT_TRANSIT,
        RecipientKind.PKCS11_HSM,
        RecipientKind.CUSTODIAN_RSA,
    }
)

#: Wrap algorithm names used in envelopes (``wrapped_key.alg``).
ALG_OAEP_256 = "RSA-OAEP-256"  # RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label
ALG_OAEP_SHA1 = "RSA-OAEP"  # RSAES-OAEP, SHA-1, MGF1-SHA-1, empty label (HSMs without SHA-256)
ALG_AGE = "age-X25519"
ALG_AGE_SSH = "age-ssh-ed25519"  # age's ssh-ed25519 stanza to an OpenSSH Ed25519 key

# Vendor algorithm names a recipients file may state, per kind (checked, then mapped).
_VENDOR_ALGS: dict[RecipientKind, dict[str, str]] = {
    RecipientKind.AWS_KMS: {"RSAES_OAEP_SHA_256": ALG_OAEP_256},
    RecipientKind.GCP_KMS: {
        "RSA_DECRYPT_OAEP_3072_SHA256": ALG_OAEP_256,
        "RSA_DECRYPT_OAEP_4096_SHA256": ALG_OAEP_256,
    },
    RecipientKind.AZURE_KV: {"RSA-OAEP-256": ALG_OAEP_256},
    RecipientKind.VAULT_TRANSIT: {"rsa-3072": ALG_OAEP_256, "rsa-4096": ALG_OAEP_256},
    RecipientKind.PKCS11_HSM: {
        "CKM_RSA_PKCS_OAEP_SHA256": ALG_OAEP_256,
        "CKM_RSA_PKCS_OAEP_SHA1": ALG_OAEP_SHA1,
    },
    RecipientKind.CUSTODIAN_RSA: {"RSA-OAEP-256": ALG_OAEP_256},
    RecipientKind.CUSTODIAN_AGE: {"age-X25519": ALG_AGE, "age-ssh-ed25519": ALG_AGE_SSH},
}
_DEFAULT_ALG: dict[RecipientKind, str] = {
    k: (ALG_AGE if k is RecipientKind.CUSTODIAN_AGE else ALG_OAEP_256) for k in RecipientKind
}


@dataclass(frozen=True)
class Confirmation:
    """A witness's confirmation of a recipient fingerprint against an out-of-band copy.

    ``fingerprint`` is the fingerprint as the witness confirmed it (64 hex digits, or the
    26 words), not one computed from the key being sealed to: the keyholder checks it
    against the key it is asked to seal to (:func:`confirmation_matches`).
    """

    witness: str
    method: str  # "hex" | "words"
    confirmed_utc: str
    fingerprint: str = ""

    def to_dict(self) -> dict[str, str]:
        """Public record for the journal and the keyholder."""
        return {
            "witness": self.witness,
            "method": self.method,
            "confirmed_utc": self.confirmed_utc,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Recipient:
    """One public key a secret can be sealed to (public data only).

    Attributes:
        name: label shown in the room (``aws-eu-central-1``, ``custodian alice``).
        kind: who holds the private key.
        key_id: KMS key ARN / resource name / Azure kid / Vault key name / token+label.
        key_version: KMS key version (``""`` when the kind has none).
        alg: envelope wrap algorithm (``RSA-OAEP-256``, ``RSA-OAEP``, ``age-X25519``).
        spki_der: DER SubjectPublicKeyInfo for RSA keys, else ``b""``.
        age_recipient: ``age1...`` for X25519 keys, else ``""``.
        confirmation: set by :func:`confirm`; ``None`` until a witness confirmed.
    """

    name: str
    kind: RecipientKind
    key_id: str
    key_version: str
    alg: str
    spki_der: bytes = b""
    age_recipient: str = ""
    confirmation: Confirmation | None = None

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the SPKI (RSA) or of the age recipient string (``age1...`` or ``ssh-ed25519 B64``)."""
        if self.spki_der:
            return hashlib.sha256(self.spki_der).digest()
        return hashlib.sha256(self.age_recipient.encode("ascii")).digest()

    @property
    def fingerprint_hex(self) -> str:
        """Fingerprint as 64 lower-case hex digits."""
        return self.fingerprint.hex()

    @property
    def fingerprint_words(self) -> list[str]:
        """Fingerprint as 26 words (10 bits each, SLIP-39 list) to read aloud."""
        return to_words(self.fingerprint)

    @property
    def rsa_bits(self) -> int:
        """RSA modulus size, 0 for X25519."""
        return self.rsa_public_key().key_size if self.spki_der else 0

    def rsa_public_key(self) -> rsa.RSAPublicKey:
        """The RSA public key object (RSA recipients only)."""
        key = serialization.load_der_public_key(self.spki_der)
        if not isinstance(key, rsa.RSAPublicKey):  # pragma: no cover - checked at load
            raise WrongKeyType(f"{self.name}: not an RSA key")
        return key

    @property
    def confirmed(self) -> bool:
        """True once a witness confirmed the fingerprint."""
        return self.confirmation is not None

    def describe(self) -> str:
        """One-line description for the screen."""
        size = f"RSA-{self.rsa_bits}" if self.spki_der else "X25519"
        ver = f" v{self.key_version}" if self.key_version else ""
        return f"{self.name}: {self.kind.value} {self.key_id}{ver} ({size}, {self.alg})"

    def to_public_dict(self) -> dict[str, Any]:
        """Serialisable public form (for the keyholder, the journal and manifests)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "key_id": self.key_id,
            "key_version": self.key_version,
            "alg": self.alg,
            "spki_der_b64": base64.b64encode(self.spki_der).decode() if self.spki_der else "",
            "age_recipient": self.age_recipient,
            "fingerprint": self.fingerprint_hex,
            "confirmation": self.confirmation.to_dict() if self.confirmation else None,
        }

    @classmethod
    def from_public_dict(cls, d: dict[str, Any]) -> Recipient:
        """Rebuild and re-validate a recipient from :meth:`to_public_dict` output.

        The key is re-checked and the fingerprint recomputed: a mismatch is refused.
        """
        try:
            kind = RecipientKind(d["kind"])
            if d.get("spki_der_b64"):
                key: rsa.RSAPublicKey | str = _as_rsa(
                    serialization.load_der_public_key(base64.b64decode(d["spki_der_b64"]))
                )
            else:
                key = str(d["age_recipient"])
            r = recipient_from_key(
                key,
                name=str(d["name"]),
                kind=kind,
                key_id=str(d["key_id"]),
                key_version=str(d.get("key_version", "")),
                algorithm=str(d["alg"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            if isinstance(exc, RecipientError):
                raise
            raise MalformedKey(f"recipient record is incomplete or malformed ({exc})") from None
        if d.get("fingerprint") and d["fingerprint"] != r.fingerprint_hex:
            raise FingerprintMismatch(f"{r.name}: recorded fingerprint does not match the key")
        conf = d.get("confirmation")
        if conf:
            r = dataclasses.replace(
                r,
                confirmation=Confirmation(
                    str(conf["witness"]),
                    str(conf["method"]),
                    str(conf["confirmed_utc"]),
                    str(conf.get("fingerprint") or ""),
                ),
            )
        return r


def _check_text(what: str, value: str, *, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return value
    if not SAFE_TEXT.match(value):
        raise RecipientError(
            f"{what} {value[:40]!r} is empty, too long (256 max) or has a character that is "
            'not printable ASCII or is one of " \\ < > &'
        )
    return value


def _as_rsa(key: object) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise WrongKeyType(f"expected an RSA public key, got {type(key).__name__}")
    return key


def _check_rsa(key: rsa.RSAPublicKey, kind: RecipientKind) -> None:
    nums = key.public_numbers()
    if key.key_size < MIN_RSA_BITS:
        raise WeakKey(
            f"RSA-{key.key_size} is too small for a {kind.value} recipient: at least "
            f"RSA-{MIN_RSA_BITS} is required (create a 3072- or 4096-bit key)"
        )
    if nums.e < 65537 or nums.e % 2 == 0:
        raise WeakKey(f"RSA public exponent {nums.e} is unsafe: 65537 is expected")


def recipient_from_key(
    key: rsa.RSAPublicKey | x25519.X25519PublicKey | str,
    *,
    name: str,
    kind: RecipientKind | str,
    key_id: str,
    key_version: str = "",
    algorithm: str = "",
) -> Recipient:
    """Validate a public key for a recipient kind and build the :class:`Recipient`.

    Args:
        key: an RSA public key, an X25519 public key, or an ``age1...`` string.
        name: label shown in the room.
        kind: recipient kind.
        key_id: KMS key id / ARN, Azure kid, Vault key name, token label...
        key_version: KMS key version if the kind has one.
        algorithm: vendor algorithm name (``RSAES_OAEP_SHA_256``, ``CKM_RSA_PKCS_OAEP_SHA1``,
            ...) or an envelope algorithm name; checked against the kind.

    Raises:
        WrongKeyType, WeakKey, RecipientError: with the reason.
    """
    try:
        kind = RecipientKind(kind)
    except ValueError:
        raise RecipientError(
            f"unknown recipient kind {kind!r}; expected one of "
            + ", ".join(k.value for k in RecipientKind)
        ) from None
    _check_text("name", name)
    _check_text("key id", key_id)
    _check_text("key version", key_version, allow_empty=True)
    table = _VENDOR_ALGS[kind]
    if not algorithm:
        alg = _DEFAULT_ALG[kind]
    elif algorithm in table:
        alg = table[algorithm]
    elif algorithm in table.values():
        alg = algorithm
    else:
        raise RecipientError(
            f"algorithm {algorithm!r} is not usable for a {kind.value} recipient; expected "
            + " or ".join(sorted(table))
        )
    if kind is RecipientKind.CUSTODIAN_AGE:
        if isinstance(key, x25519.X25519PublicKey):
            age_recipient = _age.encode_recipient(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        elif isinstance(key, str) and key.startswith("ssh-ed25519"):
            try:
                wire, _pub = _age.parse_ssh_ed25519(key)
            except _age.AgeFormatError as exc:
                raise MalformedKey(f"OpenSSH key refused: {exc}") from None
            age_recipient = "ssh-ed25519 " + base64.b64encode(wire).decode("ascii")
        elif isinstance(key, str):
            try:
                _age.decode_recipient(key)
            except _age.AgeFormatError as exc:
                raise MalformedKey(f"age recipient refused: {exc}") from None
            age_recipient = key.strip().lower()
        else:
            raise WrongKeyType(
                f"a {kind.value} recipient needs an X25519 (age) or ssh-ed25519 key, got an RSA key"
            )
        wanted = ALG_AGE_SSH if age_recipient.startswith("ssh-ed25519") else ALG_AGE
        if algorithm and alg != wanted:
            raise WrongKeyType(f"algorithm {algorithm} does not fit this key (it needs {wanted})")
        return Recipient(name, kind, key_id, key_version, wanted, b"", age_recipient)
    if not isinstance(key, rsa.RSAPublicKey):
        raise WrongKeyType(
            f"a {kind.value} recipient needs an RSA public key, got "
            + ("an X25519/age key" if not isinstance(key, rsa.RSAPublicKey) else "?")
        )
    _check_rsa(key, kind)
    if kind is RecipientKind.GCP_KMS and algorithm.startswith("RSA_DECRYPT_OAEP_"):
        want = int(algorithm.split("_")[3])
        if key.key_size != want:
            raise WrongKeyType(f"{algorithm} names RSA-{want}, the key is RSA-{key.key_size}")
    if kind is RecipientKind.VAULT_TRANSIT and algorithm.startswith("rsa-"):
        want = int(algorithm[4:])
        if key.key_size != want:
            raise WrongKeyType(f"{algorithm} names RSA-{want}, the key is RSA-{key.key_size}")
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return Recipient(name, kind, key_id, key_version, alg, spki, "")


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))


#: A JSON Web Key of type ``oct``: a symmetric secret key (``"k"`` is the key itself).
_OCT_RE = re.compile(rb'"kty"\s*:\s*"oct"')
_SYMMETRIC_MESSAGE = (
    "this JWK is a symmetric (kty oct) SECRET key, not a public key: a secret is sealed to "
    "a public key (RSA 3072+ or X25519), never to a shared secret. The file was not copied "
    "anywhere; remove the medium and bring the recipient's public key."
)
_PRIVATE_RE = re.compile(
    rb'(?i)PRIVATE KEY-----|AGE-SECRET-KEY-|PuTTY-User-Key-File|"(?:d|p|q|dp|dq|qi|k)"\s*:'
)


def _looks_like_der_private(data: bytes | bytearray) -> bool:
    """True for DER that starts like a private key: SEQUENCE { INTEGER 0|1, ... }.

    PKCS#8 PrivateKeyInfo, PKCS#1 RSAPrivateKey and SEC1 ECPrivateKey all open with a small
    version INTEGER; public encodings (SPKI, certificates, PKCS#1 RSAPublicKey) do not.
    """
    if len(data) < 8 or data[0] != 0x30:
        return False
    pos = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    return data[pos : pos + 2] == b"\x02\x01" and data[pos + 2] in (0, 1)


def parse_public_key(data: bytes | bytearray) -> rsa.RSAPublicKey | x25519.X25519PublicKey | str:
    """Parse a public key in any supported encoding.

    Supported: PEM (``PUBLIC KEY``, ``RSA PUBLIC KEY``, ``CERTIFICATE``), DER (SPKI or
    certificate), JWK (``kty`` RSA or OKP/X25519, or a JWKS with one key), OpenSSH
    ``ssh-rsa`` / ``ssh-ed25519``, age ``age1...``.

    Returns:
        An RSA or X25519 public key object, or the age recipient string.

    Raises:
        PrivateKeySupplied: private key material (never echoed).
        WrongKeyType: a parseable key of an unusable type (EC, Ed25519, DSA...).
        MalformedKey: nothing parses.
    """
    if len(data) > MAX_KEY_FILE:
        raise MalformedKey(
            f"{len(data)} bytes is too large for a public key (at most {MAX_KEY_FILE}): refused "
            "before parsing"
        )
    # Private-key checks run on the caller's buffer first, before any copy is made.
    if _OCT_RE.search(data):
        raise SymmetricKeySupplied(_SYMMETRIC_MESSAGE)
    if _PRIVATE_RE.search(data) or _looks_like_der_private(data):
        raise PrivateKeySupplied(
            "this file holds a PRIVATE key. Only public keys may be brought into the ceremony; "
            "the file was not copied anywhere. Remove the medium and bring the public key."
        )
    raw = bytes(data)
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        return _parse_jwk(stripped)
    if stripped.startswith(b"age1") or stripped.startswith(b"AGE1"):
        try:
            _age.decode_recipient(stripped.decode("ascii"))
        except (_age.AgeFormatError, UnicodeDecodeError) as exc:
            raise MalformedKey(f"age recipient refused: {exc}") from None
        return stripped.decode("ascii").lower()
    if stripped.startswith(b"ssh-ed25519 "):
        try:
            wire, _pub = _age.parse_ssh_ed25519(stripped.decode("ascii"))
        except (_age.AgeFormatError, UnicodeDecodeError) as exc:
            raise MalformedKey(f"OpenSSH public key refused: {exc}") from None
        return "ssh-ed25519 " + base64.b64encode(wire).decode("ascii")
    if stripped.startswith(b"ssh-") or stripped.startswith(b"ecdsa-"):
        if not stripped.startswith(b"ssh-rsa "):
            kind = stripped.split(b" ", 1)[0].decode("ascii", "replace")
            raise WrongKeyType(
                f"OpenSSH key type {kind} cannot be a seal recipient: use ssh-rsa (3072+ bits), "
                "ssh-ed25519 (custodians, via age) or an age X25519 recipient (age-keygen)"
            )
        try:
            return _as_rsa(serialization.load_ssh_public_key(stripped))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise MalformedKey(f"OpenSSH public key does not parse ({exc})") from None
    if stripped.startswith(b"-----BEGIN"):
        try:
            if b"CERTIFICATE" in stripped.split(b"\n", 1)[0]:
                key: object = x509.load_pem_x509_certificate(stripped).public_key()
            else:
                key = serialization.load_pem_public_key(stripped)
        except (ValueError, TypeError) as exc:
            raise MalformedKey(f"PEM public key does not parse ({exc})") from None
        return _typed(key)
    # DER: SPKI, PKCS#1 RSAPublicKey, or a certificate.
    try:
        return _typed(serialization.load_der_public_key(raw))
    except (ValueError, TypeError):
        pass
    try:
        return _typed(x509.load_der_x509_certificate(raw).public_key())
    except (ValueError, TypeError):
        pass
    raise MalformedKey(
        "not a public key in PEM, DER, JWK, OpenSSH or age encoding (file damaged or of "
        "another kind)"
    )


def _typed(key: object) -> rsa.RSAPublicKey | x25519.X25519PublicKey:
    if isinstance(key, (rsa.RSAPublicKey, x25519.X25519PublicKey)):
        return key
    kind = type(key).__name__.lstrip("_")
    for prefix, readable in (
        ("EC", "EC (elliptic curve)"),
        ("Ed25519", "Ed25519 (signing-only)"),
        ("Ed448", "Ed448 (signing-only)"),
        ("DSA", "DSA"),
        ("X448", "X448"),
    ):
        if kind.startswith(prefix):
            kind = readable
            break
    raise WrongKeyType(f"{kind} keys cannot be seal recipients: use RSA (3072+ bits) or X25519")


def _b64url_int(value: object, what: str) -> int:
    if not isinstance(value, str) or not value:
        raise MalformedKey(f"JWK member {what!r} is missing or not a string")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise MalformedKey(f"JWK member {what!r} is not base64url") from None
    return int.from_bytes(raw, "big")  # public data (modulus / exponent)


def _parse_jwk(text: bytes) -> rsa.RSAPublicKey | x25519.X25519PublicKey:
    try:
        jwk = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedKey(f"JWK is not valid JSON ({exc.__class__.__name__})") from None
    if isinstance(jwk, dict) and "keys" in jwk:
        keys = jwk["keys"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise MalformedKey("a JWK set must hold exactly one key to be used as a recipient")
        jwk = keys[0]
    if not isinstance(jwk, dict):
        raise MalformedKey("JWK must be a JSON object")
    if jwk.get("kty") == "oct" or "k" in jwk:
        raise SymmetricKeySupplied(_SYMMETRIC_MESSAGE)
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi")):
        raise PrivateKeySupplied(
            "this JWK holds PRIVATE key members. Only public keys may be brought into the "
            "ceremony; the file was not copied anywhere."
        )
    kty = jwk.get("kty")
    if kty in ("RSA", "RSA-HSM"):
        n = _b64url_int(jwk.get("n"), "n")
        e = _b64url_int(jwk.get("e"), "e")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise MalformedKey(f"JWK RSA numbers are invalid ({exc})") from None
    if kty == "OKP" and jwk.get("crv") == "X25519":
        x = jwk.get("x")
        if not isinstance(x, str):
            raise MalformedKey("JWK member 'x' is missing")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            return x25519.X25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise MalformedKey("JWK X25519 'x' is not a 32-byte base64url value") from None
    raise WrongKeyType(
        f"JWK key type {kty!r}{' ' + str(jwk.get('crv')) if jwk.get('crv') else ''} cannot be a "
        "seal recipient: use RSA (3072+ bits) or OKP/X25519"
    )


def read_key_file(path: Path) -> rsa.RSAPublicKey | x25519.X25519PublicKey | str:
    """Read and parse a public key file brought in on media.

    The file is opened without following a link (``O_NOFOLLOW``), must be a plain file and
    no larger than :data:`MAX_KEY_FILE` (checked with ``fstat`` before a byte is read; the
    read is bounded too). The bytes are read into a bytearray that is overwritten before
    returning (also when the file turns out to hold a private key).
    """
    try:
        folder = _safeio.Dir.open_root(path.parent)
    except (_safeio.SafeIOError, OSError) as exc:
        raise MalformedKey(f"cannot read {path.name}: {_reason(exc)}") from None
    buf = bytearray()
    try:
        with folder, folder.open_file(path.name, limit=MAX_KEY_FILE) as fd:
            buf = bytearray(os.fstat(fd).st_size)
            n = os.readv(fd, [buf])
            if os.read(fd, 1):
                raise _safeio.TooLarge(f"{path.name} grew while it was read: refused")
        del buf[n:]
        return parse_public_key(buf)
    except (_safeio.SafeIOError, OSError) as exc:
        raise MalformedKey(f"cannot read {path.name}: {_reason(exc)}") from None
    finally:
        _wipe(buf)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _safeio.SafeIOError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def read_pkcs11_public_key(
    module: str, token_label: str, key_label: str, pin: str | None = None
) -> rsa.RSAPublicKey:
    """Read the public part of an RSA key from a PKCS#11 token.

    Args:
        module: the PKCS#11 module's NAME (``opensc``, ``ykcs11``, ``softhsm2``; see
            :mod:`core.carriers.modules`). A path is refused: a recipients file comes in
            on a medium, and a library named by it would run in this process.
        token_label: token label.
        key_label: ``CKA_LABEL`` of the key pair.
        pin: user PIN if the token hides public objects until login (most do not).

    Raises:
        RecipientError: module refused, token or key not found (with the reason).
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    from core.carriers import modules as _modules
    from core.carriers import pkcs11 as _cards
    from core.carriers.errors import CardModuleError

    try:
        path = _modules.resolve([module]).get(module)
    except _modules.ModuleRefused:
        path = None
    if path is None:
        raise RecipientError(
            f"PKCS#11 module {module!r} refused: name an installed module "
            f"({_modules.describe_names()}), never a path"
        )
    try:
        lib = _cards.load_module(path)
    except CardModuleError as exc:
        raise RecipientError(str(exc)) from None
    try:
        token = lib.get_token(token_label=token_label)
    except (pkcs11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
        raise RecipientError(
            f"PKCS#11 token {token_label!r} not found via {module} ({type(exc).__name__}): is the "
            "token inserted and the module right?"
        ) from None
    try:
        with token.open(user_pin=pin) as session:
            key = session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, label=key_label
            )
            n = int.from_bytes(key[Attribute.MODULUS], "big")
            e = int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big")
    except pkcs11.exceptions.NoSuchKey:
        raise RecipientError(
            f"no RSA public key labelled {key_label!r} on token {token_label!r}"
        ) from None
    except pkcs11.exceptions.MultipleObjectsReturned:
        raise RecipientError(
            f"several RSA public keys labelled {key_label!r} on token {token_label!r}"
        ) from None
    except pkcs11.exceptions.PKCS11Error as exc:
        raise RecipientError(
            f"reading {key_label!r} from token {token_label!r} failed ({type(exc).__name__})"
        ) from None
    return rsa.RSAPublicNumbers(e, n).public_key()


def load_recipients_file(path: Path | str) -> list[Recipient]:
    """Load a recipients file (TOML) and every key it names.

    Format::

        [[recipient]]
        name = "aws-eu-central-1"
        kind = "aws-kms"                  # see RecipientKind
        key_id = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-..."
        key_version = "1"                 # optional
        algorithm = "RSAES_OAEP_SHA_256"  # optional, checked against the kind
        public_key = "aws-eu-central-1.pem"   # relative to this file
        # or, for kind = "pkcs11-hsm" (module: opensc | ykcs11 | softhsm2, never a path):
        # pkcs11 = { module = "opensc", token_label = "...", key_label = "..." }
        # or, for kind = "custodian-age":
        # age_recipient = "age1..."

    Raises:
        RecipientError: the first problem found, naming the recipient.
    """
    path = Path(path)
    try:
        # the same cap and checks as every key file: it comes on a medium
        with _safeio.Dir.open_root(path.parent) as folder:
            text = folder.read(path.name, limit=MAX_KEY_FILE).decode("utf-8")
        doc = tomllib.loads(text)
    except _safeio.SafeIOError as exc:
        raise RecipientError(f"recipients file refused: {exc.message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientError(f"cannot read recipients file {path.name}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipientError(f"recipients file {path.name} is not valid TOML: {exc}") from None
    entries = doc.get("recipient")
    if not isinstance(entries, list) or not entries:
        raise RecipientError(f"{path.name} has no [[recipient]] entries")
    out: list[Recipient] = []
    names: set[str] = set()
    for i, entry in enumerate(entries, 1):
        label = str(entry.get("name", f"#{i}"))
        try:
            kind = RecipientKind(str(entry.get("kind", "")))
        except ValueError:
            raise RecipientError(
                f"recipient {label}: unknown kind {entry.get('kind')!r}; expected one of "
                + ", ".join(k.value for k in RecipientKind)
            ) from None
        try:
            key: rsa.RSAPublicKey | x25519.X25519PublicKey | str
            if "pkcs11" in entry:
                p = entry["pkcs11"]
                key = read_pkcs11_public_key(
                    str(p["module"]), str(p["token_label"]), str(p["key_label"])
                )
            elif "age_recipient" in entry:
                key = str(entry["age_recipient"])
            elif "public_key" in entry:
                key = read_key_file(path.parent / str(entry["public_key"]))
            else:
                raise RecipientError("needs public_key, age_recipient or pkcs11")
            r = recipient_from_key(
                key,
                name=str(entry.get("name", "")),
                kind=kind,
                key_id=str(entry.get("key_id", "")),
                key_version=str(entry.get("key_version", "")),
                algorithm=str(entry.get("algorithm", "")),
            )
        except RecipientError as exc:
            raise type(exc)(f"recipient {label}: {exc}") from None
        if "fingerprint" in entry and str(entry["fingerprint"]).lower() != r.fingerprint_hex:
            raise FingerprintMismatch(
                f"recipient {label}: the fingerprint written in the file does not match its key"
            )
        if r.name in names:
            raise RecipientError(f"recipient name {r.name!r} appears twice")
        names.add(r.name)
        out.append(r)
    return out


def _normalise_fp(text: str) -> tuple[str, str]:
    """Return (method, normalised) for a fingerprint typed as hex or as words."""
    t = text.strip().lower()
    hexchars = re.sub(r"[\s:]", "", t)
    if re.fullmatch(r"[0-9a-f]{64}", hexchars):
        return "hex", hexchars
    return "words", " ".join(t.split())


def confirm(
    recipient: Recipient, witness: str, out_of_band: str, *, now: datetime | None = None
) -> Recipient:
    """Record a witness's confirmation of a recipient's fingerprint.

    Args:
        recipient: the recipient shown on screen.
        witness: the witness's name (as in the ceremony script).
        out_of_band: the fingerprint from the independent copy, as hex (any spacing or
            colons) or as the words.
        now: timestamp (tests).

    Returns:
        A copy of the recipient carrying the :class:`Confirmation`.

    Raises:
        FingerprintMismatch: the copies differ: do not seal to this key.
    """
    _check_text("witness", witness)
    method, norm = _normalise_fp(out_of_band)
    expected = (
        recipient.fingerprint_hex if method == "hex" else " ".join(recipient.fingerprint_words)
    )
    if norm != expected:
        raise FingerprintMismatch(
            f"{recipient.name}: the out-of-band fingerprint does NOT match the key brought in. "
            "Do not seal to it; get the public key again from its owner."
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dataclasses.replace(
        recipient, confirmation=Confirmation(witness, method, stamp, norm)
    )


def confirmation_matches(fingerprint: bytes, confirmed: str) -> bool:
    """True if ``confirmed`` (what a witness confirmed: 64 hex digits with any spacing or
    colons, or the 26 words) is the SHA-256 ``fingerprint`` of the key at hand."""
    method, norm = _normalise_fp(confirmed)
    if method == "hex":
        return norm == fingerprint.hex()
    return norm == " ".join(to_words(fingerprint))


def require_confirmed(recipient: Recipient) -> Recipient:
    """Return the recipient if a witness confirmed it, else raise UnconfirmedRecipient."""
    if recipient.confirmation is None:
        raise UnconfirmedRecipient(
            f"{recipient.name}: no witness has confirmed this recipient's fingerprint; "
            "sealing to it is refused until the fingerprint is checked out of band"
        )
    return recipient
