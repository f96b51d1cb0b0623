"""Decoding share QR codes from images: the decoder chain and the frame sources.

The chain (:func:`decode_image`, the attempts in :func:`attempts`) tries zxing-cpp on the
image as given first (fastest, best on degraded images), then a fixed list of bounded
attempts: for a camera frame, local contrast and local range against glare and shade, and
candidate code regions (where zxing-cpp saw a code, then an edge-density search) cropped,
scaled and sharpened for a code small in the frame, and last a code whose third finder
pattern a highlight washed out, its grid fitted from the other two and redrawn
(:mod:`core.carriers.qrfit`); for a smaller image, denoising,
sharpening, local contrast and scaling, with zbar as well. The first result that is a valid
share payload wins. It is a pure function of the pixels: no file, device or network access
(:func:`open_image` and the frame sources do the I/O), so it can run in a sandboxed helper.
:data:`VARIANTS` and :func:`raw_decode` remain for benchmarks and diagnostics.

Residue (documented in docs/formats.md, "Share carriers"): the decoders return the payload
as ``bytes`` (zxing-cpp ``Result.bytes``, zbar ``Decoded.data``). That is unavoidable with
these libraries. In a ceremony this chain runs only in the short-lived sandboxed decoder
process (:mod:`core.carriers.decodehelper`, started by :mod:`core.carriers.sandbox`), never
in the keyholder; the bytes are converted at once to word indices in a
:class:`~core.secmem.SecretBuffer` and the reference is dropped. We never touch the
decoders' ``text`` properties (which would make a ``str`` copy too).

Frame sources: :class:`ReplayFrameSource` (tests, and a directory of images from media) and
:class:`V4L2FrameSource` (a camera through linuxpy, the ``camera`` extra) share one
interface and one pipeline, :func:`scan_frames`.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from core import safeio
from core.carriers.errors import CarrierError, QRImageUnreadable, QRNotFound, QRPayloadError
from core.carriers.imagestats import _half, local_contrast, local_range
from core.carriers.qr import Alloc, payload_to_indices
from core.secmem import SecretBuffer

__all__ = [
    "DECODERS",
    "VARIANTS",
    "DecodeOutcome",
    "FrameSource",
    "ReplayFrameSource",
    "V4L2FrameSource",
    "attempts",
    "candidates",
    "decode_file",
    "decode_image",
    "gray_array",
    "image_from_bytes",
    "local_contrast",
    "local_range",
    "open_image",
    "raw_decode",
    "scan_frames",
]

#: Largest image file accepted from media (bytes) and largest image (pixels).
MAX_FILE_BYTES: Final = 40 * 1024 * 1024
MAX_PIXELS: Final = 50_000_000


def _alloc(size: int) -> SecretBuffer:
    return SecretBuffer(size)


# --- decoders -----------------------------------------------------------------------------


def _zxing(img: Image.Image) -> list[bytes]:
    import zxingcpp

    results = zxingcpp.read_barcodes(
        img,
        formats=zxingcpp.barcode_formats_from_str("QRCode"),
        try_rotate=True,
        try_downscale=True,
    )
    return [r.bytes for r in results if r.valid]


def _zbar(img: Image.Image) -> list[bytes]:
    from pyzbar import pyzbar

    results = pyzbar.decode(img, symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [r.data for r in results]


#: Decoders in chain order.
DECODERS: Final[dict[str, Callable[[Image.Image], list[bytes]]]] = {
    "zxing-cpp": _zxing,
    "pyzbar": _zbar,
}


# --- preprocessing ------------------------------------------------------------------------


def _gray(img: Image.Image) -> Image.Image:
    return img if img.mode == "L" else img.convert("L")


def _autocontrast(img: Image.Image) -> Image.Image:
    return ImageOps.autocontrast(_gray(img), cutoff=1)


def _otsu(img: Image.Image) -> Image.Image:
    g = _gray(img)
    arr = np.asarray(g, dtype=np.uint8)
    hist = np.bincount(arr.ravel(), minlength=256).astype(np.float64)
    total = arr.size
    omega = np.cumsum(hist) / total
    mu = np.cumsum(hist * np.arange(256)) / total
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = (mu_t * omega - mu) ** 2 / (omega * (1.0 - omega))
    sigma_b = np.nan_to_num(sigma_b)
    t = int(np.argmax(sigma_b))
    return Image.fromarray(np.where(arr > t, 255, 0).astype(np.uint8), mode="L")


def _upscale(img: Image.Image) -> Image.Image:
    g = _gray(img)
    if max(g.size) > 1600:
        return g
    return g.resize((g.width * 2, g.height * 2), Image.Resampling.LANCZOS)


def _downscale(img: Image.Image) -> Image.Image:
    g = _gray(img)
    if max(g.size) < 800:
        return g
    return g.resize((g.width // 2, g.height // 2), Image.Resampling.BOX)


def _sharpen(img: Image.Image) -> Image.Image:
    return _gray(img).filter(ImageFilter.UnsharpMask(radius=3, percent=200, threshold=0))


def _median_otsu(img: Image.Image) -> Image.Image:
    return _otsu(_gray(img).filter(ImageFilter.MedianFilter(5)))


def _blur_otsu(img: Image.Image) -> Image.Image:
    return _otsu(_gray(img).filter(ImageFilter.GaussianBlur(2)))


def _identity(img: Image.Image) -> Image.Image:
    return img


def _grid_card(img: Image.Image) -> Image.Image:
    # a hand-filled QR grid card: find its grid and redraw the code cleanly (ValueError
    # when the image holds no grid card: the chain goes on with the next variant)
    from core.carriers.gridcard import rebuild

    return rebuild(img)


#: Preprocessing variants in chain order ("as-is" first).
VARIANTS: Final[dict[str, Callable[[Image.Image], Image.Image]]] = {
    "as-is": _identity,
    "grid-card": _grid_card,
    "autocontrast": _autocontrast,
    "otsu": _otsu,
    "upscale": _upscale,
    "sharpen": _sharpen,
    "median-otsu": _median_otsu,
    "blur-otsu": _blur_otsu,
    "downscale": _downscale,
}


# --- the chain ----------------------------------------------------------------------------


@dataclass
class DecodeOutcome:
    """A share decoded from an image.

    Attributes:
        indices: word indices in locked memory (2 bytes each, big-endian); the caller owns
            it and must close it.
        decoder: which decoder read it ("zxing-cpp" or "pyzbar"): public.
        variant: which preprocessing variant: public.
        attempts: decoder calls made: public.
    """

    indices: SecretBuffer
    decoder: str
    variant: str
    attempts: int

    @property
    def word_count(self) -> int:
        """Number of words in the share."""
        return self.indices.size // 2


def raw_decode(
    img: Image.Image,
    decoders: Sequence[str] = ("zxing-cpp", "pyzbar"),
    variants: Sequence[str] = tuple(VARIANTS),
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(decoder, variant, payload)`` for every code found, in chain order.

    For benchmarks and diagnostics; :func:`decode_image` is what ceremonies use.
    """
    for vname in variants:
        try:
            vimg = VARIANTS[vname](img)
        except (ValueError, OSError):
            continue
        for dname in decoders:
            for payload in DECODERS[dname](vimg):
                yield dname, vname, payload


def decode_image(
    img: Image.Image | np.ndarray,
    *,
    alloc: Alloc = _alloc,
    decoders: Sequence[str] = ("zxing-cpp", "pyzbar"),
    variants: Sequence[str] | None = None,
) -> DecodeOutcome:
    """Decode one share QR from an image through the chain.

    A pure function of the pixels (a PIL image or a grayscale / RGB array): no file, device
    or network access, so it can run in a sandboxed helper. The chain is a fixed list of
    attempts (:func:`attempts`), each a bounded amount of work, so a frame without a code
    gives up in a bounded time, the same on every run; the first payload that passes
    :func:`core.carriers.qr.payload_to_indices` (length, digits, range, checksum) wins.

    Raises:
        QRNotFound: no decoder found a QR code.
        QRPayloadError: QR codes were found but none holds a valid share (the message of the
            first rejected payload says why).

    ``variants`` (benchmarks and diagnostics) replaces the chain by the named
    :data:`VARIANTS`, in that order, e.g. ``("as-is",)`` for a decoder alone.
    """
    gray = gray_array(img)
    h, w = gray.shape
    if w < 8 or h < 8:
        raise QRNotFound(f"the image is {w}x{h} pixels: too small for a QR code")
    first_error: QRPayloadError | None = None
    n = 0
    steps = attempts(gray, decoders) if variants is None else _named_variants(gray, decoders, variants)
    for dname, vname, payloads in steps:
        n += 1
        while payloads:
            payload = payloads.pop()
            try:
                indices = payload_to_indices(payload, alloc=alloc)
            except QRPayloadError as exc:
                first_error = first_error or exc
                continue
            finally:
                del payload  # the decoder's bytes: drop the only reference now
            return DecodeOutcome(indices, dname, vname, n)
    if first_error is not None:
        raise first_error
    raise QRNotFound(
        "no QR code found in the image: hold the card flat, fill the frame with the code "
        "and avoid glare, or use another source"
    )


# --- the chain: a fixed list of attempts --------------------------------------------------

#: Images up to this size (longer side) are decoded whole; larger ones (camera frames) are
#: searched for candidate code regions, which are cropped and scaled.
WHOLE_MAX: Final = 900
#: A candidate crop is scaled so that its longer side is this many pixels (small codes in a
#: frame are upscaled to about 8 pixels a module).
CROP_SIDE: Final = 400
#: At most this many candidate regions are tried in a frame.
MAX_CANDIDATES: Final = 2


def gray_array(img: Image.Image | np.ndarray) -> np.ndarray:
    """The image as a C-contiguous 2-D ``uint8`` luma array.

    Raises:
        ValueError: an array that is not 2-D gray or 3-D RGB/RGBA.
    """
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            return np.ascontiguousarray(img, dtype=np.uint8)
        if img.ndim == 3 and img.shape[2] in (3, 4):
            rgb = img[:, :, :3].astype(np.float32)
            luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            return np.ascontiguousarray(np.clip(luma + 0.5, 0, 255).astype(np.uint8))
        raise ValueError(f"an image array of shape {img.shape} is not gray or RGB")
    return np.ascontiguousarray(np.asarray(_gray(img), dtype=np.uint8))


def _zxing_arr(a: np.ndarray, *, errors: bool = False, histogram: bool = False) -> tuple[list[bytes], list[Any]]:
    """zxing-cpp on a gray array: (valid payloads, positions of codes seen but not read).
    ``histogram``: its global-histogram binarizer instead of the local-average one."""
    import zxingcpp

    results = zxingcpp.read_barcodes(
        a,
        formats=zxingcpp.barcode_formats_from_str("QRCode"),
        try_rotate=True,
        try_downscale=True,
        binarizer=zxingcpp.Binarizer.GlobalHistogram if histogram else zxingcpp.Binarizer.LocalAverage,
        return_errors=errors,
    )
    good = [r.bytes for r in results if r.valid]
    seen = [r.position for r in results if not r.valid]
    return good, seen


def _zbar_arr(a: np.ndarray) -> list[bytes]:
    from pyzbar import pyzbar

    h, w = a.shape
    results = pyzbar.decode((a.tobytes(), w, h), symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [r.data for r in results]


def _resize(a: np.ndarray, scale: float, resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    h, w = a.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(Image.fromarray(a, mode="L").resize(size, resample), dtype=np.uint8)


def _filtered(a: np.ndarray, f: ImageFilter.Filter) -> np.ndarray:
    return np.asarray(Image.fromarray(a, mode="L").filter(f), dtype=np.uint8)


def _otsu_arr(a: np.ndarray) -> np.ndarray:
    hist = np.bincount(a.ravel(), minlength=256).astype(np.float64)
    omega = np.cumsum(hist) / a.size
    mu = np.cumsum(hist * np.arange(256)) / a.size
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = np.nan_to_num((mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega)))
    return np.where(a > int(np.argmax(sigma_b)), 255, 0).astype(np.uint8)


def candidates(gray: np.ndarray, limit: int = MAX_CANDIDATES) -> list[tuple[int, int, int, int]]:
    """Regions of a frame that may hold a code, best first, as (x0, y0, x1, y1).

    A QR code is a compact square of dense black/white edges at module pitch. The edge
    energy is averaged per 8x8 cell of the half-size frame; cells well above the frame's
    typical energy are joined into connected regions; a region too thin, too small or far
    from square (a line of text, an object's edge) is dropped; the rest are ranked by their
    energy. Pure numpy plus a small flood fill over the cell grid.
    """
    h, w = gray.shape
    f = 2 if max(h, w) > 1000 else 1
    g = gray[: h - h % f, : w - w % f]
    if f > 1:
        g = g.reshape(g.shape[0] // f, f, g.shape[1] // f, f).mean(axis=(1, 3))
    g = g.astype(np.int16)
    e: np.ndarray = np.zeros(g.shape, dtype=np.int16)
    e[:, 1:] += np.abs(np.diff(g, axis=1))
    e[1:, :] += np.abs(np.diff(g, axis=0))
    cell = 8
    ch, cw = e.shape[0] // cell, e.shape[1] // cell
    if ch < 2 or cw < 2:
        return []
    energy = e[: ch * cell, : cw * cell].reshape(ch, cell, cw, cell).mean(axis=(1, 3))
    floor = float(np.percentile(energy, 60))
    peak = float(energy.max())
    if peak < 4.0:
        return []
    thr = max(floor * 3.0, peak * 0.25, 4.0)
    mask = energy > thr
    seen = np.zeros_like(mask)
    regions: list[tuple[float, tuple[int, int, int, int]]] = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack = [(int(y0), int(x0))]
        seen[y0, x0] = True
        ys: list[int] = []
        xs: list[int] = []
        score = 0.0
        while stack:
            y, x = stack.pop()
            ys.append(y)
            xs.append(x)
            score += float(energy[y, x])
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < ch and 0 <= nx < cw and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        by0, by1, bx0, bx1 = min(ys), max(ys) + 1, min(xs), max(xs) + 1
        bh, bw = by1 - by0, bx1 - bx0
        if min(bh, bw) < 2 or len(ys) < 4 or max(bh, bw) > 3 * min(bh, bw):
            continue
        if len(ys) < 0.35 * bh * bw:  # a frame of edges around something, not a filled square
            continue
        s = cell * f
        regions.append((score, (bx0 * s, by0 * s, bx1 * s, by1 * s)))
    regions.sort(key=lambda t: -t[0])
    return [box for _, box in regions[:limit]]


def _crop(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.25) -> np.ndarray:
    """The region with a margin (the quiet zone, a cut-off edge), scaled to CROP_SIDE."""
    h, w = gray.shape
    x0, y0, x1, y1 = box
    m = int(max(x1 - x0, y1 - y0) * margin) + 4
    x0, y0, x1, y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    c = gray[y0:y1, x0:x1]
    scale = CROP_SIDE / max(c.shape)
    return _resize(c, min(scale, 4.0)) if scale > 1.05 else np.ascontiguousarray(c)


def _quad_box(pos: Any) -> tuple[int, int, int, int]:
    pts = [pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left]
    xs = [p.x for p in pts]
    ys = [p.y for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


Attempt = tuple[str, str, list[bytes]]


def attempts(gray: np.ndarray, decoders: Sequence[str] = ("zxing-cpp", "pyzbar")) -> Iterator[Attempt]:
    """Yield ``(decoder, variant, payloads)`` for each attempt of the chain, in order.

    Chosen on development sets of generated frames (other seeds than the benchmark's
    held-out ones) for what each attempt adds per millisecond:

    1. zxing-cpp on the image as given (a clean image ends here, in a few milliseconds),
       then the grid-card stage (:mod:`core.carriers.gridcard`): a hand-filled QR grid
       card, found and redrawn cleanly for the decoder.
    2. A frame (longer side over :data:`WHOLE_MAX`):
       - glare and shade: zxing-cpp on the half-size frame after local contrast, then after
         local range (a code big enough for glare keeps 4 pixels a module at half size);
       - where the code may be (regions where zxing-cpp saw a code it could not read, then
         :func:`candidates`; up to :data:`MAX_CANDIDATES`), at full resolution with a
         margin: local contrast and local range (a glare that splits a large code);
       - each region cropped with a margin and scaled to about 8 pixels a module (a small
         code is a blurred one): unsharp mask (both zxing-cpp binarizers) and as is;
       - last, a glare on one finder pattern (both decoders need all three):
         :func:`core.carriers.qrfit.redraws` finds the other two, fits the share QR's grid
         (version 4 or 3) to them and to the fixed patterns, and redraws the code for both
         decoders (at most :data:`core.carriers.qrfit.MAX_FITS`; none without two finders).
    3. A smaller image (a file, a scan) is read whole: zbar as is, then Gaussian blur and
       Otsu (noise) with both decoders, an unsharp mask (blur), local contrast, scaled (a
       tiny image), zbar on the sharpened image.
    """
    use_z = "zxing-cpp" in decoders
    use_b = "pyzbar" in decoders
    h, w = gray.shape
    seen: list[Any] = []
    if use_z:
        good, seen = _zxing_arr(gray, errors=True)
        yield "zxing-cpp", "as-is", good
    card = _grid_card_arr(gray)
    if card is not None:  # a hand-filled QR grid card, redrawn cleanly
        if use_z:
            yield "zxing-cpp", "grid-card", _zxing_arr(card)[0]
        else:
            yield "pyzbar", "grid-card", _zbar_arr(card)
    if max(h, w) > WHOLE_MAX:
        yield from _frame_attempts(gray, seen, use_z, use_b)
        return
    if use_b:
        yield "pyzbar", "as-is", _zbar_arr(gray)
    crop = _crop(gray, (0, 0, w, h), margin=0.0)
    denoised = _otsu_arr(_filtered(crop, ImageFilter.GaussianBlur(2)))
    if use_z:
        yield "zxing-cpp", "blur-otsu", _zxing_arr(denoised)[0]
    if use_b:
        yield "pyzbar", "blur-otsu", _zbar_arr(denoised)
    sharp = _filtered(crop, ImageFilter.UnsharpMask(radius=3, percent=200, threshold=0))
    if use_z:
        yield "zxing-cpp", "sharpen", _zxing_arr(sharp)[0]
        yield "zxing-cpp", "local-contrast", _zxing_arr(local_contrast(crop, max(4, max(crop.shape) // 32)))[0]
        if crop.shape != gray.shape:
            yield "zxing-cpp", "scaled", _zxing_arr(crop)[0]
    if use_b:
        yield "pyzbar", "sharpen", _zbar_arr(sharp)


def _frame_attempts(gray: np.ndarray, seen: list[Any], use_z: bool, use_b: bool) -> Iterator[Attempt]:
    half = _half(gray)
    contrast = local_contrast(half, 8)
    if use_z:
        # A code large enough for glare to matter keeps 4 pixels a module at half size:
        # the frame-wide passes run there, at a quarter of the cost.
        yield "zxing-cpp", "local-contrast", _zxing_arr(contrast)[0]
        yield "zxing-cpp", "local-range", _zxing_arr(local_range(half, 3))[0]
    boxes: list[tuple[int, int, int, int]] = []
    for box in [_quad_box(p) for p in seen] + candidates(gray):
        if not any(_overlap(box, b) > 0.5 for b in boxes):
            boxes.append(box)
    if use_z and boxes:
        # Full resolution where the code may be (the regions below, with a margin): a
        # glare that splits a large code into pieces is read from the whole of it.
        h, w = gray.shape
        x0, y0, x1, y1 = _union(boxes[:MAX_CANDIDATES])
        if (x1 - x0) * (y1 - y0) > 0.3 * h * w:  # two regions far apart: the first only
            x0, y0, x1, y1 = boxes[0]
        m = max(x1 - x0, y1 - y0) // 4 + 8
        focus = np.ascontiguousarray(gray[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)])
        yield "zxing-cpp", "focus-local-contrast", _zxing_arr(local_contrast(focus, 16))[0]
        yield "zxing-cpp", "focus-local-range", _zxing_arr(local_range(focus, 6))[0]
    for i, box in enumerate(boxes[:MAX_CANDIDATES]):
        tag = f"region{i + 1}/"
        crop = _crop(gray, box)
        sharp = _filtered(crop, ImageFilter.UnsharpMask(radius=3, percent=200, threshold=0))
        if use_z:
            yield "zxing-cpp", f"{tag}sharpen", _zxing_arr(sharp)[0]
            yield "zxing-cpp", f"{tag}sharpen-histogram", _zxing_arr(sharp, histogram=True)[0]
            yield "zxing-cpp", f"{tag}crop", _zxing_arr(crop)[0]
        if use_b and not use_z:
            yield "pyzbar", f"{tag}sharpen", _zbar_arr(sharp)
    # A finder pattern lost to glare: the grid fitted from the other two and redrawn
    # (core.carriers.qrfit); each redraw is wiped once read, or when the chain stops.
    from core.carriers.qrfit import redraws

    for code in redraws(gray, half, contrast):
        try:
            if use_z:
                yield "zxing-cpp", "two-finder-redraw", _zxing_arr(code)[0]
            if use_b:
                yield "pyzbar", "two-finder-redraw", _zbar_arr(code)
        finally:
            code.fill(255)


def _named_variants(gray: np.ndarray, decoders: Sequence[str], variants: Sequence[str]) -> Iterator[Attempt]:
    """The named :data:`VARIANTS` with each decoder, as chain attempts."""
    img = Image.fromarray(gray, mode="L")
    for vname in variants:
        try:
            vimg = VARIANTS[vname](img)
        except (ValueError, OSError):
            continue
        for dname in decoders:
            yield dname, vname, list(DECODERS[dname](vimg))


def _grid_card_arr(gray: np.ndarray) -> np.ndarray | None:
    """The grid-card stage on a gray array: the redrawn code, or None (no grid card)."""
    try:
        return gray_array(_grid_card(Image.fromarray(gray, mode="L")))
    except ValueError:
        return None


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])) or 1
    return ix * iy / small


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file from (possibly hostile) media with size limits (in-process: the
    keyholder reads images through :mod:`core.carriers.sandbox` instead).

    Raises:
        QRImageUnreadable: the file is missing, too large or not an image.
    """
    p = Path(path)
    # No link followed, plain files only (a FIFO on a stick would block the read forever),
    # size checked with fstat before reading (core.safeio).
    try:
        with safeio.Dir.open_root(p.parent) as folder:
            data = folder.read(p.name, limit=MAX_FILE_BYTES)
    except safeio.TooLarge:
        raise QRImageUnreadable(f"{p.name} is larger than 40 MiB: image files that large are refused") from None
    except safeio.SafeIOError as exc:
        raise QRImageUnreadable(exc.message) from None
    except OSError as exc:
        raise QRImageUnreadable(f"cannot read {p.name}: {exc.strerror}") from None
    return image_from_bytes(data, p.name)


#: Image formats accepted from media: what a photo, a scan or a screenshot of a share QR
#: comes as. Pillow's other plugins (EPS runs Ghostscript, PSD, ICNS, FLI, ...) are more
#: parser surface for no use here.
IMAGE_FORMATS: Final = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def image_from_bytes(data: bytes | bytearray, name: str) -> Image.Image:
    """Decode the bytes of an image file, with the pixel limit checked before decoding.

    Args:
        data: the file's content.
        name: how to call the file in messages.

    Raises:
        QRImageUnreadable: too large, too many pixels, truncated or not an image format.
    """
    if len(data) > MAX_FILE_BYTES:
        raise QRImageUnreadable(f"{name} is over 40 MiB; image files that large are refused")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        if img.width * img.height > MAX_PIXELS:
            raise QRImageUnreadable(f"{name} is {img.width}x{img.height} pixels: too large")
        img.load()
    except Image.DecompressionBombError:
        raise QRImageUnreadable(
            f"{name} declares far more than {MAX_PIXELS} pixels: too large (a decompression "
            "bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise QRImageUnreadable(f"{name} is not an image file this tool can read") from None
    return img


def decode_file(path: str | os.PathLike[str], *, alloc: Alloc = _alloc) -> DecodeOutcome:
    """Decode a share QR from an image file (PNG, JPEG, ...) on media."""
    return decode_image(open_image(path), alloc=alloc)


# --- frame sources ------------------------------------------------------------------------


class FrameSource(Protocol):
    """Something that yields camera-like frames (PIL images)."""

    def frames(self) -> Iterator[Image.Image]:
        """Yield frames until exhausted or closed."""
        ...

    def close(self) -> None:
        """Release the device."""
        ...


class ReplayFrameSource:
    """Replays images (paths or PIL images) as frames, through the same pipeline as a camera.

    Args:
        images: images or image paths, yielded in order.
        repeat: how many times to go through the list.
    """

    def __init__(
        self, images: Iterable[Image.Image | str | os.PathLike[str]], *, repeat: int = 1
    ) -> None:
        self._images = list(images)
        self._repeat = repeat
        self._closed = False

    def frames(self) -> Iterator[Image.Image]:
        """Yield the images in order."""
        for _ in range(self._repeat):
            for item in self._images:
                if self._closed:
                    return
                yield item if isinstance(item, Image.Image) else open_image(item)

    def close(self) -> None:
        """Stop replaying."""
        self._closed = True


class V4L2FrameSource:
    """Frames from a V4L2 camera (:class:`core.carriers.camera.V4L2Capture`) as grayscale
    images, for in-process use; the keyholder sends the raw frames to the sandboxed decoder
    instead (:func:`core.carriers.sandbox.scan_frames`).

    Args:
        device: device path, e.g. ``/dev/video0``.
        width: requested frame width.
        height: requested frame height.
    """

    def __init__(self, device: str = "/dev/video0", *, width: int = 1280, height: int = 720):
        from core.carriers.camera import V4L2Capture

        self._cap = V4L2Capture(device, width=width, height=height)

    def frames(self) -> Iterator[Image.Image]:
        """Yield frames as grayscale images."""
        for f in self._cap.raw_frames():
            yield _frame_to_image(f.fourcc, f.width, f.height, f.data)

    def close(self) -> None:
        """Release the camera."""
        self._cap.close()


def _frame_to_image(fourcc: str, width: int, height: int, data: bytes) -> Image.Image:
    """Convert a V4L2 frame to a grayscale image."""
    if fourcc == "GREY":
        return Image.frombytes("L", (width, height), data[: width * height])
    if fourcc in ("YUYV", "YUY2"):
        arr = np.frombuffer(data, dtype=np.uint8, count=width * height * 2)
        return Image.fromarray(arr[0::2].reshape(height, width).copy(), mode="L")
    if fourcc in ("MJPG", "JPEG"):
        return Image.open(io.BytesIO(data)).convert("L")
    raise CarrierError(f"camera pixel format {fourcc} is not supported")


def scan_frames(
    source: FrameSource,
    *,
    alloc: Alloc = _alloc,
    max_frames: int = 300,
    timeout_s: float = 30.0,
) -> DecodeOutcome:
    """Read frames until one holds a valid share QR; close the source in every case.

    Raises:
        QRNotFound: no code within ``max_frames`` frames or ``timeout_s`` seconds.
        QRPayloadError: codes were seen but none was a valid share.
    """
    deadline = time.monotonic() + timeout_s
    first_error: QRPayloadError | None = None
    n = 0
    try:
        for frame in source.frames():
            n += 1
            try:
                return decode_image(frame, alloc=alloc)
            except QRPayloadError as exc:
                first_error = first_error or exc
            except QRNotFound:
                pass
            if n >= max_frames or time.monotonic() > deadline:
                break
    finally:
        source.close()
    if first_error is not None:
        raise first_error
    raise QRNotFound(
        f"no share QR code seen in {n} frames: hold the card still in front of the camera, "
        "closer and without glare"
    )
