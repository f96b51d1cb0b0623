"""Image decoding in a sandboxed helper process: the keyholder's side.

The keyholder holds the MasterKey and the shares; the image decoders (Pillow, numpy,
zxing-cpp, zbar) parse bytes from possibly hostile media. So they never run in the
keyholder: every image file, replayed frame and camera frame is decoded by a short-lived
helper, :mod:`core.carriers.decodehelper`, started fresh for each read (``python -I -m
core.carriers.decodehelper``: an exec, not a fork of the keyholder, so it inherits none of
its memory). The helper loads the decoders, then confines itself before it reads a byte of
the image: it drops root (to ``nobody``) when it has it, sets ``PR_SET_NO_NEW_PRIVS``, tight
rlimits (CPU seconds, address space, file size 0, open files, processes, no core dump) and a
seccomp filter that kills it on any system call it does not need (``open``, ``execve``,
``socket``, ``ptrace``, ``clone``...). See :mod:`core.carriers.decodehelper`.

This side:

* opens the image file itself (the helper may not open anything), checks it is a regular
  file of at most 40 MiB before reading, and moves its bytes into the helper's pipe with
  ``splice(2)``: the image never enters the keyholder's memory (a locked bounce buffer
  is the fallback where a file system cannot splice);
* passes camera frames (raw pixels from :mod:`core.carriers.camera`) the same way;
* reads the answer: public facts (decoder, variant) and the share's payload digits, which
  go with ``readv`` straight into a :class:`~core.secmem.SecretBuffer` and are converted to
  word indices there (no ``bytes``/``str`` copy in the keyholder);
* treats the helper as hostile too: a malformed answer, a crash, a time-out (the helper is
  killed at its wall-clock limit), a CPU or memory limit, or a seccomp kill become a
  :class:`~core.carriers.errors.QRDecoderFailed` ("could not read this image"), and nothing
  the keyholder holds is touched.

Wire format (all integers big-endian; the helper writes nothing else on its stdout):

* keyholder -> helper, once: ``REQUEST`` = magic ``KDQ1``, mode (0 one image file, 1 a scan
  of frames), flags (1: seccomp required), max_frames (u16), timeout (ms, u32), CPU limit
  (s, u32), address-space limit (MiB, u32);
* then frames: ``FRAME`` = kind (1 image file, 2 raw camera frame), fourcc (4 ASCII),
  width, height, length (u32 each), name length (u16); the name (UTF-8, public: the file's
  name for messages); ``length`` bytes. End of input: the keyholder closes the pipe.
* helper -> keyholder, once: ``RESULT`` = magic ``KDR1``, status (0 decoded, 1 error),
  confinement flags (see :data:`CONFINEMENT_FLAGS`); decoded: decoder and variant names
  (u8 length + ASCII each), attempts (u32), payload length (u16), the payload digits;
  error: code (u8 length + ASCII), message (u16 length + UTF-8).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from core.carriers.errors import (
    CarrierError,
    QRDecoderFailed,
    QRImageUnreadable,
    QRNotFound,
    QRPayloadError,
)
from core.secmem import SecretBuffer

__all__ = [
    "FILE_LIMITS",
    "HELPER_MODULE",
    "Decoded",
    "FileFrame",
    "Limits",
    "decode_file",
    "scan_frames",
    "scan_limits",
]

#: The production helper: ``sys.executable -I -m`` this. Not configurable from outside the
#: keyholder (no environment variable, no request field): tests that need a hostile helper
#: pass ``command=`` to these functions in their own process.
HELPER_MODULE: Final = "core.carriers.decodehelper"

#: Largest image file accepted from media (the same limit as the in-process chain).
MAX_FILE_BYTES: Final = 40 * 1024 * 1024
#: Largest raw camera frame (a 4K YUYV frame is 16.6 MB).
MAX_FRAME_BYTES: Final = 32 * 1024 * 1024
#: Longest scan of frames (seconds).
MAX_SCAN_S: Final = 300.0

REQUEST: Final = struct.Struct(">4sBBHIII")
REQUEST_MAGIC: Final = b"KDQ1"
MODE_FILE: Final = 0
MODE_SCAN: Final = 1
FLAG_REQUIRE_SECCOMP: Final = 1

FRAME: Final = struct.Struct(">B4sIIIH")
KIND_FILE: Final = 1
KIND_RAW: Final = 2

RESULT: Final = struct.Struct(">4sBB")
RESULT_MAGIC: Final = b"KDR1"
STATUS_OK: Final = 0
STATUS_ERROR: Final = 1

#: Bits of the confinement flags the helper reports (public; shown in replies).
CONFINEMENT_FLAGS: Final = {
    1: "seccomp",
    2: "no_new_privs",
    4: "rlimits",
    8: "dropped_root",
}

#: Error codes the helper may send; anything else is a malformed answer.
HELPER_CODES: Final = {
    QRNotFound.code: QRNotFound,
    QRPayloadError.code: QRPayloadError,
    QRImageUnreadable.code: QRImageUnreadable,
    QRDecoderFailed.code: QRDecoderFailed,
}

#: Payload lengths of a share QR (20 or 33 words, 4 digits each).
PAYLOAD_LENGTHS: Final = (80, 132)

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_MAX_MESSAGE: Final = 400
_CHUNK: Final = 1 << 16
_EXIT_GRACE_S: Final = 2.0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one helper run.

    Attributes:
        cpu_s: RLIMIT_CPU (seconds of processor time; SIGXCPU then SIGKILL).
        wall_s: wall-clock limit, enforced by the keyholder with SIGKILL.
        address_space_mib: RLIMIT_AS. The chain on a 50-megapixel image (the largest it
            accepts) peaks near 1 GiB of address space.
    """

    cpu_s: int = 30
    wall_s: float = 60.0
    address_space_mib: int = 1536


#: Limits for one image file. A 12-megapixel photo without a code costs about 8 s of CPU
#: through the whole chain here; a share photo usually decodes in the first variant.
FILE_LIMITS: Final = Limits()


def scan_limits(timeout_s: float) -> Limits:
    """Limits for a scan of frames lasting at most ``timeout_s`` seconds."""
    t = max(1, int(timeout_s))
    return Limits(cpu_s=t + 15, wall_s=float(t + 30))


@dataclass(frozen=True)
class FileFrame:
    """An image file to decode as one frame (replayed frames, or one image file)."""

    path: str


@dataclass(frozen=True)
class _OpenedFile:
    """An image file already opened and checked (fd owned by the caller)."""

    fd: int
    size: int
    name: str


@dataclass
class Decoded:
    """A share read from an image by the helper.

    Attributes:
        indices: word indices in locked memory (2 bytes each, big-endian); the caller owns
            it and must close it.
        decoder: which decoder read it (public).
        variant: which preprocessing variant (public).
        attempts: decoder calls made (public).
        sandbox: how the helper was confined (public, as it reported it).
    """

    indices: SecretBuffer
    decoder: str
    variant: str
    attempts: int
    sandbox: dict[str, Any] = field(default_factory=dict)

    @property
    def word_count(self) -> int:
        """Number of words in the share."""
        return self.indices.size // 2


class _Answered(Exception):
    """The helper answered (or went away) while we were still sending."""


def _helper_env() -> dict[str, str]:
    """The helper's whole environment: nothing from the keyholder's."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # numpy's BLAS must not start worker threads: the filter forbids clone()
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # plain mlock for the helper's few secret pages (no memfd_secret fd to create)
        "KCM_SECMEM_BACKEND": "mlock",
    }


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@contextlib.contextmanager
def _sigpipe_blocked() -> Iterator[None]:
    """Block SIGPIPE while talking to the helper.

    The keyholder's SIGPIPE handler wipes every secret and exits (a reply to a UI that
    died). A write to a helper that died must instead fail with EPIPE; the pending SIGPIPE
    it raised is consumed before the mask is restored.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        yield
    finally:
        try:
            while signal.sigtimedwait({signal.SIGPIPE}, 0) is not None:
                pass
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _open_image_file(path: str) -> tuple[int, int, str]:
    """Open an image file for the helper; (fd, size, name). Limits checked before reading."""
    name = os.path.basename(path.rstrip("/")) or path
    try:
        # no link followed (as every read from a medium: core.safeio); O_NONBLOCK so that a
        # FIFO planted on a stick cannot block the keyholder in open()
        fd = os.open(
            path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise QRImageUnreadable(
                f"{name} is a symbolic link: refused (copy the image itself onto the medium)"
            ) from None
        raise QRImageUnreadable(f"cannot read {name}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise QRImageUnreadable(f"{name} is not a regular file")
        if st.st_size == 0:
            raise QRImageUnreadable(f"{name} is empty")
        if st.st_size > MAX_FILE_BYTES:
            raise QRImageUnreadable(
                f"{name} is {st.st_size} bytes; image files over 40 MiB are refused"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size, name


class _Helper:
    """One run of the helper process: spawn, feed, read the answer, reap."""

    def __init__(
        self,
        *,
        alloc: Any,
        mode: int,
        limits: Limits,
        require_seccomp: bool,
        max_frames: int = 1,
        timeout_s: float = 0.0,
        command: tuple[str, ...] | None = None,
        use_splice: bool = True,
    ) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.wall_s
        self.killed_at_deadline = False
        self._alloc = alloc
        self._bounce: SecretBuffer | None = None
        self._use_splice = use_splice
        args = command or ("-I", "-m", HELPER_MODULE)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_helper_env(),
                close_fds=True,
                cwd="/",
            )
        except OSError as exc:
            raise QRDecoderFailed(
                _could_not_read(f"it could not be started: {exc.strerror or exc}")
            ) from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.w: int | None = self.proc.stdin.fileno()
        self.r = self.proc.stdout.fileno()
        os.set_blocking(self.w, False)
        os.set_blocking(self.r, False)
        self._request = REQUEST.pack(
            REQUEST_MAGIC,
            mode,
            FLAG_REQUIRE_SECCOMP if require_seccomp else 0,
            max(1, min(max_frames, 0xFFFF)),
            max(0, int(timeout_s * 1000)),
            limits.cpu_s,
            limits.address_space_mib,
        )

    def send_request(self) -> None:
        """The request header: mode, limits (before any frame)."""
        self._send_bytes(self._request)

    # -- waiting --------------------------------------------------------------------------

    def _remaining_ms(self) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._kill_at_deadline()
        return max(1, int(left * 1000))

    def _kill_at_deadline(self) -> None:
        self.killed_at_deadline = True
        self.kill()
        raise _Answered

    def _wait_writable(self) -> None:
        """Block until the helper's stdin takes data; _Answered if it answered or died."""
        assert self.w is not None
        poller = select.poll()
        poller.register(self.w, select.POLLOUT)
        poller.register(self.r, select.POLLIN)
        while True:
            events = dict(poller.poll(self._remaining_ms()))
            if self.r in events:
                raise _Answered
            ev = events.get(self.w, 0)
            if ev & (select.POLLERR | select.POLLHUP):
                raise _Answered
            if ev & select.POLLOUT:
                return

    def _wait_readable(self) -> None:
        poller = select.poll()
        poller.register(self.r, select.POLLIN)
        while not poller.poll(self._remaining_ms()):
            pass

    # -- sending --------------------------------------------------------------------------

    def _write(self, view: memoryview) -> int:
        assert self.w is not None
        try:
            return os.write(self.w, view)
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            raise _Answered from None

    def _send_bytes(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = self._write(view[:_CHUNK])
            if n == 0:
                self._wait_writable()
                continue
            view = view[n:]

    def _send_file(self, fd: int, size: int, name: str) -> None:
        """Move ``size`` bytes of ``fd`` into the helper's pipe without user-space copies."""
        assert self.w is not None
        left = size
        while left:
            if self._use_splice:
                try:
                    n = os.splice(fd, self.w, min(left, _CHUNK))
                except BlockingIOError:
                    self._wait_writable()
                    continue
                except BrokenPipeError:
                    raise _Answered from None
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise QRImageUnreadable(f"cannot read {name}: {exc.strerror}") from None
                    self._use_splice = False  # this file system cannot splice: bounce
                    continue
            else:
                n = self._bounce_once(fd, min(left, _CHUNK), name)
            if n == 0:
                raise QRImageUnreadable(f"{name} became shorter while it was read")
            left -= n

    def _bounce_once(self, fd: int, count: int, name: str) -> int:
        """Read into the locked bounce buffer, write it out, wipe it."""
        if self._bounce is None:
            self._bounce = self._alloc(_CHUNK)
        with self._bounce.view(0, count) as mv:
            try:
                n = os.readv(fd, [mv])
            except OSError as exc:
                raise QRImageUnreadable(f"cannot read {name}: {exc.strerror}") from None
            try:
                self._send_bytes(mv[:n])
            finally:
                self._bounce.wipe()
        return n

    def send_frame(self, frame: FileFrame | _OpenedFile | Any) -> None:
        """Send one frame: an image file (spliced) or a raw camera frame."""
        if isinstance(frame, _OpenedFile):
            raw = frame.name.encode("utf-8", "replace")[:255]
            self._send_bytes(FRAME.pack(KIND_FILE, b"    ", 0, 0, frame.size, len(raw)) + raw)
            self._send_file(frame.fd, frame.size, frame.name)
            return
        if isinstance(frame, FileFrame):
            opened = _OpenedFile(*_open_image_file(frame.path))
            try:
                self.send_frame(opened)
            finally:
                os.close(opened.fd)
            return
        data = memoryview(frame.data).cast("B")
        if data.nbytes > MAX_FRAME_BYTES:
            raise QRImageUnreadable(f"the camera frame is {data.nbytes} bytes: too large")
        fourcc = frame.fourcc.encode("ascii", "replace")[:4].ljust(4)
        self._send_bytes(FRAME.pack(KIND_RAW, fourcc, frame.width, frame.height, data.nbytes, 0))
        self._send_bytes(data)

    def end_input(self) -> None:
        """Close the helper's stdin: no more frames."""
        if self.w is not None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.w = None

    # -- the answer -----------------------------------------------------------------------

    def _read_into(self, view: memoryview) -> bool:
        """Fill ``view``; False on EOF first."""
        got = 0
        while got < len(view):
            try:
                n = os.readv(self.r, [view[got:]])
            except BlockingIOError:
                self._wait_readable()
                continue
            if n == 0:
                return False
            got += n
        return True

    def _read_public(self, n: int) -> bytes:
        buf = bytearray(n)
        if n and not self._read_into(memoryview(buf)):
            raise EOFError
        return bytes(buf)

    def _name(self) -> str:
        (n,) = self._read_public(1)
        raw = self._read_public(n)
        text = raw.decode("ascii", "replace")
        if not _NAME.fullmatch(text):
            raise ValueError("bad name")
        return text

    def read_answer(self) -> Decoded:
        """Read the helper's answer; a share in locked memory, or raise its error."""
        alloc = self._alloc
        try:
            magic, status, flags = RESULT.unpack(self._read_public(RESULT.size))
            if magic != RESULT_MAGIC or status not in (STATUS_OK, STATUS_ERROR):
                raise ValueError("bad header")
            if status == STATUS_ERROR:
                code = self._name()
                (mlen,) = struct.unpack(">H", self._read_public(2))
                message = self._read_public(min(mlen, 4096)).decode("utf-8", "replace")
                raise _helper_error(code, message)
            decoder = self._name()
            variant = self._name()
            attempts, plen = struct.unpack(">IH", self._read_public(6))
            if plen not in PAYLOAD_LENGTHS:
                raise ValueError("bad payload length")
            payload = alloc(plen)
            try:
                with payload.view() as mv:
                    if not self._read_into(mv):
                        raise EOFError
                    from core.carriers.qr import payload_to_indices

                    indices = payload_to_indices(mv, alloc=alloc)
            finally:
                payload.close()
        except (EOFError, ValueError, struct.error, _Answered):
            raise self.failure() from None
        return Decoded(indices, decoder, variant, attempts, _sandbox_facts(flags))

    def failure(self) -> QRDecoderFailed:
        """Why the helper ended without a usable answer (after reaping it)."""
        self.end_input()
        code = self.reap()
        lim = self.limits
        if self.killed_at_deadline:
            why = f"it did not finish within {lim.wall_s:g} s and was stopped"
        elif code == -signal.SIGSYS:
            why = (
                "its sandbox stopped it: it attempted a forbidden system call (the image may "
                "be crafted to attack the decoder)"
            )
        elif code in (-signal.SIGXCPU, -signal.SIGKILL):
            why = f"it used up its {lim.cpu_s} s of processor time"
        elif code is not None and code < 0:
            why = (
                f"it crashed ({_signal_name(-code)}; the image may be damaged, too large "
                f"for its {lim.address_space_mib} MiB memory limit, or crafted)"
            )
        elif code is None:
            why = "it did not exit"
        else:
            why = f"it ended without a valid answer (exit status {code})"
        return QRDecoderFailed(_could_not_read(why))

    # -- ending ---------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the helper (idempotent)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def reap(self) -> int | None:
        """Wait for the helper to exit (killing it after a short grace); its status."""
        try:
            return self.proc.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            try:
                return self.proc.wait(_EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                return None

    def close(self) -> None:
        """Release everything (the helper is killed if still running)."""
        self.end_input()
        self.kill()
        self.reap()
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError):
            self.proc.stdout.close()
        if self._bounce is not None:
            self._bounce.close()


def _could_not_read(why: str) -> str:
    return (
        f"could not read this image: the image decoder stopped ({why}). Nothing was read "
        "from it and the shares collected so far are kept. Try another photo or file of "
        "the share QR, or enter the share another way."
    )


def _helper_error(code: str, message: str) -> CarrierError:
    """The error the helper reported, rebuilt from a closed list of codes; the message is
    kept only if it is short printable text (the helper is not trusted to write to the
    screen)."""
    cls = HELPER_CODES.get(code)
    if cls is None:
        raise ValueError("unknown code")
    if not (0 < len(message) <= _MAX_MESSAGE and message.isascii() and message.isprintable()):
        message = {
            QRNotFound: "no QR code found in the image",
            QRPayloadError: "the QR code in the image is not a share",
            QRImageUnreadable: "the file is not an image this tool can read",
            QRDecoderFailed: _could_not_read("it reported an error"),
        }[cls]
    return cls(message)


def _sandbox_facts(flags: int) -> dict[str, Any]:
    return {name: bool(flags & bit) for bit, name in CONFINEMENT_FLAGS.items()}


def _run(
    frames: Iterable[FileFrame | _OpenedFile | Any],
    *,
    alloc: Any,
    mode: int,
    limits: Limits,
    require_seccomp: bool,
    max_frames: int = 1,
    timeout_s: float = 0.0,
    command: tuple[str, ...] | None = None,
    use_splice: bool = True,
) -> Decoded:
    with _sigpipe_blocked():
        helper = _Helper(
            alloc=alloc,
            mode=mode,
            limits=limits,
            require_seccomp=require_seccomp,
            max_frames=max_frames,
            timeout_s=timeout_s,
            command=command,
            use_splice=use_splice,
        )
        try:
            try:
                helper.send_request()
                sent = 0
                for frame in frames:
                    helper.send_frame(frame)
                    sent += 1
                    if sent >= max_frames:
                        break
            except _Answered:
                pass
            helper.end_input()
            return helper.read_answer()
        except _Answered:
            raise helper.failure() from None
        finally:
            helper.close()


def decode_file(
    path: str,
    *,
    alloc: Any = SecretBuffer,
    require_seccomp: bool = True,
    limits: Limits = FILE_LIMITS,
    command: tuple[str, ...] | None = None,
    use_splice: bool = True,
) -> Decoded:
    """Decode a share QR from an image file on media, in a fresh sandboxed helper.

    Args:
        path: the image file (opened here, read by nobody but the kernel and the helper).
        alloc: allocator for the locked result (the keyholder passes ``state.alloc``).
        require_seccomp: refuse to decode if the helper cannot install its seccomp filter
            (False only in demo mode).
        limits: the helper's resource limits.
        command: test hook: the helper's interpreter arguments instead of ``-I -m
            core.carriers.decodehelper`` (only callable in-process, never from a request).
        use_splice: False forces the locked bounce buffer (tests).

    Raises:
        QRImageUnreadable: the file is missing, not a regular file, empty, over 40 MiB, or
            not an image the decoders can read.
        QRNotFound, QRPayloadError: as the in-process chain.
        QRDecoderFailed: the helper crashed, hit a limit or was killed by its sandbox.
    """
    opened = _OpenedFile(*_open_image_file(path))  # limits checked before any helper starts
    try:
        return _run(
            [opened],
            alloc=alloc,
            mode=MODE_FILE,
            limits=limits,
            require_seccomp=require_seccomp,
            command=command,
            use_splice=use_splice,
        )
    finally:
        os.close(opened.fd)


def scan_frames(
    frames: Iterable[FileFrame | Any],
    *,
    alloc: Any = SecretBuffer,
    timeout_s: float = 30.0,
    max_frames: int = 300,
    require_seccomp: bool = True,
    limits: Limits | None = None,
    command: tuple[str, ...] | None = None,
) -> Decoded:
    """Feed frames (image files, or camera frames with ``fourcc``, ``width``, ``height``,
    ``data``) to one sandboxed helper until it reads a share QR in one of them.

    The helper runs the in-process scan (:func:`core.carriers.imagedecode.scan_frames`: the
    cheaper frame chain, ``max_frames`` and ``timeout_s``); frames are sent as it takes
    them. ``timeout_s`` is clamped to 1..300 s and ``max_frames`` to 1..65535 (they come
    from the UI's request). Raises as :func:`decode_file`.
    """
    timeout_s = min(max(float(timeout_s), 1.0), MAX_SCAN_S)
    max_frames = min(max(int(max_frames), 1), 0xFFFF)
    return _run(
        frames,
        alloc=alloc,
        mode=MODE_SCAN,
        limits=limits or scan_limits(timeout_s),
        require_seccomp=require_seccomp,
        max_frames=max_frames,
        timeout_s=timeout_s,
        command=command,
    )
