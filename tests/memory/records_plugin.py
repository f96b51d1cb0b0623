"""Driver commands for the signed-records scans: keep the signing key at the wipe, sign."""

from __future__ import annotations

from typing import Any

from core.keyholder import ops_core


def _wipe_keep(client: Any, arg: str) -> dict[str, Any]:
    return dict(client.wipe(keep_signing_key=True))


def _sign(client: Any, arg: str) -> dict[str, Any]:
    reply = client.call(ops_core.SIGN, purpose=arg, message=b"closing record " + arg.encode())
    return {"signed": len(reply["signature"]) == 64, "left": reply.get("signing_key_left")}


COMMANDS = {"wipe_keep": _wipe_keep, "sign": _sign}
