"""Issue 12, PoC 6: the witness's confirmation must be the witness's.

The BYOK client helper computed the "confirmed" fingerprint from the very wrapping key it
sent (``ops_seal.py:321`` before the fix), so the keyholder's check could never fail: any
key the UI passed was "confirmed". Envelope confirmations carried no fingerprint at all.
Now the confirmation carries the fingerprint the witness confirmed (hex or words) and the
keyholder checks it against the key it is asked to use.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.keyholder import ops_seal
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError, Refused
from core.seal import recipients as R
from core.words import to_words

DER, SPKI = Encoding.DER, PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    gen = rsa.generate_private_key
    return gen(public_exponent=65537, key_size=3072), gen(public_exponent=65537, key_size=3072)


@pytest.fixture
def kh() -> Iterator[KeyholderClient]:
    c = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    c.generate_master()
    yield c
    c.close()


def _aws_fields() -> dict[str, object]:
    return {
        "import_token": b"token",
        "wrapping_algorithm": "RSAES_OAEP_SHA_256",
        "key_id": "arn:aws:kms:eu-central-1:111122223333:key/k",
        "parameters_obtained_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_byok_helper_sends_what_the_witness_confirmed(
    kh: KeyholderClient, keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    genuine, evil = (k.public_key().public_bytes(DER, SPKI) for k in keys)
    confirmed = ops_seal.wrapping_key_fingerprint(genuine)  # what the witness compared
    # the UI (or a stick) swaps the wrapping key after the witness confirmed the genuine one
    with pytest.raises(Refused, match="W confirmed does not match this wrapping key"):
        ops_seal.byok_aws(
            kh, wrapping_key=evil, witness="W", confirmed_fingerprint=confirmed, **_aws_fields()
        )
    # the helper cannot be called without the witness's value any more
    param = inspect.signature(ops_seal.byok_aws).parameters["confirmed_fingerprint"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty
    # the genuine key, confirmed as hex or as the 26 words, is accepted
    out = ops_seal.byok_aws(
        kh, wrapping_key=genuine, witness="W", confirmed_fingerprint=confirmed, **_aws_fields()
    )
    assert out["files"]["EncryptedKeyMaterial.bin"]
    words = " ".join(to_words(bytes.fromhex(confirmed)))
    out = ops_seal.byok_aws(
        kh, wrapping_key=genuine, witness="W", confirmed_fingerprint=words, **_aws_fields()
    )
    assert out["files"]["ImportToken.bin"] == b"token"


def test_byok_request_with_a_fabricated_confirmation_is_refused(
    kh: KeyholderClient, keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    """Directly at the keyholder: a confirmation whose fingerprint is another key's."""
    genuine, evil = (k.public_key().public_bytes(DER, SPKI) for k in keys)
    conf = {"witness": "W", "fingerprint": ops_seal.wrapping_key_fingerprint(genuine)}
    for opcode, extra in (
        (ops_seal.BYOK_AWS, _aws_fields()),
        (ops_seal.BYOK_VAULT, {"key_name": "openkcm-boot"}),
        (ops_seal.BYOK_AZURE, {"kek_kid": "https://h.managedhsm.azure.net/keys/k/1"}),
    ):
        with pytest.raises(Refused, match="does not match this wrapping key"):
            kh.call(opcode, wrapping_key=evil, wrapping_key_confirmation=conf, **extra)
    with pytest.raises(Refused, match="no witness"):
        kh.call(
            ops_seal.BYOK_AWS,
            wrapping_key=evil,
            wrapping_key_confirmation={"witness": "W", "fingerprint": 12},
            **_aws_fields(),
        )


def _recipient(key: rsa.RSAPrivateKey) -> R.Recipient:
    return R.recipient_from_key(key.public_key(), name="kms", kind="aws-kms", key_id="alias/k")


def _seal_dict(kh: KeyholderClient, d: dict[str, object]) -> dict[str, object]:
    return kh.call(
        ops_seal.SEAL_ENVELOPE,
        recipient=d,
        kind="masterkey",
        cluster_id="c1",
        region_id="r1",
        ceremony_id="unseal-1",
    )


def test_envelope_confirmation_must_name_this_keys_fingerprint(
    kh: KeyholderClient, keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    genuine, evil = _recipient(keys[0]), _recipient(keys[1])
    stamp = "2026-01-31T12:00:00Z"
    # a confirmation that does not say which fingerprint was confirmed (the old form)
    d = evil.to_public_dict()
    d["confirmation"] = {"witness": "W", "method": "words", "confirmed_utc": stamp}
    sealed: object = None
    try:
        sealed = _seal_dict(kh, d)
    except KeyholderError as exc:
        refusal = exc
    assert sealed is None, "sealed to a key whose confirmation names no fingerprint"
    assert "does not say which fingerprint" in refusal.message
    # the witness confirmed the genuine key; the evil key is sent with that confirmation
    d["confirmation"] = {**d["confirmation"], "fingerprint": genuine.fingerprint_hex}  # type: ignore[dict-item]
    with pytest.raises(Refused, match="not the one the witness checked"):
        _seal_dict(kh, d)
    # the words of the genuine key's fingerprint, likewise
    d["confirmation"]["fingerprint"] = " ".join(genuine.fingerprint_words)  # type: ignore[index]
    with pytest.raises(Refused, match="not the one the witness checked"):
        _seal_dict(kh, d)
    # confirm() records what the witness typed, and that is accepted for the right key
    ok = R.confirm(genuine, "W", " ".join(genuine.fingerprint_words))
    assert ok.confirmation is not None
    assert ok.confirmation.fingerprint == " ".join(genuine.fingerprint_words)
    out = ops_seal.seal_envelope(
        kh, ok, kind="masterkey", cluster_id="c1", region_id="r1", ceremony_id="unseal-1"
    )
    assert out["header"]["recipient"]["fingerprint"] == genuine.fingerprint_hex
