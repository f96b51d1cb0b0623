"""Reading a hand-filled QR grid card: find the grid, sample each square, redraw the code.

QR decoders expect crisp modules; a grid card (:mod:`core.printing.cards`) has printed grid
lines, numbers, and modules blacked in by hand (uneven fill, strokes that stray over the
lines, a square left half empty). This stage turns a photo of such a card into a clean
QR image that the decoders of :mod:`core.carriers.imagedecode` read:

1. **Shading**: the paper's brightness is estimated (a max filter on a reduced image) and
   the photo divided by it, so that a shadow or a lamp's gradient does not matter.
2. **The frame**: dark pixels are grouped into connected components; the card's frame is
   the large, thin, closed one that does not touch the image border. Its outer outline is
   four straight lines (any rotation, moderate perspective): least-squares lines through
   the outline, intersected, give the four corners.
3. **The grid**: a perspective transform maps card coordinates (in squares, from
   :data:`core.carriers.qrgrid.FRAME_GAP` and :data:`~core.carriers.qrgrid.FRAME_WIDTH`)
   to the photo, for both card sizes (29 and 33 squares). Each square is sampled over its
   middle (away from the grid lines) and classed dark or light by a threshold between
   the two populations (Otsu).
4. **Check**: the size and the orientation (0, 90, 180, 270 degrees) that agree best with
   the patterns printed on every card win; if fewer than 85% of them agree, this is not a
   grid card (``ValueError``). The printed patterns are then set exactly, and the code is
   drawn black on white with a quiet zone: a clean image for the decoders. The decoders'
   error correction (level M) and the share's checksum deal with the few squares misread.

A pure function of pixels: no file access, no state. Like the decoders it sees the share
as pixels and numbers in ordinary memory; it runs only inside the keyholder process (see
the residue note of :mod:`core.carriers.imagedecode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image, ImageFilter

from core.carriers.qrgrid import (
    DATA,
    FIXED_DARK,
    FIXED_LIGHT,
    FRAME_GAP,
    FRAME_WIDTH,
    fixed_map,
    version_for_size,
)

__all__ = ["CARD_SIZES", "GridRead", "read_card", "rebuild"]

#: Grid sizes a card can have (29x29 for 20 words, 33x33 for 33 words).
CARD_SIZES: Final = (33, 29)
#: Longest side of the image used to find the frame.
_FIND_SIDE: Final = 800
#: Longest side of the image sampled.
_SAMPLE_SIDE: Final = 1800
#: Fraction of the printed patterns that must agree for an image to count as a grid card.
MIN_AGREEMENT: Final = 0.85
_NPArray = np.ndarray


@dataclass
class GridRead:
    """What :func:`read_card` found (public figures besides ``modules``).

    Attributes:
        modules: ``size`` x ``size`` array, 1 = dark (this IS the share: drop it soon).
        size: squares per side.
        agreement: fraction of the printed patterns read as printed.
        rotation: quarter turns applied to bring the card upright.
        margin: how far the average square is from the threshold (0..1; low = doubtful).
    """

    modules: _NPArray
    size: int
    agreement: float
    rotation: int
    margin: float


# --- image preparation --------------------------------------------------------------------


def _gray(img: Image.Image, side: int) -> tuple[Image.Image, float]:
    g = img if img.mode == "L" else img.convert("L")
    scale = min(1.0, side / max(g.size))
    if scale < 1.0:
        g = g.resize(
            (max(1, round(g.width * scale)), max(1, round(g.height * scale))),
            Image.Resampling.BOX,
        )
    return g, scale


def _normalised(g: Image.Image) -> _NPArray:
    """The image divided by the paper's brightness (1.0 = paper, ~0.1 = ink)."""
    small_side = 96
    f = min(1.0, small_side / max(g.size))
    small = g.resize((max(3, round(g.width * f)), max(3, round(g.height * f))), Image.Resampling.BOX)
    paper = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.BoxBlur(2))
    paper = paper.resize(g.size, Image.Resampling.BILINEAR)
    a = np.asarray(g, dtype=np.float32)
    p = np.maximum(np.asarray(paper, dtype=np.float32), 8.0)
    out: _NPArray = np.clip(a / p, 0.0, 1.5)
    return out


# --- connected components (union-find over row runs) --------------------------------------


def _runs(mask: _NPArray) -> tuple[_NPArray, _NPArray, _NPArray]:
    """Runs of True per row: (row, start, end-exclusive)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rs, cs = np.nonzero(d == 1)
    re_, ce = np.nonzero(d == -1)
    # both lists are in row-major order, one start and one end per run
    assert len(rs) == len(re_)
    return rs, cs, ce


def _components(mask: _NPArray) -> tuple[_NPArray, _NPArray, _NPArray, _NPArray]:
    """Label 8-connected components; returns (rows, starts, ends, label per run)."""
    rows, starts, ends = _runs(mask)
    n = len(rows)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n:
        row_first = np.searchsorted(rows, np.arange(int(rows[-1]) + 2))
        for i in range(n):
            r = int(rows[i])
            if r == 0:
                continue
            a, b = int(row_first[r - 1]), int(row_first[r])
            if a == b:
                continue
            # runs of the row above overlapping [start-1, end+1) (8-connectivity)
            s, e = int(starts[i]), int(ends[i])
            lo = a + int(np.searchsorted(ends[a:b], s, side="left"))
            for j in range(lo, b):
                if starts[j] > e:
                    break
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    labels = np.array([find(i) for i in range(n)], dtype=np.int64)
    return rows, starts, ends, labels


# --- the frame ----------------------------------------------------------------------------


def _frame_candidates(mask: _NPArray) -> list[_NPArray]:
    """Outline points (x, y) of components shaped like the card's frame, largest first."""
    h, w = mask.shape
    rows, starts, ends, labels = _components(mask)
    if not len(rows):
        return []
    uniq, inv = np.unique(labels, return_inverse=True)
    count = np.bincount(inv, weights=(ends - starts)).astype(np.float64)
    rmin = np.full(len(uniq), h)
    rmax = np.zeros(len(uniq), dtype=np.int64)
    cmin = np.full(len(uniq), w)
    cmax = np.zeros(len(uniq), dtype=np.int64)
    np.minimum.at(rmin, inv, rows)
    np.maximum.at(rmax, inv, rows)
    np.minimum.at(cmin, inv, starts)
    np.maximum.at(cmax, inv, ends - 1)
    bw = cmax - cmin + 1
    bh = rmax - rmin + 1
    area = bw * bh
    ok = (
        (bw >= 0.15 * min(h, w))
        & (bh >= 0.15 * min(h, w))
        & (bw <= 2.5 * bh)
        & (bh <= 2.5 * bw)
        & (count <= 0.4 * area)
        & (rmin > 0)
        & (cmin > 0)
        & (rmax < h - 1)
        & (cmax < w - 1)
    )
    out = []
    for k in np.argsort(-area):
        if not ok[k]:
            continue
        sel = inv == k
        r0, c0 = int(rmin[k]), int(cmin[k])
        comp = np.zeros((int(bh[k]), int(bw[k])), dtype=bool)
        for r, a, b in zip(rows[sel] - r0, starts[sel] - c0, ends[sel] - c0, strict=True):
            comp[r, a:b] = True
        out.append(_outline(comp) + np.array([c0, r0], dtype=np.float64))
        if len(out) >= 4:
            break
    return out


def _outline(comp: _NPArray) -> _NPArray:
    """Outer outline points (x, y) of a component: the first and last pixel of each row
    and of each column."""
    pts = []
    for axis in (1, 0):
        has = comp.any(axis=axis)
        idx = np.nonzero(has)[0]
        first = np.argmax(comp, axis=axis)[idx]
        last = comp.shape[axis] - 1 - np.argmax(np.flip(comp, axis=axis), axis=axis)[idx]
        if axis == 1:  # per row: (x = first/last column, y = row)
            pts += [np.stack([first, idx], 1), np.stack([last, idx], 1)]
        else:  # per column: (x = column, y = first/last row)
            pts += [np.stack([idx, first], 1), np.stack([idx, last], 1)]
    return np.concatenate(pts).astype(np.float64)


def _hull(pts: _NPArray) -> _NPArray:
    """Convex hull (Andrew's monotone chain), counter-clockwise in image coordinates."""
    p = np.unique(pts, axis=0)
    if len(p) < 3:
        return p
    p = p[np.lexsort((p[:, 1], p[:, 0]))]

    def half(points: _NPArray) -> list[_NPArray]:
        h: list[_NPArray] = []
        for q in points:
            while len(h) >= 2:
                a, b = h[-2], h[-1]
                if (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]) <= 0:
                    h.pop()
                else:
                    break
            h.append(q)
        return h

    lower = half(p)
    upper = half(p[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _quad_area(q: _NPArray) -> float:
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _corners(pts: _NPArray) -> _NPArray | None:
    """Four corners of the outline (clockwise from top-left as seen), or None."""
    hull = _hull(pts)
    if len(hull) < 4:
        return None
    m = len(hull)
    s = hull[:, 0] + hull[:, 1]
    d = hull[:, 0] - hull[:, 1]
    idx = sorted({int(np.argmin(s)), int(np.argmax(d)), int(np.argmax(s)), int(np.argmin(d))})
    if len(idx) < 4:
        idx = [round(i * m / 4) % m for i in range(4)]
    # local search for the largest inscribed quadrilateral
    for _ in range(20):
        changed = False
        for k in range(4):
            prev_i, next_i = idx[k - 1], idx[(k + 1) % 4]
            best, best_area = idx[k], _quad_area(hull[idx])
            j = (prev_i + 1) % m
            while j != next_i:
                trial = list(idx)
                trial[k] = j
                a = _quad_area(hull[trial])
                if a > best_area + 1e-9:
                    best, best_area = j, a
                j = (j + 1) % m
            if best != idx[k]:
                idx[k] = best
                changed = True
        if not changed:
            break
    quad = hull[idx]
    return _refine(quad, pts)


def _refine(quad: _NPArray, pts: _NPArray) -> _NPArray:
    """Fit a line to the outline points along each side; intersect neighbours."""
    lines = []
    for k in range(4):
        a, b = quad[k], quad[(k + 1) % 4]
        v = b - a
        length = float(np.hypot(*v))
        if length < 4:
            return quad
        u = v / length
        nrm = np.array([-u[1], u[0]])
        rel = pts - a
        t = rel @ u
        dist = np.abs(rel @ nrm)
        sel = (t > 0.12 * length) & (t < 0.88 * length) & (dist < max(2.0, 0.02 * length))
        p = pts[sel]
        if len(p) < 5:
            lines.append((a, u))
            continue
        c = p.mean(axis=0)
        _, _, vt = np.linalg.svd(p - c)
        lines.append((c, vt[0]))
    out = []
    for k in range(4):
        (p1, d1), (p2, d2) = lines[k - 1], lines[k]
        mat = np.array([d1, -d2]).T
        if abs(np.linalg.det(mat)) < 1e-6:
            return quad
        t = np.linalg.solve(mat, p2 - p1)
        out.append(p1 + t[0] * d1)
    return np.array(out)


# --- sampling -----------------------------------------------------------------------------


def _homography(src: _NPArray, dst: _NPArray) -> _NPArray:
    a = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.array(a, dtype=np.float64))
    h: _NPArray = vt[-1].reshape(3, 3)
    out: _NPArray = h / h[2, 2]
    return out


def _sample(norm: _NPArray, h: _NPArray, size: int) -> _NPArray:
    """Normalised brightness at k x k points over the middle of every square.

    Returns an array (size, size, k * k). The points cover the middle 70% of the square:
    the printed grid lines lie on its edges.
    """
    k = 6
    offs = 0.15 + (np.arange(k) + 0.5) / k * 0.70
    r, c, i, j = np.meshgrid(np.arange(size), np.arange(size), offs, offs, indexing="ij")
    x = c + j
    y = r + i
    den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den
    hh, ww = norm.shape
    u = np.clip(u, 0, ww - 1.001)
    v = np.clip(v, 0, hh - 1.001)
    u0 = np.floor(u).astype(np.int64)
    v0 = np.floor(v).astype(np.int64)
    fu = u - u0
    fv = v - v0
    val = (
        norm[v0, u0] * (1 - fu) * (1 - fv)
        + norm[v0, u0 + 1] * fu * (1 - fv)
        + norm[v0 + 1, u0] * (1 - fu) * fv
        + norm[v0 + 1, u0 + 1] * fu * fv
    )
    out: _NPArray = val.reshape(size, size, k * k)
    return out


def _otsu(values: _NPArray) -> tuple[float, float, float]:
    """Otsu's split of ``values`` into two populations: (threshold, dark mean, light mean)."""
    v = np.sort(values.ravel()).astype(np.float64)
    if len(v) > 20000:  # a regular subsample is enough for a histogram split
        v = v[:: len(v) // 20000]
    n = len(v)
    csum = np.cumsum(v)
    i = np.arange(1, n)
    m0 = csum[:-1] / i
    m1 = (csum[-1] - csum[:-1]) / (n - i)
    sep = (i / n) * (1 - i / n) * (m1 - m0) ** 2
    k = int(np.argmax(sep))
    return float((v[k] + v[k + 1]) / 2), float(m0[k]), float(m1[k])


#: A square is dark when this share of its sample points is ink: a square blacked in only
#: by half is dark, a light square with a stray dot is not.
_DARK_SHARE: Final = 0.25


def _classify(samples: _NPArray, fixed: _NPArray) -> tuple[_NPArray, float, float]:
    """Dark/light per square; returns (modules, agreement with the printed patterns, margin).

    Each sample point is ink or paper (Otsu's threshold over the points of the data
    squares); a square is dark when at least :data:`_DARK_SHARE` of its points are ink.
    """
    t, _ink, _paper = _otsu(samples[fixed == DATA])
    share = (samples < t).mean(axis=2)
    dark = (share >= _DARK_SHARE).astype(np.uint8)
    printed = fixed != DATA
    want = (fixed == FIXED_DARK).astype(np.uint8)
    agree = float(np.mean(dark[printed] == want[printed]))
    margin = float(np.mean(np.abs(share[fixed == DATA] - _DARK_SHARE)))
    return dark, agree, margin


def read_card(img: Image.Image) -> GridRead:
    """Find a grid card in a photo and read its squares.

    Raises:
        ValueError: no grid card found (no frame, or the printed patterns do not agree).
    """
    if img.width < 64 or img.height < 64:
        raise ValueError("image too small for a grid card")
    small, fscale = _gray(img, _FIND_SIDE)
    snorm = _normalised(small)
    mask = snorm < 0.55
    candidates = _frame_candidates(mask)
    if not candidates:
        raise ValueError("no grid card frame in the image")
    big, bscale = _gray(img, _SAMPLE_SIDE)
    norm = _normalised(big)
    best: GridRead | None = None
    for pts in candidates:
        quad = _corners(pts)
        if quad is None:
            continue
        quad = (quad + 0.5) * (bscale / fscale) - 0.5
        for size in CARD_SIZES:
            fixed = np.frombuffer(fixed_map(version_for_size(size)), dtype=np.uint8).reshape(size, size)
            d = FRAME_GAP + FRAME_WIDTH
            card = np.array([[-d, -d], [size + d, -d], [size + d, size + d], [-d, size + d]])
            for rot in range(4):
                h = _homography(card, np.roll(quad, -rot, axis=0))
                modules, agree, margin = _classify(_sample(norm, h, size), fixed)
                if best is None or agree > best.agreement:
                    best = GridRead(modules, size, agree, rot, margin)
        if best is not None and best.agreement >= MIN_AGREEMENT:
            break
    if best is None or best.agreement < MIN_AGREEMENT:
        raise ValueError("no grid card in the image (the printed patterns were not found)")
    fixed = np.frombuffer(fixed_map(version_for_size(best.size)), dtype=np.uint8).reshape(
        best.size, best.size
    )
    best.modules[fixed == FIXED_DARK] = 1
    best.modules[fixed == FIXED_LIGHT] = 0
    return best


def rebuild(img: Image.Image, *, scale: int = 8, border: int = 4) -> Image.Image:
    """A clean QR image (black on white, quiet zone) of the grid card in ``img``.

    The decode chain's ``grid-card`` variant; the decoders read the result.

    Raises:
        ValueError: no grid card in ``img``.
    """
    read = read_card(img)
    mods = read.modules
    n = read.size
    canvas = np.full((n + 2 * border, n + 2 * border), 255, dtype=np.uint8)
    canvas[border : border + n, border : border + n] = np.where(mods == 1, 0, 255)
    read.modules[:] = 0
    out = Image.fromarray(canvas, mode="L").resize(
        ((n + 2 * border) * scale, (n + 2 * border) * scale), Image.Resampling.NEAREST
    )
    canvas[:] = 255
    return out
