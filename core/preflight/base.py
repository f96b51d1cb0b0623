"""The preflight's vocabulary: modes, check names, :class:`CheckResult`, the helpers that
read ``/proc`` and ``/sys`` under a root, and the kernel probes (memfd_secret,
getrandom)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

Status = Literal["PASS", "WARN", "FAIL"]

#: A probe returns (works, one-line detail).
Probe = Callable[[], tuple[bool, str]]

MODES: Final = ("ceremony", "demo")

#: The keyholder's locked arena plus headroom; below this (without CAP_IPC_LOCK) it cannot
#: start. Kernels since 5.16 default to 8 MiB, older ones to 64 KiB.
MIN_MEMLOCK_BYTES: Final = 1 << 20

MIN_COLUMNS: Final = 80

MIN_LINES: Final = 24

CHECK_NAMES: Final = (
    "network-interfaces",
    "default-route",
    "swap",
    "core-dumps",
    "memory-locking",
    "kernel-cmdline",
    "entropy",
    "live-media",
    "environment",
    "decoder-sandbox",
    "privileges",
    "terminal-size",
)

_IFF_UP: Final = 0x1

_IFF_LOOPBACK: Final = 0x8

_RTF_UP: Final = 0x0001

_RTF_REJECT: Final = 0x0200

_CAP_IPC_LOCK: Final = 14

_GRND_NONBLOCK: Final = 0x0001

_SYS_MEMFD_SECRET: Final = {"x86_64": 447, "aarch64": 447}.get(platform.machine())

_SYS_GETRANDOM: Final = {"x86_64": 318, "aarch64": 278}.get(platform.machine())

_NOTHING_TO_DO: Final = "nothing to do"

@dataclass(frozen=True)
class CheckResult:
    """The outcome of one preflight check.

    Attributes:
        name: Stable identifier of the check (one of :data:`CHECK_NAMES`).
        status: ``"PASS"``, ``"WARN"`` or ``"FAIL"``.
        reason: One line: what was found.
        action: One line: what to do about it (``"nothing to do"`` on PASS).
    """

    name: str
    status: Status
    reason: str
    action: str

def _validate_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown preflight mode {mode!r}; expected one of {', '.join(MODES)}")

def _bad(mode: str) -> Status:
    """Severity of a finding that blocks a real ceremony: FAIL, or WARN in demo mode."""
    _validate_mode(mode)
    return "FAIL" if mode == "ceremony" else "WARN"

def _path(root: str, rel: str) -> str:
    return os.path.join(root, rel.lstrip("/"))

def _read(root: str, rel: str) -> str | None:
    """Text of root/rel, or None if it cannot be read (absent, no permission)."""
    try:
        with open(_path(root, rel), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None

def _read_int(root: str, rel: str, base: int = 10) -> int | None:
    text = _read(root, rel)
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None

def _one_line(text: str) -> str:
    return " ".join(text.split())

def _limit_text(value: int) -> str:
    if value == resource.RLIM_INFINITY or value < 0:
        return "unlimited"
    if value >= 1 << 20 and value % (1 << 20) == 0:
        return f"{value >> 20} MiB"
    if value >= 1024 and value % 1024 == 0:
        return f"{value >> 10} KiB"
    return "0" if value == 0 else f"{value} bytes"

def _cmdline_params(text: str) -> dict[str, str | None]:
    """Kernel parameters from /proc/cmdline (last one wins; init's arguments after ``--``
    are not kernel parameters). A bare flag maps to None."""
    params: dict[str, str | None] = {}
    for token in text.split():
        if token == "--":
            break
        key, sep, value = token.partition("=")
        params[key] = value.strip('"') if sep else None
    return params

def _kernel_bool(value: str | None) -> bool:
    """Truth as the kernel's kstrtobool reads it (1/y/on)."""
    if not value:
        return False
    return value[0] in "yY1" or value.lower() == "on"

def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)

def _errno_text(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))}: {os.strerror(err)}"

def probe_memfd_secret() -> tuple[bool, str]:
    """Try ``memfd_secret(2)`` in this process: create, size and map one page, then close.

    Returns:
        ``(True, detail)`` if secret memory works, else ``(False, why)``.
    """
    if _SYS_MEMFD_SECRET is None:
        return False, f"memfd_secret is not known on {platform.machine() or 'this machine'}"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    fd = int(libc.syscall(ctypes.c_long(_SYS_MEMFD_SECRET), ctypes.c_uint(0)))
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            return (
                False,
                "the kernel has no memfd_secret (ENOSYS: CONFIG_SECRETMEM off or secretmem disabled)",
            )
        return False, f"memfd_secret failed ({_errno_text(err)})"
    try:
        # The fd alone proves little: mapping a page is what the keyholder will do, and it is
        # charged to RLIMIT_MEMLOCK.
        os.ftruncate(fd, mmap.PAGESIZE)
        page = mmap.mmap(fd, mmap.PAGESIZE)
        page.close()
    except OSError as exc:
        return False, f"memfd_secret fd created but a page could not be mapped ({exc.strerror})"
    finally:
        os.close(fd)
    return True, "memfd_secret works"

def probe_getrandom() -> tuple[bool, str]:
    """Ask ``getrandom(2)`` for 16 bytes with GRND_NONBLOCK (the pool is ready if it answers).

    The bytes land in a ctypes buffer that is zeroed afterwards; they never become a Python
    ``bytes`` object.

    Returns:
        ``(True, detail)`` if the kernel's pool is initialised, else ``(False, why)``.
    """
    libc = _libc()
    size = 16
    buf = ctypes.create_string_buffer(size)
    try:
        getrandom = getattr(libc, "getrandom", None)
        if getrandom is not None:
            getrandom.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
            getrandom.restype = ctypes.c_ssize_t
            got = int(getrandom(buf, size, _GRND_NONBLOCK))
        elif _SYS_GETRANDOM is not None:
            libc.syscall.restype = ctypes.c_long
            got = int(
                libc.syscall(
                    ctypes.c_long(_SYS_GETRANDOM),
                    buf,
                    ctypes.c_size_t(size),
                    ctypes.c_uint(_GRND_NONBLOCK),
                )
            )
        else:
            return False, "getrandom is not available on this platform"
        if got == size:
            return True, "getrandom answered without blocking"
        if got < 0:
            err = ctypes.get_errno()
            if err == errno.EAGAIN:
                return False, "the kernel's random pool is not initialised yet (EAGAIN)"
            return False, f"getrandom failed ({_errno_text(err)})"
        return False, f"getrandom returned {got} of {size} bytes"
    finally:
        ctypes.memset(buf, 0, size)

def _terminal_size() -> tuple[int, int] | None:
    for fd in (1, 2, 0):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.columns, size.lines
    return None
