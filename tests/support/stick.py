"""A real mounted filesystem standing in for a USB stick (root only).

A loop-mounted ext4 image (what a prepared stick can be: ext4 holds symbolic links, vfat
does not), or a small tmpfs where loop devices are not available. Either way it is a
separate filesystem with its own device number, mounted as root, as in the media fault
tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")


@dataclass(frozen=True)
class Stick:
    """A mounted stick: its mount point, filesystem type and block device ("" for tmpfs)."""

    path: Path
    fs: str
    device: str


def _loop_ext4(image: Path, mnt: Path, size_mb: int, inodes: int) -> str | None:
    if shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
        return None
    with open(image, "wb") as fh:
        fh.truncate(size_mb << 20)
    r = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-N", str(inodes), "-L", "KCM-USB", str(image)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return None
    r = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    dev = r.stdout.strip()
    r = subprocess.run(["mount", "-t", "ext4", dev, str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        return None
    return dev


@contextmanager
def mounted_stick(tmp: Path, *, size_mb: int = 64, inodes: int = 40000) -> Iterator[Stick]:
    """Mount a fresh stick under ``tmp``; unmounted (and its loop device freed) after."""
    mnt = tmp / "KCM-USB"
    mnt.mkdir()
    dev = _loop_ext4(tmp / "stick.img", mnt, size_mb, inodes)
    fs = "ext4"
    if dev is None:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a filesystem here: {r.stderr.strip()}")
        fs, dev = "tmpfs", ""
    try:
        assert os.stat(mnt).st_dev != os.stat(tmp).st_dev
        yield Stick(mnt, fs, dev)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
