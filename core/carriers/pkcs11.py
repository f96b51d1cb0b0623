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

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Final, NoReturn

import pkcs11
import pkcs11.exceptions as p11e
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.constants import SlotFlag, TokenFlag

from core import strictjson
from core.carriers import modules as _modules
from core.carriers.errors import (
    CardDataMissing,
    CardError,
    CardFull,
    CardMechanismUnsupported,
    CardModuleError,
    CardNoReader,
    CardNoToken,
    CardPinIncorrect,
    CardPinLocked,
    CardRemoved,
    CardVerifyFailed,
    WrongCard,
)
from core.crypto.transient import transient_bytes, wipe_bytes
from core.secmem import SecretBuffer, ct_equal, is_utf8

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

#: Where the named modules are installed here (name -> path; see core.carriers.modules).
DEFAULT_MODULES: Final = {
    name: _modules.resolve([name]).get(name, paths[0]) for name, paths in _modules.MODULES.items()
}
OBJECT_LABEL: Final = "openkcm-share"
APPLICATION: Final = "openkcm-ceremony"
KEY_LABEL: Final = "openkcm-share-key"
BLOB_FORMAT: Final = "openkcm-card-share/1"
_OAEP: Final = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, hashes.SHA256),
    "sha1": (Mechanism.SHA_1, MGF.SHA1, hashes.SHA1),
}

Alloc = Callable[[int], SecretBuffer]


def _alloc(size: int) -> SecretBuffer:
    return SecretBuffer(size)


# --- error mapping ------------------------------------------------------------------------

#: Errors that mean the card (or reader) went away under us. A token deleted mid-session
#: on SoftHSM gives ObjectHandleInvalid, GeneralError, NoSuchToken, ... (FINDINGS 4).
_REMOVED: Final = (
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
    p11e.GeneralError,
    p11e.NoSuchToken,
    p11e.DeviceError,
    p11e.SlotIDInvalid,
    p11e.TokenNotRecognised,
)
_MECH: Final = (p11e.MechanismInvalid, p11e.MechanismParamInvalid, p11e.ArgumentsBad)
#: Errors of C_CreateObject that mean "this card does not take free data objects".
_NO_DATA_OBJECTS: Final = (
    p11e.FunctionNotSupported,
    p11e.TemplateInconsistent,
    p11e.TemplateIncomplete,
    p11e.AttributeValueInvalid,
    p11e.AttributeTypeInvalid,
)


def _serial_str(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return str(raw).strip()


def _pin_state(flags: int) -> str:
    if flags & TokenFlag.USER_PIN_LOCKED:
        return "locked"
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return "final-try"
    if flags & TokenFlag.USER_PIN_COUNT_LOW:
        return "count-low"
    return "ok"


def _raise_mapped(exc: Exception, what: str, serial: str, flags: int | None) -> NoReturn:
    card = f"card {serial}" if serial else "the card"
    if isinstance(exc, p11e.PinIncorrect):
        state = _pin_state(flags or 0)
        if state == "locked":
            raise CardPinLocked(
                f"wrong PIN, and {card} has now blocked its PIN. Its custodian must unblock it "
                "with the PUK/SO PIN (outside this ceremony) or use the sealed share file "
                "with another recovery path."
            ) from None
        tries = {
            "final-try": " This was the second-to-last try: ONE try remains before the PIN "
            "is blocked.",
            "count-low": " The card reports few tries left.",
        }.get(state, "")
        raise CardPinIncorrect(
            f"wrong PIN for {card}.{tries} Check the PIN with its custodian and try again."
        ) from None
    if isinstance(exc, p11e.PinLocked):
        raise CardPinLocked(
            f"the PIN of {card} is blocked. Its custodian must unblock it with the PUK/SO PIN; "
            "continue with the other custodians meanwhile."
        ) from None
    if isinstance(exc, (p11e.PinLenRange, p11e.PinInvalid)):
        raise CardPinIncorrect(
            f"{card} rejects this PIN's length or characters; check it and try again"
        ) from None
    if isinstance(exc, p11e.PinExpired):
        raise CardPinLocked(
            f"the PIN of {card} has expired; its custodian must change it"
        ) from None
    if isinstance(exc, (p11e.DeviceMemory, p11e.HostMemory)) and what.startswith("store"):
        raise CardFull(
            f"{card} has no room for the share object (token full). Free space with the "
            "card's tool, use another card, or keep the share only in the sealed file."
        ) from None
    if isinstance(exc, _MECH):
        raise CardMechanismUnsupported(
            f"{card} does not support the mechanism needed to {what} "
            f"({type(exc).__name__}); use a card that supports RSA-OAEP"
        ) from None
    if isinstance(exc, (p11e.TokenWriteProtected, p11e.SessionReadOnly)):
        raise CardError(f"{card} is write-protected; cannot {what}") from None
    if isinstance(exc, p11e.UserAlreadyLoggedIn):
        raise CardRemoved(
            f"{card} is in a stale state (an earlier session is still logged in). Remove "
            "and reinsert it, then try again."
        ) from None
    if isinstance(exc, _REMOVED):
        raise CardRemoved(
            f"{card} was removed or stopped answering while trying to {what} "
            f"({type(exc).__name__}). Reinsert it and try again; the ceremony's progress "
            "is kept."
        ) from None
    if isinstance(exc, p11e.FunctionCancelled):
        raise CardError(f"PIN entry on the reader was cancelled ({card}); try again") from None
    raise CardError(
        f"{card}: cannot {what} ({type(exc).__name__}). Try again, or another card."
    ) from None


@contextmanager
def _mapped(what: str, serial: str = "", token: Any = None) -> Iterator[None]:
    try:
        yield
    except CardError:
        raise
    except p11e.PKCS11Error as exc:
        flags: int | None = None
        if token is not None and isinstance(exc, p11e.PinIncorrect):
            flags = _fresh_flags(token)
        _raise_mapped(exc, what, serial, flags)


def _fresh_flags(token: Any) -> int | None:
    """Re-read the token flags (after a failed login the PIN counters change)."""
    with suppress(Exception):
        return int(token.slot.get_token().flags)
    return None


# --- modules and tokens -------------------------------------------------------------------

_libs: dict[str, Any] = {}
_lib_fds: dict[str, int] = {}  # the descriptor each module was loaded from
_libs_lock = threading.Lock()


def load_module(path: str) -> Any:
    """Load (once per process) and initialise the PKCS#11 module at ``path``.

    The caller (the keyholder) has already checked that ``path`` is one of the modules it
    was started with. Here the file itself is checked (:func:`core.carriers.modules.open_module`:
    root-owned, not group/other-writable, on the root filesystem, folders too), opened once,
    and that very file is loaded through ``/proc/self/fd/N`` (kept open while loaded).

    Raises:
        CardModuleError: the file is missing, fails the checks, or is not a PKCS#11 module.
    """
    with _libs_lock:
        lib = _libs.get(path)
        if lib is not None:
            return lib
        try:
            opened = _modules.open_module(path)
        except _modules.ModuleRefused as exc:
            raise CardModuleError(str(exc)) from None
        try:
            lib = pkcs11.lib(opened.load_path)
        except (p11e.PKCS11Error, OSError, RuntimeError) as exc:
            os.close(opened.fd)
            raise CardModuleError(
                f"cannot load the PKCS#11 module {path} ({type(exc).__name__}); is pcscd running?"
            ) from None
        _libs[path] = lib
        _lib_fds[path] = opened.fd
        return lib


#: Sessions open right now in this process (a rescan must not pull them away).
_open_sessions = 0


def open_sessions() -> int:
    """How many card sessions this process has open right now."""
    return _open_sessions


def rescan(path: str) -> None:
    """Finalize and re-initialise a module so it sees tokens created since it was loaded.

    SoftHSM2 (and some other modules) read their tokens at C_Initialize only; real readers
    with pcscd report newly inserted cards without this. Refused while a card session of
    this process is open (C_Finalize would close it under its user). A module is always
    re-initialised, even on its first load here: python-pkcs11 keeps one initialised
    instance per library in a process, so another caller may have initialised it earlier
    (with another configuration) and ``load_module`` would hand back that instance.

    Raises:
        CardError: a card session is open.
        CardModuleError: the module cannot be loaded.
    """
    lib = load_module(path)
    with _libs_lock:
        if _open_sessions:
            raise CardError(
                f"a card operation is still running ({_open_sessions} session(s) open): "
                "rescan the readers when it has finished"
            )
        with _mapped("rescan the readers"):
            lib.reinitialize()


@dataclass(frozen=True)
class TokenInfo:
    """Public facts about a card in a reader.

    Attributes:
        slot_id: the reader slot.
        label: the token label.
        serial: the token serial (the card's identity in manifests).
        manufacturer: manufacturer id.
        model: token model.
        pin_pad: True when the reader has a PIN pad (protected authentication path).
        pin_state: "ok", "count-low", "final-try" or "locked".
        pin_to_be_changed: the card asks for a new PIN.
        initialized: the token has been initialised.
    """

    slot_id: int
    label: str
    serial: str
    manufacturer: str
    model: str
    pin_pad: bool
    pin_state: str
    pin_to_be_changed: bool
    initialized: bool

    def public(self) -> dict[str, Any]:
        """As a dict of public values (for the protocol and the journal)."""
        return asdict(self)


def _info(slot: Any, token: Any) -> TokenInfo:
    flags = int(token.flags)
    return TokenInfo(
        slot_id=int(slot.slot_id),
        label=str(token.label).strip(),
        serial=_serial_str(token.serial),
        manufacturer=str(token.manufacturer_id).strip(),
        model=str(token.model).strip(),
        pin_pad=bool(flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH),
        pin_state=_pin_state(flags),
        pin_to_be_changed=bool(flags & TokenFlag.USER_PIN_TO_BE_CHANGED),
        initialized=bool(flags & TokenFlag.TOKEN_INITIALIZED),
    )


def _tokens(lib: Any) -> list[tuple[Any, Any]]:
    with _mapped("list the readers"):
        slots = lib.get_slots()
    if not slots:
        raise CardNoReader(
            "no card reader found: plug in the reader (and check that pcscd is running), "
            "then try again"
        )
    found = []
    for slot in slots:
        if not int(slot.flags) & SlotFlag.TOKEN_PRESENT:
            continue
        try:
            token = slot.get_token()
        except (p11e.TokenNotPresent, p11e.TokenNotRecognised, p11e.DeviceRemoved):
            continue
        except p11e.PKCS11Error as exc:
            _raise_mapped(exc, "read the card in a reader", "", None)
        if not int(token.flags) & TokenFlag.TOKEN_INITIALIZED:
            continue
        found.append((slot, token))
    return found


def list_tokens(path: str) -> list[TokenInfo]:
    """List the initialised cards in all readers of a module.

    Raises:
        CardModuleError: the module cannot be loaded.
        CardNoReader: the module reports no reader at all.
    """
    lib = load_module(path)
    return [_info(slot, token) for slot, token in _tokens(lib)]


def _find(lib: Any, serial: str | None, expected: Collection[str] | None) -> tuple[Any, str]:
    tokens = _tokens(lib)
    if not tokens:
        raise CardNoToken("no card in any reader: insert the custodian's card and try again")
    if serial is None:
        candidates = [
            t for _s, t in tokens if expected is None or _serial_str(t.serial) in expected
        ]
        if len(candidates) == 1:
            return candidates[0], _serial_str(candidates[0].serial)
        if not candidates:
            seen = ", ".join(_serial_str(t.serial) for _s, t in tokens)
            raise WrongCard(
                f"the card(s) in the reader ({seen}) are not among this ceremony's cards; "
                "insert the custodian's card"
            )
        raise CardNoToken("several cards are inserted: choose one by its serial")
    for _slot, token in tokens:
        if _serial_str(token.serial) == serial:
            if expected is not None and serial not in expected:
                break
            return token, serial
    if expected is not None and any(_serial_str(t.serial) == serial for _s, t in tokens):
        raise WrongCard(
            f"card {serial} is not one of this ceremony's cards (expected one of: "
            f"{', '.join(sorted(expected))}); insert the custodian's card"
        )
    raise CardNoToken(f"card {serial} is not in any reader: insert it and try again")


@contextmanager
def _session(token: Any, serial: str, pin: memoryview | None, *, rw: bool) -> Iterator[Any]:
    """Open a session and log in (PIN pad when ``pin`` is None and the reader has one)."""
    if pin is None:
        if not int(token.flags) & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            raise CardPinIncorrect(f"card {serial} needs a PIN and the reader has no PIN pad")
        user_pin: Any = pkcs11.PROTECTED_AUTH
    else:
        # Checked without decoding: a UnicodeDecodeError would carry the whole PIN in its
        # ``object`` and stay reachable as the __context__ of the error we raise.
        if not is_utf8(pin):
            raise CardPinIncorrect("the PIN is not valid UTF-8 text: type it again")
        # Unavoidable residue: python-pkcs11 takes a str (see module docstring).
        user_pin = str(pin, "utf-8")
    global _open_sessions
    with _libs_lock:
        _open_sessions += 1
    try:
        with _mapped("log in", serial, token):
            session = token.open(rw=rw, user_pin=user_pin)
        del user_pin
        try:
            yield session
        finally:
            with suppress(Exception):
                session.close()
    finally:
        with _libs_lock:
            _open_sessions -= 1


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardKey:
    """The card key a share is encrypted to (public facts, recorded in the manifest).

    Attributes:
        serial: card serial.
        key_id: CKA_ID of the key pair, hex.
        fingerprint: SHA-256 of the public key's SubjectPublicKeyInfo (DER), hex.
        bits: modulus size.
        oaep_hash: "sha256" or "sha1" (the best the card decrypts with).
        notes: what fell back and why (public, for the journal).
    """

    serial: str
    key_id: str
    fingerprint: str
    bits: int
    oaep_hash: str
    notes: tuple[str, ...] = field(default=())

    def public(self) -> dict[str, Any]:
        """As a dict of public values."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def _public_key(session: Any, key_id: bytes) -> rsa.RSAPublicKey:
    pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, id=key_id)
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def _fingerprint(pk: rsa.RSAPublicKey) -> str:
    der = pk.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _oaep(name: str) -> padding.OAEP:
    h = _OAEP[name][2]
    return padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)


def _probe_oaep(session: Any, key_id: bytes, pk: rsa.RSAPublicKey) -> tuple[str, list[str]]:
    """Find the strongest OAEP hash the card decrypts with (a random, non-secret probe)."""
    priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, id=key_id)
    notes: list[str] = []
    probe = os.urandom(16)
    for name in ("sha256", "sha1"):
        ct = pk.encrypt(probe, _oaep(name))
        mech, mgf, _h = _OAEP[name]
        try:
            out = priv.decrypt(
                ct, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(mech, mgf, None)
            )
        except _MECH as exc:
            notes.append(
                f"card does not decrypt RSA-OAEP-{name.upper()} ({type(exc).__name__}); "
                "falling back"
            )
            continue
        if out == probe:
            if name != "sha256":
                notes.append(f"using RSA-OAEP-{name.upper()} (MGF1 with the same hash)")
            return name, notes
    raise CardMechanismUnsupported(
        "this card decrypts neither RSA-OAEP-SHA-256 nor RSA-OAEP-SHA-1; it cannot carry a "
        "share. Use another card."
    )


def provision_key(
    module: str,
    serial: str,
    pin: memoryview | None,
    *,
    bits: int = 3072,
    key_id: bytes | None = None,
    generate: bool = True,
) -> CardKey:
    """Generate (or choose) the card key a share will be encrypted to.

    Args:
        module: PKCS#11 module path.
        serial: the card's serial.
        pin: the user PIN (a view of a locked buffer), or None to use the reader's PIN pad.
        bits: RSA modulus size for a new key (2048 or 3072).
        key_id: CKA_ID for the new key (random 8 bytes if None), or of the existing key.
        generate: False to use an existing key pair with ``key_id``.

    Returns:
        The key's public facts, including which OAEP hash the card supports.
    """
    lib = load_module(module)
    token, serial = _find(lib, serial, None)
    kid = key_id or os.urandom(8)
    with _session(token, serial, pin, rw=True) as session:
        if generate:
            with _mapped("generate a key on the card", serial):
                session.generate_keypair(
                    KeyType.RSA,
                    bits,
                    id=kid,
                    label=KEY_LABEL,
                    store=True,
                    public_template={Attribute.ENCRYPT: True, Attribute.WRAP: True},
                    private_template={
                        Attribute.DECRYPT: True,
                        Attribute.UNWRAP: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                    },
                )
        with _mapped("read the card key", serial):
            try:
                pk = _public_key(session, kid)
            except (p11e.NoSuchKey, p11e.MultipleObjectsReturned):
                raise CardDataMissing(
                    f"card {serial} has no single RSA key with id {kid.hex()}"
                ) from None
            oaep, notes = _probe_oaep(session, kid, pk)
    return CardKey(serial, kid.hex(), _fingerprint(pk), pk.key_size, oaep, tuple(notes))


# --- writing and reading shares -----------------------------------------------------------


@dataclass(frozen=True)
class CardWriteResult:
    """What :func:`write_share` did (public).

    Attributes:
        key: the card key.
        sealed: the sealed share document (JSON bytes) to write to media.
        stored_on_card: True when the card holds the share object.
        verified: True when the share was read back from the card and matched.
        notes: fallbacks and remarks for the journal.
    """

    key: CardKey
    sealed: bytes
    stored_on_card: bool
    verified: bool
    notes: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        """As a dict of public values (``sealed`` is returned as bytes separately)."""
        return {
            "key": self.key.public(),
            "stored_on_card": self.stored_on_card,
            "verified": self.verified,
            "notes": list(self.notes),
        }


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


@contextmanager
def _share_view(share: SecretBuffer | memoryview) -> Iterator[memoryview]:
    if isinstance(share, SecretBuffer):
        with share.view() as mv:
            yield mv
    else:
        yield share


def seal_share(
    share: SecretBuffer | memoryview,
    key: CardKey,
    meta: dict[str, Any],
    public_key: rsa.RSAPublicKey,
) -> bytes:
    """Encrypt a share to a card key in software (AES-256-GCM + RSA-OAEP wrap of the data key).

    Returns the sealed document (canonical JSON, public).
    """
    header = {
        "format": BLOB_FORMAT,
        "card_serial": key.serial,
        "key_id": key.key_id,
        "key_fingerprint": key.fingerprint,
        "oaep_hash": key.oaep_hash,
        "aead": "AES-256-GCM",
        "meta": meta,
    }
    nonce = os.urandom(12)
    with SecretBuffer(32) as dk:
        dk.fill_random()
        with dk.view() as dkv, _share_view(share) as sv:
            # Unavoidable: RSAPublicKey.encrypt takes bytes (the data key only). The data
            # key plus the public sealed document give the share, so the copy is made for
            # this one call and zeroed in place right after, never merely dropped.
            with transient_bytes(dkv) as dk_bytes:
                wrapped = public_key.encrypt(dk_bytes, _oaep(key.oaep_hash))
            ct = AESGCM(dkv).encrypt(nonce, sv, _aad(header))
    doc = dict(header, wrapped_key=_b64(wrapped), nonce=_b64(nonce), ciphertext=_b64(ct))
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def parse_sealed(sealed: bytes) -> dict[str, Any]:
    """Parse and sanity-check a sealed share document.

    Raises:
        CardDataMissing: the document is not a sealed card share.
    """
    try:
        # the reader rules of docs/formats.md section 0 (duplicate keys, integers only...)
        doc = strictjson.loads(bytes(sealed))
        if not isinstance(doc, dict) or doc.get("format") != BLOB_FORMAT:
            raise ValueError("format")
        for k in (
            "card_serial",
            "key_id",
            "key_fingerprint",
            "oaep_hash",
            "wrapped_key",
            "nonce",
            "ciphertext",
        ):
            if not isinstance(doc.get(k), str):
                raise ValueError(k)
        if doc["oaep_hash"] not in _OAEP:
            raise ValueError("oaep_hash")
        base64.b64decode(doc["wrapped_key"], validate=True)
        base64.b64decode(doc["ciphertext"], validate=True)
        if len(base64.b64decode(doc["nonce"], validate=True)) != 12:
            raise ValueError("nonce")
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        raise CardDataMissing(
            f"this is not a sealed card share ({BLOB_FORMAT}); pick the share file of this card"
        ) from None
    return doc


def _unseal_on_card(
    session: Any,
    serial: str,
    doc: dict[str, Any],
    alloc: Alloc,
    progress: Callable[[str], None] | None = None,
) -> SecretBuffer:
    """Decrypt the data key on the card and the share into locked memory."""
    kid = bytes.fromhex(doc["key_id"])
    with _mapped("find the share key on the card", serial):
        try:
            priv = session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, id=kid
            )
        except p11e.NoSuchKey:
            raise WrongCard(
                f"card {serial} does not hold the key this share was encrypted to "
                f"(key id {doc['key_id']}): wrong card, or it was pulled out. Insert the "
                "right card and try again."
            ) from None
        with suppress(p11e.NoSuchKey, p11e.MultipleObjectsReturned):
            if _fingerprint(_public_key(session, kid)) != doc["key_fingerprint"]:
                raise WrongCard(
                    f"the key on card {serial} does not match the share's key fingerprint"
                )
    if progress is not None:
        progress("decrypting")
    mech, mgf, _h = _OAEP[doc["oaep_hash"]]
    header = {k: doc[k] for k in doc if k not in ("wrapped_key", "nonce", "ciphertext")}
    ct = base64.b64decode(doc["ciphertext"])
    if len(ct) <= 16:
        raise CardDataMissing("the sealed share is truncated")
    with SecretBuffer(32) as dk:
        with _mapped("decrypt the share on the card", serial):
            raw = priv.decrypt(
                base64.b64decode(doc["wrapped_key"]),
                mechanism=Mechanism.RSA_PKCS_OAEP,
                mechanism_param=(mech, mgf, None),
            )
        try:
            if len(raw) != 32:
                raise CardDataMissing(f"card {serial} returned a data key of the wrong size")
            with dk.view() as dkv:
                dkv[:] = raw
        finally:
            # bytes from C_Decrypt: the data key (with the public sealed document, the
            # share). Dropping the reference leaves it in the freed block: zero it in place
            # first (we hold the only reference), as docs/threat-model.md promises.
            wipe_bytes(raw)
            del raw
        out = alloc(len(ct) - 16)
        try:
            with dk.view() as dkv, out.view() as ov:
                AESGCM(dkv).decrypt_into(base64.b64decode(doc["nonce"]), ct, _aad(header), ov)
        except Exception:
            out.close()
            raise CardVerifyFailed(
                f"the share on card {serial} failed its integrity check: the sealed data was "
                "altered or belongs to another card"
            ) from None
    return out


def _share_objects(session: Any) -> list[Any]:
    return list(
        session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: OBJECT_LABEL})
    )


def write_share(
    module: str,
    serial: str,
    pin: memoryview | None,
    share: SecretBuffer | memoryview,
    key: CardKey,
    *,
    meta: dict[str, Any] | None = None,
    store_on_card: bool = True,
    check: Callable[[memoryview], bool] | None = None,
    alloc: Alloc = _alloc,
) -> CardWriteResult:
    """Encrypt a share to the card key, store it on the card, read it back and verify.

    Args:
        module: PKCS#11 module path.
        serial: the card's serial (must be ``key.serial``).
        pin: user PIN view, or None for the reader's PIN pad.
        share: the share's word indices (a locked buffer or a view of one).
        key: from :func:`provision_key`.
        meta: public facts bound to the ciphertext (set id, member index, ...).
        store_on_card: also store the sealed share as a private data object (False for
            cards that cannot hold data objects, such as YubiKey PIV).
        check: optional extra check of the read-back share (e.g. against its commitment).
        alloc: allocator for the read-back buffer.

    Raises:
        CardError: any card failure (nothing is half-written that the caller relies on:
            the result is only returned once the read-back matched).
    """
    if serial != key.serial:
        raise WrongCard(f"the key belongs to card {key.serial}, not card {serial}")
    lib = load_module(module)
    token, serial = _find(lib, serial, None)
    notes = list(key.notes)
    stored = False
    with _session(token, serial, pin, rw=True) as session:
        kid = bytes.fromhex(key.key_id)
        with _mapped("read the card key", serial):
            pk = _public_key(session, kid)
        if _fingerprint(pk) != key.fingerprint:
            raise WrongCard(f"the key on card {serial} changed since it was provisioned")
        sealed = seal_share(share, key, meta or {}, pk)
        if store_on_card:
            try:
                session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.DATA,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.MODIFIABLE: False,
                        Attribute.LABEL: OBJECT_LABEL,
                        Attribute.APPLICATION: APPLICATION,
                        Attribute.VALUE: sealed,
                    }
                )
                stored = True
            except _NO_DATA_OBJECTS as exc:
                notes.append(
                    f"card cannot hold data objects ({type(exc).__name__}): the share is "
                    "kept in the sealed file only"
                )
            except p11e.PKCS11Error as exc:
                _raise_mapped(exc, "store the share object on the card", serial, None)
        # Read back and verify on the card before genesis continues.
        doc = parse_sealed(sealed)
        if stored:
            with _mapped("read the share object back", serial):
                values = [bytes(o[Attribute.VALUE]) for o in _share_objects(session)]
            if sealed not in values:
                raise CardVerifyFailed(
                    f"card {serial} did not return the share object just written"
                )
        back = _unseal_on_card(session, serial, doc, alloc)
        try:
            with back.view() as bv, _share_view(share) as sv:
                same = bv.nbytes == sv.nbytes and ct_equal(bv, sv)
                if same and check is not None:
                    same = check(bv)
        finally:
            back.close()
        if not same:
            raise CardVerifyFailed(
                f"the share read back from card {serial} does not match: do not use this card"
            )
    return CardWriteResult(key, sealed, stored, True, tuple(notes))


@dataclass
class CardReadResult:
    """A share read from a card.

    Attributes:
        indices: the share (locked; the caller owns and closes it).
        serial: the card serial (public).
        key_fingerprint: the card key's fingerprint (public).
        source: "card" (data object) or "sealed-file".
        meta: the public facts bound to the share at genesis.
    """

    indices: SecretBuffer
    serial: str
    key_fingerprint: str
    source: str
    meta: dict[str, Any]


def read_share(
    module: str,
    serial: str | None,
    pin: memoryview | None,
    *,
    expected_serials: Collection[str] | None = None,
    sealed: bytes | None = None,
    match: Callable[[dict[str, Any]], bool] | None = None,
    require_match: bool = True,
    alloc: Alloc = _alloc,
    progress: Callable[[str], None] | None = None,
) -> CardReadResult:
    """Read a share: PIN login, data key decrypted on the card, share into locked memory.

    Args:
        module: PKCS#11 module path.
        serial: the card to use, or None for "the only expected card inserted".
        pin: user PIN view (locked), or None for the reader's PIN pad.
        expected_serials: the manifest's card serials (a card not in it is refused).
        sealed: the sealed share file from media, for cards without the data object.
        match: picks the right share object when a card holds several (given ``meta``).
        require_match: True: shares ``match`` rejects are ignored (none left: no share
            for this ceremony). False: when ``match`` accepts none, the card's own share
            is read anyway, so the caller can say which set it belongs to.
        alloc: allocator for the share buffer.
        progress: called with public stage names ("logged-in", "decrypting") for the UI.

    Raises:
        CardError: wrong card, wrong/locked PIN, card removed, no share, ...
    """
    lib = load_module(module)
    token, serial = _find(lib, serial, expected_serials)
    if expected_serials is not None and serial not in expected_serials:
        raise WrongCard(f"card {serial} is not one of this ceremony's cards")
    with _session(token, serial, pin, rw=False) as session:
        if progress is not None:
            progress("logged-in")
        docs: list[tuple[dict[str, Any], str]] = []
        with _mapped("read the share object", serial):
            for obj in _share_objects(session):
                with suppress(CardDataMissing):
                    docs.append((parse_sealed(bytes(obj[Attribute.VALUE])), "card"))
        if sealed is not None:
            docs.append((parse_sealed(sealed), "sealed-file"))
        matching = [(d, src) for d, src in docs if match is None or match(d.get("meta") or {})]
        docs = matching if matching or require_match else docs
        if not docs and sealed is None:
            with _mapped("look for the share key", serial):
                keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
            if not keys:
                raise CardRemoved(
                    f"card {serial} shows no share and no key: if it was pulled out, reinsert "
                    "it and try again; if it is a blank card, insert the custodian's card"
                )
        if not docs:
            raise CardDataMissing(
                f"card {serial} holds no share for this ceremony: give the sealed share file "
                "for this card from the media"
            )
        mine = [(d, s) for d, s in docs if d["card_serial"] == serial]
        if not mine:
            raise WrongCard(
                f"the sealed share belongs to card {docs[0][0]['card_serial']}, but card "
                f"{serial} is inserted"
            )
        doc, source = mine[0]
        indices = _unseal_on_card(session, serial, doc, alloc, progress)
    return CardReadResult(indices, serial, doc["key_fingerprint"], source, doc.get("meta") or {})
