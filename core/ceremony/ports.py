"""The engine's ports: what a ceremony needs from the keyholder, the export medium, the
recipients' public keys and the preflight check, and the carrier payloads it passes on.

The engine is written against these Protocols only; the real implementations live in
:mod:`core.ceremony.adapters` (the keyholder process, a folder or removable medium, the
workspace's key files, :mod:`core.preflight`), and tests use doubles that satisfy the same
Protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FINISHED_ENTRY",
    "ByokKeyholder",
    "CardAccess",
    "CarrierKeyholder",
    "EntryKeyholder",
    "ExportedFile",
    "Exporter",
    "Keyholder",
    "PreflightPort",
    "QRCamera",
    "RecipientSource",
]


#: The ``typed`` payload meaning "the entry the keyholder holds, already typed word by
#: word and checked": the UI entered the words straight into the keyholder's entry (so an
#: unknown word is flagged at once and a checksum failure names the probable wrong word).
FINISHED_ENTRY = "finished-typed-entry"


@dataclass(frozen=True)
class CardAccess:
    """How to reach one custodian's smart card (public facts plus a view of the PIN).

    Attributes:
        module: PKCS#11 module name (``opensc``, ``ykcs11``, ``softhsm2`` for the demo),
            one the keyholder was started with; None: the step's ``card_module`` (default
            ``opensc``).
        serial: the card's serial; None: the only (expected) card in the readers.
        pin: a memoryview over the caller's own locked PIN buffer (sent to the keyholder
            as a protocol ``Secret``, never copied by the engine); None: the reader's PIN pad.
        sealed: the card's sealed share file (public JSON) for cards that hold no data
            object; None: the engine looks in ``workspace/card-shares/`` itself.
        expected_serials: filled by the engine at collection (the manifest's card serials).
        set_id: filled by the engine at collection (the set being collected).
        pin_from_terminal: the keyholder reads the PIN on its own terminal (the trusted
            path, issue 14): ``pin`` stays None and the caller must not read the terminal
            during the call (the UI suspends its driver).
    """

    module: str | None = None
    serial: str | None = None
    pin: memoryview | None = field(default=None, repr=False, compare=False)
    sealed: bytes | None = field(default=None, repr=False)
    expected_serials: tuple[str, ...] = ()
    set_id: str | None = None
    pin_from_terminal: bool = False


@dataclass(frozen=True)
class QRCamera:
    """Scan a share QR with a camera (``qr-camera``).

    Attributes:
        device: V4L2 device.
        timeout_s: give up after this many seconds.
        replay: image files replayed as camera frames instead of the device (tests,
            and a recorded scan); the same decode pipeline as the camera.
    """

    device: str = "/dev/video0"
    timeout_s: int = 30
    replay: tuple[str, ...] = ()


@runtime_checkable
class Keyholder(Protocol):
    """What a ceremony needs from the keyholder. Every return value is PUBLIC.

    Dicts returned carry at least: ``fingerprint`` (hex) and ``kcv`` for key facts;
    ``set_id``, ``kcv``/``fingerprint``, ``policy`` and per-share public commitments for a
    manifest; ``complete`` (bool), ``index`` and ``message`` for share progress.
    """

    def generate_master(self) -> dict[str, Any]:
        """Create the MasterKey; returns its public fingerprint facts."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """Public fingerprint facts of the held key."""
        ...

    def genesis_split(self, policy: Mapping[str, Any], *, supersedes: str | None) -> dict[str, Any]:
        """Split the held key under ``policy``; returns the public manifest."""
        ...

    def show_share(self, member: int, display: str) -> dict[str, Any]:
        """Show share ``member`` (0-based, policy order) to its custodian on ``display``."""
        ...

    def begin_recovery(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Start collecting shares of the manifest's set."""
        ...

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        """Feed one share (opaque payload from a carrier); returns public progress."""
        ...

    def check_share(
        self, manifest: Mapping[str, Any], carrier: str, payload: Any
    ) -> dict[str, Any]:
        """Check one share against the manifest commitments without recovery."""
        ...

    def recover(self) -> dict[str, Any]:
        """Combine the collected shares into the MasterKey; returns fingerprint facts."""
        ...

    def seal(self, recipient: Any, header: Mapping[str, Any]) -> bytes:
        """Seal the held key to ``recipient`` (opaque handle); returns envelope bytes."""
        ...

    def wipe(self) -> None:
        """Wipe every secret held."""
        ...


@runtime_checkable
class CarrierKeyholder(Protocol):
    """Optional extension of :class:`Keyholder` for smart cards and the wedge scanner.

    Collection through every carrier goes through :meth:`Keyholder.add_share` (``carrier``
    ``card`` with a :class:`CardAccess`, ``qr-file`` with a path, ``qr-camera`` with a
    :class:`QRCamera`, ``scanner`` with ``[(key view, t_us), ...]``); showing a QR goes
    through :meth:`Keyholder.show_share` (``display="qr"``). A keyholder without these
    methods cannot write cards or take single scanner keys (the engine says so).

    Optional methods, looked up by name (not part of this protocol, so existing ports
    still match it): ``rescan_cards(module) -> list[dict]`` (re-initialise the PKCS#11
    module, for :meth:`Ceremony.rescan_cards`) and ``scanner_check_key(manifest, key,
    t_us) -> dict`` (one scanner key press in check-shares; a completed burst returns the
    verdict of :meth:`Keyholder.check_share` with ``status`` ``complete``).
    """

    def write_card(
        self,
        member: int,
        card: CardAccess,
        *,
        commitment: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        bits: int,
        store_on_card: bool,
    ) -> dict[str, Any]:
        """Provision a key on the card, write share ``member`` to it, read it back, check.

        Returns ``{"card": public facts (serial, key_fingerprint, key_id, oaep_hash, bits,
        stored_on_card, verified, notes), "sealed": bytes (the public sealed share file)}``.
        """
        ...

    def list_cards(self, module: str) -> list[dict[str, Any]]:
        """The cards in the readers (public token facts)."""
        ...

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """One wedge-scanner key press; returns ``status``/``count`` and, once a burst
        completes, the same public progress as :meth:`Keyholder.add_share`."""
        ...


@runtime_checkable
class EntryKeyholder(Protocol):
    """Optional extension of :class:`Keyholder`: check a share typed back at distribution.

    The UI enters the custodian's words straight into the keyholder's entry (word by word,
    from its locked buffer); :meth:`verify_entry` then compares the finished entry with the
    manifest's commitments and wipes it. Only the verdict comes back.
    """

    def verify_entry(self, commitments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``matches``, ``set_id``, ``group``, ``member`` of the finished typed entry."""
        ...


@runtime_checkable
class ByokKeyholder(Protocol):
    """Optional extension of :class:`Keyholder`: the ``byok`` step's wrap.

    The engine sends the provider's wrapping key as read from the medium and what the
    witness confirmed of its fingerprint; the keyholder checks the confirmation against
    the key, wraps the MasterKey and answers the public import files only.
    """

    def byok_export(
        self,
        provider: str,
        *,
        wrapping_key: bytes,
        witness: str,
        confirmed_fingerprint: str,
        fields: Mapping[str, Any],
    ) -> dict[str, Any]:
        """``files`` (name -> bytes), ``valid_until_utc``, ``method``, ``record``."""
        ...


@dataclass(frozen=True)
class ExportedFile:
    """A public file written to media."""

    name: str
    path: str
    sha256: str
    size: int


class Exporter(Protocol):
    """Writes public files into a folder on the export media."""

    def write(
        self, folder: str, files: Mapping[str, bytes], *, ceremony_id: str
    ) -> list[ExportedFile]:
        """Write every file (never overwriting); returns what was written."""
        ...


class RecipientSource(Protocol):
    """Loads a script recipient's public key from the workspace."""

    def load(self, recipient_id: str) -> tuple[dict[str, Any], Any]:
        """Return (public facts with ``fingerprint`` hex, opaque handle for sealing)."""
        ...


PreflightPort = Callable[[], dict[str, Any]]
