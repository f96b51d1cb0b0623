"""File access on media and workspaces that may be hostile: directory descriptors only.

A USB stick, or a ceremony workspace on one, is prepared by someone else. It may hold
symbolic links planted where the ceremony will write (``manifests/set-1234.json.tmp ->
/etc/shadow``, ``exports -> /run``) or where it will read (``recipients/kms.pem ->
/dev/zero``). Path-based calls (``open(path)``, ``Path.mkdir``, ``os.replace``) follow
them. So everything below a root goes through :class:`Dir`:

* the root is opened once as a directory descriptor with ``O_DIRECTORY|O_NOFOLLOW``;
  every directory below it is reached component by component with ``openat`` (Python:
  ``os.open(..., dir_fd=...)``) and ``O_NOFOLLOW``, created with ``mkdirat``;
* a symbolic link met anywhere on the way is refused, and the error names it;
* a new file is written under a random temporary name (``.NAME.<16 hex>.partial``) opened
  with ``O_CREAT|O_EXCL|O_NOFOLLOW``, ``fsync``-ed, checked through its descriptor to be on
  the root's filesystem, then renamed into place inside the same directory descriptor
  (``renameat2(RENAME_NOREPLACE)`` for a new file), and the directory is ``fsync``-ed;
* a file is read with ``O_NOFOLLOW|O_NONBLOCK``, only if ``fstat`` says it is a regular
  file on the root's filesystem and no larger than the caller's limit (checked before a
  single byte is read; the read itself is bounded too).

"On the root's filesystem" is checked with the kernel's mount id of each descriptor
(``/proc/self/fdinfo/N``, :func:`mount_id`): on overlayfs (a live system, a container)
a file's ``st_dev`` differs from its folder's, so ``st_dev`` alone cannot say it; a mount
id can (a link or a mount point leading elsewhere gives another one). Without ``/proc`` it
falls back to ``st_dev``. Media add the block device check (``core/media.py``): every
file written must have the ``st_dev`` of the stick's block device.

Only public data is written or read here (manifests, envelopes, journal exports, public
keys); secrets never reach a file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from core.errors import KcmError

__all__ = [
    "MAX_KEY_FILE",
    "Dir",
    "NotARegularFile",
    "SafeIOError",
    "SymlinkRefused",
    "TooLarge",
    "Written",
    "WrongDevice",
    "mount_id",
    "read_limited",
    "same_filesystem",
]

#: The one size limit for every key file brought in on media (recipient public keys,
#: provider wrapping keys, age / OpenSSH / JWK keys): checked with ``fstat`` before any
#: byte is read, and again on the bytes themselves by the parsers.
MAX_KEY_FILE: Final = 64 * 1024

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_RENAME_NOREPLACE: Final = 1
PARTIAL_SUFFIX: Final = ".partial"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

Writer = Callable[[int, memoryview], int]
Progress = Callable[[int], None]


class SafeIOError(KcmError):
    """A path on a medium or workspace was refused; ``message`` says what to do."""

    code = "unsafe-path"


class SymlinkRefused(SafeIOError):
    """A symbolic link (or something else that is not a plain directory) is on the path."""

    code = "path-link"


class NotARegularFile(SafeIOError):
    """What should be a plain file is a device, a FIFO, a directory..."""

    code = "path-not-a-file"


class TooLarge(SafeIOError):
    """A file is larger than the caller accepts (checked before reading it)."""

    code = "path-too-large"


class WrongDevice(SafeIOError):
    """A file written or read is not on the device of its root (a redirected write)."""

    code = "path-wrong-device"


@dataclass(frozen=True)
class Written:
    """A file written through :meth:`Dir.write_new` or :meth:`Dir.replace` (``dev``: its
    ``fstat().st_dev``)."""

    name: str
    size: int
    sha256: str
    dev: int


def mount_id(fd: int) -> int | None:
    """The kernel's id of the mount the open file ``fd`` lives on (None without /proc)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def same_filesystem(fd_a: int, fd_b: int) -> bool:
    """True if two open files are on the same mount (mount ids; else ``st_dev``)."""
    a, b = mount_id(fd_a), mount_id(fd_b)
    if a is not None and b is not None:
        return a == b
    return os.fstat(fd_a).st_dev == os.fstat(fd_b).st_dev


def _check_component(name: str, where: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise SafeIOError(f"{where}: {name!r} is not a plain file or folder name")


def _split(rel: str) -> list[str]:
    if rel.startswith("/"):
        raise SafeIOError(f"{rel!r} must be a path relative to its folder")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    for p in parts:
        _check_component(p, rel)
    return parts


def _what(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


class Dir:
    """An open directory, reached without following any symbolic link.

    Attributes:
        fd: the directory descriptor (``O_DIRECTORY|O_NOFOLLOW``).
        path: its path, for messages only (never used to reach files).
        dev: the root folder's ``st_dev``.
        root_fd: a descriptor of the root folder: every folder and file below must be on
            its filesystem (:func:`same_filesystem`).
    """

    def __init__(self, fd: int, path: str, dev: int, root_fd: int | None = None) -> None:
        self.fd = fd
        self.path = path
        self.dev = dev
        self.root_fd = fd if root_fd is None else root_fd

    # ------------------------------------------------------------------ opening

    @classmethod
    def open_root(cls, path: str | os.PathLike[str], *, create: bool = False) -> Dir:
        """Open a root folder (a medium's mount point, a workspace) as a descriptor.

        The last component must not be a symbolic link (``O_NOFOLLOW``); the folders
        above it are the caller's choice (``/media``, the operator's workspace path).

        Args:
            path: the folder.
            create: create it (one level, mode 0755) when missing.

        Raises:
            SymlinkRefused: the folder is a symbolic link or not a folder.
            OSError: it cannot be opened (missing, permission, medium removed).
        """
        p = os.fspath(path)
        try:
            fd = os.open(p, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(p, 0o755)
            fd = os.open(p, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise SymlinkRefused(_refusal(p, os.stat(p, follow_symlinks=False))) from None
            raise
        return cls(fd, p, os.fstat(fd).st_dev)

    def _child(self, name: str, *, create: bool, exclusive: bool) -> Dir:
        shown = f"{self.path.rstrip('/')}/{name}"
        if exclusive:
            os.mkdir(name, 0o755, dir_fd=self.fd)  # FileExistsError if anything is there
            created = True
        else:
            created = False
        while True:
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
                break
            except FileNotFoundError:
                if not create or created:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=self.fd)
                except FileExistsError:
                    pass  # appeared meanwhile: open it (still without following links)
                created = True
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                    raise SymlinkRefused(_refusal(shown, st)) from None
                raise
        if not same_filesystem(fd, self.root_fd):
            os.close(fd)
            raise WrongDevice(
                f"{shown} is on another filesystem (something is mounted there): refused"
            )
        if created:
            os.fsync(self.fd)
        return Dir(fd, shown, self.dev, os.dup(self.root_fd))

    def sub(self, rel: str, *, create: bool = False, exclusive: bool = False) -> Dir:
        """Open (or create) the folder ``rel`` below this one, one component at a time.

        Args:
            rel: ``a/b/c`` (no ``..``, not absolute).
            create: create missing folders (mode 0755).
            exclusive: the last folder must not exist yet (it is created).

        Raises:
            SymlinkRefused: a component is a symbolic link or not a folder (named).
            WrongDevice: a component is another filesystem's mount point.
            FileExistsError: ``exclusive`` and the last folder exists.
            OSError: as ``openat``/``mkdirat``.
        """
        parts = _split(rel)
        if not parts:
            return Dir(os.dup(self.fd), self.path, self.dev, os.dup(self.root_fd))
        cur: Dir = self
        opened: list[Dir] = []
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                nxt = cur._child(part, create=create, exclusive=exclusive and last)
                opened.append(nxt)
                cur = nxt
        except BaseException:
            for d in opened:
                d.close()
            raise
        for d in opened[:-1]:
            d.close()
        return opened[-1]

    def close(self) -> None:
        """Close the descriptors (idempotent)."""
        fd, root_fd = self.fd, self.root_fd
        self.fd = self.root_fd = -1
        for d in {fd, root_fd}:
            if d >= 0:
                try:
                    os.close(d)
                except OSError:
                    pass

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def lstat(self, name: str) -> os.stat_result | None:
        """``lstat`` of an entry (None when it does not exist)."""
        _check_component(name, self.path)
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        """True if anything (even a dangling symbolic link) has this name."""
        return self.lstat(name) is not None

    def names(self) -> list[str]:
        """Entry names, sorted."""
        return sorted(os.listdir(self.fd))

    def fsync(self) -> None:
        """Flush the directory (new names, renames) to the medium."""
        os.fsync(self.fd)

    # ------------------------------------------------------------------ reading

    @contextmanager
    def open_file(self, name: str, *, limit: int | None = None) -> Iterator[int]:
        """Open a plain file below this folder for reading (``O_NOFOLLOW``).

        Raises:
            SymlinkRefused, NotARegularFile, WrongDevice, TooLarge, OSError.
        """
        _check_component(name, self.path)
        shown = f"{self.path.rstrip('/')}/{name}"
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                raise SymlinkRefused(_refusal(shown, st)) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotARegularFile(f"{shown} is {_what(st)}, not a plain file: refused")
            if not same_filesystem(fd, self.root_fd):
                raise WrongDevice(f"{shown} is not on the same medium as {self.path}: refused")
            if limit is not None and st.st_size > limit:
                raise TooLarge(
                    f"{shown} is {st.st_size} bytes, more than the {limit} accepted here: refused "
                    "(nothing of it was read)"
                )
            yield fd
        finally:
            os.close(fd)

    def read(self, name: str, *, limit: int) -> bytes:
        """Read a plain file of at most ``limit`` bytes (size checked before reading).

        Raises:
            SymlinkRefused, NotARegularFile, WrongDevice, TooLarge, OSError.
        """
        with self.open_file(name, limit=limit) as fd:
            return read_limited(fd, limit, f"{self.path.rstrip('/')}/{name}")

    def read_path(self, rel: str, *, limit: int) -> bytes:
        """:meth:`read` of ``a/b/name`` (every folder on the way reached as in :meth:`sub`)."""
        parts = _split(rel)
        if not parts:
            raise SafeIOError(f"{rel!r} names no file")
        if len(parts) == 1:
            return self.read(parts[0], limit=limit)
        with self.sub("/".join(parts[:-1])) as d:
            return d.read(parts[-1], limit=limit)

    # ------------------------------------------------------------------ writing

    def _write_tmp(
        self, name: str, data: bytes, writer: Writer, progress: Progress | None
    ) -> tuple[str, os.stat_result]:
        _check_component(name, self.path)
        tmp = f".{name}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        fd = os.open(tmp, _NEW_FLAGS, 0o644, dir_fd=self.fd)
        try:
            view = memoryview(data)
            pos = 0
            while pos < len(view):
                n = writer(fd, view[pos : pos + (1 << 20)])
                if n <= 0:
                    raise OSError(errno.EIO, "short write", name)
                pos += n
                if progress is not None:
                    progress(pos)
            os.fsync(fd)
            st = os.fstat(fd)
            here = same_filesystem(fd, self.root_fd)
        except BaseException:
            os.close(fd)
            self.unlink_quiet(tmp)
            raise
        os.close(fd)
        if not here:
            self.unlink_quiet(tmp)
            raise WrongDevice(
                f"{name} did not land on the filesystem of {self.path} (device {st.st_dev}): "
                "the write was redirected; refused"
            )
        return tmp, st

    def write_new(
        self,
        name: str,
        data: bytes,
        *,
        writer: Writer = os.write,
        progress: Progress | None = None,
    ) -> Written:
        """Write a new file ``name``; an existing entry of that name (a file, a link) is
        never replaced.

        Raises:
            FileExistsError: ``name`` exists (whatever it is).
            WrongDevice: the bytes did not land on the root's device.
            OSError: out of space, read-only, I/O error (the temporary file is removed).
        """
        tmp, st = self._write_tmp(name, data, writer, progress)
        try:
            self._rename_noreplace(tmp, name)
        except BaseException:
            self.unlink_quiet(tmp)
            raise
        self.fsync()
        return Written(name, st.st_size, hashlib.sha256(data).hexdigest(), st.st_dev)

    def replace(self, name: str, data: bytes, *, writer: Writer = os.write) -> Written:
        """Write ``name`` atomically, replacing a plain file of that name (never a link:
        an existing symbolic link or non-file there is refused, naming it).

        Raises:
            SymlinkRefused, NotARegularFile, WrongDevice, OSError.
        """
        st0 = self.lstat(name)
        shown = f"{self.path.rstrip('/')}/{name}"
        if st0 is not None and stat.S_ISLNK(st0.st_mode):
            raise SymlinkRefused(_refusal(shown, st0))
        if st0 is not None and not stat.S_ISREG(st0.st_mode):
            raise NotARegularFile(f"{shown} is {_what(st0)}, not a plain file: refused")
        tmp, st = self._write_tmp(name, data, writer, None)
        try:
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.unlink_quiet(tmp)
            raise
        self.fsync()
        return Written(name, st.st_size, hashlib.sha256(data).hexdigest(), st.st_dev)

    def _rename_noreplace(self, src: str, dst: str) -> None:
        if _renameat2 is not None:
            rc = _renameat2(self.fd, src.encode(), self.fd, dst.encode(), _RENAME_NOREPLACE)
            if rc == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS):
                raise OSError(err, os.strerror(err), dst)
        # A filesystem without RENAME_NOREPLACE (vfat on old kernels): link() never
        # replaces either; where it is missing too, check then rename.
        try:
            os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            os.unlink(src, dir_fd=self.fd)
            return
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        if self.exists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
        os.rename(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink_quiet(self, name: str) -> None:
        """Remove an entry if possible (never follows a link: the link itself goes)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def rmdir_quiet(self, name: str) -> None:
        """Remove an empty folder if possible."""
        try:
            os.rmdir(name, dir_fd=self.fd)
        except OSError:
            pass


def read_limited(fd: int, limit: int, shown: str) -> bytes:
    """Read at most ``limit`` bytes from ``fd``; more is refused (a file that grew)."""
    chunks: list[bytes] = []
    got = 0
    while True:
        block = os.read(fd, min(1 << 16, limit + 1 - got))
        if not block:
            break
        chunks.append(block)
        got += len(block)
        if got > limit:
            raise TooLarge(f"{shown} is larger than the {limit} bytes accepted here: refused")
    return b"".join(chunks)


def _refusal(shown: str, st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return (
            f"{shown} is a symbolic link: refused (links on a medium could redirect what the "
            "ceremony reads or writes). Remove the link or use another medium."
        )
    return f"{shown} is {_what(st)}, not a folder: refused"
