"""Issue 15, in a real terminal (tmux, 80x24): after a custodian's good type-back on the
keyholder's screen, the program's screen says "Share verified" naming the custodian, and
the keyholder's entry ("Word 33 of 33") is no longer on screen."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from core.demo import init_workspace
from tests.tui.test_tmux_smoke import ROOT, Tmux, _begin, _card, _tick, pytestmark  # noqa: F401


def test_share_verified_after_a_good_type_back(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    exe = Path(sys.executable).with_name("kcm-ceremony")
    tmux = Tmux(f"{exe} --demo --workspace {ws.root}", ROOT)
    try:
        _begin(tmux, "practice-genesis")
        _tick(tmux, 9, "Check the workstation")
        _tick(tmux, 2, "Inspect media and bags")
        _tick(tmux, 5, "Verify the PRACTICE recipient key")
        _tick(tmux, 3, "Generate the MasterKey")
        tmux.send("Enter")
        tmux.wait_for("Its check value")
        _tick(tmux, 2, "Read the key check value aloud")
        _tick(tmux, 3, "Give each custodian their share")
        tmux.send("Enter")  # Hand out the shares
        for n in (1, 2):
            tmux.wait_for(f"Custodian {n}: the script writes your share")
            time.sleep(1)
            _card(tmux, 0, f"Custodian {n}: share written to card")
            tmux.send("Enter")
        tmux.wait_for("Custodian 3 comes to the screen alone")
        tmux.send("r")
        screen = tmux.wait_for("Press Enter when done")
        words = [w for _i, w in sorted((int(i), w) for i, w in re.findall(r"(\d+)\. ([a-z]+)", screen))]
        assert len(words) == 33
        tmux.send("Enter")
        time.sleep(0.5)
        tmux.send("Enter")
        tmux.wait_for("have you written down")
        tmux.send("y")
        tmux.wait_for("Word 1 of 33")  # the keyholder's entry screen
        for w in words:
            tmux.send("-l", w[:4])
            time.sleep(0.15)
            tmux.send("Space")
            time.sleep(0.3)
        tmux.wait_for("All words entered: press Enter")
        tmux.send("Enter")
        screen = tmux.wait_for("Share verified")
        flat = " ".join(screen.split())
        assert "Share verified Custodian 3: the share typed back is exactly the share handed out." in flat, screen
        assert "Custodian 4 comes to the screen alone" in flat, screen
        assert "Word 33 of 33" not in screen and "All words entered" not in screen, screen
        assert "type your share back" not in flat, screen
    finally:
        tmux.kill()
