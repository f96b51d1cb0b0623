"""Degraded share-QR images for the decoder benchmark and the decode tests.

``degrade(img, kind, strength, rnd)`` applies one kind of damage a photo, a scan or a
camera frame shows: rotation, blur, noise, perspective, JPEG, downscale, and mixtures.
``frame(clean, kind, rnd)`` draws a 1280x720 camera frame with the share card in a desk
scene: "small" (the code at 8-20% of the frame width) and "glare" (a specular highlight
and uneven light); ``no_code_frame(rnd)`` the scene alone. All deterministic for a given
``random.Random``.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("rotate", "blur", "noise", "perspective", "jpeg", "downscale", "mixed")


def _pad(img: Image.Image, frac: float = 0.25) -> Image.Image:
    """Put the code on a larger light-grey background (a card on a desk)."""
    w, h = img.size
    pw, ph = int(w * frac), int(h * frac)
    out = Image.new("L", (w + 2 * pw, h + 2 * ph), 200)
    out.paste(img, (pw, ph))
    return out


def _perspective(img: Image.Image, s: float, rnd: random.Random) -> Image.Image:
    w, h = img.size
    d = s * 0.25

    def j() -> float:
        return rnd.uniform(0, d)

    src = [(w * j(), h * j()), (w * (1 - j()), h * j()), (w * (1 - j()), h * (1 - j())),
           (w * j(), h * (1 - j()))]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    coeffs = np.linalg.solve(np.array(a, dtype=float), np.array(b, dtype=float))
    return img.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs),
                         Image.Resampling.BICUBIC, fillcolor=200)


def degrade(img: Image.Image, kind: str, strength: float, rnd: random.Random) -> Image.Image:
    """Apply damage of ``kind`` at ``strength`` (0..1) to a clean code image."""
    g = _pad(img.convert("L"))
    if kind == "rotate":
        return g.rotate(rnd.uniform(-1, 1) * 180 * strength, Image.Resampling.BICUBIC,
                        expand=True, fillcolor=200)
    if kind == "blur":
        return g.filter(ImageFilter.GaussianBlur(0.5 + strength * 5))
    if kind == "noise":
        arr = np.asarray(g, dtype=np.float64)
        nrng = np.random.default_rng(rnd.randrange(1 << 30))
        arr = arr + nrng.normal(0, 30 + strength * 110, arr.shape)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if kind == "perspective":
        return _perspective(g, 0.3 + strength, rnd)
    if kind == "jpeg":
        bio = io.BytesIO()
        small = g.resize((g.width * 2 // 3, g.height * 2 // 3), Image.Resampling.BILINEAR)
        small.save(bio, format="JPEG", quality=max(2, int(30 - 28 * strength)))
        return Image.open(io.BytesIO(bio.getvalue())).convert("L")
    if kind == "downscale":
        f = 1.0 - 0.8 * strength
        w = max(20, int(g.width * f * 0.5))
        h = max(20, int(g.height * f * 0.5))
        return g.resize((w, h), Image.Resampling.BILINEAR)
    if kind == "mixed":
        out = degrade(img, "perspective", strength * 0.6, rnd)
        out = out.rotate(rnd.uniform(-30, 30), Image.Resampling.BICUBIC, expand=True,
                         fillcolor=200)
        out = out.filter(ImageFilter.GaussianBlur(0.5 + 2 * strength))
        arr = np.asarray(out, dtype=np.float64)
        nrng = np.random.default_rng(rnd.randrange(1 << 30))
        arr = arr * (0.6 + 0.4 * rnd.random()) + nrng.normal(0, 10 + 40 * strength, arr.shape)
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
        bio = io.BytesIO()
        out.save(bio, format="JPEG", quality=max(5, int(40 - 30 * strength)))
        return Image.open(io.BytesIO(bio.getvalue())).convert("L")
    raise ValueError(kind)


# --- camera frames: the held-out "small in frame" and "glare" classes ----------------------

#: A webcam frame (the V4L2 source asks for 1280x720).
FRAME_SIZE = (1280, 720)

#: Camera-frame classes: ``frame(clean, kind, rnd)`` draws one. "small": the code at 8-20% of
#: the frame width, anywhere in a cluttered scene. "glare": a specular highlight and uneven
#: light across a larger code. Both through the same camera model (lens blur, sensor noise,
#: MJPG compression).
FRAME_KINDS = ("small", "glare")


def _scene(rnd: random.Random, nrng: np.random.Generator) -> np.ndarray:
    """A desk under a lamp: a light gradient, low-frequency texture and clutter (dark
    edges, bars and text-like lines that a finder-pattern search must not take for a code)."""
    w, h = FRAME_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = rnd.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(ang) + yy * np.sin(ang)) / max(w, h)
    base = rnd.uniform(70, 150) + rnd.uniform(20, 70) * ramp
    tex = nrng.normal(0, 1, (h // 40 + 2, w // 40 + 2))
    tex_img = Image.fromarray(((tex - tex.min()) / (np.ptp(tex) + 1e-9) * 255).astype(np.uint8), mode="L")
    tex_up = np.asarray(tex_img.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    arr = base + (tex_up - 128) * rnd.uniform(0.05, 0.2)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    for _ in range(rnd.randint(4, 10)):  # objects on the desk
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        x1, y1 = x0 + rnd.randint(20, 300), y0 + rnd.randint(10, 200)
        d.rectangle((x0, y0, x1, y1), fill=rnd.randint(0, 255))
    for _ in range(rnd.randint(0, 3)):  # a printed page: lines of "text"
        x0, y0 = rnd.randrange(w - 200), rnd.randrange(h - 150)
        d.rectangle((x0 - 10, y0 - 10, x0 + 210, y0 + 140), fill=rnd.randint(200, 245))
        for line in range(8):
            x = x0
            while x < x0 + 200:
                ww = rnd.randint(4, 24)
                d.rectangle((x, y0 + 17 * line, x + ww, y0 + 17 * line + 7), fill=rnd.randint(10, 60))
                x += ww + rnd.randint(3, 6)
    return np.asarray(img, dtype=np.float64)


def _card(clean: Image.Image, code_px: int, rnd: random.Random, light: float = 1.0) -> tuple[Image.Image, Image.Image]:
    """The printed card: the code (its modules scaled so the symbol is ``code_px`` wide, not
    counting the quiet zone) on white paper lit at ``light`` (0..1); returns (card, mask)."""
    g = clean.convert("L")
    arr = np.asarray(g) < 128
    _rows, cols = np.nonzero(arr)
    sym = int(cols.max() - cols.min() + 1)  # the symbol's width in the clean render
    scale = code_px / sym
    size = max(8, round(g.width * scale))
    code = g.resize((size, size), Image.Resampling.BOX)
    margin = round(size * rnd.uniform(0.15, 0.5))
    paper = round(rnd.randint(215, 250) * light)
    card = Image.new("L", (size + 2 * margin, size + 2 * margin + round(size * rnd.uniform(0, 0.4))), paper)
    code_arr = np.asarray(code, dtype=np.float64) / 255.0
    ink = round(rnd.randint(15, 70) * light)
    card.paste(Image.fromarray((ink + (paper - ink) * code_arr).astype(np.uint8), mode="L"), (margin, margin))
    return card, Image.new("L", card.size, 255)


def _place(scene: np.ndarray, card: Image.Image, mask: Image.Image, rnd: random.Random,
           tilt: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Rotate, tilt (perspective) and place the card in the scene; return the frame and the
    card's bounding box."""
    w, h = FRAME_SIZE
    cw, ch = card.size
    angle = rnd.uniform(-30, 30)
    pad = int(max(cw, ch) * 0.6)
    big = Image.new("L", (cw + 2 * pad, ch + 2 * pad), 0)
    bigm = Image.new("L", big.size, 0)
    big.paste(card, (pad, pad))
    bigm.paste(mask, (pad, pad))
    if tilt > 0:
        coeffs = _tilt_coeffs(big.size, tilt, rnd)
        big = big.transform(big.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
        bigm = bigm.transform(big.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    big = big.rotate(angle, Image.Resampling.BICUBIC)
    bigm = bigm.rotate(angle, Image.Resampling.BICUBIC)
    box = bigm.getbbox() or (0, 0, *big.size)
    big, bigm = big.crop(box), bigm.crop(box)
    bw, bh = big.size
    if bw > w or bh > h:  # keep the whole card in the frame
        f = min(w / bw, h / bh) * 0.98
        big = big.resize((int(bw * f), int(bh * f)), Image.Resampling.BICUBIC)
        bigm = bigm.resize(big.size, Image.Resampling.BICUBIC)
        bw, bh = big.size
    x, y = rnd.randint(0, w - bw), rnd.randint(0, h - bh)
    a = np.asarray(bigm, dtype=np.float64) / 255.0
    out = scene.copy()
    out[y:y + bh, x:x + bw] = out[y:y + bh, x:x + bw] * (1 - a) + np.asarray(big, dtype=np.float64) * a
    return out, (x, y, x + bw, y + bh)


def _tilt_coeffs(size: tuple[int, int], s: float, rnd: random.Random) -> tuple[float, ...]:
    w, h = size

    def j() -> float:
        return rnd.uniform(0, s)

    src = [(w * j(), h * j()), (w * (1 - j()), h * j()), (w * (1 - j()), h * (1 - j())),
           (w * j(), h * (1 - j()))]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return tuple(np.linalg.solve(np.array(a, dtype=float), np.array(b, dtype=float)))


def _camera(arr: np.ndarray, rnd: random.Random, nrng: np.random.Generator, blur: float,
            sensor: float = 1.0, motion: float = 0.0) -> Image.Image:
    """Lens blur, motion blur of ``motion`` pixels, a sensor of ``sensor`` times the frame's
    resolution (cheap webcams scale up), sensor noise, MJPG compression."""
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    img = img.filter(ImageFilter.GaussianBlur(blur))
    if motion > 0:  # the card moved during the exposure
        k = max(2, round(motion))
        a = rnd.uniform(0, np.pi)
        dx, dy = np.cos(a), np.sin(a)
        acc = np.zeros((img.height, img.width))
        base = np.asarray(img, dtype=np.float64)
        for i in range(k):
            t = i - (k - 1) / 2
            acc += np.roll(base, (round(t * dy), round(t * dx)), axis=(0, 1))
        img = Image.fromarray(np.clip(acc / k, 0, 255).astype(np.uint8), mode="L")
    if sensor < 1.0:
        size = img.size
        img = img.resize((round(size[0] * sensor), round(size[1] * sensor)), Image.Resampling.BOX)
        img = img.resize(size, Image.Resampling.BILINEAR)
    noisy = np.asarray(img, dtype=np.float64) + nrng.normal(0, rnd.uniform(3, 8), (img.height, img.width))
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")
    bio = io.BytesIO()
    img.save(bio, format="JPEG", quality=rnd.randint(40, 80))
    return Image.open(io.BytesIO(bio.getvalue())).convert("L")


def frame(clean: Image.Image, kind: str, rnd: random.Random) -> Image.Image:
    """A 1280x720 camera frame showing the share card ``clean`` (a clean code render).

    ``kind`` is one of :data:`FRAME_KINDS` (or "clean": a large, flat, sharp code).
    Deterministic for a given ``random.Random``."""
    nrng = np.random.default_rng(rnd.randrange(1 << 30))
    scene = _scene(rnd, nrng)
    w, _h = FRAME_SIZE
    if kind == "small":
        code_px = round(w * rnd.uniform(0.08, 0.20))
        card, mask = _card(clean, code_px, rnd, light=rnd.uniform(0.55, 0.95))
        arr, _ = _place(scene, card, mask, rnd, tilt=rnd.uniform(0, 0.15))
        return _camera(arr, rnd, nrng, blur=rnd.uniform(1.0, 2.2), sensor=rnd.choice((1.0, rnd.uniform(0.6, 0.9))),
                       motion=rnd.choice((0.0, rnd.uniform(2, 5))))
    if kind == "glare":
        code_px = round(w * rnd.uniform(0.20, 0.40))
        card, mask = _card(clean, code_px, rnd, light=rnd.uniform(0.6, 1.0))
        # the light: one side of the card in shadow, a specular highlight on the code
        cw, ch = card.size
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float64)
        c = np.asarray(card, dtype=np.float64)
        ang = rnd.uniform(0, 2 * np.pi)
        shade = 1 - rnd.uniform(0.2, 0.5) * ((xx * np.cos(ang) + yy * np.sin(ang)) / max(cw, ch) + 0.5).clip(0, 1)
        c = c * shade
        c = c + (255 - c) * rnd.uniform(0.1, 0.4)  # veiling glare: the whole card washed out
        m0 = (cw - code_px) / 2
        for _ in range(rnd.choice((1, 1, 2))):  # the lamp's reflection on the code
            cx = rnd.uniform(m0 + 0.15 * code_px, m0 + 0.85 * code_px)
            cy = rnd.uniform(m0 + 0.15 * code_px, m0 + 0.85 * code_px)
            sx, sy = code_px * rnd.uniform(0.1, 0.28), code_px * rnd.uniform(0.1, 0.28)
            g = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
            c = c + (255 - c) * rnd.uniform(0.8, 0.97) * g
        card = Image.fromarray(np.clip(c, 0, 255).astype(np.uint8), mode="L")
        arr, _ = _place(scene, card, mask, rnd, tilt=rnd.uniform(0, 0.15))
        return _camera(arr, rnd, nrng, blur=rnd.uniform(0.3, 0.8))
    if kind == "clean":
        code_px = round(w * 0.3)
        card, mask = _card(clean, code_px, rnd)
        arr, _ = _place(scene, card, mask, random.Random(0), tilt=0)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    raise ValueError(kind)


def no_code_frame(rnd: random.Random) -> Image.Image:
    """A 1280x720 camera frame of the desk without a share code (the usual frame)."""
    nrng = np.random.default_rng(rnd.randrange(1 << 30))
    return _camera(_scene(rnd, nrng), rnd, nrng, blur=rnd.uniform(0.6, 1.6))
