"""Allocation of locked buffers for the SLIP-39 code.

The keyholder may be started in *demo* mode (memory cannot be locked); it then calls
:func:`set_allow_unlocked` so the library's buffers follow the same policy. Default: locked
memory is required.

Temporaries (Feistel state, digest inputs, interpolation scratch) come from a small pool
of one-page locked buffers (:func:`scratch`): each is wiped (``explicit_bzero`` of the
whole page) when released, so a pooled buffer never holds anything between uses, and a
fresh ``memfd_secret`` mapping (several syscalls and a direct-map change) is not paid for
every temporary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from core.secmem import PAGE, SecretBuffer

__all__ = ["alloc", "scratch", "set_allow_unlocked"]

_allow_unlocked = False
_POOL: list[SecretBuffer] = []
_POOL_MAX: Final = 8


def set_allow_unlocked(allow: bool) -> None:
    """Follow the keyholder's memory policy (demo fallback only when it allows it)."""
    global _allow_unlocked
    _allow_unlocked = allow


def alloc(size: int) -> SecretBuffer:
    """A new locked buffer of ``size`` bytes."""
    return SecretBuffer(size, allow_unlocked=_allow_unlocked)


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
            buf = alloc(PAGE)
    else:
        buf = alloc(size)
    try:
        with buf.view(0, size) as mv:
            yield buf, mv
    finally:
        buf.wipe()
        if pooled and len(_POOL) < _POOL_MAX and not buf.closed:
            _POOL.append(buf)
        else:
            buf.close()
