"""Generate the worked example of docs/formats.md section 10 (MasterKey rotation).

Run: .venv/bin/python docs/examples/make_rotation_example.py
Writes docs/examples/rotation-v1/ with THROWAWAY keys (old MasterKey ``00 01 ... 1f``, new
MasterKey ``20 21 ... 3f``):

* ``statement.json``: the continuity statement (Ed25519 is deterministic: re-running gives
  the same bytes; ``tests/unit/test_continuity.py`` checks it);
* ``expected.json``: every intermediate value (both fingerprints, the signed message and
  its two domain-separated forms, the signatures);
* ``transitional-envelope.json``: the old key sealed, as a transitional envelope (section
  1.9), to the THROWAWAY RSA key of ``docs/examples/envelope-v1/`` (a fresh data key and
  nonce each run: this file changes when the script is run again).

Nothing here is, or may ever become, a real key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from core import continuity, secmem
from core import signatures as sig
from core.crypto.fingerprint import derive_fingerprint, sign_with_master
from core.seal import envelope as E
from core.seal import recipients as R

HERE = Path(__file__).resolve().parent
OUT = HERE / "rotation-v1"
CREATED = "2026-01-31T12:00:00Z"
EXPIRES = "2026-03-02T12:00:00Z"
OLD_KEY = bytes(range(32))  # THROWAWAY
NEW_KEY = bytes(range(32, 64))  # THROWAWAY


def main() -> None:
    OUT.mkdir(exist_ok=True)
    old = secmem.SecretBuffer(32, allow_unlocked=True)
    new = secmem.SecretBuffer(32, allow_unlocked=True)
    with old.view() as om, new.view() as nm:
        om[:] = OLD_KEY
        nm[:] = NEW_KEY
        old_fp, new_fp = derive_fingerprint(om), derive_fingerprint(nm)
        body = continuity.build_body(
            ceremony_id="example-rotation-0001",
            cluster_id="example-cluster",
            region_id="eu-central-1",
            created_utc=CREATED,
            old=continuity.KeyFacts(
                old_fp.hex, old_fp.hex[:16], 4821, {"group_threshold": 1, "groups": [[3, 5]]}
            ),
            new=continuity.KeyFacts(
                new_fp.hex,
                new_fp.hex[:16],
                1187,
                {"group_threshold": 2, "groups": [[2, 3], [2, 3], [2, 3]]},
            ),
            transition_expires_utc=EXPIRES,
        )
        msg = continuity.message(body)
        s_old = sign_with_master(om, sig.signed_bytes("rotation-old", msg))
        s_new = sign_with_master(nm, sig.signed_bytes("rotation-new", msg))
        data = continuity.serialise(continuity.assemble(body, s_old, s_new))

        # the old key, sealed as a transitional envelope to the envelope example's key
        pem = (HERE / "envelope-v1" / "THROWAWAY-recipient-rsa3072.pem").read_bytes()
        rsa_key = serialization.load_pem_private_key(pem, None)
        r = R.recipient_from_key(
            rsa_key.public_key(),
            name="aws-eu-central-1",
            kind="aws-kms",
            key_id="arn:aws:kms:eu-central-1:111122223333:key/EXAMPLE-ONLY",
            key_version="1",
            algorithm="RSAES_OAEP_SHA_256",
        )
        r = R.confirm(r, "Example Witness", r.fingerprint_hex)
        header = E.build_header(
            kind="masterkey",
            cluster_id="example-cluster",
            region_id="eu-central-1",
            masterkey_fingerprint=old_fp.hex,
            ceremony_id="example-rotation-0001",
            recipient=r,
            payload_length=32,
            created_utc=CREATED,
            transition={"expires_utc": EXPIRES, "successor_fingerprint": new_fp.hex},
        )

        def signer(m: bytes) -> bytes:
            with old.view() as k:
                return sign_with_master(k, m)

        envelope = E.seal(om, header, r, signer=signer, allow_unlocked=True)
    old.close()
    new.close()
    (OUT / "statement.json").write_bytes(data)
    (OUT / "transitional-envelope.json").write_bytes(envelope)
    expected = {
        "WARNING": "THROWAWAY example values: never use these keys",
        "old_masterkey_hex": OLD_KEY.hex(),
        "new_masterkey_hex": NEW_KEY.hex(),
        "old_fingerprint_hex": old_fp.hex,
        "old_kcv_words": " ".join(old_fp.words),
        "new_fingerprint_hex": new_fp.hex,
        "new_kcv_words": " ".join(new_fp.words),
        "message_utf8": msg.decode("ascii"),
        "message_sha256": hashlib.sha256(msg).hexdigest(),
        "signed_bytes_old_sha256": hashlib.sha256(sig.signed_bytes("rotation-old", msg)).hexdigest(),
        "signed_bytes_new_sha256": hashlib.sha256(sig.signed_bytes("rotation-new", msg)).hexdigest(),
        "signature_old_hex": s_old.hex(),
        "signature_new_hex": s_new.hex(),
        "statement_sha256": hashlib.sha256(data).hexdigest(),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
