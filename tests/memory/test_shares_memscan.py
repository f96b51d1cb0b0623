"""Memory scan of a 3-of-5 genesis and a recovery from 3 typed shares (issue 3).

Secrets searched in the keyholder and in its parent (every encoding memscan knows): the
MasterKey, every share's value (32 bytes), every share's word indices as the keyholder
holds them (66 bytes) and every share's mnemonic string. While the key is live every copy
must be inside a locked, no-dump mapping and the parent must hold none; after wipe there
must be 0 copies anywhere.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import threading

import pytest
from shamir_mnemonic.share import Share as RefShare

from core.crypto.fingerprint import derive_fingerprint
from core.shamir.wordlist import word_index
from tests.memory import memscan

pytestmark = pytest.mark.root

POLICY = {"group_threshold": 1, "groups": [[3, 5]], "extendable": True, "iteration_exponent": 0}


def _show(d, member: int, master_fd: int, tty: str, group: int = 1) -> str:  # type: ignore[no-untyped-def]
    """Show a share on the keyholder's terminal (the pty fixed at spawn) and read it."""
    out = bytearray()

    def reader() -> None:
        while True:
            if not select.select([master_fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(master_fd, 4096)
            except OSError:
                return
            out.extend(chunk)
            if b"Press Enter when done" in out:
                os.write(master_fd, b"\r\r")
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    reply = d.cmd(f"show {group} {member} {tty}")
    assert reply.get("shown") is True, reply
    t.join(5)
    words = dict((int(n), w.decode()) for n, w in re.findall(rb"\s(\d+)\. ([a-z]+)", bytes(out)))
    assert len(words) == 33
    return " ".join(words[k] for k in sorted(words))


def _extract_master(d, fp: str) -> bytes:  # type: ignore[no-untyped-def]
    for cand in memscan.locked_secret_candidates(d.keyholder_pid):
        if derive_fingerprint(memoryview(bytearray(cand))).hex == fp:
            return cand
    raise AssertionError("no locked mapping holds a key with the reported fingerprint")


def _secrets(master: bytes, mnemonics: list[str]) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {"master": master}
    for i, m in enumerate(mnemonics, 1):
        out[f"value{i}"] = RefShare.from_mnemonic(m).value
        out[f"indices{i}"] = b"".join(word_index(w).to_bytes(2, "big") for w in m.split())
        out[f"mnemonic{i}"] = m
    return out


def _assert_live(d, secrets) -> memscan.ScanResult:  # type: ignore[no-untyped-def]
    kh = memscan.scan(d.keyholder_pid, secrets)
    assert kh.outside_locked() == [], kh.summary()
    parent = memscan.scan(d.pid, secrets)
    assert parent.count() == 0, parent.summary()
    return kh


def _assert_gone(d, secrets) -> None:  # type: ignore[no-untyped-def]
    kh = memscan.scan(d.keyholder_pid, secrets)
    assert kh.count() == 0, kh.summary()
    parent = memscan.scan(d.pid, secrets)
    assert parent.count() == 0, parent.summary()


def test_genesis_and_typed_recovery_leave_nothing(driver_factory) -> None:  # type: ignore[no-untyped-def]
    master_fd, slave_fd = pty.openpty()  # the custodian terminal, fixed at spawn
    tty = os.ttyname(slave_fd)
    d = driver_factory("mlock", plugins=["tests.memory.shares_plugin"], terminal=tty)
    g = d.cmd("genesis " + json.dumps(POLICY))
    assert "identifier" in g, g
    master = _extract_master(d, g["fingerprint"])
    mnemonics = [_show(d, m, master_fd, tty) for m in range(1, 6)]
    secrets = _secrets(master, mnemonics)

    live = _assert_live(d, secrets)
    assert live.count("master") >= 1, "the scanner must see the live key"
    assert live.count("indices1") >= 1, "the scanner must see the held share words"

    assert d.cmd("finish")["finished"] is True
    assert d.cmd("wipe") == {"wiped": True}
    _assert_gone(d, secrets)

    d.cmd("recovery_begin " + json.dumps({"commitments": g["commitments"], "fingerprint": g["fingerprint"]}))
    for m in mnemonics[:3]:
        d.cmd("entry_begin 33")
        for pos, w in enumerate(m.split(), 1):
            assert d.cmd(f"word {pos} {w[:4]}")["status"] == "accepted"
        assert d.cmd("entry_finish")["status"] == "ok"
        assert "progress" in d.cmd("add")
    rec = d.cmd("recover")
    assert rec.get("verified") is True, rec
    live = _assert_live(d, secrets)
    assert live.count("master") >= 1

    assert d.cmd("wipe") == {"wiped": True}
    _assert_gone(d, secrets)
    os.close(slave_fd)
    os.close(master_fd)
