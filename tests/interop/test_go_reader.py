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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from core.crypto.fingerprint import derive_fingerprint
from core.keyholder import ops_seal, ops_shares
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import Refused
from core.seal import age as agemod
from core.seal import envelope as E
from core.seal import recipients as R
from core.words import wordlist
from tests.support import rotation as rs
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
    put("version 2", d, "format_version 1 differs from the envelope version 2")
    d = _doc(base_path)
    d["header"]["format_version"] = 2
    put("header format_version 2", d, "format_version 2 differs from the envelope version 1")
    d = _doc(base_path)
    d["version"] = 3
    put("version 3", d, "version 3 is not supported")
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


# --- transitional envelopes (version 2, docs/formats.md 1.9) ---------------------------------


def _utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def transitional(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A rotation in the real keyholder: the old key (rebuilt from typed shares) sealed as a
    transitional envelope to the KMS key, the new key as an ordinary envelope."""
    out = tmp_path_factory.mktemp("transitional")
    created = datetime.now(UTC).replace(microsecond=0)
    expires = _utc(created + timedelta(days=30))
    common = {"cluster_id": "cluster-eu-1", "region_id": "eu-central-1", "ceremony_id": "go-rotation"}
    with rs.start() as kh:
        r = rs.begin_rotation(kh)
        old = ops_seal.seal_envelope(
            kh, keys.recipients["kms"], kind="masterkey", key="old", transition_expires_utc=expires, **common
        )["envelope"]
        new = ops_seal.seal_envelope(kh, keys.recipients["kms"], kind="masterkey", key="new", **common)["envelope"]
        with pytest.raises(Refused, match="online recipient"):
            ops_seal.seal_envelope(
                kh, keys.recipients["rsa-custodian"], kind="masterkey", key="old",
                transition_expires_utc=expires, **common,
            )  # fmt: skip
    (out / "old.json").write_bytes(old)
    (out / "new.json").write_bytes(new)
    yield {"old": out / "old.json", "new": out / "new.json", "expires": expires, "folder": out,
           "old_fp": r.old_fp, "new_fp": r.new_fp}  # fmt: skip


def test_go_reader_opens_a_transitional_envelope_until_its_expiry(
    go_reader: Path, keys: Keys, transitional: dict[str, Any]
) -> None:
    t = transitional
    kms = keys.files["kms"]
    res = opened(go_reader, t["old"], kms, "-expect-fingerprint", t["old_fp"])
    assert res["version"] == 2 and res["masterkey_fingerprint"] == t["old_fp"]
    assert res["transition"] == {"expires_utc": t["expires"], "successor_fingerprint": t["new_fp"], "expired": False}
    assert derive_fingerprint(memoryview(bytearray.fromhex(res["plaintext_hex"]))).hex == t["old_fp"]
    assert seal_reader.open_envelope(t["old"].read_bytes(), rsa_key=keys.rsa["kms"]) == bytes.fromhex(res["plaintext_hex"])
    new = opened(go_reader, t["new"], kms)
    assert new["version"] == 1 and "transition" not in new and new["masterkey_fingerprint"] == t["new_fp"]
    end = datetime.strptime(t["expires"], "%Y-%m-%dT%H:%M:%SZ")
    assert opened(go_reader, t["old"], kms, "-now", _utc(end - timedelta(seconds=1)))["opened"] is True
    for when in (end, end + timedelta(days=1)):
        for args in (("-key", str(kms), "-now", _utc(when)), ("-now", _utc(when))):
            err = refused(go_reader, t["old"], *args)
            assert f"expired at {t['expires']}" in err, err
        # the Python readers agree
        with pytest.raises(E.EnvelopeError, match="expired"):
            E.parse(t["old"].read_bytes(), now=when.replace(tzinfo=UTC))
    E.parse(t["old"].read_bytes(), now=(end - timedelta(seconds=1)).replace(tzinfo=UTC))
    out = run_go(go_reader, t["old"], "-now", "tomorrow")
    assert out.returncode == 2


def test_go_reader_opens_the_docs_transitional_example(go_reader: Path) -> None:
    """docs/formats.md 1.9: opens before 2026-03-02T12:00:00Z, REFUSED after (the clock here
    is past it)."""
    key = ROOT / "docs" / "examples" / "envelope-v1" / "THROWAWAY-recipient-rsa3072.pem"
    env = ROOT / "docs" / "examples" / "rotation-v1" / "transitional-envelope.json"
    expected = json.loads((ROOT / "docs" / "examples" / "rotation-v1" / "expected.json").read_text())
    res = opened(go_reader, env, key, "-now", "2026-02-15T00:00:00Z")
    assert res["plaintext_hex"] == expected["old_masterkey_hex"]
    assert res["transition"]["successor_fingerprint"] == expected["new_fingerprint_hex"]
    assert res["transition"]["expired"] is False
    assert datetime.now(UTC) > datetime(2026, 3, 2, 12, tzinfo=UTC)
    err = refused(go_reader, env, "-key", str(key))
    assert "expired at 2026-03-02T12:00:00Z" in err


def transitional_tamper_set(t: dict[str, Any], v1: Path) -> dict[str, tuple[bytes, str]]:
    """docs/formats.md 1.7's tamper set for transitional envelopes: name -> (bytes, reason)."""
    out: dict[str, tuple[bytes, str]] = {}

    def put(name: str, doc: dict[str, Any], reason: str) -> None:
        p = _write(t["folder"], "t.json", doc)
        out[name] = (p.read_bytes(), reason)

    base = t["old"]
    d = _doc(base)
    d["header"]["transition"]["expires_utc"] = _utc(datetime.now(UTC) + timedelta(days=31))
    put("changed expiry", d, "signature does not verify")
    d = _doc(base)
    d["header"]["transition"]["successor_fingerprint"] = "ab" * 32
    put("changed successor", d, "signature does not verify")
    d = _doc(base)
    del d["header"]["transition"]
    put("transition removed, versions left", d, "must have a transition object")
    d = _doc(v1)
    d["header"]["transition"] = _doc(base)["header"]["transition"]
    put("transition added to version 1", d, "has no header.transition")
    d = _doc(base)
    del d["header"]["transition"]
    d["version"] = 1
    d["header"]["format_version"] = 1
    put("back to version 1", d, "signature does not verify")
    d = _doc(base)
    d["version"] = 1
    put("top-level version alone", d, "format_version 2 differs from the envelope version 1")
    d = _doc(base)
    d["header"]["recipient"]["kind"] = "custodian-rsa"
    put("custodian recipient", d, "online recipient only")
    d = _doc(base)
    d["header"].update(kind="shard", payload_encoding="slip39-indices-u16be", payload_length=66,
                       shard={"index": 1, "set_id": 1, "group_index": 1, "group_threshold": 1,
                              "member_index": 1, "threshold": 2})  # fmt: skip
    put("a shard", d, "only a MasterKey envelope can be transitional")
    d = _doc(base)
    created = datetime.strptime(d["header"]["created_utc"], "%Y-%m-%dT%H:%M:%SZ")
    d["header"]["transition"]["expires_utc"] = _utc(created + timedelta(days=90, seconds=1))
    put("window over 90 days", d, "more than 90 days")
    d = _doc(base)
    d["header"]["transition"]["expires_utc"] = d["header"]["created_utc"]
    put("window ends when it starts", d, "not after created_utc")
    d = _doc(base)
    d["header"]["transition"]["successor_fingerprint"] = d["header"]["masterkey_fingerprint"]
    put("successor is the key itself", d, "its own key as its successor")
    d = _doc(base)
    d["header"]["transition"]["note"] = "x"
    put("unknown transition member", d, 'unknown member "note"')
    return out


def test_go_reader_refuses_the_transitional_tamper_set(
    go_reader: Path, keys: Keys, transitional: dict[str, Any], tmp_path: Path
) -> None:
    cases = transitional_tamper_set(transitional, transitional["new"])
    assert len(cases) == 12
    for name, (data, reason) in cases.items():
        f = tmp_path / "tampered.json"
        f.write_bytes(data)
        err = refused(go_reader, f, "-key", str(keys.files["kms"]))
        assert reason in err, (name, err)
        try:
            env = E.parse(data)
        except E.EnvelopeError:
            continue
        assert E.verify_signature(env) is False, name
