"""The ceremony's signed records: genesis manifest, seal manifest, journal and transcript.

The keyholder signs them with the MasterKey-derived Ed25519 key, through its
domain-separated SIGN operation (:mod:`core.signatures`). The order problem: the
MasterKey is wiped at the ceremony's wipe step, before the journal is closed (the wipe
itself, the summary and the closing must be in the journal). So the wipe step asks the
keyholder to keep only the derived signing key (``wipe_keep_signing``), in locked memory;
that key can then sign exactly two things, once each: the closed journal's final hash and
the transcript; after the second signature (or a full wipe, or the keyholder's end) it is
gone too. docs/formats.md ("Signature blocks") and docs/threat-model.md explain the choice.

A keyholder port without ``sign`` (the engine-logic test double) produces unsigned
records, reported as such. A key is used to sign only once it is verified (generated here,
or rebuilt and matching its manifest or a witness's KCV): a record signed by a wrong key
would only mislead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import journal as _journal
from core import signatures as sig
from core.errors import KcmError

__all__ = [
    "ClosedRecords",
    "ManifestSignatureError",
    "RotatedOut",
    "RotationRecordError",
    "SetRotatedOut",
    "can_sign",
    "check_manifest",
    "check_usable",
    "close_and_sign",
    "mark_rotated_out",
    "rotated_out",
    "rotated_out_manifest",
    "sign_block",
    "signed_manifest",
    "wipe",
]


class ManifestSignatureError(KcmError):
    """A manifest's signature is malformed, does not verify, or is by another key."""

    code = "manifest-signature"


def can_sign(keyholder: Any) -> bool:
    """True if the keyholder port offers the SIGN operation."""
    return callable(getattr(keyholder, "sign", None))


def sign_block(keyholder: Any, purpose: str, message: bytes) -> dict[str, str]:
    """Have the keyholder sign ``message`` for ``purpose``; the public signature block."""
    reply = keyholder.sign(purpose, message)
    signature = reply["signature"]
    if isinstance(signature, str):
        signature = bytes.fromhex(signature)
    return sig.make_block(purpose, str(reply["fingerprint"]), bytes(signature))


def signed_manifest(keyholder: Any, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with a fresh ``signature`` block (unchanged if the port cannot sign)."""
    out = {k: v for k, v in manifest.items() if k != "signature"}
    if can_sign(keyholder):
        block = sign_block(keyholder, "genesis-manifest", sig.manifest_message(out))
        if out.get("fingerprint") and block["public_key"] != out["fingerprint"]:
            raise ManifestSignatureError("the keyholder signed with another key than the manifest's")
        out["signature"] = block
    return out


def check_manifest(manifest: Mapping[str, Any]) -> bool:
    """Check a manifest's signature: True if signed (by its own fingerprint), False if it
    carries none (a manifest written before signatures, or by a test double).

    Raises:
        ManifestSignatureError: changed after signing, or signed by another key.
    """
    if "signature" not in manifest:
        return False
    try:
        signer = sig.verify_block(
            manifest["signature"], sig.manifest_message(manifest), purpose="genesis-manifest"
        )
    except sig.SignatureError as exc:
        raise ManifestSignatureError(str(exc)) from None
    if signer != manifest.get("fingerprint"):
        raise ManifestSignatureError("it is signed by another key than the MasterKey it names")
    return True


def wipe(keyholder: Any, *, keep_signing: bool) -> None:
    """Wipe the keyholder; keep only its signing key when asked and possible."""
    keep = getattr(keyholder, "wipe_keep_signing", None)
    if keep_signing and callable(keep):
        keep()
    else:
        keyholder.wipe()


@dataclass
class ClosedRecords:
    """What closing the journal produced."""

    final_hash: str
    final_words: list[str]
    exports: dict[str, Path] = field(default_factory=dict)
    signature: dict[str, Any] | None = None
    signature_error: str = ""


def signing_available(keyholder: Any) -> tuple[bool, str]:
    """Whether the keyholder can still sign now (a MasterKey or a kept signing key), and
    why not. A port without ``signing_available`` is taken at its word."""
    probe = getattr(keyholder, "signing_available", None)
    if not callable(probe):
        return True, ""
    try:
        return bool(probe()), "the keyholder holds no key that can sign"
    except Exception as exc:
        return False, f"the keyholder cannot be asked ({str(exc) or type(exc).__name__})"


def close_and_sign(
    journal: _journal.Journal,
    keyholder: Any,
    *,
    closing: Mapping[str, Any],
    signed_by: str | None,
    prefix: str,
    record: Callable[[str, dict[str, Any]], Any] | None = None,
) -> ClosedRecords:
    """Close the journal (naming the signing key in ``journal.closed`` when one will sign),
    sign its final hash (stored in the database, outside the chain), write the JSON Lines
    export (signature as its last line) and the transcript, sign the transcript
    (``transcript.md.sig``), then wipe whatever signing key is left in the keyholder.

    A failure to sign does not stop the ceremony from finishing: the journal then names a
    signing key without a signature, which ``journal verify`` reports (``signature_error``
    says why, for the screen).
    """
    details = dict(closing)
    if signed_by:
        ok, why = signing_available(keyholder)
        if not ok:
            # say so in the journal itself, and do not claim a signature that cannot come
            # (a missing signature where the closing row names a key reads as tampering)
            if record is not None:
                record("journal.unsigned", {"reason": why, "fingerprint": signed_by})
            signed_by = None
    if signed_by:
        details["signed_by"] = signed_by
    journal.close(details)
    final = journal.final_hash()
    out = ClosedRecords(final, _journal.hash_words(final))
    events = journal.events()
    folder = journal.path.parent
    try:
        if signed_by:
            try:
                block = sign_block(
                    keyholder,
                    "journal-final-hash",
                    sig.journal_message(journal.ceremony_id, events[-1].seq, final),
                )
                journal.add_signature(block)
                out.signature = block
            except Exception as exc:
                out.signature_error = f"the journal could not be signed: {exc}"
        out.exports["jsonl"] = _journal.export_jsonl(
            events, folder / f"{prefix}journal.jsonl", signature=out.signature
        )
        transcript = _journal.export_transcript(
            events, folder / f"{prefix}transcript.md", signature=out.signature
        )
        out.exports["transcript"] = transcript
        if out.signature is not None:
            try:
                data = transcript.read_bytes()
                tblock = sign_block(
                    keyholder, "ceremony-transcript", sig.transcript_message(transcript.name, data)
                )
                doc = {
                    "format": "openkcm-transcript-signature",
                    "version": 1,
                    "file": transcript.name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "signature": tblock,
                }
                sig_path = transcript.with_name(transcript.name + ".sig")
                fd = os.open(
                    sig_path,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                )
                with open(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(doc, sort_keys=True, indent=2) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                out.exports["transcript_sig"] = sig_path
            except Exception as exc:
                out.signature_error = f"the transcript could not be signed: {exc}"
    finally:
        if signed_by:
            try:  # nothing signs after this: drop what may be left of the signing key
                keyholder.wipe()
            except Exception:
                pass
    return out


# ----------------------------------------------------------------------------- rotation
#
# A MasterKey rotation (docs/formats.md sections 7.1 and 10) marks the OLD share set's
# manifest rotated-out: version 2 of the share-set file, with a ``rotated_out`` member,
# re-signed by the old key (SIGN ``genesis-manifest``, as in section 9.2). The new set's
# manifest names the old set in ``supersedes`` (a set with another fingerprint: a
# rotation, not a reshare). The engine-facing API is three calls:
#
#   mark_rotated_out(sign, manifest, statement)   -> the signed version-2 manifest to write
#   rotated_out(manifest, manifests)              -> RotatedOut | None   (verify-shares)
#   check_usable(manifest, manifests, transition=, now=) -> RotatedOut | None, or raises
#       SetRotatedOut (unseal-and-seal: always; a transition ceremony: after the window)


class SetRotatedOut(KcmError):
    """A rotated-out share set was asked for: the message names the rotation ceremony and
    the new set; ``rotation`` holds the facts."""

    code = "set-rotated-out"

    def __init__(self, message: str, rotation: RotatedOut) -> None:
        super().__init__(message, set_id=str(rotation.set_id))
        self.rotation = rotation


class RotationRecordError(ManifestSignatureError):
    """A rotated-out mark that is malformed, unsigned, or contradicts the new set's
    manifest: the records of the rotation cannot be trusted (refuse the set)."""

    code = "rotation-record"


ROTATED_OUT_MEMBERS = (
    "ceremony_id",
    "rotated_utc",
    "new_set_id",
    "new_fingerprint",
    "statement_sha256",
    "transition_expires_utc",
)


@dataclass(frozen=True)
class RotatedOut:
    """Public facts of a rotated-out share set."""

    set_id: int
    ceremony_id: str
    new_set_id: int
    new_fingerprint: str
    rotated_utc: str
    transition_expires_utc: str | None
    statement_sha256: str
    #: True when the set's own signed manifest carries the mark; False when only the new
    #: set's manifest says so (the old manifest was not marked, or was put back)
    marked: bool

    def transition_open(self, now: datetime | None = None) -> bool:
        """True while a transition ceremony may still open the set (before the expiry)."""
        if not self.transition_expires_utc:
            return False
        end = datetime.strptime(self.transition_expires_utc, "%Y-%m-%dT%H:%M:%SZ")
        return (now or datetime.now(UTC)) < end.replace(tzinfo=UTC)

    def describe(self) -> str:
        """Who rotated the set out, and to which set."""
        when = f" on {self.rotated_utc}" if self.rotated_utc else ""
        return (
            f"share set {self.set_id} was rotated out by ceremony {self.ceremony_id}{when}: "
            f"its MasterKey was replaced by the key of set {self.new_set_id} "
            f"(KCV {' '.join(self.new_fingerprint[i : i + 4] for i in range(0, 16, 4))})"
        )

    def to_dict(self) -> dict[str, Any]:
        """For the journal."""
        return dataclasses.asdict(self)


def _utc_text(value: object) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def _mark(manifest: Mapping[str, Any]) -> RotatedOut:
    """The ``rotated_out`` member of a version-2 manifest, every rule checked and the
    manifest's signature verified (by its own fingerprint: the old key)."""
    from core import continuity

    set_id = manifest.get("set_id")
    mark = manifest.get("rotated_out")
    if manifest.get("version") != 2:
        raise RotationRecordError(
            f"the manifest of set {set_id} carries rotated_out but is not version 2"
        )
    if not isinstance(mark, dict) or set(mark) != set(ROTATED_OUT_MEMBERS):
        raise RotationRecordError(
            f"the rotated_out mark of set {set_id} must have exactly "
            + ", ".join(ROTATED_OUT_MEMBERS)
        )
    hex64 = re.compile(r"^[0-9a-f]{64}$")
    ok = (
        isinstance(mark["ceremony_id"], str)
        and bool(continuity.SAFE_TEXT.match(mark["ceremony_id"]))
        and _utc_text(mark["rotated_utc"])
        and isinstance(mark["new_set_id"], int)
        and not isinstance(mark["new_set_id"], bool)
        and 0 <= mark["new_set_id"] <= 32767
        and mark["new_set_id"] != set_id
        and isinstance(mark["new_fingerprint"], str)
        and bool(hex64.match(mark["new_fingerprint"]))
        and mark["new_fingerprint"] != manifest.get("fingerprint")
        and isinstance(mark["statement_sha256"], str)
        and bool(hex64.match(mark["statement_sha256"]))
    )
    if not ok:
        raise RotationRecordError(f"the rotated_out mark of set {set_id} is malformed")
    expires = mark["transition_expires_utc"]
    if expires is not None:
        try:
            continuity.check_transition_expiry(expires, mark["rotated_utc"])
        except continuity.StatementError as exc:
            raise RotationRecordError(f"the rotated_out mark of set {set_id}: {exc}") from None
    try:
        signed = check_manifest(manifest)
    except ManifestSignatureError as exc:
        raise RotationRecordError(f"the rotated-out manifest of set {set_id}: {exc}") from None
    if not signed:
        raise RotationRecordError(
            f"the rotated-out manifest of set {set_id} is not signed: a rotated-out mark is "
            "always signed by the old key"
        )
    return RotatedOut(
        set_id=int(set_id) if isinstance(set_id, int) else -1,
        ceremony_id=mark["ceremony_id"],
        new_set_id=mark["new_set_id"],
        new_fingerprint=mark["new_fingerprint"],
        rotated_utc=mark["rotated_utc"],
        transition_expires_utc=expires,
        statement_sha256=mark["statement_sha256"],
        marked=True,
    )


def rotated_out(
    manifest: Mapping[str, Any], manifests: Sequence[Mapping[str, Any]] = ()
) -> RotatedOut | None:
    """Is this share set rotated out? By which ceremony, to which set, until when may a
    transition open it?

    Two records can say so: the set's own manifest (version 2, ``rotated_out``, signed by
    the old key) and the new set's manifest, which names this set in ``supersedes`` with
    another fingerprint (a reshare keeps the fingerprint). Either is enough; when both are
    there they must agree. Only the mark gives a transition window: a set known as rotated
    out only from the new set's manifest cannot be opened by a transition.

    Args:
        manifest: the set's manifest (as read from ``manifests/``; ``_file``/``_signed``
            members the engine adds are ignored).
        manifests: the other manifests of this ceremony's kind (practice or real) to look
            for the new set's.

    Raises:
        RotationRecordError: a mark that is malformed, unsigned or not by the old key, a
            new set's manifest whose signature does not verify, or records that disagree.
    """
    m = {k: v for k, v in manifest.items() if not k.startswith("_")}
    set_id, fp = m.get("set_id"), m.get("fingerprint")
    mark = _mark(m) if "rotated_out" in m else None
    newer = []
    for other in manifests:
        o = {k: v for k, v in other.items() if not k.startswith("_")}
        if o.get("set_id") == set_id or o.get("supersedes") != set_id:
            continue
        if o.get("fingerprint") == fp:
            continue  # a reshare of the same key: superseded, not rotated out
        try:
            check_manifest(o)
        except ManifestSignatureError as exc:
            raise RotationRecordError(
                f"the manifest of set {o.get('set_id')} says it replaces set {set_id}, but {exc}"
            ) from None
        newer.append(o)
    for o in newer:
        if mark is not None and (
            o.get("set_id") != mark.new_set_id or o.get("fingerprint") != mark.new_fingerprint
        ):
            raise RotationRecordError(
                f"set {set_id} is marked rotated out to set {mark.new_set_id}, but set "
                f"{o.get('set_id')} also says it replaces it: the rotation records disagree"
            )
    if mark is not None:
        return mark
    if not newer:
        return None
    o = newer[0]
    return RotatedOut(
        set_id=int(set_id) if isinstance(set_id, int) else -1,
        ceremony_id=str(o.get("ceremony_id", "?")),
        new_set_id=int(o["set_id"]),
        new_fingerprint=str(o.get("fingerprint", "")),
        rotated_utc="",
        transition_expires_utc=None,
        statement_sha256="",
        marked=False,
    )


def check_usable(
    manifest: Mapping[str, Any],
    manifests: Sequence[Mapping[str, Any]] = (),
    *,
    transition: bool = False,
    now: datetime | None = None,
) -> RotatedOut | None:
    """Refuse a rotated-out set, or let a transition ceremony open it within its window.

    Returns None for a set that is not rotated out; the :class:`RotatedOut` facts when
    ``transition`` is true and the window is still open (the journal records that the set
    was opened under the transition, until when).

    Raises:
        SetRotatedOut: always without ``transition`` (unseal-and-seal, reshare...): the
            message names the rotation ceremony and the new set; with ``transition``: after
            the window's end, or when the rotation gave no window.
        RotationRecordError: see :func:`rotated_out`.
    """
    r = rotated_out(manifest, manifests)
    if r is None:
        return None
    if not transition:
        hint = (
            f" Until {r.transition_expires_utc} a transition ceremony may still open it "
            "for the online re-wrap."
            if r.transition_open(now)
            else ""
        )
        raise SetRotatedOut(
            f"{r.describe()}. Its shares are refused: use the shares of set {r.new_set_id}.{hint}",
            r,
        )
    if r.transition_open(now):
        return r
    why = (
        f"its transition window ended at {r.transition_expires_utc}"
        if r.transition_expires_utc
        else "the rotation gave it no transition window"
        if r.marked
        else "its own manifest carries no rotated-out mark with a transition window"
    )
    raise SetRotatedOut(
        f"{r.describe()}; {why}: it can no longer be opened. Use the shares of set "
        f"{r.new_set_id}.",
        r,
    )


def rotated_out_manifest(manifest: Mapping[str, Any], statement: bytes) -> dict[str, Any]:
    """The old set's manifest marked rotated out (version 2, unsigned): the facts come from
    the continuity statement, which must verify and name this set and its key as the old.

    Raises:
        RotationRecordError: the statement does not verify or is about another set or key.
    """
    import hashlib as _hashlib

    from core import continuity

    m = {k: v for k, v in manifest.items() if k != "signature" and not k.startswith("_")}
    try:
        st = continuity.verify(statement, old_fingerprint=str(m.get("fingerprint", "")))
    except continuity.StatementError as exc:
        raise RotationRecordError(f"the continuity statement cannot mark this set: {exc}") from None
    if st.old.set_id != m.get("set_id"):
        raise RotationRecordError(
            f"the continuity statement rotates set {st.old.set_id} out, not set {m.get('set_id')}"
        )
    if st.practice != (m.get("practice") is True):
        raise RotationRecordError("a PRACTICE rotation marks only PRACTICE sets, and a real one only real sets")
    m["version"] = 2
    m["rotated_out"] = {
        "ceremony_id": st.ceremony_id,
        "rotated_utc": st.created_utc,
        "new_set_id": st.new.set_id,
        "new_fingerprint": st.new.fingerprint,
        "statement_sha256": _hashlib.sha256(statement).hexdigest(),
        "transition_expires_utc": st.transition_expires_utc,
    }
    return m


def mark_rotated_out(
    sign: Callable[[str, bytes], Mapping[str, Any]],
    manifest: Mapping[str, Any],
    statement: bytes,
) -> dict[str, Any]:
    """The old set's manifest, marked rotated out and signed by the old key.

    Args:
        sign: the keyholder's SIGN bound to the OLD key, ``sign(purpose, message) ->
            {"signature": bytes, "fingerprint": hex}`` (e.g. ``lambda p, m:
            client.sign_reply(p, m, key="old")``).
        manifest: the old set's manifest (as collected at the start of the rotation).
        statement: the continuity statement's bytes (from ``rotation_statement``).

    Returns:
        The version-2 manifest with its fresh ``signature`` block (section 9.2), to write
        in place of the old one in ``manifests/`` (and into the export).

    Raises:
        RotationRecordError: the statement does not fit this set, or the keyholder signed
            with another key than the set's (the old) key.
    """
    m = rotated_out_manifest(manifest, statement)
    reply = sign("genesis-manifest", sig.manifest_message(m))
    signature = reply["signature"]
    if isinstance(signature, str):
        signature = bytes.fromhex(signature)
    block = sig.make_block("genesis-manifest", str(reply["fingerprint"]), bytes(signature))
    if block["public_key"] != m.get("fingerprint"):
        raise RotationRecordError(
            "the keyholder signed the rotated-out mark with another key than the old set's: "
            "sign it with key='old'"
        )
    m["signature"] = block
    _mark(m)  # what is written must read back as a valid mark
    return m
