"""Strict JSON reading: the lexical rules every reader of our files must apply.

``docs/formats.md`` section 0 ("Reader requirements") makes these rules normative for every
artifact the ceremony writes. Python's ``json`` (like Go's ``encoding/json``) silently keeps
the last of two duplicate keys, accepts ``1.0`` for ``1``, ``NaN``, lone surrogates and a
nesting as deep as the recursion limit; a reader that accepts what a writer never produces
lets two readers see two different documents in the same bytes. So:

* the input is UTF-8 without a byte order mark (envelopes: ASCII only);
* an object never has the same key twice (keys compared exactly, after unescaping);
* every number is a non-negative integer written as ``0`` or ``[1-9][0-9]*``: no sign,
  fraction or exponent (so ``1.0``, ``1e0``, ``-0`` are refused), at most 2^53 - 1;
* ``NaN``, ``Infinity``, lone UTF-16 surrogates and nesting deeper than 32 are refused;
* nothing but whitespace follows the top-level value.

:func:`loads` applies these rules; :func:`members_with_spans` also returns, for a top-level
object, the byte span of each member's value (the envelope's AAD is the header's bytes as
they appear in the file).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from core.errors import KcmError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "StrictJSONError",
    "loads",
    "members_with_spans",
]

MAX_INT: Final = 2**53 - 1
MAX_DEPTH: Final = 32
_WS = re.compile(r"[ \t\n\r]*")
_INT = re.compile(r"(?:0|[1-9][0-9]*)\Z")


class StrictJSONError(KcmError, ValueError):
    """The bytes break a lexical rule of docs/formats.md section 0 (message says which)."""

    code = "strict-json"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise StrictJSONError(f"duplicate key {k!r} in an object (each key may appear once)")
        out[k] = v
    return out


def _float(text: str) -> Any:
    raise StrictJSONError(
        f"number {text[:24]!r} is not an integer (no fraction or exponent, e.g. 1 not 1.0)"
    )


def _int(text: str) -> int:
    if not _INT.match(text):
        raise StrictJSONError(f"number {text[:24]!r} must be a non-negative integer without sign")
    value = int(text)
    if value > MAX_INT:
        raise StrictJSONError(f"number {text[:24]}... is larger than 2^53 - 1")
    return value


def _constant(text: str) -> Any:
    raise StrictJSONError(f"{text} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_float=_float, parse_int=_int, parse_constant=_constant
)


def _check_tree(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise StrictJSONError(f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise StrictJSONError("a string holds a lone UTF-16 surrogate escape")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_tree(k, depth + 1)
            _check_tree(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_tree(v, depth + 1)


def _text(data: bytes, *, ascii_only: bool) -> str:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StrictJSONError("expected bytes")
    raw = bytes(data)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("the file starts with a byte order mark")
    if ascii_only:
        bad = next((i for i, b in enumerate(raw) if not (0x20 <= b <= 0x7E or b in b"\t\n\r")), -1)
        if bad >= 0:
            raise StrictJSONError(f"byte {bad} is not printable ASCII (this file is ASCII only)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError(f"not UTF-8 (byte {exc.start})") from None


def _decode(text: str, idx: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, idx)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise StrictJSONError(f"nesting deeper than {MAX_DEPTH} levels") from None


def loads(data: bytes, *, ascii_only: bool = False) -> Any:
    """Decode ``data`` under the strict rules.

    Raises:
        StrictJSONError: the first rule broken.
    """
    text = _text(data, ascii_only=ascii_only)
    start = _WS.match(text, 0)
    assert start is not None
    value, end = _decode(text, start.end())
    tail = _WS.match(text, end)
    assert tail is not None
    if tail.end() != len(text):
        raise StrictJSONError(f"data after the JSON value at character {tail.end()}")
    _check_tree(value)
    return value


def members_with_spans(data: bytes) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Decode an ASCII top-level object; also return each member value's byte span.

    ``data[start:end]`` for a member is exactly the bytes of its value as written (what Go's
    ``json.RawMessage`` holds), without the surrounding whitespace.

    Raises:
        StrictJSONError: the first rule broken, or the top level is not an object.
    """
    text = _text(data, ascii_only=True)  # ASCII: character index == byte offset

    def ws(i: int) -> int:
        m = _WS.match(text, i)
        assert m is not None
        return m.end()

    i = ws(0)
    if text[i : i + 1] != "{":
        raise StrictJSONError("the top level is not a JSON object")
    i = ws(i + 1)
    doc: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i : i + 1] != '"':
                raise StrictJSONError(f"expected a member name at character {i}")
            key, i = _decode(text, i)
            i = ws(i)
            if text[i : i + 1] != ":":
                raise StrictJSONError(f"expected ':' at character {i}")
            i = ws(i + 1)
            value, end = _decode(text, i)
            if key in doc:
                raise StrictJSONError(f"duplicate key {key!r} in an object (each key may appear once)")
            doc[key] = value
            spans[key] = (i, end)
            i = ws(end)
            if text[i : i + 1] == ",":
                i = ws(i + 1)
                continue
            if text[i : i + 1] == "}":
                i += 1
                break
            raise StrictJSONError(f"expected ',' or '}}' at character {i}")
    if ws(i) != len(text):
        raise StrictJSONError(f"data after the JSON value at character {ws(i)}")
    _check_tree(doc)
    return doc, spans
