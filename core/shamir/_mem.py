"""Allocation of locked buffers for the SLIP-39 code.

The keyholder may be started in *demo* mode (memory cannot be locked); it then calls
:func:`set_allow_unlocked` so the library's buffers follow the same policy. Default: locked
memory is required.

Temporaries (Feistel state, digest inputs, interpolation scratch) come from a small pool
of one-page locked buffers (:func:`scratch`): each is wiped (``explicit_bzero`` of the
whole page) when released, so a pooled buffer never holds anything between uses, and a
fresh ``memfd_secret`` mapping (several syscalls and a direct-map change) is not paid for
every temporary.

Small long-lived buffers (share values of 16/32 bytes, word-index buffers of 40/66 bytes)
come from :func:`alloc` as *slots* of a slab: one locked page (a normal
:class:`~core.secmem.SecretBuffer`, so ``wipe_all``/``close_all`` cover it) cut into
equal slots of 32, 64 or 128 bytes. A :class:`SlotBuffer` behaves like a SecretBuffer
(``view``, ``fill_random``, ``wipe``, ``close``, ``size``, ``closed``) but its views are
confined to its slot, and closing it wipes the slot (``explicit_bzero``) before the slot
can be handed out again. A 16 x 16 split makes ~800 such buffers: one mapping each cost
about a third of the whole split + recover time. Larger sizes get their own mapping.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from core.secmem import PAGE, SecretBuffer, SecureMemoryError

__all__ = ["SlotBuffer", "alloc", "scratch", "set_allow_unlocked"]

_allow_unlocked = False
_POOL: list[SecretBuffer] = []
_POOL_MAX: Final = 8
_SLOT_SIZES: Final = (32, 64, 128)
_EMPTY_SLABS_KEPT: Final = 8  # per slot size: fully free (and wiped) pages kept mapped
# Reentrant for the same reason as core.secmem._lock: the signal handler's wipe closes
# slot buffers (taking this lock) in the main thread, which may be inside alloc().
_slab_lock = threading.RLock()

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_bzero = _libc.explicit_bzero
_bzero.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_bzero.restype = None


def set_allow_unlocked(allow: bool) -> None:
    """Follow the keyholder's memory policy (demo fallback only when it allows it)."""
    global _allow_unlocked
    _allow_unlocked = allow


class _Slab:
    """One locked page cut into ``PAGE // slot`` slots; ``free`` lists free offsets."""

    __slots__ = ("addr", "buf", "free", "map", "nslots", "slot")

    def __init__(self, slot: int) -> None:
        self.buf = SecretBuffer(PAGE, allow_unlocked=_allow_unlocked)
        # The page's mapping and address, for slot views and wipes without a second
        # context manager per view (checked against ``buf.closed`` before every use).
        self.map = self.buf._map
        self.addr = self.buf.address_for_native_call()
        self.slot = slot
        self.nslots = PAGE // slot
        self.free = list(range(PAGE - slot, -1, -slot))


# Per slot size: slabs with at least one free slot (a full slab leaves the list).
_slabs: dict[int, list[_Slab]] = {s: [] for s in _SLOT_SIZES}


class SlotBuffer(SecretBuffer):
    """A locked buffer that is one slot of a shared locked page (see module doc)."""

    __slots__ = ("_off", "_slab")

    def __init__(self, slab: _Slab, off: int, size: int) -> None:
        # SecretBuffer.__init__ is not called: the mapping belongs to the slab's page.
        self._slab = slab
        self._off = off
        self.size = size
        self._maplen = size
        self._closed = False
        self._views = 0
        self.kind = slab.buf.kind

    @property
    def closed(self) -> bool:
        """True once the slot has been wiped and released (or its page closed)."""
        return self._closed or self._slab.buf._closed

    def _check(self) -> None:
        if self._closed or self._slab.buf._closed:
            raise SecureMemoryError("secret buffer used after it was wiped and closed")

    # A plain context-manager object rather than @contextmanager: a 16 x 16 split and
    # recovery opens ~1600 slot views, and the generator machinery was ~40% of each.
    def view(  # type: ignore[override]
        self, start: int = 0, stop: int | None = None
    ) -> _SlotView:
        """A context manager yielding a writable memoryview of ``[start:stop]`` of the slot.

        The view is released on exit.
        """
        self._check()
        stop = self.size if stop is None else stop
        if not 0 <= start <= stop <= self.size:
            raise SecureMemoryError("view outside the secret buffer")
        return _SlotView(self, self._off + start, self._off + stop)

    def fill_random(self, start: int = 0, stop: int | None = None) -> None:
        """Fill ``[start:stop]`` of the slot from getrandom(2)."""
        self._check()
        stop = self.size if stop is None else stop
        if not 0 <= start <= stop <= self.size:
            raise SecureMemoryError("random fill outside the secret buffer")
        self._slab.buf.fill_random(self._off + start, self._off + stop)

    def wipe(self) -> None:
        """Zero the whole slot (``explicit_bzero``), keeping the buffer usable."""
        if not (self._closed or self._slab.buf._closed):
            _bzero(self._slab.addr + self._off, self._slab.slot)

    def close(self) -> None:
        """Wipe the slot and give it back to its page. Idempotent."""
        if self._closed:
            return
        slab = self._slab
        if not slab.buf._closed:
            _bzero(slab.addr + self._off, slab.slot)
        self._closed = True
        _release(slab, self._off)

    def address_for_native_call(self) -> int:
        """Address of the first byte of the slot."""
        self._check()
        return self._slab.buf.address_for_native_call() + self._off


class _SlotView:
    """``with slot.view() as mv``: the memoryview is made on enter, released on exit."""

    __slots__ = ("_buf", "_mv", "_start", "_stop", "_whole")

    def __init__(self, buf: SlotBuffer, start: int, stop: int) -> None:
        self._buf = buf
        self._start = start
        self._stop = stop

    def __enter__(self) -> memoryview:
        buf = self._buf
        if buf._closed or buf._slab.buf._closed:
            raise SecureMemoryError("secret buffer used after it was wiped and closed")
        self._whole = whole = memoryview(buf._slab.map)
        self._mv = mv = whole[self._start : self._stop]
        buf._views += 1
        return mv

    def __exit__(self, *exc: object) -> None:
        self._buf._views -= 1
        self._mv.release()
        self._whole.release()


def _release(slab: _Slab, off: int) -> None:
    with _slab_lock:
        if slab.buf.closed:  # the page went with close_all(): nothing to give back
            return
        slab.free.append(off)
        partial = _slabs[slab.slot]
        if len(slab.free) == 1:
            partial.append(slab)  # was full
        elif len(slab.free) == slab.nslots:
            empty = sum(1 for s in partial if len(s.free) == s.nslots)
            if empty > _EMPTY_SLABS_KEPT:
                partial.remove(slab)
                slab.buf.close()


def alloc(size: int) -> SecretBuffer:
    """A locked buffer of ``size`` bytes (a slab slot when small, else its own mapping)."""
    if size <= 0:
        raise SecureMemoryError("a secret buffer needs a positive size")
    for slot in _SLOT_SIZES:
        if size <= slot:
            break
    else:
        return SecretBuffer(size, allow_unlocked=_allow_unlocked)
    with _slab_lock:
        partial = _slabs[slot]
        while partial and (partial[-1].buf.closed or not partial[-1].free):
            partial.pop()  # closed by close_all(), or (defensively) full
        if not partial:
            partial.append(_Slab(slot))
        slab = partial[-1]
        off = slab.free.pop()
        if not slab.free:
            partial.pop()
    return SlotBuffer(slab, off, size)


@contextmanager
def scratch(size: int) -> Iterator[tuple[SecretBuffer, memoryview]]:
    """A wiped locked temporary of ``size`` bytes: ``(buffer, view of [0:size])``.

    The buffer is wiped on exit (also on error) and returned to the pool.
    """
    pooled = size <= PAGE
    buf: SecretBuffer | None = None
    if pooled:
        while _POOL and buf is None:
            cand = _POOL.pop()
            if not cand.closed:
                buf = cand
        if buf is None:
            buf = SecretBuffer(PAGE, allow_unlocked=_allow_unlocked)
    else:
        buf = SecretBuffer(size, allow_unlocked=_allow_unlocked)
    try:
        with buf.view(0, size) as mv:
            yield buf, mv
    finally:
        buf.wipe()
        if pooled and len(_POOL) < _POOL_MAX and not buf.closed:
            _POOL.append(buf)
        else:
            buf.close()
