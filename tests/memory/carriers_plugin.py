"""Driver plugin for the carrier memory scan: card, QR file and replayed camera frames.

The PIN goes from a locked buffer of the driver (the UI stand-in) as a SECRET field; the
share never reaches the driver: only public facts come back.
"""

from __future__ import annotations

import json
from typing import Any

from core.keyholder import ops_shares
from core.keyholder.ops_carriers import CarrierClient
from core.secmem import SecretBuffer


def _card_read(client: Any, arg: str) -> dict[str, Any]:
    a = json.loads(arg)
    pin = SecretBuffer(len(a["pin"]))
    try:
        with pin.view() as mv:
            mv[:] = a["pin"].encode()
            return CarrierClient(client).read_share(a["module"], a["serial"], mv)
    finally:
        pin.close()


def _qr_file(client: Any, arg: str) -> dict[str, Any]:
    return CarrierClient(client).decode_file(arg)


def _qr_replay(client: Any, arg: str) -> dict[str, Any]:
    return CarrierClient(client).scan_replay(json.loads(arg))


def _recovery_begin(client: Any, arg: str) -> dict[str, Any]:
    return client.call(ops_shares.RECOVERY_BEGIN, fingerprint=arg)  # type: ignore[no-any-return]


def _recover(client: Any, arg: str) -> dict[str, Any]:
    return client.call(ops_shares.RECOVER)  # type: ignore[no-any-return]


COMMANDS = {
    "card_read": _card_read,
    "qr_file": _qr_file,
    "qr_replay": _qr_replay,
    "recovery_begin": _recovery_begin,
    "recover": _recover,
}
