"""Removable block devices, and choosing one as the export medium on the ceremony image.

On the live image every USB/removable disk and partition is read-only in the kernel from
the moment it appears (a udev rule), and nothing is mounted automatically. So the export
chooser lists two kinds of media:

- mounted removable media (:func:`core.media.list_removable`), e.g. on a developer machine;
- *candidates*: unmounted partitions (or whole-disk file systems) on removable disks,
  :func:`export_candidates`, each a :class:`DeviceMedium`.

Choosing a candidate (:class:`ExportMediaChooser`) runs the one privileged step, the helper
``kcm-media export DEV`` (:class:`MediaHelper`): that device alone becomes writable and is
mounted at ``/media/kcm-export``. After the export is written, verified and synced,
``kcm-media release`` unmounts it and sets it read-only again (the exporter calls
:attr:`PreparedMedium.release`). Choosing another medium, or none, releases the previous one
first, so at most one removable device is ever writable.

The helper is a separate program on purpose: the UI can later run unprivileged and reach it
through a narrow privileged channel (sudo rule, socket, udisks); :class:`MediaHelper` takes
the command to run.

Standard library plus :mod:`core.media`; no UI imports.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core import media

__all__ = [
    "EXPORT_MOUNT",
    "HELPER",
    "BlockDevice",
    "DeviceMedium",
    "ExportMediaChooser",
    "MediaHelper",
    "PreparedMedium",
    "export_candidates",
    "list_block_devices",
]

HELPER: Final = Path("/usr/local/sbin/kcm-media")
EXPORT_MOUNT: Final = Path("/media/kcm-export")
CEREMONY_MOUNT: Final = Path("/media/kcm-ceremony")
#: File systems the helper mounts for export (the same list as in kcm-media).
EXPORT_FS: Final = ("vfat", "exfat", "ext4", "ext3", "ext2")
_REMOVABLE_BUSES: Final = ("/usb", "/firewire", "/mmc", "/memstick", "/thunderbolt")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class BlockDevice:
    """A disk or partition on a removable disk, as sysfs and udev describe it."""

    name: str  # sdb1
    disk: str  # sdb
    partition: bool
    size: int  # bytes
    read_only: bool  # the kernel's flag (what `blockdev --getro` prints)
    removable: bool  # the disk's sysfs removable flag
    bus: str  # "usb", "mmc"... or "" (removable flag only)
    fs: str  # ID_FS_TYPE
    label: str  # ID_FS_LABEL
    serial: str  # ID_SERIAL_SHORT
    mounted: bool

    @property
    def device(self) -> str:
        """``/dev/<name>``."""
        return f"/dev/{self.name}"


@dataclass(frozen=True)
class DeviceMedium(media.Medium):
    """An unmounted candidate for the export medium (``path`` is its device node).

    ``free`` is unknown (0) until it is mounted; ``read_only`` is False unless the device
    itself refuses writes: the image's read-only policy is lifted by choosing it.
    """

    mounted: bool = False
    block: BlockDevice | None = None

    def describe(self) -> str:
        """One line for the screen."""
        return (
            f"{self.label} ({self.device}, {self.fs}, {media.human_size(self.size)}): not mounted; made "
            "writable and mounted when chosen"
        )


@dataclass(frozen=True)
class PreparedMedium(media.Medium):
    """The chosen export medium, writable and mounted by the helper.

    ``release`` unmounts it and makes it read-only again (the exporter calls it after the
    verify and sync, instead of a plain unmount).
    """

    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _udev_props(root: Path, devnum: str) -> dict[str, str]:
    text = _read(root / "run" / "udev" / "data" / f"b{devnum}")
    props: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


def _mounted_devnums(root: Path) -> set[str]:
    out: set[str] = set()
    for line in _read(root / "proc" / "self" / "mountinfo").splitlines():
        fields = line.split()
        if len(fields) > 2:
            out.add(fields[2])
    return out


def _bus(sys_root: Path, disk: str) -> str:
    try:
        target = os.readlink(sys_root / "block" / disk)
    except OSError:
        return ""
    for bus in _REMOVABLE_BUSES:  # e.g. .../usb1/1-1/1-1:1.0/host6/... (as core.media reads it)
        if bus in target:
            return bus[1:]
    return ""


def list_block_devices(root: str | Path = "/") -> list[BlockDevice]:
    """Every disk and partition on a removable or USB/MMC/FireWire/Thunderbolt disk.

    The same devices the image's udev rule sets read-only: a disk whose ``removable`` flag
    is 1 or that hangs off one of those buses (a USB enclosure reporting ``removable=0``
    included), and its partitions. Read from ``sys/block``, ``run/udev/data`` and
    ``proc/self/mountinfo`` under ``root`` (tests pass a fake tree).
    """
    r = Path(root)
    sys_root = r / "sys"
    mounted = _mounted_devnums(r)
    out: list[BlockDevice] = []
    try:
        disks = sorted(p.name for p in (sys_root / "block").iterdir())
    except OSError:
        return out
    for disk in disks:
        if re.match(r"^(loop|ram|zram|dm-|md|sr|nbd)", disk):
            continue
        removable = _read(sys_root / "block" / disk / "removable") == "1"
        bus = _bus(sys_root, disk)
        if not (removable or bus):
            continue
        disk_props = _udev_props(r, _read(sys_root / "block" / disk / "dev"))
        names = [
            disk,
            *sorted(
                p.name
                for p in (sys_root / "block" / disk).iterdir()
                if p.name.startswith(disk) and (p / "partition").exists()
            ),
        ]
        for name in names:
            base = sys_root / "block" / disk / ("" if name == disk else name)
            devnum = _read(base / "dev")
            props = _udev_props(r, devnum)
            try:
                size = int(_read(base / "size") or 0) * 512
            except ValueError:
                size = 0
            out.append(
                BlockDevice(
                    name=name,
                    disk=disk,
                    partition=name != disk,
                    size=size,
                    read_only=_read(base / "ro") == "1",
                    removable=removable,
                    bus=bus,
                    fs=props.get("ID_FS_TYPE", ""),
                    label=props.get("ID_FS_LABEL", ""),
                    serial=disk_props.get("ID_SERIAL_SHORT", "")
                    or props.get("ID_SERIAL_SHORT", ""),
                    mounted=devnum in mounted,
                )
            )
    return out


def export_candidates(root: str | Path = "/") -> list[DeviceMedium]:
    """Unmounted file systems on removable disks that can become the export medium.

    Skipped: devices without a file system the helper mounts (FAT, exFAT, ext2/3/4), mounted
    ones (they are listed by :func:`core.media.list_removable`), and every device on a disk
    that holds an ISO 9660 file system (a boot stick of this image, or another live system).
    """
    devices = list_block_devices(root)
    boot_disks = {d.disk for d in devices if d.fs == "iso9660"}
    out: list[DeviceMedium] = []
    for d in devices:
        if d.disk in boot_disks or d.mounted or d.fs not in EXPORT_FS:
            continue
        if not d.partition and any(p.disk == d.disk and p.partition for p in devices):
            continue  # a partitioned disk: its partitions are the candidates
        out.append(
            DeviceMedium(
                path=Path(d.device),
                label=d.label or d.name,
                size=d.size,
                free=0,
                fs=d.fs,
                read_only=False,
                removable=True,
                device=d.device,
                mounted=False,
                block=d,
            )
        )
    return out


class MediaHelper:
    """The privileged helper (``kcm-media``) that makes one device the export medium.

    Args:
        command: how to run the helper (default ``[/usr/local/sbin/kcm-media]``; a later
            privilege split can put ``sudo -n`` or a socket client in front).
        runner: ``subprocess.run`` (tests inject a fake).
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        runner: Runner | None = None,
        service_socket: str = "",
    ) -> None:
        self.command = list(command) if command else [str(HELPER)]
        self.runner: Runner = runner or subprocess.run
        self.service_socket = service_socket

    @classmethod
    def via_service(cls, path: str = "", runner: Runner | None = None) -> MediaHelper:
        """The helper reached through the media service's socket (the ceremony ISO, where
        the UI is an unprivileged user: :mod:`core.media_service`)."""
        from core import media_service

        sock = path or media_service.SOCKET
        return cls(
            [sys.executable, "-I", "-m", "core.media_service", "client", "--socket", sock],
            runner,
            service_socket=sock,
        )

    def available(self) -> bool:
        """True when the helper (or the media service's socket) exists: the ceremony
        image; False elsewhere."""
        if self.service_socket:
            try:
                return stat.S_ISSOCK(os.stat(self.service_socket).st_mode)
            except OSError:
                return False
        return os.access(self.command[0], os.X_OK)

    def _run(self, *args: str) -> str:
        try:
            res = self.runner(
                [*self.command, *args], capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise media.MediaError(f"the media helper could not run: {exc}") from None
        if res.returncode == 0:
            return str(res.stdout).strip()
        message = (str(res.stderr).strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        message = message.removeprefix("kcm-media: ")
        if res.returncode == 4:
            raise media.ReadOnlyMedium(
                f"{message}. Choose another medium, or unlock it and press F5."
            )
        if res.returncode == 3:
            raise media.NotRemovable(message)
        raise media.MediumGone(f"{message}. Insert it again or choose another medium.")

    def export(self, device: str) -> Path:
        """Make ``device`` writable and mount it; returns the mount point."""
        out = self._run("export", device)
        return Path(out.splitlines()[-1]) if out else EXPORT_MOUNT

    def release(self) -> None:
        """Unmount the export medium and set every device it made writable read-only."""
        self._run("release")

    def ceremony(self, device: str) -> Path:
        """Make ``device`` the ceremony medium (the journal's): writable, mounted at
        ``/media/kcm-ceremony`` for the UI's user; returns the mount point. It stays so until
        the program ends (the session script releases it)."""
        out = self._run("ceremony", device)
        return Path(out.splitlines()[-1]) if out else CEREMONY_MOUNT


class ExportMediaChooser:
    """What the export step may write to, and the choice of one (at most one writable).

    Args:
        helper: the media helper, or None where there is none (a developer machine: only
            mounted media and the demo folder are offered).
        root: filesystem root for listing (tests pass a fake tree).
    """

    def __init__(self, helper: MediaHelper | None = None, root: str | Path = "/") -> None:
        self.helper = helper
        self.root = Path(root)
        self.prepared: PreparedMedium | None = None

    def choices(self, demo_folder: Path | None = None) -> list[media.Medium]:
        """The demo folder (if given), mounted removable media, then candidates."""
        out: list[media.Medium] = []
        if demo_folder is not None:
            out.append(media.folder_medium(demo_folder, "demo"))
        for m in media.list_removable(self.root):
            if self.prepared is not None and m.device == self.prepared.device:
                out.append(self.prepared)
            else:
                out.append(m)
        if self.helper is not None:
            out.extend(export_candidates(self.root))
        return out

    def choose(self, medium: media.Medium | None) -> media.Medium | None:
        """Make ``medium`` the export medium; returns what the exporter writes to.

        A candidate is made writable and mounted by the helper (the previous choice is
        released first); choosing the prepared medium again keeps it; anything else
        releases it.

        Raises:
            core.media.MediaError: the helper refused or failed (the message says why).
        """
        if (
            self.prepared is not None
            and medium is not None
            and medium.device == self.prepared.device
        ):
            if not isinstance(medium, DeviceMedium) or self._still_mounted():
                return self.prepared
        self.release()
        if not isinstance(medium, DeviceMedium):
            return medium
        if self.helper is None:
            raise media.MediaError("this machine has no media helper to make the medium writable")
        mount_point = self.helper.export(medium.device)
        mounted = next(
            (m for m in media.list_removable(self.root) if m.device == medium.device), None
        )
        if mounted is None:
            self.helper.release()
            raise media.MediumGone(
                f"{medium.label} was made writable but is not mounted at {mount_point}; "
                "insert it again or choose another medium"
            )
        self.prepared = PreparedMedium(
            mounted.path, medium.label, mounted.size, mounted.free, mounted.fs, mounted.read_only,
            True, medium.device, False, release=self._released,
        )  # fmt: skip
        return self.prepared

    def _still_mounted(self) -> bool:
        return self.prepared is not None and any(
            m.device == self.prepared.device for m in media.list_removable(self.root)
        )

    def _released(self) -> None:
        """The exporter's release: unmount, read-only again, forget the choice."""
        self.release()

    def release(self) -> None:
        """Release the prepared medium (if any): unmount and read-only again.

        Raises:
            core.media.MediaError: the helper could not unmount it (still busy).
        """
        if self.prepared is None:
            return
        helper = self.helper
        self.prepared = None
        if helper is not None:
            helper.release()


def describe_devices(devices: Sequence[BlockDevice]) -> list[dict[str, Any]]:
    """JSON-friendly form (the boot check reports it)."""
    return [
        {
            "name": d.name, "disk": d.disk, "partition": d.partition, "ro": d.read_only,
            "removable": d.removable, "bus": d.bus, "fs": d.fs, "serial": d.serial,
            "mounted": d.mounted,
        }
        for d in devices
    ]  # fmt: skip
