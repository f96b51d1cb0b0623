"""Recipients: their kinds and wrapping algorithms, :class:`Recipient` (a checked public key
with its fingerprint) and :func:`recipient_from_key`."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import safeio as _safeio
from core.seal import age as _age
from core.seal.recipients.errors import (
    FingerprintMismatch,
    MalformedKey,
    RecipientError,
    WeakKey,
    WrongKeyType,
)
from core.words import to_words

#: Minimum RSA modulus for every recipient kind (KMS targets, HSM, custodians).
MIN_RSA_BITS = 3072

#: The one cap on key files and key bytes (core.safeio.MAX_KEY_FILE).
MAX_KEY_FILE = _safeio.MAX_KEY_FILE

#: Characters allowed in public header strings (ids, names): printable ASCII except the
#: double quote, backslash, <, > and &, so canonical JSON is identical in Python and Go
#: (json.Marshal escapes <, > and &; quotes and backslashes would need escaping).
SAFE_TEXT = re.compile(r"^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,256}$")

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
