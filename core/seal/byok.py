"""BYOK import files (byte-exact) for AWS KMS, GCP Cloud KMS, Azure Key Vault and Vault transit.

What each provider accepts for a 256-bit *symmetric* key (the MasterKey), from its own
documentation (sources cited in docs/formats.md section 3):

* AWS KMS: ``RSAES_OAEP_SHA_256`` or ``RSAES_OAEP_SHA_1`` (RSAES-OAEP of the key itself).
  AWS documents ``RSA_AES_KEY_WRAP_SHA_*`` for RSA and ECC private key material only, so it
  is not offered here.
* GCP Cloud KMS: the six import methods ``RSA_OAEP_{3072,4096}_{SHA1,SHA256}_AES_256``
  (CKM_RSA_AES_KEY_WRAP) and ``RSA_OAEP_{3072,4096}_SHA256`` (direct); the import job's key
  size must match the method.
* Azure Key Vault / Managed HSM: CKM_RSA_AES_KEY_WRAP with RSA-OAEP **SHA-1**; AES (``oct``)
  targets import only into Managed HSM.
* Vault / OpenBao transit: CKM_RSA_AES_KEY_WRAP to the mount's RSA-4096 wrapping key, OAEP
  hash ``SHA256`` (default) or ``SHA1`` (Vault also takes SHA-224/384/512; not offered).

CKM_RSA_AES_KEY_WRAP (FINDINGS section 3): a fresh 32-byte AES key encrypted with RSAES-OAEP
(MGF1 with the same hash, empty label) to the provider's wrapping key, then the target key
wrapped with AES key wrap with padding (RFC 5649) under that AES key; the blob is
``RSA part || wrapped key``.

Every export also writes a metadata file ``<provider>-import.json`` (format
``openkcm-byok-import`` version 1, schema ``docs/schemas/byok-import.schema.json``) with the
method, the destination, the wrapping key's fingerprint, the validity window, the SHA-256 of
every file written and the import command.

Runs in the keyholder (it touches the MasterKey). Secret handling:

* the ephemeral AES key is drawn into a SecretBuffer; AES-KWP reads the target and the AES
  key as memoryviews (no copy; FINDINGS section 5 measured 0 residues);
* RSA-OAEP: ``cryptography`` accepts only ``bytes``. For CKM_RSA_AES_KEY_WRAP that copy is
  of the *ephemeral* AES key; for the direct OAEP methods (AWS ``RSAES_OAEP_*``, GCP
  ``RSA_OAEP_*_SHA256``) it is a copy of the **MasterKey itself**, made only for that one
  call and zeroed in place right after (:func:`core.crypto.transient.transient_bytes`). Prefer
  the RSA-AES methods; the direct one exists because AWS documents it as the safe choice.

Each function returns a :class:`ByokExport`: the files to write to the medium (public
ciphertext, the provider's import token copied alongside) and the validity window, which
the UI shows before export and the journal records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from core import secmem
from core.crypto.transient import transient_bytes
from core.errors import KcmError
from core.seal.recipients import (
    MIN_RSA_BITS,
    MalformedKey,
    PrivateKeySupplied,
    WrongKeyType,
    parse_public_key,
)

__all__ = [
    "AWS_ALGORITHMS",
    "GCP_METHODS",
    "ByokError",
    "ByokExport",
    "aws_import",
    "azure_byok",
    "gcp_import",
    "load_wrapping_key",
    "rsa_aes_key_wrap",
    "rsa_oaep_direct",
    "validity_until",
    "vault_transit_import",
]

GENERATOR: Final = "openkcm-ceremony 0.1.0"
METADATA_FORMAT: Final = "openkcm-byok-import"
METADATA_VERSION: Final = 1
VAULT_WRAPPING_BITS: Final = 4096
AWS_VALIDITY: Final = timedelta(hours=24)
GCP_VALIDITY: Final = timedelta(days=3)

#: AWS WrappingAlgorithm -> (scheme, OAEP hash), for symmetric key material
AWS_ALGORITHMS: Final = {
    "RSAES_OAEP_SHA_256": ("direct", "sha256"),
    "RSAES_OAEP_SHA_1": ("direct", "sha1"),
}
#: AWS algorithms that exist but that AWS documents for RSA/ECC key material only
AWS_NOT_FOR_SYMMETRIC: Final = ("RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1")
#: Vault transit hash_function values offered -> OAEP hash
VAULT_HASHES: Final = {"SHA256": "sha256", "SHA1": "sha1"}
#: GCP ImportMethod -> (scheme, OAEP hash, RSA bits)
GCP_METHODS: Final = {
    "RSA_OAEP_3072_SHA1_AES_256": ("rsa-aes", "sha1", 3072),
    "RSA_OAEP_4096_SHA1_AES_256": ("rsa-aes", "sha1", 4096),
    "RSA_OAEP_3072_SHA256_AES_256": ("rsa-aes", "sha256", 3072),  # GCP's recommendation
    "RSA_OAEP_4096_SHA256_AES_256": ("rsa-aes", "sha256", 4096),
    "RSA_OAEP_3072_SHA256": ("direct", "sha256", 3072),
    "RSA_OAEP_4096_SHA256": ("direct", "sha256", 4096),
}


class ByokError(KcmError, ValueError):
    """A BYOK export cannot be made (message says why and what to do)."""

    code = "byok"


@dataclass(frozen=True)
class ByokExport:
    """Files for one provider import (all public) and the validity window.

    Attributes:
        provider: ``aws`` | ``gcp`` | ``azure`` | ``vault``.
        method: the provider's wrapping algorithm / import method name.
        files: file name -> bytes to write to the medium.
        valid_until_utc: when the provider's wrapping key / import token / import job
            expires (``""`` if the provider sets none).
        record: public facts for the journal (hashes, ids, window, wrapping key fingerprint).
    """

    provider: str
    method: str
    files: dict[str, bytes]
    valid_until_utc: str
    record: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: datetime | None = None) -> bool:
        """True when the validity window has passed (the provider would refuse the import)."""
        if not self.valid_until_utc:
            return False
        until = datetime.strptime(self.valid_until_utc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) >= until


def validity_until(provider: str, start: datetime) -> str:
    """End of a provider's import window, to show *before* the export is made.

    Args:
        provider: ``aws`` (24 h from GetParametersForImport) or ``gcp`` (3 days from the
            import job's creation); ``azure`` and ``vault`` impose none (``""``).
        start: when the parameters were obtained / the import job was created.
    """
    if provider == "aws":
        return _ts(start + AWS_VALIDITY)
    if provider == "gcp":
        return _ts(start + GCP_VALIDITY)
    if provider in ("azure", "vault"):
        return ""
    raise ByokError(f"unknown provider {provider!r}")


def _hash(name: str) -> hashes.HashAlgorithm:
    if name == "sha256":
        return hashes.SHA256()
    if name == "sha1":
        return hashes.SHA1()
    raise ByokError(f"unknown OAEP hash {name!r}")


def _oaep(name: str) -> padding.OAEP:
    h = _hash(name)
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_wrapping_key(data: bytes, *, min_bits: int = MIN_RSA_BITS) -> rsa.RSAPublicKey:
    """Parse a provider's wrapping public key (PEM, DER, JWK) and check it.

    Raises:
        ByokError: private key, wrong type, too small or malformed (with the reason).
    """
    try:
        key = parse_public_key(data)
    except (PrivateKeySupplied, WrongKeyType, MalformedKey) as exc:
        raise ByokError(f"wrapping key refused: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ByokError("wrapping key refused: providers' wrapping keys are RSA keys")
    if key.key_size < min_bits:
        raise ByokError(
            f"wrapping key refused: RSA-{key.key_size} is under RSA-{min_bits}; download a "
            f"3072- or 4096-bit wrapping key from the provider"
        )
    if key.public_numbers().e != 65537:
        raise ByokError(f"wrapping key refused: public exponent {key.public_numbers().e}")
    return key


def _spki_sha256(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _metadata(
    provider: str,
    method: str,
    scheme: str,
    oaep_hash: str,
    key: rsa.RSAPublicKey,
    *,
    destination: dict[str, str],
    window_start_utc: str,
    valid_until_utc: str,
    files: dict[str, bytes],
    command: str,
    masterkey_fingerprint: str,
    target_length: int,
) -> dict[str, Any]:
    """The public record of one export: the metadata file's content and the journal entry."""
    if masterkey_fingerprint and len(masterkey_fingerprint) != 64:
        raise ByokError("masterkey_fingerprint must be 64 hex digits")
    return {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "provider": provider,
        "method": method,
        "scheme": "rsa-aes-key-wrap" if scheme == "rsa-aes" else "rsa-oaep",
        "oaep_hash": oaep_hash,
        "target": {
            "kind": "masterkey",
            "length": target_length,
            "masterkey_fingerprint": masterkey_fingerprint,
            "kcv": masterkey_fingerprint[:16],
        },
        "destination": destination,
        "wrapping_key": {"sha256": _spki_sha256(key), "bits": key.key_size},
        "window_start_utc": window_start_utc,
        "valid_until_utc": valid_until_utc,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "command": command,
        "generator": GENERATOR,
    }


def _with_metadata(provider: str, files: dict[str, bytes], record: dict[str, Any]) -> dict[str, bytes]:
    out = dict(files)
    out[f"{provider}-import.json"] = (
        json.dumps(record, indent=2, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\n"
    )
    return out


def rsa_aes_key_wrap(
    target: memoryview,
    wrapping_key: rsa.RSAPublicKey,
    oaep_hash: str,
    *,
    allow_unlocked: bool = False,
) -> bytes:
    """CKM_RSA_AES_KEY_WRAP: ``RSA-OAEP(ephemeral AES-256 key) || AES-KWP(target)``.

    Args:
        target: the key to export (memoryview of locked memory; read, never copied).
        wrapping_key: provider's RSA public key.
        oaep_hash: ``sha256`` or ``sha1`` (OAEP and MGF1 hash).
        allow_unlocked: demo keyholders only.

    Returns:
        The blob (``len = modulus bytes + 8 * ceil(len(target)/8) + 8``).
    """
    with secmem.SecretBuffer(32, allow_unlocked=allow_unlocked) as ephemeral:
        ephemeral.fill_random()
        with ephemeral.view() as kek:
            wrapped_target = aes_key_wrap_with_padding(kek, target)
            # bytes copy of the ephemeral AES key only, zeroed after the call.
            with transient_bytes(kek) as kek_bytes:
                rsa_part = wrapping_key.encrypt(kek_bytes, _oaep(oaep_hash))
    return rsa_part + wrapped_target


def rsa_oaep_direct(target: memoryview, wrapping_key: rsa.RSAPublicKey, oaep_hash: str) -> bytes:
    """RSAES-OAEP of the target itself (AWS ``RSAES_OAEP_SHA_*``, GCP ``RSA_OAEP_*_SHA256``).

    RESIDUE: ``cryptography`` takes only ``bytes``, so this makes a bytes copy of the target
    (the MasterKey) for the duration of the one ``encrypt`` call and zeroes it in place
    right after (see :mod:`core.crypto.transient`). Prefer :func:`rsa_aes_key_wrap`.
    """
    with transient_bytes(target) as target_bytes:
        return wrapping_key.encrypt(target_bytes, _oaep(oaep_hash))


def aws_import(
    target: memoryview,
    *,
    wrapping_key: bytes,
    import_token: bytes,
    wrapping_algorithm: str,
    key_id: str,
    parameters_obtained_utc: datetime,
    masterkey_fingerprint: str = "",
    allow_unlocked: bool = False,
) -> ByokExport:
    """AWS KMS ImportKeyMaterial files for a symmetric (SYMMETRIC_DEFAULT) KMS key.

    Args:
        target: the 32-byte key material.
        wrapping_key: the ``PublicKey`` from GetParametersForImport (DER; PEM also taken).
        import_token: the ``ImportToken`` (opaque; copied alongside unchanged).
        wrapping_algorithm: ``RSAES_OAEP_SHA_256`` (recommended) or ``RSAES_OAEP_SHA_1``;
            the ``RSA_AES_KEY_WRAP_SHA_*`` algorithms are refused: AWS documents them for RSA
            and ECC key material only.
        key_id: the KMS key ARN or id the parameters were obtained for.
        parameters_obtained_utc: when GetParametersForImport ran (valid 24 hours).
        masterkey_fingerprint: the MasterKey's fingerprint (hex), recorded in the metadata.
        allow_unlocked: unused (the direct OAEP methods need no ephemeral key); kept so the
            four providers take the same arguments.

    Returns:
        ``EncryptedKeyMaterial.bin``, ``ImportToken.bin`` and ``aws-import.json``.
    """
    if wrapping_algorithm in AWS_NOT_FOR_SYMMETRIC:
        raise ByokError(
            f"AWS accepts {wrapping_algorithm} for RSA and ECC key material only; a 256-bit "
            "symmetric key is imported with RSAES_OAEP_SHA_256 (or RSAES_OAEP_SHA_1): download "
            "new import parameters with that wrapping algorithm"
        )
    if wrapping_algorithm not in AWS_ALGORITHMS:
        raise ByokError(
            f"AWS wrapping algorithm {wrapping_algorithm!r} is not supported; use one of "
            + ", ".join(AWS_ALGORITHMS)
        )
    if not import_token:
        raise ByokError(
            "the AWS import token is empty: copy ImportToken from GetParametersForImport"
        )
    scheme, h = AWS_ALGORITHMS[wrapping_algorithm]
    key = load_wrapping_key(wrapping_key)
    blob = rsa_oaep_direct(target, key, h)
    until = validity_until("aws", parameters_obtained_utc)
    files = {"EncryptedKeyMaterial.bin": blob, "ImportToken.bin": bytes(import_token)}
    record = _metadata(
        "aws",
        wrapping_algorithm,
        scheme,
        h,
        key,
        destination={"key_id": key_id},
        window_start_utc=_ts(parameters_obtained_utc),
        valid_until_utc=until,
        files=files,
        command=(
            f"aws kms import-key-material --key-id {key_id} "
            "--encrypted-key-material fileb://EncryptedKeyMaterial.bin "
            "--import-token fileb://ImportToken.bin "
            "--expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE"
        ),
        masterkey_fingerprint=masterkey_fingerprint,
        target_length=target.nbytes,
    )
    return ByokExport("aws", wrapping_algorithm, _with_metadata("aws", files, record), until, record)


def gcp_import(
    target: memoryview,
    *,
    wrapping_key: bytes,
    import_method: str,
    import_job: str,
    key_name: str,
    job_created_utc: datetime,
    masterkey_fingerprint: str = "",
    allow_unlocked: bool = False,
) -> ByokExport:
    """GCP Cloud KMS import job files.

    Args:
        target: the key to import (32 bytes for ``GOOGLE_SYMMETRIC_ENCRYPTION``).
        wrapping_key: the import job's ``publicKey.pem``.
        import_method: one of :data:`GCP_METHODS` (``RSA_OAEP_3072_SHA256_AES_256`` is
            Google's recommendation).
        import_job: the import job resource name.
        key_name: the target CryptoKey resource name.
        job_created_utc: the import job's create time (it expires 3 days later).
        masterkey_fingerprint: the MasterKey's fingerprint (hex), recorded in the metadata.

    Returns:
        ``wrapped-key.bin`` and ``gcp-import.json``.
    """
    if import_method not in GCP_METHODS:
        raise ByokError(
            f"GCP import method {import_method!r} is not supported; use one of "
            + ", ".join(GCP_METHODS)
        )
    scheme, h, bits = GCP_METHODS[import_method]
    key = load_wrapping_key(wrapping_key)
    if key.key_size != bits:
        raise ByokError(
            f"the import job's key is RSA-{key.key_size} but {import_method} needs RSA-{bits}: "
            "wrong wrapping key or wrong import method"
        )
    if scheme == "direct":
        blob = rsa_oaep_direct(target, key, h)
    else:
        blob = rsa_aes_key_wrap(target, key, h, allow_unlocked=allow_unlocked)
    until = validity_until("gcp", job_created_utc)
    files = {"wrapped-key.bin": blob}
    record = _metadata(
        "gcp",
        import_method,
        scheme,
        h,
        key,
        destination={"import_job": import_job, "key": key_name},
        window_start_utc=_ts(job_created_utc),
        valid_until_utc=until,
        files=files,
        command=(
            f"gcloud kms keys versions import --import-job {import_job} --key {key_name} "
            "--algorithm google-symmetric-encryption --wrapped-key-file wrapped-key.bin"
        ),
        masterkey_fingerprint=masterkey_fingerprint,
        target_length=target.nbytes,
    )
    return ByokExport("gcp", import_method, _with_metadata("gcp", files, record), until, record)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def azure_byok(
    target: memoryview,
    *,
    kek: bytes,
    kek_kid: str,
    file_name: str = "masterkey.byok",
    masterkey_fingerprint: str = "",
    allow_unlocked: bool = False,
) -> ByokExport:
    """Azure Key Vault / Managed HSM ``.byok`` file.

    ``{"schema_version":"1.0.0","header":{"kid":KEK_KID,"alg":"dir",
    "enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":BASE64URL(blob),"generator":...}``; the RSA
    step is OAEP with SHA-1 (Azure's BYOK specification). AES target keys import only into
    Managed HSM (``az keyvault key import --hsm-name ... --byok-file ...``).

    Args:
        target: the key to import.
        kek: the KEK public key (PEM from ``az keyvault key download``).
        kek_kid: the KEK's full key identifier (``https://.../keys/NAME/VERSION``).
        file_name: name of the ``.byok`` file.
        masterkey_fingerprint: the MasterKey's fingerprint (hex), recorded in the metadata.

    Returns:
        the ``.byok`` file and ``azure-import.json``.
    """
    if not kek_kid.startswith("https://") or any(c in kek_kid for c in '"\\<>& '):
        raise ByokError("the KEK kid must be the full https://.../keys/NAME/VERSION identifier")
    if not file_name.endswith(".byok") or "/" in file_name or file_name.startswith("."):
        raise ByokError("an Azure BYOK file name must end in .byok (no folders)")
    key = load_wrapping_key(kek)
    blob = rsa_aes_key_wrap(target, key, "sha1", allow_unlocked=allow_unlocked)
    doc = {
        "schema_version": "1.0.0",
        "header": {"kid": kek_kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": _b64url(blob),
        "generator": GENERATOR,
    }
    files = {file_name: json.dumps(doc, separators=(",", ":")).encode("ascii")}
    record = _metadata(
        "azure",
        "CKM_RSA_AES_KEY_WRAP",
        "rsa-aes",
        "sha1",
        key,
        destination={"kek_kid": kek_kid},
        window_start_utc="",
        valid_until_utc="",
        files=files,
        command=(
            "az keyvault key import --hsm-name HSM_NAME --name KEY_NAME "
            f"--byok-file {file_name}   (AES keys: Managed HSM only; the KEK has key_ops=import)"
        ),
        masterkey_fingerprint=masterkey_fingerprint,
        target_length=target.nbytes,
    )
    return ByokExport(
        "azure", "CKM_RSA_AES_KEY_WRAP", _with_metadata("azure", files, record), "", record
    )


def vault_transit_import(
    target: memoryview,
    *,
    wrapping_key: bytes,
    key_name: str,
    hash_function: str = "SHA256",
    key_type: str = "aes256-gcm96",
    masterkey_fingerprint: str = "",
    allow_unlocked: bool = False,
) -> ByokExport:
    """Vault / OpenBao transit import (``POST transit/keys/NAME/import``).

    Args:
        target: the key to import.
        wrapping_key: PEM from ``vault read transit/wrapping_key`` (RSA-4096; any other size
            is refused: it is not a transit wrapping key).
        key_name: the transit key name.
        hash_function: ``SHA256`` (Vault's default) or ``SHA1`` (OAEP hash).
        key_type: transit key type for the request body (``aes256-gcm96`` for a 256-bit key).
        masterkey_fingerprint: the MasterKey's fingerprint (hex), recorded in the metadata.

    Returns:
        ``vault-transit-import.b64`` (standard base64 of the blob),
        ``vault-transit-import.json`` (the request body) and ``vault-import.json``.
    """
    if hash_function not in VAULT_HASHES:
        raise ByokError("hash_function must be SHA256 (Vault's default) or SHA1")
    if key_type != "aes256-gcm96":
        raise ByokError("a 256-bit MasterKey is imported into transit as type aes256-gcm96")
    if not all(c.isalnum() or c in "-_." for c in key_name) or not key_name:
        raise ByokError("the transit key name may use letters, digits, '-', '_' and '.' only")
    key = load_wrapping_key(wrapping_key)
    if key.key_size != VAULT_WRAPPING_BITS:
        raise ByokError(
            f"the wrapping key is RSA-{key.key_size}; Vault's transit/wrapping_key is RSA-4096: "
            "read it again with 'vault read transit/wrapping_key'"
        )
    h = VAULT_HASHES[hash_function]
    blob = rsa_aes_key_wrap(target, key, h, allow_unlocked=allow_unlocked)
    b64 = base64.b64encode(blob).decode("ascii")
    body = {
        "ciphertext": b64,
        "hash_function": hash_function,
        "type": key_type,
        "exportable": False,
    }
    files = {
        "vault-transit-import.b64": b64.encode("ascii") + b"\n",
        "vault-transit-import.json": json.dumps(body, indent=2, sort_keys=True).encode() + b"\n",
    }
    record = _metadata(
        "vault",
        f"CKM_RSA_AES_KEY_WRAP/{hash_function}",
        "rsa-aes",
        h,
        key,
        destination={"key_name": key_name, "type": key_type},
        window_start_utc="",
        valid_until_utc="",
        files=files,
        command=f"vault write transit/keys/{key_name}/import @vault-transit-import.json",
        masterkey_fingerprint=masterkey_fingerprint,
        target_length=target.nbytes,
    )
    return ByokExport(
        "vault", f"CKM_RSA_AES_KEY_WRAP/{hash_function}", _with_metadata("vault", files, record),
        "", record,
    )  # fmt: skip
