"""Audit: the card data key's ``bytes`` copies are zeroed in place (docs/threat-model.md).

A share on a card is AES-256-GCM under a one-time 32-byte data key; the sealed share
document (wrapped key, nonce, ciphertext) is public and goes to media. Whoever has the data
key and that document has the share, so the two ``bytes`` copies of the data key that
``cryptography`` and python-pkcs11 force on us (the argument of ``RSAPublicKey.encrypt`` at
genesis, the ``C_Decrypt`` result at recovery) must be zeroed in place after use, like every
other forced copy (``core.crypto.transient``), not merely dropped.

No card is needed: a fake public key records the exact ``bytes`` object it was given, and a
fake session decrypts with a software RSA key and hands back a ``bytes`` object the test
keeps a reference to.
"""

from __future__ import annotations

from typing import Any

import pkcs11.exceptions as p11e
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import ObjectClass

from core.carriers import pkcs11 as cards
from core.carriers.errors import CardDataMissing
from core.secmem import SecretBuffer

_PRIV = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _RecordingPublicKey:
    """Wraps a real RSA public key; keeps the plaintext objects ``encrypt`` received."""

    def __init__(self, real: rsa.RSAPublicKey) -> None:
        self.real = real
        self.seen: list[bytes] = []

    def encrypt(self, plaintext: bytes, pad: Any) -> bytes:
        self.seen.append(plaintext)
        return self.real.encrypt(plaintext, pad)


class _FakePrivateKey:
    """The card's private key: decrypts in software, keeps the ``bytes`` it returned."""

    def __init__(self) -> None:
        self.returned: list[bytes] = []

    def decrypt(self, data: bytes, *, mechanism: Any, mechanism_param: Any) -> bytes:
        out = _PRIV.decrypt(data, cards._oaep("sha256"))
        self.returned.append(out)
        return out


class _FakeSession:
    def __init__(self, priv: _FakePrivateKey) -> None:
        self.priv = priv

    def get_key(self, *, object_class: Any, key_type: Any, id: bytes) -> Any:
        if object_class == ObjectClass.PRIVATE_KEY:
            return self.priv
        raise p11e.NoSuchKey()  # no public key object: the fingerprint check is skipped


def _key() -> cards.CardKey:
    return cards.CardKey("SERIAL1", "0102", "00" * 32, 2048, "sha256")


def _share() -> SecretBuffer:
    buf = SecretBuffer(66)
    buf.fill_random()
    return buf


def test_seal_share_zeroes_the_data_key_bytes_given_to_rsa_encrypt() -> None:
    pk = _RecordingPublicKey(_PRIV.public_key())
    with _share() as share:
        sealed = cards.seal_share(share, _key(), {"group": 1}, pk)  # type: ignore[arg-type]
    assert sealed
    assert len(pk.seen) == 1
    (dk,) = pk.seen
    assert len(dk) == 32
    assert dk == bytes(32), "the data key's bytes copy for RSA-OAEP was left in memory"


def test_unseal_on_card_zeroes_the_decrypted_data_key_bytes() -> None:
    pk = _RecordingPublicKey(_PRIV.public_key())
    with _share() as share:
        with share.view() as sv:
            expected = bytes(sv)  # test-side copy, to check the round trip
        sealed = cards.seal_share(share, _key(), {"group": 1}, pk)  # type: ignore[arg-type]
    doc = cards.parse_sealed(sealed)
    priv = _FakePrivateKey()
    out = cards._unseal_on_card(_FakeSession(priv), "SERIAL1", doc, SecretBuffer)
    try:
        with out.view() as ov:
            assert bytes(ov) == expected
    finally:
        out.close()
    assert len(priv.returned) == 1
    (raw,) = priv.returned
    assert len(raw) == 32
    assert raw == bytes(32), "the card-decrypted data key (bytes) was dropped, not zeroed"


def test_unseal_on_card_zeroes_a_wrong_size_data_key_too() -> None:
    """The refusal path (a data key of the wrong size) zeroes what the card returned."""

    class _Short(_FakePrivateKey):
        def decrypt(self, data: bytes, *, mechanism: Any, mechanism_param: Any) -> bytes:
            out = bytes(bytearray(range(1, 17)))  # a fresh 16-byte object
            self.returned.append(out)
            return out

    pk = _RecordingPublicKey(_PRIV.public_key())
    with _share() as share:
        sealed = cards.seal_share(share, _key(), {"group": 1}, pk)  # type: ignore[arg-type]
    priv = _Short()
    with pytest.raises(CardDataMissing):
        cards._unseal_on_card(
            _FakeSession(priv), "SERIAL1", cards.parse_sealed(sealed), SecretBuffer
        )
    (raw,) = priv.returned
    assert raw == bytes(16)
