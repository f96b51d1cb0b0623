"""The one exception root of OpenKCM Ceremony: :class:`KcmError` (message, code).

Every error the program raises on purpose derives from :class:`KcmError`:

* ``message`` is for the people in the room: what happened and what to do, never a secret;
* ``code`` is stable, listed with its meaning and the room's action in :mod:`core.codes`
  (a test checks that every code raised anywhere is listed there). Programs, and the UI,
  decide by ``code`` (or by class), never by the message's text;
* ``set_id`` is the one public fact some errors carry besides the message: the share set a
  refused share belongs to (so the engine can say which set superseded it without reading
  the message).

The domain families (keyholder, carriers, SLIP-39, media, journal, seal, ceremony...) keep
their own base classes, each a :class:`KcmError`; some also derive from ``ValueError``
where callers relied on that.

Errors that cross the keyholder's pipe: the keyholder sends ``code``, ``message`` and
``set_id`` of an error whose class is registered with :func:`wire_error` (the keyholder's
and the carriers' families); the parent raises the same class again
(:func:`wire_class`). Any other exception in the keyholder becomes a generic "internal
error" without its text. This module imports nothing of the project, so every layer can
use it (``core.carriers`` and ``core.keyholder`` share it instead of importing each other).
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["KcmError", "crosses_wire", "wire_class", "wire_error"]


class KcmError(Exception):
    """An error a person in the room can act on.

    Args:
        message: what happened and what to do (public; shown as it is).
        code: overrides the class's stable code (see :mod:`core.codes`).
        set_id: the share set the error is about, when there is one (public).
    """

    code: str = "error"

    def __init__(
        self, message: str = "", *, code: str | None = None, set_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.set_id = set_id


E = TypeVar("E", bound=type[KcmError])

_WIRE: dict[str, type[KcmError]] = {}


def wire_error(cls: E) -> E:
    """Allow ``cls`` to cross the keyholder pipe (code, message and set id) and be raised
    again by the parent from its code. One class per code."""
    known = _WIRE.get(cls.code)
    if known is not None and known is not cls:
        raise ValueError(f"error code {cls.code!r} is already taken by {known.__name__}")
    _WIRE[cls.code] = cls
    return cls


def crosses_wire(exc: BaseException) -> bool:
    """True for an error the keyholder may send as it is (its class, or a base, was
    registered with :func:`wire_error`)."""
    return isinstance(exc, KcmError) and any(
        c in _WIRE.values() for c in type(exc).__mro__ if isinstance(c, type)
    )


def wire_class(code: str, default: type[KcmError] = KcmError) -> type[KcmError]:
    """The class registered for ``code`` (``default`` for a code no class registered)."""
    return _WIRE.get(code, default)
