"""docs/schemas/: every JSON file the tool writes validates against its JSON Schema (2020-12).

The files come from the real writers, not hand-made samples: a genesis ceremony run by the
engine over the real keyholder process (share-set manifest in manifests/ and in the
export, MasterKey envelope), envelopes of every wrap algorithm and kind sealed by the
keyholder, the seal manifest signed through the keyholder, and the four BYOK exports made
by the keyholder's BYOK operations. Each file is also read back under the strict JSON rules
(docs/formats.md section 0), and each schema is shown to refuse a broken file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519
from jsonschema import Draft202012Validator

from core.keyholder import ops_seal, ops_shares
from core.keyholder.client import KeyholderClient
from core.seal import age as agemod
from core.seal import envelope as E
from core.seal import recipients as R
from tests.schemas import SCHEMAS, invalid, valid
from tests.support.custodian import CustodianTerminal
from tests.support.engine import practice_pem
from tests.support.keyholders import run_genesis

ROOT = Path(__file__).resolve().parents[2]
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def test_schemas_are_valid_2020_12() -> None:
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert names == [
        "azure-byok.schema.json",
        "byok-import.schema.json",
        "card-share.schema.json",
        "envelope.schema.json",
        "rotation-statement.schema.json",
        "seal-manifest.schema.json",
        "share-set.schema.json",
        "vault-transit-import.schema.json",
    ]
    for n in names:
        schema = json.loads((SCHEMAS / n).read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


# --- a real genesis: share-set manifest and MasterKey envelope -------------------------------


@pytest.fixture(scope="module")
def genesis_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("schemas") / "ws"
    (ws / "recipients").mkdir(parents=True)
    key = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(key.public_key().public_bytes(PEM, SPKI))
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    terminal = CustodianTerminal()
    try:
        run_genesis(ws, terminal)
    finally:
        terminal.close()
    return ws


def test_genesis_ceremony_files_validate(genesis_workspace: Path) -> None:
    ws = genesis_workspace
    manifests = list((ws / "manifests").glob("set-*.json"))
    exported = list((ws / "exports").rglob("manifest-set-*.json"))
    envelopes = list((ws / "exports").rglob("*.sealed.json"))
    assert len(manifests) == 1 and len(exported) == 1 and envelopes
    for p in manifests + exported:
        valid("share-set", p.read_bytes())
        m = json.loads(p.read_bytes())
        assert isinstance(m["set_id"], int) and m["kcv"] == m["fingerprint"][:16]
        assert all(c["set"] == m["set_id"] for c in m["commitments"])
    for p in envelopes:
        valid("envelope", p.read_bytes())
        env = E.parse(p.read_bytes())
        assert E.verify_signature(env) is True
    # a schema that can fail: the old string set_id, a grouped KCV, an unknown member
    m = json.loads(manifests[0].read_bytes())
    invalid("share-set", {**m, "set_id": str(m["set_id"])})
    invalid("share-set", {**m, "kcv": " ".join(m["kcv"][i : i + 4] for i in range(0, 16, 4))})
    invalid("share-set", {**m, "extra": 1})
    invalid("share-set", {**m, "selftest": {**m["selftest"], "mode": "skipped"}})


# --- envelopes of every kind, the seal manifest, BYOK exports: from the keyholder ------------


def _age_recipient() -> str:
    pub = x25519.X25519PrivateKey.generate().public_key()
    return agemod.encode_recipient(
        pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def _ssh_recipient() -> Any:
    line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return R.parse_public_key(line)


@pytest.fixture(scope="module")
def keyholder() -> Iterator[KeyholderClient]:
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kh:
        ops_shares.client_genesis_split(kh, {"group_threshold": 1, "groups": [[2, 3]]}, generate=True)
        yield kh


@pytest.fixture(scope="module")
def sealed(keyholder: KeyholderClient) -> dict[str, bytes]:
    k = rsa.generate_private_key(65537, 3072).public_key()
    recipients = {
        "aws": R.recipient_from_key(k, name="aws", kind="aws-kms", key_id="arn:k", key_version="3"),
        "hsm": R.recipient_from_key(
            k, name="hsm", kind="pkcs11-hsm", key_id="t/k", algorithm="CKM_RSA_PKCS_OAEP_SHA1"
        ),
        "age": R.recipient_from_key(_age_recipient(), name="alice", kind="custodian-age", key_id="a"),
        "ssh": R.recipient_from_key(_ssh_recipient(), name="bob", kind="custodian-age", key_id="b"),
    }
    common = {"cluster_id": "c1", "region_id": "eu10", "ceremony_id": "schema-test"}
    out: dict[str, bytes] = {}
    for name, r in recipients.items():
        r = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
        out[f"masterkey-{name}.json"] = ops_seal.seal_envelope(
            keyholder, r, kind="masterkey", **common
        )["envelope"]
    for index, name in ((1, "aws"), (2, "age")):
        r = R.confirm(recipients[name], "Wendy Witness", recipients[name].fingerprint_hex)
        out[f"shard-{index}-{name}.json"] = ops_seal.seal_envelope(
            keyholder, r, kind="shard", share_index=index, **common
        )["envelope"]
    return out


def test_every_envelope_kind_validates(sealed: dict[str, bytes]) -> None:
    algs = set()
    for data in sealed.values():
        valid("envelope", data)
        algs.add(json.loads(data)["wrapped_key"]["alg"])
    assert algs == {"RSA-OAEP-256", "RSA-OAEP", "age-X25519", "age-ssh-ed25519"}
    doc = json.loads(sealed["shard-1-aws.json"])
    invalid("envelope", {**doc, "version": 2})
    bad = json.loads(json.dumps(doc))
    bad["header"]["shard"]["member_threshold"] = 2
    invalid("envelope", bad)
    bad = json.loads(json.dumps(doc))
    del bad["signature"]
    invalid("envelope", bad)
    bad = json.loads(json.dumps(doc))
    bad["header"]["payload_encoding"] = "raw"
    invalid("envelope", bad)


def test_seal_manifest_validates(keyholder: KeyholderClient, sealed: dict[str, bytes]) -> None:
    data = E.seal_manifest(sealed, ceremony_id="schema-test", signer=keyholder.sign)
    valid("seal-manifest", data)
    doc = json.loads(data)
    assert len(doc["body"]["envelopes"]) == len(sealed)
    bad = json.loads(data)
    bad["body"]["envelopes"][0]["kind"] = "shard"  # a shard entry without a shard block
    bad["body"]["envelopes"][0]["shard"] = None
    invalid("seal-manifest", bad)
    invalid("seal-manifest", {**doc, "body": {**doc["body"], "version": 2}})


def test_byok_exports_validate(keyholder: KeyholderClient) -> None:
    k3 = rsa.generate_private_key(65537, 3072).public_key().public_bytes(PEM, SPKI)
    k4 = rsa.generate_private_key(65537, 4096).public_key().public_bytes(PEM, SPKI)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    wfp = ops_seal.wrapping_key_fingerprint  # what the witness confirmed, out of band
    exports = {
        "aws": ops_seal.byok_aws(
            keyholder, wrapping_key=k3, witness="W", confirmed_fingerprint=wfp(k3), import_token=b"\x00token",
            wrapping_algorithm="RSAES_OAEP_SHA_256", key_id="arn:aws:kms:eu-central-1:1:key/x",
            parameters_obtained_utc=now,
        ),
        "gcp": ops_seal.byok_gcp(
            keyholder, wrapping_key=k3, witness="W", confirmed_fingerprint=wfp(k3), import_method="RSA_OAEP_3072_SHA256_AES_256",
            import_job="projects/p/locations/l/keyRings/r/importJobs/j",
            key_name="projects/p/locations/l/keyRings/r/cryptoKeys/k", job_created_utc=now,
        ),
        "azure": ops_seal.byok_azure(
            keyholder, wrapping_key=k4, witness="W", confirmed_fingerprint=wfp(k4),
            kek_kid="https://contoso.managedhsm.azure.net/keys/KEK/0123456789abcdef",
        ),
        "vault": ops_seal.byok_vault(
            keyholder, wrapping_key=k4, witness="W", confirmed_fingerprint=wfp(k4), key_name="openkcm-boot"
        ),
    }  # fmt: skip
    fp = keyholder.fingerprint()["fingerprint"]
    for provider, reply in exports.items():
        files = reply["files"]
        meta = files[f"{provider}-import.json"]
        valid("byok-import", meta)
        assert json.loads(meta)["target"]["masterkey_fingerprint"] == fp
        assert json.loads(meta) == reply["record"]
    valid("azure-byok", exports["azure"]["files"]["masterkey.byok"])
    valid("vault-transit-import", exports["vault"]["files"]["vault-transit-import.json"])
    aws = json.loads(exports["aws"]["files"]["aws-import.json"])
    invalid("byok-import", {**aws, "method": "RSA_AES_KEY_WRAP_SHA_256"})
    invalid("byok-import", {**aws, "format": "other"})
    vault = json.loads(exports["vault"]["files"]["vault-import.json"])
    invalid("byok-import", {**vault, "wrapping_key": {**vault["wrapping_key"], "bits": 3072}})


def test_docs_example_envelope_validates() -> None:
    valid("envelope", (ROOT / "docs" / "examples" / "envelope-v1" / "envelope.json").read_bytes())



# --- a MasterKey rotation: statement, transitional envelope, rotated-out manifest -----------


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real 3-of-5 genesis (the engine), then a rotation of its key (the keyholder)."""
    from tests.support import rotation as rs

    ws = tmp_path_factory.mktemp("rotation") / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(kms.public_key().public_bytes(PEM, SPKI))
    terminal = CustodianTerminal()
    try:
        run_genesis(ws, terminal)
        shares = [terminal.shares[i].split() for i in (0, 2, 4)]
    finally:
        terminal.close()
    (path,) = (ws / "manifests").glob("set-*.json")
    old_manifest = json.loads(path.read_bytes())
    key = rsa.generate_private_key(65537, 3072)
    r = R.recipient_from_key(key.public_key(), name="gcp", kind="gcp-kms", key_id="projects/p/k")
    r = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
    expires = (datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kh = rs.start()
    try:
        yield rs.rotation_records(kh, old_manifest, shares, r, expires=expires)
    finally:
        kh.close()


def test_rotation_files_validate(rotation: Any) -> None:
    examples = ROOT / "docs" / "examples" / "rotation-v1"
    valid("rotation-statement", (examples / "statement.json").read_bytes())
    valid("rotation-statement", rotation.statement)
    valid("envelope", (examples / "transitional-envelope.json").read_bytes())
    valid("envelope", rotation.transitional)
    valid("share-set", json.dumps(rotation.marked).encode())
    valid("share-set", json.dumps(rotation.old_manifest).encode())
    assert rotation.marked["version"] == 2 and rotation.marked["rotated_out"]["transition_expires_utc"] == rotation.expires


def test_rotation_schemas_refuse_broken_files(rotation: Any) -> None:
    st = json.loads(rotation.statement)
    invalid("rotation-statement", {**st, "version": 2})
    invalid("rotation-statement", {**st, "practice": False})
    invalid("rotation-statement", {**st, "extra": 1})
    invalid("rotation-statement", {**st, "old": {**st["old"], "kcv": st["old"]["fingerprint"]}})
    bad = json.loads(rotation.statement)
    bad["signatures"]["old"]["purpose"] = "rotation-new"
    invalid("rotation-statement", bad)
    bad = json.loads(rotation.statement)
    bad["new"]["policy"]["groups"].append([2, 3, 4])
    invalid("rotation-statement", bad)
    env = json.loads(rotation.transitional)
    invalid("envelope", {**env, "version": 1})  # a transition header in a version-1 envelope
    bad = json.loads(rotation.transitional)
    del bad["header"]["transition"]
    invalid("envelope", bad)
    bad = json.loads(rotation.transitional)
    bad["header"]["recipient"]["kind"] = "custodian-rsa"
    invalid("envelope", bad)
    bad = json.loads(rotation.transitional)
    bad["header"]["kind"] = "shard"
    invalid("envelope", bad)
    m = rotation.marked
    invalid("share-set", {**m, "version": 1})
    invalid("share-set", {k: v for k, v in m.items() if k != "rotated_out"})
    invalid("share-set", {k: v for k, v in m.items() if k != "signature"})
    invalid("share-set", {**m, "rotated_out": {**m["rotated_out"], "note": "x"}})
    invalid("share-set", {**rotation.old_manifest, "rotated_out": m["rotated_out"]})
