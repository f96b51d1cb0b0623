#!/usr/bin/env python3
"""Regenerate the hash-locked requirement files from pyproject.toml: ``make lock``.

    requirements/test.lock     everything ``make test``'s venv installs: the runtime
                               dependencies, the extras in [tool.kcm.lock] test-extras, and
                               the build backend (the project is installed editable with
                               --no-build-isolation, so setuptools and wheel come from here)
    requirements/runtime.lock  what the ISO's venv installs: the dependencies and the extras
                               in [tool.kcm.lock] runtime-extras (the camera), at exactly the
                               versions of test.lock (what ships is what was tested)
    requirements/build.lock    the build backend that turns the project into a wheel for the
                               ISO, at exactly the versions of test.lock

Every line is ``name==version`` with the SHA-256 of every file PyPI publishes for that
version (``--hash``); installs use ``--require-hashes --only-binary=:all:``.

The resolver is uv, at the version and hash pinned in requirements/lock-tool.txt, installed
into .lock-venv/ with --require-hashes. It resolves for the image's interpreter and platform
(python-version / python-platform in [tool.kcm.lock]), wheels only, with nothing published
after ``exclude-newer``: the same pyproject.toml gives the same locks on any machine on any
day. Move ``exclude-newer`` forward to take newer releases. The host's pip and uv
configuration (config files, PIP_* and UV_* variables) is ignored; KCM_PIP_INDEX_URL names
another index (a PyPI mirror) if PyPI cannot be reached directly.

Each lock starts with ``# inputs-sha256:``, a digest of the inputs that shaped it;
tests/iso/test_supply_chain.py recomputes it and fails when pyproject.toml changed and
``make lock`` was not run.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "requirements"
LOCK_VENV = ROOT / ".lock-venv"
TOOL_FILE = REQ / "lock-tool.txt"
HEADER_DIGEST = "# inputs-sha256: "
LOCKS = ("test", "runtime", "build")


def settings(pyproject: dict[str, Any]) -> dict[str, Any]:
    """[tool.kcm.lock] with its defaults filled in."""
    s = dict(pyproject.get("tool", {}).get("kcm", {}).get("lock", {}))
    for key in ("exclude-newer", "python-version", "python-platform"):
        if not s.get(key):
            raise SystemExit(f"pyproject.toml: [tool.kcm.lock] {key} is missing")
    s.setdefault("runtime-extras", [])
    s.setdefault("test-extras", [])
    return s


def tool_pin(tool_text: str) -> str:
    """The ``uv==X.Y.Z`` line of requirements/lock-tool.txt."""
    m = re.search(r"^(uv==[0-9][^ \\]*)", tool_text, re.M)
    if not m:
        raise SystemExit(f"{TOOL_FILE}: no uv==VERSION line")
    return m.group(1)


def inputs(pyproject: dict[str, Any], tool_text: str) -> dict[str, Any]:
    """Everything that shapes the three locks (the digest in their headers covers it)."""
    project = pyproject["project"]
    s = settings(pyproject)
    extras = project.get("optional-dependencies", {})
    used = sorted(set(s["runtime-extras"]) | set(s["test-extras"]))
    missing = [e for e in used if e not in extras]
    if missing:
        raise SystemExit(f"pyproject.toml: [tool.kcm.lock] names unknown extras {missing}")
    return {
        "dependencies": list(project.get("dependencies", [])),
        "extras": {e: list(extras[e]) for e in used},
        "build-requires": list(pyproject.get("build-system", {}).get("requires", [])),
        "requires-python": project.get("requires-python", ""),
        "settings": s,
        "tool": tool_pin(tool_text),
    }


def inputs_digest(
    pyproject_path: Path = ROOT / "pyproject.toml", tool_path: Path = TOOL_FILE
) -> str:
    """SHA-256 over the canonical JSON of :func:`inputs`."""
    pyproject = tomllib.loads(pyproject_path.read_text())
    blob = json.dumps(
        inputs(pyproject, tool_path.read_text()), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def parse_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, [sha256 hex, ...]) from a hash-locked requirements file."""
    out: dict[str, tuple[str, list[str]]] = {}
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current.strip():
        logical.append(current)
    for entry in logical:
        tokens = entry.split()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", tokens[0])
        if not m:
            raise ValueError(f"not a pinned requirement: {entry.strip()[:80]}")
        name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        hashes = [
            t.split("=", 1)[1].removeprefix("sha256:")
            for t in tokens[1:]
            if t.startswith("--hash=")
        ]
        bad = [t for t in tokens[1:] if not t.startswith("--hash=sha256:")]
        if bad:
            raise ValueError(f"{name}: unexpected option(s) {bad}")
        out[name] = (m.group(2), hashes)
    return out


def scrubbed_env() -> dict[str, str]:
    """The environment without any pip or uv configuration of the host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    return env


def ensure_uv() -> Path:
    """uv from requirements/lock-tool.txt, installed with --require-hashes into .lock-venv."""
    uv = LOCK_VENV / "bin" / "uv"
    stamp = LOCK_VENV / ".tool-sha256"
    want = hashlib.sha256(TOOL_FILE.read_bytes()).hexdigest()
    if uv.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return uv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LOCK_VENV)], check=True)
    cmd = [str(LOCK_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--require-hashes", "--only-binary=:all:", "-r", str(TOOL_FILE)]  # fmt: skip
    if os.environ.get("KCM_PIP_INDEX_URL"):
        cmd[4:4] = ["--index-url", os.environ["KCM_PIP_INDEX_URL"]]
    subprocess.run(cmd, check=True, env=scrubbed_env())
    stamp.write_text(want + "\n")
    return uv


def compile_lock(uv: Path, s: dict[str, Any], sources: list[str], out: Path, extras: list[str],
                 constraints: Path | None, cache: Path) -> None:  # fmt: skip
    cmd = [
        str(uv), "pip", "compile", "--quiet", "--no-config",
        "--cache-dir", str(cache),
        "--python-version", s["python-version"],
        "--python-platform", s["python-platform"],
        "--only-binary", ":all:",
        "--generate-hashes",
        "--exclude-newer", s["exclude-newer"],
        "--custom-compile-command", "make lock",
        "-o", str(out),
    ]  # fmt: skip
    if os.environ.get("KCM_PIP_INDEX_URL"):
        cmd += ["--index-url", os.environ["KCM_PIP_INDEX_URL"]]
    for e in extras:
        cmd += ["--extra", e]
    if constraints is not None:
        cmd += ["--constraint", str(constraints)]
    cmd += sources
    subprocess.run(cmd, check=True, env=scrubbed_env(), cwd=ROOT)


def add_header(path: Path, digest: str, what: str) -> None:
    body = path.read_text()
    # uv names the temporary input files; keep the lock free of machine-specific paths.
    body = re.sub(r"/\S*/kcm-lock-[^/\s]+/pins\.txt", "test.lock", body)
    body = re.sub(r"/\S*/kcm-lock-[^/\s]+/", "", body)
    path.write_text(
        f"# {what}\n# Generated by `make lock` (tools/lock.py) from pyproject.toml; do not edit.\n"
        f"{HEADER_DIGEST}{digest}\n{body}"
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="only check the headers are current")
    args = ap.parse_args(argv)
    digest = inputs_digest()
    if args.check:
        stale = [
            n for n in LOCKS
            if not (REQ / f"{n}.lock").exists()
            or HEADER_DIGEST + digest not in (REQ / f"{n}.lock").read_text()
        ]  # fmt: skip
        if stale:
            print(f"stale: {', '.join(stale)} (run `make lock`)")
            return 1
        print("locks are current")
        return 0
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    s = settings(pyproject)
    uv = ensure_uv()
    with tempfile.TemporaryDirectory(prefix="kcm-lock-") as tmp:
        t = Path(tmp)
        (t / "build.in").write_text("\n".join(pyproject["build-system"]["requires"]) + "\n")
        cache = t / "cache"  # a fresh cache: nothing from earlier runs or other projects
        test_out, runtime_out, build_out = t / "test.lock", t / "runtime.lock", t / "build.lock"
        compile_lock(uv, s, ["pyproject.toml", str(t / "build.in")], test_out,
                     sorted(set(s["runtime-extras"]) | set(s["test-extras"])), None, cache)  # fmt: skip
        pins = t / "pins.txt"
        pins.write_text(
            "".join(f"{n}=={v}\n" for n, (v, _) in sorted(parse_lock(test_out.read_text()).items()))
        )
        compile_lock(uv, s, ["pyproject.toml"], runtime_out, list(s["runtime-extras"]), pins, cache)
        compile_lock(uv, s, [str(t / "build.in")], build_out, [], pins, cache)
        test_pins = parse_lock(test_out.read_text())
        for sub in (runtime_out, build_out):
            for name, (version, _) in parse_lock(sub.read_text()).items():
                if test_pins.get(name, ("",))[0] != version:
                    raise SystemExit(f"{sub.name}: {name}=={version} differs from test.lock")
        REQ.mkdir(exist_ok=True)
        for name, out, what in (
            ("test", test_out, "make test's venv: runtime, extras " + ", ".join(s["test-extras"]) + ", build backend"),
            ("runtime", runtime_out, "the ISO's venv: runtime and extras " + ", ".join(s["runtime-extras"])),
            ("build", build_out, "the build backend that makes the project's wheel"),
        ):  # fmt: skip
            add_header(out, digest, what)
            (REQ / f"{name}.lock").write_text(out.read_text())
            count = len(parse_lock(out.read_text()))
            print(f"requirements/{name}.lock: {count} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
