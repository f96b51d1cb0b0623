"""Writing a share to a card and reading it back: the sealed share (AES-256-GCM under a data
key wrapped to the card key), its data object, and decryption on the card into locked
memory."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pkcs11.exceptions as p11e
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from core import strictjson
from core.carriers.errors import (
    CardDataMissing,
    CardRemoved,
    CardVerifyFailed,
    WrongCard,
)
from core.carriers.pkcs11.keys import CardKey, _fingerprint, _oaep, _public_key
from core.carriers.pkcs11.tokens import (
    _NO_DATA_OBJECTS,
    _OAEP,
    APPLICATION,
    BLOB_FORMAT,
    OBJECT_LABEL,
    Alloc,
    _alloc,
    _find,
    _mapped,
    _raise_mapped,
    _session,
    load_module,
)
from core.crypto.transient import transient_bytes, wipe_bytes
from core.secmem import SecretBuffer, ct_equal


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
