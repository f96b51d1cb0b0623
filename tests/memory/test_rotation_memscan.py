"""Memory scan of a MasterKey rotation (issue 19): both keys, both share sets, both processes.

The old key is made by a genesis (2-of-3), its shares shown and read, wiped, then rebuilt
from two typed shares; the rotation is entered, the new key generated in the second slot
and split 2 of 3 groups of 2-of-3, both keys are sealed (the old one as a transitional
envelope) and the continuity statement is made. The scanner reads both keys out of the
keyholder's locked mappings (each proven by its fingerprint), then counts every encoding
of both keys and of every share of both sets: while they are live, every copy is inside a
locked no-dump mapping and the parent (the UI stand-in) holds none; after the wipe there
are 0 copies of either key, or of any share, in either process.
"""

from __future__ import annotations

import json
import os
import pty

import pytest

from core.crypto.fingerprint import derive_fingerprint
from tests.memory import memscan
from tests.memory.test_shares_memscan import _assert_gone, _assert_live, _secrets, _show

pytestmark = pytest.mark.root

OLD = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}
NEW = {
    "group_threshold": 2,
    "groups": [[2, 3], [2, 3], [2, 3]],
    "extendable": True,
    "iteration_exponent": 0,
}


def _key_with(d, fp: str) -> bytes:  # type: ignore[no-untyped-def]
    for cand in memscan.locked_secret_candidates(d.keyholder_pid):
        if derive_fingerprint(memoryview(bytearray(cand))).hex == fp:
            return cand
    raise AssertionError(f"no locked mapping holds the key {fp[:16]}")


def test_rotation_leaves_no_copy_of_either_key(driver_factory) -> None:  # type: ignore[no-untyped-def]
    master_fd, slave_fd = pty.openpty()  # the custodian terminal, fixed at spawn
    tty = os.ttyname(slave_fd)
    d = driver_factory(
        "mlock",
        plugins=["tests.memory.shares_plugin", "tests.memory.rotation_plugin"],
        terminal=tty,
    )
    g = d.cmd("genesis " + json.dumps(OLD))
    assert "identifier" in g, g
    old_key = _key_with(d, g["fingerprint"])
    old_mnemonics = [_show(d, m, master_fd, tty) for m in (1, 2, 3)]
    assert d.cmd("finish")["finished"] is True
    assert d.cmd("wipe") == {"wiped": True}
    secrets = _secrets(old_key, old_mnemonics)
    _assert_gone(d, secrets)

    d.cmd(
        "recovery_begin "
        + json.dumps({"commitments": g["commitments"], "fingerprint": g["fingerprint"]})
    )
    for m in (old_mnemonics[0], old_mnemonics[2]):
        d.cmd("entry_begin 33")
        for pos, w in enumerate(m.split(), 1):
            assert d.cmd(f"word {pos} {w[:4]}")["status"] == "accepted"
        assert d.cmd("entry_finish")["status"] == "ok"
        assert "progress" in d.cmd("add")
    assert d.cmd("recover").get("verified") is True
    begin = d.cmd(
        "rotation_begin " + json.dumps({"old_set_id": g["identifier"], "old_policy": g["policy"]})
    )
    assert begin.get("rotation") is not None, begin
    n = d.cmd("genesis_new " + json.dumps(NEW))
    assert "identifier" in n, n
    new_key = _key_with(d, n["fingerprint"])
    assert new_key != old_key
    new_mnemonics = [_show(d, mem, master_fd, tty, grp) for grp in (1, 2, 3) for mem in (1, 2, 3)]
    assert d.cmd("finish")["finished"] is True
    assert d.cmd("seal old") == {"sealed": True, "transitional": True}
    assert d.cmd("seal new") == {"sealed": True, "transitional": False}
    st = d.cmd("statement")
    assert (
        st["old"]["fingerprint"] == g["fingerprint"]
        and st["new"]["fingerprint"] == n["fingerprint"]
    )

    new_secrets = {f"new_{k}": v for k, v in _secrets(new_key, new_mnemonics).items()}
    everything = {**secrets, **new_secrets}
    live = _assert_live(d, everything)
    assert live.count("master") >= 1 and live.count("new_master") >= 1, (
        "the scanner must see both live keys"
    )

    assert d.cmd("wipe") == {"wiped": True}
    status = d.cmd("status")
    assert status["master_held"] is False and status.get("rotation_keys") in (
        None,
        {"old": None, "new": None},
    ), status
    _assert_gone(d, everything)
    os.close(slave_fd)
    os.close(master_fd)
