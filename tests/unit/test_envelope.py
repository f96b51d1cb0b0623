"""Envelopes: sealed by core, opened by an independent reader; format checks without keys."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from core import secmem
from core.crypto.fingerprint import derive_fingerprint, sign_with_master
from core.crypto.transient import transient_bytes
from core.seal import age as agemod
from core.seal import envelope as E
from core.seal import envelope_cli
from core.seal import recipients as R
from tests.support import seal_reader

HAVE_AGE = shutil.which("age") is not None and shutil.which("age-keygen") is not None
SHARD = {
    "index": 1,
    "set_id": 4821,
    "group_index": 1,
    "group_threshold": 1,
    "member_index": 1,
    "threshold": 2,
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@pytest.fixture()
def master() -> Any:
    buf = secmem.SecretBuffer(32, allow_unlocked=True)
    buf.fill_random()
    yield buf
    buf.close()


def _confirmed(r: R.Recipient) -> R.Recipient:
    return R.confirm(r, "Wendy Witness", r.fingerprint_hex)


def _seal(
    master: secmem.SecretBuffer,
    r: R.Recipient,
    *,
    kind: str = "masterkey",
    shard: dict[str, int] | None = None,
    secret: secmem.SecretBuffer | None = None,
) -> bytes:
    with master.view() as mv:
        fp = derive_fingerprint(mv)
    src = secret or master
    with src.view() as sv:
        header = E.build_header(
            kind=kind,
            cluster_id="cluster-eu-1",
            region_id="eu-central-1",
            masterkey_fingerprint=fp.hex,
            ceremony_id="genesis-2026-11-28",
            recipient=r,
            payload_length=sv.nbytes,
            created_utc="2026-11-28T10:00:00Z",
            shard=shard,
        )

        def signer(msg: bytes) -> bytes:
            with master.view() as m:
                return sign_with_master(m, msg)

        return E.seal(sv, header, r, signer=signer, allow_unlocked=True)


def _plain(buf: secmem.SecretBuffer) -> bytes:
    with buf.view() as mv:
        return bytes(mv)  # test-side comparison only


@pytest.mark.parametrize(
    "kind", ["aws-kms", "gcp-kms", "azure-kv", "vault-transit", "custodian-rsa"]
)
def test_rsa_oaep256_envelope_opens_with_independent_reader(
    rsa_key: rsa.RSAPrivateKey, master: Any, kind: str
) -> None:
    r = _confirmed(
        R.recipient_from_key(
            rsa_key.public_key(), name=f"{kind}-1", kind=kind, key_id="key-1", key_version="2"
        )
    )
    data = _seal(master, r)
    assert seal_reader.open_envelope(data, rsa_key=rsa_key) == _plain(master)
    assert seal_reader.verify_envelope_signature(data)
    env = E.parse(data)
    assert env.alg == "RSA-OAEP-256" and env.header["recipient"]["key_version"] == "2"
    assert E.verify_signature(env) is True


def test_hsm_sha1_envelope(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r = _confirmed(
        R.recipient_from_key(
            rsa_key.public_key(),
            name="hsm-1",
            kind="pkcs11-hsm",
            key_id="token-a/seal-key",
            algorithm="CKM_RSA_PKCS_OAEP_SHA1",
        )
    )
    data = _seal(master, r)
    assert json.loads(data)["wrapped_key"]["alg"] == "RSA-OAEP"
    assert seal_reader.open_envelope(data, rsa_key=rsa_key) == _plain(master)


@pytest.mark.skipif(not HAVE_AGE, reason="age CLI not installed (apt install age)")
def test_age_envelope_opens_with_age_cli(tmp_path: Path, master: Any) -> None:
    ident = tmp_path / "alice.key"
    subprocess.run(["age-keygen", "-o", str(ident)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(ident)], check=True, capture_output=True, text=True
    ).stdout.strip()
    r = _confirmed(
        R.recipient_from_key(
            recipient, name="custodian alice", kind="custodian-age", key_id="alice"
        )
    )
    share = secmem.SecretBuffer(66, allow_unlocked=True)
    share.fill_random()
    data = _seal(master, r, kind="shard", secret=share, shard=SHARD)
    assert seal_reader.open_envelope(data, age_identity=ident) == _plain(share)
    env = E.parse(data)
    assert env.header["shard"] == SHARD
    share.close()


@pytest.mark.skipif(
    not HAVE_AGE or shutil.which("ssh-keygen") is None, reason="age / ssh-keygen missing"
)
def test_ssh_ed25519_custodian_envelope_opens_with_age_cli(tmp_path: Path, master: Any) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    pub = R.parse_public_key((tmp_path / "id_ed25519.pub").read_bytes())
    r = _confirmed(
        R.recipient_from_key(pub, name="custodian bob", kind="custodian-age", key_id="bob")
    )
    data = _seal(master, r)
    assert json.loads(data)["wrapped_key"]["alg"] == "age-ssh-ed25519"
    assert [s[0] for s in agemod.parse_header(E.parse(data).wrapped_key)] == ["ssh-ed25519"]
    assert seal_reader.open_envelope(data, age_identity=key) == _plain(master)


@pytest.mark.skipif(not HAVE_AGE, reason="age CLI not installed")
def test_age_module_interops_with_age_cli(tmp_path: Path) -> None:
    ident = tmp_path / "k"
    subprocess.run(["age-keygen", "-o", str(ident)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(ident)], check=True, capture_output=True, text=True
    ).stdout.strip()
    payload = bytearray(b"0123456789abcdef0123456789abcdef")
    blob = agemod.encrypt_to_recipient(recipient, memoryview(payload))
    out = subprocess.run(
        ["age", "-d", "-i", str(ident)], input=blob, capture_output=True, check=True
    )
    assert out.stdout == bytes(payload)
    assert [s[0] for s in agemod.parse_header(blob)] == ["X25519"]


def test_unconfirmed_recipient_refused(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r = R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    with pytest.raises(R.UnconfirmedRecipient):
        _seal(master, r)


def _no_signer(msg: bytes) -> bytes:
    raise AssertionError("never reached: the header is refused first")


def test_header_mismatch_refused(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r1 = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    other = rsa.generate_private_key(65537, 3072)
    r2 = _confirmed(
        R.recipient_from_key(other.public_key(), name="aws2", kind="aws-kms", key_id="k2")
    )
    with master.view() as mv:
        h = E.build_header(
            kind="masterkey",
            cluster_id="c",
            region_id="r",
            masterkey_fingerprint="ab" * 32,
            ceremony_id="x",
            recipient=r1,
            payload_length=32,
        )
        with pytest.raises(E.EnvelopeError, match="another recipient"):
            E.seal(mv, h, r2, signer=_no_signer, allow_unlocked=True)
        with pytest.raises(E.EnvelopeError, match="payload_length"):
            E.seal(mv[:31], h, r1, signer=_no_signer, allow_unlocked=True)


def test_header_is_canonical_in_the_file(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    data = _seal(master, r)
    raw = seal_reader.raw_header_bytes(data)
    assert raw == E.canonical_json(json.loads(data)["header"])
    assert raw.isascii() and b" " not in raw.replace(b"Wendy Witness", b"")


def _strip_signature(data: bytes) -> bytes:
    """The file with its signature member removed (as an attacker would)."""
    doc = json.loads(data)
    del doc["signature"]
    return E.serialise(doc)


def _tamper(data: bytes, path: list[str], value: Any) -> bytes:
    doc = json.loads(data)
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    # like E.serialise, but keeps members the writer would never write
    lines = [f"  {json.dumps(k)}: " + E.canonical_json(v).decode() for k, v in doc.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def test_tampering_detected(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    from cryptography.exceptions import InvalidTag

    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    data = _seal(master, r)
    moved = _tamper(data, ["header", "region_id"], "us-east-1")
    env = E.parse(moved)  # still well-formed ...
    assert E.verify_signature(env) is False  # ... but the signature fails
    with pytest.raises(InvalidTag):  # and so does the AEAD (header is the AAD)
        seal_reader.open_envelope(moved, rsa_key=rsa_key)
    ct = base64.b64decode(json.loads(data)["ciphertext"])
    flipped = _tamper(data, ["ciphertext"], base64.b64encode(bytes([ct[0] ^ 1]) + ct[1:]).decode())
    assert E.verify_signature(E.parse(flipped)) is False


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["version"], 2, "version 2"),
        (["header", "kind"], "other", "kind"),
        (["header", "kcv"], "00" * 8, "kcv"),
        (["header", "cluster_id"], "a<b", "cluster_id"),
        (["header", "created_utc"], "yesterday", "created_utc"),
        (["header", "extra"], 1, "unknown fields"),
        (["wrapped_key", "alg"], "RSA-OAEP", "differs"),
        (["wrapped_key", "recipient_fingerprint"], "00" * 32, "differs"),
        (["wrapped_key", "ciphertext"], "AAAA", "not an RSA"),
        (["nonce"], base64.b64encode(b"x" * 8).decode(), "nonce"),
        (["ciphertext"], base64.b64encode(b"x" * 40).decode(), "truncated"),
        (["ciphertext"], "not base64!", "base64"),
        (["signature"], {"alg": "RSA", "value": ""}, "signature"),
    ],
)
def test_parse_rejects(
    rsa_key: rsa.RSAPrivateKey, master: Any, path: list[str], value: Any, match: str
) -> None:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    data = _seal(master, r)
    with pytest.raises(E.EnvelopeError, match=match):
        E.parse(_tamper(data, path, value))


def test_parse_rejects_non_envelopes() -> None:
    for data in (b"", b"{}", b"[1]", b'{"format":"openkcm-envelope","version":1}', b"\xff\xfe"):
        with pytest.raises(E.EnvelopeError):
            E.parse(data)


def test_cli_inspect(
    rsa_key: rsa.RSAPrivateKey, master: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = _confirmed(
        R.recipient_from_key(
            rsa_key.public_key(), name="aws", kind="aws-kms", key_id="arn:k", key_version="7"
        )
    )
    f = tmp_path / "mk.envelope.json"
    f.write_bytes(_seal(master, r))
    assert envelope_cli.cli_main(["inspect", str(f)]) == 0
    out = capsys.readouterr().out
    assert "kind             masterkey" in out and "VALID" in out and "version 7" in out
    assert hashlib.sha256(f.read_bytes()).hexdigest() in out
    bad = tmp_path / "bad.json"
    bad.write_bytes(_tamper(f.read_bytes(), ["header", "region_id"], "elsewhere"))
    assert envelope_cli.cli_main(["inspect", str(bad)]) == 1
    assert "INVALID" in capsys.readouterr().out
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    assert envelope_cli.cli_main(["inspect", str(junk)]) == 1
    assert "NOT a valid envelope" in capsys.readouterr().err
    assert envelope_cli.cli_main([]) == 2


def test_cli_via_subprocess(rsa_key: rsa.RSAPrivateKey, master: Any, tmp_path: Path) -> None:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    f = tmp_path / "e.json"
    f.write_bytes(_strip_signature(_seal(master, r)))

    def inspect(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kcm_tui.cli", "envelope", "inspect", *args],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )

    out = inspect(str(f))
    assert out.returncode == 1 and "signature is missing" in out.stderr, out
    out = inspect("--allow-unsigned", str(f))
    assert out.returncode == 0, out.stderr
    assert "signature        NONE" in out.stdout and "do not use it" in out.stdout


def test_seal_manifest(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    e1, e2 = _seal(master, r), _seal(master, r)
    with master.view() as m:
        pub = derive_fingerprint(m).public_key

    from core.keyholder.ops_core import signed_bytes

    def signer(purpose: str, msg: bytes) -> bytes:  # what KeyholderClient.sign does
        with master.view() as m:
            return sign_with_master(m, signed_bytes(purpose, msg))

    doc = json.loads(E.seal_manifest({"a.json": e1, "b.json": e2}, ceremony_id="c1", signer=signer))
    assert [x["sha256"] for x in doc["body"]["envelopes"]] == [
        hashlib.sha256(e).hexdigest() for e in (e1, e2)
    ]
    assert doc["body"]["envelopes"][0]["recipient"]["fingerprint"] == r.fingerprint_hex
    from core.crypto.fingerprint import verify_signature

    msg = b"openkcm-seal-manifest/v1\x00" + E.canonical_json(doc["body"])
    sig = base64.b64decode(doc["signature"]["value"])
    assert verify_signature(pub, signed_bytes("seal-manifest", msg), sig)
    assert not verify_signature(pub, msg, sig), "domain-separated from raw messages"


def test_transient_bytes_is_zeroed() -> None:
    buf = bytearray(b"k" * 32)
    with transient_bytes(memoryview(buf)) as b:
        kept = b
        assert kept == bytes(buf)
    assert kept == bytes(32)  # the object's storage was overwritten in place
    with pytest.raises(ValueError):
        with transient_bytes(memoryview(bytearray(1))):
            pass


def test_x25519_low_order_point_refused() -> None:
    with pytest.raises(agemod.AgeFormatError):
        agemod.encrypt_to_recipient(agemod.encode_recipient(bytes(32)), memoryview(bytearray(32)))
    assert x25519  # silence unused import on some linters


def test_docs_worked_example_opens() -> None:
    """docs/formats.md's worked example: the independent reader reproduces every value."""
    from cryptography.hazmat.primitives import serialization

    d = Path(__file__).resolve().parents[2] / "docs" / "examples" / "envelope-v1"
    data = (d / "envelope.json").read_bytes()
    expected = json.loads((d / "expected.json").read_text())
    key = serialization.load_pem_private_key(
        (d / "THROWAWAY-recipient-rsa3072.pem").read_bytes(), None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    assert seal_reader.open_envelope(data, rsa_key=key).hex() == expected["plaintext_masterkey_hex"]
    assert seal_reader.raw_header_bytes(data).decode() == expected["aad_utf8"]
    assert (
        seal_reader.unwrap_data_key(json.loads(data), rsa_key=key).hex() == expected["data_key_hex"]
    )
    assert seal_reader.verify_envelope_signature(data)
    env = E.parse(data)
    assert E.verify_signature(env) is True
    formats = (d.parents[1] / "formats.md").read_text()
    for k in ("data_key_hex", "aad_sha256", "signed_message_sha256", "nonce_hex", "tag_hex"):
        assert expected[k] in formats, k
    assert data.decode().strip() in formats


# --- the reader rules of docs/formats.md section 0, each case from issue #16 -----------------


@pytest.fixture()
def signed(rsa_key: rsa.RSAPrivateKey, master: Any) -> bytes:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    return _seal(master, r)


def _inspect(data: bytes, tmp_path: Path, *flags: str) -> tuple[int, str, str]:
    f = tmp_path / "e.json"
    f.write_bytes(data)
    out = subprocess.run(
        [sys.executable, "-m", "kcm_tui.cli", "envelope", "inspect", *flags, str(f)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return out.returncode, out.stdout, out.stderr


def test_duplicate_header_key_is_refused(signed: bytes, tmp_path: Path) -> None:
    """Old inspect showed the LAST region_id as 'checked: OK' (and exit 0 when unsigned)."""
    dup = signed.replace(b'"region_id":"eu-central-1"}', b'"region_id":"eu-central-1","region_id":"us-east-1"}')
    assert dup != signed
    with pytest.raises(E.EnvelopeError, match="duplicate key 'region_id'"):
        E.parse(dup)
    with pytest.raises(E.EnvelopeError, match="duplicate key"):
        E.parse(_strip_signature(signed).replace(
            b'"region_id":"eu-central-1"}', b'"region_id":"eu-central-1","region_id":"us-east-1"}'
        ), allow_unsigned=True)
    code, out, err = _inspect(dup, tmp_path)
    assert code == 1 and "duplicate key 'region_id'" in err and "us-east-1" not in out
    top = signed.replace(b'  "nonce":', b'  "version": 1,\n  "nonce":')
    with pytest.raises(E.EnvelopeError, match="duplicate key 'version'"):
        E.parse(top)


@pytest.mark.parametrize("number", [b"1.0", b"1e0", b"1E0", b"-1", b"-0", b"01", b"true", b'"1"', b"2"])
def test_version_must_be_the_integer_1(signed: bytes, tmp_path: Path, number: bytes) -> None:
    bad = signed.replace(b'"version": 1,', b'"version": ' + number + b",")
    assert bad != signed
    with pytest.raises(E.EnvelopeError):
        E.parse(bad)
    code, _out, err = _inspect(bad, tmp_path)
    assert code == 1 and "NOT a valid envelope" in err


def test_version_1_0_message(signed: bytes) -> None:
    with pytest.raises(E.EnvelopeError, match="not an integer"):
        E.parse(signed.replace(b'"version": 1,', b'"version": 1.0,'))
    with pytest.raises(E.EnvelopeError, match="format_version"):
        E.parse(signed.replace(b'"format_version":1,', b'"format_version":true,'))


def test_missing_signature_is_refused_unless_allowed(signed: bytes, tmp_path: Path) -> None:
    """Old inspect exited 0 on a signed envelope whose signature was removed."""
    bare = _strip_signature(signed)
    with pytest.raises(E.EnvelopeError, match="signature is missing"):
        E.parse(bare)
    assert E.parse(bare, allow_unsigned=True).signature is None
    code, _out, err = _inspect(bare, tmp_path)
    assert code == 1 and "signature is missing" in err
    code, out, _err = _inspect(bare, tmp_path, "--allow-unsigned")
    assert code == 0 and "NONE" in out
    # --allow-unsigned never excuses a wrong signature
    moved = _tamper(signed, ["header", "region_id"], "us-east-1")
    code, out, err = _inspect(moved, tmp_path, "--allow-unsigned")
    assert code == 1 and "INVALID" in out and "does not verify" in err


def test_swapped_signature_is_invalid(rsa_key: rsa.RSAPrivateKey, master: Any) -> None:
    r = _confirmed(
        R.recipient_from_key(rsa_key.public_key(), name="aws", kind="aws-kms", key_id="k")
    )
    a, b = _seal(master, r), _seal(master, r)
    sig_b = json.loads(b)["signature"]
    swapped = _tamper(a, ["signature"], sig_b)
    assert E.verify_signature(E.parse(swapped)) is False


@pytest.mark.parametrize(
    "path",
    [["extra"], ["header", "extra"], ["header", "recipient", "extra"], ["wrapped_key", "extra"],
     ["signature", "extra"], ["Header"], ["header", "Region_id"]],
)
def test_unknown_member_refused_at_every_level(signed: bytes, path: list[str]) -> None:
    bad = _tamper(signed, path, "x")
    with pytest.raises(E.EnvelopeError, match=r"unknown|exactly|must have"):
        E.parse(bad)


def test_keys_match_exactly(signed: bytes) -> None:
    """Go's encoding/json would map "Format" onto a field tagged "format"."""
    with pytest.raises(E.EnvelopeError):
        E.parse(signed.replace(b'"format":', b'"Format":', 1))
    with pytest.raises(E.EnvelopeError):
        E.parse(signed.replace(b'"nonce":', b'"NONCE":', 1))


def test_base64_is_strict(signed: bytes) -> None:
    doc = json.loads(signed)
    nonce = doc["nonce"]
    raw = base64.b64decode(nonce)
    assert len(raw) == 12 and "=" not in nonce  # 12 bytes: 16 characters, no padding
    sig = doc["signature"]["value"]
    assert sig.endswith("==")
    # non-zero padding bits: decodes to the same bytes with a lax decoder
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(sig[-3])
    lax = sig[:-3] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last ^ 1] + "=="
    assert base64.b64decode(lax) == base64.b64decode(sig)
    for bad, where in (
        (_tamper(signed, ["signature", "value"], lax), "signature.value"),
        (_tamper(signed, ["signature", "value"], sig[:-2]), "signature.value"),  # no padding
        (_tamper(signed, ["nonce"], nonce[:8] + "\n" + nonce[8:]), "backslash"),  # "\n" escape
        (_tamper(signed, ["nonce"], base64.urlsafe_b64encode(b"\xff" * 12).decode()), "nonce"),
    ):
        with pytest.raises(E.EnvelopeError, match=where):
            E.parse(bad)


def test_reformatted_header_is_refused(signed: bytes) -> None:
    """The AAD is the header's bytes as written; they must be canonical."""
    doc = json.loads(signed)
    pretty = json.dumps(doc, indent=2).encode()
    with pytest.raises(E.EnvelopeError, match="canonical form"):
        E.parse(pretty)
    # whitespace elsewhere is free
    relaid = (
        b'{"format":"openkcm-envelope","version":1,"header":'
        + E.canonical_json(doc["header"])
        + b',\n\n  "wrapped_key" :'
        + json.dumps(doc["wrapped_key"], indent=1).encode()
        + b',"nonce":"' + doc["nonce"].encode() + b'","ciphertext":"'
        + doc["ciphertext"].encode() + b'","signature":'
        + json.dumps(doc["signature"]).encode() + b"}"
    )
    env = E.parse(relaid)
    assert env.aad == E.canonical_json(doc["header"]) and E.verify_signature(env) is True


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: b"\xef\xbb\xbf" + d, "byte order mark"),
        (lambda d: d + b"{}", "data after"),
        (lambda d: d.replace(b"aws", "\u00e4ws".encode(), 1), "ASCII"),
        (lambda d: d.replace(b'"k"', b'"\\ud800"', 1), "backslash"),
        (lambda d: d.replace(b'"format"', b'"\\u0066ormat"', 1), "backslash"),
        (lambda d: d.replace(b'"format_version":1', b'"format_version":NaN'), "NaN"),
    ],
)
def test_lexical_rules(signed: bytes, mutate: Any, match: str) -> None:
    bad = mutate(signed)
    assert bad != signed
    with pytest.raises(E.EnvelopeError, match=match):
        E.parse(bad)


def test_shard_header_members_are_exact(master: Any, tmp_path: Path) -> None:
    r = _confirmed(
        R.recipient_from_key(
            rsa.generate_private_key(65537, 3072).public_key(),
            name="c", kind="custodian-rsa", key_id="c",
        )
    )
    share = secmem.SecretBuffer(66, allow_unlocked=True)
    share.fill_random()
    data = _seal(master, r, kind="shard", secret=share, shard=SHARD)
    assert E.parse(data).header["shard"] == SHARD
    for shard in (
        {k: v for k, v in SHARD.items() if k != "group_threshold"},
        {**SHARD, "member_threshold": 2},
        {**SHARD, "set_id": 40000},
        {**SHARD, "threshold": 0},
    ):
        with pytest.raises(E.EnvelopeError, match="shard"):
            E.parse(_tamper(data, ["header", "shard"], shard))
    with pytest.raises(E.EnvelopeError, match="payload_encoding"):
        E.parse(_tamper(data, ["header", "payload_encoding"], "slip39-mnemonic"))
    share.close()


def test_docs_spell_out_the_hkdf_bytes() -> None:
    """docs/formats.md 1.3 gives salt, info, seed and fingerprint of the THROWAWAY key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from core.crypto.fingerprint import FINGERPRINT_INFO, FINGERPRINT_SALT

    formats = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    seed = HKDF(hashes.SHA256(), 32, FINGERPRINT_SALT, FINGERPRINT_INFO).derive(bytes(range(32)))
    fp = derive_fingerprint(memoryview(bytearray(range(32)))).hex
    assert f'ASCII "{FINGERPRINT_SALT.decode()}"' in formats and f"({len(FINGERPRINT_SALT)} bytes)" in formats
    assert f'ASCII "{FINGERPRINT_INFO.decode()}"' in formats and f"({len(FINGERPRINT_INFO)} bytes)" in formats
    assert seed.hex() in formats and fp in formats and f"kcv `{fp[:16]}`" in formats


def test_card_share_file_is_read_under_the_strict_rules() -> None:
    """The sealed card-share file comes in on a medium: the same lexical rules apply."""
    from core.carriers.errors import CardDataMissing
    from core.carriers.pkcs11 import BLOB_FORMAT, parse_sealed

    doc = {
        "aead": "AES-256-GCM", "card_serial": "39272f2aa1e297e2", "format": BLOB_FORMAT,
        "key_fingerprint": "a3" * 32, "key_id": "53a2e7586fa47dce", "meta": {"set": 1},
        "nonce": base64.b64encode(bytes(12)).decode(), "oaep_hash": "sha1",
        "ciphertext": base64.b64encode(bytes(82)).decode(),
        "wrapped_key": base64.b64encode(bytes(256)).decode(),
    }  # fmt: skip
    good = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert parse_sealed(good)["card_serial"] == "39272f2aa1e297e2"
    dup = good.replace(b'"card_serial":', b'"card_serial":"0000000000000000","card_serial":', 1)
    with pytest.raises(CardDataMissing):
        parse_sealed(dup)
    with pytest.raises(CardDataMissing):
        parse_sealed(good.replace(b'{"set":1}', b'{"set":1.0}'))
