"""The ceremony engine's errors (all :class:`core.errors.KcmError`; codes in
:mod:`core.codes`).

* :class:`EngineError`: an intent is not allowed now (wrong step, a missing
  acknowledgment, an unknown role...). Nothing changed; the message says what to do first.
* :class:`StepFailedError`: the current step's action failed; the step is FAILED (and
  journaled), earlier work is kept, :meth:`~core.ceremony.engine.Ceremony.retry` re-opens
  it. ``code`` ``not-available`` says the keyholder port cannot do what the script asks
  (a missing operation, not a failure of the room).
* :class:`ShareRefusedError`: one share was refused (other set, superseded set, duplicate,
  bad checksum, no match with the manifest...); the step stays ACTIVE. ``code`` is the
  refusal's code (``other-set``, ``duplicate``, ``checksum``, ``commitment``...), ``set_id``
  the set the share belongs to when known.
* :class:`CarrierRefusedError`: the carrier failed (wrong PIN, card removed, unreadable
  QR...); the step stays ACTIVE and everything collected or handed out is kept.
"""

from __future__ import annotations

from core.errors import KcmError

__all__ = [
    "NOT_AVAILABLE",
    "CarrierRefusedError",
    "EngineError",
    "ShareRefusedError",
    "StepFailedError",
]

#: The code of a step that failed because the keyholder port lacks an operation.
NOT_AVAILABLE = "not-available"


class EngineError(KcmError):
    """An intent is not allowed now (wrong step, missing acknowledgment, ...)."""

    code = "intent-refused"


class StepFailedError(KcmError):
    """Raised inside an action to fail the current step with a message for the room."""

    code = "step-failed"


class ShareRefusedError(KcmError):
    """A share was refused (wrong set, superseded set, duplicate, bad checksum...).

    Keyholder adapters raise it (or any :class:`~core.errors.KcmError` with a ``set_id``)
    so the engine can name a superseded set.
    """

    code = "share-refused"


class CarrierRefusedError(ShareRefusedError):
    """A share carrier failed (wrong PIN, card removed, wrong card, unreadable QR...).

    The step stays ACTIVE and everything collected or handed out so far is kept: fix the
    cause (PIN, card, image) and try again. ``code`` is the carrier error code
    (``card-pin-incorrect``, ``card-wrong-card``, ``card-removed``, ``qr-not-found``, ...;
    see :mod:`core.carriers.errors`), ``carrier`` the carrier or display that failed.
    """

    code = "carrier"

    def __init__(
        self,
        message: str,
        *,
        carrier: str,
        code: str | None = None,
        set_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, set_id=set_id)
        self.carrier = carrier
