"""Shares on smart cards through PKCS#11 (python-pkcs11).

Card format ("openkcm-card-share/1"), written at genesis and read at recovery:

* an RSA key pair on the card (generated on the card, private key sensitive and
  non-extractable, or an existing key chosen by its CKA_ID);
* the share (its word indices, 2 bytes each, big-endian) encrypted with AES-256-GCM under a
  fresh data key; the data key encrypted with RSA-OAEP to the card key (SHA-256 where the
  card supports it, else SHA-1: SoftHSM 2.6 refuses OAEP-SHA-256 with CKR_ARGUMENTS_BAD);
* all of it in a small public JSON document (the *sealed share*), stored as a private,
  non-modifiable CKO_DATA object (label ``openkcm-share``, application
  ``openkcm-ceremony``) on cards that can hold one, and always returned to the caller to be
  written to media as a file (YubiKey PIV cannot hold free data objects).

At recovery the data key is decrypted *on the card* after PIN login and the share is
decrypted into locked memory with ``AESGCM.decrypt_into``.

Residues that cannot be avoided (all inside the keyholder, which exits at the end):

* the PIN: python-pkcs11 takes a ``str`` and encodes it to ``bytes``;
* the 32-byte data key: ``RSAPublicKey.encrypt`` takes ``bytes`` at genesis, and the card's
  C_Decrypt result comes back as ``bytes`` at recovery (copied into locked memory at once).
  Both copies are zeroed in place right after use (:mod:`core.crypto.transient`).
  The share itself never exists as ``bytes``: AES-GCM reads and writes memoryviews.

Every PKCS#11 error is mapped to a :class:`~core.carriers.errors.CardError` subclass whose
message says what to do; nothing the ceremony has done so far is lost.
"""

from __future__ import annotations

from core.carriers.pkcs11.keys import (  # noqa: F401
    CardKey,
    _fingerprint,
    _oaep,
    _probe_oaep,
    _public_key,
    provision_key,
)
from core.carriers.pkcs11.shares import (  # noqa: F401
    CardReadResult,
    CardWriteResult,
    _aad,
    _b64,
    _share_objects,
    _share_view,
    _unseal_on_card,
    parse_sealed,
    read_share,
    seal_share,
    write_share,
)
from core.carriers.pkcs11.tokens import (  # noqa: F401
    _MECH,
    _NO_DATA_OBJECTS,
    _OAEP,
    _REMOVED,
    APPLICATION,
    BLOB_FORMAT,
    DEFAULT_MODULES,
    KEY_LABEL,
    OBJECT_LABEL,
    Alloc,
    TokenInfo,
    _alloc,
    _find,
    _fresh_flags,
    _info,
    _lib_fds,
    _libs,
    _libs_lock,
    _mapped,
    _pin_state,
    _raise_mapped,
    _serial_str,
    _session,
    _tokens,
    list_tokens,
    load_module,
    open_sessions,
    rescan,
)

__all__ = [
    "APPLICATION",
    "BLOB_FORMAT",
    "DEFAULT_MODULES",
    "OBJECT_LABEL",
    "CardKey",
    "CardReadResult",
    "CardWriteResult",
    "TokenInfo",
    "list_tokens",
    "load_module",
    "provision_key",
    "read_share",
    "rescan",
    "write_share",
]
