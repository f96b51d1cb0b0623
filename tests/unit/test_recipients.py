"""Recipients: encodings in, weak/wrong/private keys refused, fingerprints, witness confirmation."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from core.seal import age
from core.seal import recipients as R
from core.words import to_words

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def _b64u(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwk(key: rsa.RSAPrivateKey, private: bool = False) -> bytes:
    pub = key.public_key().public_numbers()
    d: dict[str, str] = {"kty": "RSA", "n": _b64u(pub.n), "e": _b64u(pub.e), "kid": "k1"}
    if private:
        d["d"] = _b64u(key.private_numbers().d)
    return json.dumps(d).encode()


def _spki_sha(key: rsa.RSAPrivateKey) -> str:
    return hashlib.sha256(key.public_key().public_bytes(DER, SPKI)).hexdigest()


@pytest.mark.parametrize("encoding", ["pem", "pkcs1-pem", "der", "jwk", "jwks", "ssh", "cert"])
def test_every_rsa_encoding_gives_the_same_fingerprint(
    rsa3072: rsa.RSAPrivateKey, encoding: str
) -> None:
    pub = rsa3072.public_key()
    if encoding == "pem":
        data = pub.public_bytes(PEM, SPKI)
    elif encoding == "pkcs1-pem":
        data = pub.public_bytes(PEM, serialization.PublicFormat.PKCS1)
    elif encoding == "der":
        data = pub.public_bytes(DER, SPKI)
    elif encoding == "jwk":
        data = _jwk(rsa3072)
    elif encoding == "jwks":
        data = b'{"keys":[' + _jwk(rsa3072) + b"]}"
    elif encoding == "ssh":
        data = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    else:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hsm")])
        now = datetime.datetime.now(datetime.UTC)
        data = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(pub)
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(rsa3072, hashes.SHA256())
            .public_bytes(PEM)
        )
    key = R.parse_public_key(data)
    r = R.recipient_from_key(key, name="aws-eu", kind="aws-kms", key_id="arn:aws:kms:eu:1:key/a")
    assert r.fingerprint_hex == _spki_sha(rsa3072)
    assert r.fingerprint_words == to_words(bytes.fromhex(r.fingerprint_hex))
    assert len(r.fingerprint_words) == 26
    assert r.alg == "RSA-OAEP-256"


def test_age_recipient_round_trip_and_fingerprint() -> None:
    pub = x25519.X25519PrivateKey.generate().public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    text = age.encode_recipient(raw)
    assert text.startswith("age1") and age.decode_recipient(text) == raw
    r = R.recipient_from_key(
        R.parse_public_key(text.encode()),
        name="alice",
        kind="custodian-age",
        key_id="alice@example.org",
    )
    assert r.fingerprint_hex == hashlib.sha256(text.encode()).hexdigest()
    # an X25519 JWK gives the same recipient
    jwk = json.dumps(
        {"kty": "OKP", "crv": "X25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
    ).encode()
    r2 = R.recipient_from_key(
        R.parse_public_key(jwk), name="alice", kind="custodian-age", key_id="a"
    )
    assert r2.age_recipient == text


@pytest.mark.skipif(shutil.which("age-keygen") is None, reason="age-keygen not installed")
def test_age_keygen_recipient_is_accepted(tmp_path: Path) -> None:
    out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    recipient = next(line.split(": ")[1] for line in out.splitlines() if "public key" in line)
    assert age.decode_recipient(recipient)
    assert R.parse_public_key(recipient.encode()) == recipient


def test_age_bad_checksum_refused() -> None:
    text = age.encode_recipient(bytes(range(32)))
    bad = text[:-1] + ("q" if text[-1] != "q" else "p")
    with pytest.raises(R.MalformedKey, match="checksum"):
        R.parse_public_key(bad.encode())


def test_small_rsa_refused_for_kms(rsa2048: rsa.RSAPrivateKey) -> None:
    key = R.parse_public_key(rsa2048.public_key().public_bytes(PEM, SPKI))
    for kind in ("aws-kms", "gcp-kms", "azure-kv", "vault-transit", "pkcs11-hsm", "custodian-rsa"):
        with pytest.raises(R.WeakKey, match="RSA-2048 is too small"):
            R.recipient_from_key(key, name="x", kind=kind, key_id="k")


def test_bad_exponent_refused() -> None:
    # e=3 key built from numbers (no need for a real private key)
    n = rsa.generate_private_key(65537, 3072).public_key().public_numbers().n
    with pytest.raises(R.WeakKey, match="exponent 3"):
        R.recipient_from_key(
            rsa.RSAPublicNumbers(3, n).public_key(), name="x", kind="aws-kms", key_id="k"
        )


def test_wrong_key_types_refused(rsa3072: rsa.RSAPrivateKey) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(PEM, SPKI)
    with pytest.raises(R.WrongKeyType, match="EC \\(elliptic curve\\)"):
        R.parse_public_key(ec_pem)
    ecdsa_ssh = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    with pytest.raises(R.WrongKeyType, match="ecdsa-sha2-nistp256"):
        R.parse_public_key(ecdsa_ssh)
    # an OpenSSH Ed25519 key is fine for a custodian (age ssh-ed25519), not for a KMS
    ed_ssh = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    parsed = R.parse_public_key(ed_ssh + b" bob@laptop\n")
    assert parsed == ed_ssh.decode()
    with pytest.raises(R.WrongKeyType, match="RSA public key"):
        R.recipient_from_key(parsed, name="x", kind="aws-kms", key_id="k")
    r = R.recipient_from_key(parsed, name="bob", kind="custodian-age", key_id="bob")
    assert r.alg == "age-ssh-ed25519" and r.age_recipient == ed_ssh.decode()
    assert r.fingerprint_hex == hashlib.sha256(ed_ssh).hexdigest()
    with pytest.raises(R.WrongKeyType, match="does not fit"):
        R.recipient_from_key(
            parsed, name="bob", kind="custodian-age", key_id="b", algorithm="age-X25519"
        )
    with pytest.raises(R.MalformedKey):
        R.parse_public_key(b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA")
    # RSA key for an age custodian, age key for a KMS
    with pytest.raises(R.WrongKeyType, match="X25519"):
        R.recipient_from_key(rsa3072.public_key(), name="x", kind="custodian-age", key_id="k")
    with pytest.raises(R.WrongKeyType, match="RSA public key"):
        R.recipient_from_key(
            age.encode_recipient(bytes(range(32))), name="x", kind="aws-kms", key_id="k"
        )
    # GCP algorithm naming a different size
    with pytest.raises(R.WrongKeyType, match="RSA-4096"):
        R.recipient_from_key(
            rsa3072.public_key(),
            name="x",
            kind="gcp-kms",
            key_id="k",
            algorithm="RSA_DECRYPT_OAEP_4096_SHA256",
        )
    with pytest.raises(R.RecipientError, match="not usable"):
        R.recipient_from_key(
            rsa3072.public_key(), name="x", kind="aws-kms", key_id="k", algorithm="RSAES_OAEP_SHA_1"
        )


SECRET_MARK = "VERY-SECRET-MARKER"


@pytest.mark.parametrize(
    "form",
    ["pkcs8-pem", "pkcs1-pem", "pkcs8-der", "pkcs1-der", "jwk", "openssh", "age", "encrypted-pem"],
)
def test_private_keys_refused_without_echo(
    rsa3072: rsa.RSAPrivateKey, form: str, tmp_path: Path
) -> None:
    nope = serialization.NoEncryption()
    if form == "pkcs8-pem":
        data = rsa3072.private_bytes(PEM, serialization.PrivateFormat.PKCS8, nope)
    elif form == "pkcs1-pem":
        data = rsa3072.private_bytes(PEM, serialization.PrivateFormat.TraditionalOpenSSL, nope)
    elif form == "pkcs8-der":
        data = rsa3072.private_bytes(DER, serialization.PrivateFormat.PKCS8, nope)
    elif form == "pkcs1-der":
        data = rsa3072.private_bytes(DER, serialization.PrivateFormat.TraditionalOpenSSL, nope)
    elif form == "jwk":
        data = _jwk(rsa3072, private=True)
    elif form == "openssh":
        data = rsa3072.private_bytes(PEM, serialization.PrivateFormat.OpenSSH, nope)
    elif form == "age":
        data = b"# created: now\n# public key: age1xyz\nAGE-SECRET-KEY-1" + b"Q" * 58 + b"\n"
    else:
        data = rsa3072.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
    f = tmp_path / "brought-in.key"
    f.write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(R.PrivateKeySupplied) as exc:
        R.read_key_file(f)
    msg = str(exc.value)
    assert "PRIVATE" in msg
    # the message quotes nothing of the file
    for chunk in (data[i : i + 12] for i in range(0, len(data) - 12, 12)):
        assert chunk.decode("latin-1") not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"\x30\x82\x01\x00\x30",
        b'{"kty":"RSA","n":"!!","e":"AQAB"}',
        b"{not json",
        b"ssh-rsa AAAAB3NzaC1yc2E= x",
    ],
)
def test_malformed_refused(data: bytes) -> None:
    with pytest.raises(R.MalformedKey):
        R.parse_public_key(data)


@pytest.mark.parametrize(
    "bad", ['x"y', "a<b", "a>b", "a&b", "back\\slash", "tab\there", "caf\u00e9", "", "x" * 257]
)
def test_unsafe_text_refused(rsa3072: rsa.RSAPrivateKey, bad: str) -> None:
    with pytest.raises(R.RecipientError, match="printable ASCII"):
        R.recipient_from_key(rsa3072.public_key(), name=bad, kind="aws-kms", key_id="k")


def test_ordinary_descriptions_accepted(rsa3072: rsa.RSAPrivateKey) -> None:
    r = R.recipient_from_key(
        rsa3072.public_key(),
        name="Alice's key (v2), 50% ready?!",
        kind="custodian-rsa",
        key_id="https://kv.vault.azure.net/keys/k/1?x=1;y={2}|*$^",
    )
    assert r.name.startswith("Alice's")


def test_confirmation_by_hex_and_words(rsa3072: rsa.RSAPrivateKey) -> None:
    r = R.recipient_from_key(
        rsa3072.public_key(), name="aws", kind="aws-kms", key_id="k", key_version="3"
    )
    with pytest.raises(R.UnconfirmedRecipient):
        R.require_confirmed(r)
    hx = r.fingerprint_hex
    spaced = ":".join(hx[i : i + 2] for i in range(0, 64, 2)).upper()
    c1 = R.confirm(r, "Wendy Witness", spaced)
    assert c1.confirmation is not None and c1.confirmation.method == "hex"
    assert R.require_confirmed(c1) is c1
    c2 = R.confirm(r, "Wendy Witness", "  ".join(r.fingerprint_words).upper())
    assert c2.confirmation is not None and c2.confirmation.method == "words"
    wrong = ("0" if hx[0] != "0" else "1") + hx[1:]
    with pytest.raises(R.FingerprintMismatch, match="does NOT match"):
        R.confirm(r, "Wendy Witness", wrong)
    words = r.fingerprint_words
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(R.FingerprintMismatch):
        R.confirm(r, "Wendy Witness", " ".join(words))


def test_public_dict_round_trip_and_tamper(rsa3072: rsa.RSAPrivateKey) -> None:
    r = R.confirm(
        R.recipient_from_key(rsa3072.public_key(), name="aws", kind="aws-kms", key_id="k"),
        "W",
        R.recipient_from_key(
            rsa3072.public_key(), name="aws", kind="aws-kms", key_id="k"
        ).fingerprint_hex,
    )
    d = r.to_public_dict()
    assert R.Recipient.from_public_dict(d) == r
    d2 = dict(d, fingerprint="00" * 32)
    with pytest.raises(R.FingerprintMismatch):
        R.Recipient.from_public_dict(d2)
    d3 = dict(d, spki_der_b64="AAAA")
    with pytest.raises(R.RecipientError):
        R.Recipient.from_public_dict(d3)


def test_recipients_file(
    tmp_path: Path, rsa3072: rsa.RSAPrivateKey, rsa2048: rsa.RSAPrivateKey
) -> None:
    (tmp_path / "aws.der").write_bytes(rsa3072.public_key().public_bytes(DER, SPKI))
    (tmp_path / "azure.jwk").write_bytes(_jwk(rsa3072))
    recip = age.encode_recipient(bytes(range(1, 33)))
    (tmp_path / "recipients.toml").write_text(
        f"""
[[recipient]]
name = "aws-eu-central-1"
kind = "aws-kms"
key_id = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
key_version = "1"
algorithm = "RSAES_OAEP_SHA_256"
public_key = "aws.der"
fingerprint = "{_spki_sha(rsa3072)}"

[[recipient]]
name = "azure-weu"
kind = "azure-kv"
key_id = "https://kv-openkcm.vault.azure.net/keys/openkcm-boot/0123456789abcdef"
algorithm = "RSA-OAEP-256"
public_key = "azure.jwk"

[[recipient]]
name = "custodian alice"
kind = "custodian-age"
key_id = "alice@example.org"
age_recipient = "{recip}"
"""
    )
    rs = R.load_recipients_file(tmp_path / "recipients.toml")
    assert [r.name for r in rs] == ["aws-eu-central-1", "azure-weu", "custodian alice"]
    assert rs[0].key_version == "1" and not rs[0].confirmed
    assert rs[2].age_recipient == recip
    # wrong recorded fingerprint, weak key, unknown kind, missing file: each named
    (tmp_path / "weak.pem").write_bytes(rsa2048.public_key().public_bytes(PEM, SPKI))
    cases = {
        'kind = "aws-kms"\nkey_id = "k"\npublic_key = "aws.der"\nfingerprint = "'
        + "0" * 64
        + '"': R.FingerprintMismatch,
        'kind = "aws-kms"\nkey_id = "k"\npublic_key = "weak.pem"': R.WeakKey,
        'kind = "aws-kmz"\nkey_id = "k"\npublic_key = "aws.der"': R.RecipientError,
        'kind = "aws-kms"\nkey_id = "k"\npublic_key = "missing.pem"': R.MalformedKey,
    }
    for body, exc in cases.items():
        (tmp_path / "bad.toml").write_text('[[recipient]]\nname = "bad one"\n' + body + "\n")
        with pytest.raises(exc, match="bad one"):
            R.load_recipients_file(tmp_path / "bad.toml")
