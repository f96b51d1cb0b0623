"""The errors the screens handle: every one a :class:`core.errors.KcmError` with a code
from :mod:`core.codes`. Screens decide by class or code, never by the message's text."""

from __future__ import annotations

from core.codes import message_with_action
from core.errors import KcmError

__all__ = ["BackendError", "CarrierRefused", "NotAvailable", "ShareRefused", "carrier_message"]


class BackendError(KcmError):
    """A core operation refused or failed; the message is for the people in the room."""


class NotAvailable(BackendError):
    """A core API the TUI needs does not exist (yet) in this build."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not available yet: {what} (this build of the core lacks it)", code="not-available")
        self.what = what


class ShareRefused(BackendError):
    """A share was refused (other set, duplicate, superseded set, bad checksum)."""

    code = "share-refused"


class CarrierRefused(ShareRefused):
    """A share carrier failed (wrong PIN, PIN locked, wrong card, card removed, no token,
    unreadable QR, no camera...). Nothing collected or handed out so far is lost.

    ``code`` is the carrier error code (``card-pin-incorrect``, ``card-pin-locked``,
    ``card-wrong-card``, ``card-removed``, ``card-no-token``, ``qr-not-found``...; see
    ``core.carriers.errors``), ``carrier`` the carrier that failed.
    """

    def __init__(self, message: str, *, code: str = "", carrier: str = "") -> None:
        super().__init__(message, code=code or "carrier")
        self.carrier = carrier


def carrier_message(exc: CarrierRefused) -> str:
    """The engine's message plus what to do next (:func:`core.codes.message_with_action`)."""
    return message_with_action(str(exc), exc.code)
