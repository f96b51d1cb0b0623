"""Process hardening for the keyholder, applied before any secret exists.

* RLIMIT_CORE 0 and PR_SET_DUMPABLE 0: no core dump, no ptrace by same-uid processes,
  /proc/PID/mem readable only with CAP_SYS_PTRACE.
* PR_SET_PDEATHSIG SIGTERM: if the parent dies, we are told (and wipe), besides the pipe EOF.
* mlockall(MCL_CURRENT | MCL_FUTURE) when permitted (root, CAP_IPC_LOCK, or an unlimited
  RLIMIT_MEMLOCK: what the keyholder launcher gives its unprivileged user): the whole
  process, interpreter heap included, never reaches swap. Not attempted under a finite
  limit, because MCL_FUTURE under an 8 MiB RLIMIT_MEMLOCK makes later allocations fail.
* faulthandler off, no tracebacks with locals (our handlers print only the type).
* SIGTERM, SIGINT, SIGHUP, SIGPIPE: wipe every live buffer, then exit with 128 + signal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import os
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["Hardening", "harden", "harden_ui", "install_signal_handlers"]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
MCL_CURRENT = 1
MCL_FUTURE = 2
CAP_IPC_LOCK = 14

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


@dataclass
class Hardening:
    """What hardening took effect (public; reported to the UI and the journal)."""

    core_limit_zero: bool = False
    not_dumpable: bool = False
    pdeathsig: bool = False
    mlockall: bool = False
    notes: list[str] = field(default_factory=list)


def _has_cap(cap: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except OSError:
        pass
    return False


def harden() -> Hardening:
    """Apply the hardening; return what succeeded."""
    h = Hardening()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    h.core_limit_zero = resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    h.not_dumpable = _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    h.pdeathsig = _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    unlimited = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY
    if os.geteuid() == 0 or _has_cap(CAP_IPC_LOCK) or unlimited:
        if _libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
            h.mlockall = True
        else:
            h.notes.append(f"mlockall failed: {os.strerror(ctypes.get_errno())}")
    else:
        h.notes.append(
            "mlockall skipped: needs root, CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK "
            "(secret buffers are still locked)"
        )
    if faulthandler.is_enabled():
        faulthandler.disable()
    sys.tracebacklimit = 0  # an uncaught exception prints its type and message only
    return h


def harden_ui() -> Hardening:
    """The lighter hardening of the UI process: it holds typed share characters in a
    locked buffer while they are entered, so no core dump and not dumpable either (no
    mlockall: the UI is large and allocates freely; its secrets are in SecretBuffers)."""
    h = Hardening()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    h.core_limit_zero = resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    h.not_dumpable = _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    return h


def install_signal_handlers(wipe: Callable[[], None]) -> None:
    """On SIGTERM/SIGINT/SIGHUP/SIGPIPE: wipe, then exit with status 128 + signal."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        try:
            wipe()
        finally:
            os._exit(128 + signum)

    # SIGPIPE too: a reply written after the UI died would otherwise kill the process
    # with the default action, skipping the wipe every other exit path does.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, handler)
