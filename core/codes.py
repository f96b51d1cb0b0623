"""Every error code of OpenKCM Ceremony, with what it means and what the room should do.

An error (:class:`core.errors.KcmError`) carries a stable ``code``; this registry is the
one place that says what each code means, which family it belongs to, and what the people
in the room do next. The UI decides by code (its family, or the code itself) and shows the
error's own message followed by :func:`action` where that adds something; it never looks
at the message's text. ``tests/unit/test_codes.py`` checks that every code raised or
declared anywhere in ``core`` and ``kcm_tui`` is listed here, and that every listed code
is used.

Families (:class:`Family`):

* ``intent``: the UI asked for something not allowed now; nothing changed.
* ``step``: the current step's action failed; the step can be retried, nothing is lost.
* ``share``: one share was refused; the step goes on, the shares already in are kept.
* ``carrier``: the way a share comes in or goes out failed (card, QR, scanner); fix the
  cause and try again, nothing is lost.
* ``input``: a file, key, script or record was refused as malformed or unsafe.
* ``media``: the export medium (or a workspace path on it) failed or was refused.
* ``keyholder``: the keyholder process or its protocol.
* ``journal``: the ceremony's journal.
* ``system``: the workstation (locked memory, console font, self test, demo workspace).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["CODES", "Code", "Family", "action", "family", "lookup", "message_with_action"]


class Family(StrEnum):
    """What kind of failure a code is, which decides how the UI presents it."""

    INTENT = "intent"
    STEP = "step"
    SHARE = "share"
    CARRIER = "carrier"
    INPUT = "input"
    MEDIA = "media"
    KEYHOLDER = "keyholder"
    JOURNAL = "journal"
    SYSTEM = "system"


@dataclass(frozen=True)
class Code:
    """One error code: its family, what it means, what the room does next.

    ``hint``: the action adds something the message does not say, so the UI shows it
    after the message (:func:`message_with_action`).
    """

    code: str
    family: Family
    meaning: str
    action: str
    hint: bool = False


_F = Family
_ENTRIES: Final[tuple[Code, ...]] = (
    # ------------------------------------------------------------------ root
    Code("error", _F.SYSTEM, "an error without a more specific code",
         "Read the message; if it does not say what to do, record an exception (F2) and ask the administrator."),
    # ------------------------------------------------------------------ ceremony engine
    Code("intent-refused", _F.INTENT, "the action is not allowed at this point of the ceremony",
         "Do first what the message names (acknowledgment, confirmation, the right step)."),
    Code("step-failed", _F.STEP, "the step's action failed; the step is marked FAILED and journaled",
         "Fix the cause the message names, then Retry; everything done before is kept."),
    Code("not-available", _F.STEP, "this build's keyholder cannot do what the script asks",
         "Record an exception and abort: the script needs an operation this workstation lacks."),
    Code("share-refused", _F.SHARE, "a share was refused",
         "Check the share with its custodian and enter it again, or enter another custodian's share."),
    Code("script-invalid", _F.INPUT, "the ceremony script has problems (each listed with file and line)",
         "Fix the script (kcm-ceremony script check FILE), print it again, start again."),
    Code("script-demo-values", _F.INPUT, "a real ceremony's script still carries demo values (the demo cluster id, DEMO- card serials)",
         "Edit the script for this ceremony (kcm-ceremony script check FILE lists each value with its line), start again."),
    Code("share-set-kind", _F.INTENT, "the medium holds share sets of the other kind only (PRACTICE sets for a real ceremony, real sets for a practice one)",
         "Run the script the message names (the practice one to rehearse), or bring the medium with this ceremony's share set."),
    Code("manifest-signature", _F.INPUT, "a share-set manifest's signature is malformed, does not verify, or is by another key",
         "Use the manifest exported at genesis, kept apart from this medium."),
    # ------------------------------------------------------------------ MasterKey rotation
    Code("set-rotated-out", _F.STEP, "the share set was rotated out by a MasterKey rotation (its key was replaced)",
         "Use the shares of the new set the message names; only a transition ceremony may open the old set, before its expiry."),
    Code("rotation-record", _F.INPUT, "a rotated-out mark is malformed, unsigned, not by the old key, or contradicts the new set's manifest",
         "Use the manifests exported by the rotation ceremony, kept apart from this medium."),
    Code("set-retired", _F.STEP, "the share set is void: the ceremony that made it was aborted or interrupted, or it was retired",
         "Use the shares of another (active) set; the message names the ceremony and the reason."),
    Code("rotation-statement", _F.INPUT, "a continuity statement breaks a reader rule, does not verify, or names another key",
         "Do not trust the new key it names: get the statement from the rotation's export and the old KCV from the paper log."),
    # ------------------------------------------------------------------ SLIP-39 shares
    Code("slip39", _F.SHARE, "a share or a set of shares cannot be used",
         "Check the share's words with the custodian's sheet."),
    Code("share-format", _F.SHARE, "the share is malformed (length, padding, parameters)",
         "Check every word with the custodian's sheet and enter the share again."),
    Code("checksum", _F.SHARE, "the share's RS1024 checksum does not verify: a word is wrong",
         "Re-type the word the screen names (or check every word with the sheet)."),
    Code("digest", _F.SHARE, "the shares combine, but the digest says the result is wrong",
         "One of the shares is wrong: check each with its custodian, then collect again."),
    Code("recovery", _F.SHARE, "the share does not fit the recovery in progress",
         "Enter a share of the set being collected."),
    Code("other-set", _F.SHARE, "the share belongs to another share set (or a superseded one)",
         "Bring the share of the set this ceremony collects; the message names both sets."),
    Code("extendable-mix", _F.SHARE, "extendable and non-extendable shares of one set were mixed",
         "Enter only shares of the one share set being collected."),
    Code("mismatch", _F.SHARE, "the share's parameters disagree with the shares already given",
         "One of the two is wrong: check both with their custodians."),
    Code("duplicate", _F.SHARE, "this share was already given",
         "Enter another custodian's share."),
    Code("conflict", _F.SHARE, "a share with the same group and member but other words was already given",
         "One of the two is wrong: check both sheets with their custodians."),
    Code("commitment", _F.SHARE, "the share is not the one committed to in the genesis manifest",
         "Check the words with the custodian's sheet; a share that still fails is not of this set."),
    Code("check-wrong-share", _F.SHARE, "the share typed back is of this set but another custodian's share",
         "The custodian types back their own share, from their own sheet."),
    Code("insufficient", _F.SHARE, "not enough shares to rebuild the key yet",
         "Collect the shares the screen still asks for."),
    Code("wrong-size", _F.SHARE, "the share is of a secret of another size than the MasterKey",
         "Bring a 33-word share of this MasterKey."),
    Code("kcv-mismatch", _F.SHARE, "the KCV the witness confirmed differs from the key held",
         "Compare the words again with the genesis record; a real difference means another key: abort."),
    Code("selftest", _F.SYSTEM, "the shares just made do not all give back the MasterKey",
         "Abort the ceremony (the key is wiped) and run the genesis again."),
    Code("shares", _F.SHARE, "a share operation in the keyholder failed",
         "Read the message; enter the share again or record an exception."),
    # ------------------------------------------------------------------ carriers
    Code("carrier", _F.CARRIER, "a share carrier (card, QR, scanner) failed",
         "Fix the cause the message names and try again; nothing collected is lost."),
    Code("qr-payload", _F.CARRIER, "the QR code read is not a share QR (length, digits, checksum)",
         "Scan the custodian's share QR, not another code."),
    Code("qr-not-found", _F.CARRIER, "no QR code was found in the image or the camera frames",
         "No QR code was found: check the image or the camera, then try again.", hint=True),
    Code("qr-unreadable", _F.CARRIER, "the image file is missing, empty, too large, truncated or not an image",
         "Choose a PNG or JPEG photo of the share QR (under 40 MiB), or enter the share another way.", hint=True),
    Code("qr-decoder-failed", _F.CARRIER, "the sandboxed image decoder stopped without an answer",
         "Try another photo of the QR, or enter the share another way; nothing collected is lost."),
    Code("scanner", _F.CARRIER, "the handheld scanner's input was not a complete share QR",
         "Scan the QR again, steadily, in one go."),
    Code("card", _F.CARRIER, "a smart card operation failed",
         "Check the card and the reader, then try again."),
    Code("card-module", _F.CARRIER, "the PKCS#11 module could not be loaded or initialised",
         "Check that the reader's module is installed on the workstation; F5 rescans."),
    Code("card-module-refused", _F.CARRIER, "a PKCS#11 module the keyholder was not started with (or a file failing its checks)",
         "Use the modules installed on the workstation; a library from a medium is never loaded."),
    Code("module-refused", _F.INPUT, "a PKCS#11 module name or file was refused before loading",
         "Name one of the modules installed on the workstation (opensc, ykcs11)."),
    Code("card-no-reader", _F.CARRIER, "no card reader is present",
         "Plug in the card reader, then F5 to rescan.", hint=True),
    Code("card-no-token", _F.CARRIER, "no card (or not the one asked for) is in any reader",
         "Insert the custodian's card, F5 to rescan, then retry.", hint=True),
    Code("card-wrong-card", _F.CARRIER, "the card is not one this ceremony expects",
         "Take that card out and insert the custodian's own card, then F5 to rescan.", hint=True),
    Code("card-pin-incorrect", _F.CARRIER, "the card's PIN was wrong",
         "Press Enter and type the PIN again on the keyholder's screen (the card counts the wrong tries).", hint=True),
    Code("card-pin-cancelled", _F.CARRIER, "the PIN entry on the keyholder's screen was cancelled; nothing reached the card",
         "Press Enter to type the PIN again on the keyholder's screen (no try was counted).", hint=True),
    Code("card-pin-locked", _F.CARRIER, "the card's user PIN is blocked",
         "This card's PIN is locked: its owner must unblock it with the PUK (outside the ceremony) or the share comes in another way.", hint=True),
    Code("card-removed", _F.CARRIER, "the card went away during the operation",
         "The card was removed: insert it again, F5 to rescan, then retry.", hint=True),
    Code("card-full", _F.CARRIER, "the card has no room for another object",
         "Use a card with free space, or one without data objects (a sealed share file)."),
    Code("card-mechanism", _F.CARRIER, "the card lacks a mechanism the ceremony needs",
         "Use a card of a supported model."),
    Code("card-no-share", _F.CARRIER, "the card holds no share object and no sealed share file was found",
         "Bring the sealed share file of this card (card-shares/ on the medium)."),
    Code("card-verify", _F.CARRIER, "reading the share back from the card did not give the share written",
         "Do not accept this card: write the share to another card."),
    # ------------------------------------------------------------------ keyholder
    Code("keyholder", _F.KEYHOLDER, "a keyholder operation failed",
         "Read the message; retry, or record an exception and abort."),
    Code("malformed", _F.KEYHOLDER, "the keyholder refused a malformed request",
         "This is a program fault: record an exception and abort the ceremony."),
    Code("unknown-op", _F.KEYHOLDER, "the keyholder does not know the operation",
         "This build's keyholder lacks the operation: record an exception and abort."),
    Code("refused", _F.KEYHOLDER, "the request conflicts with the keyholder's state",
         "Do the steps in the script's order; the message says what is missing."),
    Code("ambiguous-key", _F.KEYHOLDER, "a rotation is in progress and the request does not name its key (old or new)",
         "This is a program fault: record an exception and abort the ceremony."),
    Code("no-key", _F.KEYHOLDER, "the operation needs a MasterKey and none is held",
         "Generate or rebuild the key first (the script's order)."),
    Code("died", _F.KEYHOLDER, "the keyholder process is gone (its memory went with it)",
         "Abort the ceremony and start again; shares already handed out stay valid."),
    Code("internal", _F.KEYHOLDER, "an unexpected error inside the keyholder (its text is not shown)",
         "Retry; if it happens again, record an exception and abort."),
    Code("protocol", _F.KEYHOLDER, "a malformed or out-of-version frame between the program and the keyholder",
         "Record an exception and abort: the two processes no longer understand each other."),
    Code("keyholder-start", _F.KEYHOLDER, "the keyholder process could not be started",
         "Check the workstation (preflight), then begin again."),
    Code("keyholder-launcher", _F.KEYHOLDER, "the keyholder launcher (the root service that starts the keyholder as its own user) failed or is misconfigured",
         "Check /etc/kcm/keyholder.toml and kcm-keyholder.socket (the message names the cause), then begin again."),
    Code("keyholder-policy", _F.KEYHOLDER, "the keyholder launcher's policy does not allow the request (unlocked memory, practice keys, this user)",
         "Start the ceremony as the policy allows (without --demo on the ceremony ISO), then begin again."),
    Code("privsep-refused", _F.SYSTEM, "a privileged service (keyholder launcher, media service) refused its caller, its request or its policy file",
         "Use the ceremony workstation as it booted (the program as kcm, root-owned policy files), then retry."),
    Code("secure-memory", _F.SYSTEM, "locked memory could not be had, or a buffer was misused",
         "Use the ceremony workstation (memfd_secret or mlock must work); in a demo, allow unlocked memory."),
    # ------------------------------------------------------------------ inputs: keys, envelopes, records
    Code("recipient", _F.INPUT, "a recipient key or recipients file was refused",
         "Bring the recipient's public key file again; the message says what is wrong."),
    Code("key-malformed", _F.INPUT, "the key file cannot be parsed in any supported encoding",
         "Export the public key again (PEM, DER, JWK or age) and bring the new file."),
    Code("key-wrong-type", _F.INPUT, "the key is of a type this recipient kind cannot use",
         "Bring the key the script's recipient kind names."),
    Code("key-weak", _F.INPUT, "the key is too small or has unsafe parameters",
         "Bring a key of the required size (RSA 3072 or more)."),
    Code("key-private", _F.INPUT, "a private key was brought where a public key belongs (it is not stored)",
         "Destroy the copy on the medium and bring the public key only."),
    Code("key-symmetric", _F.INPUT, "a symmetric key was brought where a public key belongs",
         "Destroy the copy on the medium and bring the recipient's public key."),
    Code("recipient-unconfirmed", _F.INPUT, "sealing was asked for a recipient no witness confirmed",
         "The witness compares the recipient's fingerprint first (the verify step)."),
    Code("fingerprint-mismatch", _F.INPUT, "the fingerprint read out of band does not match the key brought in",
         "Stop: the key on the medium is not the recipient's. Bring the right key."),
    Code("envelope", _F.INPUT, "a sealed envelope cannot be built or does not follow the format",
         "Read the message; an envelope from outside must be the one exported by the ceremony."),
    Code("age-format", _F.INPUT, "an age recipient or file does not follow the age v1 format",
         "Bring the custodian's age recipient (age1...) again."),
    Code("byok", _F.INPUT, "a BYOK import file cannot be made",
         "Read the message: usually a wrapping key of the wrong size or an expired import window."),
    Code("signature", _F.INPUT, "a signature block is malformed or does not verify",
         "Use the original file: this one was changed after signing, or signed by another key."),
    Code("strict-json", _F.INPUT, "a JSON file breaks a rule of docs/formats.md section 0 (duplicate key, BOM...)",
         "Use the file as the ceremony wrote it; an edited file is refused."),
    # ------------------------------------------------------------------ media and paths
    Code("media", _F.MEDIA, "a media operation failed",
         "Fix the medium or insert another one, then Retry; nothing is lost."),
    Code("media-full", _F.MEDIA, "not enough free space on the medium",
         "Insert a medium with more free space, then Retry."),
    Code("media-read-only", _F.MEDIA, "the medium is write-protected or mounted read-only",
         "Slide the lock switch off, re-insert the medium, F5, then Retry."),
    Code("media-gone", _F.MEDIA, "the medium was removed or failed during the write",
         "Insert the medium again (or another one), then Retry: the write starts over."),
    Code("media-name-clash", _F.MEDIA, "a file of this export already exists on the medium",
         "Use a fresh medium, or one without this ceremony's export folder."),
    Code("media-verify", _F.MEDIA, "what was read back differs from what was written",
         "Do not use this medium: insert another one and Retry."),
    Code("media-not-removable", _F.MEDIA, "the target is not a removable medium",
         "Choose a removable medium (the workstation's own disks are never written)."),
    Code("media-hostile", _F.MEDIA, "something planted on the medium would redirect or fake the export",
         "Do not use this medium: insert a freshly formatted one."),
    Code("media-service", _F.MEDIA, "the media service (root's mount helper behind a socket) could not be reached or refused the request",
         "Check that kcm-media.socket runs on the ceremony workstation; the message names the cause."),
    Code("media-not-chosen", _F.MEDIA, "no usable medium folder was chosen",
         "Insert and mount the medium, then give its folder."),
    Code("unsafe-path", _F.MEDIA, "a path on the medium or workspace was refused",
         "The medium was prepared wrongly or tampered with: use a freshly prepared one."),
    Code("path-link", _F.MEDIA, "a symbolic link is on the path",
         "The medium was tampered with: use a freshly prepared one."),
    Code("path-not-a-file", _F.MEDIA, "a device, FIFO or folder stands where a plain file belongs",
         "The medium was tampered with: use a freshly prepared one."),
    Code("path-too-large", _F.MEDIA, "a file is larger than the ceremony accepts",
         "Bring the right file: the one on the medium is not what the ceremony expects."),
    Code("path-wrong-device", _F.MEDIA, "a file is not on the device of its folder (a redirected write)",
         "The medium was tampered with: use a freshly prepared one."),
    # ------------------------------------------------------------------ journal
    Code("journal", _F.JOURNAL, "the journal cannot be opened, written or verified",
         "Keep the medium; record the time on the paper log and ask the administrator."),
    Code("journal-secret-refused", _F.JOURNAL, "a value offered to the journal looked secret and was refused",
         "This is a program fault (nothing secret was written): record it on the paper log."),
    Code("journal-closed", _F.JOURNAL, "the journal is closed; nothing more can be appended",
         "Write it on the paper log (exception sheet)."),
    # ------------------------------------------------------------------ workstation
    Code("boot-selftest", _F.SYSTEM, "the image's self test output could not be read",
         "Boot the ceremony ISO again; if it repeats, do not use this image."),
    Code("console-font", _F.SYSTEM, "a console font could not be read or parsed",
         "Rebuild the ISO (the font on tty1 is part of the image)."),
    Code("demo-workspace", _F.SYSTEM, "the demo workspace cannot be created or read",
         "Delete the demo workspace (make run-clean) and start the demo again."),
)

#: code -> :class:`Code`.
CODES: Final[Mapping[str, Code]] = {c.code: c for c in _ENTRIES}
if len(CODES) != len(_ENTRIES):  # pragma: no cover - caught by the registry test too
    raise RuntimeError("an error code is listed twice in core.codes")


def lookup(code: str) -> Code:
    """The entry for ``code`` (the root entry ``error`` for an unknown code)."""
    return CODES.get(code) or CODES["error"]


def family(code: str) -> Family:
    """The family of ``code`` (``system`` for an unknown code)."""
    return lookup(code).family


def action(code: str) -> str:
    """What the room does next after an error with ``code``."""
    return lookup(code).action


def message_with_action(message: str, code: str) -> str:
    """``message``, then what to do next when the code's action adds to it (``hint``)."""
    entry = lookup(code)
    msg = message.rstrip()
    if not entry.hint or entry.code != code:
        return msg
    if msg and msg[-1] not in ".!?:":
        msg += "."
    return f"{msg} {entry.action}" if msg else entry.action
