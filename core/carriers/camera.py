"""Raw frames from a V4L2 camera, without decoding them.

The keyholder captures camera frames here (device I/O: ioctls and buffers the kernel fills)
and passes the raw pixels to the sandboxed decoder helper (:mod:`core.carriers.sandbox`),
which turns them into an image and looks for a share QR. Nothing in this module parses an
image, and it imports neither Pillow nor numpy, so the keyholder does not load them for a
camera scan.

Residue: linuxpy returns each frame as ``bytes`` (a picture of the card, not the share's
digits), freed when the next frame arrives; see docs/threat-model.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.carriers.errors import CarrierError

__all__ = ["RawFrame", "V4L2Capture"]


@dataclass(frozen=True)
class RawFrame:
    """One frame as the camera delivered it.

    Attributes:
        fourcc: pixel format (``GREY``, ``YUYV``, ``MJPG``...).
        width: pixels per line.
        height: lines.
        data: the frame buffer.
    """

    fourcc: str
    width: int
    height: int
    data: bytes


class V4L2Capture:
    """Frames from a V4L2 camera through linuxpy (``pip install .[camera]``).

    Asks for a grayscale or YUYV format (the luma plane is all a QR decoder needs) and
    falls back to MJPG.

    Args:
        device: device path, e.g. ``/dev/video0``.
        width: requested frame width.
        height: requested frame height.

    Raises:
        CarrierError: linuxpy is missing or the device cannot be opened.
    """

    def __init__(self, device: str = "/dev/video0", *, width: int = 1280, height: int = 720):
        try:
            from linuxpy.video.device import BufferType, Device
        except ImportError:
            raise CarrierError(
                "camera support is not installed (the 'camera' extra, linuxpy)"
            ) from None
        try:
            self._dev: Any = Device(device)
            self._dev.open()
        except OSError as exc:
            raise CarrierError(
                f"cannot open the camera {device}: {exc.strerror or exc}. Check the cable "
                "or use an image file or the handheld scanner."
            ) from None
        for fourcc in ("GREY", "YUYV", "MJPG"):
            try:
                self._dev.set_format(BufferType.VIDEO_CAPTURE, width, height, fourcc)
                break
            except OSError:
                continue
        self._closed = False

    def raw_frames(self) -> Iterator[RawFrame]:
        """Yield frames as delivered, until closed."""
        for frame in self._dev:
            if self._closed:
                return
            yield RawFrame(frame.pixel_format.name, frame.width, frame.height, frame.data)

    def close(self) -> None:
        """Release the camera."""
        if not self._closed:
            self._closed = True
            self._dev.close()
