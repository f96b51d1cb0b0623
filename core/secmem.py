"""Locked memory for secrets.

A :class:`SecretBuffer` is a page-aligned mapping that is never swapped, never written to a
core dump and wiped with ``memset`` when it is closed, garbage collected, or the process
exits. Two backends, chosen once per process:

* ``memfd_secret`` (Linux 5.14+, syscall 447 on x86_64): the pages are removed from the
  kernel's direct map, so not even root can read them through ``/proc/PID/mem``.
* ``mlock``: an anonymous private mapping, ``mlock``-ed, with ``MADV_DONTDUMP`` (not in core
  dumps) and ``MADV_WIPEONFORK`` (a forked child sees zeros).

If neither can lock memory (RLIMIT_MEMLOCK exhausted, no CAP_IPC_LOCK), allocation raises
:class:`SecureMemoryError` unless the caller allows the *demo* fallback explicitly; that
fallback is recorded in :data:`insecure_reasons` and reported by the keyholder to the UI.

Secrets are reachable only as a memoryview inside ``with buf.view() as mv:``; the view is
released on exit so no stray export keeps the mapping alive past ``close()``. Random key
material is drawn with ``getrandom(2)`` straight into the mapping (no ``os.urandom`` copy).

The backend can be forced with ``KCM_SECMEM_BACKEND=memfd_secret|mlock`` (the memory-scan
tests force ``mlock`` so that a root scanner can see inside the locked pages and prove that
they are wiped).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import errno
import hmac
import mmap
import os
import platform
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from core.errors import KcmError

__all__ = [
    "SecretBuffer",
    "SecureMemoryError",
    "backend",
    "ct_equal",
    "insecure_reasons",
    "is_utf8",
    "memset",
    "wipe_all",
]

PAGE: Final = mmap.PAGESIZE
_SYS_MEMFD_SECRET: Final = {"x86_64": 447, "aarch64": 447}.get(platform.machine())
_MADV_DONTDUMP: Final = getattr(mmap, "MADV_DONTDUMP", 16)
_MADV_WIPEONFORK: Final = getattr(mmap, "MADV_WIPEONFORK", 18)
_GRND_RANDOM_FLAGS: Final = 0  # blocking until the pool is initialised, urandom source

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.getrandom.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
_libc.getrandom.restype = ctypes.c_ssize_t
_libc.explicit_bzero.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.explicit_bzero.restype = None

#: Why memory is not locked in this process (empty when every buffer is locked).
insecure_reasons: list[str] = []

_live: weakref.WeakSet[SecretBuffer] = weakref.WeakSet()
_allow_unlocked_default = False
# Reentrant: wipe_all() also runs from the keyholder's signal handlers, which execute in
# the main thread between two bytecodes, possibly while that thread is inside a
# ``with _lock:`` block. A plain Lock would then deadlock the handler: no wipe, no exit.
_lock = threading.RLock()
_backend: str | None = None


class SecureMemoryError(KcmError, RuntimeError):
    """Locked memory could not be had, or a buffer was misused."""

    code = "secure-memory"


def _errno_text(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))}: {os.strerror(err)}"


def _memfd_secret() -> int:
    """Return a memfd_secret file descriptor, or raise OSError."""
    if _SYS_MEMFD_SECRET is None:
        raise OSError(errno.ENOSYS, "memfd_secret is not known on this architecture")
    fd = _libc.syscall(_SYS_MEMFD_SECRET, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, _errno_text(err))
    return int(fd)


def backend() -> str:
    """Return the backend this process uses: ``memfd_secret`` or ``mlock``.

    Probed once: ``memfd_secret`` when the kernel offers it (and a page can be mapped),
    else ``mlock``. ``KCM_SECMEM_BACKEND`` forces one.
    """
    global _backend
    if _backend is not None:
        return _backend
    forced = os.environ.get("KCM_SECMEM_BACKEND", "")
    if forced in ("memfd_secret", "mlock"):
        _backend = forced
        return _backend
    try:
        fd = _memfd_secret()
        try:
            os.ftruncate(fd, PAGE)
            probe = mmap.mmap(fd, PAGE)
            probe.close()
        finally:
            os.close(fd)
        _backend = "memfd_secret"
    except OSError:
        _backend = "mlock"
    return _backend


def _address(m: mmap.mmap) -> int:
    # A ctypes view exports the buffer; it is released right away (del) so that
    # mmap.close() is still possible later.
    holder = (ctypes.c_char * 1).from_buffer(m)
    addr = ctypes.addressof(holder)
    del holder
    return addr


def memset(target: memoryview | bytearray, value: int = 0) -> None:
    """Overwrite a writable buffer in place with ``explicit_bzero``/``memset``.

    Never a Python loop (which the interpreter may leave partially done and is slow).
    """
    mv = memoryview(target)
    try:
        if mv.readonly:
            raise SecureMemoryError("cannot wipe a read-only buffer")
        n = mv.nbytes
        if n == 0:
            return
        c = (ctypes.c_char * n).from_buffer(mv.cast("B") if mv.format != "B" else mv)
        if value == 0:
            _libc.explicit_bzero(ctypes.addressof(c), n)
        else:
            ctypes.memset(ctypes.addressof(c), value, n)
        del c
    finally:
        mv.release()


def ct_equal(a: memoryview | bytes | bytearray, b: memoryview | bytes | bytearray) -> bool:
    """Constant-time comparison of two secrets (or a secret and a public value)."""
    return hmac.compare_digest(a, b)


def is_utf8(view: memoryview | bytes | bytearray) -> bool:
    """True if ``view`` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
    nothing above U+10FFFF).

    For secrets (a PIN, a passphrase): it reads the bytes one at a time as small ints
    (CPython's cached singletons), so no copy of the secret is made, and unlike
    ``bytes.decode`` it raises nothing: a ``UnicodeDecodeError`` would hold the whole
    input in its ``object`` attribute, and chained as ``__context__`` it outlives the call.
    """
    n = len(view)
    i = 0
    while i < n:
        b = view[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif b == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= b <= 0xEC or 0xEE <= b <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif b == 0xED:
            need, lo, hi = 2, 0x80, 0x9F  # no UTF-16 surrogates
        elif b == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= b <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif b == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F  # nothing above U+10FFFF
        else:
            return False
        if i + need >= n:  # truncated sequence
            return False
        if not lo <= view[i + 1] <= hi:
            return False
        for k in range(2, need + 1):
            if not 0x80 <= view[i + k] <= 0xBF:
                return False
        i += need + 1
    return True


class SecretBuffer:
    """A fixed-size locked buffer for one secret.

    Args:
        size: number of usable bytes (the mapping is rounded up to whole pages).
        allow_unlocked: permit an unlocked (demo) buffer when memory cannot be locked;
            ``None`` follows the process default (:func:`set_allow_unlocked_default`).
            Recorded in :data:`insecure_reasons`; never allowed on the ceremony ISO.

    Raises:
        SecureMemoryError: memory could not be mapped and locked.
    """

    __slots__ = ("__weakref__", "_addr", "_closed", "_map", "_maplen", "_views", "kind", "size")

    def __init__(self, size: int, *, allow_unlocked: bool | None = None) -> None:
        if allow_unlocked is None:
            allow_unlocked = _allow_unlocked_default
        if size <= 0:
            raise SecureMemoryError("a secret buffer needs a positive size")
        self.size = size
        self._maplen = -(-size // PAGE) * PAGE
        self._closed = False
        self._views = 0
        kind = backend()
        m: mmap.mmap | None = None
        if kind == "memfd_secret":
            try:
                fd = _memfd_secret()
                try:
                    os.ftruncate(fd, self._maplen)
                    m = mmap.mmap(fd, self._maplen)
                finally:
                    os.close(fd)
            except OSError as exc:  # RLIMIT_MEMLOCK applies to secretmem too
                kind = "mlock"
                insecure_reasons.append(f"memfd_secret failed ({exc.strerror}); fell back to mlock")
        if m is None:
            m = mmap.mmap(-1, self._maplen, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            addr = _address(m)
            m.madvise(_MADV_DONTDUMP)
            try:
                m.madvise(_MADV_WIPEONFORK)
            except OSError:
                pass
            if _libc.mlock(ctypes.c_void_p(addr), self._maplen) != 0:
                err = ctypes.get_errno()
                if not allow_unlocked:
                    m.close()
                    raise SecureMemoryError(
                        f"cannot lock memory for a secret ({_errno_text(err)}). Run the "
                        "ceremony as root or raise RLIMIT_MEMLOCK; for a demo only, allow "
                        "unlocked memory explicitly."
                    )
                kind = "unlocked"
                reason = f"memory not locked ({_errno_text(err)}): DEMO ONLY"
                if reason not in insecure_reasons:
                    insecure_reasons.append(reason)
        self._map = m
        self._addr = _address(m)
        self.kind = kind
        with _lock:
            _live.add(self)

    @property
    def locked(self) -> bool:
        """True when the pages are locked (mlock) or secret (memfd_secret)."""
        return self.kind in ("memfd_secret", "mlock")

    @property
    def closed(self) -> bool:
        """True once the buffer has been wiped and unmapped."""
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise SecureMemoryError("secret buffer used after it was wiped and closed")

    @contextmanager
    def view(self, start: int = 0, stop: int | None = None) -> Iterator[memoryview]:
        """Yield a writable memoryview of ``[start:stop]``; released on exit."""
        self._check()
        stop = self.size if stop is None else stop
        if not 0 <= start <= stop <= self.size:
            raise SecureMemoryError("view outside the secret buffer")
        whole = memoryview(self._map)
        mv = whole[start:stop]
        self._views += 1
        try:
            yield mv
        finally:
            self._views -= 1
            mv.release()
            whole.release()

    def fill_random(self, start: int = 0, stop: int | None = None) -> None:
        """Fill ``[start:stop]`` from getrandom(2), directly into the locked pages."""
        self._check()
        stop = self.size if stop is None else stop
        if not 0 <= start <= stop <= self.size:
            raise SecureMemoryError("random fill outside the secret buffer")
        pos = start
        while pos < stop:
            n = _libc.getrandom(ctypes.c_void_p(self._addr + pos), stop - pos, _GRND_RANDOM_FLAGS)
            if n < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                raise SecureMemoryError(f"getrandom failed: {_errno_text(err)}")
            pos += n

    def wipe(self) -> None:
        """Zero the whole mapping (memset), keeping the buffer usable."""
        if not self._closed:
            _libc.explicit_bzero(ctypes.c_void_p(self._addr), self._maplen)

    def close(self) -> None:
        """Wipe, unlock and unmap. Idempotent."""
        if self._closed:
            return
        self.wipe()
        if self.kind == "mlock":
            _libc.munlock(ctypes.c_void_p(self._addr), self._maplen)
        self._closed = True
        try:
            self._map.close()
        except BufferError:
            # A view is still exported (a bug in the caller); the bytes are already
            # zero and the mapping goes when the process exits.
            pass
        with _lock:
            _live.discard(self)

    def __enter__(self) -> SecretBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser
            pass

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:  # never shows contents
        state = "closed" if self._closed else self.kind
        return f"<SecretBuffer {self.size} bytes, {state}>"

    def __reduce__(self) -> str:
        raise SecureMemoryError("secret buffers cannot be pickled")

    def address_for_native_call(self) -> int:
        """Address of the first byte, for ctypes calls that write into the buffer."""
        self._check()
        return self._addr


def set_allow_unlocked_default(allow: bool) -> None:
    """Set the process-wide demo fallback (the keyholder sets it from ``--allow-unlocked``),
    so that every allocation, including those deep in libraries' helpers, follows it."""
    global _allow_unlocked_default
    _allow_unlocked_default = allow


def wipe_all(*, keep: tuple[SecretBuffer, ...] = ()) -> None:
    """Wipe every live buffer of this process (signal handlers and exit call this), except
    those in ``keep`` (the keyholder's retained signing key after a wipe step)."""
    with _lock:
        live = list(_live)
    for buf in live:
        if not any(buf is k for k in keep):
            buf.wipe()


def close_all() -> None:
    """Wipe and unmap every live buffer."""
    with _lock:
        live = list(_live)
    for buf in live:
        buf.close()


atexit.register(close_all)
