"""The sandboxed image decoder: ``python -I -m core.carriers.decodehelper``.

Started fresh by the keyholder for each image read (:mod:`core.carriers.sandbox`, which also
documents the wire format); holds no key and has no network. In order:

1. **Load** everything it will run: Pillow with every image plugin, numpy, zxing-cpp, zbar
   (pyzbar loads ``libzbar`` with ``dlopen``), the encodings Pillow may use, and a warm-up
   pass of the decoder chain over small images of every accepted format, so that no import
   or library load is left for later (they open files). A finder then refuses any further
   import with an error instead of a file lookup.
2. **Read the request** (mode and limits) from the keyholder.
3. **Confine itself**, before the first byte of the image:
   drop root to ``nobody`` if it has root (``make run`` as root), parent-death signal,
   not dumpable; rlimits: ``RLIMIT_CPU`` (SIGXCPU), ``RLIMIT_AS``, ``RLIMIT_FSIZE`` 0,
   ``RLIMIT_NOFILE`` 3, ``RLIMIT_NPROC`` 0, ``RLIMIT_CORE`` 0; ``PR_SET_NO_NEW_PRIVS``; and
   a seccomp filter (libseccomp's Python bindings, Debian ``python3-seccomp``) whose default
   action kills the process: only the system calls listed in :data:`ALLOWED` pass, ``read``
   only from fd 0, ``write`` only to fds 1 and 2, ``mmap``/``mprotect`` never with
   ``PROT_EXEC``, signals only to itself. Everything else (``open``, ``openat``, ``execve``,
   ``socket``, ``connect``, ``ptrace``, ``clone``/``fork``, ``process_vm_readv``, ...) kills
   it with SIGSYS.
4. **Decode**: the image bytes (or raw camera frames) come on stdin; the in-process chain of
   :mod:`core.carriers.imagedecode` runs unchanged (:func:`~core.carriers.imagedecode.decode_image`
   for a file, :func:`~core.carriers.imagedecode.scan_frames` for frames).
5. **Answer** on stdout: the decoder and variant names and the payload digits (written from
   a locked buffer), or an error code and message; then exit with ``os._exit``.

The payload exists in this process's memory for the moment between decoding and exit: the
decoder's ``bytes``, our locked buffers (wiped before exit). The process is not dumpable,
writes no core, and its pages go back to the kernel at exit (zeroed on the ISO, which boots
with ``init_on_free=1``). docs/threat-model.md weighs this.

The production entry point has no other mode and reads no environment variable that
changes what it does; tests drive hostile behaviour through their own entry point, which
imports :func:`prepare`, :func:`confine` and :func:`serve`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import io
import os
import resource
import select
import signal
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Final

from core.carriers import sandbox as wire
from core.carriers.errors import CarrierError, QRDecoderFailed, QRImageUnreadable

__all__ = ["ALLOWED", "Request", "confine", "main", "prepare", "read_request", "serve"]

PR_SET_PDEATHSIG: Final = 1
PR_SET_DUMPABLE: Final = 4
PR_SET_NO_NEW_PRIVS: Final = 38
PROT_EXEC: Final = 0x4
NOBODY: Final = 65534

#: System calls the decoders need once the image is being read, allowed without conditions.
ALLOWED: Final = (
    # memory
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "mlock",
    "munlock",
    # threads of this process only (no new ones: clone is not here), time, identity
    "futex",
    "sched_yield",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "getpid",
    "gettid",
    # signals: return from a handler, masks; delivery only to itself (below)
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "restart_syscall",
    # closing what it has
    "close",
    # ending
    "exit",
    "exit_group",
)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

_seccomp: ModuleType | None = None
_nobody: tuple[int, int] = (NOBODY, NOBODY)


@dataclass(frozen=True)
class Request:
    """What the keyholder asks for (public; read before confinement)."""

    mode: int
    require_seccomp: bool
    max_frames: int
    timeout_s: float
    cpu_s: int
    address_space_mib: int


# --- 1. loading everything before confinement --------------------------------------------


class _NoMoreImports(MetaPathFinder):
    """After confinement, an import would look for files (killed by the filter): refuse
    it with an ImportError instead, which is answered as a clean error."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        raise ImportError(f"import of {fullname} after confinement")


def _warm_up() -> None:
    """Run every code path of the chain once: load a small image in each accepted format,
    and take a colour QR image through every variant with both decoders (its payload fails
    the share checksum on purpose, so the chain does not stop early)."""
    import qrcode

    from core.carriers import imagedecode, qr

    q = qrcode.QRCode(border=4, box_size=3)
    q.add_data("0" * 132)  # numeric, the length of a share
    img = q.make_image().get_image().convert("RGB")
    for fmt in imagedecode.IMAGE_FORMATS:
        bio = io.BytesIO()
        img.save(bio, format=fmt)
        imagedecode.image_from_bytes(bio.getvalue(), fmt)
    try:
        imagedecode.decode_image(img)
    except CarrierError:
        pass
    for fourcc, data in (("GREY", bytes(64)), ("YUYV", bytes(128))):
        imagedecode._frame_to_image(fourcc, 8, 8, data)
    buf = qr.indices_to_payload(memoryview(bytearray(66)), alloc=_alloc)
    buf.close()
    import numpy as np

    np.linalg.svd(np.eye(3))  # LAPACK's buffers (the grid-card stage fits lines with it)


def prepare() -> None:
    """Import and warm up everything the decode will need (before :func:`confine`)."""
    global _seccomp, _nobody
    import encodings.ascii
    import encodings.latin_1
    import encodings.utf_8
    import encodings.utf_16
    import encodings.utf_16_be
    import encodings.utf_16_le
    import encodings.utf_32  # noqa: F401  (Pillow decodes text chunks and EXIF)
    import pwd

    import numpy
    import numpy.linalg
    import numpy.ma
    import zxingcpp  # noqa: F401
    from PIL import Image
    from pyzbar import pyzbar  # noqa: F401  (loads libzbar now)

    from core.carriers import gridcard, imagedecode, qrfit  # noqa: F401  (the chain's stages)

    del numpy
    Image.init()
    try:
        import seccomp

        _seccomp = seccomp
    except ImportError:
        _seccomp = None
    try:
        entry = pwd.getpwnam("nobody")
        _nobody = (entry.pw_uid, entry.pw_gid)
    except KeyError:
        pass
    _warm_up()
    sys.meta_path.insert(0, _NoMoreImports())


# --- 2. the request -----------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytearray | None:
    """n bytes from fd; None on EOF before the first byte."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            if got == 0:
                return None
            raise QRImageUnreadable("the image data ended early")
        got += k
    return buf


def read_request(fd: int = 0) -> Request:
    """The keyholder's request header."""
    raw = _read_exact(fd, wire.REQUEST.size)
    if raw is None:
        raise QRDecoderFailed("no request from the keyholder")
    magic, mode, flags, max_frames, timeout_ms, cpu_s, as_mib = wire.REQUEST.unpack(raw)
    if magic != wire.REQUEST_MAGIC or mode not in (wire.MODE_FILE, wire.MODE_SCAN):
        raise QRDecoderFailed("malformed request from the keyholder")
    return Request(
        mode=mode,
        require_seccomp=bool(flags & wire.FLAG_REQUIRE_SECCOMP),
        max_frames=max_frames,
        timeout_s=timeout_ms / 1000,
        cpu_s=max(1, cpu_s),
        address_space_mib=max(64, as_mib),
    )


# --- 3. confinement -----------------------------------------------------------------------


def _prctl(option: int, arg: int) -> bool:
    return int(_libc.prctl(option, arg, 0, 0, 0)) == 0


def _drop_root() -> bool:
    """Become ``nobody`` if we have root (``make run`` as root); True if we did."""
    if 0 not in os.getresuid() and 0 not in os.getresgid():
        return False
    uid, gid = _nobody
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise QRDecoderFailed("the image decoder could not give up root")
    return True


def _filter(seccomp: ModuleType) -> Any:
    """The seccomp filter (default: kill the process)."""
    f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    f.set_attr(seccomp.Attr.CTL_TSYNC, 1)  # every thread, should a library have made one
    for name in ALLOWED:
        f.add_rule(seccomp.ALLOW, name)
    for name in ("read", "readv"):
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.EQ, 0))
    for name in ("write", "writev"):
        for fd in (1, 2):
            f.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.EQ, fd))
    for name in ("mmap", "mprotect"):
        f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
    pid = os.getpid()
    f.add_rule(seccomp.ALLOW, "kill", seccomp.Arg(0, seccomp.EQ, pid))
    f.add_rule(seccomp.ALLOW, "tgkill", seccomp.Arg(0, seccomp.EQ, pid))
    # OpenBLAS sets a NUMA policy on the buffers it maps for a LAPACK call (the grid-card
    # stage's np.linalg.svd) and goes on without it: answer EPERM rather than kill
    for name in ("mbind", "set_mempolicy", "get_mempolicy"):
        f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    return f


def confine(req: Request) -> int:
    """Drop root, set the limits, no_new_privs and the seccomp filter; the flags set.

    Raises:
        QRDecoderFailed: seccomp is required and cannot be installed.
    """
    flags = 0
    if _drop_root():
        flags |= 8
    # after the uid change, which clears it; a parent already gone means nobody listens
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)
    _prctl(PR_SET_DUMPABLE, 0)
    as_bytes = req.address_space_mib << 20
    for res, soft, hard in (
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, req.cpu_s, req.cpu_s + 2),
        (resource.RLIMIT_AS, as_bytes, as_bytes),
        (resource.RLIMIT_FSIZE, 0, 0),
        (resource.RLIMIT_NOFILE, 3, 3),
        (resource.RLIMIT_NPROC, 0, 0),
    ):
        resource.setrlimit(res, (soft, hard))
    flags |= 4
    if _prctl(PR_SET_NO_NEW_PRIVS, 1):
        flags |= 2
    if _seccomp is None:
        if req.require_seccomp:
            raise QRDecoderFailed(
                "could not read this image: the decoder sandbox (seccomp, Debian package "
                "python3-seccomp) is not available, and images are never decoded without "
                "it in a ceremony. Install it, or enter the share another way."
            )
        return flags
    try:
        _filter(_seccomp).load()
    except (OSError, RuntimeError, ValueError) as exc:
        if req.require_seccomp:
            raise QRDecoderFailed(
                f"could not read this image: the decoder sandbox could not be set up "
                f"({type(exc).__name__}). Enter the share another way."
            ) from None
        return flags
    return flags | 1


# --- 4. decoding --------------------------------------------------------------------------


def _alloc(size: int) -> Any:
    from core.secmem import SecretBuffer

    return SecretBuffer(size, allow_unlocked=True)


def _read_frame(fd: int) -> Any | None:
    """The next frame from the keyholder as an image; None at the end of input."""
    from core.carriers import imagedecode

    head = _read_exact(fd, wire.FRAME.size)
    if head is None:
        return None
    kind, fourcc_raw, width, height, length, name_len = wire.FRAME.unpack(head)
    name_raw = _read_exact(fd, name_len) if name_len else bytearray()
    name = bytes(name_raw or b"").decode("utf-8", "replace") or "the image"
    if kind == wire.KIND_FILE:
        if length > wire.MAX_FILE_BYTES:
            raise QRImageUnreadable(f"{name} is over 40 MiB; image files that large are refused")
        data = _read_exact(fd, length) if length else None
        if data is None:
            raise QRImageUnreadable(f"{name} is empty")
        return imagedecode.image_from_bytes(data, name)
    if kind != wire.KIND_RAW or length > wire.MAX_FRAME_BYTES:
        raise QRDecoderFailed("malformed frame from the keyholder")
    data = _read_exact(fd, length) if length else bytearray()
    if data is None:
        raise QRImageUnreadable("the camera frame ended early")
    fourcc = bytes(fourcc_raw).decode("ascii", "replace").strip()
    if width * height > imagedecode.MAX_PIXELS:
        raise QRImageUnreadable(f"the camera frame is {width}x{height} pixels: too large")
    if fourcc in ("MJPG", "JPEG"):
        return imagedecode.image_from_bytes(data, "the camera frame").convert("L")
    try:
        return imagedecode._frame_to_image(fourcc, width, height, bytes(data))
    except ValueError:
        raise QRImageUnreadable(
            f"the camera frame ({fourcc} {width}x{height}) could not be read"
        ) from None
    except CarrierError as exc:  # a pixel format the chain does not know
        raise QRImageUnreadable(exc.message) from None


class _PipeFrames:
    """Frames from the keyholder, as a :class:`~core.carriers.imagedecode.FrameSource`."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    def frames(self) -> Iterator[Any]:
        while not self._closed:
            img = _read_frame(self._fd)
            if img is None:
                return
            yield img

    def close(self) -> None:
        self._closed = True


def serve(req: Request, rfd: int = 0) -> Any:
    """Decode what the keyholder sends; the chain's DecodeOutcome (indices locked)."""
    from core.carriers import imagedecode

    if req.mode == wire.MODE_FILE:
        img = _read_frame(rfd)
        if img is None:
            raise QRImageUnreadable("no image was sent")
        return imagedecode.decode_image(img, alloc=_alloc)
    return imagedecode.scan_frames(
        _PipeFrames(rfd),
        alloc=_alloc,
        max_frames=req.max_frames,
        timeout_s=req.timeout_s,
    )


# --- 5. the answer ------------------------------------------------------------------------


def _name(text: str) -> bytes:
    raw = text.encode("ascii", "replace")[:32]
    return bytes([len(raw)]) + raw


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """One ``writev`` of the whole answer: at most PIPE_BUF bytes to a blocking pipe are
    written whole and at once (POSIX), so there is no partial write to resume."""
    views = [memoryview(p).cast("B") for p in parts]
    total = sum(v.nbytes for v in views)
    if total > select.PIPE_BUF:
        raise QRDecoderFailed("the answer is too long")
    if os.writev(fd, views) != total:
        raise QRDecoderFailed("the answer could not be written whole")


def answer_ok(wfd: int, out: Any, flags: int) -> None:
    """Write the decoded share's payload digits (from locked memory) and public facts."""
    from core.carriers import qr

    payload = qr.indices_to_payload(out.indices, alloc=_alloc)
    try:
        with payload.view() as mv:
            head = (
                wire.RESULT.pack(wire.RESULT_MAGIC, wire.STATUS_OK, flags)
                + _name(out.decoder)
                + _name(out.variant)
                + struct.pack(">IH", min(out.attempts, 0xFFFFFFFF), len(mv))
            )
            _write_all(wfd, [head, mv])
    finally:
        payload.close()
        out.indices.close()


def answer_error(wfd: int, code: str, message: str, flags: int) -> None:
    """Write an error answer."""
    msg = message.encode("utf-8", "replace")[:1000]
    _write_all(
        wfd,
        [
            wire.RESULT.pack(wire.RESULT_MAGIC, wire.STATUS_ERROR, flags)
            + _name(code)
            + struct.pack(">H", len(msg))
            + msg
        ],
    )


def run(rfd: int = 0, wfd: int = 1) -> None:
    """Load, read the request, confine, decode, answer (never raises)."""
    flags = 0
    try:
        prepare()
        req = read_request(rfd)
        flags = confine(req)
        out = serve(req, rfd)
        answer_ok(wfd, out, flags)
    except CarrierError as exc:
        # the keyholder accepts only the codes of wire.HELPER_CODES
        code = exc.code if exc.code in wire.HELPER_CODES else QRDecoderFailed.code
        answer_error(wfd, code, exc.message, flags)
    except MemoryError:
        answer_error(
            wfd,
            QRDecoderFailed.code,
            "could not read this image: the image decoder ran out of its memory limit (the "
            "image is too large). Use a smaller photo of the share QR, or enter the share "
            "another way.",
            flags,
        )
    except Exception as exc:  # never echo str(exc): it could quote image content
        answer_error(
            wfd,
            QRDecoderFailed.code,
            f"could not read this image: the image decoder failed ({type(exc).__name__}). "
            "Try another photo or file of the share QR, or enter the share another way.",
            flags,
        )


def main() -> None:
    """Entry point: one request, one answer, then ``os._exit`` (no interpreter teardown)."""
    os.environ["KCM_SECMEM_BACKEND"] = "mlock"
    sys.tracebacklimit = 0
    sys.stdout = sys.stderr  # only the answer goes to fd 1
    try:
        run()
    finally:
        from core import secmem

        secmem.close_all()
        os._exit(0)


if __name__ == "__main__":
    main()
