"""The continuity statement of a MasterKey rotation (``openkcm-rotation-statement`` v1).

A rotation replaces the MasterKey (ADR-201: "immutable except via full rotation"). The
statement is the proof of the handover: a small canonical JSON document naming the old and
the new MasterKey (fingerprints and KCVs), their share sets and policies, the ceremony, the
time and the transition window, signed by **both** keys' derived signing keys
(docs/formats.md section 10)::

    {"format": "openkcm-rotation-statement", "version": 1,
     "ceremony_id": ..., "cluster_id": ..., "region_id": ..., "created_utc": ...,
     "old": {"fingerprint": HEX64, "kcv": HEX16, "set_id": INT,
             "policy": {"group_threshold": INT, "groups": [[m, n], ...]}},
     "new": {... the same for the new key ...},
     "transition_expires_utc": null | TIME,
     ["practice": true,]
     "signatures": {"old": BLOCK, "new": BLOCK}}

``BLOCK`` is a signature block of docs/formats.md section 9.1 (``core.signatures``):
``{"alg": "Ed25519", "purpose": "rotation-old" | "rotation-new", "public_key": HEX64,
"value": BASE64}``. Both cover the same message, the canonical JSON of the document
without ``signatures``, each in its own domain (``signed_bytes(purpose, message)``). The
old key's signature is what lets anyone holding the old fingerprint trust the new one;
the new key's signature proves that the holder of the new key made the same statement.

Who does what:

* the keyholder builds the body from the two keys it holds and signs it
  (:mod:`core.keyholder.ops_rotation`, ``rotation_statement``): it uses
  :func:`build_body`, :func:`message` and :func:`assemble` from here;
* anyone verifies it with public keys only: :func:`verify` (and
  ``kcm-ceremony rotation verify FILE --old-fingerprint HEX_OR_KCV_WORDS``).

Readers apply docs/formats.md section 0 (strict JSON, exact members, integers only).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core import signatures as sig
from core import strictjson
from core.errors import KcmError
from core.words import to_words

__all__ = [
    "FORMAT",
    "MAX_TRANSITION_DAYS",
    "SAFE_TEXT",
    "VERSION",
    "KeyFacts",
    "Statement",
    "StatementError",
    "assemble",
    "build_body",
    "check_policy",
    "check_transition_expiry",
    "cli_main",
    "describe",
    "message",
    "parse",
    "serialise",
    "verify",
]

FORMAT: Final = "openkcm-rotation-statement"
VERSION: Final = 1
MAX_FILE_BYTES: Final = 16 * 1024
#: The longest transition window a rotation may open: the old key sealed to the online
#: recipients (transitional envelopes) and its share set opened by a ``transition``
#: ceremony, for the online re-wrap of the IVKs. Readers refuse a longer one.
MAX_TRANSITION_DAYS: Final = 90
PURPOSE_OLD: Final = "rotation-old"
PURPOSE_NEW: Final = "rotation-new"
TOP_REQUIRED: Final = (
    "format",
    "version",
    "ceremony_id",
    "cluster_id",
    "region_id",
    "created_utc",
    "old",
    "new",
    "transition_expires_utc",
    "signatures",
)
KEY_MEMBERS: Final = ("fingerprint", "kcv", "set_id", "policy")
# docs/formats.md conventions: the safe set (printable ASCII except " \ < > &, 1 to 256)
SAFE_TEXT: Final = re.compile(r"^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,256}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_TIME_FMT = "%Y-%m-%dT%H:%M:%SZ"


class StatementError(KcmError, ValueError):
    """A statement cannot be built, breaks a reader rule, or does not verify."""

    code = "rotation-statement"


@dataclass(frozen=True)
class KeyFacts:
    """One side of the rotation (public): a MasterKey and its share set."""

    fingerprint: str
    kcv: str
    set_id: int
    policy: dict[str, Any]

    @property
    def kcv_words(self) -> list[str]:
        """The KCV as the 7 words read aloud."""
        return to_words(bytes.fromhex(self.kcv))

    @property
    def kcv_grouped(self) -> str:
        """The KCV in groups of 4 hex digits, as shown on screen."""
        return " ".join(self.kcv[i : i + 4] for i in range(0, 16, 4))

    def to_dict(self) -> dict[str, Any]:
        """The statement's ``old``/``new`` member."""
        return {
            "fingerprint": self.fingerprint,
            "kcv": self.kcv,
            "set_id": self.set_id,
            "policy": {
                "group_threshold": self.policy["group_threshold"],
                "groups": [list(g) for g in self.policy["groups"]],
            },
        }


@dataclass(frozen=True)
class Statement:
    """A statement that follows every reader rule (and, from :func:`verify`, verifies)."""

    ceremony_id: str
    cluster_id: str
    region_id: str
    created_utc: str
    old: KeyFacts
    new: KeyFacts
    transition_expires_utc: str | None
    practice: bool
    doc: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        """The signed part: the document without ``signatures``."""
        return {k: v for k, v in self.doc.items() if k != "signatures"}


# ----------------------------------------------------------------------------- fields


def _utc(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not _TIME.match(value):
        raise StatementError(f"{what} must look like 2026-01-31T12:00:00Z")
    try:
        return datetime.strptime(value, _TIME_FMT).replace(tzinfo=UTC)
    except ValueError:
        raise StatementError(f"{what} is not a valid date and time") from None


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise StatementError(f"{what} must be an integer from {lo} to {hi}")
    return value


def _safe(value: object, what: str) -> str:
    if not isinstance(value, str) or not SAFE_TEXT.match(value):
        raise StatementError(f"{what} is missing or has characters outside the safe set")
    return value


def _members(obj: object, what: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise StatementError(f"{what} must be a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise StatementError(f"{what} has no member {missing[0]!r}")
    extra = sorted(set(obj) - set(required) - set(optional))
    if extra:
        raise StatementError(f"{what} has an unknown member {extra[0]!r}")
    return obj


def check_policy(policy: object, what: str) -> dict[str, Any]:
    """A share-set policy in its SLIP-39 form: ``{"group_threshold": T, "groups":
    [[member_threshold, member_count], ...]}`` (1 to 16 groups, T at most their number,
    1 <= m <= n <= 16)."""
    p = _members(policy, what, ("group_threshold", "groups"))
    groups = p["groups"]
    if not isinstance(groups, list) or not 1 <= len(groups) <= 16:
        raise StatementError(f"{what}.groups must list 1 to 16 groups")
    out = []
    for i, g in enumerate(groups, 1):
        if not isinstance(g, list) or len(g) != 2:
            raise StatementError(f"{what}.groups[{i}] must be [member_threshold, member_count]")
        n = _int(g[1], f"{what}.groups[{i}] member count", 1, 16)
        m = _int(g[0], f"{what}.groups[{i}] member threshold", 1, n)
        out.append([m, n])
    gt = _int(p["group_threshold"], f"{what}.group_threshold", 1, len(out))
    return {"group_threshold": gt, "groups": out}


def _key(obj: object, what: str) -> KeyFacts:
    k = _members(obj, what, KEY_MEMBERS)
    fp = k["fingerprint"]
    if not isinstance(fp, str) or not _HEX64.match(fp):
        raise StatementError(f"{what}.fingerprint must be 64 lower-case hex digits")
    kcv = k["kcv"]
    if not isinstance(kcv, str) or not _HEX16.match(kcv) or kcv != fp[:16]:
        raise StatementError(f"{what}.kcv must be the first 16 hex digits of its fingerprint")
    return KeyFacts(fp, kcv, _int(k["set_id"], f"{what}.set_id", 0, 32767), check_policy(k["policy"], f"{what}.policy"))


def check_transition_expiry(expires: str, created: str) -> datetime:
    """``expires`` (a transition's end) is after ``created`` and at most
    :data:`MAX_TRANSITION_DAYS` later; returns it as a datetime.

    Raises:
        StatementError: otherwise (the message says which).
    """
    end = _utc(expires, "the transition expiry")
    start = _utc(created, "the creation time")
    if end <= start:
        raise StatementError(
            f"the transition expiry {expires} is not after the rotation ({created})"
        )
    if end - start > timedelta(days=MAX_TRANSITION_DAYS):
        raise StatementError(
            f"the transition expiry {expires} is more than {MAX_TRANSITION_DAYS} days after "
            f"the rotation ({created})"
        )
    return end


def _check_body(doc: Mapping[str, Any]) -> Statement:
    if doc.get("format") != FORMAT:
        raise StatementError(f"not an {FORMAT} file (format member missing or different)")
    v = doc.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or v != VERSION:
        raise StatementError(f"statement version {v!r} is not supported (expected 1)")
    d = _members(doc, "the statement", TOP_REQUIRED, ("practice",))
    if "practice" in d and d["practice"] is not True:
        raise StatementError("practice, when present, must be true")
    ids = {k: _safe(d[k], k) for k in ("ceremony_id", "cluster_id", "region_id")}
    _utc(d["created_utc"], "created_utc")
    old, new = _key(d["old"], "old"), _key(d["new"], "new")
    if old.fingerprint == new.fingerprint:
        raise StatementError("the old and the new MasterKey are the same key")
    if old.set_id == new.set_id:
        raise StatementError("the old and the new share set have the same set id")
    expires = d["transition_expires_utc"]
    if expires is not None:
        try:
            check_transition_expiry(expires, d["created_utc"])
        except StatementError as exc:
            raise StatementError(f"transition_expires_utc: {exc}") from None
    return Statement(
        ceremony_id=ids["ceremony_id"],
        cluster_id=ids["cluster_id"],
        region_id=ids["region_id"],
        created_utc=d["created_utc"],
        old=old,
        new=new,
        transition_expires_utc=expires,
        practice=d.get("practice") is True,
        doc=dict(d),
    )


# ----------------------------------------------------------------------------- writing


def build_body(
    *,
    ceremony_id: str,
    cluster_id: str,
    region_id: str,
    created_utc: str,
    old: KeyFacts,
    new: KeyFacts,
    transition_expires_utc: str | None,
    practice: bool = False,
) -> dict[str, Any]:
    """The statement without its signatures, checked against every reader rule.

    Raises:
        StatementError: a field breaks a rule (the message says which).
    """
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "ceremony_id": ceremony_id,
        "cluster_id": cluster_id,
        "region_id": region_id,
        "created_utc": created_utc,
        "old": old.to_dict(),
        "new": new.to_dict(),
        "transition_expires_utc": transition_expires_utc,
    }
    if practice:
        body["practice"] = True
    _check_body({**body, "signatures": {}})
    return body


def message(body: Mapping[str, Any]) -> bytes:
    """What both signatures cover: the canonical JSON of the body (sorted keys, no
    spaces, ASCII; every string is in the safe set, so it has exactly one spelling)."""
    return sig.canonical({k: v for k, v in body.items() if k != "signatures"})


def assemble(body: Mapping[str, Any], old_signature: bytes, new_signature: bytes) -> dict[str, Any]:
    """The signed statement: ``body`` plus the two signature blocks."""
    doc = dict(body)
    doc["signatures"] = {
        "old": sig.make_block(PURPOSE_OLD, body["old"]["fingerprint"], old_signature),
        "new": sig.make_block(PURPOSE_NEW, body["new"]["fingerprint"], new_signature),
    }
    return doc


def serialise(doc: Mapping[str, Any]) -> bytes:
    """The file's bytes: ASCII JSON, keys sorted, indented, one final newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


# ----------------------------------------------------------------------------- reading


def parse(data: bytes) -> Statement:
    """Check a statement file against every reader rule, without its signatures.

    Raises:
        StatementError: the first rule broken.
    """
    if len(data) > MAX_FILE_BYTES:
        raise StatementError(f"{len(data)} bytes: larger than any statement ({MAX_FILE_BYTES})")
    try:
        doc = strictjson.loads(data, ascii_only=True)
    except strictjson.StrictJSONError as exc:
        raise StatementError(f"not a well-formed statement: {exc}") from None
    if not isinstance(doc, dict):
        raise StatementError("the statement is not a JSON object")
    st = _check_body(doc)
    sigs = _members(doc["signatures"], "signatures", ("old", "new"))
    for side in ("old", "new"):
        _members(sigs[side], f"signatures.{side}", ("alg", "purpose", "public_key", "value"))
    return st


def _verify_block(block: Mapping[str, Any], side: str, key: KeyFacts, msg: bytes) -> None:
    purpose = PURPOSE_OLD if side == "old" else PURPOSE_NEW
    if block.get("alg") != sig.ALG:
        raise StatementError(f"signatures.{side}: algorithm {block.get('alg')!r}, expected Ed25519")
    if block.get("purpose") != purpose:
        raise StatementError(
            f"signatures.{side}: made for {block.get('purpose')!r}, expected {purpose!r}"
        )
    if block.get("public_key") != key.fingerprint:
        raise StatementError(
            f"signatures.{side} is by another key than the {side} MasterKey the statement names"
        )
    value = block.get("value")
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise StatementError(f"signatures.{side}.value is not base64") from None
    if len(raw) != 64 or base64.b64encode(raw).decode("ascii") != value:
        raise StatementError(f"signatures.{side}.value is not 64 bytes of canonical base64")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.fingerprint)).verify(
            raw, sig.signed_bytes(purpose, msg)
        )
    except (InvalidSignature, ValueError):
        raise StatementError(
            f"the {side} key's signature does not verify: the statement was changed after it "
            "was signed, or was not signed by that key"
        ) from None


def verify(
    data: bytes, *, old_fingerprint: str | None = None, new_fingerprint: str | None = None
) -> Statement:
    """Parse a statement and verify both signatures (public keys only).

    Args:
        data: the file's bytes.
        old_fingerprint: the old MasterKey as known from OUTSIDE the statement (the paper
            log, the old share set's manifest): 64 hex digits, or the KCV as 16 hex digits
            or 7 words. When given, the statement's old key must be this one.
        new_fingerprint: likewise for the new key (e.g. the KCV the witness read aloud).

    Raises:
        StatementError: a reader rule is broken, a signature does not verify, or a key is
            not the one given.
    """
    st = parse(data)
    msg = message(st.doc)
    for side, key in (("old", st.old), ("new", st.new)):
        _verify_block(st.doc["signatures"][side], side, key, msg)
    for side, key, anchor in (("old", st.old, old_fingerprint), ("new", st.new, new_fingerprint)):
        if anchor is None:
            continue
        try:
            matches = sig.fingerprint_matches(anchor, key.fingerprint)
        except sig.SignatureError as exc:
            raise StatementError(f"--{side}-fingerprint: {exc}") from None
        if not matches:
            raise StatementError(
                f"the statement's {side} MasterKey ({key.kcv_grouped}) is not the one given: "
                "do not trust the key it vouches for"
            )
    return st


# ----------------------------------------------------------------------------- command line


def _anchor_from_manifest(path: Path, st: Statement) -> str:
    """The old fingerprint from the old set's genesis manifest (its own signature checked,
    its set id compared with the statement's old set)."""
    try:
        manifest = strictjson.loads(path.read_bytes())
    except OSError as exc:
        raise StatementError(f"--old-manifest {path}: cannot read it ({exc.strerror})") from None
    except strictjson.StrictJSONError as exc:
        raise StatementError(f"--old-manifest {path}: {exc}") from None
    fp = manifest.get("fingerprint") if isinstance(manifest, dict) else None
    if not isinstance(fp, str) or not _HEX64.match(fp):
        raise StatementError(f"--old-manifest {path}: it names no MasterKey fingerprint")
    assert isinstance(manifest, dict)
    if "signature" in manifest:
        try:
            signer = sig.verify_block(
                manifest["signature"], sig.manifest_message(manifest), purpose="genesis-manifest"
            )
        except sig.SignatureError as exc:
            raise StatementError(f"--old-manifest {path}: {exc}") from None
        if signer != fp:
            raise StatementError(f"--old-manifest {path}: signed by another key than its fingerprint")
    if manifest.get("set_id") != st.old.set_id:
        raise StatementError(
            f"--old-manifest {path} is the manifest of set {manifest.get('set_id')}; the "
            f"statement rotates set {st.old.set_id} out"
        )
    return fp


def describe(st: Statement) -> str:
    """The statement's facts, for the room."""
    lines = [
        f"ceremony         {st.ceremony_id}   {st.created_utc}"
        + ("   PRACTICE (throwaway keys)" if st.practice else ""),
        f"cluster / region {st.cluster_id} / {st.region_id}",
    ]
    for side, k in (("old", st.old), ("new", st.new)):
        groups = ", ".join(f"{m}-of-{n}" for m, n in k.policy["groups"])
        lines += [
            f"{side} MasterKey    KCV {k.kcv_grouped} = {' '.join(k.kcv_words)}",
            f"  fingerprint    {k.fingerprint}",
            f"  share set      {k.set_id}: {k.policy['group_threshold']} of "
            f"{len(k.policy['groups'])} group(s) [{groups}]",
        ]
    lines.append(
        "transition       "
        + (
            f"the old key may be opened by the online service until {st.transition_expires_utc}"
            if st.transition_expires_utc
            else "none: the old key is retired now"
        )
    )
    return "\n".join(lines)


USAGE: Final = (
    "usage: kcm-ceremony rotation verify FILE [--old-fingerprint HEX_OR_KCV_WORDS | "
    "--old-manifest FILE] [--new-fingerprint HEX_OR_KCV_WORDS]"
)


def cli_main(argv: list[str]) -> int:
    """``kcm-ceremony rotation verify FILE --old-fingerprint HEX``.

    Exit status: 0 OK (well-formed, both signatures verify, and the old key is the one
    given; the new one too when ``--new-fingerprint`` is given); 1 FAILED (a reader rule
    broken, a signature that does not verify, another key than the one given); 2 usage
    errors or an unreadable file; 4 UNANCHORED (valid, but nothing from outside the
    statement says the old key is the right one).
    """
    parser = argparse.ArgumentParser(
        prog="kcm-ceremony rotation",
        description="Check the continuity statement of a MasterKey rotation "
        "(docs/formats.md section 10).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser(
        "verify",
        help="check a continuity statement: both signatures, and the old key against yours",
        description="Check a rotation's continuity statement: every reader rule, the old and "
        "the new key's signatures, and that the old key is the MasterKey you know (from the "
        "paper log or the old share set's manifest). OK means: the holders of that old "
        "MasterKey vouch for the new one this statement names.",
    )
    pv.add_argument("file", metavar="FILE", help="the statement (rotation-statement.json)")
    anchor = pv.add_mutually_exclusive_group()
    anchor.add_argument(
        "--old-fingerprint",
        metavar="HEX_OR_WORDS",
        help="the old MasterKey fingerprint: 64 hex, or its KCV (16 hex or 7 words) from the "
        "paper log",
    )
    anchor.add_argument(
        "--old-manifest",
        metavar="FILE",
        help="the old share set's genesis manifest (kept apart): its signed fingerprint is the "
        "anchor, and its set id must be the statement's old set",
    )
    pv.add_argument(
        "--new-fingerprint",
        metavar="HEX_OR_WORDS",
        help="also require this new MasterKey (64 hex, or the KCV read aloud: 16 hex or 7 words)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"kcm-ceremony rotation: {path}: cannot read ({exc.strerror})", file=sys.stderr)
        return 2
    for name in ("old_fingerprint", "new_fingerprint"):
        value = getattr(args, name)
        if value is not None:
            try:
                sig.parse_anchor(value)
            except sig.SignatureError as exc:
                print(f"kcm-ceremony rotation: --{name.replace('_', '-')}: {exc}", file=sys.stderr)
                return 2
    try:
        old_anchor = args.old_fingerprint
        if args.old_manifest:
            old_anchor = _anchor_from_manifest(Path(args.old_manifest), parse(data))
        st = verify(data, old_fingerprint=old_anchor, new_fingerprint=args.new_fingerprint)
    except StatementError as exc:
        print(f"{path}: FAILED: {exc}")
        return 1
    sha = hashlib.sha256(data).hexdigest()
    if old_anchor is None:
        print(
            f"{path}: UNANCHORED: both signatures verify, but nothing outside the statement "
            "says its old key is your MasterKey"
        )
        print(describe(st))
        print(f"file SHA-256     {sha}")
        print(
            "UNANCHORED: give the old key's fingerprint or KCV from the paper log "
            "(--old-fingerprint) or the old set's manifest (--old-manifest)",
            file=sys.stderr,
        )
        return 4
    extra = " and the new key is the one given" if args.new_fingerprint else ""
    print(
        f"{path}: OK: signed by the old MasterKey you named and by the new one{extra}: the "
        "holders of the old key vouch for the new key"
    )
    print(describe(st))
    print(f"file SHA-256     {sha}")
    return 0
