"""Workstation preflight: is this machine fit to hold a MasterKey ceremony?

Run as ``kcm-ceremony preflight [--json] [--demo]``; the TUI's start screen calls
:func:`run_all`. Every check returns a :class:`CheckResult` with a status, a one-line reason
and a one-line "what to do".

Checks (stable names, in order, see :data:`CHECK_NAMES`):

======================  =====================================================  =============
name                    bad when                                               ceremony
======================  =====================================================  =============
network-interfaces      a non-loopback interface is up                         FAIL
                        one is present but down, or a Bluetooth adapter exists WARN
default-route           an IPv4 or IPv6 default route exists                   FAIL
swap                    swap on a disk is active                               FAIL
                        only RAM-backed zram swap is active                    WARN
core-dumps              fs.suid_dumpable != 0 (defeats PR_SET_DUMPABLE 0), or  FAIL
                        RLIMIT_CORE != 0 with a file or helper core_pattern
                        a core_pattern helper that gets dumps regardless of    WARN
                        RLIMIT_CORE (the kernel does not apply it to pipes)
memory-locking          no CAP_IPC_LOCK and RLIMIT_MEMLOCK < 1 MiB             FAIL
                        memfd_secret unavailable (mlock fallback only)         WARN
kernel-cmdline          a hardening flag is missing (init_on_free=1, ...)      WARN
entropy                 getrandom(GRND_NONBLOCK) is not ready                  FAIL
live-media              root is not a live-boot/read-only filesystem, or       WARN
                        live-boot persistence is on (a PASS says when the root
                        was copied to RAM: the boot medium can be removed)
environment             TEXTUAL_LOG, TEXTUAL_SCREENSHOT*, TEXTUAL=devtools,    FAIL
                        TEXTUAL_DEBUG, TEXTUAL_PRESS, TEXTUAL_DRIVER,
                        PYTHONINSPECT, PYTHONTRACEMALLOC, PYTHONDEVMODE,
                        PYTHONASYNCIODEBUG, LD_PRELOAD, LD_AUDIT
                        DISPLAY, WAYLAND_DISPLAY, SSH_*, PYTHONPATH,           WARN
                        PYTHONHOME, PYTHONSTARTUP, LD_LIBRARY_PATH,
                        KCM_SECMEM_BACKEND=mlock
decoder-sandbox         libseccomp's Python bindings (python3-seccomp) are     WARN
                        missing: QR images are then refused in a ceremony
privileges              on the ceremony ISO (live media): a ceremony process   FAIL
                        (this one, the keyholder, the image decoder, any
                        kcm-ceremony) has a uid 0 or CAP_SYS_PTRACE
                        the same anywhere else ("running as root")             WARN
terminal-size           smaller than 80x24                                     FAIL
                        size unknown (not a terminal)                          WARN
======================  =====================================================  =============

Modes: ``"ceremony"`` (the default, strict) is the table above. ``"demo"`` is for a
developer machine or a rehearsal: every FAIL is reported as WARN (the reason and the action
stay the same), so a demo is never blocked but nothing is hidden. The CLI's ``--demo``
selects it. Exit status: 1 if any check FAILs, else 0 (2 on bad arguments).

Testability: every check takes the filesystem root (default ``"/"``), so tests point it at a
faked ``proc``/``sys`` tree; process-local facts (rlimits, the getrandom and memfd_secret
probes, the environment, the terminal size) are keyword parameters with real defaults.
This module imports nothing from the UI and nothing outside the standard library.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import ipaddress
import json
import mmap
import os
import platform
import resource
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Final, Literal

__all__ = [
    "CHECK_NAMES",
    "MIN_MEMLOCK_BYTES",
    "CheckResult",
    "check_core_dumps",
    "check_decoder_sandbox",
    "check_default_route",
    "check_entropy",
    "check_environment",
    "check_kernel_cmdline",
    "check_live_media",
    "check_memory_locking",
    "check_network_interfaces",
    "check_privileges",
    "check_swap",
    "check_terminal_size",
    "exit_status",
    "format_json",
    "format_table",
    "main",
    "on_ceremony_iso",
    "probe_getrandom",
    "probe_memfd_secret",
    "probe_seccomp",
    "run_all",
]

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


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- probes


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


# --------------------------------------------------------------------------- checks


def check_network_interfaces(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Look for network interfaces other than loopback in ``/sys/class/net``.

    Args:
        root: Filesystem root holding ``sys`` (tests pass a faked tree).
        mode: ``"ceremony"`` or ``"demo"``.

    Returns:
        FAIL (WARN in demo) if one is up; WARN if one is present but down or a Bluetooth
        adapter exists; PASS if only loopback is there.
    """
    name = "network-interfaces"
    bad = _bad(mode)
    net_dir = _path(root, "sys/class/net")
    try:
        entries = sorted(os.listdir(net_dir))
    except OSError:
        return CheckResult(
            name,
            "WARN",
            "cannot list /sys/class/net (is sysfs mounted?)",
            "mount sysfs, or check with `ip link` by hand that only lo exists",
        )
    up: list[str] = []
    down: list[str] = []
    for iface in entries:
        iface_dir = os.path.join(net_dir, iface)
        if not os.path.isdir(iface_dir):  # e.g. bonding_masters
            continue
        rel = f"sys/class/net/{iface}"
        flags = _read_int(root, f"{rel}/flags", 16)
        operstate = (_read(root, f"{rel}/operstate") or "").strip() or "unknown"
        loopback = iface == "lo" if flags is None else bool(flags & _IFF_LOOPBACK)
        if loopback:
            continue
        is_up = operstate == "up" if flags is None else bool(flags & _IFF_UP)
        (up if is_up else down).append(f"{iface} ({operstate})" if is_up else iface)
    try:
        # Adapters are hciN; hciN:M entries are connections on them.
        bluetooth = sorted(
            dev
            for dev in os.listdir(_path(root, "sys/class/bluetooth"))
            if dev.startswith("hci") and ":" not in dev
        )
    except OSError:
        bluetooth = []
    present = down + [f"{hci} (bluetooth)" for hci in bluetooth]
    if up:
        also = f"; also present: {', '.join(present)}" if present else ""
        return CheckResult(
            name,
            bad,
            f"network interface up: {', '.join(up)}{also}",
            "unplug the cable and take it down (ip link set DEV down); the ceremony ISO ships no NIC drivers",
        )
    if present:
        return CheckResult(
            name,
            "WARN",
            f"no interface is up, but present: {', '.join(present)}",
            "remove the adapter or blacklist its driver (modprobe.blacklist=...); the ceremony ISO has only lo",
        )
    return CheckResult(name, "PASS", "only the loopback interface exists", _NOTHING_TO_DO)


def check_default_route(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Look for an IPv4 or IPv6 default route in ``/proc/net/route`` and ``/proc/net/ipv6_route``.

    Args:
        root: Filesystem root holding ``proc``.
        mode: ``"ceremony"`` or ``"demo"``.

    Returns:
        FAIL (WARN in demo) if a usable default route exists, WARN if neither table can be
        read, else PASS.
    """
    name = "default-route"
    bad = _bad(mode)
    v4 = _read(root, "proc/net/route")
    v6 = _read(root, "proc/net/ipv6_route")  # absent with ipv6.disable=1
    if v4 is None and v6 is None:
        return CheckResult(
            name,
            "WARN",
            "cannot read /proc/net/route or /proc/net/ipv6_route",
            "check with `ip route` and `ip -6 route` by hand that there is no default route",
        )
    routes: list[str] = []
    for line in (v4 or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest, gateway, flags_hex, mask = (
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            fields[7],
        )
        try:
            flags = int(flags_hex, 16)
            is_default = int(dest, 16) == 0 and int(mask, 16) == 0
            gw = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(gateway), "little"))
        except ValueError:
            continue
        if is_default and flags & _RTF_UP and not flags & _RTF_REJECT:
            routes.append(f"IPv4 via {gw} dev {iface}")
    for line in (v6 or "").splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            dest6, plen6, flags6 = int(fields[0], 16), int(fields[1], 16), int(fields[8], 16)
            gw6 = ipaddress.IPv6Address(int(fields[4], 16))
        except ValueError:
            continue
        if dest6 == 0 and plen6 == 0 and flags6 & _RTF_UP and not flags6 & _RTF_REJECT:
            routes.append(f"IPv6 via {gw6} dev {fields[9]}")
    if routes:
        return CheckResult(
            name,
            bad,
            f"default route present: {'; '.join(routes)}",
            "take the interface down and flush the routes (ip route flush default; ip -6 route flush default)",
        )
    return CheckResult(name, "PASS", "no default route", _NOTHING_TO_DO)


def check_swap(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Look for active swap in ``/proc/swaps``.

    Args:
        root: Filesystem root holding ``proc``.
        mode: ``"ceremony"`` or ``"demo"``.

    Returns:
        FAIL (WARN in demo) for swap on a disk or file, WARN for RAM-backed zram only,
        PASS for none.
    """
    name = "swap"
    bad = _bad(mode)
    text = _read(root, "proc/swaps")
    if text is None:
        if os.path.isdir(_path(root, "proc/self")):
            return CheckResult(
                name, "PASS", "no /proc/swaps: the kernel has no swap support", _NOTHING_TO_DO
            )
        return CheckResult(
            name,
            "WARN",
            "cannot read /proc (is procfs mounted?)",
            "check with `swapon --show` by hand",
        )
    devices = [line.split()[0] for line in text.splitlines()[1:] if line.split()]
    disk = [dev for dev in devices if not os.path.basename(dev).startswith("zram")]
    if disk:
        return CheckResult(
            name,
            bad,
            f"swap is active on {', '.join(disk)}: unlocked memory can be written to disk",
            "run `swapoff -a` and remove swap from fstab; the ceremony ISO boots without swap",
        )
    if devices:
        return CheckResult(
            name,
            "WARN",
            f"compressed RAM swap (zram) is active on {', '.join(devices)}; nothing reaches disk",
            "run `swapoff -a` to keep process memory uncompressed and in place",
        )
    return CheckResult(name, "PASS", "no swap is active", _NOTHING_TO_DO)


def check_core_dumps(
    root: str = "/",
    *,
    mode: str = "ceremony",
    core_limit: tuple[int, int] | None = None,
) -> CheckResult:
    """Decide whether a crash of this process (or of the keyholder) could dump its memory.

    Looks at this process's RLIMIT_CORE, ``/proc/sys/kernel/core_pattern`` and
    ``/proc/sys/fs/suid_dumpable``. The kernel does not apply RLIMIT_CORE to a piped
    core_pattern, and a non-zero suid_dumpable dumps even processes that set
    PR_SET_DUMPABLE 0 (as the keyholder does).

    Args:
        root: Filesystem root holding ``proc``.
        mode: ``"ceremony"`` or ``"demo"``.
        core_limit: (soft, hard) RLIMIT_CORE; default: this process's.

    Returns:
        FAIL (WARN in demo) if dumps can be written, WARN if a helper receives them or the
        settings cannot be read, else PASS.
    """
    name = "core-dumps"
    bad = _bad(mode)
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE) if core_limit is None else core_limit
    pattern_text = _read(root, "proc/sys/kernel/core_pattern")
    pattern = None if pattern_text is None else pattern_text.strip()
    suid = _read_int(root, "proc/sys/fs/suid_dumpable")
    fails: list[str] = []
    warns: list[str] = []
    actions: list[str] = []
    if suid is None:
        warns.append("cannot read fs.suid_dumpable")
        actions.append("check `sysctl fs.suid_dumpable` is 0")
    elif suid != 0:
        fails.append(f"fs.suid_dumpable={suid} dumps even processes that turned dumping off")
        actions.append("sysctl -w fs.suid_dumpable=0")
    limit = _limit_text(soft)
    if pattern is None:
        warns.append("cannot read kernel.core_pattern")
        actions.append("check `sysctl kernel.core_pattern`")
    elif pattern.startswith("|"):
        helper = (pattern[1:].split() or [""])[0]
        if os.path.basename(helper) in ("false", "true"):
            pass  # the helper discards the dump: the usual way to switch dumps off
        elif soft != 0:
            fails.append(f"RLIMIT_CORE is {limit} and core_pattern pipes dumps to {helper}")
            actions.append(
                "ulimit -c 0 before starting, or sysctl -w kernel.core_pattern='|/bin/false'"
            )
        else:
            warns.append(
                f"core_pattern pipes dumps to {helper}, which the kernel does not limit by RLIMIT_CORE"
            )
            actions.append(
                "sysctl -w kernel.core_pattern='|/bin/false' (or uninstall the crash collector)"
            )
    elif soft != 0:
        fails.append(f"RLIMIT_CORE is {limit}: a crash writes a core file ({pattern or 'core'})")
        actions.append("ulimit -c 0 before starting (the ceremony ISO sets it)")
    if fails or warns:
        return CheckResult(
            name, bad if fails else "WARN", "; ".join(fails + warns), "; ".join(actions)
        )
    pattern_note = f"core_pattern {pattern}" if pattern else "empty core_pattern"
    return CheckResult(
        name,
        "PASS",
        f"RLIMIT_CORE is {limit} (hard {_limit_text(hard)}), {pattern_note}, fs.suid_dumpable=0",
        _NOTHING_TO_DO,
    )


def _cap_eff(root: str) -> int | None:
    text = _read(root, "proc/self/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return None
    return None


def check_memory_locking(
    root: str = "/",
    *,
    mode: str = "ceremony",
    memlock_limit: tuple[int, int] | None = None,
    memfd_secret_probe: Probe | None = None,
) -> CheckResult:
    """Decide whether the keyholder can keep secrets in locked, undumpable memory.

    Args:
        root: Filesystem root holding ``proc`` (``proc/self/status`` gives CapEff).
        mode: ``"ceremony"`` or ``"demo"``.
        memlock_limit: (soft, hard) RLIMIT_MEMLOCK; default: this process's.
        memfd_secret_probe: Returns (works, detail); default: :func:`probe_memfd_secret`.

    Returns:
        FAIL (WARN in demo) if memory cannot be locked (RLIMIT_MEMLOCK below
        :data:`MIN_MEMLOCK_BYTES` and no CAP_IPC_LOCK); WARN if only the mlock fallback is
        available (root could read it via /proc/PID/mem); PASS if memfd_secret works.
    """
    name = "memory-locking"
    bad = _bad(mode)
    soft, _hard = (
        resource.getrlimit(resource.RLIMIT_MEMLOCK) if memlock_limit is None else memlock_limit
    )
    caps = _cap_eff(root)
    ipc_lock = caps is not None and bool(caps >> _CAP_IPC_LOCK & 1)
    unlimited = soft == resource.RLIM_INFINITY or soft < 0
    limit = _limit_text(soft)
    if not (ipc_lock or unlimited or soft >= MIN_MEMLOCK_BYTES):
        cap_note = "CAP_IPC_LOCK unknown" if caps is None else "no CAP_IPC_LOCK"
        return CheckResult(
            name,
            bad,
            f"RLIMIT_MEMLOCK is {limit} and {cap_note}: secrets cannot be locked in RAM "
            f"(needs {_limit_text(MIN_MEMLOCK_BYTES)})",
            "run as root or raise the memlock limit (ulimit -l, limits.conf); the ceremony ISO runs as root",
        )
    works, detail = (memfd_secret_probe or probe_memfd_secret)()
    lock_note = f"RLIMIT_MEMLOCK {limit}" + (", CAP_IPC_LOCK" if ipc_lock else "")
    if not works:
        return CheckResult(
            name,
            "WARN",
            f"{_one_line(detail)}; secrets fall back to mlock, which root can read via /proc/PID/mem ({lock_note})",
            "boot a kernel with CONFIG_SECRETMEM (and secretmem.enable=1 on kernels before 6.5)",
        )
    return CheckResult(name, "PASS", f"{_one_line(detail)}; {lock_note}", _NOTHING_TO_DO)


def _lockdown_state(root: str, params: Mapping[str, str | None]) -> str | None:
    text = _read(root, "sys/kernel/security/lockdown")  # "none integrity [confidentiality]"
    if text is not None:
        for word in text.split():
            if word.startswith("[") and word.endswith("]"):
                return word[1:-1]
    return params.get("lockdown")


def check_kernel_cmdline(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Look for the hardening flags of the ceremony ISO in ``/proc/cmdline``.

    Expected: ``init_on_free=1`` (freed pages are zeroed: the design relies on it),
    ``lockdown=confidentiality`` (or that state in /sys/kernel/security/lockdown),
    ``init_on_alloc=1 slab_nomerge page_alloc.shuffle=1 randomize_kstack_offset=on
    vsyscall=none``.

    Args:
        root: Filesystem root holding ``proc`` and ``sys``.
        mode: ``"ceremony"`` or ``"demo"``; a missing flag is WARN in both.

    Returns:
        WARN naming the missing flags, or PASS.
    """
    name = "kernel-cmdline"
    _validate_mode(mode)
    text = _read(root, "proc/cmdline")
    if text is None:
        return CheckResult(
            name, "WARN", "cannot read /proc/cmdline", "check the boot command line by hand"
        )
    params = _cmdline_params(text)
    missing: list[str] = []
    if not _kernel_bool(params.get("init_on_free")):
        missing.append("init_on_free=1")
    lockdown = _lockdown_state(root, params)
    if lockdown != "confidentiality":
        missing.append("lockdown=confidentiality" + (f" (is {lockdown})" if lockdown else ""))
    if not _kernel_bool(params.get("init_on_alloc")):
        missing.append("init_on_alloc=1")
    if "slab_nomerge" not in params and "slub_nomerge" not in params:
        missing.append("slab_nomerge")
    if not _kernel_bool(params.get("page_alloc.shuffle")):
        missing.append("page_alloc.shuffle=1")
    if not _kernel_bool(params.get("randomize_kstack_offset")):
        missing.append("randomize_kstack_offset=on")
    if params.get("vsyscall") != "none":
        missing.append("vsyscall=none")
    if missing:
        return CheckResult(
            name,
            "WARN",
            f"kernel hardening missing: {', '.join(missing)}",
            "boot the ceremony ISO (it sets them), or add them to the boot command line",
        )
    return CheckResult(
        name, "PASS", "all hardening flags are on the kernel command line", _NOTHING_TO_DO
    )


def check_entropy(
    root: str = "/",
    *,
    mode: str = "ceremony",
    getrandom_probe: Probe | None = None,
) -> CheckResult:
    """Decide whether the kernel's random generator is ready for key generation.

    Args:
        root: Filesystem root holding ``proc`` (entropy_avail, informational only).
        mode: ``"ceremony"`` or ``"demo"``.
        getrandom_probe: Returns (ready, detail); default: :func:`probe_getrandom`.

    Returns:
        FAIL (WARN in demo) if getrandom with GRND_NONBLOCK does not answer, else PASS.
    """
    name = "entropy"
    bad = _bad(mode)
    avail = _read_int(root, "proc/sys/kernel/random/entropy_avail")
    info = f"entropy_avail {avail if avail is not None else 'unknown'} (informational)"
    ready, detail = (getrandom_probe or probe_getrandom)()
    if not ready:
        return CheckResult(
            name,
            bad,
            f"{_one_line(detail)}; {info}",
            "wait until the kernel's pool is initialised (a hardware RNG or jitter entropy); generate no key before",
        )
    return CheckResult(name, "PASS", f"{_one_line(detail)}; {info}", _NOTHING_TO_DO)


def _unescape_mount(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


@dataclass(frozen=True)
class _RootMount:
    """The visible root file system, as /proc/mounts and the command line show it."""

    source: str
    fstype: str
    read_only: bool
    live: bool
    persistence: bool
    #: live-boot's toram: the root image was copied to a tmpfs mounted where the boot
    #: medium was, and the medium itself unmounted
    toram: bool = False


def _root_mount(root: str) -> _RootMount | str:
    """The root mount, or why it cannot be known.

    The root is live when ``/`` in ``/proc/mounts`` is squashfs/iso9660/erofs, or a
    live-boot overlay (``boot=live`` on the command line, or a squashfs lower layer).
    """
    mounts = _read(root, "proc/mounts")
    if mounts is None:
        return "cannot read /proc/mounts"
    table = [
        [_unescape_mount(f) for f in line.split()[:4]]
        for line in mounts.splitlines()
        if len(line.split()) >= 4
    ]
    roots = [entry for entry in table if entry[1] == "/"]
    if not roots:
        return "no root filesystem in /proc/mounts"
    source, _mnt, fstype, options = roots[-1]  # the last mount on / is the visible one
    params = _cmdline_params(_read(root, "proc/cmdline") or "")
    live_boot = params.get("boot") == "live"
    squash_lower = (
        "squashfs" in options
        or "/run/live/" in options
        or any(
            e[2] == "squashfs" and (e[1].startswith("/run/live/") or e[1].startswith("/lib/live/"))
            for e in table
        )
    )
    is_live = fstype in ("squashfs", "iso9660", "erofs") or (
        fstype == "overlay" and (live_boot or squash_lower)
    )
    return _RootMount(
        source=source,
        fstype=fstype,
        read_only="ro" in options.split(","),
        live=is_live,
        persistence="persistence" in params or "persistent" in params,
        toram=any(e[1] == "/run/live/medium" for e in table)
        and [e for e in table if e[1] == "/run/live/medium"][-1][2] == "tmpfs",
    )


def check_live_media(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Decide whether the root filesystem is read-only live media (the ceremony ISO).

    The root is live when ``/`` in ``/proc/mounts`` is squashfs/iso9660/erofs, or a
    live-boot overlay (``boot=live`` on the command line, or a squashfs lower layer), or is
    mounted ``ro``. live-boot ``persistence`` writes changes to a disk and is reported.

    Args:
        root: Filesystem root holding ``proc``.
        mode: ``"ceremony"`` or ``"demo"``; this check WARNs at worst in both.

    Returns:
        PASS on live or read-only media, else WARN.
    """
    name = "live-media"
    _validate_mode(mode)
    rm = _root_mount(root)
    if isinstance(rm, str):
        return CheckResult(name, "WARN", rm, "check with `findmnt /` by hand")
    if rm.live and rm.persistence:
        return CheckResult(
            name,
            "WARN",
            f"live media ({rm.fstype}) with live-boot persistence: changes are written to a disk",
            "boot the ceremony ISO without the persistence option",
        )
    if rm.live:
        if rm.toram:  # the custodians can see the boot medium may go
            return CheckResult(
                name,
                "PASS",
                f"root is live media ({rm.fstype}), copied to RAM: the boot medium can be removed now",
                "take the boot stick out (it is no longer used)",
            )
        return CheckResult(
            name, "PASS", f"root is live media ({rm.fstype}); changes stay in RAM", _NOTHING_TO_DO
        )
    if rm.read_only:
        return CheckResult(
            name,
            "PASS",
            f"root filesystem is read-only ({rm.fstype} on {rm.source})",
            _NOTHING_TO_DO,
        )
    return CheckResult(
        name,
        "WARN",
        f"root filesystem is writable {rm.fstype} on {rm.source}: this is not the ceremony live ISO",
        "for a real ceremony boot the OpenKCM ceremony ISO; files written here survive power-off",
    )


def on_ceremony_iso(root: str = "/") -> bool:
    """True when this machine runs from live media, as the ceremony ISO does (the
    ``live-media`` check's test); the checks that are stricter on the ISO use it."""
    rm = _root_mount(root)
    return not isinstance(rm, str) and rm.live


def probe_seccomp() -> tuple[bool, str]:
    """Can the image decoder install its seccomp filter here? (Whether libseccomp's Python
    bindings are importable in this interpreter, the one the decoder runs under; found, not
    loaded.)

    Returns:
        ``(True, detail)`` if found, else ``(False, why)``.
    """
    import importlib.util

    spec = importlib.util.find_spec("seccomp")
    if spec is None or not spec.origin:
        return False, "libseccomp's Python bindings (module seccomp) are not installed"
    return True, f"seccomp bindings found ({os.path.basename(spec.origin)})"


def check_decoder_sandbox(
    root: str = "/", *, mode: str = "ceremony", seccomp_probe: Probe | None = None
) -> CheckResult:
    """Can QR images be decoded in a ceremony? The decoder runs under a seccomp filter and
    refuses to run without one, except in demo mode.

    Args:
        root: Unused (the probe is about this interpreter); kept for a uniform signature.
        mode: ``"ceremony"`` or ``"demo"``; this check WARNs at worst in both (typed words,
            cards and the handheld scanner do not need it).
        seccomp_probe: Returns (found, detail); default: :func:`probe_seccomp`.

    Returns:
        PASS if the bindings are there, else WARN.
    """
    del root
    _validate_mode(mode)
    name = "decoder-sandbox"
    found, detail = (seccomp_probe or probe_seccomp)()
    if found:
        return CheckResult(
            name, "PASS", f"QR images are decoded under seccomp: {detail}", _NOTHING_TO_DO
        )
    return CheckResult(
        name,
        "WARN",
        f"{_one_line(detail)}: QR images and the camera are refused in a ceremony (a demo "
        "decodes them without the filter); typed words, cards and the handheld scanner work",
        "install Debian's python3-seccomp (make test does, as root) or use the ceremony ISO",
    )


#: Command-line arguments that make a process a ceremony process, and what it is.
_CEREMONY_ARGS: Final = {
    "core.keyholder": "keyholder",
    "core.carriers.decodehelper": "image decoder",
    "kcm_tui.cli": "kcm-ceremony",  # the UI, started by kcm-ceremony in isolated mode
}
_CAP_SYS_PTRACE: Final = 19


def _proc_status(root: str, pid: str) -> tuple[list[int], int] | None:
    """(uids: real, effective, saved, fs; CapEff) of a process, or None if unreadable."""
    text = _read(root, f"proc/{pid}/status")
    if text is None:
        return None
    uids: list[int] = []
    caps = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        try:
            if key == "Uid":
                uids = [int(v) for v in value.split()]
            elif key == "CapEff":
                caps = int(value.strip(), 16)
        except ValueError:
            return None
    return (uids, caps) if uids else None


def _ceremony_processes(root: str) -> list[tuple[str, str]]:
    """(pid, role) of every ceremony process: this one, and by command line the keyholder,
    the image decoder and any other ``kcm-ceremony``."""
    found: list[tuple[str, str]] = [("self", "this process")]
    try:
        me = os.readlink(_path(root, "proc/self"))
    except OSError:
        me = ""
    try:
        entries = os.listdir(_path(root, "proc"))
    except OSError:
        return found
    for pid in sorted((e for e in entries if e.isdigit()), key=int):
        if pid == me:
            continue
        try:
            with open(_path(root, f"proc/{pid}/cmdline"), "rb") as fh:
                args = fh.read(4096).split(b"\0")
        except OSError:
            continue
        role = _ceremony_role([a.decode("utf-8", "replace") for a in args if a])
        if role is not None:
            found.append((pid, role))
    return found


def _ceremony_role(argv: list[str]) -> str | None:
    """What a command line runs: ``kcm-ceremony`` (the script, or Python running it), or
    Python ``-m`` the keyholder or the image decoder; None for anything else (``grep
    kcm-ceremony`` included)."""
    if not argv:
        return None
    exe = os.path.basename(argv[0])
    if exe == "kcm-ceremony":
        return "kcm-ceremony"
    if not exe.startswith("python"):
        return None
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] != "-m":
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "-m":
        return _CEREMONY_ARGS.get(rest[1])
    if rest and os.path.basename(rest[0]) == "kcm-ceremony":
        return "kcm-ceremony"
    return None


def check_privileges(root: str = "/", *, mode: str = "ceremony") -> CheckResult:
    """Does a ceremony process run as root (or hold CAP_SYS_PTRACE)?

    Root can attach to any process, so a compromised UI running as root can read the
    keyholder's memory however non-dumpable it is. The ceremony processes are this one
    (the UI, or the CLI) and, found by command line in ``/proc``, the keyholder, the image
    decoder and any other ``kcm-ceremony``; one is privileged when any of its user ids
    (real, effective, saved, file system) is 0 or it holds CAP_SYS_PTRACE.

    Args:
        root: Filesystem root holding ``proc``.
        mode: ``"ceremony"`` or ``"demo"``.

    Returns:
        On the ceremony ISO (:func:`on_ceremony_iso`): FAIL (WARN in demo) if one is
        privileged. Elsewhere (a development machine, ``make run``): WARN "running as
        root". PASS if none is.
    """
    name = "privileges"
    bad = _bad(mode)
    privileged: list[str] = []
    users: set[int] = set()
    for pid, role in _ceremony_processes(root):
        st = _proc_status(root, pid)
        if st is None:
            if pid == "self":
                return CheckResult(
                    name,
                    "WARN",
                    "cannot read /proc/self/status",
                    "check with `ps -o user,pid,cmd -C kcm-ceremony` that nothing runs as root",
                )
            continue
        uids, caps = st
        who = role if pid == "self" else f"{role} (pid {pid})"
        if 0 in uids:
            privileged.append(f"{who} as root")
        elif caps >> _CAP_SYS_PTRACE & 1:
            privileged.append(f"{who} with CAP_SYS_PTRACE")
        else:
            users.add(uids[1] if len(uids) > 1 else uids[0])
    if not privileged:
        ids = ", ".join(str(u) for u in sorted(users))
        return CheckResult(
            name, "PASS", f"no ceremony process runs as root (uid {ids})", _NOTHING_TO_DO
        )
    found = "; ".join(privileged)
    if on_ceremony_iso(root):
        return CheckResult(
            name,
            bad,
            f"on the ceremony ISO, ceremony processes are privileged: {found}",
            "boot an ISO built with the unprivileged kcm and kcm-keyholder users; "
            "never start kcm-ceremony as root",
        )
    return CheckResult(
        name,
        "WARN",
        f"running as root: {found}; a flaw in the UI could read the keyholder's memory",
        "fine for a demo; a real ceremony runs on the ceremony ISO, where the UI and the "
        "keyholder are separate unprivileged users",
    )


# Variables that make secrets or screens leave the process, or run foreign code: FAIL.
_LEAKY_VARS: Final = {
    "TEXTUAL_LOG": "writes Textual's log to a file",
    "TEXTUAL_SCREENSHOT": "saves screenshots",
    "TEXTUAL_SCREENSHOT_LOCATION": "saves screenshots",
    "TEXTUAL_SCREENSHOT_FILENAME": "saves screenshots",
    "TEXTUAL_DEBUG": "Textual debug mode",
    "TEXTUAL_PRESS": "types keys into the app",
    "TEXTUAL_DRIVER": "loads another Textual driver",
    "PYTHONINSPECT": "opens an interpreter with the program's state on exit",
    "PYTHONTRACEMALLOC": "keeps allocation traces",
    "PYTHONDEVMODE": "Python development mode",
    "PYTHONASYNCIODEBUG": "asyncio debug logging",
    "LD_PRELOAD": "injects a shared library",
    "LD_AUDIT": "injects a shared library",
}
# Variables that widen who can see or drive the session: WARN.
_RISKY_VARS: Final = {
    "DISPLAY": "an X session: other clients can capture the screen",
    "WAYLAND_DISPLAY": "a graphical session",
    "SSH_CONNECTION": "a remote session",
    "SSH_CLIENT": "a remote session",
    "SSH_TTY": "a remote session",
    "PYTHONPATH": "code from outside the install",
    "PYTHONHOME": "another Python installation",
    "PYTHONSTARTUP": "a startup script",
    "LD_LIBRARY_PATH": "libraries from elsewhere",
}


def check_environment(
    root: str = "/",
    *,
    mode: str = "ceremony",
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    """Look for environment variables that leak screens or state, or widen the session.

    ``PYTHONFAULTHANDLER`` is fine (it prints tracebacks without local variables). The
    variables' values are never echoed.

    Args:
        root: Unused (the environment is process-local); kept for a uniform signature.
        mode: ``"ceremony"`` or ``"demo"``.
        env: The environment to inspect; default: ``os.environ``.

    Returns:
        FAIL (WARN in demo) for a leaking variable (see the module table), WARN for a
        graphical/remote session or a foreign code path, else PASS.
    """
    del root
    name = "environment"
    bad = _bad(mode)
    environ: Mapping[str, str] = os.environ if env is None else env
    leaky = [var for var in _LEAKY_VARS if environ.get(var)]
    features = {f.strip().lower() for f in environ.get("TEXTUAL", "").split(",")}
    if features & {"devtools", "debug"}:
        leaky.append("TEXTUAL=" + ",".join(sorted(features & {"devtools", "debug"})))
    risky = [var for var in _RISKY_VARS if environ.get(var)]
    if environ.get("KCM_SECMEM_BACKEND") == "mlock":
        risky.append("KCM_SECMEM_BACKEND=mlock")
    if leaky:
        also = f"; also {', '.join(risky)}" if risky else ""
        return CheckResult(
            name,
            bad,
            f"leaking variables set: {', '.join(leaky)}{also}",
            f"unset {' '.join(v.split('=')[0] for v in leaky + risky)} (start from a clean login on the console)",
        )
    if risky:
        why = sorted({_RISKY_VARS.get(v, "forces the weaker mlock backend") for v in risky})
        return CheckResult(
            name,
            "WARN",
            f"set: {', '.join(risky)} ({'; '.join(why)})",
            "run on the text console of the ceremony machine, not under X/Wayland or over SSH",
        )
    return CheckResult(name, "PASS", "no leaking or risky variables set", _NOTHING_TO_DO)


def check_terminal_size(
    root: str = "/",
    *,
    mode: str = "ceremony",
    term_size: tuple[int, int] | None = None,
) -> CheckResult:
    """Check the terminal is at least 80x24 (every screen is designed for that size).

    Args:
        root: Unused; kept for a uniform signature.
        mode: ``"ceremony"`` or ``"demo"``.
        term_size: (columns, lines); default: the size of stdout/stderr/stdin's terminal.

    Returns:
        FAIL (WARN in demo) if smaller, WARN if there is no terminal, else PASS.
    """
    del root
    name = "terminal-size"
    bad = _bad(mode)
    size = _terminal_size() if term_size is None else term_size
    if size is not None and size[0] == 0 and size[1] == 0:
        size = None  # a serial line or pseudo-terminal that never had a size set
    if size is None:
        return CheckResult(
            name,
            "WARN",
            "size unknown: not running in a terminal",
            f"start the ceremony in a terminal of at least {MIN_COLUMNS}x{MIN_LINES}",
        )
    columns, lines = size
    if columns < MIN_COLUMNS or lines < MIN_LINES:
        return CheckResult(
            name,
            bad,
            f"terminal is {columns}x{lines}, the screens need at least {MIN_COLUMNS}x{MIN_LINES}",
            "enlarge the window, or use the Linux console with a smaller font (setfont)",
        )
    return CheckResult(name, "PASS", f"terminal is {columns}x{lines}", _NOTHING_TO_DO)


# --------------------------------------------------------------------------- running


def run_all(
    root: str = "/",
    *,
    mode: str = "ceremony",
    env: Mapping[str, str] | None = None,
    term_size: tuple[int, int] | None = None,
    core_limit: tuple[int, int] | None = None,
    memlock_limit: tuple[int, int] | None = None,
    memfd_secret_probe: Probe | None = None,
    getrandom_probe: Probe | None = None,
    seccomp_probe: Probe | None = None,
) -> list[CheckResult]:
    """Run every check, in the order of :data:`CHECK_NAMES`.

    A check that raises (it should not) becomes a FAIL (WARN in demo) naming the error, so
    the preflight always returns one result per check.

    Args:
        root: Filesystem root holding ``proc`` and ``sys``.
        mode: ``"ceremony"`` (strict) or ``"demo"`` (no FAIL, see the module docstring).
        env: Environment to inspect; default: ``os.environ``.
        term_size: (columns, lines); default: the real terminal's.
        core_limit: (soft, hard) RLIMIT_CORE; default: this process's.
        memlock_limit: (soft, hard) RLIMIT_MEMLOCK; default: this process's.
        memfd_secret_probe: Default: :func:`probe_memfd_secret`.
        getrandom_probe: Default: :func:`probe_getrandom`.
        seccomp_probe: Default: :func:`probe_seccomp`.

    Returns:
        One :class:`CheckResult` per check.

    Raises:
        ValueError: ``mode`` is not ``"ceremony"`` or ``"demo"``.
    """
    _validate_mode(mode)
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("network-interfaces", lambda: check_network_interfaces(root, mode=mode)),
        ("default-route", lambda: check_default_route(root, mode=mode)),
        ("swap", lambda: check_swap(root, mode=mode)),
        ("core-dumps", lambda: check_core_dumps(root, mode=mode, core_limit=core_limit)),
        (
            "memory-locking",
            lambda: check_memory_locking(
                root, mode=mode, memlock_limit=memlock_limit, memfd_secret_probe=memfd_secret_probe
            ),
        ),
        ("kernel-cmdline", lambda: check_kernel_cmdline(root, mode=mode)),
        ("entropy", lambda: check_entropy(root, mode=mode, getrandom_probe=getrandom_probe)),
        ("live-media", lambda: check_live_media(root, mode=mode)),
        ("environment", lambda: check_environment(root, mode=mode, env=env)),
        (
            "decoder-sandbox",
            lambda: check_decoder_sandbox(root, mode=mode, seccomp_probe=seccomp_probe),
        ),
        ("privileges", lambda: check_privileges(root, mode=mode)),
        ("terminal-size", lambda: check_terminal_size(root, mode=mode, term_size=term_size)),
    ]
    results: list[CheckResult] = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as exc:  # a preflight must report, not crash
            results.append(
                CheckResult(
                    name,
                    _bad(mode),
                    _one_line(f"the check itself failed: {type(exc).__name__}: {exc}"),
                    "report this bug and verify this item by hand",
                )
            )
    return results


def exit_status(results: Sequence[CheckResult]) -> int:
    """Exit status for a set of results.

    Args:
        results: Output of :func:`run_all`.

    Returns:
        1 if any result is FAIL, else 0.
    """
    return 1 if any(r.status == "FAIL" for r in results) else 0


def format_json(results: Sequence[CheckResult]) -> str:
    """Render results as a JSON list of ``{name, status, reason, action}`` objects.

    Args:
        results: Output of :func:`run_all`.

    Returns:
        The JSON text.
    """
    return json.dumps([asdict(r) for r in results], indent=2)


def format_table(results: Sequence[CheckResult], mode: str = "ceremony", width: int = 80) -> str:
    """Render results as a plain-text table that fits ``width`` columns.

    Args:
        results: Output of :func:`run_all`.
        mode: Shown in the heading.
        width: Target line width.

    Returns:
        The table, ending with a summary line.
    """
    name_w = max([len("CHECK"), *(len(r.name) for r in results)])
    indent = " " * (7 + name_w + 2)
    text_w = max(20, width - len(indent))
    lines = [
        f"Workstation preflight (mode: {mode})",
        "",
        f"{'STATUS':<7}{'CHECK':<{name_w}}  FINDING / WHAT TO DO",
    ]
    for r in results:
        reason = textwrap.wrap(r.reason, text_w) or [""]
        lines.append(f"{r.status:<7}{r.name:<{name_w}}  {reason[0]}")
        lines.extend(indent + more for more in reason[1:])
        if r.status != "PASS":
            lines.extend(
                indent + part
                for part in textwrap.wrap("-> " + r.action, text_w, subsequent_indent="   ")
            )
    counts = {s: sum(1 for r in results if r.status == s) for s in ("FAIL", "WARN", "PASS")}
    verdict = "NOT READY for a ceremony" if counts["FAIL"] else "ready (read every WARN)"
    if not counts["FAIL"] and not counts["WARN"]:
        verdict = "ready"
    if mode == "demo":
        verdict = "demo mode, blocking findings are shown as WARN: not a ceremony verdict"
    lines += ["", f"{counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['PASS']} PASS: {verdict}"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Command line: ``kcm-ceremony preflight [--json] [--demo] [--root DIR]``.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        1 if any check FAILs, 0 otherwise, 2 on bad arguments.
    """
    parser = argparse.ArgumentParser(
        prog="kcm-ceremony preflight",
        description="Check this workstation before a key ceremony.",
        epilog="Exit status: 1 if any check FAILs, else 0. --demo reports every FAIL as WARN.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--demo", action="store_true", help="demo/developer machine: report FAIL findings as WARN"
    )
    parser.add_argument("--root", default="/", help="filesystem root to inspect (for testing)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h or a usage error: keep main's int contract
        return exc.code if isinstance(exc.code, int) else 2
    mode = "demo" if args.demo else "ceremony"
    results = run_all(args.root, mode=mode)
    print(format_json(results) if args.json else format_table(results, mode))
    return exit_status(results)
