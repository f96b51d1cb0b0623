"""Allocation of locked buffers for the SLIP-39 code.

The keyholder may be started in *demo* mode (memory cannot be locked); it then calls
:func:`set_allow_unlocked` so the library's buffers follow the same policy. Default: locked
memory is required.
"""

from __future__ import annotations

from core.secmem import SecretBuffer

__all__ = ["alloc", "set_allow_unlocked"]

_allow_unlocked = False


def set_allow_unlocked(allow: bool) -> None:
    """Follow the keyholder's memory policy (demo fallback only when it allows it)."""
    global _allow_unlocked
    _allow_unlocked = allow


def alloc(size: int) -> SecretBuffer:
    """A new locked buffer of ``size`` bytes."""
    return SecretBuffer(size, allow_unlocked=_allow_unlocked)
