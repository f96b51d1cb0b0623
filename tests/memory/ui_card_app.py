"""The real UI for the card-PIN memory scan (issue 14): run under a pty by the test.

The ceremony app (``SnapApp`` with Textual's real Linux driver on the pty, which is this
process's controlling terminal) opens on the distribution screen at Custodian 1, whose
share goes to a card. The card panel is the product's own (``kcm_tui.screens.card``): Enter
suspends the app and the card call asks the keyholder for ``pin_from_terminal``. The
keyholder is a real process started on the same pty (fixed at spawn, demo mode), with the
real SoftHSM2 module (``SOFTHSM2_CONF`` from the environment), holding a real genesis
split; its card write makes a key on the token and writes the share with the PIN it read.

This process is never told the PIN: it may only reach its memory through the terminal.
"""

from __future__ import annotations

import sys
from typing import Any

from core.ceremony.state import HandoverState
from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from core.keyholder.ops_carriers import CarrierClient
from kcm_tui.screens.distribution import DistributionScreen
from tests.tui.snapshot_app import CARD_WRITTEN, FakeBackend, FakeSession, SnapApp, step

POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}


class RealCardSession(FakeSession):
    """Distribution bookkeeping is the test double's; the card list and the card write are
    real keyholder calls (the write with the PIN read by the keyholder on its terminal)."""

    def __init__(self, view: Any, client: KeyholderClient) -> None:
        super().__init__(view, practice=True)
        self.client = client
        self.carriers = {"c1": "card"}
        self.tokens = self.list_cards()

    def list_cards(self) -> list[dict[str, Any]]:
        return [dict(t) for t in CarrierClient(self.client).list_cards("softhsm2")]

    def rescan_cards(self) -> list[dict[str, Any]]:
        return self.list_cards()

    def write_card(self, custodian: str, serial: str | None, pin: memoryview | None = None, *,
                   pin_from_terminal: bool = False) -> dict[str, Any]:
        if pin is not None or not pin_from_terminal:
            raise AssertionError("the product path passes no PIN")
        chosen = serial or str(self.tokens[0]["serial"])
        reply = CarrierClient(self.client).write_share(
            "softhsm2", chosen, None, 1, 1, None, provision={"bits": 2048}, pin_from_terminal=True
        )
        self._handover(custodian).state = HandoverState.CHECKED
        self._handover(custodian).display = "card"
        return {**CARD_WRITTEN, "card_serial": chosen, "verified": bool(reply["result"].get("verified"))}


def main() -> int:
    client = KeyholderClient.start(
        allow_unlocked=True, stderr=sys.stderr, terminal="/dev/tty", demo=True, pkcs11_modules=("softhsm2",)
    )
    sh.client_genesis_split(client, POLICY, generate=True)
    view = step("distribute-shares", 6, act_title="Act 3: Split and hand out the shares",
                params={"display": ["screen", "qr", "card"], "carriers": {"c1": "card"}},
                acknowledge=("admin", "witness", "c1", "c2", "c3"), performed=True, results={"set_id": "4821"})
    app = SnapApp(FakeBackend(session=RealCardSession(view, client)), DistributionScreen)
    try:
        app.run()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
