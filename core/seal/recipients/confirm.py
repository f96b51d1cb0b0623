"""The out-of-band fingerprint confirmation of a recipient before anything is sealed to it."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

from core.seal.recipients.errors import FingerprintMismatch, UnconfirmedRecipient
from core.seal.recipients.model import Confirmation, Recipient, _check_text
from core.words import to_words


def _normalise_fp(text: str) -> tuple[str, str]:
    """Return (method, normalised) for a fingerprint typed as hex or as words."""
    t = text.strip().lower()
    hexchars = re.sub(r"[\s:]", "", t)
    if re.fullmatch(r"[0-9a-f]{64}", hexchars):
        return "hex", hexchars
    return "words", " ".join(t.split())

def confirm(
    recipient: Recipient, witness: str, out_of_band: str, *, now: datetime | None = None
) -> Recipient:
    """Record a witness's confirmation of a recipient's fingerprint.

    Args:
        recipient: the recipient shown on screen.
        witness: the witness's name (as in the ceremony script).
        out_of_band: the fingerprint from the independent copy, as hex (any spacing or
            colons) or as the words.
        now: timestamp (tests).

    Returns:
        A copy of the recipient carrying the :class:`Confirmation`.

    Raises:
        FingerprintMismatch: the copies differ: do not seal to this key.
    """
    _check_text("witness", witness)
    method, norm = _normalise_fp(out_of_band)
    expected = (
        recipient.fingerprint_hex if method == "hex" else " ".join(recipient.fingerprint_words)
    )
    if norm != expected:
        raise FingerprintMismatch(
            f"{recipient.name}: the out-of-band fingerprint does NOT match the key brought in. "
            "Do not seal to it; get the public key again from its owner."
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dataclasses.replace(
        recipient, confirmation=Confirmation(witness, method, stamp, norm)
    )

def confirmation_matches(fingerprint: bytes, confirmed: str) -> bool:
    """True if ``confirmed`` (what a witness confirmed: 64 hex digits with any spacing or
    colons, or the 26 words) is the SHA-256 ``fingerprint`` of the key at hand."""
    method, norm = _normalise_fp(confirmed)
    if method == "hex":
        return norm == fingerprint.hex()
    return norm == " ".join(to_words(fingerprint))

def require_confirmed(recipient: Recipient) -> Recipient:
    """Return the recipient if a witness confirmed it, else raise UnconfirmedRecipient."""
    if recipient.confirmation is None:
        raise UnconfirmedRecipient(
            f"{recipient.name}: no witness has confirmed this recipient's fingerprint; "
            "sealing to it is refused until the fingerprint is checked out of band"
        )
    return recipient
