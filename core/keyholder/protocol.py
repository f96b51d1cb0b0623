"""The keyholder's framed binary protocol (version 1).

A frame is a 12-byte header followed by a payload::

    magic "KH" (2) | version (1) | kind (1) | opcode (2, BE) | payload length (4, BE) | pad (2)

``kind`` is 0 for a request, 1 for an OK reply, 2 for an error reply. The payload is a
sequence of fields::

    name length (1) | name (ASCII) | type (1) | value length (4, BE) | value

Types: BYTES (public bytes), STR (UTF-8), INT (8 bytes, signed BE), BOOL (1 byte),
JSON (canonical UTF-8 JSON of *public* structured data), SECRET (raw bytes; only ever sent
parent -> keyholder, read by the keyholder straight into a locked buffer).

No JSON or str ever carries a secret: the SECRET type exists so that a typed word, a PIN or
a passphrase goes from the parent's locked buffer to the keyholder's locked receive buffer
with ``writev``/``readv`` and no intermediate copy. A reply that contains a SECRET field is a
protocol violation and the client refuses it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from core.errors import KcmError

__all__ = [
    "HEADER",
    "MAGIC",
    "MAX_PAYLOAD",
    "VERSION",
    "FieldType",
    "ProtocolError",
    "Secret",
    "decode_fields",
    "encode_fields",
    "pack_header",
    "unpack_header",
]

MAGIC: Final = b"KH"
VERSION: Final = 1
HEADER: Final = struct.Struct(">2sBBHIH")
MAX_PAYLOAD: Final = 1 << 20  # 1 MiB: enough for a batch of sealed envelopes
KIND_REQUEST: Final = 0
KIND_OK: Final = 1
KIND_ERROR: Final = 2


class FieldType:
    """Field type tags."""

    BYTES: Final = 1
    STR: Final = 2
    INT: Final = 3
    BOOL: Final = 4
    JSON: Final = 5
    SECRET: Final = 6


class ProtocolError(KcmError):
    """A malformed, oversized or out-of-version frame."""

    code = "protocol"


@dataclass(frozen=True, eq=False)
class Secret:
    """Marks a request field as secret: sent from this memoryview, never copied to bytes.

    ``eq=False``: no generated ``__eq__``/``__hash__`` that would compare (not in constant
    time) or hash the secret.
    """

    view: memoryview


PublicValue = bytes | str | int | bool | list[Any] | dict[str, Any] | None


def pack_header(kind: int, opcode: int, length: int) -> bytes:
    """Build a frame header."""
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return HEADER.pack(MAGIC, VERSION, kind, opcode, length, 0)


def unpack_header(raw: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """Parse a header; returns (kind, opcode, payload length)."""
    if len(raw) != HEADER.size:
        raise ProtocolError("truncated frame header")
    magic, version, kind, opcode, length, _pad = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("not a keyholder frame (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"keyholder protocol version {version}, expected {VERSION}")
    if kind not in (KIND_REQUEST, KIND_OK, KIND_ERROR):
        raise ProtocolError(f"unknown frame kind {kind}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"frame payload of {length} bytes exceeds the limit")
    return kind, opcode, length


def canonical_json(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) for public structured data."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _field_header(name: str, ftype: int, length: int) -> bytes:
    raw = name.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ProtocolError(f"bad field name {name!r}")
    return bytes([len(raw)]) + raw + struct.pack(">BI", ftype, length)


def encode_fields(fields: Mapping[str, Any], *, allow_secret: bool) -> list[bytes | memoryview]:
    """Encode fields as a list of buffers suitable for ``os.writev``.

    Secret values stay memoryviews (no copy). ``allow_secret`` is False for replies.
    """
    out: list[bytes | memoryview] = []
    for name, value in fields.items():
        if isinstance(value, Secret):
            if not allow_secret:
                raise ProtocolError(f"refusing to send secret field {name!r} to the parent")
            mv = value.view.cast("B") if value.view.format != "B" else value.view
            out.append(_field_header(name, FieldType.SECRET, mv.nbytes))
            out.append(mv)
            continue
        if isinstance(value, bool):
            ftype, data = FieldType.BOOL, b"\x01" if value else b"\x00"
        elif isinstance(value, int):
            ftype, data = FieldType.INT, struct.pack(">q", value)
        elif isinstance(value, str):
            ftype, data = FieldType.STR, value.encode()
        elif isinstance(value, (bytes, bytearray)):
            ftype, data = FieldType.BYTES, bytes(value)
        elif isinstance(value, memoryview):
            raise ProtocolError(f"field {name!r}: wrap memoryviews in Secret() or pass bytes")
        else:
            ftype, data = FieldType.JSON, canonical_json(value)
        out.append(_field_header(name, ftype, len(data)))
        out.append(data)
    return out


def decode_fields(payload: memoryview) -> dict[str, tuple[int, memoryview]]:
    """Split a payload into ``{name: (type, value view)}``; views alias the payload."""
    fields: dict[str, tuple[int, memoryview]] = {}
    pos, end = 0, len(payload)
    while pos < end:
        nlen = payload[pos]
        pos += 1
        if pos + nlen + 5 > end:
            raise ProtocolError("truncated field header")
        try:
            name = bytes(payload[pos : pos + nlen]).decode("ascii")
        except UnicodeDecodeError as exc:
            raise ProtocolError("field name is not ASCII") from exc
        pos += nlen
        ftype = payload[pos]
        (vlen,) = struct.unpack(">I", payload[pos + 1 : pos + 5])
        pos += 5
        if pos + vlen > end:
            raise ProtocolError(f"field {name!r} runs past the end of the frame")
        if ftype not in range(FieldType.BYTES, FieldType.SECRET + 1):
            raise ProtocolError(f"field {name!r} has unknown type {ftype}")
        if name in fields:
            raise ProtocolError(f"field {name!r} repeated")
        fields[name] = (ftype, payload[pos : pos + vlen])
        pos += vlen
    return fields


def public_value(ftype: int, view: memoryview) -> PublicValue:
    """Convert a non-secret field to a Python value."""
    if ftype == FieldType.BYTES:
        return bytes(view)
    if ftype == FieldType.STR:
        try:
            return bytes(view).decode()
        except UnicodeDecodeError:
            # the text is not echoed (and not kept in an exception context)
            raise ProtocolError("text field is not valid UTF-8") from None
    if ftype == FieldType.INT:
        if len(view) != 8:
            raise ProtocolError("integer field must be 8 bytes")
        return int(struct.unpack(">q", view)[0])
    if ftype == FieldType.BOOL:
        if len(view) != 1:
            raise ProtocolError("boolean field must be 1 byte")
        return view[0] != 0
    if ftype == FieldType.JSON:
        try:
            return json.loads(bytes(view).decode())  # type: ignore[no-any-return]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError("JSON field is not valid JSON") from exc
    raise ProtocolError("secret fields have no public value")
