"""Driver plugin for the seal memory scan: seal and BYOK through the keyholder.

The recipients' RSA keys are made here (public halves go to the keyholder); the private
PEM is returned to the test so it can learn the data keys from the envelopes. Only public
values ever reach this (parent) process.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.keyholder import ops_seal
from core.seal import recipients as R

_KEY = rsa.generate_private_key(65537, 3072)
_DER = _KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _test_key(client: Any, arg: str) -> dict[str, Any]:
    pem = _KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"pem": pem.decode()}


def _seal(client: Any, arg: str) -> dict[str, Any]:
    r = R.recipient_from_key(_KEY.public_key(), name="aws", kind="aws-kms", key_id="k")
    r = R.confirm(r, "W", r.fingerprint_hex)
    rep = ops_seal.seal_envelope(
        client, r, kind="masterkey", cluster_id="c", region_id="r", ceremony_id="x"
    )
    return {"envelope": base64.b64encode(rep["envelope"]).decode()}


def _byok(client: Any, arg: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, Any] = {}
    # CKM_RSA_AES_KEY_WRAP first (GCP; AWS takes only direct OAEP for a symmetric key), then
    # the direct OAEP, which briefly needs a bytes copy of the key (zeroed at once)
    rep = ops_seal.byok_gcp(
        client,
        wrapping_key=_DER,
        witness="W",
        confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(_DER),
        import_method="RSA_OAEP_3072_SHA256_AES_256",
        import_job="j",
        key_name="k",
        job_created_utc=now,
    )
    out["RSA_OAEP_3072_SHA256_AES_256"] = base64.b64encode(rep["files"]["wrapped-key.bin"]).decode()
    for alg in ("RSAES_OAEP_SHA_256",):
        rep = ops_seal.byok_aws(
            client,
            wrapping_key=_DER,
            witness="W",
            confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(_DER),
            import_token=b"t",
            wrapping_algorithm=alg,
            key_id="k",
            parameters_obtained_utc=now,
        )
        out[alg] = base64.b64encode(rep["files"]["EncryptedKeyMaterial.bin"]).decode()
    return out


COMMANDS = {"seal_test_key": _test_key, "seal": _seal, "seal_byok": _byok}
