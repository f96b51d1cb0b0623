"""The shares area's opcodes (0x01xx) and the parent's side of each operation: the
typed helpers the engine's keyholder adapter and the UI call through a
:class:`~core.keyholder.client.KeyholderClient` (:mod:`core.keyholder.ops_shares` holds
the handlers, in the keyholder)."""

from __future__ import annotations

from typing import Any

from core.keyholder.protocol import Secret

__all__ = [
    "ADD_SHARE",
    "ENTRY_BEGIN",
    "ENTRY_CLEAR",
    "ENTRY_FINISH",
    "ENTRY_WORD",
    "GENESIS_FINISH",
    "GENESIS_SPLIT",
    "RECOVER",
    "RECOVERY_BEGIN",
    "RECOVERY_STATUS",
    "SHARES_STATUS",
    "SHOW_SHARE",
    "VERIFY_SHARE",
    "client_add_share",
    "client_entry_begin",
    "client_entry_finish",
    "client_entry_word",
    "client_genesis_split",
    "client_recover",
    "client_recovery_begin",
    "client_show_share",
]

GENESIS_SPLIT = 0x0101
SHOW_SHARE = 0x0102
SHARES_STATUS = 0x0103
GENESIS_FINISH = 0x0104
RECOVERY_BEGIN = 0x0110
ENTRY_BEGIN = 0x0111
ENTRY_WORD = 0x0112
ENTRY_FINISH = 0x0113
ADD_SHARE = 0x0114
ENTRY_CLEAR = 0x0115
RECOVER = 0x0116
RECOVERY_STATUS = 0x0117
VERIFY_SHARE = 0x0118


def client_genesis_split(
    client: Any,
    policy: dict[str, Any],
    passphrase: memoryview | None = None,
    *,
    generate: bool = False,
    key: str | None = None,
) -> dict[str, Any]:
    """Parent side of ``genesis_split`` (``client`` is a KeyholderClient); in a rotation
    ``key="new"`` (with ``generate``: draw the new key into its slot first)."""
    fields: dict[str, Any] = {"policy": policy, "generate": generate}
    if key is not None:
        fields["key"] = key
    if passphrase is not None:
        fields["passphrase"] = Secret(passphrase)
    return dict(client.call(GENESIS_SPLIT, **fields))


def client_show_share(
    client: Any, group: int, member: int, tty: str, custodian: str
) -> dict[str, Any]:
    """Parent side of ``show_share``."""
    return dict(client.call(SHOW_SHARE, group=group, member=member, tty=tty, custodian=custodian))


def client_recovery_begin(
    client: Any,
    *,
    identifier: int | None = None,
    commitments: list[dict[str, Any]] | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Parent side of ``recovery_begin``."""
    fields: dict[str, Any] = {}
    if identifier is not None:
        fields["identifier"] = identifier
    if commitments is not None:
        fields["commitments"] = commitments
    if fingerprint is not None:
        fields["fingerprint"] = fingerprint
    return dict(client.call(RECOVERY_BEGIN, **fields))


def client_entry_begin(client: Any, words: int = 33) -> dict[str, Any]:
    """Parent side of ``entry_begin``."""
    return dict(client.call(ENTRY_BEGIN, words=words))


def client_entry_word(client: Any, position: int, chars: memoryview) -> dict[str, Any]:
    """Send one typed word from the parent's locked input buffer (``chars``)."""
    return dict(client.call(ENTRY_WORD, position=position, chars=Secret(chars)))


def client_entry_finish(client: Any) -> dict[str, Any]:
    """Parent side of ``entry_finish``."""
    return dict(client.call(ENTRY_FINISH))


def client_add_share(client: Any) -> dict[str, Any]:
    """Parent side of ``add_share``."""
    return dict(client.call(ADD_SHARE))


def client_recover(client: Any, passphrase: memoryview | None = None) -> dict[str, Any]:
    """Parent side of ``recover``."""
    fields: dict[str, Any] = {}
    if passphrase is not None:
        fields["passphrase"] = Secret(passphrase)
    return dict(client.call(RECOVER, **fields))
