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

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import journal as _journal
from core import signatures as sig
from core.errors import KcmError

__all__ = [
    "ClosedRecords",
    "ManifestSignatureError",
    "can_sign",
    "check_manifest",
    "close_and_sign",
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
