"""Card PINs typed on the keyholder's own terminal (issue 14: the keyholder owns the
terminal whenever a secret crosses it, PINs too).

Real parts: a real keyholder process started on a pty this test owns (demo mode), real
SoftHSM2 tokens standing in for the custodians' cards. The test plays the custodian on
the pty: it types the PIN key by key (as a person does), a wrong PIN, Esc, a plain paste
and a bracketed paste. The requests carry no PIN (``pin_from_terminal``); the replies
carry public facts only.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient
from core.keyholder.ops_carriers import CARD_READ_SHARE, CARD_WRITE_SHARE, CarrierClient
from tests.support.softhsm import HAVE_SOFTHSM, PINS, init_tokens

pytestmark = pytest.mark.skipif(not HAVE_SOFTHSM, reason="SoftHSM2 is not installed")

POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}
PIN_MASK = b"PIN: \x1b[1;33m"


class Term:
    """The pty the keyholder was started on; everything drawn on it is collected."""

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

    def wait(self, pat: bytes, since: int = 0, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while pat not in self.out[since:]:
            assert time.monotonic() < end, f"{pat!r} not drawn: {bytes(self.out[-600:])!r}"
            time.sleep(0.01)

    def type(self, keys: bytes, gap: float = 0.08) -> None:
        """Key by key, a person's pace (slower than the keyholder's burst window). A
        printable key waits for the keyholder's redraw before the next one: on a loaded
        machine keys written 80 ms apart can still be read together, as a burst."""
        for k in keys:
            mark = len(self.out)
            os.write(self.master, bytes([k]))
            if 0x20 < k < 0x7F:
                end = time.monotonic() + 20
                while len(self.out) == mark and time.monotonic() < end:
                    time.sleep(0.01)
            time.sleep(gap)

    def close(self) -> None:
        self.stop = True
        self.t.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # the keyholder child inherits it
    try:
        yield init_tokens(conf, ["c1", "c2"])
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture
def term() -> Iterator[Term]:
    t = Term()
    yield t
    t.close()


@pytest.fixture
def kh(term: Term, softhsm: dict[str, str]) -> Iterator[KeyholderClient]:
    client = KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0, pkcs11_modules=("softhsm2",), terminal=term.path, demo=True
    )
    client.genesis = sh.client_genesis_split(client, POLICY, generate=True)  # type: ignore[attr-defined]
    yield client
    client.close()


def _call_async(kh: KeyholderClient, opcode: int, **fields: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["reply"] = kh.call(opcode, **fields)
        except Exception as exc:  # the keyholder's error, raised as its class (code, message)
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _write(kh: KeyholderClient, serial: str, member: int = 1) -> tuple[threading.Thread, dict[str, Any]]:
    return _call_async(kh, CARD_WRITE_SHARE, module="softhsm2", serial=serial, group=1, member=member,
                       provision={"bits": 2048}, pin_from_terminal=True)


def _pin_state(kh: KeyholderClient, serial: str) -> str:
    toks = CarrierClient(kh).list_cards("softhsm2")
    return str(next(t for t in toks if str(t["serial"]) == serial)["pin_state"])


def test_card_write_with_the_pin_typed_on_the_keyholders_terminal(kh: KeyholderClient, term: Term,
                                                                  softhsm: dict[str, str]) -> None:
    """One PIN typed on the keyholder's terminal: the card key is made and the share
    written and read back. Only the mask is drawn, never the PIN; Backspace works."""
    serial = softhsm["c1"]
    t, box = _write(kh, serial)
    term.wait(PIN_MASK)
    assert b"card " + serial.encode() in term.out
    assert b"DEMO" in term.out  # a pty: demo mode only, and said so
    start = len(term.out)
    term.type(b"11x")
    term.wait(PIN_MASK + b"***", start)
    term.type(b"\x7f")  # Backspace drops the x
    term.type(b"11\r")
    t.join(120)
    assert "error" not in box, box.get("error")
    reply = box["reply"]
    assert reply["result"]["verified"] is True
    assert reply["key"]["serial"] == serial
    assert PINS["c1"].encode() not in term.out
    assert PINS["c1"] not in repr(reply) and set(reply) == {"sealed", "result", "key"}  # public facts only
    assert b"PIN taken" in term.out
    # the terminal handed back (cursor on, cleared): the reply can come before the reader
    # thread has drawn the last bytes, so wait for them, then nothing may follow
    term.wait(b"\x1b[?25h", start)
    time.sleep(0.3)
    assert term.out.endswith(b"\x1b[?25h")
    # the card (and the sealed file) hold the share: read it back, verify-only, PIN typed again
    t, box = _call_async(kh, CARD_READ_SHARE, module="softhsm2", serial=serial, sealed=reply["sealed"],
                         purpose="verify", commitments=kh.genesis["commitments"], pin_from_terminal=True)  # type: ignore[attr-defined]
    start = len(term.out)
    term.wait(PIN_MASK, start)
    assert b"check the share on the card" in term.out[start:]
    term.type(PINS["c1"].encode() + b"\r")
    t.join(60)
    assert "error" not in box, box.get("error")
    assert box["reply"]["matches"] is True and box["reply"]["share"]["member"] == 1


def test_a_wrong_pin_is_reported_with_the_cards_state(kh: KeyholderClient, term: Term,
                                                      softhsm: dict[str, str]) -> None:
    serial = softhsm["c2"]
    assert _pin_state(kh, serial) == "ok"
    t, box = _write(kh, serial, member=2)
    term.wait(PIN_MASK)
    term.type(b"9999\r")
    t.join(60)
    err = box.get("error")
    assert err is not None and err.code == "card-pin-incorrect", box
    assert "wrong PIN" in err.message
    assert "9999" not in err.message
    assert _pin_state(kh, serial) != "ok"  # the card counted the try
    # and the right PIN afterwards works
    t, box = _write(kh, serial, member=2)
    start = len(term.out)
    term.wait(PIN_MASK, start)
    term.type(PINS["c2"].encode() + b"\r")
    t.join(120)
    assert box.get("reply", {}).get("result", {}).get("verified") is True, box


def test_esc_cancels_and_nothing_reaches_the_card(kh: KeyholderClient, term: Term,
                                                 softhsm: dict[str, str]) -> None:
    serial = softhsm["c1"]
    state = _pin_state(kh, serial)
    t, box = _write(kh, serial)
    term.wait(PIN_MASK)
    term.type(b"12")
    term.type(b"\x1b")
    t.join(30)
    err = box.get("error")
    assert err is not None and err.code == "card-pin-cancelled", box
    assert "nothing was sent to the card" in err.message
    assert _pin_state(kh, serial) == state  # no try counted


@pytest.mark.parametrize("paste", [b"1111\r", b"\x1b[200~1111\x1b[201~"], ids=["plain", "bracketed"])
def test_a_pasted_pin_is_refused(kh: KeyholderClient, term: Term, softhsm: dict[str, str], paste: bytes) -> None:
    """A PIN arriving faster than typing (a paste, a scanner) is refused and wiped, with a
    message saying why; the PIN typed before it is wiped too. Nothing reaches the card:
    cancelling afterwards gives ``card-pin-cancelled``, the card counts no try."""
    serial = softhsm["c1"]
    state = _pin_state(kh, serial)
    t, box = _write(kh, serial)
    term.wait(PIN_MASK)
    term.type(b"55")
    start = len(term.out)
    os.write(term.master, paste)  # one write: a burst
    term.wait(b"Refused: that came in faster than typing", start)
    term.wait(PIN_MASK + b"\x1b[0m_", start)  # the mask is empty again: everything wiped
    t.join(0.5)
    assert t.is_alive(), f"the pasted PIN was used: {box}"
    term.type(b"\x1b")
    t.join(30)
    err = box.get("error")
    assert err is not None and err.code == "card-pin-cancelled", box
    assert _pin_state(kh, serial) == state


def test_a_request_cannot_carry_a_pin_and_ask_for_the_terminal(kh: KeyholderClient, softhsm: dict[str, str]) -> None:
    from core.keyholder.protocol import Secret
    from core.secmem import SecretBuffer

    buf = SecretBuffer(4, allow_unlocked=True)
    with buf.view() as mv:
        mv[:] = b"1111"
        with pytest.raises(Exception, match="not both"):
            kh.call(CARD_WRITE_SHARE, module="softhsm2", serial=softhsm["c1"], group=1, member=1,
                    provision={"bits": 2048}, pin=Secret(mv), pin_from_terminal=True)
    buf.close()


def test_without_a_display_terminal_the_pin_is_refused(softhsm: dict[str, str], tmp_path: Path) -> None:
    with KeyholderClient.start(allow_unlocked=True, pkcs11_modules=("softhsm2",)) as kh:
        sh.client_genesis_split(kh, POLICY, generate=True)
        with pytest.raises(Exception, match="started without a display terminal"):
            kh.call(CARD_WRITE_SHARE, module="softhsm2", serial=softhsm["c1"], group=1, member=1,
                    provision={"bits": 2048}, pin_from_terminal=True)


def test_an_idle_pin_entry_ends_and_the_pin_is_wiped(term: Term) -> None:
    """No key for the idle time: the entry ends (``idle``) and what was typed is wiped."""
    import termios
    import tty

    from core.keyholder.termpin import read_pin
    from core.secmem import SecretBuffer

    buf = SecretBuffer(32, allow_unlocked=True)
    old = termios.tcgetattr(term.slave)
    tty.setraw(term.slave)
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(
        read_pin(term.slave, buf, title=b"Card PIN - test", allow_unlocked=True, idle=1.0)), daemon=True)
    try:
        t0 = time.monotonic()
        t.start()
        term.wait(PIN_MASK)
        term.type(b"12")
        term.wait(PIN_MASK + b"**")
        t.join(10)
        assert box == {"status": "idle", "length": 0, "pastes_refused": 0}
        assert time.monotonic() - t0 >= 1.0
        with buf.view() as mv:
            assert bytes(mv) == bytes(32)  # test-only copy: all zero, the PIN was wiped
    finally:
        termios.tcsetattr(term.slave, termios.TCSANOW, old)
        buf.close()
