"""The keyholder's exception family (:class:`core.errors.KcmError`). Messages are for the
people in the room and never contain secret material.

Every class here crosses the keyholder pipe (:func:`core.errors.wire_error`): the keyholder
sends its code, message and set id, and the parent raises the same class again. A code no
class registered arrives as a :class:`KeyholderError` carrying that code (for instance the
SLIP-39 recovery codes ``other-set``, ``duplicate``... of :class:`~core.keyholder.ops_shares.SharesError`).
"""

from __future__ import annotations

from core.errors import KcmError, wire_class, wire_error

__all__ = [
    "AmbiguousKey",
    "KeyholderDied",
    "KeyholderError",
    "MalformedRequest",
    "NoMasterKey",
    "Refused",
    "UnknownOperation",
    "error_class",
]


@wire_error
class KeyholderError(KcmError):
    """An operation failed; ``code`` is stable, ``message`` says what to do."""

    code = "keyholder"


@wire_error
class MalformedRequest(KeyholderError):
    """A frame or field the keyholder cannot accept."""

    code = "malformed"


@wire_error
class UnknownOperation(KeyholderError):
    """An opcode this keyholder does not know."""

    code = "unknown-op"


@wire_error
class Refused(KeyholderError):
    """The request conflicts with the keyholder's state (ADR-201 immutability, ...)."""

    code = "refused"


@wire_error
class AmbiguousKey(Refused):
    """A rotation is in progress and the request does not say which key (old or new)."""

    code = "ambiguous-key"


@wire_error
class NoMasterKey(KeyholderError):
    """The operation needs a MasterKey and none is held."""

    code = "no-key"


@wire_error
class KeyholderDied(KeyholderError):
    """The keyholder process is gone (its memory, and every secret, went with it)."""

    code = "died"


def error_class(code: str) -> type[KcmError]:
    """The exception class for an error code received from the keyholder (a
    :class:`KeyholderError` for a code no class registered)."""
    return wire_class(code, KeyholderError)
