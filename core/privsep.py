"""Small pieces shared by the privileged services of the ceremony ISO.

The keyholder launcher (:mod:`core.keyholder.launcher`) and the media service
(:mod:`core.media_service`) are started by systemd as root, one process per connection on a
Unix socket (``Accept=yes``), with the connection on fds 0 and 1. Both check who connected
with ``SO_PEERCRED`` (set by the kernel at ``connect``; the socket's file mode is the first
lock, this is the second), read at most one short line, and take their policy from a
root-owned file. Standard library (and :mod:`core.errors`) only; no UI imports.
"""

from __future__ import annotations

import os
import pwd
import select
import socket
import stat
import struct
from collections.abc import Iterable
from typing import Final

from core.errors import KcmError

__all__ = [
    "MAX_LINE",
    "PrivsepError",
    "check_root_owned",
    "peer_credentials",
    "read_line",
    "uids_of",
]

MAX_LINE: Final = 256


class PrivsepError(KcmError):
    """A privileged service refuses (the message is for the people in the room)."""

    code = "privsep-refused"


def check_root_owned(path: str) -> None:
    """``path`` and every folder above it must be owned by root and writable by root alone
    (a root-owned sticky folder such as ``/tmp`` is accepted above root-owned folders:
    nobody else can rename or replace what root made in it). ``path`` may not be a link.

    Raises:
        PrivsepError: what is wrong, naming the file or folder.
        OSError: ``path`` cannot be opened.
    """
    p = os.path.abspath(path)
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        checks = [(p, os.fstat(fd))]
    finally:
        os.close(fd)
    d = os.path.dirname(p)
    while True:
        checks.append((d, os.stat(d)))
        if d == "/":
            break
        d = os.path.dirname(d)
    for name, s in checks:
        sticky_dir = stat.S_ISDIR(s.st_mode) and bool(s.st_mode & stat.S_ISVTX) and name != p
        if s.st_uid != 0 or (s.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir):
            raise PrivsepError(f"{name} must be owned by root and writable by root alone")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected (``SO_PEERCRED``: set by the kernel)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def peer_of_fd(fd: int) -> tuple[int, int, int]:
    """:func:`peer_credentials` of the socket on ``fd`` (left open).

    Raises:
        PrivsepError: ``fd`` is not a Unix socket.
    """
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        raise PrivsepError("expected the connection (a Unix socket) on the descriptor") from None
    try:
        if sock.family != socket.AF_UNIX:
            raise PrivsepError("expected a Unix socket")
        return peer_credentials(sock)
    except OSError:
        raise PrivsepError("expected a Unix socket") from None
    finally:
        sock.close()


def read_line(fd: int, timeout: float, limit: int = MAX_LINE) -> str:
    """One line (without its newline) from ``fd``, read byte by byte so that nothing after it
    is consumed; at most ``limit`` bytes, printable ASCII only, within ``timeout`` seconds.

    Raises:
        PrivsepError: timeout, end of input, too long, or a byte that is not printable ASCII.
    """
    buf = bytearray()
    while len(buf) <= limit:
        ready, _w, _x = select.select([fd], [], [], timeout)
        if not ready:
            raise PrivsepError("no request came in time")
        b = os.read(fd, 1)
        if not b:
            raise PrivsepError("the connection closed before the request ended")
        if b == b"\n":
            return buf.decode("ascii")
        if not 0x20 <= b[0] < 0x7F:
            raise PrivsepError("the request holds a byte that is not printable ASCII")
        buf += b
    raise PrivsepError("the request is too long")


def uids_of(users: Iterable[str | int]) -> set[int]:
    """The uids of user names (unknown names are left out) and numbers."""
    out: set[int] = set()
    for u in users:
        if isinstance(u, int):
            out.add(u)
            continue
        try:
            out.add(pwd.getpwnam(u).pw_uid)
        except KeyError:
            continue
    return out
