"""Driver plugin for the shares memory scan: commands that call the shares area.

Typed words arrive one 4-letter prefix per command line (as a custodian types them), so a
whole mnemonic never exists in this (parent) process.
"""

from __future__ import annotations

import json
from typing import Any

from core.keyholder import ops_shares as sh


def _genesis(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_genesis_split(client, json.loads(arg), generate=True)


def _show(client: Any, arg: str) -> dict[str, Any]:
    group, member, tty = arg.split(" ", 2)
    return sh.client_show_share(client, int(group), int(member), tty, "custodian")


def _finish(client: Any, arg: str) -> dict[str, Any]:
    return dict(client.call(sh.GENESIS_FINISH, force=True))


def _recovery_begin(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_recovery_begin(client, **json.loads(arg))


def _entry_begin(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_entry_begin(client, int(arg))


def _word(client: Any, arg: str) -> dict[str, Any]:
    pos, prefix = arg.split(" ", 1)
    chars = bytearray(prefix.encode())
    try:
        return sh.client_entry_word(client, int(pos), memoryview(chars))
    finally:
        chars[:] = bytes(len(chars))


def _entry_finish(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_entry_finish(client)


def _add(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_add_share(client)


def _recover(client: Any, arg: str) -> dict[str, Any]:
    return sh.client_recover(client)


COMMANDS = {
    "genesis": _genesis,
    "show": _show,
    "finish": _finish,
    "recovery_begin": _recovery_begin,
    "entry_begin": _entry_begin,
    "word": _word,
    "entry_finish": _entry_finish,
    "add": _add,
    "recover": _recover,
}
