"""The CI skip gate (tests/strict_skips.py): under CI=true as root a skip fails the run and
its reason is printed; elsewhere a skip is only reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.strict_skips import strict

ROOT = Path(__file__).resolve().parents[2]


def run_child(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_child.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "@pytest.mark.skipif(True, reason='frobnicator not installed (apt install frob)')\n"
        "def test_needs_a_tool():\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.strict_skips", "-p", "no:randomly",
         "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
         str(tmp_path / "test_child.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("ci", ["true", "1", None, "false"])
def test_a_skip_fails_the_run_under_ci_as_root(tmp_path: Path, ci: str | None) -> None:
    r = run_child(tmp_path, ci)
    out = r.stdout + r.stderr
    assert "1 passed, 1 skipped" in out, out
    assert "frobnicator not installed (apt install frob)" in out, out  # -rs: the reason
    if ci in ("true", "1") and os.geteuid() == 0:
        assert r.returncode == 1, out
        assert "skips fail this run (CI=true as root)" in out, out
        assert "SKIPPED test_child.py::test_needs_a_tool: frobnicator not installed" in out, out
    else:
        assert r.returncode == 0, out
        assert "skips fail this run" not in out, out


def test_strict_mode_needs_ci_and_root() -> None:
    assert strict({"CI": "true"}, 0)
    assert strict({"CI": "TRUE "}, 0)
    assert strict({"CI": "1"}, 0)
    assert not strict({"CI": "true"}, 1000)
    assert not strict({}, 0)
    assert not strict({"CI": "false"}, 0)
    assert not strict({"CI": ""}, 0)
