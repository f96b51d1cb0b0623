"""Console fonts: PSF parsing, the image's font (Terminus with block elements), and whether
every glyph the TUI draws is in it.

The font read back from a real virtual console (KDFONTOP, GIO_UNIMAP, setfont -O) needs a
Linux VT: the guest does it in ``make iso-test`` (core/bootcheck.py). Here: synthetic PSF1
and PSF2 files, the real Terminus file from console-setup-linux (installed by
tools/install-debian-deps.sh), and the characters of every TUI snapshot.
"""

from __future__ import annotations

import gzip
import html
import re
import struct
from pathlib import Path

import pytest

from core import consolefont as F

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "tui" / "__snapshots__"
needs_terminus = pytest.mark.skipif(
    not F.TERMINUS.exists(), reason=f"{F.TERMINUS} missing (Debian package console-setup-linux)"
)


def psf1(glyphs: list[bytes], table: dict[int, list[int]], height: int = 16) -> bytes:
    out = b"\x36\x04" + bytes([0x03 if len(glyphs) == 512 else 0x02, height]) + b"".join(glyphs)
    for g in range(len(glyphs)):
        out += b"".join(struct.pack("<H", cp) for cp in table.get(g, [])) + b"\xff\xff"
    return out


def psf2(glyphs: list[bytes], table: dict[int, str], width: int = 8, height: int = 16) -> bytes:
    hdr = struct.pack("<4sIIIIIII", b"\x72\xb5\x4a\x86", 0, 32, 1, len(glyphs), height * ((width + 7) // 8), height, width)
    body = b"".join(glyphs)
    tab = b"".join(table.get(g, "").encode() + b"\xff" for g in range(len(glyphs)))
    return hdr + body + tab


def test_psf1_and_psf2_parse_with_their_unicode_tables() -> None:
    glyphs = [bytes([i % 256]) * 16 for i in range(256)]
    f1 = F.parse_psf(gzip.compress(psf1(glyphs, {65: [0x41], 196: [0x2500, 0x2501]})))
    assert (f1.width, f1.height, f1.charcount) == (8, 16, 256)
    assert f1.unicode == {0x41: 65, 0x2500: 196, 0x2501: 196}
    assert f1.glyphs[7] == bytes([7]) * 16
    f2 = F.parse_psf(psf2(glyphs, {65: "A", 196: "─━"}))
    assert f2.unicode == {0x41: 65, 0x2500: 196, 0x2501: 196} and F.same_glyphs(f1, f2)
    with pytest.raises(F.FontError):
        F.parse_psf(b"not a font")
    with pytest.raises(F.FontError):
        F.parse_psf(psf1(glyphs, {})[:100])


def test_psf1_encode_round_trips() -> None:
    glyphs = [bytes([i % 256]) * 16 for i in range(512)]
    font = F.Font(8, 16, tuple(glyphs), {0x41: 65, 0x2500: 300, 0x2501: 300})
    again = F.parse_psf(F.encode_psf1(font))
    assert F.same_glyphs(font, again) and again.unicode == font.unicode


def test_screen_code_points_and_missing_glyphs() -> None:
    font = F.Font(8, 16, (bytes(16),) * 256, {0x2500: 1, 0x41: 65})
    cells = F.screen_code_points(struct.pack("=5I", 0x41, 0x2500, 0x2588, 0x20, 0x7E) + b"\x01")
    assert cells == [0x41, 0x2500, 0x2588, 0x20, 0x7E]
    assert F.missing_glyphs(font, cells) == [0x2588]  # ASCII falls back to its own position


@needs_terminus
def test_image_font_is_terminus_plus_the_block_elements() -> None:
    base = F.read_psf(F.TERMINUS)
    font = F.extend_terminus(base)
    data = F.encode_psf1(font)
    assert data == F.encode_psf1(F.extend_terminus(F.read_psf(F.TERMINUS)))  # deterministic
    again = F.parse_psf(data)
    assert F.same_glyphs(font, again)
    same = sum(a == b for a, b in zip(font.glyphs, base.glyphs, strict=True))
    assert same == base.charcount - 21  # 21 positions replaced, every other one is Terminus
    for ch in "▀▄▌▐▁▂▃▅▆▇▉▊▋▍▎▏▔▕✓✔●○":
        assert ord(ch) in again.unicode, ch
    # the glyphs Terminus already had are still mapped to their Terminus bitmaps
    for ch in "─━│┃┏┓┗┛═║█ABC":
        assert again.glyphs[again.unicode[ord(ch)]] == base.glyphs[base.unicode[ord(ch)]], ch
    assert F.missing_glyphs(base, map(ord, "▀▄▅")) == [0x2580, 0x2584, 0x2585]  # why it exists


@needs_terminus
def test_every_glyph_of_every_tui_snapshot_is_in_the_image_font() -> None:
    """A screen drawn on tty1 must find each character it uses in the console font, or the
    console shows a replacement: a border that breaks up, a QR code that cannot be read."""
    font = F.extend_terminus(F.read_psf(F.TERMINUS))
    svgs = sorted(SNAPSHOTS.rglob("*.svg"))
    assert len(svgs) >= 20
    missing: dict[str, list[str]] = {}
    for svg in svgs:
        text = html.unescape("".join(re.findall(r"<text[^>]*>(.*?)</text>", svg.read_text(encoding="utf-8"), re.S)))
        gaps = F.missing_glyphs(font, map(ord, text))
        if gaps:
            missing[svg.name] = [f"U+{c:04X} {chr(c)}" for c in gaps]
    assert not missing, missing
