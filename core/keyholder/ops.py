"""Operation registry and the keyholder's state.

Each area registers handlers with :func:`op`. A handler receives the
:class:`KeyholderState` and a :class:`Request` and returns a dict of public values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import secmem
from core.keyholder.errors import MalformedRequest, NoMasterKey, Refused
from core.keyholder.protocol import FieldType, ProtocolError, PublicValue, public_value

__all__ = ["OPS", "KeyholderState", "OpSpec", "Request", "op"]

Handler = Callable[["KeyholderState", "Request"], dict[str, Any]]


@dataclass(frozen=True)
class OpSpec:
    """A registered operation."""

    code: int
    name: str
    handler: Handler


OPS: dict[int, OpSpec] = {}


def op(code: int, name: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``code``."""

    def deco(fn: Handler) -> Handler:
        if code in OPS and OPS[code].handler is not fn:
            raise RuntimeError(f"opcode 0x{code:04x} registered twice ({OPS[code].name}, {name})")
        OPS[code] = OpSpec(code, name, fn)
        return fn

    return deco


class Request:
    """Fields of one request. Secret fields are views into the locked receive buffer,
    valid only during the call."""

    def __init__(self, opcode: int, fields: dict[str, tuple[int, memoryview]]) -> None:
        self.opcode = opcode
        self._fields = fields

    def has(self, name: str) -> bool:
        """True if the field is present."""
        return name in self._fields

    def _get(self, name: str, ftype: int) -> memoryview:
        try:
            t, view = self._fields[name]
        except KeyError:
            raise MalformedRequest(f"missing field {name!r}") from None
        if t != ftype:
            raise MalformedRequest(f"field {name!r} has the wrong type")
        return view

    def secret(self, name: str) -> memoryview:
        """A secret field (view into locked memory; copy it into a SecretBuffer)."""
        return self._get(name, FieldType.SECRET)

    def _public(self, name: str, ftype: int) -> PublicValue:
        try:
            return public_value(ftype, self._get(name, ftype))
        except ProtocolError as exc:
            raise MalformedRequest(str(exc)) from None

    def text(self, name: str, default: str | None = None) -> str:
        """A public text field."""
        if default is not None and name not in self._fields:
            return default
        v = self._public(name, FieldType.STR)
        assert isinstance(v, str)
        return v

    def integer(self, name: str, default: int | None = None) -> int:
        """A public integer field."""
        if default is not None and name not in self._fields:
            return default
        v = self._public(name, FieldType.INT)
        assert isinstance(v, int)
        return v

    def flag(self, name: str, default: bool | None = None) -> bool:
        """A public boolean field."""
        if default is not None and name not in self._fields:
            return default
        v = self._public(name, FieldType.BOOL)
        assert isinstance(v, bool)
        return v

    def blob(self, name: str) -> bytes:
        """A public bytes field."""
        v = self._public(name, FieldType.BYTES)
        assert isinstance(v, bytes)
        return v

    def json(self, name: str, default: Any = None) -> Any:
        """A public JSON field."""
        if default is not None and name not in self._fields:
            return default
        return self._public(name, FieldType.JSON)


@dataclass
class KeyholderState:
    """Everything the keyholder holds. ``master`` is the MasterKey (32 bytes, locked)."""

    allow_unlocked: bool = False
    master: secmem.SecretBuffer | None = None
    master_origin: str = ""  # "generated" | "recovered" | "practice"
    #: False for a key rebuilt without an expected fingerprint (no manifest to compare
    #: with): nothing is sealed or split from it until a witness has confirmed its KCV
    #: (``kcv_confirm``).
    master_verified: bool = True
    practice: bool = False
    #: After a wipe step that kept it (``wipe`` with ``keep_signing_key``): the Ed25519
    #: seed of the MasterKey signing key, in locked memory, and the purposes it may still
    #: sign once each (the journal's final hash and the transcript, made when the journal
    #: is closed). Every other secret is gone; a full wipe, EOF or a signal wipes it too.
    signer: secmem.SecretBuffer | None = None
    signer_public: str = ""
    signer_purposes: set[str] = field(default_factory=set)
    #: PKCS#11 modules this keyholder may load: name -> path, fixed when it was spawned
    #: (``--pkcs11-module NAME=PATH``); requests can only pick among these.
    pkcs11_modules: dict[str, str] = field(default_factory=dict)
    #: Per-area state (shares, recovery, entry, cards...). Values may own SecretBuffers;
    #: each area registers a reset hook in ``resets`` that wipes what it owns.
    ext: dict[str, Any] = field(default_factory=dict)
    resets: list[Callable[[KeyholderState], None]] = field(default_factory=list)

    def alloc(self, size: int) -> secmem.SecretBuffer:
        """A new locked buffer (demo fallback only if the keyholder was started so)."""
        return secmem.SecretBuffer(size, allow_unlocked=self.allow_unlocked)

    def require_master(self) -> secmem.SecretBuffer:
        """The MasterKey buffer, or :class:`NoMasterKey`."""
        if self.master is None or self.master.closed:
            raise NoMasterKey("no MasterKey is held: generate or recover one first")
        return self.master

    def refuse_if_master(self, action: str) -> None:
        """ADR-201 immutability: no second key until the first has been wiped."""
        if self.master is not None and not self.master.closed:
            raise Refused(
                f"cannot {action}: this keyholder already holds a MasterKey "
                f"({self.master_origin}); wipe it first"
            )

    def set_master(self, buf: secmem.SecretBuffer, origin: str, *, verified: bool = True) -> None:
        """Install a MasterKey (refuses if one is already held)."""
        self.refuse_if_master("install a MasterKey")
        self.drop_signer()  # a signing key kept from an earlier key has no business now
        self.master = buf
        self.master_origin = origin
        self.master_verified = verified

    def require_verified_master(self, action: str) -> secmem.SecretBuffer:
        """The MasterKey, if it was generated here or its fingerprint was verified (against
        a manifest, or by a witness's KCV confirmation); else :class:`Refused`."""
        master = self.require_master()
        if not self.master_verified:
            raise Refused(
                f"cannot {action}: the rebuilt key is NOT VERIFIED against any manifest. A "
                "witness must first compare its KCV words with the genesis record "
                "(kcv_confirm)"
            )
        return master

    def drop_signer(self) -> None:
        """Wipe the retained signing key (if any)."""
        signer, self.signer = self.signer, None
        self.signer_public = ""
        self.signer_purposes = set()
        if signer is not None:
            signer.close()

    def wipe(self, *, keep_signer: bool = False) -> None:
        """Wipe and drop every secret this keyholder holds (``keep_signer``: all but the
        retained signing key, see :attr:`signer`)."""
        try:
            for reset in list(self.resets):
                reset(self)
        finally:
            # Whatever a reset hook does (it may be interrupted half-way by the signal
            # handler, or fail), the MasterKey and every live buffer are wiped.
            try:
                if self.master is not None:
                    self.master.close()
            finally:
                self.master = None
                self.master_origin = ""
                self.master_verified = True
                self.ext.clear()
                try:
                    if not keep_signer:
                        self.drop_signer()
                finally:
                    kept = (self.signer,) if keep_signer and self.signer is not None else ()
                    secmem.wipe_all(keep=kept)
