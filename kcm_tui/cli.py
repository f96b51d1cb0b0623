"""Command-line entry point: ``kcm-ceremony [subcommand]`` (the composition root: it may import
both core and the UI, so it lives on the UI side of the import contract).

Without a subcommand the TUI starts. Each subcommand lives in its own module and is
imported lazily, so ``kcm-ceremony preflight`` does not pay for Textual or PKCS#11.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable

# subcommand -> (module, function, one-line help). The function takes argv (list[str])
# and returns the exit status.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "preflight": ("core.preflight", "main", "check this workstation before a ceremony"),
    "selftest": ("core.selftest", "main", "non-interactive self test (used by the ISO boot test)"),
    "script": ("core.ceremony.cli", "script_main", "script check FILE | script print FILE --pdf OUT: validate, or print as a checklist"),
    "cards": ("core.printing.cli", "cards_main", "cards --pdf OUT [--qr-grid] [--words 20|33] [--paper a4|letter]: blank share cards"),
    "set": ("core.ceremony.setcli", "set_main", "set list MEDIA | set retire MEDIA SET --why --who --witness: share sets, retire one"),
    "journal": ("core.journal", "cli_main", "journal verify|export PATH: check a ceremony journal"),
    "envelope": ("core.seal.envelope_cli", "cli_main", "envelope inspect FILE: show a sealed envelope's header"),
    "rotation": ("core.continuity", "cli_main", "rotation verify FILE --old-fingerprint KCV: check a rotation's continuity statement"),
    "demo": ("core.demo", "cli_main", "demo init DIR: create a demo workspace"),
}


def _usage() -> str:
    """The top-level help: every option of the ceremony program, then every subcommand."""
    from kcm_tui.options import build_parser

    lines = [build_parser().format_help().rstrip(), "", "subcommands:"]
    for name, (_m, _f, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    lines += ["", "Each subcommand has its own help: kcm-ceremony SUBCOMMAND --help"]
    return "\n".join(lines)


def _print_usage(_args: list[str]) -> int:
    print(_usage())
    return 0


def _run_subcommand(func: Callable[[list[str]], int], args: list[str]) -> int:
    """Run a subcommand; a reader that stops early (``| head``) ends it quietly.

    A closed pipe is not an error of the command: no traceback, and the exit status of a
    process stopped by SIGPIPE (141), as other command-line tools give.
    """
    try:
        rc = int(func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    return rc


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand or start the TUI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not (args and args[0] in SUBCOMMANDS) and any(a in ("-h", "--help") for a in args):
        return _run_subcommand(_print_usage, [])
    if args and not args[0].startswith("-"):
        entry = SUBCOMMANDS.get(args[0])
        if entry is None:
            print(f"kcm-ceremony: unknown subcommand {args[0]!r}\n\n{_usage()}", file=sys.stderr)
            return 2
        module = importlib.import_module(entry[0])
        func = getattr(module, entry[1])
        return _run_subcommand(func, args[1:])
    if not args or args[0] != "--ui-child":
        # The starting process: a clean environment for the UI, and the terminal put back
        # however the UI ends (kcm_tui/supervisor.py; imports no Textual).
        from kcm_tui import supervisor

        rc = supervisor.run(args)
        # os._exit: this process started with the caller's PYTHON* variables, and
        # PYTHONINSPECT would open a Python prompt on the terminal at a normal exit
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(rc)
    args = args[1:]
    # Before the UI exists: no core dump of the process that receives typed share words.
    from core.keyholder.harden import harden_ui

    harden_ui()
    ui = importlib.import_module("kcm_tui.app")
    return int(ui.main(args))


if __name__ == "__main__":
    raise SystemExit(main())
