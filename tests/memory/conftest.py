"""Fixtures for memory-scan tests (root only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.memory.memscan import is_root

ROOT = Path(__file__).resolve().parents[2]


class Driver:
    """The UI stand-in process (tests/memory/driver.py) and its keyholder."""

    def __init__(self, env: dict[str, str], plugins: list[str], prefix: list[str]) -> None:
        args = [*prefix, sys.executable, "-m", "tests.memory.driver"]
        for p in plugins:
            args += ["--plugin", p]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        hello = self._read()
        assert hello.get("ready"), hello
        self.keyholder_pid: int = hello["keyholder_pid"]
        self.info: dict[str, Any] = hello["info"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("driver ended unexpectedly")
        return json.loads(line)  # type: ignore[no-any-return]

    def send_only(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def cmd(self, line: str) -> dict[str, Any]:
        self.send_only(line)
        return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cmd("quit") if False else self.send_only("quit")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def driver_factory() -> Iterator[Any]:
    if not is_root():
        pytest.skip("memory scans read /proc/PID/mem of a non-dumpable process: run as root")
    made: list[Driver] = []

    def make(
        backend: str = "mlock",
        plugins: list[str] | None = None,
        prefix: list[str] | None = None,
        terminal: str | None = None,
    ) -> Driver:
        env = dict(os.environ)
        if terminal:
            env["KCM_TEST_TERMINAL"] = terminal  # the keyholder's display terminal
        env["KCM_SECMEM_BACKEND"] = backend
        env["PYTHONPATH"] = str(ROOT)
        d = Driver(env, plugins or [], prefix or [])
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
