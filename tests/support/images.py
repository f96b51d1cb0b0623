"""Hostile and damaged images for the QR decoding tests, and a look at the decoder
helper processes still running."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

__all__ = ["bomb_png", "helpers_running", "truncated_jpeg"]


def helpers_running() -> list[int]:
    """Pids of helper processes (production or hostile) started under this test process
    (directly, or by a keyholder it started) and still alive.

    Only our own descendants count: on a shared machine other suites run decoder helpers
    of their own at the same time."""
    parents: dict[int, int] = {}
    helpers: list[int] = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        parents[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
        if b"/hostile_decoder.py" in cmd or b"core.carriers.decodehelper" in cmd:
            helpers.append(int(d))
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen: set[int] = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            pid = parents.get(pid, 0)
            if pid == me:
                return True
        return False

    return [pid for pid in helpers if ours(pid)]


def bomb_png(path: Path, side: int = 20000) -> Path:
    """A decompression bomb: a side x side grayscale PNG of zeros (400 MB decoded for the
    default side), about 400 KB on disk; written row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    comp = zlib.compressobj(9)
    row = bytes(side + 1)
    idat = bytearray()
    for _ in range(side):
        idat += comp.compress(row)
    idat += comp.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", bytes(idat)))
        fh.write(chunk(b"IEND", b""))
    return path


def truncated_jpeg(src: Path, path: Path) -> Path:
    bio = io.BytesIO()
    Image.open(src).convert("RGB").save(bio, format="JPEG", quality=90)
    data = bio.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path
