"""A short-lived ``bytes`` copy of a secret, for the few APIs that accept nothing else.

``cryptography``'s ``RSAPublicKey.encrypt`` demands ``bytes`` (FINDINGS section 5). The
least-bad way to call it with a secret held in locked memory: build the ``bytes`` at the
call site only, hand it to the one call, then overwrite the object's storage in place
(CPython stores a ``bytes`` value inline after a fixed header) before dropping it, so the
freed pymalloc block does not keep the secret. Residues that remain and cannot be removed
from Python: none in the object itself; OpenSSL clears its own OAEP padding buffers
(``OPENSSL_clear_free``); CPU registers and the native stack of that one call. The keyholder
process exits at ceremony end and the ISO boots with ``init_on_free=1``.

This mutates an immutable object: it is safe only for an object that nothing else can
reference, which is why the copy is created here and only yielded to the caller's single
call. Objects of fewer than two bytes are refused (CPython caches those).
"""

from __future__ import annotations

import ctypes
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["transient_bytes", "wipe_bytes"]

_OB_SVAL_OFFSET = sys.getsizeof(b"") - 1  # header size of a bytes object (CPython)


@contextmanager
def transient_bytes(view: memoryview) -> Iterator[bytes]:
    """Yield a ``bytes`` copy of ``view`` that is zeroed in place when the block exits.

    Args:
        view: the secret (a memoryview of a locked buffer), at least 2 bytes.

    Raises:
        RuntimeError: not CPython (the in-place wipe relies on its object layout).
        ValueError: fewer than 2 bytes.
    """
    if platform.python_implementation() != "CPython":  # pragma: no cover
        raise RuntimeError("transient_bytes needs CPython's bytes layout to wipe the copy")
    if view.nbytes < 2:
        raise ValueError("refusing a bytes copy of fewer than 2 bytes (interned objects)")
    copy = bytes(view)  # the one deliberate copy; wiped below
    try:
        yield copy
    finally:
        ctypes.memset(id(copy) + _OB_SVAL_OFFSET, 0, len(copy))
        del copy


def wipe_bytes(obj: bytes) -> None:
    """Zero a ``bytes`` object that a library returned and nothing else references.

    For secrets an API hands back only as ``bytes`` (an X25519 shared secret). The caller
    must own the only reference and drop it right after.
    """
    if platform.python_implementation() != "CPython":  # pragma: no cover
        return
    if len(obj) >= 2:
        ctypes.memset(id(obj) + _OB_SVAL_OFFSET, 0, len(obj))
