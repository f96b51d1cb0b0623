"""A typed entry interrupted by an error leaves no partial share in the keyholder."""

from __future__ import annotations

import os

import pytest

from core.ceremony.engine import ClientKeyholder
from core.keyholder import ops_shares
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError


def test_partial_entry_is_cleared_when_a_word_fails() -> None:
    client = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    try:
        port = ClientKeyholder(client, tty="/dev/null")
        first = bytearray(b"academic")
        # 20 words; the second cannot be sent (not a view of a locked buffer)
        words = [memoryview(first), "not a locked view"] + [memoryview(first)] * 18
        with pytest.raises(Exception):  # noqa: B017  # whatever the client raises
            port._enter_typed("typed", words)
        with pytest.raises(KeyholderError, match="no share is being entered"):
            client.call(ops_shares.ENTRY_FINISH)
    finally:
        client.close()
