"""Keyholder ports for engine tests: the test double and the real keyholder process, behind
one small interface (:class:`KeyholderKit`) so one test can run over both.

The double (``keyholder_double.KeyholderDouble``) tests the engine's sequencing quickly;
the real one (``python -I -m core.keyholder`` through ``ClientKeyholder``) proves the same
test holds with real SLIP-39 shares, typed entry and commitments. The root ``conftest.py``
parametrises the ``keyholder`` fixture over both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from core.ceremony.engine import Ceremony, ClientKeyholder, Keyholder
from core.keyholder import ops_shares
from core.keyholder.client import KeyholderClient
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight
from tests.support.keyholder_double import KeyholderDouble

__all__ = ["DoubleKit", "KeyholderKit", "RealKit", "kit", "run_genesis", "start_keyholder"]


def start_keyholder(**kw: Any) -> KeyholderClient:
    """A fresh keyholder process (unlocked memory allowed when not root)."""
    return KeyholderClient.start(allow_unlocked=os.geteuid() != 0, **kw)


def run_genesis(ws: Path, terminal: CustodianTerminal, script: Path | str = "genesis") -> Ceremony:
    """A whole genesis over a real keyholder; the shares shown land on ``terminal``."""
    path = script if isinstance(script, Path) else SCRIPTS / f"{script}.toml"
    # the custodian terminal is fixed when the keyholder is spawned (a pty: demo mode)
    with start_keyholder(terminal=terminal.path, demo=True) as kc:
        c = Ceremony.load(path, ws, ClientKeyholder(kc, tty=terminal.path), preflight=ok_preflight)
        drive(c)
        assert kc.status()["master_held"] is False
    return c


class KeyholderKit(Protocol):
    """A source of keyholder ports, and the custodians' side of the shares they hand out."""

    name: str

    def port(self) -> Keyholder:
        """A fresh keyholder port (one per ceremony)."""
        ...

    def shares(self, c: Ceremony) -> list[Any]:
        """The shares ``c`` handed out, as ``add_share("typed", ...)`` payloads, in policy order."""
        ...

    def type_back(self, c: Ceremony, port: Keyholder, member: int) -> None:
        """The custodian types share ``member`` (0-based, policy order) of ``c`` back into
        ``port``'s entry (as the UI does at distribution)."""
        ...

    def close(self) -> None:
        """Stop every keyholder started."""
        ...


class DoubleKit:
    """Ports over :class:`KeyholderDouble` (no process, toy shares)."""

    name = "double"

    def __init__(self) -> None:
        self.ports: list[KeyholderDouble] = []
        self._issued: dict[str, list[dict[str, Any]]] = {}

    def port(self) -> Keyholder:
        kh = KeyholderDouble()
        self.ports.append(kh)
        return kh

    def shares(self, c: Ceremony) -> list[Any]:
        assert c.manifest is not None
        set_id = str(c.manifest["set_id"])
        for kh in self.ports:
            self._issued.update(kh.issued)
        return list(self._issued[set_id])

    def type_back(self, c: Ceremony, port: Keyholder, member: int) -> None:
        assert isinstance(port, KeyholderDouble)
        port.type_back(self.shares(c)[member])

    def close(self) -> None:
        self.ports.clear()


class RealKit:
    """Ports over real keyholder processes; shares are shown on a custodian terminal."""

    name = "real"

    def __init__(self) -> None:
        self.terminal = CustodianTerminal()
        self.clients: list[KeyholderClient] = []

    def port(self) -> Keyholder:
        kc = start_keyholder(terminal=self.terminal.path, demo=True)  # a pty: demo mode
        self.clients.append(kc)
        return ClientKeyholder(kc, tty=self.terminal.path)

    def shares(self, c: Ceremony) -> list[Any]:
        return [typed(m) for m in self.terminal.shares]

    def type_back(self, c: Ceremony, port: Keyholder, member: int) -> None:
        assert isinstance(port, ClientKeyholder)
        words: Sequence[memoryview] = typed(self.terminal.shares[member])
        ops_shares.client_entry_begin(port.client, len(words))
        for pos, word in enumerate(words, 1):
            ops_shares.client_entry_word(port.client, pos, word)
        fin = ops_shares.client_entry_finish(port.client)
        assert fin.get("status") == "ok", fin

    def close(self) -> None:
        for kc in self.clients:
            kc.close()
        self.terminal.close()


@contextmanager
def kit(name: str) -> Iterator[KeyholderKit]:
    """The kit called ``name`` (``double`` or ``real``), closed afterwards."""
    k: KeyholderKit = DoubleKit() if name == "double" else RealKit()
    try:
        yield k
    finally:
        k.close()
