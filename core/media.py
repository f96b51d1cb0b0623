"""Removable media: find them, write exports atomically, verify, say when it is safe to remove.

Only public data (sealed envelopes, BYOK files, manifests, journal exports) is ever written
here. A write (:func:`write_export`) is:

1. checks first: the medium is removable (or the explicit demo folder), writable, and has
   room for everything; no file of the export exists yet (never overwrite silently);
2. each file written as ``.NAME.partial`` (``O_EXCL``), ``fsync``, then renamed to ``NAME``
   without replacing anything (``renameat2(RENAME_NOREPLACE)``), then the directory is
   ``fsync``-ed;
3. ``MANIFEST.sha256`` last (``sha256sum -c`` format, SHA-256 of every file): an export
   without its manifest is incomplete, whatever else is on the stick;
4. everything read back (page cache dropped first where the kernel allows) and compared;
5. ``sync``, then optionally unmount; only then is ``safe_to_remove`` True.

Any failure raises a :class:`MediaError` subclass with a message for the room, after removing
what this attempt wrote where the medium still allows it; the caller keeps the secret in the
keyholder and offers a retry on the same or another medium.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "MANIFEST_NAME",
    "ExportResult",
    "MediaError",
    "Medium",
    "MediumGone",
    "NameClash",
    "NotRemovable",
    "OutOfSpace",
    "ReadOnlyMedium",
    "VerifyFailed",
    "folder_medium",
    "list_removable",
    "refresh",
    "verify_export",
    "write_export",
]

MANIFEST_NAME: Final = "MANIFEST.sha256"
CHUNK: Final = 1 << 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_ST_RDONLY: Final = 1
_RENAME_NOREPLACE: Final = 1
_AT_FDCWD: Final = -100
_SYSTEM_MOUNTS: Final = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home", "/run/live/medium")

ProgressCallback = Callable[[int, int, str], None]
Writer = Callable[[int, memoryview], int]
Opener = Callable[[str, int, int], int]


class MediaError(Exception):
    """A media operation failed; ``message`` tells the room what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutOfSpace(MediaError):
    """Not enough free space on the medium."""


class ReadOnlyMedium(MediaError):
    """The medium is mounted read-only or write-protected."""


class MediumGone(MediaError):
    """The medium was removed or failed (I/O error) during the operation."""


class NameClash(MediaError):
    """A file of the export already exists on the medium."""


class VerifyFailed(MediaError):
    """What was read back differs from what was written."""


class NotRemovable(MediaError):
    """The target is not a removable medium (the live system's own disks are refused)."""


@dataclass(frozen=True)
class Medium:
    """A place exports can go.

    Attributes:
        path: mount point (or the demo folder).
        label: filesystem label, or the device name.
        size: total bytes.
        free: bytes available to us.
        fs: filesystem type (``vfat``, ``exfat``, ``ext4``, ``tmpfs``...).
        read_only: mounted read-only or write-protected.
        removable: a removable / USB device (False for the demo folder).
        device: ``/dev/sdb1`` or ``""``.
        demo: the demo workspace folder (allowed without being removable).
    """

    path: Path
    label: str
    size: int
    free: int
    fs: str
    read_only: bool
    removable: bool
    device: str = ""
    demo: bool = False

    def describe(self) -> str:
        """One line for the screen."""
        ro = ", READ-ONLY" if self.read_only else ""
        kind = "demo folder" if self.demo else (self.device or "medium")
        return (
            f"{self.label} ({kind}, {self.fs}) at {self.path}: {_human(self.free)} free of "
            f"{_human(self.size)}{ro}"
        )


@dataclass(frozen=True)
class ExportResult:
    """What was written and verified."""

    directory: Path
    files: dict[str, str]  # name -> SHA-256 hex (the manifest's content)
    manifest_sha256: str
    bytes_written: int
    safe_to_remove: bool
    unmounted: bool
    notes: list[str] = field(default_factory=list)


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _parent_disk(sys_root: Path, dev: str) -> str:
    """Disk name for a partition (``sdb1`` -> ``sdb``, ``mmcblk0p1`` -> ``mmcblk0``)."""
    cls = sys_root / "class" / "block" / dev
    if (cls / "partition").exists():
        try:
            return cls.resolve().parent.name
        except OSError:
            pass
    if (sys_root / "block" / dev).exists():
        return dev
    m = re.match(r"^(.*?\d+)p\d+$", dev) or re.match(r"^(\D+)\d+$", dev)
    return m.group(1) if m else dev


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _labels(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    d = root / "dev" / "disk" / "by-label"
    try:
        entries = list(d.iterdir())
    except OSError:
        return out
    for e in entries:
        try:
            label = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), e.name)
            out[Path(os.readlink(e)).name] = label
        except OSError:
            continue
    return out


def _statvfs(path: Path) -> tuple[int, int, bool]:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, bool(st.f_flag & _ST_RDONLY)


def list_removable(root: str | Path = "/") -> list[Medium]:
    """Mounted removable media (USB sticks, SD cards), from mountinfo and sysfs.

    Args:
        root: filesystem root to read ``proc/self/mountinfo``, ``sys/block`` and
            ``dev/disk/by-label`` from (tests pass a fake tree; mount points are taken
            relative to it).

    Returns:
        One :class:`Medium` per mounted filesystem on a removable or USB disk; the live
        system's own mounts (``/``, ``/boot``, the live medium...) are never listed.
    """
    root = Path(root)
    sys_root = root / "sys"
    labels = _labels(root)
    out: list[Medium] = []
    try:
        lines = (root / "proc" / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 6 or len(rf) < 3:
            continue
        mount_point = _unescape_mount(lf[4])
        mount_opts = lf[5].split(",")
        fs, source, super_opts = rf[0], rf[1], rf[2].split(",")
        if not source.startswith("/dev/") or mount_point in _SYSTEM_MOUNTS:
            continue
        dev = source[5:].split("/")[-1]
        disk = _parent_disk(sys_root, dev)
        removable = _read(sys_root / "block" / disk / "removable") == "1"
        try:
            usb = "/usb" in os.readlink(sys_root / "block" / disk)
        except OSError:
            usb = False
        if not (removable or usb):
            continue
        path = root / mount_point.lstrip("/")
        try:
            size, free, ro_vfs = _statvfs(path)
        except OSError:
            continue
        read_only = (
            "ro" in mount_opts
            or "ro" in super_opts
            or ro_vfs
            or _read(sys_root / "block" / disk / "ro") == "1"
        )
        out.append(
            Medium(
                path=path,
                label=labels.get(dev, "") or Path(mount_point).name or dev,
                size=size,
                free=free,
                fs=fs,
                read_only=read_only,
                removable=True,
                device=source,
            )
        )
    return out


def folder_medium(path: str | Path, label: str = "demo") -> Medium:
    """The demo workspace's stand-in for a USB stick (a plain folder, created if needed)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    size, free, ro = _statvfs(p)
    return Medium(
        p, label, size, free, _fs_type(p), ro or not os.access(p, os.W_OK), False, demo=True
    )


def _fs_type(path: Path) -> str:
    best, fs = "", "unknown"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return fs
    target = str(path.resolve())
    for line in lines:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or not rf:
            continue
        mp = _unescape_mount(lf[4])
        if (target == mp or target.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, fs = mp, rf[0]
    return fs


def refresh(medium: Medium) -> Medium:
    """Re-read free space and the read-only flag.

    Raises:
        MediumGone: the mount point is gone (medium removed).
    """
    try:
        size, free, ro = _statvfs(medium.path)
    except OSError:
        raise MediumGone(
            f"{medium.label} is no longer available at {medium.path}: was it removed? "
            "Insert it again or choose another medium."
        ) from None
    return Medium(
        medium.path, medium.label, size, free, medium.fs, medium.read_only or ro,
        medium.removable, medium.device, medium.demo,
    )  # fmt: skip


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _on_system_disk(path: Path) -> bool:
    """True if ``path`` lives on the filesystem of ``/`` (the live system itself)."""
    try:
        return os.stat(path).st_dev == os.stat("/").st_dev
    except OSError:
        return False  # gone: refresh() reports it


def _rename_noreplace(src: str, dst: str) -> None:
    if _renameat2 is not None:
        rc = _renameat2(_AT_FDCWD, src.encode(), _AT_FDCWD, dst.encode(), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), dst)
    # Filesystem without RENAME_NOREPLACE: check, then rename (one writer: this process).
    if os.path.lexists(dst):
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _classify(exc: OSError, medium: Medium, what: str) -> MediaError:
    e = exc.errno
    if e in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OutOfSpace(
            f"{medium.label} ran out of space while writing {what}. Nothing was left looking "
            "complete. Free space or insert a larger medium, then retry."
        )
    if e in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyMedium(
            f"{medium.label} refused the write ({os.strerror(e or 0)}): it is read-only or "
            "write-protected. Slide the lock switch off or choose another medium, then retry."
        )
    if e == errno.EEXIST:
        return NameClash(
            f"{what} already exists on {medium.label}; nothing is overwritten. Choose another "
            "folder name or another medium, then retry."
        )
    return MediumGone(
        f"{medium.label} failed while writing {what} ({os.strerror(e or 0)}): it was removed or "
        "is faulty. Nothing was left looking complete. Insert it again or choose another "
        "medium, then retry; the secret is still held."
    )


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name == MANIFEST_NAME or name.endswith(".partial"):
        raise MediaError(
            f"file name {name!r} is not allowed (letters, digits, . _ + - only; not the manifest)"
        )


def _write_file(
    path: Path,
    data: bytes,
    *,
    opener: Opener,
    writer: Writer,
    progress: ProgressCallback | None,
    done: int,
    total: int,
) -> int:
    fd = opener(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            n = writer(fd, view[pos : pos + CHUNK])
            if n <= 0:
                raise OSError(errno.EIO, "short write", str(path))
            pos += n
            if progress is not None:
                progress(done + pos, total, path.name.removeprefix(".").removesuffix(".partial"))
        os.fsync(fd)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read back from the medium
        except OSError:
            pass
    finally:
        os.close(fd)
    return len(data)


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def write_export(
    medium: Medium,
    files: Mapping[str, bytes],
    *,
    ceremony_id: str,
    directory: str | None = None,
    progress: ProgressCallback | None = None,
    unmount: bool = False,
    opener: Opener = os.open,
    writer: Writer = os.write,
) -> ExportResult:
    """Write an export to a medium, atomically and verified.

    Args:
        medium: from :func:`list_removable` or :func:`folder_medium`.
        files: name -> bytes (public data only).
        ceremony_id: recorded in the default folder name.
        directory: folder on the medium (default ``openkcm-<ceremony_id>``); choose a new
            one to retry after :class:`NameClash`.
        progress: called as ``progress(bytes_done, bytes_total, current_file)``.
        unmount: unmount after sync (real removable media only; needs root).
        opener, writer: injectable for fault tests (default ``os.open`` / ``os.write``).

    Returns:
        :class:`ExportResult`; ``safe_to_remove`` only after verify and sync.

    Raises:
        NotRemovable, ReadOnlyMedium, OutOfSpace, NameClash, MediumGone, VerifyFailed,
        MediaError: nothing of this attempt is left looking complete.
    """
    if not (medium.removable or medium.demo):
        raise NotRemovable(
            f"{medium.path} is not a removable medium; exports never go to this computer's own "
            "disks. Insert a USB stick and choose it."
        )
    if not medium.demo and _on_system_disk(medium.path):
        raise NotRemovable(
            f"{medium.path} is on this computer's own system disk, not on a removable medium; "
            "exports never go there. Insert a USB stick and choose it."
        )
    if not files:
        raise MediaError("nothing to write")
    for name in files:
        _check_name(name)
    dirname = directory or f"openkcm-{ceremony_id}"
    _check_name(dirname)
    medium = refresh(medium)
    if medium.read_only:
        raise ReadOnlyMedium(
            f"{medium.label} is read-only (mounted ro or write-protected). Slide the lock switch "
            "off or choose another medium, then retry."
        )
    manifest = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode("ascii")
    total = sum(len(d) for d in files.values()) + len(manifest)
    blocks = 4096 * (len(files) + 3)  # per-file allocation slack, the manifest, the folder
    if total + blocks > medium.free:
        raise OutOfSpace(
            f"{medium.label} has {_human(medium.free)} free; this export needs about "
            f"{_human(total + blocks)}. Free space or choose a larger medium, then retry."
        )
    target = medium.path / dirname
    clashes = [n for n in [*files, MANIFEST_NAME] if (target / n).exists()]
    if clashes:
        raise NameClash(
            f"{', '.join(sorted(clashes))} already exist in {dirname} on {medium.label}; nothing "
            "is overwritten. Choose another folder name or another medium, then retry."
        )
    created_dir = False
    written: list[Path] = []
    partial: Path | None = None
    done = 0
    try:
        try:
            target.mkdir()
            created_dir = True
        except FileExistsError:
            pass
        for name, data in sorted(files.items()):
            partial = target / f".{name}.partial"
            done += _write_file(
                partial,
                data,
                opener=opener,
                writer=writer,
                progress=progress,
                done=done,
                total=total,
            )
            _rename_noreplace(str(partial), str(target / name))
            written.append(target / name)
            partial = None
        _fsync_dir(target)
        partial = target / f".{MANIFEST_NAME}.partial"
        done += _write_file(
            partial,
            manifest,
            opener=opener,
            writer=writer,
            progress=progress,
            done=done,
            total=total,
        )
        _rename_noreplace(str(partial), str(target / MANIFEST_NAME))
        written.append(target / MANIFEST_NAME)
        partial = None
        _fsync_dir(target)
        if created_dir:
            _fsync_dir(medium.path)
    except OSError as exc:
        err = _classify(
            exc, medium, partial.name.strip(".").removesuffix(".partial") if partial else dirname
        )
        _cleanup(target, partial, written, created_dir)
        raise err from None
    try:
        digests = verify_export(target, expected=files)
    except MediaError:
        _cleanup(target, None, written, created_dir)
        raise
    os.sync()
    notes: list[str] = []
    unmounted = False
    if unmount and medium.removable and not medium.demo:
        try:
            subprocess.run(
                ["umount", str(medium.path)], check=True, capture_output=True, timeout=60
            )
            unmounted = True
        except (OSError, subprocess.SubprocessError):
            notes.append("could not unmount automatically; data is synced, unmount before removing")
    return ExportResult(
        directory=target,
        files=digests,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        bytes_written=done,
        safe_to_remove=True,
        unmounted=unmounted,
        notes=notes,
    )


def _cleanup(target: Path, partial: Path | None, written: list[Path], created_dir: bool) -> None:
    """Remove what this attempt wrote (best effort: the medium may be gone or read-only).

    Whatever cannot be removed is still not *complete*: the manifest is written last and
    only after every file, so an export without a matching manifest is incomplete.
    """
    if partial is not None:
        _unlink_quiet(partial)
    manifest = target / MANIFEST_NAME
    if manifest in written:  # remove the completeness marker first
        _unlink_quiet(manifest)
    for p in written:
        _unlink_quiet(p)
    if created_dir:
        try:
            target.rmdir()
        except OSError:
            pass


def verify_export(directory: Path, expected: Mapping[str, bytes] | None = None) -> dict[str, str]:
    """Read an export back and check it against its manifest (and ``expected`` if given).

    Returns:
        name -> SHA-256 hex for every file listed in the manifest.

    Raises:
        VerifyFailed: no manifest, a listed file missing or different, or a leftover partial.
        MediumGone: the medium cannot be read.
    """
    try:
        text = (directory / MANIFEST_NAME).read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise VerifyFailed(f"{MANIFEST_NAME} in {directory.name} is damaged") from None
    except FileNotFoundError:
        raise VerifyFailed(
            f"{directory.name} has no {MANIFEST_NAME}: the export is INCOMPLETE; write it again"
        ) from None
    except OSError as exc:
        raise MediumGone(
            f"cannot read {directory} ({exc.strerror}): was the medium removed?"
        ) from None
    listed: dict[str, str] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not m:
            raise VerifyFailed(f"{MANIFEST_NAME} in {directory.name} is damaged")
        listed[m.group(2)] = m.group(1)
    if expected is not None and set(expected) != set(listed):
        raise VerifyFailed(f"{MANIFEST_NAME} in {directory.name} does not list the expected files")
    for name, digest in listed.items():
        h = hashlib.sha256()
        try:
            with open(directory / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK), b""):
                    h.update(chunk)
        except FileNotFoundError:
            raise VerifyFailed(f"{name} is listed in the manifest but missing") from None
        except OSError as exc:
            raise MediumGone(
                f"cannot read back {name} ({exc.strerror}): was the medium removed?"
            ) from None
        if h.hexdigest() != digest:
            raise VerifyFailed(
                f"{name} read back differs from what was written: the medium is faulty"
            )
        if expected is not None and hashlib.sha256(expected[name]).hexdigest() != digest:
            raise VerifyFailed(f"{name} on the medium is not what this ceremony wrote")
    leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".partial")]
    if leftovers:
        raise VerifyFailed(f"leftover partial files in {directory.name}: {', '.join(leftovers)}")
    return listed


def free_bytes(path: Path) -> int:
    """Free bytes at ``path`` (helper for the UI)."""
    return shutil.disk_usage(path).free
