"""Trusted path (issue 14): "nothing of either survives the refusal", in the KEYHOLDER.

tests/memory/test_trusted_path_memscan.py proves the UI process holds no share window when
the keyholder owns the terminal. This file scans the other side: the real keyholder
process, started on a pty this test owns, reads a plain paste of a whole share, a
bracketed paste, a 132-digit wedge-scanner burst (accepted, then wiped) and a scanner
burst whose checksum is wrong (refused) on its own terminal. Its memory outside the
locked, no-dump buffers (where a ``bytes``, ``str`` or ``int`` copy would sit) is then
searched for every 3-word window of the share: spaced and joined, in Latin-1, UTF-16 and
UTF-32, and as 4-digit QR runs. Target: 0 copies.

The positive control plants a window in the same keyholder's ordinary memory through a
public request field (the entry's title, a ``str`` the keyholder keeps while drawing) and
the same scan finds it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from tests.memory import memscan
from tests.memory.test_trusted_path_memscan import ENCODINGS, INDEX, SHARE, windows

pytestmark = pytest.mark.root


def scan_outside_locked(pid: int) -> list[str]:
    """Names (window-form-encoding) of the share windows found in ``pid``'s memory outside
    its locked, no-dump mappings (SecretBuffers) and memfd_secret areas."""
    wins = windows()
    by_text = {t.encode("latin-1"): n for n, t in wins.items()}
    rx = re.compile(b"|".join(re.escape(t) for t in sorted(by_text, key=len, reverse=True)))
    maps = [m for m in memscan.read_mappings(pid) if not (m.locked and m.dontdump) and not m.secretmem]
    found: set[str] = set()
    unreadable: list[str] = []
    for _mp, _addr, data in memscan.iter_memory(pid, maps, unreadable):
        for enc, step in zip(ENCODINGS, (1, 2, 4), strict=True):
            for lane in range(step):
                view = data if step == 1 else data[lane::step]
                for m in rx.finditer(view):
                    name = by_text[m.group()]
                    if wins[name].encode(enc) in data:
                        found.add(f"{name}-{enc}")
    return sorted(found)


class Term:
    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.path = os.ttyname(self.slave)
        self.out = bytearray()
        self.stop = False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        while not self.stop:
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                self.out.extend(os.read(self.master, 65536))
            except OSError:
                return

    def wait(self, pat: bytes, since: int = 0, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while pat not in self.out[since:]:
            assert time.monotonic() < end, f"{pat!r} not drawn: {bytes(self.out[-600:])!r}"
            time.sleep(0.01)

    def send(self, data: bytes, expect: bytes | None = None) -> None:
        since = len(self.out)
        os.write(self.master, data)
        if expect is not None:
            self.wait(expect, since)

    def close(self) -> None:
        self.stop = True
        self.t.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def term() -> Iterator[Term]:
    t = Term()
    yield t
    t.close()


@pytest.fixture
def kh(term: Term, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyholderClient]:
    if not memscan.is_root():
        pytest.skip("memory scans need root (CAP_SYS_PTRACE)")
    monkeypatch.setenv("KCM_SECMEM_BACKEND", "mlock")  # locked buffers are readable, and skipped
    client = KeyholderClient.start(allow_unlocked=False, terminal=term.path, demo=True)
    yield client
    client.close()


def _entry(kh: KeyholderClient, term: Term, drive: Callable[[Term], None], title: str = "Share entry") -> dict[str, Any]:
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(
        kh.call(sh.ENTRY_TERMINAL, words=33, title=title, scanner=True)), daemon=True)
    since = len(term.out)
    t.start()
    term.wait(b"keys 0\r", since)
    drive(term)
    t.join(30)
    assert not t.is_alive()
    return box


def _esc_esc(term: Term) -> None:
    term.send(b"\x1b")
    time.sleep(0.1)
    term.send(b"\x1b")


def plain_paste(term: Term) -> None:
    term.send(" ".join(SHARE).encode() + b"\r", b"a paste was refused")
    _esc_esc(term)


def bracketed_paste(term: Term) -> None:
    term.send(b"\x1b[200~" + " ".join(SHARE).encode() + b"\x1b[201~", b"A paste was refused")
    _esc_esc(term)


DIGITS = "".join(f"{INDEX[w]:04d}" for w in SHARE).encode()


def scanner_burst(term: Term) -> None:
    assert len(DIGITS) == 132
    term.send(DIGITS + b"\r")


def scanner_burst_refused(term: Term) -> None:
    # the share's digits with the last word changed: the checksum fails, the scan is refused
    bad = DIGITS[:-4] + (b"%04d" % ((INDEX[SHARE[-1]] + 1) % 1024))
    term.send(bad + b"\r", b"the scan is not a share QR")
    _esc_esc(term)


CASES: dict[str, tuple[Callable[[Term], None], str]] = {
    "plain-paste-refused": (plain_paste, "cancelled"),
    "bracketed-paste-refused": (bracketed_paste, "cancelled"),
    "scanner-burst-accepted": (scanner_burst, "ok"),
    "scanner-burst-refused": (scanner_burst_refused, "cancelled"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_share_window_outside_locked_memory_in_the_keyholder(kh: KeyholderClient, term: Term, case: str) -> None:
    drive, status = CASES[case]
    reply = _entry(kh, term, drive)
    assert reply.get("status") == status, reply
    if status == "ok":
        assert reply["via"] == "scanner"
        kh.call(sh.ENTRY_CLEAR)  # the accepted share is wiped as the UI does after use
    else:
        assert reply.get("pastes_refused", 0) >= (1 if "paste" in case else 0)
    found = scan_outside_locked(kh.pid)
    assert found == [], f"{case}: share windows outside locked memory in the keyholder: {found[:10]}"


def test_positive_control_finds_a_window_planted_in_the_keyholder(kh: KeyholderClient, term: Term) -> None:
    """A window sent in a public field (the entry's title: a ``str`` in the keyholder's
    ordinary memory while the entry runs) is found by the same scan of the same process."""
    planted = " ".join(SHARE[9:12])
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(
        kh.call(sh.ENTRY_TERMINAL, words=33, title=planted, scanner=True)), daemon=True)
    t.start()
    term.wait(b"keys 0\r")
    try:
        found = scan_outside_locked(kh.pid)
    finally:
        _esc_esc(term)
        t.join(30)
    assert "w10-spaced-latin-1" in found, found
