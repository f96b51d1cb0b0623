"""SoftHSM2: the public key is read from the token, and the token unwraps what we sealed.

SoftHSM2 2.6.1 lacks OAEP-SHA-256 and CKM_RSA_AES_KEY_WRAP (FINDINGS 4), so the HSM
recipient uses OAEP-SHA-1 here, and the RSA-AES blobs (GCP ``*_SHA1_AES_256``, Azure
``.byok``) are opened in two token steps: C_UnwrapKey with CKM_RSA_PKCS_OAEP (SHA-1) for
the ephemeral AES key, then C_UnwrapKey with CKM_AES_KEY_WRAP_PAD for the target.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import secmem
from core.carriers import pkcs11 as cards
from core.seal import byok
from core.seal import envelope as E
from core.seal import recipients as R
from tests.support import seal_reader

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
pytestmark = pytest.mark.skipif(
    not (Path(MODULE).exists() and shutil.which("softhsm2-util")), reason="SoftHSM2 not installed"
)
PIN = "1234"
LABEL = "seal-test"
KEY_LABEL = "kms-seal-key"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pkcs11 import KeyType, Mechanism

    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--so-pin",
            "12345678",
            "--pin",
            PIN,
        ],
        check=True,
        capture_output=True,
    )
    # the one loader of this process (core.carriers.pkcs11): loading the same library a
    # second way would initialise it twice
    lib = cards.load_module(MODULE)
    lib.reinitialize()
    tok = lib.get_token(token_label=LABEL)
    with tok.open(rw=True, user_pin=PIN) as s:
        s.generate_keypair(
            KeyType.RSA,
            3072,
            label=KEY_LABEL,
            store=True,
            mechanism=Mechanism.RSA_PKCS_KEY_PAIR_GEN,
        )
    yield tok
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture()
def target() -> Iterator[secmem.SecretBuffer]:
    buf = secmem.SecretBuffer(32, allow_unlocked=True)
    buf.fill_random()
    yield buf
    buf.close()


def _plain(buf: secmem.SecretBuffer) -> bytes:
    with buf.view() as mv:
        return bytes(mv)


def _oaep_sha1() -> tuple[Any, Any, None]:
    from pkcs11 import Mechanism
    from pkcs11.mechanisms import MGF

    return (Mechanism.SHA_1, MGF.SHA1, None)


def _token_unwrap_rsa_aes(token: Any, blob: bytes) -> bytes:
    """Open a CKM_RSA_AES_KEY_WRAP (SHA-1) blob on the token, in two unwrap steps."""
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    with token.open(rw=True, user_pin=PIN) as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
        n = 3072 // 8
        aes = priv.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.AES,
            blob[:n],
            mechanism=Mechanism.RSA_PKCS_OAEP,
            mechanism_param=_oaep_sha1(),
            template={Attribute.UNWRAP: True, Attribute.EXTRACTABLE: False},
        )
        target = aes.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.GENERIC_SECRET,
            blob[n:],
            mechanism=Mechanism.AES_KEY_WRAP_PAD,
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
        return bytes(target[Attribute.VALUE])


def test_public_key_read_from_token_and_envelope_unwrapped_on_token(
    token: Any, target: secmem.SecretBuffer
) -> None:
    from pkcs11 import Mechanism, ObjectClass

    pub = R.read_pkcs11_public_key("softhsm2", LABEL, KEY_LABEL)
    assert pub.key_size == 3072
    r = R.recipient_from_key(
        pub,
        name="hsm-a",
        kind="pkcs11-hsm",
        key_id=f"{LABEL}/{KEY_LABEL}",
        algorithm="CKM_RSA_PKCS_OAEP_SHA1",
    )
    r = R.confirm(r, "Wendy Witness", " ".join(r.fingerprint_words))
    with target.view() as mv:
        h = E.build_header(
            kind="masterkey",
            cluster_id="c1",
            region_id="eu",
            masterkey_fingerprint="ef" * 32,
            ceremony_id="cer",
            recipient=r,
            payload_length=32,
        )
        # the fingerprint above is made up, so a placeholder signature: this test is about the wrap
        data = E.seal(mv, h, r, signer=lambda _m: bytes(64), allow_unlocked=True)
    doc = json.loads(data)
    with token.open(user_pin=PIN) as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
        dk = priv.decrypt(
            base64.b64decode(doc["wrapped_key"]["ciphertext"]),
            mechanism=Mechanism.RSA_PKCS_OAEP,
            mechanism_param=_oaep_sha1(),
        )
    pt = AESGCM(dk).decrypt(
        base64.b64decode(doc["nonce"]),
        base64.b64decode(doc["ciphertext"]),
        seal_reader.raw_header_bytes(data),
    )
    assert pt == _plain(target)


def test_recipients_file_names_a_token_key(token: Any, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        f'[[recipient]]\nname = "hsm-a"\nkind = "pkcs11-hsm"\nkey_id = "{LABEL}/{KEY_LABEL}"\n'
        f'algorithm = "CKM_RSA_PKCS_OAEP_SHA1"\n'
        f'pkcs11 = {{ module = "softhsm2", token_label = "{LABEL}", key_label = "{KEY_LABEL}" }}\n'
    )
    [r] = R.load_recipients_file(tmp_path / "r.toml")
    assert r.alg == "RSA-OAEP" and r.rsa_bits == 3072
    (tmp_path / "r.toml").write_text(
        f'[[recipient]]\nname = "hsm-b"\nkind = "pkcs11-hsm"\nkey_id = "x"\n'
        f'pkcs11 = {{ module = "softhsm2", token_label = "{LABEL}", key_label = "nope" }}\n'
    )
    with pytest.raises(R.RecipientError, match="no RSA public key labelled 'nope'"):
        R.load_recipients_file(tmp_path / "r.toml")
    # issue 12: a module path in a recipients file (it comes in on a medium) is refused
    (tmp_path / "r.toml").write_text(
        f'[[recipient]]\nname = "hsm-c"\nkind = "pkcs11-hsm"\nkey_id = "x"\n'
        f'pkcs11 = {{ module = "{MODULE}", token_label = "{LABEL}", key_label = "{KEY_LABEL}" }}\n'
    )
    with pytest.raises(R.RecipientError, match="never a path"):
        R.load_recipients_file(tmp_path / "r.toml")


def _token_spki(token: Any) -> bytes:
    pub = R.read_pkcs11_public_key("softhsm2", LABEL, KEY_LABEL)
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_gcp_sha1_aes_unwrapped_on_token(token: Any, target: secmem.SecretBuffer) -> None:
    with target.view() as mv:
        exp = byok.gcp_import(
            mv,
            wrapping_key=_token_spki(token),
            import_method="RSA_OAEP_3072_SHA1_AES_256",
            import_job="j",
            key_name="k",
            job_created_utc=datetime.now(UTC),
            allow_unlocked=True,
        )
    assert _token_unwrap_rsa_aes(token, exp.files["wrapped-key.bin"]) == _plain(target)


def test_azure_byok_unwrapped_on_token(token: Any, target: secmem.SecretBuffer) -> None:
    with target.view() as mv:
        exp = byok.azure_byok(
            mv,
            kek=_token_spki(token),
            kek_kid="https://h.managedhsm.azure.net/keys/kek/1",
            allow_unlocked=True,
        )
    ct = json.loads(exp.files["masterkey.byok"])["ciphertext"]
    blob = base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4))
    assert _token_unwrap_rsa_aes(token, blob) == _plain(target)


def test_aws_sha1_variants_unwrapped_on_token(token: Any, target: secmem.SecretBuffer) -> None:
    from pkcs11 import Mechanism, ObjectClass

    # AWS direct OAEP-SHA-1, and the SHA-1 CKM_RSA_AES_KEY_WRAP as GCP's 3072 method makes it
    for alg in ("RSAES_OAEP_SHA_1", "RSA_OAEP_3072_SHA1_AES_256"):
        with target.view() as mv:
            if alg == "RSAES_OAEP_SHA_1":
                exp = byok.aws_import(
                    mv,
                    wrapping_key=_token_spki(token),
                    import_token=b"tok",
                    wrapping_algorithm=alg,
                    key_id="k",
                    parameters_obtained_utc=datetime.now(UTC),
                    allow_unlocked=True,
                )
                blob = exp.files["EncryptedKeyMaterial.bin"]
            else:
                exp = byok.gcp_import(
                    mv,
                    wrapping_key=_token_spki(token),
                    import_method=alg,
                    import_job="j",
                    key_name="k",
                    job_created_utc=datetime.now(UTC),
                    allow_unlocked=True,
                )
                blob = exp.files["wrapped-key.bin"]
        if alg == "RSAES_OAEP_SHA_1":
            with token.open(user_pin=PIN) as s:
                priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
                got = priv.decrypt(
                    blob, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=_oaep_sha1()
                )
        else:
            got = _token_unwrap_rsa_aes(token, blob)
        assert got == _plain(target), alg
