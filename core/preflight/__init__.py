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

from core.preflight.base import (  # noqa: F401
    _CAP_IPC_LOCK,
    _GRND_NONBLOCK,
    _IFF_LOOPBACK,
    _IFF_UP,
    _NOTHING_TO_DO,
    _RTF_REJECT,
    _RTF_UP,
    _SYS_GETRANDOM,
    _SYS_MEMFD_SECRET,
    CHECK_NAMES,
    MIN_COLUMNS,
    MIN_LINES,
    MIN_MEMLOCK_BYTES,
    MODES,
    CheckResult,
    Probe,
    Status,
    _bad,
    _cmdline_params,
    _errno_text,
    _kernel_bool,
    _libc,
    _limit_text,
    _one_line,
    _path,
    _read,
    _read_int,
    _terminal_size,
    _validate_mode,
    probe_getrandom,
    probe_memfd_secret,
)
from core.preflight.host import (  # noqa: F401
    _cap_eff,
    _lockdown_state,
    check_core_dumps,
    check_default_route,
    check_entropy,
    check_kernel_cmdline,
    check_memory_locking,
    check_network_interfaces,
    check_swap,
)
from core.preflight.run import (
    exit_status,
    format_json,
    format_table,
    main,
    run_all,
)
from core.preflight.session import (  # noqa: F401
    _CAP_SYS_PTRACE,
    _CEREMONY_ARGS,
    _LEAKY_VARS,
    _RISKY_VARS,
    _ceremony_processes,
    _ceremony_role,
    _proc_status,
    _root_mount,
    _RootMount,
    _unescape_mount,
    check_decoder_sandbox,
    check_environment,
    check_live_media,
    check_privileges,
    check_terminal_size,
    on_ceremony_iso,
    probe_seccomp,
)

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
