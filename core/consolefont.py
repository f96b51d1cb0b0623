"""The Linux console font: read back what a virtual console has loaded, and check coverage.

The ceremony runs full-screen on tty1 of the live image, drawn with the Linux console's
font. Textual's frames need box-drawing glyphs that the kernel's built-in VGA font lacks
(they draw as filled squares), so the image loads Terminus (``Uni2-Terminus16``). Trusting
the ``setfont`` call is not enough (FINDINGS section 8: it silently did not take effect), so
the boot check reads the font back from the kernel and compares it:

- :func:`read_console_font`: the glyph bitmaps (``KDFONTOP`` / ``KD_FONT_OP_GET``) and the
  Unicode table (``GIO_UNIMAP``) that the console uses now;
- :func:`parse_psf`: a PSF1/PSF2 font file (gzip or not), e.g. the Terminus file, or what
  ``setfont -O`` saved;
- :func:`screen_code_points`: the code point of every cell of a console, from
  ``/dev/vcsu<N>`` (the kernel keeps what was written, even when the font has no glyph);
- :func:`missing_glyphs`: which of those the loaded font cannot draw.

Terminus as Debian ships it (``Uni2-Terminus16``: 512 glyphs, 8x16) has the box-drawing
lines but not the block elements Textual draws QR codes (``▀ ▄``), scroll bars
(``▁▂▃▅▆▇``) and some borders with, nor a check mark. :func:`extend_terminus` makes the image's
font, ``kcm-Terminus16.psf``: Terminus with those glyphs drawn into 21 positions that held
Cyrillic letters of Serbian, Macedonian, Ukrainian and Belarusian (``Ђ Љ Ґ``...; not needed
on a ceremony screen), every other glyph and mapping unchanged. The build makes it from the
Debian font file (``python3 core/consolefont.py extend SRC DST``: same input, same bytes).

Standard library only (ioctl through ``fcntl`` and ``ctypes``); no UI imports.
"""

from __future__ import annotations

import ctypes
import fcntl
import gzip
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import KcmError

__all__ = [
    "KCM_FONT",
    "TERMINUS",
    "Font",
    "FontError",
    "encode_psf1",
    "extend_terminus",
    "missing_glyphs",
    "parse_psf",
    "read_console_font",
    "read_psf",
    "same_glyphs",
    "screen_code_points",
]

TERMINUS = Path("/usr/share/consolefonts/Uni2-Terminus16.psf.gz")
KCM_FONT = Path("/usr/share/consolefonts/kcm-Terminus16.psf")

_KDFONTOP = 0x4B72
_KD_FONT_OP_GET = 1
_GIO_UNIMAP = 0x4B66
_PSF1_MAGIC = b"\x36\x04"
_PSF2_MAGIC = b"\x72\xb5\x4a\x86"
_PSF1_MODE512 = 0x01
_PSF1_MODEHASTAB = 0x02
_PSF1_MODESEQ = 0x04
_PSF2_HAS_UNICODE_TABLE = 0x01
_MAX_GLYPHS = 512  # what the Linux console can hold
_VPITCH = 32  # KD_FONT_OP_GET returns 32 rows per glyph whatever the height


class FontError(KcmError):
    """A font could not be read or parsed."""

    code = "console-font"


@dataclass(frozen=True)
class Font:
    """A console font.

    Attributes:
        width: glyph width in pixels.
        height: glyph height in pixels.
        glyphs: one bitmap per glyph position, ``height`` rows of ``(width + 7) // 8`` bytes.
        unicode: code point -> glyph position (single code points; sequences are ignored).
    """

    width: int
    height: int
    glyphs: tuple[bytes, ...]
    unicode: dict[int, int] = field(default_factory=dict)

    @property
    def charcount(self) -> int:
        """Number of glyph positions."""
        return len(self.glyphs)


def _psf1(data: bytes) -> Font:
    mode, height = data[2], data[3]
    count = 512 if mode & _PSF1_MODE512 else 256
    start, end = 4, 4 + count * height
    if len(data) < end or height == 0:
        raise FontError("PSF1 font is truncated")
    glyphs = tuple(data[start + i * height : start + (i + 1) * height] for i in range(count))
    table: dict[int, int] = {}
    if mode & (_PSF1_MODEHASTAB | _PSF1_MODESEQ):
        pos, glyph, in_seq = end, 0, False
        while pos + 1 < len(data) and glyph < count:
            (value,) = struct.unpack_from("<H", data, pos)
            pos += 2
            if value == 0xFFFF:
                glyph, in_seq = glyph + 1, False
            elif value == 0xFFFE:
                in_seq = True
            elif not in_seq:
                table.setdefault(value, glyph)
    return Font(8, height, glyphs, table)


def _psf2(data: bytes) -> Font:
    if len(data) < 32:
        raise FontError("PSF2 header is truncated")
    _magic, _version, headersize, flags, count, size, height, width = struct.unpack_from(
        "<4sIIIIIII", data, 0
    )
    if count == 0 or count > 65536 or size != height * ((width + 7) // 8):
        raise FontError("PSF2 header is inconsistent")
    end = headersize + count * size
    if len(data) < end:
        raise FontError("PSF2 font is truncated")
    glyphs = tuple(data[headersize + i * size : headersize + (i + 1) * size] for i in range(count))
    table: dict[int, int] = {}
    if flags & _PSF2_HAS_UNICODE_TABLE:
        pos, glyph = end, 0
        while pos < len(data) and glyph < count:
            stop = data.find(b"\xff", pos)
            if stop < 0:
                stop = len(data)
            entry = data[pos:stop]
            single = entry.split(b"\xfe", 1)[0]  # code points before any sequence
            for ch in single.decode("utf-8", "replace"):
                if ch != "\ufffd" or b"\xef\xbf\xbd" in single:
                    table.setdefault(ord(ch), glyph)
            pos, glyph = stop + 1, glyph + 1
    return Font(width, height, glyphs, table)


def parse_psf(data: bytes) -> Font:
    """Parse a PSF1 or PSF2 font (gzip-compressed or not).

    Raises:
        FontError: not a PSF font, or a damaged one.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FontError(f"damaged gzip data: {exc}") from None
    if data[:2] == _PSF1_MAGIC:
        return _psf1(data)
    if data[:4] == _PSF2_MAGIC:
        return _psf2(data)
    raise FontError("not a PSF font")


def read_psf(path: str | os.PathLike[str]) -> Font:
    """Read and parse a PSF font file (``.psf`` or ``.psf.gz``)."""
    try:
        return parse_psf(Path(path).read_bytes())
    except OSError as exc:
        raise FontError(f"cannot read {path}: {exc.strerror}") from None


class _ConsoleFontOp(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("width", ctypes.c_uint),
        ("height", ctypes.c_uint),
        ("charcount", ctypes.c_uint),
        ("data", ctypes.c_void_p),
    ]


class _UnimapDesc(ctypes.Structure):
    _fields_ = [("entry_ct", ctypes.c_ushort), ("entries", ctypes.c_void_p)]


def read_console_font(tty: str | os.PathLike[str] = "/dev/tty1") -> Font:
    """The font and Unicode table a virtual console uses now (needs root, or that console).

    Raises:
        FontError: the console cannot be opened or the kernel refused the request.
    """
    try:
        fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)
    except OSError as exc:
        raise FontError(f"cannot open {tty}: {exc.strerror}") from None
    try:
        buf = ctypes.create_string_buffer(_MAX_GLYPHS * _VPITCH * 4)
        op = _ConsoleFontOp(_KD_FONT_OP_GET, 0, 32, 32, _MAX_GLYPHS, ctypes.addressof(buf))
        try:
            fcntl.ioctl(fd, _KDFONTOP, op, True)
        except OSError as exc:
            raise FontError(f"KDFONTOP on {tty}: {exc.strerror}") from None
        width, height, count = int(op.width), int(op.height), int(op.charcount)
        row = (width + 7) // 8
        raw = buf.raw
        glyphs = tuple(
            raw[i * _VPITCH * row : i * _VPITCH * row + height * row] for i in range(count)
        )
        pairs = (ctypes.c_ushort * (2 * 65535))()
        desc = _UnimapDesc(65535, ctypes.addressof(pairs))
        try:
            fcntl.ioctl(fd, _GIO_UNIMAP, desc, True)
        except OSError as exc:
            raise FontError(f"GIO_UNIMAP on {tty}: {exc.strerror}") from None
        table: dict[int, int] = {}
        for i in range(int(desc.entry_ct)):
            table.setdefault(int(pairs[2 * i]), int(pairs[2 * i + 1]))
        return Font(width, height, glyphs, table)
    finally:
        os.close(fd)


def same_glyphs(a: Font, b: Font) -> bool:
    """True when both fonts have the same size and the same bitmap at every position."""
    return (a.width, a.height, a.glyphs) == (b.width, b.height, b.glyphs)


def screen_code_points(vcsu: bytes) -> list[int]:
    """The code point of every cell, from the contents of ``/dev/vcsu<N>`` (UTF-32, native)."""
    usable = len(vcsu) - len(vcsu) % 4
    return list(struct.unpack(f"={usable // 4}I", vcsu[:usable]))


def missing_glyphs(font: Font, code_points: Iterable[int]) -> list[int]:
    """Code points (outside ASCII) that ``font``'s Unicode table cannot draw, sorted.

    ASCII is left out: the console shows a character below 128 that is not in the table
    with the glyph at its own position (the kernel's 1:1 fallback), so it never draws a
    replacement for it.
    """
    return sorted({cp for cp in code_points if cp >= 0x80 and cp not in font.unicode})


# ------------------------------------------------------------------ the image's font


def _rows(top: int, bottom: int, bits: int = 0xFF, height: int = 16) -> bytes:
    return bytes(bits if top <= r < bottom else 0 for r in range(height))


def _added_glyphs() -> list[tuple[tuple[int, ...], bytes]]:
    """(code points, 8x16 bitmap) for each glyph added to Terminus."""
    out: list[tuple[tuple[int, ...], bytes]] = [
        ((0x2580,), _rows(0, 8)),  # ▀ upper half
        ((0x2584,), _rows(8, 16)),  # ▄ lower half
        ((0x2594,), _rows(0, 2)),  # ▔ upper one eighth
        ((0x2590,), _rows(0, 16, 0x0F)),  # ▐ right half
        ((0x2595,), _rows(0, 16, 0x01)),  # ▕ right one eighth
    ]
    for k, cp in zip(
        (1, 2, 3, 5, 6, 7), (0x2581, 0x2582, 0x2583, 0x2585, 0x2586, 0x2587), strict=True
    ):
        out.append(((cp,), _rows(16 - 2 * k, 16)))  # ▁▂▃▅▆▇ lower k eighths
    for k, cp in zip(
        (7, 6, 5, 4, 3, 2, 1), (0x2589, 0x258A, 0x258B, 0x258C, 0x258D, 0x258E, 0x258F), strict=True
    ):
        out.append(((cp,), _rows(0, 16, (0xFF << (8 - k)) & 0xFF)))  # ▉▊▋▌▍▎▏ left k eighths
    check = bytes([0, 0, 0, 0, 0, 0, 0x01, 0x03, 0x86, 0xCC, 0x78, 0x30, 0, 0, 0, 0])
    dot = bytes([0, 0, 0, 0, 0x3C, 0x7E, 0xFF, 0xFF, 0xFF, 0xFF, 0x7E, 0x3C, 0, 0, 0, 0])
    ring = bytes([0, 0, 0, 0, 0x3C, 0x42, 0x81, 0x81, 0x81, 0x81, 0x42, 0x3C, 0, 0, 0, 0])
    out += [((0x2713, 0x2714), check), ((0x25CF,), dot), ((0x25CB,), ring)]
    return out


def _spare_positions(font: Font) -> list[int]:
    """Glyph positions mapped only to Cyrillic letters outside the Russian alphabet."""
    by_glyph: dict[int, list[int]] = {}
    for cp, g in font.unicode.items():
        by_glyph.setdefault(g, []).append(cp)
    russian = set(range(0x410, 0x450)) | {0x401, 0x451}
    return sorted(
        g
        for g, cps in by_glyph.items()
        if all(0x400 <= c <= 0x4FF and c not in russian for c in cps)
    )


def extend_terminus(base: Font) -> Font:
    """Terminus 8x16 with the block elements, a check mark and two circles added.

    Raises:
        FontError: ``base`` is not an 8x16 font with enough spare Cyrillic positions.
    """
    if (base.width, base.height) != (8, 16):
        raise FontError(f"expected an 8x16 font, got {base.width}x{base.height}")
    added = _added_glyphs()
    spare = _spare_positions(base)
    if len(spare) < len(added):
        raise FontError(f"only {len(spare)} spare glyph positions, {len(added)} needed")
    glyphs = list(base.glyphs)
    table = {cp: g for cp, g in base.unicode.items() if g not in spare[: len(added)]}
    for pos, (cps, bitmap) in zip(spare, added, strict=False):
        glyphs[pos] = bitmap
        for cp in cps:
            table[cp] = pos
    return Font(8, 16, tuple(glyphs), table)


def encode_psf1(font: Font) -> bytes:
    """A PSF1 file (256 or 512 glyphs, width 8) with its Unicode table; deterministic.

    Raises:
        FontError: the font does not fit PSF1.
    """
    if font.width != 8 or font.charcount not in (256, 512):
        raise FontError("PSF1 holds 256 or 512 glyphs of width 8")
    mode = _PSF1_MODEHASTAB | (_PSF1_MODE512 if font.charcount == 512 else 0)
    out = bytearray(_PSF1_MAGIC + bytes([mode, font.height]))
    for bitmap in font.glyphs:
        if len(bitmap) != font.height:
            raise FontError("a glyph has the wrong size")
        out += bitmap
    per_glyph: dict[int, list[int]] = {}
    for cp, g in font.unicode.items():
        if cp > 0xFFFD:
            raise FontError(f"U+{cp:X} does not fit a PSF1 table")
        per_glyph.setdefault(g, []).append(cp)
    for g in range(font.charcount):
        for cp in sorted(per_glyph.get(g, [])):
            out += struct.pack("<H", cp)
        out += b"\xff\xff"
    return bytes(out)


def main(argv: list[str]) -> int:
    """``consolefont.py extend SRC DST``: write the image's font (see the module docstring)."""
    import sys

    if len(argv) != 3 or argv[0] != "extend":
        sys.stderr.write("usage: consolefont.py extend SRC.psf[.gz] DST.psf\n")
        return 2
    font = extend_terminus(read_psf(argv[1]))
    Path(argv[2]).write_bytes(encode_psf1(font))
    print(f"{argv[2]}: Terminus with {len(_added_glyphs())} glyphs added")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
