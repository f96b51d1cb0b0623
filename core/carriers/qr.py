"""Share QR codes: payload, QR matrix, terminal and image rendering.

A share travels in a QR code as its SLIP-39 word indices (0..1023), each written as four
decimal digits, in QR *numeric* mode (the SeedQR convention): 33 words are 132 digits, which
is QR version 4 at error-correction level M; 20 words are 80 digits (version 3).

In memory a share is a sequence of word indices held in a :class:`~core.secmem.SecretBuffer`,
two bytes per index, big-endian (``buf.size == 2 * word_count``). The payload (the ASCII
digits) is also kept in a SecretBuffer. Conversions work byte by byte on memoryviews and
never build a ``bytes``/``str``/``int`` of the whole share; the per-word and per-3-digit
integers they create are transient and never hold more than one word.

Residues that cannot be avoided (documented in docs/formats.md, "Share carriers"):

* the ``qrcode`` library builds the module matrix as Python lists of ``True``/``False``
  (pointers to two singletons, not a byte encoding of the share) and its code words as lists
  of cached small ints; we hand it the digits through :class:`_LockedNumeric`, so the digit
  string itself never exists as ``bytes``;
* a PNG (:func:`png_bytes`) is ``bytes`` by nature: it is for printing share cards, made in
  the keyholder, which exits at the end of the ceremony.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import qrcode
import qrcode.util
from PIL import Image, ImageDraw
from qrcode.constants import ERROR_CORRECT_M

from core.carriers.errors import QRPayloadError
from core.carriers.qrgrid import FIXED_DARK, fixed_map, version_for_size
from core.custodian_tty import CLEAR, REVEAL_IDLE_S, custodian_tty
from core.secmem import SecretBuffer
from core.shamir.rs1024 import polymod_words
from core.shamir.slip39 import customization

__all__ = [
    "CLEAR",
    "DIGITS_PER_WORD",
    "QR_CONFIRM_PROMPT",
    "QR_DONE_PROMPT",
    "QR_GLYPHS",
    "TRANSCRIBE_GLYPHS",
    "VALID_WORD_COUNTS",
    "QRMatrix",
    "TranscriptionLayout",
    "console_image",
    "indices_to_payload",
    "make_matrix",
    "payload_to_indices",
    "png_bytes",
    "psf_unicode_table",
    "render_image",
    "render_terminal",
    "render_transcription",
    "rs1024_verify",
    "show_qr",
    "show_qr_on_tty",
    "text_length",
    "transcription_layout",
    "validate_payload",
]

DIGITS_PER_WORD: Final = 4
RADIX: Final = 1024
#: Share lengths this product uses: 128-bit (20 words) and 256-bit (33 words) secrets.
VALID_WORD_COUNTS: Final = (20, 33)
_ZERO: Final = 0x30

Alloc = Callable[[int], SecretBuffer]

#: Glyphs for two vertically stacked modules (top, bottom) drawn as "lit" cells: the Linux
#: console font (and CP437) has full block U+2588, upper half U+2580 and lower half U+2584.
_GLYPH: Final = {
    (False, False): " ",
    (True, False): "\u2580",
    (False, True): "\u2584",
    (True, True): "\u2588",
}
_GLYPH_BYTES: Final = {k: v.encode() for k, v in _GLYPH.items()}


def _default_alloc(size: int) -> SecretBuffer:
    return SecretBuffer(size)


def _word(view: memoryview, i: int) -> int:
    return (view[2 * i] << 8) | view[2 * i + 1]


def rs1024_verify(indices: memoryview, count: int) -> bool:
    """Check the SLIP-39 RS1024 checksum of ``count`` word indices (2 bytes each, big-endian).

    The customization string follows the extendable flag (bit 4 of the second word).
    Delegates to :func:`core.shamir.rs1024.polymod_words` (byte-sized state, no big ints).
    """
    if count < 2:
        return False
    extendable = bool((indices[3] >> 4) & 1)
    return polymod_words(customization(extendable), indices[: 2 * count])


@contextmanager
def _indices_view(indices: SecretBuffer | memoryview) -> Iterator[memoryview]:
    if isinstance(indices, SecretBuffer):
        with indices.view() as mv:
            yield mv
    else:
        yield indices


def indices_to_payload(
    indices: SecretBuffer | memoryview, *, alloc: Alloc = _default_alloc
) -> SecretBuffer:
    """Write the QR payload (4 ASCII digits per word) of a share into a new locked buffer.

    Args:
        indices: the share's word indices, 2 bytes each, big-endian (a locked buffer or a
            view of one).
        alloc: allocator for the result (the keyholder passes ``state.alloc``).

    Returns:
        A SecretBuffer of ``4 * word_count`` ASCII digits.

    Raises:
        QRPayloadError: the buffer does not hold a valid number of words or an index is
            out of range.
    """
    size = len(indices)
    if size % 2 or size // 2 not in VALID_WORD_COUNTS:
        raise QRPayloadError(f"a share has 20 or 33 words (got {size // 2}); nothing was encoded")
    count = size // 2
    out = alloc(DIGITS_PER_WORD * count)
    try:
        with _indices_view(indices) as src, out.view() as dst:
            for i in range(count):
                v = _word(src, i)
                if v >= RADIX:
                    raise QRPayloadError(f"word {i + 1} is outside the 1024-word list")
                base = DIGITS_PER_WORD * i
                dst[base + 3] = _ZERO + v % 10
                v //= 10
                dst[base + 2] = _ZERO + v % 10
                v //= 10
                dst[base + 1] = _ZERO + v % 10
                dst[base] = _ZERO + v // 10
    except BaseException:
        out.close()
        raise
    return out


def validate_payload(payload: memoryview | bytes | bytearray) -> int:
    """Validate a share QR payload without copying it; return its word count.

    Checks, in order: length (80 or 132 digits for 20 or 33 words), digits only, each word
    index below 1024, the SLIP-39 RS1024 checksum.

    Raises:
        QRPayloadError: with a message that says what is wrong (never the content).
    """
    n = len(payload)
    if n % DIGITS_PER_WORD or n // DIGITS_PER_WORD not in VALID_WORD_COUNTS:
        raise QRPayloadError(
            f"this QR code holds {n} characters; a share QR holds 80 digits (20 words) "
            "or 132 digits (33 words). Scan the share QR printed on the custodian's card."
        )
    for i in range(n):
        c = payload[i]
        if not _ZERO <= c <= _ZERO + 9:
            raise QRPayloadError(
                "this QR code is not a share: it contains characters other than digits"
            )
    count = n // DIGITS_PER_WORD
    for w in range(count):
        b = DIGITS_PER_WORD * w
        v = (
            (payload[b] - _ZERO) * 1000
            + (payload[b + 1] - _ZERO) * 100
            + (payload[b + 2] - _ZERO) * 10
            + (payload[b + 3] - _ZERO)
        )
        if v >= RADIX:
            raise QRPayloadError(
                f"word {w + 1} of this QR code is beyond the 1024-word list: "
                "it is not a SLIP-39 share"
            )
    return count


def payload_to_indices(
    payload: memoryview | bytes | bytearray, *, alloc: Alloc = _default_alloc
) -> SecretBuffer:
    """Validate a QR payload and convert it to word indices in a new locked buffer.

    Args:
        payload: the decoded QR content (ASCII digits). Pass a memoryview of a locked
            buffer when you have one; a decoder's ``bytes`` is accepted (the caller drops it
            right after, see the module docstring).
        alloc: allocator for the result.

    Returns:
        A SecretBuffer of ``2 * word_count`` bytes (big-endian word indices).

    Raises:
        QRPayloadError: length, characters, word range or checksum are wrong.
    """
    count = validate_payload(payload)
    out = alloc(2 * count)
    try:
        with out.view() as dst:
            for w in range(count):
                b = DIGITS_PER_WORD * w
                v = (
                    (payload[b] - _ZERO) * 1000
                    + (payload[b + 1] - _ZERO) * 100
                    + (payload[b + 2] - _ZERO) * 10
                    + (payload[b + 3] - _ZERO)
                )
                dst[2 * w] = v >> 8
                dst[2 * w + 1] = v & 0xFF
            ok = rs1024_verify(dst, count)
        if not ok:
            raise QRPayloadError(
                "the checksum of this QR code's share does not match: the code is damaged "
                "or was not made from a SLIP-39 share. Try another print or type the words."
            )
    except BaseException:
        out.close()
        raise
    return out


class _LockedNumeric(qrcode.util.QRData):  # type: ignore[misc]
    """A numeric-mode segment that reads its digits from a memoryview.

    ``qrcode.util.QRData`` would first turn the data into ``bytes``; this subclass never
    does, and writes 3 digits (at most 10 bits) at a time into the library's bit buffer.
    """

    def __init__(self, digits: memoryview) -> None:  # no super().__init__: it copies
        self.mode = qrcode.util.MODE_NUMBER
        self.data = b""
        self._digits = digits

    def __len__(self) -> int:
        return len(self._digits)

    def write(self, buffer: Any) -> None:
        d = self._digits
        n = len(d)
        for i in range(0, n, 3):
            k = min(3, n - i)
            v = 0
            for j in range(i, i + k):
                v = v * 10 + (d[j] - _ZERO)
            buffer.put(v, qrcode.util.NUMBER_LENGTH[k])

    def __repr__(self) -> str:
        return "<share digits>"


@dataclass
class QRMatrix:
    """A QR symbol's modules in locked memory (1 byte per module, 1 = dark).

    Attributes:
        modules: ``size * size`` bytes, row-major, quiet zone not included.
        size: modules per side (29 for version 3, 33 for version 4).
        version: the QR version (public).
        ec_level: the error-correction level letter (public).
    """

    modules: SecretBuffer
    size: int
    version: int
    ec_level: str = "M"

    def close(self) -> None:
        """Wipe the modules."""
        self.modules.close()

    def __enter__(self) -> QRMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def rows(self) -> Iterator[memoryview]:
        """A view of the modules (``size * size`` bytes)."""
        with self.modules.view() as mv:
            yield mv


def make_matrix(indices: SecretBuffer | memoryview, *, alloc: Alloc = _default_alloc) -> QRMatrix:
    """Build the QR matrix of a share (numeric mode, level M, smallest version).

    33 words give version 4, 20 words version 3.

    Args:
        indices: the share's word indices (2 bytes each, big-endian).
        alloc: allocator for the payload and module buffers.

    Raises:
        QRPayloadError: the share is not a valid word-index sequence.
    """
    payload = indices_to_payload(indices, alloc=alloc)
    qr = qrcode.QRCode(version=None, error_correction=ERROR_CORRECT_M, border=0)
    try:
        with payload.view() as digits:
            qr.add_data(_LockedNumeric(digits))
            qr.make(fit=True)
            # Drop the library's reference to our view before the view is released.
            qr.data_list = []
        size = qr.modules_count
        mods = alloc(size * size)
        try:
            with mods.view() as mv:
                for r, row in enumerate(qr.modules):
                    base = r * size
                    for c, dark in enumerate(row):
                        mv[base + c] = 1 if dark else 0
        except BaseException:
            mods.close()
            raise
        return QRMatrix(modules=mods, size=size, version=int(qr.version))
    finally:
        qr.clear()
        qr.modules = [[]]
        payload.close()


def _dark(mv: memoryview, size: int, border: int, r: int, c: int) -> bool:
    r -= border
    c -= border
    if 0 <= r < size and 0 <= c < size:
        return mv[r * size + c] == 1
    return False


def render_terminal(
    matrix: QRMatrix,
    *,
    border: int = 2,
    light_on_dark: bool = True,
    alloc: Alloc = _default_alloc,
) -> SecretBuffer:
    """Render the QR as text with half blocks (2 modules per character cell, vertically).

    A console cell is about twice as tall as wide, so one column and half a row per module
    makes square modules. Version 4 with a 2-module quiet zone is 37 columns by 19 rows and
    fits an 80x24 screen. The glyphs are U+2588 full block, U+2580 upper half block and
    U+2584 lower half block, all in the Linux console's default font (and CP437).

    Args:
        matrix: the QR modules.
        border: quiet zone in modules (the standard asks for 4; scanners read 2 on a screen).
        light_on_dark: the terminal draws light glyphs on a dark background (the Linux
            console does): light modules are drawn as blocks, dark ones left as background.
            False for dark text on a light background.
        alloc: allocator for the result.

    Returns:
        A SecretBuffer holding the UTF-8 text, rows separated by ``\\n`` and padded with
        zero bytes at the end (:func:`text_length` gives the text's length).
    """
    size = matrix.size
    full = size + 2 * border
    rows = (full + 1) // 2
    # 3 UTF-8 bytes per block glyph (space is 1, but reserve the worst case) + newline.
    out = alloc(rows * (full * 3 + 1))
    try:
        with matrix.rows() as mv, out.view() as dst:

            def lit(r: int, c: int) -> bool:
                if r >= full:
                    return False  # below the symbol: background
                return _dark(mv, size, border, r, c) != light_on_dark

            pos = 0
            for rr in range(rows):
                for c in range(full):
                    key = (lit(2 * rr, c), lit(2 * rr + 1, c))
                    g = _GLYPH_BYTES[key]
                    dst[pos : pos + len(g)] = g
                    pos += len(g)
                dst[pos] = 0x0A
                pos += 1
    except BaseException:
        out.close()
        raise
    return out


def public_text(data: str, *, border: int = 1) -> str:
    """A PUBLIC value (the journal's final hash) as a QR in half blocks, dark modules
    drawn as blocks (the TUI's modal shows dark on light). Never for a share: shares use
    :func:`make_matrix` and :func:`render_terminal` (locked memory, numeric mode)."""
    q = qrcode.QRCode(border=border, error_correction=ERROR_CORRECT_M)
    q.add_data(data.upper())
    q.make(fit=True)
    m = q.get_matrix()
    full = len(m)

    def lit(r: int, c: int) -> bool:
        return r < full and bool(m[r][c])

    return "\n".join(
        "".join(_GLYPH[(lit(2 * rr, c), lit(2 * rr + 1, c))] for c in range(full))
        for rr in range((full + 1) // 2)
    )


def text_length(buf: SecretBuffer) -> int:
    """Length of the text in a buffer returned by :func:`render_terminal` (up to the first 0)."""
    with buf.view() as mv:
        n = mv.nbytes
        for i in range(n - 1, -1, -1):
            if mv[i] != 0:
                return i + 1
    return 0


def render_image(matrix: QRMatrix, *, scale: int = 8, border: int = 4) -> Image.Image:
    """Render the QR as a black-on-white grayscale image (for printed share cards)."""
    size = matrix.size
    full = size + 2 * border
    img = Image.new("L", (full * scale, full * scale), 255)
    draw = ImageDraw.Draw(img)
    with matrix.rows() as mv:
        for r in range(size):
            for c in range(size):
                if mv[r * size + c]:
                    x = (c + border) * scale
                    y = (r + border) * scale
                    draw.rectangle((x, y, x + scale - 1, y + scale - 1), fill=0)
    return img


def png_bytes(matrix: QRMatrix, *, scale: int = 8, border: int = 4) -> bytes:
    """The QR as PNG bytes for a printed share card (a residue by nature; see module doc)."""
    bio = io.BytesIO()
    render_image(matrix, scale=scale, border=border).save(bio, format="PNG")
    return bio.getvalue()


def console_image(
    text: str, *, cell_w: int = 8, cell_h: int = 16, fg: int = 0xAA, bg: int = 0
) -> Image.Image:
    """Draw terminal text made of block glyphs as the Linux console shows it.

    Each character cell is ``cell_w`` x ``cell_h`` pixels (the console's 8x16 font); a full
    block lights the whole cell, an upper/lower half block the top/bottom half. The default
    colours are the console's light grey on black. Used to prove a rendered share QR is
    scannable from the screen.
    """
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    width = max((len(x) for x in lines), default=0)
    img = Image.new("L", (width * cell_w, len(lines) * cell_h), bg)
    draw = ImageDraw.Draw(img)
    half = cell_h // 2
    for r, line in enumerate(lines):
        for c, ch in enumerate(line):
            x0, y0 = c * cell_w, r * cell_h
            if ch == "\u2588":
                draw.rectangle((x0, y0, x0 + cell_w - 1, y0 + cell_h - 1), fill=fg)
            elif ch == "\u2580":
                draw.rectangle((x0, y0, x0 + cell_w - 1, y0 + half - 1), fill=fg)
            elif ch == "\u2584":
                draw.rectangle((x0, y0 + half, x0 + cell_w - 1, y0 + cell_h - 1), fill=fg)
            elif ch != " ":
                raise ValueError(f"unexpected glyph U+{ord(ch):04X} in QR text")
    return img


#: The glyphs :func:`render_terminal` uses (the console font must have them).
QR_GLYPHS: Final = frozenset({0x2580, 0x2584, 0x2588})


def psf_unicode_table(data: bytes) -> set[int]:
    """The code points a PSF1/PSF2 console font maps (its Unicode table).

    For preflight: the ISO's console font must contain :data:`QR_GLYPHS`. Debian's
    ``Lat15-*``/``Uni2-Fixed16`` fonts do not have the half blocks; the kernel's built-in
    VGA font and e.g. ``Vietnamese-Terminus16`` (also with light and heavy box lines) do.

    Args:
        data: the font file's bytes (already gunzipped).
    """
    out: set[int] = set()
    if data[:2] == b"\x36\x04":  # PSF1
        mode, _charsize = data[2], data[3]
        count = 512 if mode & 0x01 else 256
        if not mode & 0x06:
            return out
        pos = 4 + count * data[3]
        while pos + 1 < len(data):
            v = data[pos] | (data[pos + 1] << 8)
            pos += 2
            if v not in (0xFFFF, 0xFFFE):
                out.add(v)
        return out
    if data[:4] == b"\x72\xb5\x4a\x86":  # PSF2
        hdr = [int.from_bytes(data[4 * i : 4 * i + 4], "little") for i in range(8)]
        _magic, _ver, headersize, flags, length, charsize = hdr[:6]
        if not flags & 0x01:
            return out
        table = data[headersize + length * charsize :]
        for entry in table.split(b"\xff"):
            first = entry.split(b"\xfe")[0]
            out.update(ord(ch) for ch in first.decode("utf-8", "ignore"))
        return out
    raise ValueError("not a PSF console font")


#: Glyphs of the transcription view (:func:`render_transcription`): every Linux console font
#: has them (Lat15, Uni2 and Terminus fonts, the kernel's VGA font), unlike the half blocks.
TRANSCRIBE_GLYPHS: Final = frozenset({0x2588, 0x2592, 0x00B7})
_FILL: Final = "\u2588\u2588".encode()  # a dark module the custodian fills in
_PRINTED: Final = "\u2592\u2592".encode()  # a dark module printed on every grid card
_BLANK: Final = "\u00b7 ".encode()  # a light module: leave the square blank
#: Lines of a transcription page besides the module rows: title, part line, two ruler
#: lines, legend, key prompt.
_PAGE_FRAME_LINES: Final = 6
_LABEL: Final = 3  # "33 " before and " 33" after each module row


@dataclass(frozen=True)
class TranscriptionLayout:
    """How a QR is split into parts that fit the custodian's terminal (public).

    Attributes:
        size: modules per side.
        parts: ``(first_row, last_row)`` of each part, 0-based and inclusive; consecutive
            parts share one row so the custodian can line them up.
        width: columns one page needs.
        height: lines one page needs.
    """

    size: int
    parts: tuple[tuple[int, int], ...]
    width: int
    height: int


def transcription_layout(size: int, cols: int = 80, lines: int = 24) -> TranscriptionLayout:
    """Split a ``size`` x ``size`` QR into row bands that fit a ``cols`` x ``lines`` terminal.

    Each module is two character cells wide and one line high (a console cell is about twice
    as tall as wide, so a module is square), with row numbers left and right and column
    numbers above. At 80x24 a 33x33 code takes two parts (rows 1-17 and 17-33), a 29x29
    code two parts (rows 1-15 and 15-29); a terminal of 39 lines or more shows it whole.

    Raises:
        ValueError: the terminal is too small for a readable view (the message says so).
    """
    width = 2 * _LABEL + 2 * size
    band = lines - _PAGE_FRAME_LINES
    if cols < width or band < 8:
        raise ValueError(
            f"the custodian terminal is {cols}x{lines}; copying a {size}x{size} share QR "
            f"needs at least {width}x{_PAGE_FRAME_LINES + 8}: enlarge it"
        )
    if band >= size:
        parts: tuple[tuple[int, int], ...] = ((0, size - 1),)
    else:
        count = -(-(size - 1) // (band - 1))
        per = -(-(size + count - 1) // count)  # rows per part, one shared row between parts
        bands: list[tuple[int, int]] = []
        start = 0
        while start < size - 1 or not bands:
            end = min(start + per - 1, size - 1)
            bands.append((start, end))
            start = end
        parts = tuple(bands)
    rows = max(b - a + 1 for a, b in parts)
    return TranscriptionLayout(size, parts, width, rows + _PAGE_FRAME_LINES)


def _ruler(size: int, odd: bool) -> bytes:
    line = bytearray(b" " * _LABEL)
    for c in range(size):
        line += f"{c + 1:>2}".encode() if (c % 2 == 0) == odd else b"  "
    return bytes(line).rstrip()


def render_transcription(
    matrix: QRMatrix,
    part: int,
    layout: TranscriptionLayout,
    *,
    title: str = "",
    alloc: Alloc = _default_alloc,
) -> SecretBuffer:
    """Render one part of the transcription view: the modules as squares to copy by hand.

    Every module is two character cells: ``██`` a dark module to fill in on the grid card,
    ``▒▒`` a dark module already printed on every card (finder, timing and alignment
    patterns), ``· `` a light module left blank. Row numbers stand left and right, column
    numbers above (odd columns on the first ruler line, even on the second). Only glyphs
    of :data:`TRANSCRIBE_GLYPHS` are used: every Linux console font has them.

    Args:
        matrix: the QR modules (locked).
        part: which part (0-based) of ``layout.parts``.
        layout: from :func:`transcription_layout`.
        title: a public heading (set, group, member, custodian).
        alloc: allocator for the result.

    Returns:
        A SecretBuffer with the page's UTF-8 text, lines separated by ``\\n`` and padded
        with zero bytes (:func:`text_length`).
    """
    size = matrix.size
    first, last = layout.parts[part]
    fixed = fixed_map(version_for_size(size))
    parts = len(layout.parts)
    head = [
        title.encode()[:79],
        (
            f"Copy onto the {size}x{size} QR grid card - part {part + 1} of {parts}: "
            f"rows {first + 1} to {last + 1}"
        ).encode()[:79],
        _ruler(size, True),
        _ruler(size, False),
    ]
    legend = "\u2588\u2588 fill the square   \u2592\u2592 printed on the card   \u00b7 leave blank".encode()
    if part + 1 < parts:
        prompt = f"Any key: part {part + 2} of {parts}".encode()
    else:
        prompt = QR_DONE_PROMPT
    if part > 0:
        prompt += b"   B: back to part " + str(part).encode()
    row_bytes = 2 * _LABEL + 2 * 3 * size + 1
    total = sum(len(h) + 1 for h in head) + (last - first + 1) * row_bytes
    total += len(legend) + 1 + len(prompt)
    out = alloc(total)
    try:
        with matrix.rows() as mv, out.view() as dst:
            pos = 0

            def put(data: bytes) -> None:
                nonlocal pos
                dst[pos : pos + len(data)] = data
                pos += len(data)

            for h in head:
                put(h + b"\n")
            for r in range(first, last + 1):
                put(f"{r + 1:>2} ".encode())
                base = r * size
                for c in range(size):
                    if fixed[base + c] == FIXED_DARK:
                        put(_PRINTED)
                    elif mv[base + c] == 1:
                        put(_FILL)
                    else:
                        put(_BLANK)
                put(f" {r + 1:<2}".encode().rstrip() + b"\n")
            put(legend + b"\n")
            put(prompt)
    except BaseException:
        out.close()
        raise
    return out


#: The last part's prompt, and the confirmation after its first Enter (issue 14: only a
#: deliberate key ends a reveal).
QR_DONE_PROMPT: Final = b"Done: Enter, then Enter again, erases the screen"
QR_CONFIRM_PROMPT: Final = b"Press Enter again to erase the screen; any other key keeps the code shown."


def show_qr(fd: int, indices: SecretBuffer | memoryview, *, title: str, wait: bool = True,
            idle: float = REVEAL_IDLE_S) -> str:
    """Show a share's QR on terminal ``fd`` (see :func:`core.carriers.qrshow.show_qr`)."""
    from core.carriers.qrshow import show_qr as _show

    return _show(fd, indices, title=title, wait=wait, idle=idle)


def show_qr_on_tty(path: str, indices: SecretBuffer | memoryview, *, title: str) -> str:
    """Open the custodian's terminal ``path`` (e.g. /dev/tty2) and show the share QR there."""
    with custodian_tty(path, "share QRs") as fd:
        return show_qr(fd, indices, title=title)
