"""The openssl CLI opens what we write: OAEP data keys, direct OAEP blobs, RSA-AES key wraps.

Every envelope and BYOK kind is opened here without the production code: data keys and
direct blobs with ``openssl pkeyutl -decrypt`` (OAEP, SHA-256 or SHA-1), RSA-AES wraps with
``pkeyutl`` for the ephemeral key then ``openssl enc -d -id-aes256-wrap-pad``, the AES-GCM
layer with the independent reader (openssl enc has no AEAD modes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import secmem
from core.seal import byok
from core.seal import envelope as E
from core.seal import recipients as R
from tests.support import seal_reader

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[rsa.RSAPrivateKey, Path]]:
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for bits in (3072, 4096):
        k = rsa.generate_private_key(65537, bits)
        p = d / f"rsa{bits}.pem"
        p.write_bytes(
            k.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        out[bits] = (k, p)
    return out


@pytest.fixture()
def target() -> Iterator[secmem.SecretBuffer]:
    buf = secmem.SecretBuffer(32, allow_unlocked=True)
    buf.fill_random()
    yield buf
    buf.close()


def _plain(buf: secmem.SecretBuffer) -> bytes:
    with buf.view() as mv:
        return bytes(mv)


def pkeyutl_decrypt(key_pem: Path, blob: bytes, tmp: Path, md: str) -> bytes:
    inp = tmp / "in.bin"
    inp.write_bytes(blob)
    cmd = [
        "openssl",
        "pkeyutl",
        "-decrypt",
        "-inkey",
        str(key_pem),
        "-in",
        str(inp),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        f"rsa_oaep_md:{md}",
        "-pkeyopt",
        f"rsa_mgf1_md:{md}",
    ]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def openssl_rsa_aes_unwrap(key_pem: Path, bits: int, blob: bytes, tmp: Path, md: str) -> bytes:
    n = bits // 8
    assert len(blob) == n + 40  # 32-byte target: RFC 5649 gives 40 bytes
    kek = pkeyutl_decrypt(key_pem, blob[:n], tmp, md)
    assert len(kek) == 32
    (tmp / "wrapped.bin").write_bytes(blob[n:])
    out = subprocess.run(
        [
            "openssl",
            "enc",
            "-d",
            "-id-aes256-wrap-pad",
            "-K",
            kek.hex(),
            "-iv",
            "A65959A6",
            "-in",
            str(tmp / "wrapped.bin"),
        ],
        capture_output=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("bits", "kind", "alg", "md"),
    [
        (3072, "aws-kms", "RSAES_OAEP_SHA_256", "sha256"),
        (3072, "gcp-kms", "RSA_DECRYPT_OAEP_3072_SHA256", "sha256"),
        (4096, "azure-kv", "RSA-OAEP-256", "sha256"),
        (4096, "vault-transit", "rsa-4096", "sha256"),
        (4096, "custodian-rsa", "", "sha256"),
        (3072, "pkcs11-hsm", "CKM_RSA_PKCS_OAEP_SHA1", "sha1"),
    ],
)
def test_envelope_data_key_opens_with_openssl(
    keys: dict, target: secmem.SecretBuffer, tmp_path: Path, bits: int, kind: str, alg: str, md: str
) -> None:
    key, pem = keys[bits]
    r = R.recipient_from_key(
        R.parse_public_key(key.public_key().public_bytes(PEM, SPKI)),
        name=f"{kind} test",
        kind=kind,
        key_id="key/1",
        key_version="1",
        algorithm=alg,
    )
    r = R.confirm(r, "W", r.fingerprint_hex)
    with target.view() as mv:
        h = E.build_header(
            kind="masterkey",
            cluster_id="c1",
            region_id="eu",
            masterkey_fingerprint="cd" * 32,
            ceremony_id="cer",
            recipient=r,
            payload_length=32,
        )
        # the fingerprint above is made up, so a placeholder signature: this test is about the wrap
        data = E.seal(mv, h, r, signer=lambda _m: bytes(64), allow_unlocked=True)
    doc = json.loads(data)
    dk = pkeyutl_decrypt(pem, base64.b64decode(doc["wrapped_key"]["ciphertext"]), tmp_path, md)
    pt = AESGCM(dk).decrypt(
        base64.b64decode(doc["nonce"]),
        base64.b64decode(doc["ciphertext"]),
        seal_reader.raw_header_bytes(data),
    )
    assert pt == _plain(target)


@pytest.mark.parametrize("alg", list(byok.AWS_ALGORITHMS))
def test_aws_import_material_opens_with_openssl(
    keys: dict, target: secmem.SecretBuffer, tmp_path: Path, alg: str
) -> None:
    key, pem = keys[3072]
    token = b"\x01\x02opaque-import-token\xff" * 10
    obtained = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    with target.view() as mv:
        exp = byok.aws_import(
            mv,
            wrapping_key=key.public_key().public_bytes(DER, SPKI),
            import_token=token,
            wrapping_algorithm=alg,
            key_id="arn:aws:kms:eu-central-1:1:key/abc",
            parameters_obtained_utc=obtained,
            allow_unlocked=True,
        )
    assert exp.files["ImportToken.bin"] == token
    assert exp.valid_until_utc == "2026-11-29T10:00:00Z"
    assert exp.expired(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    assert not exp.expired(datetime(2026, 11, 29, 9, 59, tzinfo=UTC))
    blob = exp.files["EncryptedKeyMaterial.bin"]
    scheme, md = byok.AWS_ALGORITHMS[alg]
    if scheme == "direct":
        assert len(blob) == 384
        assert pkeyutl_decrypt(pem, blob, tmp_path, md) == _plain(target)
    else:
        assert len(blob) == 424
        assert openssl_rsa_aes_unwrap(pem, 3072, blob, tmp_path, md) == _plain(target)
    meta = json.loads(exp.files["aws-import.json"])
    assert meta["valid_until_utc"] == exp.valid_until_utc and meta["method"] == alg
    assert meta["files"] == {
        n: hashlib.sha256(exp.files[n]).hexdigest()
        for n in ("EncryptedKeyMaterial.bin", "ImportToken.bin")
    }


@pytest.mark.parametrize("method", list(byok.GCP_METHODS))
def test_gcp_import_opens_with_openssl(
    keys: dict, target: secmem.SecretBuffer, tmp_path: Path, method: str
) -> None:
    scheme, md, bits = byok.GCP_METHODS[method]
    key, pem = keys[bits]
    created = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with target.view() as mv:
        exp = byok.gcp_import(
            mv,
            wrapping_key=key.public_key().public_bytes(PEM, SPKI),
            import_method=method,
            import_job="projects/p/locations/europe-west3/keyRings/r/importJobs/j",
            key_name="projects/p/locations/europe-west3/keyRings/r/cryptoKeys/k",
            job_created_utc=created,
            allow_unlocked=True,
        )
    assert exp.valid_until_utc == "2026-12-01T09:00:00Z"
    blob = exp.files["wrapped-key.bin"]
    if scheme == "direct":
        assert pkeyutl_decrypt(pem, blob, tmp_path, md) == _plain(target)
    else:
        assert len(blob) == {3072: 424, 4096: 552}[bits]
        assert openssl_rsa_aes_unwrap(pem, bits, blob, tmp_path, md) == _plain(target)
    # a method naming another key size is refused
    other = 4096 if bits == 3072 else 3072
    with target.view() as mv, pytest.raises(byok.ByokError, match=f"RSA-{other}"):
        byok.gcp_import(
            mv,
            wrapping_key=keys[other][0].public_key().public_bytes(PEM, SPKI),
            import_method=method,
            import_job="j",
            key_name="k",
            job_created_utc=created,
        )


def test_azure_byok_parses_and_opens_with_openssl(
    keys: dict, target: secmem.SecretBuffer, tmp_path: Path
) -> None:
    key, pem = keys[4096]
    kid = (
        "https://contoso-mhsm.managedhsm.azure.net/keys/KEKforBYOK/0123456789abcdef0123456789abcdef"
    )
    with target.view() as mv:
        exp = byok.azure_byok(
            mv, kek=key.public_key().public_bytes(PEM, SPKI), kek_kid=kid, allow_unlocked=True
        )
    doc = json.loads(exp.files["masterkey.byok"])
    assert doc["schema_version"] == "1.0.0"
    assert doc["header"] == {"kid": kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    assert set(doc) == {"schema_version", "header", "ciphertext", "generator"}
    ct = doc["ciphertext"]
    assert "+" not in ct and "/" not in ct and "=" not in ct  # base64url (JOSE, unpadded)
    blob = base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4))
    assert openssl_rsa_aes_unwrap(pem, 4096, blob, tmp_path, "sha1") == _plain(target)


@pytest.mark.parametrize("hash_function", ["SHA256", "SHA1"])
def test_vault_transit_import_parses_and_opens(
    keys: dict, target: secmem.SecretBuffer, tmp_path: Path, hash_function: str
) -> None:
    key, pem = keys[4096]
    with target.view() as mv:
        exp = byok.vault_transit_import(
            mv,
            wrapping_key=key.public_key().public_bytes(PEM, SPKI),
            key_name="openkcm-boot",
            hash_function=hash_function,
            allow_unlocked=True,
        )
    b64 = exp.files["vault-transit-import.b64"].strip()
    body = json.loads(exp.files["vault-transit-import.json"])
    assert body["ciphertext"].encode() == b64 and body["hash_function"] == hash_function
    blob = base64.b64decode(b64, validate=True)
    md = "sha256" if hash_function == "SHA256" else "sha1"
    assert openssl_rsa_aes_unwrap(pem, 4096, blob, tmp_path, md) == _plain(target)
    assert seal_reader.unwrap_rsa_aes(blob, key, md) == _plain(target)


def test_wrapping_keys_refused(keys: dict, target: secmem.SecretBuffer) -> None:
    small = rsa.generate_private_key(65537, 2048)
    with target.view() as mv:
        with pytest.raises(byok.ByokError, match="RSA-2048"):
            byok.vault_transit_import(
                mv, wrapping_key=small.public_key().public_bytes(PEM, SPKI), key_name="k"
            )
        with pytest.raises(byok.ByokError, match="PRIVATE"):
            byok.azure_byok(
                mv,
                kek=keys[3072][0].private_bytes(
                    PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
                kek_kid="https://x.vault.azure.net/keys/k/1",
            )
        with pytest.raises(byok.ByokError, match="import token"):
            byok.aws_import(
                mv,
                wrapping_key=keys[3072][0].public_key().public_bytes(DER, SPKI),
                import_token=b"",
                wrapping_algorithm="RSAES_OAEP_SHA_256",
                key_id="k",
                parameters_obtained_utc=datetime.now(UTC),
            )
