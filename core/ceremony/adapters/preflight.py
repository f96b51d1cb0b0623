"""The default preflight port: the workstation checks of :mod:`core.preflight`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["core_preflight"]


def core_preflight(
    mode: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    term_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The default preflight port: :func:`core.preflight.run_all`, summed up for the
    journal (``ok``, ``mode``, ``failed`` check names, every check's status).

    ``mode``: ``demo`` or ``ceremony`` (default: ``demo`` under ``KCM_DEMO=1``); ``env`` and
    ``term_size`` as in :func:`core.preflight.run_all` (the TUI passes its own).
    """
    from core import preflight

    if mode is None:
        mode = "demo" if os.environ.get("KCM_DEMO") == "1" else "ceremony"
    results = preflight.run_all("/", mode=mode, env=env, term_size=term_size)
    failed = [r.name for r in results if r.status == "FAIL"]
    return {
        "ok": not failed,
        "mode": mode,
        "failed": failed,
        "checks": {r.name: r.status for r in results},
    }
