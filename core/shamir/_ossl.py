"""PBKDF2-HMAC-SHA256 and HMAC-SHA256 on locked buffers, through libcrypto.

Why ctypes: ``cryptography``'s ``PBKDF2HMAC`` demands ``bytes`` for the salt, and the
SLIP-39 Feistel round puts half of the (encrypted) master secret into the salt; ``hashlib``
returns ``bytes``. Calling OpenSSL's ``PKCS5_PBKDF2_HMAC`` and ``HMAC`` with pointers into
SecretBuffers keeps every input and output in locked pages. libcrypto is always present
where Python's ``hashlib`` works (``_hashlib`` links it). OpenSSL's own stack/heap
temporaries are cleansed by OpenSSL (HMAC contexts are freed with OPENSSL_clear_free).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

from core.secmem import SecretBuffer

__all__ = ["hmac_sha256_into", "pbkdf2_sha256_into"]


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    lib = ctypes.CDLL(name)
    lib.EVP_sha256.restype = ctypes.c_void_p
    lib.EVP_sha256.argtypes = []
    lib.PKCS5_PBKDF2_HMAC.restype = ctypes.c_int
    lib.PKCS5_PBKDF2_HMAC.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
    ]  # fmt: skip
    lib.HMAC.restype = ctypes.c_void_p
    lib.HMAC.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
        ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    return lib


_lib: Final = _load()
_SHA256: Final = _lib.EVP_sha256()


def _span(buf: SecretBuffer, start: int, stop: int) -> int:
    if not 0 <= start <= stop <= buf.size:
        raise ValueError("range outside the buffer")
    return buf.address_for_native_call() + start


def pbkdf2_sha256_into(
    buf: SecretBuffer,
    password: tuple[int, int],
    salt: tuple[int, int],
    out: tuple[int, int],
    iterations: int,
) -> None:
    """PBKDF2-HMAC-SHA256 with password, salt and output all inside ``buf``.

    Args:
        buf: the locked scratch buffer.
        password: (start, stop) of the password in ``buf``.
        salt: (start, stop) of the salt in ``buf``.
        out: (start, stop) where the derived key is written.
        iterations: PBKDF2 iteration count.
    """
    p = _span(buf, *password)
    s = _span(buf, *salt)
    o = _span(buf, *out)
    ok = _lib.PKCS5_PBKDF2_HMAC(
        p, password[1] - password[0], s, salt[1] - salt[0], iterations, _SHA256,
        out[1] - out[0], o,
    )  # fmt: skip
    if ok != 1:
        raise RuntimeError("PBKDF2 failed in libcrypto")


def hmac_sha256_into(
    buf: SecretBuffer, key: tuple[int, int], data: tuple[int, int], out: int
) -> None:
    """HMAC-SHA256(key, data) into ``buf[out:out+32]``; key and data are spans of ``buf``."""
    k = _span(buf, *key)
    d = _span(buf, *data)
    o = _span(buf, out, out + 32)
    if not _lib.HMAC(_SHA256, k, key[1] - key[0], d, data[1] - data[0], o, None):
        raise RuntimeError("HMAC failed in libcrypto")
