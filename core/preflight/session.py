"""Checks of the running session: the live medium, the image decoder's sandbox, the ceremony
processes' privileges, the environment, the terminal size."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from core.preflight.base import (
    _NOTHING_TO_DO,
    MIN_COLUMNS,
    MIN_LINES,
    CheckResult,
    Probe,
    _bad,
    _cmdline_params,
    _one_line,
    _path,
    _read,
    _terminal_size,
    _validate_mode,
)


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
