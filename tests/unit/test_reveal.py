"""Reveal rules (issue 14, item 5), through a real keyholder and a pty we own.

Only Enter + Enter (confirm) ends a reveal; a stray key does not. A share may be shown again
until its type-back check passes, and is refused after. An idle reveal is hidden after a set
time and can be shown again. Each showing is reported (``showing``, ``ended``) for the
journal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import threading
import time
from typing import Any

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import Refused

POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}


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
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self.out.extend(chunk)

    def wait(self, pat: bytes, since: int = 0, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while pat not in self.out[since:]:
            assert time.monotonic() < end, f"{pat!r} not drawn: {bytes(self.out[-400:])!r}"
            time.sleep(0.01)

    def words(self) -> list[str]:
        found = dict(re.findall(rb"\s(\d+)\. ([a-z]+)", bytes(self.out)))
        return [found[k].decode() for k in sorted(found, key=int)]

    def close(self) -> None:
        self.stop = True
        self.t.join(5)
        os.close(self.master)
        os.close(self.slave)


COMMITMENTS: dict[int, list[dict[str, Any]]] = {}


@pytest.fixture
def kh(term: Term):  # type: ignore[no-untyped-def]
    # the display terminal is fixed when the keyholder starts (a pty: demo mode)
    client = KeyholderClient.start(allow_unlocked=os.geteuid() != 0, terminal=term.path, demo=True)
    COMMITMENTS[client.pid] = sh.client_genesis_split(client, POLICY, generate=True)["commitments"]
    yield client
    client.close()


@pytest.fixture
def term():  # type: ignore[no-untyped-def]
    t = Term()
    yield t
    t.close()


def show_async(kh: KeyholderClient, term: Term, **extra: Any) -> tuple[threading.Thread, dict[str, Any]]:
    res: dict[str, Any] = {}

    def go() -> None:
        try:
            res.update(kh.call(sh.SHOW_SHARE, group=1, member=1, tty=term.path, custodian="Alice", **extra))
        except Exception as exc:
            res["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, res


def test_a_stray_key_does_not_end_a_reveal(kh: KeyholderClient, term: Term) -> None:
    t, res = show_async(kh, term)
    term.wait(b"Press Enter when done")
    mark = len(term.out)
    for key in (b"x", b" ", b"\x1b", b"q"):
        os.write(term.master, key)
        time.sleep(0.1)
    t.join(0.5)
    assert t.is_alive() and not res, "a stray key ended the reveal"
    assert b"\x1b[3J" not in term.out[mark:]  # not erased
    os.write(term.master, b"\r")  # Enter: asks to confirm
    term.wait(b"Press Enter again to erase", mark)
    os.write(term.master, b"n")  # changed their mind: the share stays
    term.wait(b"Press Enter when done", mark + 1)
    t.join(0.5)
    assert t.is_alive()
    os.write(term.master, b"\r")
    time.sleep(0.1)
    os.write(term.master, b"\r")
    t.join(20)
    assert res["shown"] is True and res["ended"] == "enter-confirmed" and res["showing"] == 1


def test_shown_again_until_type_back_passes_then_refused(kh: KeyholderClient, term: Term) -> None:
    t, res = show_async(kh, term)
    term.wait(b"Press Enter when done")
    words = term.words()
    assert len(words) == 33
    os.write(term.master, b"\r\r")
    t.join(20)
    assert res["showing"] == 1
    # the custodian did not finish writing: shown again (the title says which showing)
    t, res = show_async(kh, term)
    term.wait(b"(showing 2)")
    os.write(term.master, b"\r\r")
    t.join(20)
    assert res["showing"] == 2 and res["ended"] == "enter-confirmed"
    # another terminal may not take it
    with pytest.raises(Refused, match="already handed"):
        sh.client_show_share(kh, 1, 1, "/dev/null", "Mallory")
    # type-back on the keyholder's terminal, then the check against the manifest passes
    res2: dict[str, Any] = {}

    def entry() -> None:
        res2.update(kh.call(sh.ENTRY_TERMINAL, tty=term.path, title="type back"))

    te = threading.Thread(target=entry, daemon=True)
    mark = len(term.out)
    te.start()
    term.wait(b"keys 0\r", mark)
    keys = 0
    for w in words:
        keys += 4
        since = len(term.out)
        os.write(term.master, w[:4].encode())
        term.wait(b"keys %d\r" % keys, since)
    os.write(term.master, b"\r")
    te.join(20)
    assert res2["status"] == "ok" and (res2["group"], res2["member"]) == (1, 1)
    status = kh.call(sh.SHARES_STATUS)
    assert status["identifier"] == res2["set"]
    # the check against the manifest's commitments (from the split reply) passes
    v = kh.call(sh.VERIFY_SHARE, commitments=COMMITMENTS[kh.pid])
    assert v["matches"] is True and v["typed_back"] is True
    with pytest.raises(Refused, match="typed back and checked"):
        sh.client_show_share(kh, 1, 1, term.path, "Alice")


def test_idle_reveal_is_hidden_and_can_be_shown_again(kh: KeyholderClient, term: Term) -> None:
    t, res = show_async(kh, term, idle_hide=1)
    term.wait(b"Press Enter when done")
    t.join(20)
    assert res["ended"] == "hidden-idle"
    assert b"\x1b[3J" in term.out  # erased, scrollback too
    t, res = show_async(kh, term)
    term.wait(b"(showing 2)")
    os.write(term.master, b"\r\r")
    t.join(20)
    assert res["ended"] == "enter-confirmed"


def test_the_ui_cannot_draw_on_the_trusted_terminal_through_a_title(
    kh: KeyholderClient, term: Term
) -> None:
    """An entry title with an escape sequence and a line break is drawn as plain text: the
    UI (possibly hostile) cannot clear, move or recolour the keyholder's terminal."""
    res: dict[str, Any] = {}

    def entry() -> None:
        try:
            res.update(kh.call(sh.ENTRY_TERMINAL, tty=term.path, title="x\x1b[2J\x1b[HFAKE\nPROMPT"))
        except Exception as exc:
            res["error"] = exc

    te = threading.Thread(target=entry, daemon=True)
    te.start()
    term.wait(b"keys 0\r")
    assert b"x?[2J?[HFAKE?PROMPT" in term.out
    assert b"\x1b[HFAKE" not in term.out and b"\nPROMPT" not in term.out
    # the DEMO notice is a line of its own, above the title
    assert re.search(rb"DEMO: pseudo-terminal [^\r\n]+\x1b\[0m\r\n\x1b\[1mx\?\[2J", bytes(term.out))
    os.write(term.master, b"\x1b")
    time.sleep(0.2)
    os.write(term.master, b"\x1b")
    te.join(20)
    assert not te.is_alive()


def _set_size(fd: int, cols: int, rows: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_a_terminal_too_small_for_the_share_is_refused_before_any_word(kh: KeyholderClient, term: Term) -> None:
    """Issue 15: at 40x12 the grid wrapped and scrolled out of reach of the final clear. The
    keyholder now refuses before drawing: no word reaches the terminal, the share stays
    unhanded (shown again once the terminal is enlarged), and the message says the sizes."""
    _set_size(term.slave, 40, 12)
    mark = len(term.out)
    with pytest.raises(Refused) as err:
        kh.call(sh.SHOW_SHARE, group=1, member=1, tty=term.path, custodian="Alice")
    assert "the terminal is 40x12" in str(err.value) and "nothing of it was shown" in str(err.value)
    time.sleep(0.3)
    assert not re.search(rb"\d+\. [a-z]+", bytes(term.out[mark:])), bytes(term.out[mark:])
    # enlarged: the same share is shown (it was not counted as handed out)
    _set_size(term.slave, 80, 24)
    t, res = show_async(kh, term)
    term.wait(b"Press Enter when done", mark)
    assert len(term.words()) in (20, 33)
    os.write(term.master, b"\r")
    time.sleep(0.1)
    os.write(term.master, b"\r")
    t.join(20)
    assert res["shown"] is True and res["showing"] == 1
