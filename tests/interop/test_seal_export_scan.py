"""The sealing half of a ceremony, end to end, then a search of every file written for the key.

A real keyholder generates the MasterKey; recipients are brought in on a "medium" (PEM,
DER, JWK, ssh-rsa, age), confirmed by a witness, sealed to (every kind), BYOK files made
for every provider, a signed seal manifest built, and everything exported to a medium
(a folder; plus a real tiny tmpfs when running as root). The MasterKey is then learned
from one envelope with the independent reader (the test's private key), and every file
under the workspace and the media is searched for every encoding of it: 0 hits.

Shares are not covered here (the shares area seals them through the same operation once
it registers ``seal_share_source``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import media
from core.keyholder import ops_seal
from core.keyholder.client import KeyholderClient
from core.seal import envelope as E
from core.seal import recipients as R
from core.words import to_words
from tests.support import seal_reader

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def encodings(secret: bytes) -> dict[str, bytes]:
    """Every encoding of a secret worth searching for (base64 at all three alignments)."""
    out = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base32": base64.b32encode(secret).rstrip(b"="),
        "decimal": str(int.from_bytes(secret, "big")).encode(),
        "words": " ".join(to_words(secret)).encode(),
    }
    for shift in range(3):
        for name, enc in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            s = enc(b"\0" * shift + secret).rstrip(b"=")
            # drop the characters that mix in the prefix and the (unknown) suffix
            core = s[(shift * 4 + 2) // 3 + 1 : -2]
            out[f"{name}+{shift}"] = core
    return out


def scan(roots: list[Path], secret: bytes) -> list[str]:
    hits = []
    needles = encodings(secret)
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            for name, needle in needles.items():
                if needle in data:
                    hits.append(f"{path}: {name}")
    return hits


def test_encodings_helper_finds_what_it_should(tmp_path: Path) -> None:
    secret = os.urandom(32)
    for i, (_name, needle) in enumerate(encodings(secret).items()):
        (tmp_path / f"f{i}").write_bytes(b"xx" + needle + b"yy")
    assert len(scan([tmp_path], secret)) >= len(encodings(secret))
    (tmp_path / "leak.json").write_text(
        json.dumps({"k": base64.b64encode(b"ab" + secret).decode()})
    )
    assert any("leak.json" in h for h in scan([tmp_path], secret))


@pytest.mark.slow
def test_seal_and_export_leave_no_key_on_disk(tmp_path: Path) -> None:
    ws = tmp_path / "workspace"
    inbox = ws / "incoming"
    inbox.mkdir(parents=True)
    keys_dir = tmp_path / "test-private-keys"  # the clouds' side; not part of the ceremony
    keys_dir.mkdir()
    k_aws = rsa.generate_private_key(65537, 3072)
    k_gcp = rsa.generate_private_key(65537, 3072)
    k_az = rsa.generate_private_key(65537, 4096)
    k_cust = rsa.generate_private_key(65537, 4096)
    (inbox / "aws.pem").write_bytes(k_aws.public_key().public_bytes(PEM, SPKI))
    (inbox / "gcp.der").write_bytes(k_gcp.public_key().public_bytes(DER, SPKI))
    n = k_az.public_key().public_numbers()

    def b64u(i: int) -> str:
        raw = i.to_bytes((i.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    (inbox / "azure.jwk").write_text(json.dumps({"kty": "RSA-HSM", "n": b64u(n.n), "e": b64u(n.e)}))
    (inbox / "bob.pub").write_bytes(
        k_cust.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    recipients_toml = """
[[recipient]]
name = "aws-eu-central-1"
kind = "aws-kms"
key_id = "arn:aws:kms:eu-central-1:111122223333:key/a"
key_version = "1"
public_key = "aws.pem"

[[recipient]]
name = "gcp-europe-west3"
kind = "gcp-kms"
key_id = "projects/p/locations/europe-west3/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
algorithm = "RSA_DECRYPT_OAEP_3072_SHA256"
public_key = "gcp.der"

[[recipient]]
name = "azure-weu"
kind = "azure-kv"
key_id = "https://kv.vault.azure.net/keys/openkcm-boot/1"
public_key = "azure.jwk"

[[recipient]]
name = "custodian bob"
kind = "custodian-rsa"
key_id = "bob@example.org"
public_key = "bob.pub"
"""
    age_ident = None
    if shutil.which("age-keygen"):
        age_ident = keys_dir / "alice.key"
        subprocess.run(["age-keygen", "-o", str(age_ident)], check=True, capture_output=True)
        recip = subprocess.run(
            ["age-keygen", "-y", str(age_ident)], check=True, capture_output=True, text=True
        ).stdout.strip()
        recipients_toml += f'\n[[recipient]]\nname = "custodian alice"\nkind = "custodian-age"\nkey_id = "alice"\nage_recipient = "{recip}"\n'
    (inbox / "recipients.toml").write_text(recipients_toml)

    recipients = [
        R.confirm(r, "Wendy Witness", " ".join(r.fingerprint_words))
        for r in R.load_recipients_file(inbox / "recipients.toml")
    ]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    files: dict[str, bytes] = {}
    with KeyholderClient.start(allow_unlocked=True) as kh:
        kh.generate_master()
        for r in recipients:
            rep = ops_seal.seal_envelope(
                kh,
                r,
                kind="masterkey",
                cluster_id="cluster-eu-1",
                region_id="eu-central-1",
                ceremony_id="genesis-1",
            )
            files[f"masterkey-{r.name.replace(' ', '-')}.envelope.json"] = rep["envelope"]
        aws = ops_seal.byok_aws(
            kh,
            wrapping_key=k_aws.public_key().public_bytes(DER, SPKI),
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(
                k_aws.public_key().public_bytes(DER, SPKI)
            ),
            import_token=os.urandom(64),
            wrapping_algorithm="RSAES_OAEP_SHA_256",
            key_id="arn:k",
            parameters_obtained_utc=now,
        )
        gcp = ops_seal.byok_gcp(
            kh,
            wrapping_key=k_gcp.public_key().public_bytes(PEM, SPKI),
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(
                k_gcp.public_key().public_bytes(PEM, SPKI)
            ),
            import_method="RSA_OAEP_3072_SHA256_AES_256",
            import_job="j",
            key_name="k",
            job_created_utc=now,
        )
        az = ops_seal.byok_azure(
            kh,
            wrapping_key=k_az.public_key().public_bytes(PEM, SPKI),
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(
                k_az.public_key().public_bytes(PEM, SPKI)
            ),
            kek_kid="https://h.managedhsm.azure.net/keys/kek/1",
        )
        va = ops_seal.byok_vault(
            kh,
            wrapping_key=k_az.public_key().public_bytes(PEM, SPKI),
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(
                k_az.public_key().public_bytes(PEM, SPKI)
            ),
            key_name="openkcm-boot",
        )
        for exp in (aws, gcp, az, va):
            files.update(exp["files"])
        envs = {k: v for k, v in files.items() if k.endswith(".envelope.json")}
        files["seal-manifest.json"] = E.seal_manifest(envs, ceremony_id="genesis-1", signer=kh.sign)

    media_roots = [tmp_path / "usb"]
    res = media.write_export(media.folder_medium(tmp_path / "usb"), files, ceremony_id="genesis-1")
    assert res.safe_to_remove
    (ws / "journal-export.json").write_text(json.dumps({k: v for k, v in res.files.items()}))
    mounted = None
    if os.geteuid() == 0:
        mnt = tmp_path / "tiny"
        mnt.mkdir()
        if (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]
            ).returncode
            == 0
        ):
            mounted = mnt
    try:
        if mounted is not None:
            m = media.Medium(mounted, "TINY", 0, 0, "tmpfs", False, removable=True)
            media.write_export(m, files, ceremony_id="genesis-1")
            media_roots.append(mounted)

        master = seal_reader.open_envelope(
            files["masterkey-aws-eu-central-1.envelope.json"], rsa_key=k_aws
        )
        assert len(master) == 32
        # every envelope kind opens with the independent reader to the same key
        assert (
            seal_reader.open_envelope(
                files["masterkey-gcp-europe-west3.envelope.json"], rsa_key=k_gcp
            )
            == master
        )
        assert (
            seal_reader.open_envelope(files["masterkey-azure-weu.envelope.json"], rsa_key=k_az)
            == master
        )
        assert (
            seal_reader.open_envelope(
                files["masterkey-custodian-bob.envelope.json"], rsa_key=k_cust
            )
            == master
        )
        if age_ident is not None:
            assert (
                seal_reader.open_envelope(
                    files["masterkey-custodian-alice.envelope.json"], age_identity=age_ident
                )
                == master
            )
        hits = scan([ws, *media_roots], master)
        assert hits == []
        assert len(list((tmp_path / "usb").rglob("*"))) >= len(files)
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], capture_output=True)
