"""Running every check in order, the exit status, and the JSON and table reports (``kcm-
ceremony preflight``)."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

from core.preflight.base import CheckResult, Probe, _bad, _one_line, _validate_mode
from core.preflight.host import (
    check_core_dumps,
    check_default_route,
    check_entropy,
    check_kernel_cmdline,
    check_memory_locking,
    check_network_interfaces,
    check_swap,
)
from core.preflight.session import (
    check_decoder_sandbox,
    check_environment,
    check_live_media,
    check_privileges,
    check_terminal_size,
)


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
