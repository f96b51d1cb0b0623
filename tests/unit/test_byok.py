"""BYOK wraps (independent unwrap with cryptography) and the keyholder's seal operations.

The keyholder tests start a real keyholder process and check that the parent receives only
ciphertext, that unconfirmed recipients and wrapping keys are refused, and that expired
import windows are refused.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import secmem
from core.keyholder import ops_seal
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError, MalformedRequest, Refused
from core.seal import byok
from core.seal import envelope as E
from core.seal import recipients as R
from core.words import to_words
from tests.support import seal_reader

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def k3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@pytest.fixture(scope="module")
def k4096() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 4096)


@pytest.fixture()
def target() -> Iterator[secmem.SecretBuffer]:
    buf = secmem.SecretBuffer(32, allow_unlocked=True)
    buf.fill_random()
    yield buf
    buf.close()


def _plain(buf: secmem.SecretBuffer) -> bytes:
    with buf.view() as mv:
        return bytes(mv)


@pytest.mark.parametrize("h", ["sha256", "sha1"])
def test_rsa_aes_key_wrap_layout(
    k3072: rsa.RSAPrivateKey, k4096: rsa.RSAPrivateKey, target: secmem.SecretBuffer, h: str
) -> None:
    for key, size in ((k3072, 424), (k4096, 552)):
        with target.view() as mv:
            blob = byok.rsa_aes_key_wrap(mv, key.public_key(), h, allow_unlocked=True)
        assert len(blob) == size
        assert seal_reader.unwrap_rsa_aes(blob, key, h) == _plain(target)


def test_each_wrap_uses_a_fresh_aes_key(
    k3072: rsa.RSAPrivateKey, target: secmem.SecretBuffer
) -> None:
    with target.view() as mv:
        a = byok.rsa_aes_key_wrap(mv, k3072.public_key(), "sha256", allow_unlocked=True)
        b = byok.rsa_aes_key_wrap(mv, k3072.public_key(), "sha256", allow_unlocked=True)
    assert a[384:] != b[384:]


def test_unknown_methods_refused(k3072: rsa.RSAPrivateKey, target: secmem.SecretBuffer) -> None:
    der = k3072.public_key().public_bytes(DER, SPKI)
    with target.view() as mv:
        with pytest.raises(byok.ByokError, match="not supported"):
            byok.aws_import(
                mv,
                wrapping_key=der,
                import_token=b"t",
                wrapping_algorithm="RSA_2048",
                key_id="k",
                parameters_obtained_utc=datetime.now(UTC),
            )
        with pytest.raises(byok.ByokError, match="not supported"):
            byok.gcp_import(
                mv,
                wrapping_key=der,
                import_method="RSA_OAEP_2048_SHA1_AES_256",
                import_job="j",
                key_name="k",
                job_created_utc=datetime.now(UTC),
            )
        with pytest.raises(byok.ByokError, match="kid"):
            byok.azure_byok(mv, kek=der, kek_kid="KEKforBYOK")
        with pytest.raises(byok.ByokError, match="hash_function"):
            byok.vault_transit_import(mv, wrapping_key=der, key_name="k", hash_function="MD5")
        with pytest.raises(byok.ByokError, match="key name"):
            byok.vault_transit_import(mv, wrapping_key=der, key_name="../x")


def test_validity_windows(k3072: rsa.RSAPrivateKey, target: secmem.SecretBuffer) -> None:
    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    der = k3072.public_key().public_bytes(DER, SPKI)
    with target.view() as mv:
        aws = byok.aws_import(
            mv,
            wrapping_key=der,
            import_token=b"t",
            wrapping_algorithm="RSAES_OAEP_SHA_256",
            key_id="k",
            parameters_obtained_utc=t0,
            allow_unlocked=True,
        )
        gcp = byok.gcp_import(
            mv,
            wrapping_key=der,
            import_method="RSA_OAEP_3072_SHA256_AES_256",
            import_job="j",
            key_name="k",
            job_created_utc=t0,
            allow_unlocked=True,
        )
    assert (
        aws.valid_until_utc == "2026-01-02T00:00:00Z"
        and aws.record["valid_until_utc"] == aws.valid_until_utc
    )
    assert gcp.valid_until_utc == "2026-01-04T00:00:00Z"
    assert gcp.expired(t0 + timedelta(days=3)) and not gcp.expired(t0 + timedelta(days=2, hours=23))
    assert json.loads(gcp.files["gcp-import.json"])["valid_until_utc"] == gcp.valid_until_utc
    # the same window is available before the export (no secret needed)
    assert byok.validity_until("aws", t0) == aws.valid_until_utc
    assert byok.validity_until("gcp", t0) == gcp.valid_until_utc
    assert byok.validity_until("azure", t0) == ""


# ---------------------------------------------------------------- keyholder operations


@pytest.fixture(scope="module")
def kh() -> Iterator[KeyholderClient]:
    client = KeyholderClient.start(allow_unlocked=True)
    client.generate_master()
    yield client
    client.close()


def test_keyholder_seals_masterkey_for_a_confirmed_recipient(
    kh: KeyholderClient, k3072: rsa.RSAPrivateKey
) -> None:
    r = R.recipient_from_key(
        k3072.public_key(), name="aws", kind="aws-kms", key_id="arn:k", key_version="4"
    )
    with pytest.raises(Refused, match="no witness"):
        ops_seal.seal_envelope(
            kh, r, kind="masterkey", cluster_id="c", region_id="r", ceremony_id="x"
        )
    r = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
    rep = ops_seal.seal_envelope(
        kh, r, kind="masterkey", cluster_id="c", region_id="r", ceremony_id="x"
    )
    assert set(rep) == {"envelope", "sha256", "header", "kcv"}
    fp = kh.fingerprint()
    env = E.parse(rep["envelope"])
    assert env.header["masterkey_fingerprint"] == fp["fingerprint"] and E.verify_signature(env)
    master = seal_reader.open_envelope(rep["envelope"], rsa_key=k3072)
    # the secret never appears in any reply field
    assert master.hex() not in json.dumps({k: v for k, v in rep.items() if k != "envelope"})
    assert master not in rep["envelope"]
    # shard sealing without a shares area is refused with a reason
    with pytest.raises(Refused, match="no shares"):
        ops_seal.seal_envelope(
            kh, r, kind="shard", cluster_id="c", region_id="r", ceremony_id="x", share_index=1
        )


def test_keyholder_refuses_tampered_recipient(
    kh: KeyholderClient, k3072: rsa.RSAPrivateKey
) -> None:
    r = R.recipient_from_key(k3072.public_key(), name="aws", kind="aws-kms", key_id="k")
    d = R.confirm(r, "W", r.fingerprint_hex).to_public_dict()
    d["fingerprint"] = "00" * 32
    with pytest.raises(MalformedRequest, match="does not match"):
        kh.call(
            ops_seal.SEAL_ENVELOPE,
            recipient=d,
            kind="masterkey",
            cluster_id="c",
            region_id="r",
            ceremony_id="x",
        )
    weak = rsa.generate_private_key(65537, 2048).public_key().public_bytes(DER, SPKI)
    d["spki_der_b64"] = base64.b64encode(weak).decode()
    d.pop("fingerprint")
    with pytest.raises(MalformedRequest, match="too small"):
        kh.call(
            ops_seal.SEAL_ENVELOPE,
            recipient=d,
            kind="masterkey",
            cluster_id="c",
            region_id="r",
            ceremony_id="x",
        )


def test_keyholder_byok_all_providers(
    kh: KeyholderClient, k3072: rsa.RSAPrivateKey, k4096: rsa.RSAPrivateKey
) -> None:
    r = R.confirm(
        R.recipient_from_key(k3072.public_key(), name="aws", kind="aws-kms", key_id="k"),
        "W",
        R.recipient_from_key(
            k3072.public_key(), name="aws", kind="aws-kms", key_id="k"
        ).fingerprint_hex,
    )
    master = seal_reader.open_envelope(
        ops_seal.seal_envelope(
            kh, r, kind="masterkey", cluster_id="c", region_id="r", ceremony_id="x"
        )["envelope"],
        rsa_key=k3072,
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    der3 = k3072.public_key().public_bytes(DER, SPKI)
    pem4 = k4096.public_key().public_bytes(PEM, SPKI)
    aws = ops_seal.byok_aws(
        kh,
        wrapping_key=der3,
        witness="W",
        confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(der3),  # the provider's copy
        import_token=b"token",
        wrapping_algorithm="RSAES_OAEP_SHA_256",
        key_id="arn:k",
        parameters_obtained_utc=now,
    )
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    assert k3072.decrypt(aws["files"]["EncryptedKeyMaterial.bin"], oaep) == master
    assert aws["files"]["ImportToken.bin"] == b"token" and aws["valid_until_utc"]
    gcp = ops_seal.byok_gcp(
        kh,
        wrapping_key=pem4,
        witness="W",
        confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(pem4),
        import_method="RSA_OAEP_4096_SHA256_AES_256",
        import_job="j",
        key_name="k",
        job_created_utc=now,
    )
    assert seal_reader.unwrap_rsa_aes(gcp["files"]["wrapped-key.bin"], k4096, "sha256") == master
    az = ops_seal.byok_azure(
        kh,
        wrapping_key=pem4,
        witness="W",
        confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(pem4),
        kek_kid="https://h.managedhsm.azure.net/keys/k/1",
    )
    ct = json.loads(az["files"]["masterkey.byok"])["ciphertext"]
    assert (
        seal_reader.unwrap_rsa_aes(
            base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4)), k4096, "sha1"
        )
        == master
    )
    va = ops_seal.byok_vault(
        kh,
        wrapping_key=pem4,
        witness="W",
        # the witness confirmed the 26 words
        confirmed_fingerprint=" ".join(to_words(bytes.fromhex(ops_seal.wrapping_key_fingerprint(pem4)))),
        key_name="openkcm-boot",
    )
    assert (
        seal_reader.unwrap_rsa_aes(
            base64.b64decode(va["files"]["vault-transit-import.b64"]), k4096, "sha256"
        )
        == master
    )


def test_keyholder_byok_refusals(kh: KeyholderClient, k3072: rsa.RSAPrivateKey) -> None:
    der = k3072.public_key().public_bytes(DER, SPKI)
    fields = dict(
        import_token=b"t",
        wrapping_algorithm="RSAES_OAEP_SHA_256",
        key_id="k",
        parameters_obtained_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    with pytest.raises(Refused, match="no witness"):
        kh.call(ops_seal.BYOK_AWS, wrapping_key=der, wrapping_key_confirmation={}, **fields)
    with pytest.raises(Refused, match="does not match"):
        kh.call(
            ops_seal.BYOK_AWS,
            wrapping_key=der,
            wrapping_key_confirmation={"witness": "W", "fingerprint": "00" * 32},
            **fields,
        )
    old = dict(fields, parameters_obtained_utc="2020-01-01T00:00:00Z")
    with pytest.raises(Refused, match="window ended"):
        ops_seal.byok_aws(
            kh,
            wrapping_key=der,
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(der),
            **old,
        )
    priv = k3072.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises((Refused, MalformedRequest, KeyholderError)) as exc:
        kh.call(
            ops_seal.BYOK_AWS,
            wrapping_key=priv,
            wrapping_key_confirmation={"witness": "W", "fingerprint": "x"},
            **fields,
        )
    assert "PRIVATE" in str(exc.value) and "BEGIN" not in str(exc.value)


def test_shard_envelope_through_the_share_source_hook(k3072: rsa.RSAPrivateKey) -> None:
    """In-process: the shares area's resolver supplies the share; the reply is ciphertext."""
    from core.keyholder.ops import OPS, KeyholderState, Request
    from core.keyholder.protocol import decode_fields, encode_fields

    state = KeyholderState(allow_unlocked=True)
    mk = state.alloc(32)
    mk.fill_random()
    state.set_master(mk, "generated")
    share = state.alloc(40)
    share.fill_random()

    def resolver(st: KeyholderState, index: int) -> tuple[secmem.SecretBuffer, str, dict[str, int]]:
        assert index == 3
        return share, "slip39-indices-u16be", {
            "index": 3, "set_id": 1187, "group_index": 1, "group_threshold": 1,
            "member_index": 3, "threshold": 2,
        }  # fmt: skip

    state.ext["seal_share_source"] = resolver
    r = R.recipient_from_key(k3072.public_key(), name="gcp", kind="gcp-kms", key_id="k")
    r = R.confirm(r, "W", r.fingerprint_hex)
    fields = {
        "recipient": r.to_public_dict(),
        "kind": "shard",
        "cluster_id": "c",
        "region_id": "r",
        "ceremony_id": "x",
        "share_index": 3,
    }
    payload = b"".join(bytes(p) for p in encode_fields(fields, allow_secret=False))
    reply = OPS[ops_seal.SEAL_ENVELOPE].handler(
        state, Request(ops_seal.SEAL_ENVELOPE, decode_fields(memoryview(payload)))
    )
    env = E.parse(reply["envelope"])
    assert env.header["kind"] == "shard" and env.header["shard"]["set_id"] == 1187
    assert env.header["payload_length"] == 40 and E.verify_signature(env)
    assert seal_reader.open_envelope(reply["envelope"], rsa_key=k3072) == _plain(share)
    state.wipe()


# --- what each provider accepts for a 256-bit symmetric key (docs/formats.md section 3) ---


@pytest.mark.parametrize("alg", ["RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"])
def test_aws_rsa_aes_refused_for_symmetric_key(
    k3072: rsa.RSAPrivateKey, target: secmem.SecretBuffer, alg: str
) -> None:
    """AWS documents RSA_AES_KEY_WRAP_SHA_* for RSA and ECC key material only (the old code
    offered and wrote it for the 256-bit MasterKey)."""
    with target.view() as mv, pytest.raises(byok.ByokError, match="RSA and ECC key material"):
        byok.aws_import(
            mv,
            wrapping_key=k3072.public_key().public_bytes(DER, SPKI),
            import_token=b"t",
            wrapping_algorithm=alg,
            key_id="k",
            parameters_obtained_utc=datetime.now(UTC),
        )
    assert set(byok.AWS_ALGORITHMS) == {"RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"}


def test_vault_wrapping_key_must_be_rsa_4096(
    k3072: rsa.RSAPrivateKey, k4096: rsa.RSAPrivateKey, target: secmem.SecretBuffer
) -> None:
    with target.view() as mv:
        with pytest.raises(byok.ByokError, match="RSA-4096"):
            byok.vault_transit_import(
                mv, wrapping_key=k3072.public_key().public_bytes(PEM, SPKI), key_name="k"
            )
        with pytest.raises(byok.ByokError, match="aes256-gcm96"):
            byok.vault_transit_import(
                mv,
                wrapping_key=k4096.public_key().public_bytes(PEM, SPKI),
                key_name="k",
                key_type="rsa-2048",
            )


def test_every_provider_writes_a_metadata_file(
    k3072: rsa.RSAPrivateKey, k4096: rsa.RSAPrivateKey, target: secmem.SecretBuffer
) -> None:
    import hashlib

    fp = "ab" * 32
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    p3 = k3072.public_key().public_bytes(PEM, SPKI)
    p4 = k4096.public_key().public_bytes(PEM, SPKI)
    with target.view() as mv:
        exports = [
            byok.aws_import(mv, wrapping_key=p3, import_token=b"t", key_id="k",
                            wrapping_algorithm="RSAES_OAEP_SHA_256", parameters_obtained_utc=t0,
                            masterkey_fingerprint=fp),
            byok.gcp_import(mv, wrapping_key=p3, import_method="RSA_OAEP_3072_SHA256_AES_256",
                            import_job="j", key_name="k", job_created_utc=t0,
                            masterkey_fingerprint=fp, allow_unlocked=True),
            byok.azure_byok(mv, kek=p4, kek_kid="https://h.managedhsm.azure.net/keys/K/1",
                            masterkey_fingerprint=fp, allow_unlocked=True),
            byok.vault_transit_import(mv, wrapping_key=p4, key_name="openkcm-boot",
                                      masterkey_fingerprint=fp, allow_unlocked=True),
        ]  # fmt: skip
    for exp in exports:
        meta_name = f"{exp.provider}-import.json"
        meta = json.loads(exp.files[meta_name])
        assert meta == exp.record
        assert meta["format"] == "openkcm-byok-import" and meta["version"] == 1
        assert meta["target"] == {
            "kind": "masterkey", "length": 32, "masterkey_fingerprint": fp, "kcv": fp[:16]
        }  # fmt: skip
        others = {n: d for n, d in exp.files.items() if n != meta_name}
        assert meta["files"] == {n: hashlib.sha256(d).hexdigest() for n, d in others.items()}
