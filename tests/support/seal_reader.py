"""An independent reader of openkcm-envelope files (version 1, and the version-2
transitional envelope of docs/formats.md 1.9, whose expiry it enforces), for tests only.

Written from docs/formats.md with nothing but `cryptography` primitives, `json`, `base64`
and the `age` CLI: it does not import the production code (core.*), so a test that seals
with core and opens with this proves the format, not the implementation's agreement with
itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def raw_header_bytes(data: bytes) -> bytes:
    """The header's bytes exactly as in the file (what Go's json.RawMessage would give)."""
    m = re.search(rb'\n  "header": (\{.*\}),\n', data)
    assert m, "header line not found"
    return m.group(1)


def unwrap_data_key(
    doc: dict[str, Any], *, rsa_key: rsa.RSAPrivateKey | None = None, age_identity: Path | None = None
) -> bytes:
    wk = doc["wrapped_key"]
    blob = base64.b64decode(wk["ciphertext"], validate=True)
    if wk["alg"] in ("RSA-OAEP-256", "RSA-OAEP"):
        assert rsa_key is not None
        spki = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert hashlib.sha256(spki).hexdigest() == wk["recipient_fingerprint"]
        h = hashes.SHA256() if wk["alg"] == "RSA-OAEP-256" else hashes.SHA1()
        return rsa_key.decrypt(blob, padding.OAEP(padding.MGF1(h), h, None))
    if wk["alg"] in ("age-X25519", "age-ssh-ed25519"):
        assert age_identity is not None
        out = subprocess.run(
            ["age", "-d", "-i", str(age_identity)], input=blob, capture_output=True, check=True
        )
        return out.stdout
    raise AssertionError(f"unknown alg {wk['alg']}")


def open_envelope(data: bytes, **keys: Any) -> bytes:
    """Decrypt an envelope; returns the plaintext."""
    doc = json.loads(data)
    assert doc["format"] == "openkcm-envelope" and doc["version"] in (1, 2)
    assert doc["header"]["format_version"] == doc["version"]
    assert ("transition" in doc["header"]) == (doc["version"] == 2)
    if doc["version"] == 2:  # 1.9: refused at or after the expiry
        import datetime as _dt

        end = _dt.datetime.strptime(doc["header"]["transition"]["expires_utc"], "%Y-%m-%dT%H:%M:%SZ")
        assert _dt.datetime.now(_dt.UTC).replace(tzinfo=None) < end, "transitional envelope expired"
    aad = canonical(doc["header"])
    assert aad == raw_header_bytes(data)
    dk = unwrap_data_key(doc, **keys)
    assert len(dk) == 32
    nonce = base64.b64decode(doc["nonce"])
    ct = base64.b64decode(doc["ciphertext"])
    pt = AESGCM(dk).decrypt(nonce, ct, aad)
    assert len(pt) == doc["header"]["payload_length"]
    return pt


def verify_envelope_signature(data: bytes) -> bool:
    doc = json.loads(data)
    aad = canonical(doc["header"])
    parts = [
        aad,
        doc["wrapped_key"]["alg"].encode(),
        base64.b64decode(doc["wrapped_key"]["ciphertext"]),
        base64.b64decode(doc["nonce"]),
        base64.b64decode(doc["ciphertext"]),
    ]
    msg = b"openkcm-envelope/v1 signature\x00" + b"".join(
        struct.pack(">I", len(p)) + p for p in parts
    )
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["header"]["masterkey_fingerprint"]))
    try:
        pub.verify(base64.b64decode(doc["signature"]["value"]), msg)
    except Exception:
        return False
    return True


def unwrap_rsa_aes(blob: bytes, rsa_key: rsa.RSAPrivateKey, hash_name: str) -> bytes:
    """Open a CKM_RSA_AES_KEY_WRAP blob with cryptography (independent of core)."""
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

    n = rsa_key.key_size // 8
    h = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()
    kek = rsa_key.decrypt(blob[:n], padding.OAEP(padding.MGF1(h), h, None))
    return aes_key_unwrap_with_padding(kek, blob[n:])
