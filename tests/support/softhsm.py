"""SoftHSM2 tokens standing in for the custodians' smart cards (the demo's cards too)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["HAVE_SOFTHSM", "MODULE", "PINS", "SO_PIN", "init_tokens"]

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "12345678"
PINS = {"c1": "1111", "c2": "2222", "stranger": "3333"}

HAVE_SOFTHSM = bool(os.path.exists(MODULE) and shutil.which("softhsm2-util"))


def init_tokens(conf: Path, labels: list[str]) -> dict[str, str]:
    """Initialise one token per label (user PIN from :data:`PINS`) in the SoftHSM2
    configuration ``conf``; returns label -> token serial."""
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    for label in labels:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", PINS[label]],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    out = subprocess.run(
        ["softhsm2-util", "--show-slots"], check=True, capture_output=True, text=True, env=env
    ).stdout
    serials: dict[str, str] = {}
    for block in out.split("Slot ")[1:]:
        found = re.search(r"Label:\s*(\S+)", block)
        serial = re.search(r"Serial number:\s*(\S+)", block)
        if found and serial and found.group(1) in labels:
            serials[found.group(1)] = serial.group(1)
    assert set(serials) == set(labels), out
    return serials
