"""Command-line entry point: ``kcm-ceremony [subcommand]`` (the composition root: it may import
both core and the UI, so it lives on the UI side of the import contract).

Without a subcommand the TUI starts. Each subcommand lives in its own module and is
imported lazily, so ``kcm-ceremony preflight`` does not pay for Textual or PKCS#11.
"""

from __future__ import annotations

import importlib
import os
import sys

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
    lines = ["usage: kcm-ceremony [SUBCOMMAND] [ARGS]", "", "Without a subcommand the ceremony TUI starts.", ""]
    for name, (_m, _f, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand or start the TUI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args and not args[0].startswith("-"):
        entry = SUBCOMMANDS.get(args[0])
        if entry is None:
            print(f"kcm-ceremony: unknown subcommand {args[0]!r}\n\n{_usage()}", file=sys.stderr)
            return 2
        module = importlib.import_module(entry[0])
        func = getattr(module, entry[1])
        return int(func(args[1:]))
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
