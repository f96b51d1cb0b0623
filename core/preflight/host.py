"""Checks of the machine: network interfaces, default route, swap, core dumps, memory
locking, kernel command line, entropy."""

from __future__ import annotations

import ipaddress
import os
import resource
from collections.abc import Mapping

from core.preflight.base import (
    _CAP_IPC_LOCK,
    _IFF_LOOPBACK,
    _IFF_UP,
    _NOTHING_TO_DO,
    _RTF_REJECT,
    _RTF_UP,
    MIN_MEMLOCK_BYTES,
    CheckResult,
    Probe,
    _bad,
    _cmdline_params,
    _kernel_bool,
    _limit_text,
    _one_line,
    _path,
    _read,
    _read_int,
    _validate_mode,
    probe_getrandom,
    probe_memfd_secret,
)


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
