"""The command-line dispatcher."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kcm_tui.cli", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand() -> None:
    from kcm_tui.cli import SUBCOMMANDS

    out = run("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


def test_unknown_subcommand_exits_2() -> None:
    out = run("frobnicate")
    assert out.returncode == 2 and "unknown subcommand" in out.stderr


def test_every_subcommand_resolves() -> None:
    import importlib

    from kcm_tui.cli import SUBCOMMANDS

    for module, func, _help in SUBCOMMANDS.values():
        assert callable(getattr(importlib.import_module(module), func))


def test_ui_process_is_hardened_before_the_ui_starts() -> None:
    code = (
        "import ctypes, resource, kcm_tui.cli as c, importlib;"
        "importlib.import_module = lambda name: type('M', (), {'main': staticmethod(lambda a: 0)});"
        "c.main(['--ui-child']);"
        "print(resource.getrlimit(resource.RLIMIT_CORE), ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["(0,", "0)", "0"], out.stderr
