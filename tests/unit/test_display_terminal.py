"""The keyholder's display terminal is fixed when it is spawned (issue 14, item 4).

Attacks tried: a UI that opens ``/dev/ptmx`` and names the matching ``/dev/pts/N`` in a
request, to read a share itself; a request that names another terminal after spawn; a
keyholder given no terminal; a pseudo-terminal outside demo mode.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import time

import pytest

from core.keyholder import ops_shares as sh
from core.keyholder import terminal as kterm
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import Refused
from core.keyholder.ops_carriers import QR_SHOW

POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}


def _read_all(fd: int, wait: float = 0.3) -> bytes:
    out = b""
    while select.select([fd], [], [], wait)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def _show_and_press(kh: KeyholderClient, master_fd: int, **fields: object) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    """Ask for a share reveal on the keyholder's own terminal; press Enter twice when it shows."""
    out = bytearray()
    done = threading.Event()

    def reader() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            if select.select([master_fd], [], [], 0.05)[0]:
                out.extend(os.read(master_fd, 65536))
                if b"Press Enter when done" in out:
                    # a reveal ends with Enter, then Enter again to confirm (issue 14)
                    os.write(master_fd, b"\r")
                    time.sleep(0.2)
                    os.write(master_fd, b"\r")
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        reply = kh.call(sh.SHOW_SHARE, group=1, member=1, custodian="Alice", **fields)
    finally:
        done.set()
        t.join(5)
    return dict(reply), bytes(out)


def test_a_request_naming_the_uis_own_pty_is_refused() -> None:
    """The attack of the issue: the UI opens /dev/ptmx and names the matching /dev/pts/N.
    Nothing of the share reaches that pty; the refusal names the fixed terminal."""
    k_master, k_slave = pty.openpty()  # the keyholder's terminal (fixed at spawn)
    a_master, a_slave = pty.openpty()  # the attacker's pty
    try:
        with KeyholderClient.start(allow_unlocked=True, terminal=k_slave, demo=True) as kh:
            sh.client_genesis_split(kh, POLICY, generate=True)
            with pytest.raises(Refused, match="cannot name another terminal") as exc:
                kh.call(sh.SHOW_SHARE, group=1, member=1, tty=os.ttyname(a_slave), custodian="x")
            assert os.ttyname(k_slave) in exc.value.message
            with pytest.raises(Refused, match="cannot name another terminal"):
                kh.call(QR_SHOW, group=1, member=1, tty=os.ttyname(a_slave), custodian="x")
            assert _read_all(a_master) == b"", "the attacker's pty received output"
            # the share was not counted as handed over: it can still go to its custodian,
            # on the terminal fixed at spawn, and only there
            reply, screen = _show_and_press(kh, k_master)
            assert reply["shown"] is True
            assert screen.count(b". ") >= 33  # the numbered word grid
            assert _read_all(a_master) == b""
    finally:
        for fd in (k_master, k_slave, a_master, a_slave):
            os.close(fd)


def test_the_terminal_fixed_at_spawn_cannot_be_changed_later() -> None:
    """Each later request naming another terminal is refused; ``/dev/tty`` or the fixed
    device itself (what older clients send) stay on the fixed one."""
    k_master, k_slave = pty.openpty()
    other_master, other_slave = pty.openpty()
    try:
        with KeyholderClient.start(allow_unlocked=True, terminal=k_slave, demo=True) as kh:
            assert kh.info["terminal"] == {"path": os.ttyname(k_slave), "pty": True, "usable": True}
            sh.client_genesis_split(kh, POLICY, generate=True)
            for attempt in (os.ttyname(other_slave), "/dev/ptmx", "/dev/null", "/tmp/x"):
                with pytest.raises(Refused, match="cannot name another terminal"):
                    kh.call(sh.SHOW_SHARE, group=1, member=1, tty=attempt, custodian="x")
            reply, screen = _show_and_press(kh, k_master, tty=os.ttyname(k_slave))
            assert reply["shown"] is True and b"Press Enter when done" in screen
            assert _read_all(other_master) == b""
    finally:
        for fd in (k_master, k_slave, other_master, other_slave):
            os.close(fd)


def test_without_a_terminal_at_spawn_no_share_is_shown() -> None:
    """A keyholder given no terminal refuses every reveal, whatever a request names."""
    a_master, a_slave = pty.openpty()
    try:
        with KeyholderClient.start(allow_unlocked=True) as kh:
            assert kh.info["terminal"] == {}
            sh.client_genesis_split(kh, POLICY, generate=True)
            with pytest.raises(Refused, match="started without a display terminal"):
                kh.call(sh.SHOW_SHARE, group=1, member=1, tty=os.ttyname(a_slave), custodian="x")
            assert _read_all(a_master) == b""
    finally:
        os.close(a_master)
        os.close(a_slave)


def test_a_pseudo_terminal_is_refused_outside_demo_mode_with_the_reason() -> None:
    k_master, k_slave = pty.openpty()
    try:
        with KeyholderClient.start(allow_unlocked=True, terminal=k_slave, demo=False) as kh:
            assert kh.info["terminal"]["pty"] is True
            assert kh.info["terminal"]["usable"] is False  # the UI can say so before a reveal
            sh.client_genesis_split(kh, POLICY, generate=True)
            with pytest.raises(Refused, match="pseudo-terminal") as exc:
                kh.call(sh.SHOW_SHARE, group=1, member=1, custodian="x")
            assert "multiplexer" in exc.value.message and "ssh" in exc.value.message
            with pytest.raises(Refused, match="pseudo-terminal"):
                kh.call(QR_SHOW, group=1, member=1, custodian="x")
            assert _read_all(k_master) == b""
    finally:
        os.close(k_master)
        os.close(k_slave)


def test_in_demo_mode_a_pseudo_terminal_shows_the_share_with_a_demo_notice() -> None:
    k_master, k_slave = pty.openpty()
    try:
        with KeyholderClient.start(allow_unlocked=True, terminal=k_slave, demo=True) as kh:
            sh.client_genesis_split(kh, POLICY, generate=True)
            reply, screen = _show_and_press(kh, k_master)
            assert reply["shown"] is True
            assert b"DEMO: pseudo-terminal " + os.ttyname(k_slave).encode() in screen
    finally:
        os.close(k_master)
        os.close(k_slave)


def test_pty_majors_are_recognised() -> None:
    master, slave = pty.openpty()
    try:
        assert os.major(os.fstat(slave).st_rdev) in kterm.PTY_MAJORS
        assert kterm.is_pty(slave)
        null = os.open("/dev/null", os.O_RDONLY)
        try:
            assert not kterm.is_pty(null)
        finally:
            os.close(null)
    finally:
        os.close(master)
        os.close(slave)


def test_the_keyholder_refuses_a_terminal_fd_that_is_no_terminal() -> None:
    """A broken launcher (fd 3 not a terminal) stops the keyholder before any request."""
    import subprocess
    import sys

    r, w = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-m", "core.keyholder", "--allow-unlocked",
             "--terminal-fd", str(r)],
            pass_fds=(r,), stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )  # fmt: skip
    finally:
        os.close(r)
        os.close(w)
    assert proc.returncode != 0
    assert b"not a terminal" in proc.stderr
