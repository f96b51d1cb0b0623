"""Geometry of share QR codes on a hand-filled grid card (public facts, no secrets).

A share QR is 33x33 modules for 33 words (132 digits: version 4 at level M) and 29x29 for
20 words (80 digits: version 3 at level M). 80 digits do not fit version 2 (25x25) at any
error-correction level: numeric mode needs 4 + 9 + 267 = 280 data bits, version 2 holds
224 at level M and 272 at level L.

Every QR code of one version has the same *function patterns*: the three finder patterns
with their light separators, the two timing patterns, the alignment pattern (versions 2 and
up) and the always-dark module. A grid card prints the dark ones, so the custodian fills in
only the data and format modules, and the card carries exact anchors for the camera.

The card layout is given in *cells* (one cell = one module) so that the PDF drawing
(:mod:`core.printing.cards`), the terminal display (:func:`core.carriers.qr.show_qr`) and
the card reader (:mod:`core.carriers.gridcard`) agree: around the grid a blank gap of
:data:`FRAME_GAP` cells, then a black frame :data:`FRAME_WIDTH` cells wide.
"""

from __future__ import annotations

from functools import cache
from typing import Final

__all__ = [
    "DATA",
    "FIXED_DARK",
    "FIXED_LIGHT",
    "FRAME_GAP",
    "FRAME_WIDTH",
    "VERSION_FOR_WORDS",
    "fixed_map",
    "size_for_version",
    "version_for_size",
]

#: QR version of a share QR by word count (numeric mode, level M, smallest version).
VERSION_FOR_WORDS: Final = {20: 3, 33: 4}
#: Blank gap between the grid and the inner edge of the card's frame, in cells.
FRAME_GAP: Final = 1.0
#: Width of the card's black frame, in cells.
FRAME_WIDTH: Final = 0.75

#: :func:`fixed_map` values: a module the custodian fills in (or leaves blank) by hand,
DATA: Final = 0
#: a dark module printed on every card of this size,
FIXED_DARK: Final = 1
#: a light module of a function pattern (blank on every card).
FIXED_LIGHT: Final = 2

_ALIGNMENT_CENTRE: Final = {2: 18, 3: 22, 4: 26, 5: 30, 6: 34}


def size_for_version(version: int) -> int:
    """Modules per side of a QR version (17 + 4 * version)."""
    return 17 + 4 * version


def version_for_size(size: int) -> int:
    """The QR version of a symbol ``size`` modules wide.

    Raises:
        ValueError: ``size`` is not a QR size.
    """
    if size < 21 or (size - 17) % 4:
        raise ValueError(f"{size} is not a QR code size")
    return (size - 17) // 4


@cache
def fixed_map(version: int) -> bytes:
    """Which modules of a QR ``version`` are fixed, row-major, one byte per module.

    Values: :data:`DATA`, :data:`FIXED_DARK`, :data:`FIXED_LIGHT`. Versions 1 to 6 only
    (versions 7 and up add version-information blocks; share QRs are versions 3 and 4).

    Raises:
        ValueError: a version outside 1..6.
    """
    if not 1 <= version <= 6:
        raise ValueError(f"grid cards know QR versions 1 to 6, not {version}")
    n = size_for_version(version)
    m = bytearray(n * n)

    def put(r: int, c: int, dark: bool) -> None:
        if 0 <= r < n and 0 <= c < n:
            m[r * n + c] = FIXED_DARK if dark else FIXED_LIGHT

    for r0, c0 in ((0, 0), (0, n - 7), (n - 7, 0)):
        for dr in range(-1, 8):  # the finder and its one-module light separator
            for dc in range(-1, 8):
                inside = 0 <= dr <= 6 and 0 <= dc <= 6
                ring = dr in (0, 6) or dc in (0, 6)
                core = 2 <= dr <= 4 and 2 <= dc <= 4
                put(r0 + dr, c0 + dc, inside and (ring or core))
    for i in range(8, n - 8):
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    if version >= 2:
        a = _ALIGNMENT_CENTRE[version]
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                put(a + dr, a + dc, max(abs(dr), abs(dc)) != 1)
    put(4 * version + 9, 8, True)  # the dark module next to the lower-left format bits
    return bytes(m)
