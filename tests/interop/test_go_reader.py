"""The Go reference reader (interop/go) opens what the Python side writes, and refuses tampering.

The reader is built here, offline, from Debian's Go toolchain and Go libraries
(``golang-go``, ``golang-golang-x-crypto-dev``, ``golang-filippo-age-dev``; installed by
tools/install-debian-deps.sh as root) in GOPATH mode with ``GOPROXY=off``: no network. The
build cache lives in ``.cache/go`` (gitignored), so only the first run compiles.

Envelopes come from a real keyholder process: the MasterKey sealed to every wrap algorithm
(RSA-OAEP-256, RSA-OAEP with SHA-1, age X25519, age ssh-ed25519) and two genesis shares
sealed to an RSA and an age custodian. The Go reader must open each with the private key
file, agree with Python on the plaintext (MasterKey fingerprint; the two shares recombine
with the SLIP-39 reference) and refuse every case of the tamper set with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from core.crypto.fingerprint import derive_fingerprint
from core.keyholder import ops_seal, ops_shares
from core.keyholder.client import KeyholderClient
from core.seal import age as agemod
from core.seal import envelope as E
from core.seal import recipients as R
from core.words import wordlist
from tests.support import seal_reader

ROOT = Path(__file__).resolve().parents[2]
GO_SRC = ROOT / "interop" / "go"
GOCODE = Path("/usr/share/gocode/src")
NEEDED = [
    GOCODE / "filippo.io" / "age",
    GOCODE / "filippo.io" / "edwards25519",
    GOCODE / "golang.org" / "x" / "crypto" / "hkdf",
]
_missing = [str(p) for p in NEEDED if not p.is_dir()]
pytestmark = pytest.mark.skipif(
    shutil.which("go") is None or bool(_missing),
    reason="Go reader toolchain missing (run tools/install-debian-deps.sh as root): "
    + ", ".join(_missing or ["go"]),
)

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS8 = serialization.PrivateFormat.PKCS8
NOENC = serialization.NoEncryption()


def _go_env(gopath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GO111MODULE="off",  # GOPATH mode: packages from Debian's /usr/share/gocode
        GOPATH=f"{gopath}:/usr/share/gocode",
        GOPROXY="off",
        GOFLAGS="",
        GOTOOLCHAIN="local",
        GOCACHE=str(ROOT / ".cache" / "go" / "build"),
        CGO_ENABLED="0",
    )
    return env


@pytest.fixture(scope="module")
def go_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build cmd/kcm-envelope-open; also run gofmt and go vet (the reader is meant to be copied)."""
    gopath = tmp_path_factory.mktemp("gopath")
    pkg = gopath / "src" / "openkcm.example" / "envelope"
    shutil.copytree(GO_SRC, pkg)
    env = _go_env(gopath)
    t0 = time.monotonic()
    unformatted = subprocess.run(
        ["gofmt", "-l", "."], cwd=pkg, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert unformatted == [], f"gofmt would change {unformatted}"
    subprocess.run(["go", "vet", ".", "./cmd/..."], cwd=pkg, env=env, check=True, capture_output=True)
    binary = gopath / "kcm-envelope-open"
    out = subprocess.run(
        ["go", "build", "-o", str(binary), "./cmd/kcm-envelope-open"],
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    print(f"go vet + build: {time.monotonic() - t0:.1f} s")
    return binary


def run_go(binary: Path, envelope: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args, str(envelope)], capture_output=True, text=True, timeout=60
    )


def opened(binary: Path, envelope: Path, key: Path, *args: str) -> dict[str, Any]:
    out = run_go(binary, envelope, "-key", str(key), "-reveal", *args)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def refused(binary: Path, envelope: Path, *args: str) -> str:
    out = run_go(binary, envelope, *args)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.startswith("REFUSED: ")
    return out.stderr


# --- keys of every kind (THROWAWAY) ---------------------------------------------------------


def _bech32(hrp: str, data: bytes) -> str:
    values = agemod._convertbits(data, 8, 5, True)
    poly = agemod._polymod([*agemod._hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(agemod._BECH32_CHARSET[d] for d in values + checksum)


class Keys:
    """One private key file per wrap algorithm, and the confirmed recipient for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Path] = {}
        self.recipients: dict[str, R.Recipient] = {}
        for name, kind, algorithm in (
            ("kms", "aws-kms", None),
            ("hsm", "pkcs11-hsm", "CKM_RSA_PKCS_OAEP_SHA1"),
            ("rsa-custodian", "custodian-rsa", None),
        ):
            key = rsa.generate_private_key(65537, 3072)
            self.files[name] = self._write(name + ".pem", key.private_bytes(PEM, PKCS8, NOENC))
            self._recipient(name, key.public_key(), kind, algorithm)
        xk = x25519.X25519PrivateKey.generate()
        secret = xk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, NOENC)
        self.files["age"] = self._write(
            "age.txt", (_bech32("age-secret-key-", secret).upper() + "\n").encode()
        )
        pub = xk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._recipient("age", agemod.encode_recipient(pub), "custodian-age", None)
        ek = ed25519.Ed25519PrivateKey.generate()
        self.files["ssh"] = self._write(
            "id_ed25519",
            ek.private_bytes(PEM, serialization.PrivateFormat.OpenSSH, NOENC),
        )
        line = ek.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        self._recipient("ssh", R.parse_public_key(line), "custodian-age", None)
        self.rsa = {
            n: serialization.load_pem_private_key(self.files[n].read_bytes(), None)
            for n in ("kms", "hsm", "rsa-custodian")
        }

    def _write(self, name: str, data: bytes) -> Path:
        p = self.folder / name
        p.write_bytes(data)
        p.chmod(0o600)
        return p

    def _recipient(self, name: str, key: Any, kind: str, algorithm: str | None) -> None:
        r = R.recipient_from_key(key, name=f"THROWAWAY-{name}", kind=kind, key_id=name, algorithm=algorithm)
        self.recipients[name] = R.confirm(r, "Wendy Witness", r.fingerprint_hex)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def written(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Envelopes of every kind, written by the keyholder process."""
    out = tmp_path_factory.mktemp("envelopes")
    files: dict[str, Path] = {}
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kh:
        split = ops_shares.client_genesis_split(
            kh, {"group_threshold": 1, "groups": [[2, 3]]}, generate=True
        )
        fp = split["fingerprint"]
        common = {"cluster_id": "cluster-eu-1", "region_id": "eu-central-1", "ceremony_id": "go-interop"}
        for name in ("kms", "hsm", "age", "ssh"):
            reply = ops_seal.seal_envelope(kh, keys.recipients[name], kind="masterkey", **common)
            files[f"masterkey-{name}"] = out / f"masterkey-{name}.envelope.json"
            files[f"masterkey-{name}"].write_bytes(reply["envelope"])
        for index, name in ((1, "rsa-custodian"), (3, "age")):
            reply = ops_seal.seal_envelope(
                kh, keys.recipients[name], kind="shard", share_index=index, **common
            )
            files[f"shard-{index}-{name}"] = out / f"shard-{index}-{name}.envelope.json"
            files[f"shard-{index}-{name}"].write_bytes(reply["envelope"])
    yield {"files": files, "fingerprint": fp, "folder": out}


def test_go_reader_opens_every_envelope_kind(
    go_reader: Path, keys: Keys, written: dict[str, Any]
) -> None:
    files, fp = written["files"], written["fingerprint"]
    masterkeys = set()
    for name in ("kms", "hsm", "age", "ssh"):
        res = opened(go_reader, files[f"masterkey-{name}"], keys.files[name], "-expect-fingerprint", fp)
        assert res["kind"] == "masterkey" and res["masterkey_fingerprint"] == fp
        assert res["alg"] == keys.recipients[name].alg
        mk = bytes.fromhex(res["plaintext_hex"])
        assert derive_fingerprint(memoryview(bytearray(mk))).hex == fp
        masterkeys.add(mk)
    assert {keys.recipients[n].alg for n in ("kms", "hsm", "age", "ssh")} == {
        "RSA-OAEP-256", "RSA-OAEP", "age-X25519", "age-ssh-ed25519"
    }  # fmt: skip
    assert len(masterkeys) == 1
    # the independent Python reader gets the same bytes from the RSA envelopes
    for name in ("kms", "hsm"):
        data = files[f"masterkey-{name}"].read_bytes()
        assert seal_reader.open_envelope(data, rsa_key=keys.rsa[name]) in masterkeys
    # shards: two of three, opened by Go, recombine with the SLIP-39 reference
    mnemonics = []
    for key_name, fname in (("rsa-custodian", "shard-1-rsa-custodian"), ("age", "shard-3-age")):
        res = opened(go_reader, files[fname], keys.files[key_name])
        assert res["kind"] == "shard" and res["shard"]["threshold"] == 2
        raw = bytes.fromhex(res["plaintext_hex"])
        idx = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        mnemonics.append(" ".join(wordlist()[i] for i in idx))
    assert shamir_mnemonic.combine_mnemonics(mnemonics) in masterkeys


def _doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def _write(folder: Path, name: str, doc: dict[str, Any], *, raw: bytes | None = None) -> Path:
    p = folder / name
    if raw is not None:
        p.write_bytes(raw)
    else:  # the writer's layout, keeping members the writer would never write
        lines = [f"  {json.dumps(k)}: " + E.canonical_json(v).decode() for k, v in doc.items()]
        p.write_bytes(("{\n" + ",\n".join(lines) + "\n}\n").encode())
    return p


def _flip_b64(value: str, index: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def tamper_set(written: dict[str, Any]) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, the reason the reader must give)."""
    base_path = written["files"]["masterkey-kms"]
    base = base_path.read_bytes()
    other = _doc(written["files"]["masterkey-hsm"])
    out: dict[str, tuple[bytes, str]] = {}

    def put(name: str, doc: dict[str, Any], reason: str) -> None:
        p = _write(written["folder"], "t.json", doc)
        out[name] = (p.read_bytes(), reason)

    d = _doc(base_path)
    d["header"]["region_id"] = "us-east-1"
    put("flipped header field", d, "signature does not verify")
    d = _doc(base_path)
    d["ciphertext"] = _flip_b64(d["ciphertext"], 0)
    put("flipped ciphertext", d, "signature does not verify")
    d = _doc(base_path)
    d["ciphertext"] = _flip_b64(d["ciphertext"], -1)
    put("flipped tag", d, "signature does not verify")
    d = _doc(base_path)
    d["nonce"] = _flip_b64(d["nonce"], 5)
    put("flipped nonce", d, "signature does not verify")
    d = _doc(base_path)
    d["wrapped_key"]["ciphertext"] = _flip_b64(d["wrapped_key"]["ciphertext"], 9)
    put("flipped wrapped key", d, "signature does not verify")
    d = _doc(base_path)
    d["signature"] = other["signature"]
    put("swapped signature", d, "signature does not verify")
    d = _doc(base_path)
    del d["signature"]
    put("removed signature", d, "signature is missing")
    d = _doc(base_path)
    d["version"] = 2
    put("version 2", d, "version 2 is not supported")
    d = _doc(base_path)
    d["header"]["format_version"] = 2
    put("header format_version 2", d, "format_version 2 is not supported")
    d = _doc(base_path)
    d["comment"] = "x"
    put("unknown top-level member", d, 'unknown member "comment"')
    d = _doc(base_path)
    d["header"]["comment"] = "x"
    put("unknown header member", d, 'unknown member "comment"')
    d = _doc(base_path)
    d["wrapped_key"]["Alg"] = d["wrapped_key"].pop("alg")
    put("key in another case", d, "wrapped_key has no member \"alg\"")
    d = _doc(base_path)
    d["header"]["kcv"] = "00" * 8
    put("wrong kcv", d, "kcv must be the first 16 hex digits")
    out["duplicate key"] = (
        base.replace(b'"region_id":"eu-central-1"}', b'"region_id":"eu-central-1","region_id":"us-east-1"}'),
        'duplicate key "region_id"',
    )
    out["version 1.0"] = (base.replace(b'"version": 1,', b'"version": 1.0,'), 'number "1.0"')
    out["reformatted header"] = (
        json.dumps(_doc(base_path), indent=2).encode(),
        "not written in canonical form",
    )
    sig = _doc(base_path)["signature"]["value"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lax = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="
    out["non-canonical base64"] = (base.replace(sig.encode(), lax.encode()), "canonical standard base64")
    return out


def test_go_reader_refuses_the_tamper_set(
    go_reader: Path, keys: Keys, written: dict[str, Any], tmp_path: Path
) -> None:
    cases = tamper_set(written)
    assert len(cases) >= 17
    for name, (data, reason) in cases.items():
        f = tmp_path / "tampered.json"
        f.write_bytes(data)
        err = refused(go_reader, f, "-key", str(keys.files["kms"]))
        assert reason in err, (name, err)
        # the Python reader (and so `envelope inspect`) refuses the same files
        try:
            env = E.parse(data)
        except E.EnvelopeError:
            continue
        assert E.verify_signature(env) is False, name


def test_go_reader_checks_recipient_and_expected_key(
    go_reader: Path, keys: Keys, written: dict[str, Any]
) -> None:
    files = written["files"]
    err = refused(go_reader, files["masterkey-kms"], "-key", str(keys.files["hsm"]))
    assert "another recipient" in err
    err = refused(
        go_reader, files["masterkey-kms"], "-key", str(keys.files["kms"]), "-expect-fingerprint", "ab" * 32
    )
    assert "another MasterKey" in err
    # without a key: parse and signature only
    out = run_go(go_reader, files["shard-3-age"])
    assert out.returncode == 0 and json.loads(out.stdout)["signature"] == "valid"


def test_go_reader_opens_the_docs_worked_example(go_reader: Path) -> None:
    d = ROOT / "docs" / "examples" / "envelope-v1"
    res = opened(go_reader, d / "envelope.json", d / "THROWAWAY-recipient-rsa3072.pem")
    expected = json.loads((d / "expected.json").read_text())
    assert res["plaintext_hex"] == expected["plaintext_masterkey_hex"]
    assert res["masterkey_fingerprint"] == expected["signature_public_key_hex"]
