"""A real-terminal smoke test: start the program under tmux (80x24), answer the first
screens with send-keys, read them with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.demo import init_workspace

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

ROOT = Path(__file__).resolve().parents[2]


class Tmux:
    """A private tmux server (own socket) running one program."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"kcm-smoke-{os.getpid()}"
        self.session = "kcm"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "TMUX"))}
        env["TERM"] = "xterm-256color"
        self.env = env
        self._tmux("new-session", "-d", "-s", self.session, "-x", "80", "-y", "24", "-c", str(cwd), command)
        self._tmux("set-option", "-t", self.session, "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, timeout=20, check=False)
        return res.stdout

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.capture()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; screen:\n{screen}")

    def pane_dead(self) -> bool:
        return self._tmux("display-message", "-p", "-t", self.session, "#{pane_dead}").strip() == "1"

    def kill(self) -> None:
        self._tmux("kill-server")


def test_real_terminal_start_runner_help_abort_exit(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    exe = Path(sys.executable).with_name("kcm-ceremony")
    tmux = Tmux(f"{exe} --demo --workspace {ws.root}", ROOT)
    try:
        tmux.wait_for("workstation check")
        screen = tmux.wait_for("[PRACTICE] practice-genesis")  # the script list is read
        assert "DEMO MODE" in screen
        assert "Begin" in screen
        tmux.send("Tab")  # script list -> media folder
        time.sleep(0.3)
        tmux.send("Tab")  # -> Begin
        time.sleep(0.3)
        tmux.send("Enter")
        screen = tmux.wait_for("Record who is present")
        assert "step 1 of" in screen and "PRACTICE CEREMONY" in screen
        tmux.send("F1")
        tmux.wait_for("Help: Step runner")
        tmux.send("Escape")
        time.sleep(0.3)
        tmux.send("F10")
        tmux.wait_for("Abort the ceremony?")
        tmux.send("y")
        screen = tmux.wait_for("CEREMONY ABORTED")
        # aborted before any key existed: nothing could sign it (issue 12), said plainly
        assert "Journal intact, UNSIGNED" in screen
        tmux.send("Enter")  # Wipe and exit
        end = time.monotonic() + 15
        while time.monotonic() < end and not tmux.pane_dead():
            time.sleep(0.2)
        assert tmux.pane_dead(), tmux.capture()
        # the terminal is given back: no traceback, no leftover alternate screen
        assert "Traceback" not in tmux.capture()
    finally:
        tmux.kill()
