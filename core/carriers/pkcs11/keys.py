"""The card's RSA key: generated on the card (or an existing one chosen by its CKA_ID), its
public key and fingerprint, and the OAEP hash the card supports."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pkcs11.exceptions as p11e
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from core.carriers.errors import (
    CardDataMissing,
    CardMechanismUnsupported,
)
from core.carriers.pkcs11.tokens import (
    _MECH,
    _OAEP,
    KEY_LABEL,
    _find,
    _mapped,
    _session,
    load_module,
)


@dataclass(frozen=True)
class CardKey:
    """The card key a share is encrypted to (public facts, recorded in the manifest).

    Attributes:
        serial: card serial.
        key_id: CKA_ID of the key pair, hex.
        fingerprint: SHA-256 of the public key's SubjectPublicKeyInfo (DER), hex.
        bits: modulus size.
        oaep_hash: "sha256" or "sha1" (the best the card decrypts with).
        notes: what fell back and why (public, for the journal).
    """

    serial: str
    key_id: str
    fingerprint: str
    bits: int
    oaep_hash: str
    notes: tuple[str, ...] = field(default=())

    def public(self) -> dict[str, Any]:
        """As a dict of public values."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

def _public_key(session: Any, key_id: bytes) -> rsa.RSAPublicKey:
    pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, id=key_id)
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()

def _fingerprint(pk: rsa.RSAPublicKey) -> str:
    der = pk.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()

def _oaep(name: str) -> padding.OAEP:
    h = _OAEP[name][2]
    return padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)

def _probe_oaep(session: Any, key_id: bytes, pk: rsa.RSAPublicKey) -> tuple[str, list[str]]:
    """Find the strongest OAEP hash the card decrypts with (a random, non-secret probe)."""
    priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, id=key_id)
    notes: list[str] = []
    probe = os.urandom(16)
    for name in ("sha256", "sha1"):
        ct = pk.encrypt(probe, _oaep(name))
        mech, mgf, _h = _OAEP[name]
        try:
            out = priv.decrypt(
                ct, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(mech, mgf, None)
            )
        except _MECH as exc:
            notes.append(
                f"card does not decrypt RSA-OAEP-{name.upper()} ({type(exc).__name__}); "
                "falling back"
            )
            continue
        if out == probe:
            if name != "sha256":
                notes.append(f"using RSA-OAEP-{name.upper()} (MGF1 with the same hash)")
            return name, notes
    raise CardMechanismUnsupported(
        "this card decrypts neither RSA-OAEP-SHA-256 nor RSA-OAEP-SHA-1; it cannot carry a "
        "share. Use another card."
    )

def provision_key(
    module: str,
    serial: str,
    pin: memoryview | None,
    *,
    bits: int = 3072,
    key_id: bytes | None = None,
    generate: bool = True,
) -> CardKey:
    """Generate (or choose) the card key a share will be encrypted to.

    Args:
        module: PKCS#11 module path.
        serial: the card's serial.
        pin: the user PIN (a view of a locked buffer), or None to use the reader's PIN pad.
        bits: RSA modulus size for a new key (2048 or 3072).
        key_id: CKA_ID for the new key (random 8 bytes if None), or of the existing key.
        generate: False to use an existing key pair with ``key_id``.

    Returns:
        The key's public facts, including which OAEP hash the card supports.
    """
    lib = load_module(module)
    token, serial = _find(lib, serial, None)
    kid = key_id or os.urandom(8)
    with _session(token, serial, pin, rw=True) as session:
        if generate:
            with _mapped("generate a key on the card", serial):
                session.generate_keypair(
                    KeyType.RSA,
                    bits,
                    id=kid,
                    label=KEY_LABEL,
                    store=True,
                    public_template={Attribute.ENCRYPT: True, Attribute.WRAP: True},
                    private_template={
                        Attribute.DECRYPT: True,
                        Attribute.UNWRAP: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                    },
                )
        with _mapped("read the card key", serial):
            try:
                pk = _public_key(session, kid)
            except (p11e.NoSuchKey, p11e.MultipleObjectsReturned):
                raise CardDataMissing(
                    f"card {serial} has no single RSA key with id {kid.hex()}"
                ) from None
            oaep, notes = _probe_oaep(session, kid, pk)
    return CardKey(serial, kid.hex(), _fingerprint(pk), pk.key_size, oaep, tuple(notes))
