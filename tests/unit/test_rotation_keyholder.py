"""The keyholder's rotation: two keys, only when entered explicitly, never confused.

Through the real keyholder process and client. The old key is always a key rebuilt from
typed shares (tests/support/rotation.py). Each hostile request a UI could send (a second
key outside a rotation, the old key overwritten, split again, sealed to a custodian or for
BYOK, a statement signed through the generic SIGN, a lie about the old set) is tried and
must be refused with nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from core import signatures
from core.crypto.fingerprint import verify_signature
from core.keyholder import ops_core, ops_rotation, ops_seal
from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import AmbiguousKey, MalformedRequest, NoMasterKey, Refused
from core.seal import age as agemod
from core.seal import envelope as E
from core.seal import recipients as R
from tests.support import rotation as rs


@pytest.fixture
def kh() -> Iterator[KeyholderClient]:
    client = rs.start()
    yield client
    client.close()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


def _recipient(key: rsa.RSAPrivateKey, kind: str, name: str) -> R.Recipient:
    r = R.recipient_from_key(key.public_key(), name=name, kind=kind, key_id=name)
    return R.confirm(r, "Wendy Witness", r.fingerprint_hex)


def _age_custodian() -> R.Recipient:
    pub = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    r = R.recipient_from_key(agemod.encode_recipient(pub), name="alice", kind="custodian-age", key_id="a")
    return R.confirm(r, "Wendy Witness", r.fingerprint_hex)


def _utc(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


COMMON = {"cluster_id": "cluster-eu-1", "region_id": "eu10", "ceremony_id": "rotate-test"}


def test_no_second_key_without_an_explicit_rotation(kh: KeyholderClient) -> None:
    first = kh.generate_master()["fingerprint"]
    with pytest.raises(Refused, match="no rotation is in progress"):
        kh.generate_master(key="new")
    with pytest.raises(Refused, match="already holds a MasterKey"):
        kh.generate_master()
    with pytest.raises(Refused, match="no rotation is in progress"):
        kh.fingerprint(key="old")
    with pytest.raises(Refused, match="no rotation is in progress"):
        sh.client_genesis_split(kh, rs.OLD_POLICY, key="new", generate=True)
    # a freshly generated key has no share set to rotate out
    with pytest.raises(Refused, match="rebuilt from its share set"):
        ops_rotation.client_rotation_begin(kh, old_set_id=1, old_policy=rs.OLD_POLICY)
    st = kh.status()
    assert st["master_held"] and not st["new_master_held"] and not st["rotation"]
    assert "rotation_keys" not in st
    assert kh.fingerprint()["fingerprint"] == first


def test_rotation_begin_checks_the_old_key_and_its_set(kh: KeyholderClient) -> None:
    with pytest.raises(NoMasterKey, match="rebuild the old key"):
        ops_rotation.client_rotation_begin(kh, old_set_id=1, old_policy=rs.OLD_POLICY)
    split, words = rs.split_and_read(kh, rs.OLD_POLICY, generate=True)
    kh.call(sh.GENESIS_FINISH)
    kh.wipe()
    # rebuilt without the manifest's fingerprint: NOT VERIFIED, no rotation
    rs.recover(kh, split, [words[(1, 2)], words[(1, 3)]], with_fingerprint=False)
    with pytest.raises(Refused, match="NOT VERIFIED"):
        ops_rotation.client_rotation_begin(kh, old_set_id=split["identifier"], old_policy=split["policy"])
    kh.kcv_confirm("Wendy Witness", split["kcv"])
    # the UI lies about the set the key came from, or about its policy
    with pytest.raises(Refused, match=f"rebuilt from set {split['identifier']}"):
        ops_rotation.client_rotation_begin(
            kh, old_set_id=(split["identifier"] + 1) % 32768, old_policy=split["policy"]
        )
    with pytest.raises(Refused, match="not this set's manifest"):
        ops_rotation.client_rotation_begin(
            kh, old_set_id=split["identifier"], old_policy={"group_threshold": 1, "groups": [[3, 3]]}
        )
    with pytest.raises(Refused, match="not this set's manifest"):
        ops_rotation.client_rotation_begin(
            kh,
            old_set_id=split["identifier"],
            old_policy={"group_threshold": 1, "groups": [[2, 3], [2, 3]]},
        )
    assert kh.status()["rotation"] is False  # nothing changed by the refusals
    begin = ops_rotation.client_rotation_begin(kh, old_set_id=split["identifier"], old_policy=split["policy"])
    assert begin["rotation"] is True
    assert begin["old"]["fingerprint"] == split["fingerprint"] and begin["old"]["key"] == "old"
    assert begin["old"]["set_id"] == split["identifier"]
    assert begin["rotation_keys"]["new"] is None
    with pytest.raises(Refused, match="already in progress"):
        ops_rotation.client_rotation_begin(kh, old_set_id=split["identifier"], old_policy=split["policy"])
    # no recovery while the rotation holds the old key (nothing can replace it)
    with pytest.raises(Refused, match="rotation is in progress"):
        sh.client_recovery_begin(kh, commitments=split["commitments"])


def test_every_key_use_names_its_key_and_answers_with_both(kh: KeyholderClient) -> None:
    r = rs.begin_rotation(kh, split_new=False)
    for call in (
        lambda: kh.fingerprint(),
        lambda: kh.sign("journal-final-hash", b"x"),
        lambda: kh.kcv_confirm("Wendy", r.old_split["kcv"]),
        lambda: kh.wipe(keep_signing_key=True),
        lambda: kh.generate_master(),
        lambda: sh.client_genesis_split(kh, rs.NEW_POLICY, generate=True),
    ):
        with pytest.raises(AmbiguousKey, match="say which one"):
            call()
    with pytest.raises(Refused, match="never generated or replaced"):
        kh.generate_master(key="old")
    with pytest.raises(NoMasterKey, match="not been generated yet"):
        kh.fingerprint(key="new")
    with pytest.raises(MalformedRequest, match="'old' or 'new'"):
        kh.fingerprint(key="older")
    new = kh.generate_master(key="new")
    assert new["key"] == "new" and new["fingerprint"] != r.old_fp
    with pytest.raises(Refused, match="already held"):
        kh.generate_master(key="new")
    # the old key is untouched by all of the above
    old = kh.fingerprint(key="old")
    assert old["fingerprint"] == r.old_fp and old["key"] == "old" and old["origin"] == "recovered"
    assert kh.fingerprint(key="new")["fingerprint"] == new["fingerprint"]
    # each key signs with its own key, and the reply says which
    for key, fp in (("old", r.old_fp), ("new", new["fingerprint"])):
        reply = kh.sign_reply("genesis-manifest", b"manifest", key=key)
        assert reply["key"] == key and reply["fingerprint"] == fp and reply["kcv"].replace(" ", "") == fp[:16]
        assert verify_signature(
            bytes.fromhex(fp), signatures.signed_bytes("genesis-manifest", b"manifest"), reply["signature"]
        )
        # every reply of a rotation carries both keys, each with its own fingerprint and KCV
        both = reply["rotation_keys"]
        assert both["old"]["fingerprint"] == r.old_fp and both["new"]["fingerprint"] == new["fingerprint"]
        assert both["old"]["kcv_words"] != both["new"]["kcv_words"]
        assert both["old"]["origin"] == "recovered" and both["new"]["origin"] == "generated"
        assert both["old"]["set_id"] == r.old_split["identifier"]
    st = kh.status()
    assert st["rotation"] and st["master_held"] and st["new_master_held"]
    assert set(st["rotation_keys"]) == {"old", "new"}
    # the witness reads the new KCV aloud: confirmed against the new key, not the old
    assert kh.kcv_confirm("Wendy", " ".join(new["kcv_words"]), key="new")["key"] == "new"
    with pytest.raises(Refused, match="does not match the new key"):
        kh.kcv_confirm("Wendy", r.old_split["kcv"], key="new")


def test_the_new_key_is_split_and_its_shares_rebuild_it(kh: KeyholderClient) -> None:
    r = rs.begin_rotation(kh, split_new=False)
    with pytest.raises(Refused, match="not split again"):
        sh.client_genesis_split(kh, rs.NEW_POLICY, key="old")
    with pytest.raises(NoMasterKey, match="not been generated"):
        sh.client_genesis_split(kh, rs.NEW_POLICY, key="new")  # without generate
    split = sh.client_genesis_split(kh, rs.NEW_POLICY, key="new", generate=True)
    assert split["key"] == "new" and split["generated"] is True
    assert split["identifier"] != r.old_split["identifier"]
    assert split["fingerprint"] != r.old_fp
    assert split["selftest"]["kcv_checked"] is True
    assert split["rotation_keys"]["new"]["set_id"] == split["identifier"]
    screen = bytearray()
    words = {(1, 1): rs.read_share(kh, 1, 1, screen)}
    assert b"NEW MasterKey" in screen, "the custodian must see that this is the new key's share"
    for g, m in ((1, 2), (2, 1), (2, 3)):
        words[(g, m)] = rs.read_share(kh, g, m)
    # a fresh keyholder rebuilds the NEW key from 2 shares of 2 groups of the new set
    with rs.start() as other:
        rec = rs.recover(other, split, [words[(1, 1)], words[(1, 2)], words[(2, 1)], words[(2, 3)]])
        assert rec["verified"] is True and rec["fingerprint"] == split["fingerprint"]


def test_sealing_in_a_rotation(kh: KeyholderClient, rsa_key: rsa.RSAPrivateKey) -> None:
    r = rs.begin_rotation(kh, split_new=False)
    kms = _recipient(rsa_key, "aws-kms", "kms")
    custodian = _recipient(rsa_key, "custodian-rsa", "bob")
    with pytest.raises(AmbiguousKey):
        ops_seal.seal_envelope(kh, kms, kind="masterkey", **COMMON)
    # before the new key exists the old key cannot name its successor
    with pytest.raises(NoMasterKey):
        ops_seal.seal_envelope(kh, kms, kind="masterkey", key="old", transition_expires_utc=_utc(14), **COMMON)
    split = sh.client_genesis_split(kh, rs.NEW_POLICY, key="new", generate=True)
    new_fp = split["fingerprint"]
    # the new key: sealed like any key, to anyone, and its shares as shard envelopes
    for recipient in (kms, custodian):
        rep = ops_seal.seal_envelope(kh, recipient, kind="masterkey", key="new", **COMMON)
        env = E.parse(rep["envelope"])
        assert env.header["masterkey_fingerprint"] == new_fp and env.transition is None
        assert E.verify_signature(env) is True
        assert rep["key"] == "new" and rep["fingerprint"] == new_fp and rep["transitional"] is False
    shard = ops_seal.seal_envelope(kh, custodian, kind="shard", share_index=1, key="new", **COMMON)
    assert E.parse(shard["envelope"]).header["shard"]["set_id"] == split["identifier"]
    with pytest.raises(Refused, match="only the old MasterKey"):
        ops_seal.seal_envelope(kh, kms, kind="masterkey", key="new", transition_expires_utc=_utc(7), **COMMON)
    # the old key: only a transitional envelope to an online recipient
    for bad, match in (
        ({"recipient": kms, "kind": "masterkey"}, "give its expiry"),
        ({"recipient": custodian, "kind": "masterkey", "transition_expires_utc": _utc(7)}, "online recipients only"),
        ({"recipient": _age_custodian(), "kind": "masterkey", "transition_expires_utc": _utc(7)}, "online recipients only"),
        ({"recipient": kms, "kind": "shard", "share_index": 1, "transition_expires_utc": _utc(7)}, "shares are not sealed"),
        ({"recipient": kms, "kind": "masterkey", "transition_expires_utc": _utc(-1)}, "not after"),
        ({"recipient": kms, "kind": "masterkey", "transition_expires_utc": _utc(91)}, "more than 90 days"),
        ({"recipient": kms, "kind": "masterkey", "transition_expires_utc": "next week"}, "look like"),
    ):
        with pytest.raises(Refused, match=match):
            ops_seal.seal_envelope(kh, key="old", **bad, **COMMON)  # type: ignore[arg-type]
    expires = _utc(30)
    rep = ops_seal.seal_envelope(kh, kms, kind="masterkey", key="old", transition_expires_utc=expires, **COMMON)
    assert rep["key"] == "old" and rep["fingerprint"] == r.old_fp and rep["transitional"] is True
    env = E.parse(rep["envelope"])
    assert env.header["format_version"] == 2 and json.loads(rep["envelope"])["version"] == 2
    assert env.header["masterkey_fingerprint"] == r.old_fp
    assert env.transition == {"expires_utc": expires, "successor_fingerprint": new_fp}
    assert E.verify_signature(env) is True  # signed by the key it carries: the old one
    # one transition window per rotation
    with pytest.raises(Refused, match=f"ends at {expires}"):
        ops_seal.seal_envelope(kh, kms, kind="masterkey", key="old", transition_expires_utc=_utc(20), **COMMON)
    # BYOK: the new key yes, the old key never
    wk = rsa.generate_private_key(65537, 3072).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fields = {
        "wrapping_key": wk,
        "witness": "Wendy",
        "confirmed_fingerprint": ops_seal.wrapping_key_fingerprint(wk),
        "import_token": b"token",
        "wrapping_algorithm": "RSAES_OAEP_SHA_256",
        "key_id": "arn:aws:kms:eu-central-1:111122223333:key/x",
        "parameters_obtained_utc": _utc(0),
    }
    with pytest.raises(Refused, match="only as a transitional envelope"):
        ops_seal.byok_aws(kh, key="old", **fields)
    out = ops_seal.byok_aws(kh, key="new", **fields)
    assert out["key"] == "new" and out["record"]["target"]["masterkey_fingerprint"] == new_fp


def test_the_statement_is_made_only_by_the_keyholder_from_its_two_keys(kh: KeyholderClient) -> None:
    # the generic SIGN never signs the statement's purposes: a hostile UI cannot make the
    # old key vouch for a key of its choosing
    kh.generate_master()
    for purpose in ("rotation-old", "rotation-new"):
        with pytest.raises(Refused, match="only by rotation_statement"):
            kh.sign(purpose, b'{"new":"attacker"}')
    kh.wipe()
    r = rs.begin_rotation(kh, split_new=False)
    for purpose in ("rotation-old", "rotation-new"):
        with pytest.raises(Refused, match="only by rotation_statement"):
            kh.sign(purpose, b'{"new":"attacker"}', key="old")
    with pytest.raises(NoMasterKey):
        ops_rotation.client_rotation_statement(kh, **COMMON)
    kh.generate_master(key="new")
    with pytest.raises(Refused, match="not been split"):
        ops_rotation.client_rotation_statement(kh, **COMMON)
    split = sh.client_genesis_split(kh, rs.NEW_POLICY, key="new")
    assert split["generated"] is False
    with pytest.raises(MalformedRequest, match="more than 90 days"):
        ops_rotation.client_rotation_statement(kh, transition_expires_utc=_utc(100), **COMMON)
    out = ops_rotation.client_rotation_statement(kh, transition_expires_utc=_utc(30), **COMMON)
    body = out["body"]
    assert body["old"]["fingerprint"] == r.old_fp and body["new"]["fingerprint"] == split["fingerprint"]
    assert body["old"]["set_id"] == r.old_split["identifier"]
    assert body["old"]["policy"] == {"group_threshold": 1, "groups": [[2, 3]]}
    assert body["new"]["set_id"] == split["identifier"]
    assert body["new"]["policy"] == {"group_threshold": 2, "groups": [[2, 3], [2, 3], [2, 3]]}
    assert out["old"]["key"] == "old" and out["new"]["key"] == "new"
    # the statement fixes the window: a transitional envelope must carry the same expiry
    kms = _recipient(rsa.generate_private_key(65537, 3072), "gcp-kms", "gcp")
    with pytest.raises(Refused, match="ends at"):
        ops_seal.seal_envelope(kh, kms, kind="masterkey", key="old", transition_expires_utc=_utc(10), **COMMON)
    ops_seal.seal_envelope(
        kh, kms, kind="masterkey", key="old", transition_expires_utc=body["transition_expires_utc"], **COMMON
    )


def test_statement_must_carry_the_transitional_envelopes_expiry(
    kh: KeyholderClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    rs.begin_rotation(kh)
    expires = _utc(21)
    ops_seal.seal_envelope(
        kh, _recipient(rsa_key, "vault-transit", "vault"), kind="masterkey", key="old",
        transition_expires_utc=expires, **COMMON,
    )  # fmt: skip
    with pytest.raises(Refused, match=f"expire at {expires}"):
        ops_rotation.client_rotation_statement(kh, **COMMON)
    with pytest.raises(Refused, match=f"expire at {expires}"):
        ops_rotation.client_rotation_statement(kh, transition_expires_utc=_utc(22), **COMMON)
    out = ops_rotation.client_rotation_statement(kh, transition_expires_utc=expires, **COMMON)
    assert out["body"]["transition_expires_utc"] == expires


def test_wipe_wipes_both_and_ends_the_rotation(kh: KeyholderClient) -> None:
    r = rs.begin_rotation(kh)
    with pytest.raises(MalformedRequest, match="always wipes every key"):
        kh.wipe(key="old")
    assert kh.status()["new_master_held"] is True  # the refused request wiped nothing
    reply = kh.wipe(keep_signing_key=True, key="old")
    assert reply["signing_key_kept"] is True and reply["key"] == "old" and reply["fingerprint"] == r.old_fp
    st = kh.status()
    assert not st["master_held"] and not st["new_master_held"] and not st["rotation"]
    assert "rotation_keys" not in st
    # the kept signing key is the old key's, and says so
    with pytest.raises(Refused, match="old key's"):
        kh.sign("journal-final-hash", b"h", key="new")
    out = kh.sign_reply("journal-final-hash", b"h")
    assert out["fingerprint"] == r.old_fp and out["key"] == "old"
    kh.wipe()
    # both keys gone: a new rotation needs the old key rebuilt again
    with pytest.raises(NoMasterKey):
        ops_rotation.client_rotation_begin(
            kh, old_set_id=r.old_split["identifier"], old_policy=r.old_split["policy"]
        )
    with pytest.raises(Refused, match="no rotation"):
        kh.fingerprint(key="new")


def test_sign_purposes_include_the_rotation_domains() -> None:
    assert set(signatures.ROTATION_PURPOSES) <= set(ops_core.SIGN_PURPOSES)
    a = signatures.signed_bytes("rotation-old", b"m")
    b = signatures.signed_bytes("rotation-new", b"m")
    assert a != b and a.startswith(b"openkcm-ceremony/v1/sign:rotation-old\x00")
