"""The default preflight port: the workstation checks of :mod:`core.preflight`."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["core_preflight"]


def core_preflight() -> dict[str, Any]:
    """The default preflight port: :func:`core.preflight.run_all` (``KCM_DEMO=1``: demo mode)."""
    from core import preflight

    mode = "demo" if os.environ.get("KCM_DEMO") == "1" else "ceremony"
    results = preflight.run_all(mode=mode)
    failed = [r.name for r in results if r.status == "FAIL"]
    return {
        "ok": not failed,
        "mode": mode,
        "failed": failed,
        "checks": {r.name: r.status for r in results},
    }
