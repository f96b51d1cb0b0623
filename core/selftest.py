"""Non-interactive self test: ``kcm-ceremony selftest [--expect-hardened]``.

It prints the facts that show whether this machine is the hardened ceremony workstation
(network interfaces, swap, core dump settings, kernel command line, root file system) as
marker lines that the ISO boot test reads from the serial console::

    KCM-SELFTEST-BEGIN
    KCM-FACT interfaces=["lo"]
    ...
    KCM-CHECK only-loopback ok
    KCM-SELFTEST-END rc=0

Each ``KCM-FACT`` value is JSON, so a reader needs no knowledge of the fact to parse it.
With ``--expect-hardened`` (what the ISO's self-test boot entry runs) a failed check makes
the exit status non-zero; without it the checks are reported but only a crash of the self
test itself fails, so it can be run on a development machine. ``--audit`` adds the
forbidden-item audit of the running system (core.offline_audit against
/usr/local/share/kcm/forbidden.toml: network packages, programs, busybox applets, kernel
modules); ``--boot-check`` adds the image's boot check (core.bootcheck: console font,
frame glyphs, removable media, boot medium) and implies ``--audit``.

This module stays free of UI imports (the import contract forbids textual, rich and
kcm_tui in core); whether the UI is installed is checked with ``find_spec`` only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import KcmError

BEGIN = "KCM-SELFTEST-BEGIN"
END_PREFIX = "KCM-SELFTEST-END rc="
FACT_PREFIX = "KCM-FACT "
CHECK_PREFIX = "KCM-CHECK "

# The kernel command line flags the ISO boots with (docs/iso.md explains each).
HARDENING_FLAGS: tuple[str, ...] = (
    "init_on_alloc=1",
    "init_on_free=1",
    "slab_nomerge",
    "page_alloc.shuffle=1",
    "randomize_kstack_offset=on",
    "vsyscall=none",
    "lockdown=confidentiality",
    "ipv6.disable=1",
    # memfd_secret(2) is off by default before Linux 6.5 (bookworm has 6.1): the keyholder's
    # locked arena needs it on.
    "secretmem.enable=1",
)

# What core_pattern is set to on the ISO: a pipe to a program that exits at once, so the
# kernel writes no core file anywhere, whatever RLIMIT_CORE a process sets for itself.
CORE_PATTERN_OFF = "|/bin/false"

# The image's list of forbidden items (iso_build/forbidden.toml), for --audit.
FORBIDDEN_LIST = Path("/usr/local/share/kcm/forbidden.toml")


class SelftestError(KcmError):
    """The self-test output could not be read (missing markers, malformed fact)."""

    code = "boot-selftest"


@dataclass(frozen=True)
class Mount:
    """One line of /proc/mounts."""

    source: str
    target: str
    fstype: str
    options: tuple[str, ...]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts text (octal escapes such as ``\\040`` are decoded)."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        source, target, fstype, opts = (
            _unescape(parts[0]),
            _unescape(parts[1]),
            parts[2],
            parts[3],
        )
        mounts.append(Mount(source, target, fstype, tuple(opts.split(","))))
    return mounts


def _unescape(field: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_swaps(text: str) -> list[str]:
    """Return the active swap devices listed in /proc/swaps (the header line skipped)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [line.split()[0] for line in lines[1:]]


def root_description(mounts: Iterable[Mount]) -> dict[str, Any]:
    """Describe what ``/`` is: its type, and for an overlay the squashfs layers under it.

    On a Debian live system ``/`` is an overlay whose read-only lower layer is the
    squashfs image (mounted under /run/live/rootfs) and whose upper layer is a tmpfs.
    """
    mounts = list(mounts)
    root = [m for m in mounts if m.target == "/"]
    top = root[-1] if root else None
    squashfs = [
        {"target": m.target, "source": m.source, "ro": "ro" in m.options}
        for m in mounts
        if m.fstype == "squashfs"
    ]
    lowerdirs: list[str] = []
    if top is not None and top.fstype == "overlay":
        for opt in top.options:
            if opt.startswith("lowerdir="):
                lowerdirs = [d for d in opt[len("lowerdir=") :].split(":") if d]
    return {
        "fstype": top.fstype if top else None,
        "ro": ("ro" in top.options) if top else None,
        "lowerdirs": lowerdirs,
        "squashfs": squashfs,
    }


def root_is_readonly_squashfs(root: dict[str, Any]) -> bool:
    """True when / is a read-only squashfs, or an overlay whose lower layers are all one."""
    if root.get("fstype") == "squashfs":
        return bool(root.get("ro"))
    if root.get("fstype") != "overlay":
        return False
    squash = [s for s in root.get("squashfs", []) if isinstance(s, dict)]
    if not squash or not all(s.get("ro") for s in squash):
        return False
    targets = [str(s.get("target")) for s in squash]
    lowers = [str(d) for d in root.get("lowerdirs", [])]
    # Every lower layer must lie inside a read-only squashfs mount.
    return bool(lowers) and all(
        any(low == t or low.startswith(t.rstrip("/") + "/") for t in targets) for low in lowers
    )


def collect_facts(proc: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> dict[str, Any]:
    """Gather the facts the ISO boot test asserts, from /proc and /sys."""
    facts: dict[str, Any] = {}
    net = sys_root / "class" / "net"
    try:
        facts["interfaces"] = sorted(os.listdir(net))
    except OSError as exc:
        facts["interfaces"] = None
        facts["interfaces_error"] = str(exc)
    swaps = _read(proc / "swaps")
    facts["swaps"] = parse_swaps(swaps) if swaps is not None else None
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    facts["rlimit_core"] = [soft, hard]
    pattern = _read(proc / "sys" / "kernel" / "core_pattern")
    facts["core_pattern"] = pattern.strip() if pattern is not None else None
    dumpable = _read(proc / "sys" / "fs" / "suid_dumpable")
    facts["suid_dumpable"] = dumpable.strip() if dumpable is not None else None
    cmdline = _read(proc / "cmdline")
    facts["cmdline"] = cmdline.strip() if cmdline is not None else None
    mounts = _read(proc / "mounts")
    facts["root"] = root_description(parse_mounts(mounts)) if mounts is not None else None
    facts["ipv6"] = (proc / "net" / "if_inet6").exists()
    uptime = _read(proc / "uptime")
    facts["uptime_s"] = float(uptime.split()[0]) if uptime else None
    facts["python"] = platform.python_version()
    facts["executable"] = sys.executable
    facts["ui_importable"] = _ui_importable()
    return facts


def _ui_importable() -> bool | str:
    # find_spec imports the parent package (kcm_tui/__init__.py) but not the app module, so
    # core does not pull Textual in; a missing module is reported, not raised.
    try:
        return importlib.util.find_spec("kcm_tui.app") is not None
    except (ImportError, ValueError) as exc:
        return f"error: {exc}"


def checks(facts: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Evaluate the hardening expectations; each is (name, passed, detail)."""
    results: list[tuple[str, bool, str]] = []
    ifaces = facts.get("interfaces")
    results.append(("only-loopback", ifaces == ["lo"], f"interfaces={ifaces}"))
    swaps = facts.get("swaps")
    results.append(("no-swap", swaps == [], f"swaps={swaps}"))
    rlim = facts.get("rlimit_core")
    results.append(("rlimit-core-zero", rlim == [0, 0], f"rlimit_core={rlim}"))
    pattern = facts.get("core_pattern")
    results.append(("core-pattern-off", pattern == CORE_PATTERN_OFF, f"core_pattern={pattern!r}"))
    cmd = str(facts.get("cmdline") or "").split()
    missing = [flag for flag in HARDENING_FLAGS if flag not in cmd]
    results.append(("kernel-cmdline", not missing, f"missing={missing}"))
    root = facts.get("root")
    ok_root = isinstance(root, dict) and root_is_readonly_squashfs(root)
    results.append(("root-readonly-squashfs", ok_root, f"root={json.dumps(root, sort_keys=True)}"))
    results.append(("ipv6-off", facts.get("ipv6") is False, f"ipv6={facts.get('ipv6')}"))
    ui = facts.get("ui_importable")
    results.append(("ui-installed", ui is True, f"kcm_tui.app={ui}"))
    return results


def format_report(facts: dict[str, Any], results: list[tuple[str, bool, str]], rc: int) -> str:
    """Render facts and checks between the BEGIN and END marker lines."""
    lines = [BEGIN]
    for key in sorted(facts):
        lines.append(f"{FACT_PREFIX}{key}={json.dumps(facts[key], sort_keys=True)}")
    for name, passed, detail in results:
        lines.append(f"{CHECK_PREFIX}{name} {'ok' if passed else 'FAIL'} {detail}")
    lines.append(f"{END_PREFIX}{rc}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Report:
    """A parsed self-test report."""

    facts: dict[str, Any]
    checks: dict[str, bool]
    rc: int


def parse_report(text: str) -> Report:
    """Find the last complete report in ``text`` (e.g. a serial log) and parse it.

    Lines may carry noise before the marker (a serial console interleaves kernel
    messages), so each marker is searched anywhere in its line.

    Raises:
        SelftestError: no complete BEGIN..END block, or a fact that is not valid JSON.
    """
    lines = [line.rstrip("\r") for line in text.splitlines()]
    begin = None
    end = None
    for i, line in enumerate(lines):
        if BEGIN in line:
            begin = i
        elif END_PREFIX in line and begin is not None:
            end = i
    if begin is None or end is None or end < begin:
        raise SelftestError("no complete KCM-SELFTEST-BEGIN .. KCM-SELFTEST-END block found")
    facts: dict[str, Any] = {}
    results: dict[str, bool] = {}
    for line in lines[begin + 1 : end]:
        if FACT_PREFIX in line:
            body = line[line.index(FACT_PREFIX) + len(FACT_PREFIX) :]
            key, sep, value = body.partition("=")
            if not sep:
                raise SelftestError(f"malformed fact line: {line!r}")
            try:
                facts[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise SelftestError(f"fact {key!r} is not valid JSON: {exc}") from exc
        elif CHECK_PREFIX in line:
            words = line[line.index(CHECK_PREFIX) + len(CHECK_PREFIX) :].split()
            if len(words) >= 2:
                results[words[0]] = words[1] == "ok"
    end_line = lines[end]
    tail = end_line[end_line.index(END_PREFIX) + len(END_PREFIX) :].split()
    try:
        rc = int(tail[0])
    except (IndexError, ValueError) as exc:
        raise SelftestError(f"malformed end line: {end_line!r}") from exc
    return Report(facts, results, rc)


def audit_facts(list_path: Path = FORBIDDEN_LIST, root: str = "/") -> dict[str, Any]:
    """The forbidden-item audit (core.offline_audit) of ``root`` against the image's list."""
    from core import offline_audit

    if not list_path.is_file():
        return {"forbidden_items": None, "forbidden_list": f"{list_path} missing"}
    found = offline_audit.audit(root, offline_audit.load_list(list_path))
    return {"forbidden_items": [f.as_dict() for f in found], "forbidden_list": str(list_path)}


class _Parser(argparse.ArgumentParser):
    def parse_args_or_status(self, argv: list[str]) -> argparse.Namespace | int:
        """The parsed options, or the exit status once ``--help`` or a usage error has
        been printed (0 for help, 2 for an error)."""
        try:
            return self.parse_args(argv)
        except SystemExit as exc:
            return 0 if exc.code in (0, None) else 2


def _parser() -> _Parser:
    p = _Parser(
        prog="kcm-ceremony selftest",
        description="Non-interactive self test: print the facts that show whether this machine "
        "is the hardened ceremony workstation (network interfaces, swap, core dumps, kernel "
        "command line, root file system) as KCM-FACT and KCM-CHECK lines. Without "
        "--expect-hardened only a crash of the self test fails it, so it can run on a "
        "development machine.",
    )
    p.add_argument("--expect-hardened", action="store_true",
                   help="exit 1 when a check fails (what the ISO's self-test boot entry runs)")
    p.add_argument("--audit", action="store_true",
                   help="add the forbidden-item audit of the running system (network packages, "
                   "programs, kernel modules)")
    p.add_argument("--boot-check", action="store_true",
                   help="add the image's boot check (console font, frame glyphs, removable media, "
                   "boot medium); implies --audit")
    return p


def main(argv: list[str], *, out: Callable[[str], Any] | None = None) -> int:
    """Run the self test and print the report; see the module docstring for the options."""
    write = out or sys.stdout.write
    args = _parser().parse_args_or_status(argv)
    if isinstance(args, int):
        return args
    expect = args.expect_hardened
    boot_check = args.boot_check
    audit = args.audit or boot_check
    try:
        facts = collect_facts()
    except Exception as exc:  # report, never crash: the boot test must see an END line
        write(f"{BEGIN}\n{FACT_PREFIX}error={json.dumps(repr(exc))}\n{END_PREFIX}1\n")
        return 1
    results = checks(facts)
    if audit:
        try:
            facts.update(audit_facts())
        except Exception as exc:
            facts["forbidden_items"] = None
            facts["forbidden_list"] = f"audit failed: {exc!r}"
        items = facts.get("forbidden_items")
        results.append((
            "no-forbidden-items", items == [],
            f"{len(items)} found" if isinstance(items, list) else str(facts.get("forbidden_list")),
        ))  # fmt: skip
    if boot_check:
        from core import bootcheck

        more_facts, more_checks = bootcheck.run()
        facts.update(more_facts)
        results.extend(more_checks)
    failed = [name for name, passed, _ in results if not passed]
    rc = 1 if (expect and failed) else 0
    write(format_report(facts, results, rc))
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()
    return rc
