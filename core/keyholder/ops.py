"""Operation registry and the keyholder's state.

Each area registers handlers with :func:`op`. A handler receives the
:class:`KeyholderState` and a :class:`Request` and returns a dict of public values.

**One MasterKey, or two in a rotation.** Outside a rotation the keyholder holds at most one
MasterKey (ADR-201: no second key until the first is wiped, :meth:`refuse_if_master`) and
requests do not name it. A rotation is entered explicitly (``rotation_begin``,
:mod:`core.keyholder.ops_rotation`) once a key rebuilt from its shares is held and
verified: that key becomes the **old** key (``master``) and a second locked slot, the
**new** key (``new_master``), exists from then on, empty until generated. Neither slot is
ever overwritten in place. In a rotation every operation that uses a key must name it in
the request field ``key`` (``"old"`` or ``"new"``, :meth:`KeyholderState.require_key`);
one that does not is refused as ambiguous (:class:`AmbiguousKey`). Every reply carries
the named key's own ``fingerprint``/``kcv``/``kcv_words`` and ``key``, and the server adds
``rotation_keys`` (both keys' facts) to every reply while a rotation is in progress, so the
UI and the journal can never confuse the two. ``wipe`` wipes both and ends the rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import secmem
from core.crypto.fingerprint import Fingerprint, derive_fingerprint
from core.keyholder.errors import AmbiguousKey, MalformedRequest, NoMasterKey, Refused
from core.keyholder.protocol import FieldType, ProtocolError, PublicValue, public_value

__all__ = ["KEY_NEW", "KEY_OLD", "OPS", "ROTATION_KEYS", "KeyholderState", "OpSpec", "Request", "op"]

#: The names of the two keys of a rotation, as requests give them in the ``key`` field.
KEY_OLD = "old"
KEY_NEW = "new"
ROTATION_KEYS = (KEY_OLD, KEY_NEW)

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
    #: In a rotation: which key (``old``/``new``) the kept signing key belongs to.
    signer_key: str = ""
    #: PKCS#11 modules this keyholder may load: name -> path, fixed when it was spawned
    #: (``--pkcs11-module NAME=PATH``); requests can only pick among these.
    pkcs11_modules: dict[str, str] = field(default_factory=dict)
    #: True from ``rotation_begin`` until the wipe: ``master`` is then the OLD key and
    #: ``new_master`` the second locked slot for the NEW key (None until generated).
    rotation: bool = False
    new_master: secmem.SecretBuffer | None = None
    new_origin: str = ""
    #: Public facts of each key's share set, for the continuity statement: ``"old"`` from
    #: the recovery that rebuilt the key (set id, group threshold and count, the member
    #: thresholds seen) completed by ``rotation_begin`` with the checked policy; ``"new"``
    #: from the new key's genesis split (set id, policy).
    key_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The rotation's transition window once fixed (by the first transitional envelope or
    #: by the statement): every later one must carry the same expiry.
    transition_expires: str | None = None
    #: SHA-256 of the continuity statement, once made.
    statement_sha256: str = ""
    #: A transition ceremony (``transition_begin``): the held key is a rotated-out old
    #: key, opened under its signed rotated-out mark; it leaves only as transitional
    #: envelopes with the mark's expiry and successor (``expires_utc``,
    #: ``successor_fingerprint``, ``set_id``, ``ceremony_id``). None otherwise.
    transition_open: dict[str, Any] | None = None
    #: Fingerprints (public) of the held keys, derived once per installed buffer.
    _fingerprints: dict[str, tuple[secmem.SecretBuffer, Fingerprint]] = field(
        default_factory=dict, repr=False
    )
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
        """ADR-201 immutability: no second key until the first has been wiped (a rotation
        has its own, explicit, second slot: :meth:`install_new`)."""
        if self.rotation:
            raise Refused(
                f"cannot {action}: a rotation is in progress; its old key is held, and the "
                "new key goes into its own slot (key='new')"
            )
        if self.master is not None and not self.master.closed:
            raise Refused(
                f"cannot {action}: this keyholder already holds a MasterKey "
                f"({self.master_origin}); wipe it first"
            )

    # --- rotation: two named keys ------------------------------------------------------

    def requested_key(self, req: Request) -> str:
        """The key a request names: ``""`` outside a rotation (where naming one is
        refused), ``"old"`` or ``"new"`` in a rotation (where not naming one is refused as
        ambiguous: :class:`AmbiguousKey`)."""
        name = req.text("key") if req.has("key") else None
        if not self.rotation:
            if name is not None:
                raise Refused(
                    f"no rotation is in progress: this keyholder holds one MasterKey at most; "
                    f"there is no {name!r} key to name"
                )
            return ""
        if name is None:
            held = "two MasterKeys are held" if self._held(self.new_master) else (
                "the old MasterKey is held and the new one has its slot"
            )
            raise AmbiguousKey(
                f"ambiguous: a rotation is in progress ({held}); every operation that uses a "
                "key must say which one: key='old' or key='new'"
            )
        if name not in ROTATION_KEYS:
            raise MalformedRequest(f"key must be 'old' or 'new', not {name!r}")
        return name

    @staticmethod
    def _held(buf: secmem.SecretBuffer | None) -> bool:
        return buf is not None and not buf.closed

    def key_buffer(self, name: str) -> secmem.SecretBuffer:
        """The buffer of the named key (``""``: the only one), or :class:`NoMasterKey`."""
        if name == KEY_NEW:
            if not self._held(self.new_master):
                raise NoMasterKey(
                    "the new MasterKey has not been generated yet (generate_master or "
                    "genesis_split with key='new')"
                )
            assert self.new_master is not None
            return self.new_master
        return self.require_master()

    def key_verified(self, name: str) -> bool:
        """True if the named key was generated here or verified (manifest, witness)."""
        return True if name == KEY_NEW else self.master_verified

    def require_key(
        self,
        req: Request,
        action: str,
        *,
        verified: bool = True,
        refuse: dict[str, str] | None = None,
    ) -> tuple[str, secmem.SecretBuffer]:
        """The key a request names and its buffer, for ``action``.

        Args:
            req: the request (its ``key`` field, see :meth:`requested_key`).
            action: what the operation does with it, for messages.
            verified: refuse a key rebuilt NOT VERIFIED (as :meth:`require_verified_master`).
            refuse: key name -> why this operation refuses that key in a rotation.

        Raises:
            AmbiguousKey, Refused, NoMasterKey, MalformedRequest.
        """
        name = self.requested_key(req)
        if refuse and name in refuse:
            raise Refused(f"cannot {action} with the {name} MasterKey: {refuse[name]}")
        if verified and not name:
            return name, self.require_verified_master(action)
        buf = self.key_buffer(name)
        if verified and not self.key_verified(name):
            self.require_verified_master(action)  # raises with the usual message
        return name, buf

    def fingerprint_of(self, name: str) -> Fingerprint:
        """The public fingerprint of the named key (derived once per installed buffer)."""
        buf = self.key_buffer(name)
        slot = KEY_NEW if name == KEY_NEW else KEY_OLD
        cached = self._fingerprints.get(slot)
        if cached is not None and cached[0] is buf:
            return cached[1]
        with buf.view() as mv:
            fp = derive_fingerprint(mv)
        self._fingerprints[slot] = (buf, fp)
        return fp

    def key_fields(self, name: str) -> dict[str, Any]:
        """Public facts of the named key: fingerprint, kcv, kcv_words, and in a rotation
        ``key`` (which one)."""
        fp = self.fingerprint_of(name)
        out: dict[str, Any] = {"fingerprint": fp.hex, "kcv": fp.kcv, "kcv_words": fp.words}
        if name:
            out["key"] = name
        return out

    def rotation_facts(self) -> dict[str, Any]:
        """Both keys of the rotation in progress, each with its own fingerprint and KCV
        (``new`` is None until generated). The server adds this, as ``rotation_keys``, to
        every reply while a rotation is in progress."""
        out: dict[str, Any] = {}
        for name in ROTATION_KEYS:
            buf = self.master if name == KEY_OLD else self.new_master
            if not self._held(buf):
                out[name] = None
                continue
            facts = self.key_fields(name)
            facts["origin"] = self.master_origin if name == KEY_OLD else self.new_origin
            facts["verified"] = self.key_verified(name)
            facts["set_id"] = self.key_sets.get(name, {}).get("set_id")
            out[name] = facts
        return out

    def install_new(self, buf: secmem.SecretBuffer, origin: str) -> None:
        """Put a freshly drawn key into the rotation's second slot (never over a key)."""
        if not self.rotation:
            buf.close()
            raise Refused("no rotation is in progress: there is no slot for a new MasterKey")
        if self._held(self.new_master):
            buf.close()
            raise Refused(
                "the new MasterKey is already held: a key is never replaced in place "
                "(wipe both and start the rotation again)"
            )
        self.new_master = buf
        self.new_origin = origin

    def drop_new(self) -> None:
        """Wipe the new key alone (its split failed: no share of it exists); the old key
        and the rotation stay."""
        buf, self.new_master = self.new_master, None
        self.new_origin = ""
        self.key_sets.pop(KEY_NEW, None)
        self._fingerprints.pop(KEY_NEW, None)
        if buf is not None:
            buf.close()

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
        self.signer_key = ""
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
                try:
                    if self.master is not None:
                        self.master.close()
                finally:
                    if self.new_master is not None:
                        self.new_master.close()
            finally:
                self.master = None
                self.master_origin = ""
                self.master_verified = True
                self.new_master = None
                self.new_origin = ""
                self.rotation = False
                self.key_sets = {}
                self.transition_expires = None
                self.statement_sha256 = ""
                self.transition_open = None
                self._fingerprints = {}
                self.ext.clear()
                try:
                    if not keep_signer:
                        self.drop_signer()
                finally:
                    kept = (self.signer,) if keep_signer and self.signer is not None else ()
                    secmem.wipe_all(keep=kept)
