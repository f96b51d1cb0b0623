"""Degraded share-QR images for the decoder benchmark and the decode tests.

``degrade(img, kind, strength, rnd)`` applies one kind of damage a photo, a scan or a
camera frame shows: rotation, blur, noise, perspective, JPEG, downscale, and mixtures.
Deterministic for a given ``random.Random``.
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
