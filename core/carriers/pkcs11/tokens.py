"""PKCS#11 modules and tokens: loading a module the keyholder was started with, listing and
finding cards, PIN sessions, and the mapping of every PKCS#11 error to a card error with
what to do."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any, Final, NoReturn

import pkcs11
import pkcs11.exceptions as p11e
from cryptography.hazmat.primitives import hashes
from pkcs11 import MGF, Mechanism
from pkcs11.constants import SlotFlag, TokenFlag

from core.carriers import modules as _modules
from core.carriers.errors import (
    CardError,
    CardFull,
    CardMechanismUnsupported,
    CardModuleError,
    CardNoReader,
    CardNoToken,
    CardPinIncorrect,
    CardPinLocked,
    CardRemoved,
    WrongCard,
)
from core.secmem import SecretBuffer, is_utf8

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
