"""A share QR whose third finder pattern is lost (glare): fit the grid from two, redraw it.

Both decoders locate a QR code by its three finder patterns. A lamp's reflection on one of
them hides the whole code from both, though the code's error correction (level M, about 15%
of the code words) could absorb the modules under the highlight. A share QR is always
version 4 (33x33 modules) or version 3 (29x29) at level M (:mod:`core.carriers.qr`), so
two finder patterns, the fixed patterns (:func:`core.carriers.qrgrid.fixed_map`) and the
quiet zone fix the rest:

1. **Finder patterns**: the half-size frame is binarised against the mean of a 49-pixel
   box around each pixel; runs dark-light-dark-light-dark in the ratio 1:1:3:1:1 are looked
   for along every row and every column (vectorised over all runs at once); a centre found
   in both directions is a candidate, with its module size.
2. **Placements**: each pair of candidates with similar module sizes, as far apart as two
   finders of a 33 or 29 symbol side by side (26 or 22 modules) or across (36.8 or 31.1),
   gives a few placements (which two finders they are; the code lies on one side); each is
   scored against the fixed patterns. For the best, each finder's outline (its ring's four
   corners, found with :mod:`core.carriers.gridcard`'s components and corner fit) gives
   eight point correspondences: a homography that includes the perspective.
3. **Refinement**: the symbol's four corners are moved, coarse to fine (a fixed number of
   steps), to agree best with the function patterns (finders, separators, timing,
   alignment, the dark module) and a light quiet zone on the frame's local contrast, and to
   make the data modules clearly dark or light.
4. **Redraw**: each module is sampled over its middle at full resolution and called dark or
   light against the ink and paper levels of its neighbours (re-estimated from the modules
   so classed, three rounds: a highlight changes both within a few modules); the function
   patterns are set exactly and the code is drawn black on white with a quiet zone. The
   decoders' Reed-Solomon correction absorbs what the highlight washed out; the share's own
   checksum stands behind it.

Bounded: at most :data:`MAX_FINDERS` candidates, :data:`MAX_FITS` placements refined, a
fixed schedule of refinement steps. A pure function of the pixels (no file, no state, no
thread), like the rest of the chain; it runs in the sandboxed decoder helper. The sampled
modules are the share in ordinary memory, as with the decoders (see the residue note of
:mod:`core.carriers.imagedecode`): they are overwritten once the redraw is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.carriers import gridcard
from core.carriers.qrgrid import DATA, FIXED_DARK, FIXED_LIGHT, fixed_map, version_for_size

__all__ = ["MAX_FINDERS", "MAX_FITS", "Finder", "Fit", "finders", "fits", "redraws"]

_NPArray = np.ndarray

#: Symbol sizes of share QRs (version 4: 33 words; version 3: 20 words).
SIZES: Final = (33, 29)
#: Finder candidates kept (most confirmed first).
MAX_FINDERS: Final = 6
#: Placements refined and redrawn (best first).
MAX_FITS: Final = 2
#: The binarisation compares each pixel with the mean of the 3 x 3 tiles of this many
#: half-size pixels around it (wider than a finder's dark centre).
_TILE: Final = 16
#: Narrowest finder cross-section looked for (half-size pixels): a code large enough for a
#: glare to hide a finder has at least 3 pixels a module at half size.
_MIN_WIDTH: Final = 17
#: A placement is refined only when its first score reaches this (local-contrast units,
#: 60 = one standard deviation of the neighbourhood), and redrawn when its refined score
#: does: a frame without a code scores well below (chosen on development frames).
MIN_SCORE: Final = 22.0
MIN_FIT: Final = 35.0
#: Weight of the data modules' distance from mid-grey in the score.
_DATA_WEIGHT: Final = 0.3


@dataclass(frozen=True)
class Finder:
    """A finder-pattern candidate in the half-size frame: centre, module size, hits."""

    x: float
    y: float
    module: float
    hits: int


@dataclass(frozen=True)
class Fit:
    """A placement of the symbol: its corners in the half-size frame (clockwise from the
    top-left finder's outer corner), its size in modules, its refined score."""

    corners: _NPArray
    size: int
    score: float


# --- 1. finder patterns -------------------------------------------------------------------


def _box_mean(a: _NPArray, r: int) -> _NPArray:
    """Mean of the (2r+1)^2 box around each pixel (an integral image; edges replicated)."""
    p = np.pad(a, r + 1, mode="edge").astype(np.int32)
    c = p.cumsum(0).cumsum(1)
    k = 2 * r + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    out: _NPArray = s[: a.shape[0], : a.shape[1]] * (1.0 / (k * k))
    return out


def _dark(a: _NPArray, tile: int) -> _NPArray:
    """Pixels darker than the mean of the 3 x 3 tiles around them (by 2 levels or more):
    tile sums, box-summed, compared tile by tile (no full-size array of means)."""
    h, w = a.shape
    th, tw = -(-h // tile), -(-w // tile)
    p = np.pad(a, ((0, th * tile - h), (0, tw * tile - w)), mode="edge")
    sums = p.reshape(th * tile, tw, tile).sum(axis=2, dtype=np.int32).reshape(th, tile, tw).sum(axis=1)
    q = np.pad(sums, 1, mode="edge")
    box = _sum3x3(q, th, tw)
    thr = (box // (9 * tile * tile) - 2).astype(np.int16)
    out: _NPArray = (p.reshape(th, tile, tw, tile) < thr[:, None, :, None]).reshape(th * tile, tw * tile)
    return out[:h, :w]


def _run_hits(dark: _NPArray) -> _NPArray:
    """Finder cross-sections along the rows of ``dark``: (row, centre, width) per hit."""
    h, w = dark.shape
    p = np.zeros((h, w + 2), dtype=np.int8)
    p[:, 1:-1] = dark
    flat = p.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if len(edges) < 6:
        return np.zeros((0, 3))
    starts = edges[:-1]
    lens = np.diff(edges)
    total = lens[:-4] + lens[1:-3] + lens[2:-2] + lens[3:-1] + lens[4:]
    s = starts[: len(total)]
    cand = np.flatnonzero((flat[s] == 1) & (total >= _MIN_WIDTH))
    s = s[cand]
    total = total[cand]
    win = lens[cand[:, None] + np.arange(5)]
    row = s // (w + 2)
    m = total / 7.0
    tol = m * 0.5 + 0.5
    ok = (s + total - 1) // (w + 2) == row
    for i in (0, 1, 3, 4):
        ok &= np.abs(win[:, i] - m) < tol
    ok &= np.abs(win[:, 2] - 3 * m) < 3 * tol
    idx = np.flatnonzero(ok)
    centre = s[idx] - row[idx] * (w + 2) - 1 + win[idx, 0] + win[idx, 1] + win[idx, 2] / 2.0
    return np.stack([row[idx], centre, total[idx]], axis=1).astype(np.float64)


def finders(half: _NPArray, limit: int = MAX_FINDERS) -> list[Finder]:
    """Finder-pattern candidates of a (half-size) frame, most confirmed first."""
    dark = _dark(half, _TILE)
    hor = _run_hits(dark)  # (y, x, width)
    ver = _run_hits(dark.T)  # (x, y, width)
    if not len(hor) or not len(ver):
        return []
    # a row hit is confirmed by a column hit of a similar width within 3 pixels
    cell = 3
    gh, gw = half.shape[0] // cell + 3, half.shape[1] // cell + 3
    width = np.zeros((gh, gw))
    width[(ver[:, 1] // cell).astype(np.intp) + 1, (ver[:, 0] // cell).astype(np.intp) + 1] = ver[:, 2]
    near = _max3(width)
    seen = near[(hor[:, 0] // cell).astype(np.intp) + 1, (hor[:, 1] // cell).astype(np.intp) + 1]
    pts = hor[(seen > 0.6 * hor[:, 2]) & (seen < 1.6 * hor[:, 2])]
    if not len(pts):
        return []
    # confirmed hits gathered in 4-pixel cells; a finder is a local maximum of the hits in
    # 3 x 3 cells (12 pixels), and maxima closer than two modules are one finder
    cell = 4
    gh, gw = half.shape[0] // cell + 3, half.shape[1] // cell + 3
    gy = (pts[:, 0] // cell).astype(np.intp) + 1
    gx = (pts[:, 1] // cell).astype(np.intp) + 1
    acc = np.zeros((4, gh, gw))
    for k, v in enumerate((np.ones(len(pts)), pts[:, 1], pts[:, 0], pts[:, 2])):
        np.add.at(acc[k], (gy, gx), v)
    box = _sum3x3(np.pad(acc, ((0, 0), (1, 1), (1, 1))), gh, gw)
    count = box[0]
    peaks = np.flatnonzero(((count >= _max3(count)) & (count >= 2)).ravel())
    peaks = peaks[np.argsort(-count.ravel()[peaks], kind="stable")][: 4 * limit]
    found: list[Finder] = []
    for p in peaks:
        n, sx, sy, sw = box[:, p // gw, p % gw]
        f = Finder(sx / n, sy / n, sw / n / 7.0, int(n))
        if all(abs(f.x - g.x) > 2 * g.module or abs(f.y - g.y) > 2 * g.module for g in found):
            found.append(f)
        if len(found) >= limit:
            break
    return found


def _sum3x3(p: _NPArray, h: int, w: int) -> _NPArray:
    """The sum of each 3 x 3 neighbourhood of the (already padded) last two axes of ``p``:
    an ``h`` x ``w`` result."""
    out: _NPArray = np.zeros((*p.shape[:-2], h, w), dtype=p.dtype)
    for i in range(3):
        for j in range(3):
            out += p[..., i : i + h, j : j + w]
    return out


def _max3(a: _NPArray) -> _NPArray:
    """The maximum of the 3 x 3 neighbourhood of each cell (zero outside)."""
    h, w = a.shape
    p = np.pad(a, 1)
    out: _NPArray = np.max([p[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    return out


def _finder_quad(half: _NPArray, f: Finder) -> _NPArray | None:
    """The four outer corners of the finder's dark ring (half-size pixels), or None."""
    h, w = half.shape
    r = int(5.5 * f.module) + 2
    x0, y0 = max(0, int(f.x) - r), max(0, int(f.y) - r)
    x1, y1 = min(w, int(f.x) + r + 1), min(h, int(f.y) + r + 1)
    win = half[y0:y1, x0:x1]
    if min(win.shape) < 8:
        return None
    mask = win < _box_mean(win, max(2, int(3.5 * f.module))) - 2
    rows, starts, ends, labels = gridcard._components(mask)
    px, py = f.x - x0, f.y - y0
    best: tuple[int, _NPArray] | None = None
    for lab in np.unique(labels):
        sel = labels == lab
        r_, s_, e_ = rows[sel], starts[sel], ends[sel]
        if not (r_.min() < py < r_.max() and s_.min() < px < e_.max()):
            continue  # the ring surrounds the centre
        area = int((e_ - s_).sum())
        if best is None or area > best[0]:
            best = (area, sel)
    if best is None:
        return None
    sel = best[1]
    r_, s_, e_ = rows[sel], starts[sel], ends[sel]
    r0, c0 = int(r_.min()), int(s_.min())
    comp = np.zeros((int(r_.max()) - r0 + 1, int(e_.max()) - c0), dtype=bool)
    for rr, a, b in zip(r_ - r0, s_ - c0, e_ - c0, strict=True):
        comp[rr, a:b] = True
    if not 5 * f.module < max(comp.shape) < 11 * f.module:
        return None
    pts = gridcard._outline(comp) + np.array([c0 + x0, r0 + y0], dtype=np.float64)
    quad = gridcard._corners(pts)
    if quad is None:
        return None
    centre = quad.mean(axis=0)
    d = quad - centre
    # the outline runs through the ring's edge pixels: their outer edge is half a pixel out
    out: _NPArray = quad + 0.7 * d / np.maximum(np.hypot(d[:, :1], d[:, 1:]), 1e-9)
    return out


# --- 2. placements ------------------------------------------------------------------------


def _finder_square(role: str, n: int) -> _NPArray:
    """Module coordinates of a finder's outer corners, clockwise from its top-left."""
    x0, y0 = {"TL": (0, 0), "TR": (n - 7, 0), "BL": (0, n - 7)}[role]
    return np.array([[x0, y0], [x0 + 7, y0], [x0 + 7, y0 + 7], [x0, y0 + 7]], dtype=np.float64)


def _square(n: int) -> _NPArray:
    return np.array([[0, 0], [n, 0], [n, n], [0, n]], dtype=np.float64)


#: Which two finders a pair can be: side by side (both orders) or across.
_ROLES: Final = (("TL", "TR"), ("TR", "TL"), ("TL", "BL"), ("BL", "TL"), ("TR", "BL"), ("BL", "TR"))


@cache
def _references(n: int) -> tuple[_NPArray, _NPArray, _NPArray, _NPArray]:
    """For a symbol of ``n`` modules: the centres of its function modules and of a ring of
    quiet zone around it, their signs (+1 light, -1 dark), the centres of its data modules,
    and the fixed map itself."""
    fixed = np.frombuffer(fixed_map(version_for_size(n)), dtype=np.uint8).reshape(n, n)
    rr, cc = np.nonzero(fixed != DATA)
    sign = np.where(fixed[rr, cc] == FIXED_LIGHT, 1.0, -1.0)
    ring = [(i, j) for i in range(-1, n + 1) for j in (-1, n)] + [(j, i) for i in range(n) for j in (-1, n)]
    ring_a = np.array(ring, dtype=np.float64)  # (column, row)
    pts = np.concatenate([np.stack([cc, rr], 1) + 0.5, ring_a + 0.5])
    signs = np.concatenate([sign, np.ones(len(ring_a))])
    dr, dc = np.nonzero(fixed == DATA)
    data = np.stack([dc, dr], 1) + 0.5
    return pts, signs, data.astype(np.float64), fixed


def _homographies(src: _NPArray, dst: _NPArray) -> _NPArray:
    """Homographies (B, 3, 3) taking the 4 points ``src`` to each of ``dst`` (B, 4, 2)."""
    b = dst.shape[0]
    a = np.zeros((b, 8, 8))
    rhs = np.zeros((b, 8))
    for i in range(4):
        x, y = src[i]
        u, v = dst[:, i, 0], dst[:, i, 1]
        a[:, 2 * i, 0], a[:, 2 * i, 1], a[:, 2 * i, 2] = x, y, 1
        a[:, 2 * i, 6], a[:, 2 * i, 7] = -u * x, -u * y
        a[:, 2 * i + 1, 3], a[:, 2 * i + 1, 4], a[:, 2 * i + 1, 5] = x, y, 1
        a[:, 2 * i + 1, 6], a[:, 2 * i + 1, 7] = -v * x, -v * y
        rhs[:, 2 * i], rhs[:, 2 * i + 1] = u, v
    try:
        sol = np.linalg.solve(a, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a degenerate placement (corners on a line)
        sol = np.zeros((b, 8))
        for i in range(b):
            sol[i] = np.linalg.lstsq(a[i], rhs[i], rcond=None)[0]
    return np.concatenate([sol, np.ones((b, 1))], axis=1).reshape(b, 3, 3)


def _project(hs: _NPArray, pts: _NPArray) -> _NPArray:
    """Points (P, 2) through homographies (B, 3, 3): (B, P, 2)."""
    x, y = pts[:, 0], pts[:, 1]
    den = hs[:, 2, 0, None] * x + hs[:, 2, 1, None] * y + hs[:, 2, 2, None]
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    u = (hs[:, 0, 0, None] * x + hs[:, 0, 1, None] * y + hs[:, 0, 2, None]) / den
    v = (hs[:, 1, 0, None] * x + hs[:, 1, 1, None] * y + hs[:, 1, 2, None]) / den
    return np.stack([u, v], axis=-1)


def _bilinear(img: _NPArray, uv: _NPArray) -> _NPArray:
    """``img`` at the points ``uv`` (..., 2), bilinear; points outside are clamped."""
    hh, ww = img.shape
    u = np.clip(uv[..., 0], 0.0, ww - 1.001)
    v = np.clip(uv[..., 1], 0.0, hh - 1.001)
    u0 = u.astype(np.intp)
    v0 = v.astype(np.intp)
    fu = u - u0
    fv = v - v0
    top = img[v0, u0] * (1 - fu) + img[v0, u0 + 1] * fu
    bottom = img[v0 + 1, u0] * (1 - fu) + img[v0 + 1, u0 + 1] * fu
    out: _NPArray = top * (1 - fv) + bottom * fv
    return out


def _scores(contrast: _NPArray, corners: _NPArray, n: int) -> _NPArray:
    """How well each placement (B, 4, 2) fits: the function patterns and the quiet zone
    where they should be, and the data modules clearly dark or light."""
    pts, signs, data, _ = _references(n)
    hs = _homographies(_square(n), corners)
    fixed = ((_bilinear(contrast, _project(hs, pts)) - 128.0) * signs).mean(axis=1)
    spread = np.abs(_bilinear(contrast, _project(hs, data[::2])) - 128.0).mean(axis=1)
    out: _NPArray = fixed + _DATA_WEIGHT * spread
    return out


def _placements(fs: list[Finder]) -> list[tuple[int, int, int, str, str, _NPArray]]:
    """(size, finder a, finder b, role a, role b, corners) for each placement the pairs of
    candidates allow (a similarity from the two centres)."""
    out = []
    for i, fa in enumerate(fs):
        for j in range(i + 1, len(fs)):
            fb = fs[j]
            if max(fa.module, fb.module) > 1.4 * min(fa.module, fb.module):
                continue
            za, zb = complex(fa.x, fa.y), complex(fb.x, fb.y)
            dist = abs(zb - za) / ((fa.module + fb.module) / 2)
            for n in SIZES:
                for ra, rb in _ROLES:
                    wa = complex(*_finder_square(ra, n).mean(axis=0))
                    wb = complex(*_finder_square(rb, n).mean(axis=0))
                    if abs(dist / abs(wb - wa) - 1) > 0.25:
                        continue
                    s = (zb - za) / (wb - wa)
                    t = za - s * wa
                    zs = [s * complex(x, y) + t for x, y in _square(n)]
                    out.append((n, i, j, ra, rb, np.array([[z.real, z.imag] for z in zs])))
    return out


def _with_outlines(
    corners: _NPArray, n: int, quads: tuple[_NPArray | None, _NPArray | None], roles: tuple[str, str]
) -> _NPArray:
    """The placement's corners from the two finders' outlines (8 correspondences, so a
    perspective), when both outlines match the placement; else the corners unchanged."""
    h0 = _homographies(_square(n), corners[None])[0]
    inv = np.linalg.inv(h0)
    src, dst = [], []
    for quad, role in zip(quads, roles, strict=True):
        if quad is None:
            return corners
        want = _finder_square(role, n)
        mod = _project(inv[None], quad)[0]
        dist = np.hypot(*(mod[:, None, :] - want[None, :, :]).transpose(2, 0, 1))
        k = dist.argmin(axis=1)
        if len(set(k.tolist())) < 4 or float(dist.min(axis=1).max()) > 2.5:
            return corners
        src += [want[kk] for kk in k]
        dst += list(quad)
    h = gridcard._homography(np.array(src), np.array(dst))
    out: _NPArray = _project(h[None], _square(n))[0]
    return out


def _refine(contrast: _NPArray, corners: _NPArray, n: int, module: float) -> tuple[_NPArray, float]:
    """Move the corners, coarse to fine, to the best score (a fixed schedule of steps)."""
    best = float(_scores(contrast, corners[None], n)[0])
    moves = np.array([[k, dx, dy] for k in range(4) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))])
    for step in (module, module / 2, module / 4, module / 8):
        for _ in range(6):
            cand = np.repeat(corners[None], len(moves), axis=0)
            cand[np.arange(len(moves)), moves[:, 0].astype(int)] += moves[:, 1:] * step
            sc = _scores(contrast, cand, n)
            i = int(np.argmax(sc))
            if sc[i] <= best:
                break
            best = float(sc[i])
            corners = cand[i]
    return corners, best


def fits(half: _NPArray, contrast: _NPArray, fs: list[Finder] | None = None) -> list[Fit]:
    """The best placements of a share QR symbol in the half-size frame, best first.

    Args:
        half: the frame at half size.
        contrast: its local contrast (:func:`core.carriers.imagedecode.local_contrast`
            with 8-pixel tiles: 128 = the neighbourhood's mean, 60 = one deviation).
        fs: finder candidates (default: :func:`finders`).
    """
    fs = finders(half) if fs is None else fs
    places = _placements(fs)
    if not places:
        return []
    con = contrast.astype(np.float32)
    first = []
    for n in SIZES:
        sel = [k for k, p in enumerate(places) if p[0] == n]
        if sel:
            sc = _scores(con, np.array([places[k][5] for k in sel]), n)
            first += list(zip(sc.tolist(), sel, strict=True))
    first.sort(key=lambda t: -t[0])
    quads: dict[int, _NPArray | None] = {}
    out: list[Fit] = []
    for score, k in first[:MAX_FITS]:
        if score < MIN_SCORE:
            break
        n, i, j, ra, rb, corners = places[k]
        for f in (i, j):
            if f not in quads:
                quads[f] = _finder_quad(half, fs[f])
        corners = _with_outlines(corners, n, (quads[i], quads[j]), (ra, rb))
        module = (fs[i].module + fs[j].module) / 2
        corners, best = _refine(con, corners, n, module)
        if best >= MIN_FIT:
            out.append(Fit(corners, n, best))
    out.sort(key=lambda f: -f.score)
    return out


# --- 4. the redraw ------------------------------------------------------------------------


def _modules(gray: _NPArray, fit: Fit) -> _NPArray:
    """Mean brightness over the middle of each module (4x4 points over the middle 60%), for
    the symbol and a ring of quiet zone around it: (n + 2, n + 2)."""
    n = fit.size
    half_to_full = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    h = half_to_full @ _homographies(_square(n), fit.corners[None])[0]
    k = 4
    offs = 0.2 + (np.arange(k) + 0.5) / k * 0.6
    r, c, i, j = np.meshgrid(np.arange(-1, n + 1), np.arange(-1, n + 1), offs, offs, indexing="ij")
    pts = np.stack([(c + j).ravel(), (r + i).ravel()], axis=1)
    vals = _bilinear(gray, _project(h[None], pts)[0])  # no float copy of the whole frame
    out: _NPArray = vals.reshape(n + 2, n + 2, k * k).mean(axis=2)
    vals[:] = 0
    return out


def _smoothing(size: int, sigma: float) -> _NPArray:
    """A (size, size) Gaussian smoothing matrix, rows normalised (edges handled)."""
    x = np.arange(size)
    g = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    out: _NPArray = g / g.sum(axis=1, keepdims=True)
    return out


def _classify(values: _NPArray, fixed: _NPArray, rounds: int = 3) -> _NPArray:
    """Dark (1) or light (0) for each module of ``values`` (n + 2, n + 2: the symbol with a
    ring of quiet zone): first against the middle of the lightest and darkest of its 5x5
    neighbours, then against the ink and paper levels around it, re-estimated from the
    modules so classed (Gaussian weights, 1 module); known modules keep their colour."""
    n = fixed.shape[0]
    known = np.ones((n + 2, n + 2), dtype=bool)
    known[1:-1, 1:-1] = fixed != DATA
    known_dark = np.zeros((n + 2, n + 2), dtype=bool)
    known_dark[1:-1, 1:-1] = fixed == FIXED_DARK
    win = sliding_window_view(np.pad(values, 2, mode="edge"), (5, 5)).reshape(n + 2, n + 2, 25)
    hi = np.percentile(win, 90, axis=2)
    lo = np.percentile(win, 10, axis=2)
    dark = values < (hi + lo) / 2
    dark[known] = known_dark[known]
    g = _smoothing(n + 2, 1.0)

    def smooth(x: _NPArray) -> _NPArray:
        out: _NPArray = g @ x @ g.T
        return out

    d = np.zeros(0)
    new = dark
    for _ in range(rounds):
        d = dark.astype(np.float64)
        ink = smooth(values * d) / np.maximum(smooth(d), 1e-3)
        paper = smooth(values * (1 - d)) / np.maximum(smooth(1 - d), 1e-3)
        new = np.abs(values - ink) < np.abs(values - paper)
        new[known] = known_dark[known]
        if (new == dark).all():
            break
        dark = new
    out: _NPArray = dark[1:-1, 1:-1].astype(np.uint8)
    for a in (dark, new, d, win, hi, lo):  # the share's modules: not left in freed memory
        a[...] = 0
    return out


def redraw(gray: _NPArray, fit: Fit, *, scale: int = 4, border: int = 4) -> _NPArray:
    """The code of the placement ``fit`` in the frame ``gray`` (full size), drawn black on
    white with a quiet zone of ``border`` modules, ``scale`` pixels a module."""
    n = fit.size
    fixed = _references(n)[3]
    values = _modules(gray, fit)
    mods = _classify(values, fixed)
    values[:] = 0
    mods[fixed == FIXED_DARK] = 1
    mods[fixed == FIXED_LIGHT] = 0
    canvas = np.full((n + 2 * border, n + 2 * border), 255, dtype=np.uint8)
    canvas[border : border + n, border : border + n] = np.where(mods == 1, 0, 255)
    mods[:] = 0
    out = np.ascontiguousarray(np.repeat(np.repeat(canvas, scale, axis=0), scale, axis=1))
    canvas[:] = 255
    return out


def redraws(gray: _NPArray, half: _NPArray, contrast: _NPArray) -> Iterator[_NPArray]:
    """Clean code images of the share QR in a frame, best placement first (at most
    :data:`MAX_FITS`); none when fewer than two finder patterns are seen. The caller wipes
    each image once read."""
    for fit in fits(half, contrast):
        yield redraw(gray, fit)
