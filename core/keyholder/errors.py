"""The keyholder's exception family. Messages are for the people in the room and never
contain secret material."""

from __future__ import annotations

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


class KeyholderError(Exception):
    """An operation failed; ``code`` is stable, ``message`` says what to do."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class MalformedRequest(KeyholderError):
    """A frame or field the keyholder cannot accept."""

    code = "malformed"


class UnknownOperation(KeyholderError):
    """An opcode this keyholder does not know."""

    code = "unknown-op"


class Refused(KeyholderError):
    """The request conflicts with the keyholder's state (ADR-201 immutability, ...)."""

    code = "refused"


class AmbiguousKey(Refused):
    """A rotation is in progress and the request does not say which key (old or new)."""

    code = "ambiguous-key"


class NoMasterKey(KeyholderError):
    """The operation needs a MasterKey and none is held."""

    code = "no-key"


class KeyholderDied(KeyholderError):
    """The keyholder process is gone (its memory, and every secret, went with it)."""

    code = "died"


_BY_CODE: dict[str, type[KeyholderError]] = {}


def register_error(cls: type[KeyholderError]) -> type[KeyholderError]:
    """Make an error class reconstructible on the parent side from its code."""
    _BY_CODE[cls.code] = cls
    return cls


for _cls in (
    KeyholderError,
    MalformedRequest,
    UnknownOperation,
    Refused,
    AmbiguousKey,
    NoMasterKey,
    KeyholderDied,
):
    register_error(_cls)


def error_class(code: str) -> type[KeyholderError]:
    """The exception class for an error code received from the keyholder."""
    return _BY_CODE.get(code, KeyholderError)
