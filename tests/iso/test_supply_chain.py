"""The hash-locked supply chain: requirements/*.lock against pyproject.toml, and installs
that ignore the host's pip configuration.

Fails when pyproject.toml's dependencies and the locks disagree (run ``make lock``): a
dependency missing from a lock or pinned outside its range, a lock made from other inputs
(its ``inputs-sha256`` header), an entry without hashes, runtime or build versions that are
not the tested ones.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"


def _load_lock_tool() -> Any:
    spec = importlib.util.spec_from_file_location("kcm_lock_tool", ROOT / "tools" / "lock.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lock_tool = _load_lock_tool()


def locks() -> dict[str, dict[str, tuple[str, list[str]]]]:
    return {n: lock_tool.parse_lock((REQ / f"{n}.lock").read_text()) for n in ("test", "runtime", "build")}


def disagreements(pyproject: dict[str, Any], parsed: dict[str, dict[str, tuple[str, list[str]]]]) -> list[str]:
    """Every way pyproject.toml's requirements and the locks disagree (empty: they agree)."""
    project = pyproject["project"]
    s = pyproject["tool"]["kcm"]["lock"]
    extras = project.get("optional-dependencies", {})
    wanted = {
        "runtime": [*project["dependencies"], *(r for e in s["runtime-extras"] for r in extras[e])],
        "test": [
            *project["dependencies"],
            *(r for e in s["test-extras"] for r in extras[e]),
            *pyproject["build-system"]["requires"],
        ],
        "build": list(pyproject["build-system"]["requires"]),
    }
    problems: list[str] = []
    for lock, reqs in wanted.items():
        for text in reqs:
            req = Requirement(text)
            pin = parsed[lock].get(canonicalize_name(req.name))
            if pin is None:
                problems.append(f"{lock}.lock lacks {req.name} ({text})")
            elif not req.specifier.contains(pin[0], prereleases=True):
                problems.append(f"{lock}.lock pins {req.name}=={pin[0]}, pyproject.toml wants {text}")
    return problems


def test_every_lock_entry_is_pinned_with_sha256_hashes() -> None:
    for name, entries in locks().items():
        assert entries, name
        for pkg, (version, hashes) in entries.items():
            assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), (name, pkg, version)
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (name, pkg)
        text = (REQ / f"{name}.lock").read_text()
        assert "--index-url" not in text and "--extra-index-url" not in text and "-e " not in text


def test_locks_agree_with_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert disagreements(pyproject, locks()) == []
    digest = lock_tool.inputs_digest()
    for name in ("test", "runtime", "build"):
        header = (REQ / f"{name}.lock").read_text().splitlines()[:4]
        assert f"# inputs-sha256: {digest}" in header, f"{name}.lock is stale: run `make lock`"


def test_a_changed_pyproject_is_caught(tmp_path: Path) -> None:
    """The check can fail: a new dependency, a narrowed range, or any change of the inputs."""
    original = (ROOT / "pyproject.toml").read_text()
    pyproject = tomllib.loads(original)
    pyproject["project"]["dependencies"].append("kcm-not-locked>=4")  # in no lock
    assert disagreements(pyproject, locks()) == ["runtime.lock lacks kcm-not-locked (kcm-not-locked>=4)",
                                                 "test.lock lacks kcm-not-locked (kcm-not-locked>=4)"]  # fmt: skip
    pyproject = tomllib.loads(original)
    pyproject["project"]["dependencies"] = [
        "textual==8.2.7" if d.startswith("textual") else d for d in pyproject["project"]["dependencies"]
    ]
    assert any("pins textual==8.2.8" in p for p in disagreements(pyproject, locks()))
    changed = tmp_path / "pyproject.toml"
    changed.write_text(original.replace('"pytest>=8,<9"', '"pytest>=8,<9", "pytest-randomly"'))
    assert lock_tool.inputs_digest(changed) != lock_tool.inputs_digest()


def test_what_ships_is_what_is_tested() -> None:
    parsed = locks()
    for sub in ("runtime", "build"):
        for pkg, (version, hashes) in parsed[sub].items():
            assert parsed["test"][pkg][0] == version, (sub, pkg)
            assert set(hashes) == set(parsed["test"][pkg][1]), (sub, pkg)
    runtime = parsed["runtime"]
    assert "linuxpy" in runtime  # the camera extra goes into the image
    assert runtime["python-pkcs11"][0] == "0.10.1"
    assert "pytest" not in runtime and "mypy" not in runtime  # no test tools in the image


def test_lock_command_is_pinned_and_offline_reproducible() -> None:
    tool = (REQ / "lock-tool.txt").read_text()
    assert re.search(r"^uv==\d+\.\d+\.\d+ \\\n\s+--hash=sha256:[0-9a-f]{64}$", tool, re.M)
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["kcm"]["lock"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", settings["exclude-newer"])
    assert settings["python-version"] == "3.11" and settings["python-platform"].startswith("x86_64-manylinux")
    src = (ROOT / "tools" / "lock.py").read_text()
    for flag in ('"--no-config"', '"--generate-hashes"', '"--exclude-newer"', '"--only-binary", ":all:"'):
        assert flag in src, flag
    mk = (ROOT / "mk" / "lock.mk").read_text()
    assert re.search(r"^lock:", mk, re.M) and "tools/lock.py" in mk


def test_make_test_venv_installs_the_lock_only() -> None:
    mk = (ROOT / "Makefile").read_text()
    recipe = mk.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "requirements/test.lock" in recipe.splitlines()[0]
    assert "tools/pip-locked $(PY) install -q --require-hashes --only-binary=:all: -r requirements/test.lock" in recipe
    assert "--no-deps --no-build-isolation --no-index -e ." in recipe
    assert "pip install -q -e" not in recipe and "--upgrade pip" not in recipe


def test_pip_locked_ignores_the_host_pip_configuration(tmp_path: Path) -> None:
    """A host whose pip configuration points elsewhere (config file, PIP_* variables): pip
    run through tools/pip-locked sees none of it."""
    conf = tmp_path / "hostile-pip.conf"
    conf.write_text("[global]\nindex-url = http://127.0.0.1:9/hostile\nno-binary = :all:\n")
    env = {**os.environ, "PIP_CONFIG_FILE": str(conf), "PIP_FIND_LINKS": str(tmp_path),
           "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/extra", "PIP_NO_BINARY": ":all:"}  # fmt: skip
    env.pop("KCM_PIP_INDEX_URL", None)
    plain = subprocess.run([sys.executable, "-m", "pip", "config", "debug"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "127.0.0.1:9" in plain.stdout  # without the wrapper, the host's settings apply
    res = subprocess.run([str(ROOT / "tools" / "pip-locked"), sys.executable, "config", "debug"],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "127.0.0.1" not in res.stdout and str(tmp_path) not in res.stdout
    assert "PIP_CONFIG_FILE='/dev/null'" in res.stdout or "/dev/null" in res.stdout
    for line in res.stdout.splitlines():
        if line.startswith("env_var:"):
            continue
        assert "index-url" not in line and "no-binary" not in line, line


@pytest.mark.parametrize("lock", ["runtime", "build"])
def test_iso_build_installs_from_the_locks_with_hashes_and_wheels_only(lock: str) -> None:
    build = (ROOT / "iso_build" / "build.sh").read_text()
    assert f"requirements/{lock}.lock" in build
    assert "PIP_CONFIG_FILE=/dev/null" in (ROOT / "tools" / "pip-locked").read_text()
