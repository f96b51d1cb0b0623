"""Recipients: the public keys a secret is sealed to, read from media and checked.

A recipient is a KMS/HSM key or a custodian's key: its *kind* fixes which key types,
sizes and wrapping algorithm are acceptable. Public keys arrive as PEM, DER, JWK, an
OpenSSH ``ssh-rsa`` line, an age ``age1...`` X25519 recipient, or are read from a PKCS#11
token. Everything here is public data; this module runs in the ceremony process.

Every recipient has a fingerprint: SHA-256 of the DER SubjectPublicKeyInfo (RSA), or of
the ASCII ``age1...`` recipient string (X25519), or of ``ssh-ed25519 <base64>`` (no comment)
for an OpenSSH Ed25519 custodian key (sealed with age's ssh-ed25519 stanza). It is shown as hex and as words, and a
named witness confirms it against an out-of-band copy (:func:`confirm`); sealing to an
unconfirmed recipient is refused (:func:`require_confirmed`). A fingerprint written in the
recipients file is *not* a confirmation: it came in on the same medium as the key.

A private key supplied where a public key belongs is refused with
:class:`PrivateKeySupplied`; its text is never echoed, logged or written anywhere, and the
buffer it was read into is overwritten before the error is raised.
"""

from __future__ import annotations

from core.seal.recipients.confirm import (  # noqa: F401
    _normalise_fp,
    confirm,
    confirmation_matches,
    require_confirmed,
)
from core.seal.recipients.errors import (
    FingerprintMismatch,
    MalformedKey,
    PrivateKeySupplied,
    RecipientError,
    SymmetricKeySupplied,
    UnconfirmedRecipient,
    WeakKey,
    WrongKeyType,
)
from core.seal.recipients.keyfiles import (  # noqa: F401
    _OCT_RE,
    _PRIVATE_RE,
    _SYMMETRIC_MESSAGE,
    _b64url_int,
    _looks_like_der_private,
    _parse_jwk,
    _reason,
    _typed,
    _wipe,
    load_recipients_file,
    parse_public_key,
    read_key_file,
    read_pkcs11_public_key,
)
from core.seal.recipients.model import (  # noqa: F401
    _DEFAULT_ALG,
    _VENDOR_ALGS,
    ALG_AGE,
    ALG_AGE_SSH,
    ALG_OAEP_256,
    ALG_OAEP_SHA1,
    MAX_KEY_FILE,
    MIN_RSA_BITS,
    RSA_KINDS,
    SAFE_TEXT,
    Confirmation,
    Recipient,
    RecipientKind,
    _as_rsa,
    _check_rsa,
    _check_text,
    recipient_from_key,
)

__all__ = [
    "ALG_AGE",
    "ALG_AGE_SSH",
    "ALG_OAEP_256",
    "ALG_OAEP_SHA1",
    "MIN_RSA_BITS",
    "SAFE_TEXT",
    "Confirmation",
    "FingerprintMismatch",
    "MalformedKey",
    "PrivateKeySupplied",
    "Recipient",
    "RecipientError",
    "RecipientKind",
    "SymmetricKeySupplied",
    "UnconfirmedRecipient",
    "WeakKey",
    "WrongKeyType",
    "confirm",
    "confirmation_matches",
    "load_recipients_file",
    "parse_public_key",
    "read_pkcs11_public_key",
    "recipient_from_key",
    "require_confirmed",
]
