"""Generate the worked example of docs/formats.md (envelope v1) with THROWAWAY keys.

Run: .venv/bin/python docs/examples/make_envelope_example.py
Writes docs/examples/envelope-v1/: the throwaway recipient private key, the envelope, and
expected.json with every intermediate value (data key, AAD, plaintext MasterKey). Nothing
here is, or may ever become, a real key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core import secmem
from core.crypto.fingerprint import derive_fingerprint, sign_with_master
from core.seal import envelope as E
from core.seal import recipients as R

OUT = Path(__file__).resolve().parent / "envelope-v1"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    key = rsa.generate_private_key(65537, 3072)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (OUT / "THROWAWAY-recipient-rsa3072.pem").write_bytes(pem)
    r = R.recipient_from_key(
        key.public_key(),
        name="aws-eu-central-1",
        kind="aws-kms",
        key_id="arn:aws:kms:eu-central-1:111122223333:key/EXAMPLE-ONLY",
        key_version="1",
        algorithm="RSAES_OAEP_SHA_256",
    )
    r = R.confirm(r, "Example Witness", r.fingerprint_hex)
    master = secmem.SecretBuffer(32, allow_unlocked=True)
    with master.view() as mv:
        mv[:] = bytes(range(32))  # THROWAWAY example MasterKey 00 01 02 ... 1f
        fp = derive_fingerprint(mv)
        header = E.build_header(
            kind="masterkey",
            cluster_id="example-cluster",
            region_id="eu-central-1",
            masterkey_fingerprint=fp.hex,
            ceremony_id="example-ceremony-0001",
            recipient=r,
            payload_length=32,
            created_utc="2026-01-31T12:00:00Z",
        )

        def signer(msg: bytes) -> bytes:
            with master.view() as m:
                return sign_with_master(m, msg)

        data = E.seal(mv, header, r, signer=signer, allow_unlocked=True)
    (OUT / "envelope.json").write_bytes(data)
    doc = json.loads(data)
    aad = E.canonical_json(doc["header"])
    wrapped = base64.b64decode(doc["wrapped_key"]["ciphertext"])
    dk = key.decrypt(wrapped, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    nonce = base64.b64decode(doc["nonce"])
    ct = base64.b64decode(doc["ciphertext"])
    parts = [aad, doc["wrapped_key"]["alg"].encode(), wrapped, nonce, ct]
    signed = b"openkcm-envelope/v1 signature\x00" + b"".join(
        struct.pack(">I", len(p)) + p for p in parts
    )
    expected = {
        "WARNING": "THROWAWAY example values: never use these keys",
        "aad_utf8": aad.decode(),
        "aad_sha256": hashlib.sha256(aad).hexdigest(),
        "data_key_hex": dk.hex(),
        "nonce_hex": nonce.hex(),
        "ciphertext_hex": ct[:-16].hex(),
        "tag_hex": ct[-16:].hex(),
        "plaintext_masterkey_hex": bytes(range(32)).hex(),
        "signed_message_sha256": hashlib.sha256(signed).hexdigest(),
        "signature_public_key_hex": fp.hex,
        "recipient_fingerprint_hex": r.fingerprint_hex,
        "recipient_fingerprint_words": " ".join(r.fingerprint_words),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    master.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
