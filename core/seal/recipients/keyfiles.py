"""Reading recipients' public keys: PEM, DER, JWK, age and OpenSSH files (private and
symmetric keys refused without echoing them), PKCS#11 public keys, and recipients files."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from core import safeio as _safeio
from core.seal import age as _age
from core.seal.recipients.errors import (
    FingerprintMismatch,
    MalformedKey,
    PrivateKeySupplied,
    RecipientError,
    SymmetricKeySupplied,
    WrongKeyType,
)
from core.seal.recipients.model import (
    MAX_KEY_FILE,
    Recipient,
    RecipientKind,
    _as_rsa,
    recipient_from_key,
)


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))

#: A JSON Web Key of type ``oct``: a symmetric secret key (``"k"`` is the key itself).
_OCT_RE = re.compile(rb'"kty"\s*:\s*"oct"')

_SYMMETRIC_MESSAGE = (
    "this JWK is a symmetric (kty oct) SECRET key, not a public key: a secret is sealed to "
    "a public key (RSA 3072+ or X25519), never to a shared secret. The file was not copied "
    "anywhere; remove the medium and bring the recipient's public key."
)

_PRIVATE_RE = re.compile(
    rb'(?i)PRIVATE KEY-----|AGE-SECRET-KEY-|PuTTY-User-Key-File|"(?:d|p|q|dp|dq|qi|k)"\s*:'
)

def _looks_like_der_private(data: bytes | bytearray) -> bool:
    """True for DER that starts like a private key: SEQUENCE { INTEGER 0|1, ... }.

    PKCS#8 PrivateKeyInfo, PKCS#1 RSAPrivateKey and SEC1 ECPrivateKey all open with a small
    version INTEGER; public encodings (SPKI, certificates, PKCS#1 RSAPublicKey) do not.
    """
    if len(data) < 8 or data[0] != 0x30:
        return False
    pos = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    return data[pos : pos + 2] == b"\x02\x01" and data[pos + 2] in (0, 1)

def parse_public_key(data: bytes | bytearray) -> rsa.RSAPublicKey | x25519.X25519PublicKey | str:
    """Parse a public key in any supported encoding.

    Supported: PEM (``PUBLIC KEY``, ``RSA PUBLIC KEY``, ``CERTIFICATE``), DER (SPKI or
    certificate), JWK (``kty`` RSA or OKP/X25519, or a JWKS with one key), OpenSSH
    ``ssh-rsa`` / ``ssh-ed25519``, age ``age1...``.

    Returns:
        An RSA or X25519 public key object, or the age recipient string.

    Raises:
        PrivateKeySupplied: private key material (never echoed).
        WrongKeyType: a parseable key of an unusable type (EC, Ed25519, DSA...).
        MalformedKey: nothing parses.
    """
    if len(data) > MAX_KEY_FILE:
        raise MalformedKey(
            f"{len(data)} bytes is too large for a public key (at most {MAX_KEY_FILE}): refused "
            "before parsing"
        )
    # Private-key checks run on the caller's buffer first, before any copy is made.
    if _OCT_RE.search(data):
        raise SymmetricKeySupplied(_SYMMETRIC_MESSAGE)
    if _PRIVATE_RE.search(data) or _looks_like_der_private(data):
        raise PrivateKeySupplied(
            "this file holds a PRIVATE key. Only public keys may be brought into the ceremony; "
            "the file was not copied anywhere. Remove the medium and bring the public key."
        )
    raw = bytes(data)
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        return _parse_jwk(stripped)
    if stripped.startswith(b"age1") or stripped.startswith(b"AGE1"):
        try:
            _age.decode_recipient(stripped.decode("ascii"))
        except (_age.AgeFormatError, UnicodeDecodeError) as exc:
            raise MalformedKey(f"age recipient refused: {exc}") from None
        return stripped.decode("ascii").lower()
    if stripped.startswith(b"ssh-ed25519 "):
        try:
            wire, _pub = _age.parse_ssh_ed25519(stripped.decode("ascii"))
        except (_age.AgeFormatError, UnicodeDecodeError) as exc:
            raise MalformedKey(f"OpenSSH public key refused: {exc}") from None
        return "ssh-ed25519 " + base64.b64encode(wire).decode("ascii")
    if stripped.startswith(b"ssh-") or stripped.startswith(b"ecdsa-"):
        if not stripped.startswith(b"ssh-rsa "):
            kind = stripped.split(b" ", 1)[0].decode("ascii", "replace")
            raise WrongKeyType(
                f"OpenSSH key type {kind} cannot be a seal recipient: use ssh-rsa (3072+ bits), "
                "ssh-ed25519 (custodians, via age) or an age X25519 recipient (age-keygen)"
            )
        try:
            return _as_rsa(serialization.load_ssh_public_key(stripped))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise MalformedKey(f"OpenSSH public key does not parse ({exc})") from None
    if stripped.startswith(b"-----BEGIN"):
        try:
            if b"CERTIFICATE" in stripped.split(b"\n", 1)[0]:
                key: object = x509.load_pem_x509_certificate(stripped).public_key()
            else:
                key = serialization.load_pem_public_key(stripped)
        except (ValueError, TypeError) as exc:
            raise MalformedKey(f"PEM public key does not parse ({exc})") from None
        return _typed(key)
    # DER: SPKI, PKCS#1 RSAPublicKey, or a certificate.
    try:
        return _typed(serialization.load_der_public_key(raw))
    except (ValueError, TypeError):
        pass
    try:
        return _typed(x509.load_der_x509_certificate(raw).public_key())
    except (ValueError, TypeError):
        pass
    raise MalformedKey(
        "not a public key in PEM, DER, JWK, OpenSSH or age encoding (file damaged or of "
        "another kind)"
    )

def _typed(key: object) -> rsa.RSAPublicKey | x25519.X25519PublicKey:
    if isinstance(key, (rsa.RSAPublicKey, x25519.X25519PublicKey)):
        return key
    kind = type(key).__name__.lstrip("_")
    for prefix, readable in (
        ("EC", "EC (elliptic curve)"),
        ("Ed25519", "Ed25519 (signing-only)"),
        ("Ed448", "Ed448 (signing-only)"),
        ("DSA", "DSA"),
        ("X448", "X448"),
    ):
        if kind.startswith(prefix):
            kind = readable
            break
    raise WrongKeyType(f"{kind} keys cannot be seal recipients: use RSA (3072+ bits) or X25519")

def _b64url_int(value: object, what: str) -> int:
    if not isinstance(value, str) or not value:
        raise MalformedKey(f"JWK member {what!r} is missing or not a string")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise MalformedKey(f"JWK member {what!r} is not base64url") from None
    return int.from_bytes(raw, "big")  # public data (modulus / exponent)

def _parse_jwk(text: bytes) -> rsa.RSAPublicKey | x25519.X25519PublicKey:
    try:
        jwk = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedKey(f"JWK is not valid JSON ({exc.__class__.__name__})") from None
    if isinstance(jwk, dict) and "keys" in jwk:
        keys = jwk["keys"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise MalformedKey("a JWK set must hold exactly one key to be used as a recipient")
        jwk = keys[0]
    if not isinstance(jwk, dict):
        raise MalformedKey("JWK must be a JSON object")
    if jwk.get("kty") == "oct" or "k" in jwk:
        raise SymmetricKeySupplied(_SYMMETRIC_MESSAGE)
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi")):
        raise PrivateKeySupplied(
            "this JWK holds PRIVATE key members. Only public keys may be brought into the "
            "ceremony; the file was not copied anywhere."
        )
    kty = jwk.get("kty")
    if kty in ("RSA", "RSA-HSM"):
        n = _b64url_int(jwk.get("n"), "n")
        e = _b64url_int(jwk.get("e"), "e")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise MalformedKey(f"JWK RSA numbers are invalid ({exc})") from None
    if kty == "OKP" and jwk.get("crv") == "X25519":
        x = jwk.get("x")
        if not isinstance(x, str):
            raise MalformedKey("JWK member 'x' is missing")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            return x25519.X25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise MalformedKey("JWK X25519 'x' is not a 32-byte base64url value") from None
    raise WrongKeyType(
        f"JWK key type {kty!r}{' ' + str(jwk.get('crv')) if jwk.get('crv') else ''} cannot be a "
        "seal recipient: use RSA (3072+ bits) or OKP/X25519"
    )

def read_key_file(path: Path) -> rsa.RSAPublicKey | x25519.X25519PublicKey | str:
    """Read and parse a public key file brought in on media.

    The file is opened without following a link (``O_NOFOLLOW``), must be a plain file and
    no larger than :data:`MAX_KEY_FILE` (checked with ``fstat`` before a byte is read; the
    read is bounded too). The bytes are read into a bytearray that is overwritten before
    returning (also when the file turns out to hold a private key).
    """
    try:
        folder = _safeio.Dir.open_root(path.parent)
    except (_safeio.SafeIOError, OSError) as exc:
        raise MalformedKey(f"cannot read {path.name}: {_reason(exc)}") from None
    buf = bytearray()
    try:
        with folder, folder.open_file(path.name, limit=MAX_KEY_FILE) as fd:
            buf = bytearray(os.fstat(fd).st_size)
            n = os.readv(fd, [buf])
            if os.read(fd, 1):
                raise _safeio.TooLarge(f"{path.name} grew while it was read: refused")
        del buf[n:]
        return parse_public_key(buf)
    except (_safeio.SafeIOError, OSError) as exc:
        raise MalformedKey(f"cannot read {path.name}: {_reason(exc)}") from None
    finally:
        _wipe(buf)

def _reason(exc: BaseException) -> str:
    if isinstance(exc, _safeio.SafeIOError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__

def read_pkcs11_public_key(
    module: str, token_label: str, key_label: str, pin: str | None = None
) -> rsa.RSAPublicKey:
    """Read the public part of an RSA key from a PKCS#11 token.

    Args:
        module: the PKCS#11 module's NAME (``opensc``, ``ykcs11``, ``softhsm2``; see
            :mod:`core.carriers.modules`). A path is refused: a recipients file comes in
            on a medium, and a library named by it would run in this process.
        token_label: token label.
        key_label: ``CKA_LABEL`` of the key pair.
        pin: user PIN if the token hides public objects until login (most do not).

    Raises:
        RecipientError: module refused, token or key not found (with the reason).
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    from core.carriers import modules as _modules
    from core.carriers import pkcs11 as _cards
    from core.carriers.errors import CardModuleError

    try:
        path = _modules.resolve([module]).get(module)
    except _modules.ModuleRefused:
        path = None
    if path is None:
        raise RecipientError(
            f"PKCS#11 module {module!r} refused: name an installed module "
            f"({_modules.describe_names()}), never a path"
        )
    try:
        lib = _cards.load_module(path)
    except CardModuleError as exc:
        raise RecipientError(str(exc)) from None
    try:
        token = lib.get_token(token_label=token_label)
    except (pkcs11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
        raise RecipientError(
            f"PKCS#11 token {token_label!r} not found via {module} ({type(exc).__name__}): is the "
            "token inserted and the module right?"
        ) from None
    try:
        with token.open(user_pin=pin) as session:
            key = session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, label=key_label
            )
            n = int.from_bytes(key[Attribute.MODULUS], "big")
            e = int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big")
    except pkcs11.exceptions.NoSuchKey:
        raise RecipientError(
            f"no RSA public key labelled {key_label!r} on token {token_label!r}"
        ) from None
    except pkcs11.exceptions.MultipleObjectsReturned:
        raise RecipientError(
            f"several RSA public keys labelled {key_label!r} on token {token_label!r}"
        ) from None
    except pkcs11.exceptions.PKCS11Error as exc:
        raise RecipientError(
            f"reading {key_label!r} from token {token_label!r} failed ({type(exc).__name__})"
        ) from None
    return rsa.RSAPublicNumbers(e, n).public_key()

def load_recipients_file(path: Path | str) -> list[Recipient]:
    """Load a recipients file (TOML) and every key it names.

    Format::

        [[recipient]]
        name = "aws-eu-central-1"
        kind = "aws-kms"                  # see RecipientKind
        key_id = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-..."
        key_version = "1"                 # optional
        algorithm = "RSAES_OAEP_SHA_256"  # optional, checked against the kind
        public_key = "aws-eu-central-1.pem"   # relative to this file
        # or, for kind = "pkcs11-hsm" (module: opensc | ykcs11 | softhsm2, never a path):
        # pkcs11 = { module = "opensc", token_label = "...", key_label = "..." }
        # or, for kind = "custodian-age":
        # age_recipient = "age1..."

    Raises:
        RecipientError: the first problem found, naming the recipient.
    """
    path = Path(path)
    try:
        # the same cap and checks as every key file: it comes on a medium
        with _safeio.Dir.open_root(path.parent) as folder:
            text = folder.read(path.name, limit=MAX_KEY_FILE).decode("utf-8")
        doc = tomllib.loads(text)
    except _safeio.SafeIOError as exc:
        raise RecipientError(f"recipients file refused: {exc.message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientError(f"cannot read recipients file {path.name}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipientError(f"recipients file {path.name} is not valid TOML: {exc}") from None
    entries = doc.get("recipient")
    if not isinstance(entries, list) or not entries:
        raise RecipientError(f"{path.name} has no [[recipient]] entries")
    out: list[Recipient] = []
    names: set[str] = set()
    for i, entry in enumerate(entries, 1):
        label = str(entry.get("name", f"#{i}"))
        try:
            kind = RecipientKind(str(entry.get("kind", "")))
        except ValueError:
            raise RecipientError(
                f"recipient {label}: unknown kind {entry.get('kind')!r}; expected one of "
                + ", ".join(k.value for k in RecipientKind)
            ) from None
        try:
            key: rsa.RSAPublicKey | x25519.X25519PublicKey | str
            if "pkcs11" in entry:
                p = entry["pkcs11"]
                key = read_pkcs11_public_key(
                    str(p["module"]), str(p["token_label"]), str(p["key_label"])
                )
            elif "age_recipient" in entry:
                key = str(entry["age_recipient"])
            elif "public_key" in entry:
                key = read_key_file(path.parent / str(entry["public_key"]))
            else:
                raise RecipientError("needs public_key, age_recipient or pkcs11")
            r = recipient_from_key(
                key,
                name=str(entry.get("name", "")),
                kind=kind,
                key_id=str(entry.get("key_id", "")),
                key_version=str(entry.get("key_version", "")),
                algorithm=str(entry.get("algorithm", "")),
            )
        except RecipientError as exc:
            raise type(exc)(f"recipient {label}: {exc}") from None
        if "fingerprint" in entry and str(entry["fingerprint"]).lower() != r.fingerprint_hex:
            raise FingerprintMismatch(
                f"recipient {label}: the fingerprint written in the file does not match its key"
            )
        if r.name in names:
            raise RecipientError(f"recipient name {r.name!r} appears twice")
        names.add(r.name)
        out.append(r)
    return out
