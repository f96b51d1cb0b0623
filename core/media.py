"""Removable media: find them, write exports atomically, verify, say when it is safe to remove.

Only public data (sealed envelopes, BYOK files, manifests, journal exports) is ever written
here. A write (:func:`write_export`) is:

1. checks first: the medium is removable (or the explicit demo folder), writable, and has
   room for everything; the export folder does not exist yet (never overwrite silently);
2. the medium's folder is opened once as a directory descriptor (``O_NOFOLLOW``) and the
   export folder created below it with ``mkdirat`` (:mod:`core.safeio`); a symbolic link
   planted anywhere on the way is refused and named (:class:`HostileMedium`);
3. each file written under a random temporary name (``O_CREAT|O_EXCL|O_NOFOLLOW``),
   ``fsync``-ed, checked to be on the medium's device (``fstat().st_dev``), then renamed to
   its name without replacing anything (``renameat2(RENAME_NOREPLACE)``) and the folder
   ``fsync``-ed;
4. ``MANIFEST.sha256`` last (``sha256sum -c`` format, SHA-256 of every file): an export
   without its manifest is incomplete, whatever else is on the stick;
5. everything read back through the same directory descriptors (page cache dropped first
   where the kernel allows), each file again checked to be on the medium's device;
6. ``sync``, then optionally unmount; only then is ``safe_to_remove`` True.

Any failure raises a :class:`MediaError` subclass with a message for the room, after removing
what this attempt wrote where the medium still allows it; the caller keeps the secret in the
keyholder and offers a retry on the same or another medium.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core import safeio
from core.errors import KcmError

__all__ = [
    "MANIFEST_NAME",
    "ExportResult",
    "HostileMedium",
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
_SYSTEM_MOUNTS: Final = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home", "/run/live/medium")

ProgressCallback = Callable[[int, int, str], None]
Writer = Callable[[int, memoryview], int]


class MediaError(KcmError):
    """A media operation failed; ``message`` tells the room what to do."""

    code = "media"


class OutOfSpace(MediaError):
    """Not enough free space on the medium."""

    code = "media-full"


class ReadOnlyMedium(MediaError):
    """The medium is mounted read-only or write-protected."""

    code = "media-read-only"


class MediumGone(MediaError):
    """The medium was removed or failed (I/O error) during the operation."""

    code = "media-gone"


class NameClash(MediaError):
    """A file of the export already exists on the medium."""

    code = "media-name-clash"


class VerifyFailed(MediaError):
    """What was read back differs from what was written."""

    code = "media-verify"


class NotRemovable(MediaError):
    """The target is not a removable medium (the live system's own disks are refused)."""

    code = "media-not-removable"


class HostileMedium(MediaError):
    """Something planted on the medium (a symbolic link, a device, a mount) would redirect
    or fake the export; it is refused and named."""

    code = "media-hostile"


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
            f"{self.label} ({kind}, {self.fs}) at {self.path}: {human_size(self.free)} free of "
            f"{human_size(self.size)}{ro}"
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


def human_size(n: int) -> str:
    """``812 B``, ``1.2 KiB``, ``3.4 MiB`` ... ``TiB`` (``?`` for a size not known: negative)."""
    if n < 0:
        return "?"
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


def _on_system_disk(path: Path) -> bool:
    """True if ``path`` lives on the filesystem of ``/`` (the live system itself)."""
    try:
        return os.stat(path).st_dev == os.stat("/").st_dev
    except OSError:
        return False  # gone: refresh() reports it


def _block_device(medium: Medium) -> int | None:
    """``st_rdev`` of the medium's block device (``/dev/sdb1``), or None when there is
    none to compare with (the demo folder; a test's fake device name)."""
    if not medium.device:
        return None
    try:
        st = os.stat(medium.device)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def _still_there(root: safeio.Dir, medium: Medium) -> None:
    """The medium's path still leads to the folder we opened (not unmounted, not swapped).

    A descriptor keeps a lazily unmounted filesystem alive: the writes through it succeed,
    but they land on a filesystem nobody can reach any more. So after each file, and before
    "safe to remove", the mount point must still be the very folder written into.
    """
    try:
        now = os.stat(medium.path)
    except OSError:
        now = None
    mine = os.fstat(root.fd)
    if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
        raise MediumGone(
            f"{medium.label} was unmounted or removed during the write ({medium.path} is no "
            "longer the medium written to). Nothing is complete on it: insert it again or "
            "choose another medium, then retry; the secret is still held."
        )


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


def _refused(exc: safeio.SafeIOError, medium: Medium) -> MediaError:
    """A planted link, a device or a redirected write on the medium."""
    return HostileMedium(
        f"{exc.message} Nothing of this export is left looking complete on {medium.label}; "
        "choose another medium (or remove what was planted there), then retry."
    )


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name == MANIFEST_NAME or name.endswith(".partial"):
        raise MediaError(
            f"file name {name!r} is not allowed (letters, digits, . _ + - only; not the manifest)"
        )


def write_export(
    medium: Medium,
    files: Mapping[str, bytes],
    *,
    ceremony_id: str,
    directory: str | None = None,
    progress: ProgressCallback | None = None,
    unmount: bool = False,
    writer: Writer = os.write,
) -> ExportResult:
    """Write an export to a medium, atomically and verified, through directory descriptors.

    The medium's folder is opened once (``O_DIRECTORY|O_NOFOLLOW``); the export folder is
    created below it with ``mkdirat`` (it must not exist: a folder or link planted there
    is refused, named); every file is written under a random temporary name with
    ``O_CREAT|O_EXCL|O_NOFOLLOW``, checked to be on the medium's device, renamed without
    replacing anything, and read back through the same descriptors (:mod:`core.safeio`).

    Args:
        medium: from :func:`list_removable` or :func:`folder_medium`.
        files: name -> bytes (public data only).
        ceremony_id: recorded in the default folder name.
        directory: folder on the medium (default ``openkcm-<ceremony_id>``); choose a new
            one to retry after :class:`NameClash`.
        progress: called as ``progress(bytes_done, bytes_total, current_file)``.
        unmount: unmount after sync (real removable media only; needs root).
        writer: injectable for fault tests (default ``os.write``).

    Returns:
        :class:`ExportResult`; ``safe_to_remove`` only after the bytes were read back from
        the medium's own device and synced.

    Raises:
        NotRemovable, ReadOnlyMedium, OutOfSpace, NameClash, MediumGone, VerifyFailed,
        HostileMedium, MediaError: nothing of this attempt is left looking complete.
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
            f"{medium.label} has {human_size(medium.free)} free; this export needs about "
            f"{human_size(total + blocks)}. Free space or choose a larger medium, then retry."
        )
    try:
        root = safeio.Dir.open_root(medium.path)
    except safeio.SafeIOError as exc:
        raise _refused(exc, medium) from None
    except OSError:
        raise MediumGone(
            f"{medium.label} is no longer available at {medium.path}: was it removed? "
            "Insert it again or choose another medium."
        ) from None
    with root:
        device = _block_device(medium)
        if device is not None and root.dev != device:
            raise MediumGone(
                f"{medium.path} is no longer on {medium.device}: was {medium.label} removed? "
                "Insert it again or choose another medium."
            )
        digests, done = _write_into(
            root, medium, files, manifest, dirname, total, progress, writer, device
        )
    # the descriptors are closed now: the medium can be unmounted
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
        directory=medium.path / dirname,
        files=digests,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        bytes_written=done,
        safe_to_remove=True,
        unmounted=unmounted,
        notes=notes,
    )


def _write_into(
    root: safeio.Dir,
    medium: Medium,
    files: Mapping[str, bytes],
    manifest: bytes,
    dirname: str,
    total: int,
    progress: ProgressCallback | None,
    writer: Writer,
    device: int | None,
) -> tuple[dict[str, str], int]:
    st = root.lstat(dirname)
    if st is not None:
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise HostileMedium(
                f"{dirname} on {medium.label} is "
                f"{'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a folder'}: refused "
                "(it could redirect the export off the medium). Choose another folder name or "
                "another medium."
            )
        raise NameClash(
            f"{dirname} already exists on {medium.label}; nothing is overwritten. Choose another "
            "folder name or another medium, then retry."
        )
    try:
        target = root.sub(dirname, exclusive=True)
    except FileExistsError:
        raise NameClash(
            f"{dirname} already exists on {medium.label}; nothing is overwritten. Choose another "
            "folder name or another medium, then retry."
        ) from None
    except safeio.SafeIOError as exc:
        raise _refused(exc, medium) from None
    except OSError as exc:
        raise _classify(exc, medium, dirname) from None
    written: list[str] = []
    current = dirname
    done = 0
    with target:
        try:
            root.fsync()
            for name, data in [*sorted(files.items()), (MANIFEST_NAME, manifest)]:
                current = name
                base = done

                def step(pos: int, name: str = name, base: int = base) -> None:
                    if progress is not None:
                        progress(base + pos, total, name)

                w = target.write_new(name, data, writer=writer, progress=step)
                written.append(name)
                if device is not None and w.dev != device:
                    raise safeio.WrongDevice(
                        f"{name} is not on {medium.device} after the write (device {w.dev}): "
                        "it was redirected."
                    )
                done += len(data)
                _still_there(root, medium)
            digests = _verify_dir(target, dirname, expected=files, device=device)
            _still_there(root, medium)
        except safeio.SafeIOError as exc:
            _cleanup(root, target, dirname, written)
            raise _refused(exc, medium) from None
        except OSError as exc:
            err = _classify(exc, medium, current)
            _cleanup(root, target, dirname, written)
            raise err from None
        except MediaError:
            _cleanup(root, target, dirname, written)
            raise
    return digests, done


def _cleanup(root: safeio.Dir, target: safeio.Dir, dirname: str, written: list[str]) -> None:
    """Remove what this attempt wrote (best effort: the medium may be gone or read-only).

    Whatever cannot be removed is still not *complete*: the manifest is written last and
    only after every file, so an export without a matching manifest is incomplete.
    """
    if MANIFEST_NAME in written:  # remove the completeness marker first
        target.unlink_quiet(MANIFEST_NAME)
    for name in written:
        target.unlink_quiet(name)
    try:
        leftovers = [n for n in target.names() if n.endswith(safeio.PARTIAL_SUFFIX)]
    except OSError:
        leftovers = []
    for name in leftovers:
        target.unlink_quiet(name)
    root.rmdir_quiet(dirname)


def verify_export(directory: Path, expected: Mapping[str, bytes] | None = None) -> dict[str, str]:
    """Read an export back and check it against its manifest (and ``expected`` if given).

    The folder is opened with ``O_NOFOLLOW`` and every file through its descriptor: a
    symbolic link in the export is refused, not followed.

    Returns:
        name -> SHA-256 hex for every file listed in the manifest.

    Raises:
        VerifyFailed: no manifest, a listed file missing or different, a leftover partial,
            a link or a file on another device.
        MediumGone: the medium cannot be read.
    """
    try:
        d = safeio.Dir.open_root(directory)
    except safeio.SafeIOError as exc:
        raise VerifyFailed(exc.message) from None
    except FileNotFoundError:
        raise VerifyFailed(f"{directory} does not exist: the export is missing") from None
    except OSError as exc:
        raise MediumGone(
            f"cannot read {directory} ({exc.strerror}): was the medium removed?"
        ) from None
    with d:
        return _verify_dir(d, directory.name, expected=expected, device=None)


def _read_back(d: safeio.Dir, name: str, device: int | None) -> str:
    """SHA-256 of a file read back through the folder's descriptor (the page cache dropped
    first where the kernel allows), checked to be on the medium's block device."""
    h = hashlib.sha256()
    with d.open_file(name) as fd:
        st = os.fstat(fd)
        if device is not None and st.st_dev != device:
            raise VerifyFailed(f"{name} is not on the medium's device: refused")
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        while block := os.read(fd, CHUNK):
            h.update(block)
    return h.hexdigest()


def _verify_dir(
    d: safeio.Dir, shown: str, *, expected: Mapping[str, bytes] | None, device: int | None
) -> dict[str, str]:
    try:
        text = d.read(MANIFEST_NAME, limit=1 << 20).decode("ascii")
    except UnicodeDecodeError:
        raise VerifyFailed(f"{MANIFEST_NAME} in {shown} is damaged") from None
    except FileNotFoundError:
        raise VerifyFailed(
            f"{shown} has no {MANIFEST_NAME}: the export is INCOMPLETE; write it again"
        ) from None
    except safeio.SafeIOError as exc:
        raise VerifyFailed(exc.message) from None
    except OSError as exc:
        raise MediumGone(f"cannot read {shown} ({exc.strerror}): was the medium removed?") from None
    listed: dict[str, str] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not m or not _NAME_RE.match(m.group(2)):
            raise VerifyFailed(f"{MANIFEST_NAME} in {shown} is damaged")
        listed[m.group(2)] = m.group(1)
    if expected is not None and set(expected) != set(listed):
        raise VerifyFailed(f"{MANIFEST_NAME} in {shown} does not list the expected files")
    for name, digest in listed.items():
        try:
            got = _read_back(d, name, device)
        except FileNotFoundError:
            raise VerifyFailed(f"{name} is listed in the manifest but missing") from None
        except safeio.SafeIOError as exc:
            raise VerifyFailed(exc.message) from None
        except OSError as exc:
            raise MediumGone(
                f"cannot read back {name} ({exc.strerror}): was the medium removed?"
            ) from None
        if got != digest:
            raise VerifyFailed(
                f"{name} read back differs from what was written: the medium is faulty"
            )
        if expected is not None and hashlib.sha256(expected[name]).hexdigest() != digest:
            raise VerifyFailed(f"{name} on the medium is not what this ceremony wrote")
    try:
        leftovers = [n for n in d.names() if n.endswith(safeio.PARTIAL_SUFFIX)]
    except OSError as exc:
        raise MediumGone(f"cannot list {shown} ({exc.strerror}): was the medium removed?") from None
    if leftovers:
        raise VerifyFailed(f"leftover partial files in {shown}: {', '.join(leftovers)}")
    return listed


def free_bytes(path: Path) -> int:
    """Free bytes at ``path`` (helper for the UI)."""
    return shutil.disk_usage(path).free
