"""Audit: the wipe-and-exit signal path cannot deadlock, and a failing reset hook cannot
stop the final wipe.

The keyholder's SIGTERM/SIGINT/SIGHUP handler (also reached through PR_SET_PDEATHSIG when
the UI dies) runs in the main thread between two bytecodes, possibly while that same thread
holds ``core.secmem``'s buffer registry lock or ``core.shamir._mem``'s slab lock (every
allocation and every close of a share takes them). With a non-reentrant lock the handler's
``wipe`` then waits for itself forever: the keyholder never wipes and never exits, with
every secret still in memory. Each case below runs in a child process that holds the lock
when the signal arrives; it must exit 143 (wiped) within the timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import secmem
from core.keyholder.ops import KeyholderState

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import os, signal
from core import secmem
from core.keyholder import harden
from core.keyholder.ops import KeyholderState
from core.shamir import _mem
state = KeyholderState(allow_unlocked=True)
_mem.set_allow_unlocked(True)
harden.install_signal_handlers(state.wipe)
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = _PRELUDE + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "KCM_SECMEM_BACKEND")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "body",
    [
        # the buffer registry lock (SecretBuffer.__init__/close, wipe_all)
        """
        buf = secmem.SecretBuffer(32); buf.fill_random()
        state.master = buf
        with secmem._lock:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000): pass   # the handler runs here, lock held
        raise SystemExit(7)
        """,
        # the slab lock (every share value / word-index buffer is a slab slot)
        """
        share = _mem.alloc(66); share.fill_random()
        state.resets.append(lambda s: share.close())
        with _mem._slab_lock:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000): pass
        raise SystemExit(7)
        """,
    ],
    ids=["registry-lock", "slab-lock"],
)
def test_sigterm_while_a_secmem_lock_is_held_still_wipes_and_exits(body: str) -> None:
    try:
        proc = _run(body)
    except subprocess.TimeoutExpired:
        pytest.fail("the signal handler deadlocked on a lock its own thread holds")
    assert proc.returncode == 143, (proc.returncode, proc.stderr[-2000:])


def test_state_wipe_still_wipes_every_buffer_when_a_reset_hook_fails() -> None:
    state = KeyholderState(allow_unlocked=True)
    buf = secmem.SecretBuffer(32, allow_unlocked=True)
    buf.fill_random()

    def broken(_s: KeyholderState) -> None:
        raise RuntimeError("a reset interrupted mid-way (e.g. by the signal handler)")

    state.resets.append(broken)
    with pytest.raises(RuntimeError):
        state.wipe()
    try:
        with buf.view() as mv:
            assert mv.tobytes() == bytes(32), "live buffers were left unwiped"
    finally:
        buf.close()


def test_sigpipe_wipes_before_exit() -> None:
    """A reply written after the UI died (reply pipe closed) raises SIGPIPE. With the
    default action the keyholder is killed outright, skipping the wipe that every other
    exit path does (its freed pages keep the secrets unless the kernel zeroes them); the
    handler must wipe and exit 128 + SIGPIPE instead."""
    proc = _run(
        """
        buf = secmem.SecretBuffer(32); buf.fill_random()
        state.master = buf
        r, w = os.pipe()
        os.close(r)
        os.write(w, b"reply")   # EPIPE + SIGPIPE
        raise SystemExit(7)
        """
    )
    assert proc.returncode == 128 + 13, (proc.returncode, proc.stderr[-2000:])
