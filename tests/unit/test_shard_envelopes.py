"""Sovereign shards (ADR-201 mode A): each genesis share sealed to its own recipient, and
opened by the independent reader into a mnemonic the SLIP-39 reference recovers."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.keyholder import ops_seal, ops_shares
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError
from core.seal import recipients as rc
from core.words import wordlist
from tests.support import seal_reader


@pytest.fixture
def kh():
    c = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    yield c
    c.close()


def _recipient(name: str) -> tuple[rsa.RSAPrivateKey, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    r = rc.recipient_from_key(rc.parse_public_key(pem), kind="custodian-rsa", name=name, key_id=name)
    r = rc.confirm(r, witness="Witness W", out_of_band=r.fingerprint_hex)
    return key, r.to_public_dict()


def test_each_share_sealed_to_its_custodian_recovers_with_the_reference(kh: KeyholderClient) -> None:
    split = ops_shares.client_genesis_split(kh, {"group_threshold": 1, "groups": [[2, 3]]}, generate=True)
    fingerprint = split["fingerprint"]
    mnemonics = []
    for index in (1, 3):
        key, recipient = _recipient(f"custodian-{index}")
        reply = kh.call(
            ops_seal.SEAL_ENVELOPE, recipient=recipient, kind="shard", cluster_id="c1", region_id="eu1",
            ceremony_id="test", share_index=index, created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        header = reply["header"]
        assert header["payload_encoding"] == "slip39-indices-u16be"
        assert header["shard"]["index"] == index and header["shard"]["threshold"] == 2
        plain = seal_reader.open_envelope(reply["envelope"], rsa_key=key)
        idx = [int.from_bytes(plain[i : i + 2], "big") for i in range(0, len(plain), 2)]
        mnemonics.append(" ".join(wordlist()[i] for i in idx))
    secret = shamir_mnemonic.combine_mnemonics(mnemonics)
    from core.crypto.fingerprint import derive_fingerprint

    assert derive_fingerprint(memoryview(bytearray(secret))).hex == fingerprint
    # one carrier per share: a sealed share cannot also be shown on a terminal
    with pytest.raises(KeyholderError, match="already handed"):
        kh.call(ops_shares.SHOW_SHARE, group=1, member=1, tty="/dev/null", custodian="x")


def test_a_failed_seal_does_not_count_the_share_as_delivered(kh: KeyholderClient) -> None:
    ops_shares.client_genesis_split(kh, {"group_threshold": 1, "groups": [[2, 3]]}, generate=True)
    _key, recipient = _recipient("custodian-2")
    recipient.pop("confirmation", None)  # no witness confirmation: sealing is refused
    with pytest.raises(KeyholderError, match=r"(?i)confirm"):
        kh.call(
            ops_seal.SEAL_ENVELOPE, recipient=recipient, kind="shard", cluster_id="c1", region_id="eu1",
            ceremony_id="test", share_index=2,
        )
    status = kh.call(ops_shares.SHARES_STATUS)
    assert [s["handed_to"] for s in status["shares"]] == ["", "", ""]
    _key, recipient = _recipient("custodian-2")
    kh.call(
        ops_seal.SEAL_ENVELOPE, recipient=recipient, kind="shard", cluster_id="c1", region_id="eu1",
        ceremony_id="test", share_index=2,
    )
    status = kh.call(ops_shares.SHARES_STATUS)
    assert [s["handed_to"] for s in status["shares"]] == ["", "sealed envelope", ""]
