"""Synthetic hand-filled QR grid cards, photographed: for the grid-card tests and benchmark.

A card is made the way a custodian makes one:

1. the blank card is the real PDF (:func:`core.printing.cards.grid_cards_pdf`) rendered to
   pixels by ``pdftoppm`` (poppler-utils) at 150 dpi, as a printer would print it;
2. the share's dark modules are blacked in by "hand": zig-zag pen strokes with a pen width
   that varies from card to card and square to square, squares off-centre (jitter),
   unevenly covered, overshooting the grid lines, an ink that is not quite black; a few
   squares are only half filled, a very few missed, and a few stray marks land on light
   squares;
3. the card is "photographed": put on a desk, seen in perspective and slightly rotated
   (some cards upside down or sideways), lit unevenly (a gradient and a glare spot),
   blurred, with sensor noise, saved as JPEG.

Deterministic: card ``i`` of ``seed`` is always the same image and share.
"""

from __future__ import annotations

import io
import random
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import shamir_mnemonic
from PIL import Image, ImageDraw, ImageFilter
from shamir_mnemonic import shamir

from core.carriers import qr
from core.carriers.qrgrid import DATA, VERSION_FOR_WORDS, fixed_map, size_for_version
from core.printing.cards import GridGeometry, grid_cards_pdf, grid_geometry
from core.secmem import SecretBuffer
from core.shamir.wordlist import indices_from_mnemonic

DPI = 150
#: Default seed of the committed corpus (tests and `make bench`).
SEED = 20261203


@cache
def blank_card(words: int = 33, paper: str = "a4") -> tuple[Image.Image, GridGeometry]:
    """The blank grid card PDF rendered at :data:`DPI` (grayscale) and its geometry."""
    pdf = grid_cards_pdf(paper=paper, words=words, count=1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "card.pdf"
        src.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", str(DPI), "-gray", "-png", "-singlefile", str(src), str(Path(tmp) / "card")],
            check=True,
            capture_output=True,
        )
        img = Image.open(Path(tmp) / "card.png").convert("L")
        img.load()
    size = size_for_version(VERSION_FOR_WORDS[words])
    return img, grid_geometry(paper, size)


def matrix_of(indices: SecretBuffer) -> np.ndarray:
    """The share's QR modules as a numpy array (test code: a copy of the share)."""
    with qr.make_matrix(indices) as mat, mat.rows() as mv:
        return np.frombuffer(bytes(mv), dtype=np.uint8).reshape(mat.size, mat.size).copy()


def hand_fill(modules: np.ndarray, rnd: random.Random, *, words: int = 33, paper: str = "a4") -> Image.Image:
    """The blank card with ``modules``' dark data squares blacked in by hand."""
    blank, geo = blank_card(words, paper)
    n = geo.size
    fixed = np.frombuffer(fixed_map((n - 17) // 4), dtype=np.uint8).reshape(n, n)
    px = DPI / 25.4
    cell = geo.cell * px
    ink = Image.new("L", blank.size, 255)
    draw = ImageDraw.Draw(ink)
    pen = rnd.uniform(0.07, 0.28) * cell  # this custodian's pen: a fineliner to a felt pen
    tone = rnd.randint(15, 90)  # this pen's ink (black to a worn grey)
    spacing = rnd.uniform(0.7, 1.6)  # strokes that overlap, or leave paper between them
    for r in range(n):
        for c in range(n):
            if fixed[r, c] != DATA:
                continue
            x0 = geo.x0 * px + c * cell
            y0 = geo.y0 * px + r * cell
            if not modules[r, c]:
                if rnd.random() < 0.008:  # a stray mark on a light square
                    cx, cy = x0 + rnd.uniform(0.2, 0.8) * cell, y0 + rnd.uniform(0.2, 0.8) * cell
                    rad = rnd.uniform(0.06, 0.15) * cell
                    draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=tone)
                continue
            roll = rnd.random()
            if roll < 0.004:
                continue  # missed
            cover = rnd.uniform(0.40, 0.60) if roll < 0.03 else rnd.uniform(0.85, 1.08)
            jx, jy = rnd.gauss(0, 0.06) * cell, rnd.gauss(0, 0.06) * cell
            w = max(1, round(pen * rnd.uniform(0.8, 1.25)))
            left = x0 + jx + rnd.uniform(0.02, 0.14) * cell
            right = x0 + jx + cell - rnd.uniform(0.02, 0.14) * cell
            top = y0 + jy + rnd.uniform(0.02, 0.12) * cell
            bottom = top + (cell - rnd.uniform(0.02, 0.12) * cell - (top - y0 - jy)) * cover
            y = top + w / 2
            step = max(1.0, w * spacing * rnd.uniform(0.85, 1.15))
            forward = True
            while y <= bottom - w / 2 + 0.5:
                slope = rnd.uniform(-0.12, 0.12) * cell
                a = (left + rnd.uniform(-0.05, 0.05) * cell, y - slope / 2)
                b = (right + rnd.uniform(-0.05, 0.05) * cell, y + slope / 2)
                shade = max(0, min(255, tone + rnd.randint(-12, 25)))
                draw.line((a, b) if forward else (b, a), fill=shade, width=w)
                forward = not forward
                y += step
    return Image.fromarray(np.minimum(np.asarray(blank), np.asarray(ink)), mode="L")


def _coeffs(dst: list[tuple[float, float]], src: list[tuple[float, float]]) -> tuple[float, ...]:
    """PIL PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return tuple(np.linalg.solve(np.array(a, dtype=float), np.array(b, dtype=float)))


def photograph(card: Image.Image, rnd: random.Random, *, strength: float = 1.0) -> Image.Image:
    """A phone/camera photo of ``card`` on a desk (see the module docstring).

    ``strength`` scales tilt, perspective, uneven light, blur and noise (1.0: the corpus;
    lower: a careful photo, for tests about something else than the reader's limits).
    """
    out_w, out_h = rnd.choice([(1200, 1600), (1200, 1600), (1600, 1200), (1280, 720), (960, 1280)])
    cw, ch = card.size
    # the card's corners in the photo: centred, filling 65-95% of the height, tilted
    fill = rnd.uniform(0.65, 0.95)
    scale = min(out_h * fill / ch, out_w * 0.95 / cw)
    hw, hh = cw * scale / 2, ch * scale / 2
    cx = out_w / 2 + rnd.uniform(-0.04, 0.04) * out_w
    cy = out_h / 2 + rnd.uniform(-0.04, 0.04) * out_h
    angle = np.radians(rnd.uniform(-10, 10) * strength + 90 * rnd.choice([0, 0, 0, 0, 1, 2, 3]))
    ca, sa = np.cos(angle), np.sin(angle)
    dst = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = sx * hw, sy * hh
        x += rnd.uniform(-0.06, 0.06) * hw * strength  # perspective: each corner moved a little
        y += rnd.uniform(-0.06, 0.06) * hh * strength
        dst.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    src = [(0.0, 0.0), (cw, 0.0), (cw, ch), (0.0, ch)]
    coeffs = _coeffs(dst, src)
    warped = card.transform((out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=0)
    mask = Image.new("L", card.size, 255).transform(
        (out_w, out_h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=0
    )
    nrng = np.random.default_rng(rnd.randrange(1 << 30))
    desk_tone = rnd.uniform(40, 170)
    desk = np.clip(desk_tone + nrng.normal(0, 12, (out_h // 8, out_w // 8)), 0, 255).astype(np.uint8)
    desk_img = Image.fromarray(desk, mode="L").resize((out_w, out_h), Image.Resampling.BILINEAR)
    scene = np.asarray(Image.composite(warped, desk_img, mask), dtype=np.float64)
    # light: a gradient across the photo and a soft glare spot
    yy, xx = np.mgrid[0:out_h, 0:out_w]
    t = rnd.uniform(0, 2 * np.pi)
    g = ((xx - out_w / 2) * np.cos(t) + (yy - out_h / 2) * np.sin(t)) / max(out_w, out_h)
    low = 1 - rnd.uniform(0.1, 0.45) * strength
    scene *= low + (1 - low) * (g + 0.5)
    gx, gy = rnd.uniform(0.2, 0.8) * out_w, rnd.uniform(0.2, 0.8) * out_h
    gr = rnd.uniform(0.08, 0.2) * max(out_w, out_h)
    scene += rnd.uniform(0, 60) * strength * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * gr * gr))
    img = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8), mode="L")
    img = img.filter(ImageFilter.GaussianBlur(rnd.uniform(0.5, 0.5 + 1.5 * strength)))
    arr = np.asarray(img, dtype=np.float64) + nrng.normal(0, rnd.uniform(2, 7) * strength, (out_h, out_w))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    bio = io.BytesIO()
    img.save(bio, format="JPEG", quality=rnd.randint(90 - round(35 * strength), 90))
    return Image.open(io.BytesIO(bio.getvalue())).convert("L")


@dataclass
class Card:
    """One synthetic card: the photo and the share it holds."""

    index: int
    words: int
    photo: Image.Image
    share: SecretBuffer
    reference: bytes  # the share's word indices (test code)


def share_for(rnd: random.Random, words: int) -> SecretBuffer:
    """A throwaway SLIP-39 share of ``words`` words (128-bit secret for 20, 256-bit for 33)."""
    secret = rnd.randbytes(32 if words == 33 else 16)
    # the reference package draws its share coefficients and set id from `secrets`:
    # feed it this card's random stream instead, so that the corpus is the same every run
    saved = shamir.RANDOM_BYTES
    shamir.RANDOM_BYTES = rnd.randbytes
    try:
        m = shamir_mnemonic.generate_mnemonics(1, [(2, 3)], secret, iteration_exponent=0)[0]
    finally:
        shamir.RANDOM_BYTES = saved
    return indices_from_mnemonic(m[rnd.randrange(3)])


def cards(count: int = 40, *, seed: int = SEED, words: tuple[int, ...] = (33, 33, 33, 20)) -> Iterator[Card]:
    """``count`` cards; the word counts cycle through ``words`` (3 of 4 are 33-word cards)."""
    for i in range(count):
        rnd = random.Random(seed * 1000 + i)
        w = words[i % len(words)]
        share = share_for(rnd, w)
        with share.view() as mv:
            ref = bytes(mv)
        photo = photograph(hand_fill(matrix_of(share), rnd, words=w), rnd)
        yield Card(i, w, photo, share, ref)


def read_screen(raw: bytes) -> np.ndarray:
    """The QR modules a custodian reads off the transcription display (all parts).

    ``raw`` is everything :func:`core.carriers.qr.show_qr` wrote; squares printed on the
    card (``▒▒``) count as dark, as they are on the card.
    """
    rows: dict[int, list[int]] = {}
    for page in raw.split(qr.CLEAR):
        for line in page.decode("utf-8").split("\r\n"):
            head = line[:3].strip()
            if not head.isdigit() or len(line) < 5:
                continue
            body = line[3:]
            cells = []
            for k in range(0, len(body) - 1, 2):
                pair = body[k : k + 2]
                if pair in ("\u2588\u2588", "\u2592\u2592"):
                    cells.append(1)
                elif pair == "\u00b7 ":
                    cells.append(0)
                else:
                    break
            rows[int(head)] = cells
    n = len(rows)
    if n not in (29, 33) or sorted(rows) != list(range(1, n + 1)):
        raise ValueError(f"rows seen on the screen: {sorted(rows)}")
    return np.array([rows[r][:n] for r in range(1, n + 1)], dtype=np.uint8)
