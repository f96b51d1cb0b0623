"""The MasterKey fingerprint (KCV) and the MasterKey-derived signing key.

ADR-202 asks for a one-way ``MasterKey_Hash`` to check a rebuilt key. We derive an
Ed25519 signing key from the MasterKey with HKDF-SHA256 (derive_into a locked buffer) and
use its *public key* as the fingerprint:

* it is one-way (HKDF, then a scalar multiplication);
* any later ceremony that rebuilds the same MasterKey derives the same public key, so it can
  prove possession by signing (manifests, envelopes, the journal's final hash) without
  revealing anything;
* the KCV read aloud is the first 8 bytes of the public key as 7 words (plus hex).

The functions that take the MasterKey run inside the keyholder only; checking a signature
against a fingerprint (:func:`verify_signature`) is public and runs anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import secmem
from core.words import to_words

__all__ = [
    "FINGERPRINT_INFO",
    "Fingerprint",
    "derive_fingerprint",
    "derive_signing_seed",
    "key_from_seed",
    "sign_with_master",
]

FINGERPRINT_INFO = b"openkcm-ceremony/v1/masterkey-signing-key"
FINGERPRINT_SALT = b"openkcm-ceremony/v1"
KCV_BYTES = 8


@dataclass(frozen=True)
class Fingerprint:
    """Public fingerprint of a MasterKey: an Ed25519 public key (32 bytes)."""

    public_key: bytes

    @property
    def hex(self) -> str:
        """The full fingerprint in lower-case hex (64 characters)."""
        return self.public_key.hex()

    @property
    def kcv(self) -> str:
        """Short key check value: the first 8 bytes in hex, grouped by 4."""
        h = self.public_key[:KCV_BYTES].hex()
        return " ".join(h[i : i + 4] for i in range(0, len(h), 4))

    @property
    def words(self) -> list[str]:
        """The KCV as 7 words to read aloud."""
        return to_words(self.public_key[:KCV_BYTES])


def derive_signing_seed(master: memoryview, out: memoryview) -> None:
    """Derive the 32-byte Ed25519 seed of the MasterKey signing key into ``out`` (locked)."""
    HKDF(
        algorithm=hashes.SHA256(), length=32, salt=FINGERPRINT_SALT, info=FINGERPRINT_INFO
    ).derive_into(master, out)


def key_from_seed(seed: memoryview) -> Ed25519PrivateKey:
    """The Ed25519 key object of a seed held in locked memory."""
    # OpenSSL copies the seed into its own key object and frees it with
    # OPENSSL_secure_clear_free; the caller's locked copy is wiped when it closes.
    return Ed25519PrivateKey.from_private_bytes(seed)


def _signing_key(master: memoryview) -> Ed25519PrivateKey:
    with secmem.SecretBuffer(32) as seed:
        with seed.view() as out:
            derive_signing_seed(master, out)
            return key_from_seed(out)


def derive_fingerprint(master: memoryview) -> Fingerprint:
    """Derive the public fingerprint of a MasterKey held in locked memory."""
    key = _signing_key(master)
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    del key
    return Fingerprint(public_key=pub)


def sign_with_master(master: memoryview, message: bytes) -> bytes:
    """Sign a public message with the MasterKey-derived Ed25519 key (64-byte signature)."""
    key = _signing_key(master)
    sig = key.sign(message)
    del key
    return sig


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Check a signature made by :func:`sign_with_master` (public data only)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True
