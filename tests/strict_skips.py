"""pytest plugin: under ``CI=true`` as root, any skipped test fails the run.

On a fresh root machine every tool the tests use is installed by ``make test`` (the Debian
packages through ``tools/install-debian-deps.sh``, the Python ones through the venv), so a
skip there is a missing install step, not an excuse: the run's exit status is made non-zero
and every skip is listed with its reason. Without root (memory scans and mounts skip with
their reason) or outside CI, skips are only reported (``-ra``).

Loaded by the root ``conftest.py``; tests/unit/test_ci_gate.py runs it in a child pytest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest


def strict(environ: Mapping[str, str] | None = None, euid: int | None = None) -> bool:
    """True when skips must fail the run: ``CI`` is true-ish and we are root."""
    env = os.environ if environ is None else environ
    uid = os.geteuid() if euid is None else euid
    return env.get("CI", "").strip().lower() in ("1", "true", "yes", "on") and uid == 0


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, msg = longrepr
        return f"{str(msg).removeprefix('Skipped: ')} ({path}:{line})"
    return str(longrepr)


class StrictSkips:
    """Collects every skip (test or whole module) and fails the session on any in strict mode."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((report.nodeid, _reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if strict() and self.skips and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not strict() or not self.skips:
            return
        tr = terminalreporter
        tr.section("skips fail this run (CI=true as root)", sep="=", red=True, bold=True)
        tr.line("`make test` as root installs every tool the tests use: each skip below is a missing")
        tr.line("install step (tools/install-debian-deps.sh, pyproject.toml extras) or a broken test.")
        for nodeid, reason in self.skips:
            tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
        tr.line(f"{len(self.skips)} skipped under CI=true as root: the run fails.", red=True, bold=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(StrictSkips(), "kcm-strict-skips")
