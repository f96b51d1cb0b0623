"""Tile statistics of a grayscale frame for the decode chain (:mod:`core.carriers.imagedecode`):
local contrast and local range against uneven light and glare, and the half-size image.

Runs in the sandboxed decoder helper only (imported at module level with the chain, before
the helper confines itself); never in the keyholder (an import-linter contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__ = ["local_contrast", "local_range"]


def _tile_stats(a: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation around each pixel, from tile x tile block statistics
    averaged over 3x3 blocks and interpolated back to full size (CLAHE-style tiles: a few
    milliseconds for a whole frame, where a per-pixel window costs ten times more)."""
    h, w = a.shape
    th, tw = -(-h // tile), -(-w // tile)
    p = np.pad(a, ((0, th * tile - h), (0, tw * tile - w)), mode="edge").astype(np.float32)
    blocks = p.reshape(th, tile, tw, tile)
    m1 = blocks.mean(axis=(1, 3))
    m2 = (blocks * blocks).mean(axis=(1, 3))

    mean = _upsample(_spread(m1, np.add) / 9.0, tile, h, w)
    var = np.maximum(_upsample(_spread(m2, np.add) / 9.0, tile, h, w) - mean * mean, 0.0)
    return mean, np.sqrt(var)


def _upsample(x: np.ndarray, tile: int, h: int, w: int) -> np.ndarray:
    """A block grid back to an h x w image (bilinear)."""
    th, tw = x.shape
    img = Image.fromarray(x.astype(np.float32), mode="F").resize((tw * tile, th * tile), Image.Resampling.BILINEAR)
    out: np.ndarray = np.asarray(img, dtype=np.float32)[:h, :w]
    return out


def local_contrast(a: np.ndarray, tile: int) -> np.ndarray:
    """Each pixel against its neighbourhood's mean and spread: undoes uneven light and a
    glare's washed-out contrast, tile by tile, before the decoder thresholds."""
    mean, sd = _tile_stats(a, tile)
    out = 128.0 + 60.0 * (a.astype(np.float32) - mean) / (sd + 6.0)
    res: np.ndarray = np.clip(out, 0, 255).astype(np.uint8)
    return res


def local_range(a: np.ndarray, tile: int) -> np.ndarray:
    """Each pixel stretched between its neighbourhood's darkest and lightest values (tile x
    tile blocks, 3x3 blocks around): where a glare leaves dark modules only a little darker
    than the light ones, they are dark again."""
    h, w = a.shape
    th, tw = -(-h // tile), -(-w // tile)
    p = np.pad(a, ((0, th * tile - h), (0, tw * tile - w)), mode="edge")
    blocks = p.reshape(th, tile, tw, tile)
    hi_f = _upsample(_spread(blocks.max(axis=(1, 3)), np.maximum), tile, h, w)
    lo_f = _upsample(_spread(blocks.min(axis=(1, 3)), np.minimum), tile, h, w)
    out = 255.0 * (a.astype(np.float32) - lo_f) / np.maximum(hi_f - lo_f, 12.0)
    res: np.ndarray = np.clip(out, 0, 255).astype(np.uint8)
    return res


def _half(a: np.ndarray) -> np.ndarray:
    """The image at half size (2x2 block means)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    q = a[:h, :w].astype(np.uint16)
    return ((q[0::2, 0::2] + q[1::2, 0::2] + q[0::2, 1::2] + q[1::2, 1::2] + 2) // 4).astype(np.uint8)


def _spread(x: np.ndarray, op: Any) -> np.ndarray:
    """Combine each cell of a block grid with its 3x3 neighbourhood (``np.maximum``,
    ``np.minimum``, or ``np.add`` for the sum of the nine)."""
    th, tw = x.shape
    q = np.pad(x, 1, mode="edge")
    out: np.ndarray = q[0:th, 0:tw].copy()
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                out = op(out, q[dy:dy + th, dx:dx + tw])
    return out
