"""The command-line dispatcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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


# ---------------------------------------------------------------- help (issue 15, item 7)

#: subcommand -> its sub-subcommands (each has its own --help too)
NESTED = {
    "script": ["check", "print"],
    "journal": ["verify", "export"],
    "envelope": ["inspect"],
    "rotation": ["verify"],
    "demo": ["init"],
}


def test_every_subcommand_has_help() -> None:
    from kcm_tui.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        for argv in ([name, "--help"], *([name, sub, "--help"] for sub in NESTED.get(name, []))):
            out = run(*argv)
            assert out.returncode == 0, (argv, out.stderr)
            # a usage line and at least one described option: more than the bare usage
            assert out.stdout.startswith(f"usage: kcm-ceremony {' '.join(argv[:-1])}"), (argv, out.stdout)
            assert "-h, --help" in out.stdout, (argv, out.stdout)
            assert "Traceback" not in out.stderr


def test_top_level_help_lists_every_option() -> None:
    from kcm_tui.options import build_parser

    out = run("--help")
    assert out.returncode == 0
    options = [a for action in build_parser()._actions for a in action.option_strings]
    assert {"--demo", "--workspace", "--media", "--scripts", "--script", "--poweroff"} <= set(options)
    for opt in options:
        assert opt in out.stdout, opt
    # wherever --help stands among the options, the help is printed (the UI does not start)
    assert run("--demo", "--help").stdout == out.stdout


def test_selftest_and_envelope_usage_errors_exit_2() -> None:
    out = run("selftest", "--bogus")
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr
    out = run("envelope", "inspect", "x.json", "--at", "yesterday")
    assert out.returncode == 2 and "2026-01-31T12:00:00Z" in out.stderr
    assert run("envelope").returncode == 2


def test_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """``kcm-ceremony journal verify ... | head -2``: the reader leaves, no traceback."""
    import os

    from core import journal as jr

    db = tmp_path / "journal.db"
    j = jr.Journal.create(db, "pipe-test")
    for i in range(50):
        j.append("note", {"text": f"row {i}"})
    j.shutdown()
    # (the journal is OPEN: verify reports it, with --allow-open, on stdout)
    ok = run("journal", "verify", str(db), "--allow-open")
    assert ok.returncode == 0 and ok.stdout, ok.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already gone: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kcm_tui.cli", "journal", "verify", str(db), "--allow-open"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # 128 + SIGPIPE, as a tool stopped by the closed pipe
    # the top-level help too
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "kcm_tui.cli", "--help"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")
