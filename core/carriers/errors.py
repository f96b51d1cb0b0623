"""Errors of the share carriers (QR, scanner, smart cards).

They derive from :class:`core.errors.KcmError` and cross the keyholder pipe
(:func:`core.errors.wire_error`): the keyholder sends them to the parent with their stable
``code`` and the parent raises the same class again. Messages say what the people in the
room can do and never contain secret material. (This module imports no part of the
keyholder: carriers and keyholder share the error root instead.)
"""

from __future__ import annotations

from core.errors import KcmError, wire_error

__all__ = [
    "CardDataMissing",
    "CardError",
    "CardFull",
    "CardMechanismUnsupported",
    "CardModuleError",
    "CardModuleRefused",
    "CardNoReader",
    "CardNoToken",
    "CardPinCancelled",
    "CardPinIncorrect",
    "CardPinLocked",
    "CardRemoved",
    "CardVerifyFailed",
    "CarrierError",
    "QRDecoderFailed",
    "QRImageUnreadable",
    "QRNotFound",
    "QRPayloadError",
    "ScannerError",
    "WrongCard",
]


class CarrierError(KcmError):
    """A share carrier failed; the ceremony keeps its state and the step can be retried."""

    code = "carrier"


class QRPayloadError(CarrierError):
    """A decoded QR code is not a share payload (length, digits, word range, checksum)."""

    code = "qr-payload"


class QRNotFound(CarrierError):
    """No QR code could be decoded from the image or frames."""

    code = "qr-not-found"


class QRImageUnreadable(CarrierError):
    """An image file (or camera frame) is not an image the decoders can read: missing,
    empty, too large, truncated, not an image format, too many pixels."""

    code = "qr-unreadable"


class QRDecoderFailed(CarrierError):
    """The sandboxed image decoder (:mod:`core.carriers.sandbox`) stopped without an answer:
    it crashed, hit its time or memory limit, or its sandbox killed it. Nothing was read
    from the image; what was collected before is kept."""

    code = "qr-decoder-failed"


class ScannerError(CarrierError):
    """Keyboard-wedge scanner input was not a complete share burst."""

    code = "scanner"


class CardError(CarrierError):
    """A smart card (PKCS#11 token) operation failed."""

    code = "card"


class CardModuleError(CardError):
    """The PKCS#11 module could not be loaded or initialised."""

    code = "card-module"


class CardModuleRefused(CardModuleError):
    """A PKCS#11 module the keyholder was not started with (a path from a script, a
    request or a file), or whose file fails the ownership and location checks."""

    code = "card-module-refused"


class CardNoReader(CardError):
    """No card reader (PKCS#11 slot) is present."""

    code = "card-no-reader"


class CardNoToken(CardError):
    """No initialised card is in any reader, or not the one asked for."""

    code = "card-no-token"


class WrongCard(CardError):
    """The card's serial is not one this ceremony expects."""

    code = "card-wrong-card"


class CardPinIncorrect(CardError):
    """The PIN was wrong; the message gives the remaining tries when the card reports them."""

    code = "card-pin-incorrect"


class CardPinCancelled(CardError):
    """The PIN entry on the keyholder's terminal was cancelled (Esc), idled out or hung
    up: nothing was sent to the card, no try was counted."""

    code = "card-pin-cancelled"


class CardPinLocked(CardError):
    """The card's user PIN is blocked."""

    code = "card-pin-locked"


class CardRemoved(CardError):
    """The card went away in the middle of an operation."""

    code = "card-removed"


class CardFull(CardError):
    """The card has no room for another object."""

    code = "card-full"


class CardMechanismUnsupported(CardError):
    """The card does not support a mechanism we need (and no safe fallback exists)."""

    code = "card-mechanism"


class CardDataMissing(CardError):
    """The card holds no share object and no sealed share file was given."""

    code = "card-no-share"


class CardVerifyFailed(CardError):
    """Reading the share back from the card did not give the share that was written."""

    code = "card-verify"


for _cls in (
    CarrierError,
    QRPayloadError,
    QRNotFound,
    QRImageUnreadable,
    QRDecoderFailed,
    ScannerError,
    CardError,
    CardModuleError,
    CardModuleRefused,
    CardNoReader,
    CardNoToken,
    WrongCard,
    CardPinIncorrect,
    CardPinLocked,
    CardRemoved,
    CardFull,
    CardMechanismUnsupported,
    CardDataMissing,
    CardVerifyFailed,
):
    wire_error(_cls)
