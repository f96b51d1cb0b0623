"""The options of the full-screen ceremony program (``kcm-ceremony [OPTIONS]``), in a module
that imports no Textual: ``kcm-ceremony --help`` (kcm_tui/cli.py) prints them without
loading the UI, and the UI (kcm_tui/app.py) parses its arguments with the same parser."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of the UI's options (every option ``kcm-ceremony --help`` lists)."""
    p = argparse.ArgumentParser(
        prog="kcm-ceremony",
        usage="kcm-ceremony [OPTIONS]\n       kcm-ceremony SUBCOMMAND [ARGS] (kcm-ceremony SUBCOMMAND --help)",
        description="OpenKCM key ceremony. Without a subcommand the full-screen ceremony program "
        "starts: workstation checks, the ceremony script, the ceremony medium, then the "
        "ceremony step by step.",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="demo mode: failed workstation checks become warnings, a DEMO banner is shown on "
        "every screen, and scripts with demo values may run (never for a real key)",
    )
    p.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="demo workspace made by 'kcm-ceremony demo init DIR' (its scripts, its medium "
        "folder, its SoftHSM2 tokens)",
    )
    p.add_argument(
        "--media",
        type=Path,
        metavar="DIR",
        help="folder on the ceremony medium, where the journal, manifests and recipient keys "
        "are (default: the workspace's)",
    )
    p.add_argument(
        "--scripts",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of ceremony scripts (*.toml), repeatable; when given, only these folders' "
        "scripts are listed (default: the bundled ceremony_scripts/)",
    )
    p.add_argument(
        "--script",
        default="",
        metavar="NAME",
        help="script to preselect in the list (file name or ceremony name)",
    )
    p.add_argument(
        "--poweroff",
        action="store_true",
        help="power the machine off when the program ends (the ceremony ISO)",
    )
    return p
