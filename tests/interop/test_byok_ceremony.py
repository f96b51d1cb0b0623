"""A practice ceremony with BYOK steps writes AWS, GCP, Azure and Vault import files that
open with the real openssl CLI, and the key inside is the envelope's (issue 16, item 5).

In a demo workspace (``kcm-ceremony demo init``: DEMO provider wrapping keys and a DEMO
AWS import token on the medium, their private keys in ``demo-keys/``): the practice
genesis over a real keyholder process, then ``practice-byok.toml`` from 3 of its shares.
Each provider's files are then unwrapped with ``openssl pkeyutl -decrypt`` (RSA-OAEP) and,
for CKM_RSA_AES_KEY_WRAP, ``openssl enc -d -id-aes256-wrap-pad``; the 32 bytes must equal
the MasterKey the genesis envelope holds, opened by the Go reference reader
(``interop/go``, ``-reveal`` with the DEMO key) and by the Python test reader. Every file
written validates against its schema, and the journal holds no key material.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from core import journal as jr
from core.ceremony.engine import Ceremony, CeremonyState, ClientKeyholder
from core.ceremony.model import StepKind
from core.demo import init_workspace
from core.keyholder.client import KeyholderClient
from tests import schemas
from tests.interop import test_go_reader as go
from tests.interop.test_seal_openssl import openssl_rsa_aes_unwrap as _rsa_aes_unwrap
from tests.interop.test_seal_openssl import pkeyutl_decrypt as _pkeyutl
from tests.support import seal_reader
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import drive, ok_preflight

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed"),
    go.pytestmark,  # the Go reader's toolchain (installed as root by tools/install-debian-deps.sh)
]

go_reader = go.go_reader  # the module-scoped fixture that builds interop/go


def _demo_key(demo_keys: Path, stem: str) -> Path:
    """The DEMO private key as a plain PEM file (the demo writes a '#' line above it)."""
    src = demo_keys / f"{stem}.DEMO-PRIVATE.pem"
    out = demo_keys / f"{stem}.openssl.pem"
    out.write_bytes(
        b"".join(ln for ln in src.read_bytes().splitlines(True) if not ln.startswith(b"#"))
    )
    return out


@pytest.fixture(scope="module")
def byok_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The practice genesis, then practice-byok, in one demo workspace (real keyholder)."""
    root = tmp_path_factory.mktemp("demo") / "ws"
    ws = init_workspace(root)
    unlocked = os.geteuid() != 0
    terminal = CustodianTerminal()
    try:
        # the custodians' terminal is fixed when the keyholder starts (a pty: demo mode)
        with KeyholderClient.start(
            allow_unlocked=unlocked, practice=True, terminal=terminal.path, demo=True
        ) as kc:
            g = Ceremony.load(
                ws.scripts / ws.preselect,
                ws.media,
                ClientKeyholder(kc, tty=terminal.path),
                preflight=ok_preflight,
            )
            drive(g)
        shares = list(terminal.shares)
    finally:
        terminal.close()
    assert g.state is CeremonyState.COMPLETED
    with KeyholderClient.start(allow_unlocked=unlocked, practice=True) as kc:
        b = Ceremony.load(
            ws.scripts / "practice-byok.toml", ws.media, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(b, shares=[typed(shares[i]) for i in (0, 2, 4)])
        assert kc.status()["master_held"] is False
    assert b.state is CeremonyState.COMPLETED
    return {"ws": ws, "genesis": g, "byok": b}


@pytest.fixture(scope="module")
def masterkey(byok_run: dict[str, Any], go_reader: Path) -> bytes:
    """The MasterKey in the practice genesis envelope, opened by the Go reference reader;
    the Python test reader agrees."""
    ws = byok_run["ws"]
    env = ws.media / "exports" / "PRACTICE-genesis-export" / "PRACTICE-masterkey-kms.sealed.json"
    key = _demo_key(ws.demo_keys, "PRACTICE-kms")
    out = go.opened(go_reader, env, key)
    plain = bytes.fromhex(out["plaintext_hex"])
    from cryptography.hazmat.primitives import serialization

    priv = serialization.load_pem_private_key(key.read_bytes(), None)
    assert seal_reader.open_envelope(env.read_bytes(), rsa_key=priv) == plain
    assert len(plain) == 32
    return plain


def _folder(byok_run: dict[str, Any], provider: str) -> Path:
    return byok_run["ws"].media / "exports" / f"PRACTICE-byok-{provider}"


def _metadata(folder: Path, provider: str) -> dict[str, Any]:
    data = (folder / f"{provider}-import.json").read_bytes()
    schemas.valid("byok-import", data)
    meta: dict[str, Any] = json.loads(data)
    return meta


def _check_files(folder: Path, meta: dict[str, Any], fp: str) -> None:
    import hashlib

    for name, digest in meta["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert meta["target"]["masterkey_fingerprint"] == fp


def test_aws_files_open_with_openssl(
    byok_run: dict[str, Any], masterkey: bytes, tmp_path: Path
) -> None:
    f = _folder(byok_run, "aws")
    assert sorted(p.name for p in f.iterdir()) == [
        "EncryptedKeyMaterial.bin", "ImportToken.bin", "MANIFEST.sha256", "aws-import.json",
    ]  # fmt: skip
    meta = _metadata(f, "aws")
    assert meta["method"] == "RSAES_OAEP_SHA_256" and meta["scheme"] == "rsa-oaep"
    _check_files(f, meta, byok_run["genesis"].manifest["fingerprint"])
    # the import token is the medium's, copied unchanged
    token = byok_run["ws"].media / "byok" / "PRACTICE-aws-import-token.bin"
    assert (f / "ImportToken.bin").read_bytes() == token.read_bytes()
    key = _demo_key(byok_run["ws"].demo_keys, "PRACTICE-aws-wrapping-key")
    assert (
        _pkeyutl(key, (f / "EncryptedKeyMaterial.bin").read_bytes(), tmp_path, "sha256")
        == masterkey
    )


def test_gcp_file_opens_with_openssl(
    byok_run: dict[str, Any], masterkey: bytes, tmp_path: Path
) -> None:
    f = _folder(byok_run, "gcp")
    meta = _metadata(f, "gcp")
    assert meta["method"] == "RSA_OAEP_3072_SHA256_AES_256"
    _check_files(f, meta, byok_run["genesis"].manifest["fingerprint"])
    key = _demo_key(byok_run["ws"].demo_keys, "PRACTICE-gcp-wrapping-key")
    blob = (f / "wrapped-key.bin").read_bytes()
    assert _rsa_aes_unwrap(key, 3072, blob, tmp_path, "sha256") == masterkey


def test_azure_byok_opens_with_openssl(
    byok_run: dict[str, Any], masterkey: bytes, tmp_path: Path
) -> None:
    f = _folder(byok_run, "azure")
    meta = _metadata(f, "azure")
    _check_files(f, meta, byok_run["genesis"].manifest["fingerprint"])
    data = (f / "PRACTICE-masterkey.byok").read_bytes()
    schemas.valid("azure-byok", data)
    doc = json.loads(data)
    assert doc["header"]["enc"] == "CKM_RSA_AES_KEY_WRAP"
    assert doc["header"]["kid"].startswith("https://practice-hsm.managedhsm.azure.net/keys/")
    ct = doc["ciphertext"]
    blob = base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4))
    key = _demo_key(byok_run["ws"].demo_keys, "PRACTICE-azure-kek")
    assert _rsa_aes_unwrap(key, 3072, blob, tmp_path, "sha1") == masterkey


def test_vault_request_opens_with_openssl(
    byok_run: dict[str, Any], masterkey: bytes, tmp_path: Path
) -> None:
    f = _folder(byok_run, "vault")
    meta = _metadata(f, "vault")
    _check_files(f, meta, byok_run["genesis"].manifest["fingerprint"])
    body = (f / "vault-transit-import.json").read_bytes()
    schemas.valid("vault-transit-import", body)
    req = json.loads(body)
    assert req["type"] == "aes256-gcm96" and req["hash_function"] == "SHA256"
    blob = base64.b64decode(req["ciphertext"], validate=True)
    key = _demo_key(byok_run["ws"].demo_keys, "PRACTICE-vault-wrapping-key")
    assert _rsa_aes_unwrap(key, 4096, blob, tmp_path, "sha256") == masterkey


def test_journal_records_each_byok_without_key_material(
    byok_run: dict[str, Any], masterkey: bytes
) -> None:
    b = byok_run["byok"]
    assert jr.verify(b.journal.path).ok
    evs = jr._events_from_path(b.journal.path)
    steps = [s for s in b.steps if s.kind is StepKind.BYOK]
    assert [s.results["provider"] for s in steps] == ["aws", "gcp", "azure", "vault"]
    for s in steps:
        assert s.confirmed_by == "witness"
        assert s.results["stage"] == "wrapped and written"
        assert s.results["masterkey_fingerprint"] == byok_run["genesis"].manifest["fingerprint"]
        # the witness confirmed the fingerprint shown, which is the key's SPKI SHA-256
        assert s.results["wrapping_key_sha256"] == s.display["fingerprint"]
        written = [
            e for e in evs
            if e.kind == "step.result" and e.details.get("stage") == "wrapped and written"
            and e.details.get("provider") == s.results["provider"]
        ]  # fmt: skip
        assert len(written) == 1 and written[0].details["files"]
        confirmed = [
            e for e in evs
            if e.kind == "step.input" and e.step == s.step_id and e.details.get("confirmed")
        ]  # fmt: skip
        assert len(confirmed) == 1
    raw = b.journal.path.read_bytes()
    for enc in (masterkey, masterkey.hex().encode(), base64.b64encode(masterkey)):
        assert enc not in raw
    text = (b.exports["jsonl"]).read_bytes()
    assert masterkey.hex().encode() not in text
