"""Decoding share QR codes from images: the decoder chain and the frame sources.

The chain tries zxing-cpp first (fastest, best on degraded images), then pyzbar (zbar), first
on the image as given and then on preprocessed variants (grayscale with autocontrast, Otsu
threshold, upscaling for small codes, downscaling for large frames, unsharp mask for blur,
median filter for noise). The first result that is a valid share payload wins.

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
from typing import Final, Protocol

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from core import safeio
from core.carriers.errors import CarrierError, QRImageUnreadable, QRNotFound, QRPayloadError
from core.carriers.qr import Alloc, payload_to_indices
from core.secmem import SecretBuffer

__all__ = [
    "DECODERS",
    "VARIANTS",
    "DecodeOutcome",
    "FrameSource",
    "ReplayFrameSource",
    "V4L2FrameSource",
    "decode_file",
    "decode_image",
    "image_from_bytes",
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
    img: Image.Image,
    *,
    alloc: Alloc = _alloc,
    decoders: Sequence[str] = ("zxing-cpp", "pyzbar"),
    variants: Sequence[str] = tuple(VARIANTS),
) -> DecodeOutcome:
    """Decode one share QR from an image through the chain.

    Every variant is tried with every decoder (zxing-cpp first) until a payload passes
    :func:`core.carriers.qr.payload_to_indices` (length, digits, range, checksum).

    Raises:
        QRNotFound: no decoder found a QR code.
        QRPayloadError: QR codes were found but none holds a valid share (the message of the
            first rejected payload says why).
    """
    first_error: QRPayloadError | None = None
    attempts = 0
    if img.width < 8 or img.height < 8:
        raise QRNotFound(f"the image is {img.width}x{img.height} pixels: too small for a QR code")
    for vname in variants:
        try:
            vimg = VARIANTS[vname](img)
        except (ValueError, OSError):
            continue
        for dname in decoders:
            attempts += 1
            found = DECODERS[dname](vimg)
            while found:
                payload = found.pop()
                try:
                    indices = payload_to_indices(payload, alloc=alloc)
                except QRPayloadError as exc:
                    first_error = first_error or exc
                    continue
                finally:
                    del payload  # the decoder's bytes: drop the only reference now
                return DecodeOutcome(indices, dname, vname, attempts)
    if first_error is not None:
        raise first_error
    raise QRNotFound(
        "no QR code found in the image: hold the card flat, fill the frame with the code "
        "and avoid glare, or use another source"
    )


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


#: A cheaper chain for live frames (a camera delivers many; latency matters more).
FRAME_VARIANTS: Final = ("as-is", "grid-card", "otsu", "downscale")


def scan_frames(
    source: FrameSource,
    *,
    alloc: Alloc = _alloc,
    max_frames: int = 300,
    timeout_s: float = 30.0,
    variants: Sequence[str] = FRAME_VARIANTS,
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
                return decode_image(frame, alloc=alloc, variants=variants)
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
