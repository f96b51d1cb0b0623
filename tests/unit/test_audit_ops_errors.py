"""Audit: secret buffers are closed on every error path of the shares area, and objects
holding share material do not show it in their repr.

In-process (no keyholder subprocess): the handlers are called directly, with a failure
injected after the secret exists. The test keeps its own reference to the buffer, so only
an explicit ``close()`` (not the garbage collector) can make it pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder.ops import KeyholderState, Request
from core.keyholder.protocol import decode_fields, encode_fields
from core.shamir import genesis
from core.shamir.recovery import RecoveryState
from core.shamir.wordlist import WORDS, lookup_typed

POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}


def _request(opcode: int, **fields: Any) -> Request:
    payload = b"".join(bytes(p) for p in encode_fields(fields, allow_secret=True))
    return Request(opcode, decode_fields(memoryview(bytearray(payload))))


def _boom(*_a: object, **_k: object) -> Any:
    raise RuntimeError("injected failure")


def test_recover_closes_the_rebuilt_key_when_the_fingerprint_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = KeyholderState(allow_unlocked=True)
    held: list[Any] = []

    def fake_recover(self: RecoveryState, passphrase: object = None) -> Any:
        buf = state.alloc(32)
        buf.fill_random()
        held.append(buf)
        return buf

    monkeypatch.setattr(RecoveryState, "recover", fake_recover)
    monkeypatch.setattr(sh, "derive_fingerprint", _boom)
    with pytest.raises(RuntimeError):
        sh.op_recover(state, _request(sh.RECOVER))
    (buf,) = held
    assert buf.closed, "the rebuilt MasterKey was left open on the error path"
    assert state.master is None
    state.wipe()


def test_genesis_split_closes_the_shares_when_reporting_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = KeyholderState(allow_unlocked=True)
    made: list[genesis.GenesisResult] = []
    real = sh.genesis_split

    def recording(*a: Any, **k: Any) -> genesis.GenesisResult:
        res = real(*a, **k)
        made.append(res)
        return res

    monkeypatch.setattr(sh, "genesis_split", recording)
    monkeypatch.setattr(sh, "_fp_fields", _boom)
    with pytest.raises(RuntimeError):
        sh.op_genesis_split(state, _request(sh.GENESIS_SPLIT, policy=POLICY, generate=True))
    (res,) = made
    assert res.shares and all(s.indices.closed for s in res.shares), "shares left open"
    assert state.master is None, "a key generated for a failed split must not stay held"
    state.wipe()


def test_prefix_result_repr_does_not_show_the_word_index() -> None:
    idx = 523
    word = WORDS[idx].encode()
    res = lookup_typed(memoryview(bytearray(word)))
    assert res.status == "accepted" and res.index == idx
    assert str(idx) not in repr(res)


def test_card_read_closes_the_decrypted_share_when_it_is_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A card (or a crafted sealed share file) that decrypts to fewer than 4 words: the
    decrypted bytes are wiped on the error path, not left to the garbage collector."""
    from types import SimpleNamespace

    from core.carriers.pkcs11 import CardReadResult
    from core.keyholder import ops_carriers
    from core.shamir.errors import Slip39Error

    state = KeyholderState(allow_unlocked=True, pkcs11_modules={"fake": "/nonexistent.so"})
    held: list[Any] = []

    def fake_read_share(*_a: Any, **_k: Any) -> CardReadResult:
        buf = state.alloc(6)  # 3 "words": too short to carry share metadata
        buf.fill_random()
        held.append(buf)
        return CardReadResult(buf, "SERIAL1", "00" * 32, "sealed-file", {})

    monkeypatch.setattr(ops_carriers, "cards", SimpleNamespace(read_share=fake_read_share))
    with pytest.raises(Slip39Error):
        ops_carriers.card_read_share(
            state, _request(ops_carriers.CARD_READ_SHARE, module="fake")
        )
    (buf,) = held
    assert buf.closed, "the decrypted (malformed) share was left open"
    state.wipe()
