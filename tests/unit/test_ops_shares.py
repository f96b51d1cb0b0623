"""The shares area through a real keyholder subprocess and the real client.

Genesis 3-of-5 -> words (read here only through the test hook: the display goes to a pty
we own, parsed back as the custodian would read it) -> wipe -> typed recovery with a typo
located -> KCV verified against the genesis fingerprint; error paths; ADR-201 refusal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import threading

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError, Refused
from core.shamir.wordlist import WORDS

#: The master side of each keyholder's display terminal (a pty fixed when it is spawned).
_MASTERS: dict[int, int] = {}


def _start(**kw: object) -> KeyholderClient:
    """A keyholder whose display terminal is a fresh pty of ours (demo mode: a pty is
    refused otherwise)."""
    master_fd, slave_fd = pty.openpty()
    try:
        client = KeyholderClient.start(
            allow_unlocked=os.geteuid() != 0, terminal=slave_fd, demo=True, **kw  # type: ignore[arg-type]
        )
    finally:
        os.close(slave_fd)
    _MASTERS[id(client)] = master_fd
    return client


def _close(client: KeyholderClient) -> None:
    client.close()
    os.close(_MASTERS.pop(id(client)))


@pytest.fixture
def kh():  # type: ignore[no-untyped-def]
    client = _start()
    yield client
    _close(client)


POLICY = {"group_threshold": 1, "groups": [[3, 5]], "extendable": True, "iteration_exponent": 0}


def _read_share_from_tty(
    kh: KeyholderClient, group: int, member: int, screen: bytearray | None = None
) -> list[str]:
    """Show a share on a pseudo-terminal we own and read the grid the custodian sees."""
    master_fd = _MASTERS[id(kh)]
    out = bytearray()
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            if not select.select([master_fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(master_fd, 4096)
            except OSError:
                return
            out.extend(chunk)
            if b"Press Enter when done" in out:
                os.write(master_fd, b"\r\r")  # the custodian: Enter, Enter to confirm
                done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    reply = sh.client_show_share(kh, group, member, "", "Alice")
    assert reply["shown"] is True
    done.set()
    t.join(2)
    words = dict((int(n), w) for n, w in re.findall(rb"\s(\d+)\. ([a-z]+)", bytes(out)))
    if screen is not None:
        screen.extend(out)
    return [words[k].decode() for k in sorted(words)]


def test_practice_share_screen_says_practice() -> None:
    for practice in (True, False):
        kh = _start(practice=practice)
        try:
            sh.client_genesis_split(kh, POLICY, generate=True)
            screen = bytearray()
            assert len(_read_share_from_tty(kh, 1, 1, screen)) == 33
            assert (b"PRACTICE" in screen) is practice
        finally:
            _close(kh)


def _type_share(kh: KeyholderClient, words: list[str]) -> dict[str, object]:
    sh.client_entry_begin(kh, len(words))
    for pos, w in enumerate(words, 1):
        chars = bytearray(w[:4].encode())  # unique 4-letter prefixes complete the word
        r = sh.client_entry_word(kh, pos, memoryview(chars))
        assert r["status"] == "accepted", (pos, r)
    return sh.client_entry_finish(kh)


def test_genesis_show_recover_with_typo(kh: KeyholderClient) -> None:
    g = sh.client_genesis_split(kh, POLICY, generate=True)
    assert g["generated"] and len(g["shares"]) == 5 and len(g["commitments"]) == 5
    assert g["selftest"] == {"member_subsets": 10, "group_combinations": 1, "mode": "exhaustive", "kcv_checked": True}
    assert g["shares"][0]["words"] == 33
    shares = [_read_share_from_tty(kh, 1, m) for m in (1, 3, 5)]
    assert all(len(s) == 33 for s in shares)
    with pytest.raises(Refused, match="already handed"):
        sh.client_show_share(kh, 1, 1, "/dev/null", "Mallory")
    with pytest.raises(Refused, match="not been handed out"):
        kh.call(sh.GENESIS_FINISH)
    assert kh.call(sh.GENESIS_FINISH, force=True)["finished"]
    kh.wipe()

    sh.client_recovery_begin(kh, commitments=g["commitments"], fingerprint=g["fingerprint"])
    # share 1 typed with a wrong word at position 17: located, not corrected
    typed = shares[0].copy()
    typed[16] = "academic" if typed[16] != "academic" else "acid"
    r = _type_share(kh, typed)
    assert r["status"] == "checksum"
    # the position only: the suggested (true) word never leaves the keyholder (issue 14)
    assert r["candidates"] == [{"position": 17}]
    with pytest.raises(Refused, match="finish the entry"):
        sh.client_add_share(kh)
    # custodian retypes word 17
    assert sh.client_entry_word(kh, 17, memoryview(bytearray(shares[0][16].encode())))["status"] == "accepted"
    assert sh.client_entry_finish(kh)["status"] == "ok"
    p = sh.client_add_share(kh)["progress"]
    assert p["groups"][0]["more"] == 2
    # the same share again: duplicate
    assert _type_share(kh, shares[0])["status"] == "ok"
    with pytest.raises(KeyholderError) as info:
        sh.client_add_share(kh)
    assert info.value.code == "duplicate"
    for s in shares[1:]:
        assert _type_share(kh, s)["status"] == "ok"
        p = sh.client_add_share(kh)["progress"]
    assert p["complete"]
    rec = sh.client_recover(kh)
    assert rec["verified"] is True and rec["fingerprint"] == g["fingerprint"]
    # ADR-201: a held key refuses another recovery or genesis
    with pytest.raises(Refused, match="already holds a MasterKey"):
        sh.client_recovery_begin(kh)
    with pytest.raises(Refused, match="already holds a MasterKey"):
        kh.generate_master()
    kh.wipe()
    assert kh.status()["master_held"] is False


def test_entry_word_statuses(kh: KeyholderClient) -> None:
    sh.client_entry_begin(kh, 33)
    assert sh.client_entry_word(kh, 1, memoryview(bytearray(b"ac")))["status"] == "ambiguous"
    r = sh.client_entry_word(kh, 1, memoryview(bytearray(b"acadenic")))
    assert r["status"] == "unknown" and "academic" in r["nearest"]
    assert sh.client_entry_word(kh, 1, memoryview(bytearray(b"ACAD")))["status"] == "accepted"
    r = sh.client_entry_finish(kh)
    assert r["status"] == "incomplete" and r["missing"][0] == 2 and len(r["missing"]) == 32


def test_recovery_errors_and_kcv_mismatch(kh: KeyholderClient) -> None:
    g = sh.client_genesis_split(kh, POLICY, generate=True)
    a = [_read_share_from_tty(kh, 1, m) for m in (1, 2, 3)]
    kh.call(sh.GENESIS_FINISH, force=True)
    kh.wipe()
    g2 = sh.client_genesis_split(kh, POLICY, generate=True)
    b = _read_share_from_tty(kh, 1, 4)
    kh.call(sh.GENESIS_FINISH, force=True)
    kh.wipe()
    # expects set g, a share of g2 arrives
    sh.client_recovery_begin(kh, identifier=g["identifier"], fingerprint=g2["fingerprint"])
    assert _type_share(kh, b)["status"] == "ok"
    with pytest.raises(KeyholderError) as info:
        sh.client_add_share(kh)
    assert info.value.code == "other-set" and str(g["identifier"]) in info.value.message
    for s in a:
        _type_share(kh, s)
        sh.client_add_share(kh)
    # right shares, wrong expected fingerprint: refused, nothing kept
    with pytest.raises(KeyholderError) as info:
        sh.client_recover(kh)
    assert info.value.code == "kcv-mismatch"
    assert kh.status()["master_held"] is False


def test_manifest_check_of_one_share(kh: KeyholderClient) -> None:
    g = sh.client_genesis_split(kh, POLICY, generate=True)
    s = _read_share_from_tty(kh, 1, 2)
    kh.call(sh.GENESIS_FINISH, force=True)
    kh.wipe()
    assert _type_share(kh, s)["status"] == "ok"
    r = kh.call(sh.VERIFY_SHARE, commitments=g["commitments"])
    assert r == {"set": g["identifier"], "group": 1, "member": 2, "matches": True}
    # a share of another set with an entry forged for its metadata fails
    other = [dict(c) for c in g["commitments"]]
    other[1]["commitment"] = "00" * 32
    assert kh.call(sh.VERIFY_SHARE, commitments=other)["matches"] is False
    assert set(s) <= set(WORDS)


def _request(opcode: int, **fields: object):  # type: ignore[no-untyped-def]
    """An in-process Request built through the real field encoding."""
    from core.keyholder.ops import Request
    from core.keyholder.protocol import decode_fields, encode_fields

    payload = b"".join(bytes(p) for p in encode_fields(fields, allow_secret=True))
    return Request(opcode, decode_fields(memoryview(bytearray(payload))))


def test_self_test_failure_aborts_genesis_and_wipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: a failing self-test leaves no MasterKey and no shares behind."""
    from core.keyholder.ops import KeyholderState
    from core.shamir import genesis

    def broken(*args: object, **kw: object) -> None:
        raise genesis.GenesisSelfTestError("self-test failed: shares 1, 2, 3 disagree")

    monkeypatch.setattr(genesis, "self_test", broken)
    state = KeyholderState(allow_unlocked=True)
    with pytest.raises(sh.SharesError) as info:
        sh.op_genesis_split(state, _request(sh.GENESIS_SPLIT, policy=POLICY, generate=True))
    assert info.value.code == "selftest"
    assert state.master is None
    assert "shares" not in state.ext or state.ext["shares"].genesis is None


def test_immutability_refuses_shares_while_a_key_is_held(kh: KeyholderClient) -> None:
    """ADR-201: with a MasterKey held, no recovery, no share intake, no second key."""
    kh.generate_master()
    with pytest.raises(Refused, match="already holds a MasterKey"):
        sh.client_recovery_begin(kh)
    r = _type_share(kh, ["academic"] * 33)  # the checksum fails, but entry itself is fine
    assert r["status"] == "checksum"
    with pytest.raises(Refused, match="already holds a MasterKey"):
        sh.client_recover(kh)
    kh.wipe()
    sh.client_recovery_begin(kh)  # accepted once wiped


def test_two_level_policy_with_passphrase(kh: KeyholderClient) -> None:
    policy = {"group_threshold": 2, "groups": [[2, 3], [1, 1], [2, 2]], "iteration_exponent": 0}
    pw = bytearray(b"correct horse")
    g = sh.client_genesis_split(kh, policy, memoryview(pw), generate=True)
    assert g["selftest"]["group_combinations"] == 3 and g["selftest"]["member_subsets"] == 3 + 1 + 1
    status = kh.call(sh.SHARES_STATUS)
    assert [(s["group"], s["member"]) for s in status["shares"]] == [(1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (3, 2)]
    words = {(1, 3): _read_share_from_tty(kh, 1, 3), (1, 1): _read_share_from_tty(kh, 1, 1), (2, 1): _read_share_from_tty(kh, 2, 1)}
    assert kh.call(sh.SHARES_STATUS)["shares"][2]["handed_to"].startswith("display /dev/")
    kh.call(sh.GENESIS_FINISH, force=True)
    kh.wipe()
    assert kh.call(sh.SHARES_STATUS) == {"identifier": None, "shares": []}

    sh.client_recovery_begin(kh, identifier=g["identifier"], fingerprint=g["fingerprint"])
    _type_share(kh, words[(2, 1)])
    p = sh.client_add_share(kh)["progress"]
    assert p["groups"][1]["complete"] and not p["complete"]
    assert "shares from 1 more group(s)" in p["message"]
    _type_share(kh, words[(1, 3)])
    p = sh.client_add_share(kh)["progress"]
    assert "1 more share(s) from group 1" in p["message"]
    _type_share(kh, words[(1, 1)])
    assert sh.client_add_share(kh)["progress"]["complete"]
    with pytest.raises(KeyholderError) as info:
        sh.client_recover(kh, memoryview(bytearray(b"wrong horse")))
    assert info.value.code == "kcv-mismatch"
    # the shares are still held: retry with the right passphrase
    rec = sh.client_recover(kh, memoryview(pw))
    assert rec["verified"] is True and rec["fingerprint"] == g["fingerprint"]
