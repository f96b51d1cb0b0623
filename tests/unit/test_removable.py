"""Removable devices on the ceremony image, and choosing one as the export medium.

The listing runs on a fake sysfs/udev/mountinfo tree (the devices udev sets read-only:
USB disks whatever their removable flag, SD cards; not the workstation's own disk, not a
boot stick, not a mounted device). The choice runs through a fake media helper that does
what ``kcm-media`` does to the tree (mounts the device, records it), so the chooser's
rule "at most one writable, the previous one released first" is checked; the real helper
runs in the guest (core/bootcheck.py, ``make iso-test``). The release after an export runs
the real ceremony exporter over a real tmpfs standing in for the stick (root).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core import media
from core import removable as R
from core.ceremony.engine import FolderExporter


def _disk(root: Path, name: str, devnum: str, bus_path: str, *, removable: str, size: int) -> Path:
    d = root / "sys" / "devices" / bus_path / "block" / name
    d.mkdir(parents=True)
    (d / "removable").write_text(removable + "\n")
    (d / "ro").write_text("1\n")
    (d / "size").write_text(f"{size}\n")
    (d / "dev").write_text(devnum + "\n")
    (root / "sys" / "block").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "block" / name).symlink_to(d)
    return d


def _part(disk: Path, name: str, devnum: str, *, size: int, ro: str = "1") -> None:
    p = disk / name
    p.mkdir()
    (p / "partition").write_text("1\n")
    (p / "ro").write_text(ro + "\n")
    (p / "size").write_text(f"{size}\n")
    (p / "dev").write_text(devnum + "\n")


def _udev(root: Path, devnum: str, **props: str) -> None:
    data = root / "run" / "udev" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / f"b{devnum}").write_text("".join(f"E:{k}={v}\n" for k, v in props.items()))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "mountinfo").write_text(
        "22 1 0:30 / / rw - overlay overlay rw\n"
        "40 22 8:49 / /media/other rw,nosuid - vfat /dev/sdd1 rw\n"
    )
    (root / "media" / "other").mkdir(parents=True)
    # the workstation's own SATA disk: never listed
    sda = _disk(root, "sda", "8:0", "pci0000:00/ata1/host0", removable="0", size=1 << 30)
    _part(sda, "sda1", "8:1", size=1 << 29, ro="0")
    _udev(root, "8:1", ID_FS_TYPE="ext4")
    # a USB stick with a partition table (removable flag on)
    sdb = _disk(root, "sdb", "8:16", "pci0000:00/0000:00:14.0/usb1/1-1/host6", removable="1", size=2 << 20)
    _part(sdb, "sdb1", "8:17", size=(2 << 20) - 2048)
    _udev(root, "8:16", ID_SERIAL_SHORT="KCMTESTA")
    _udev(root, "8:17", ID_FS_TYPE="vfat", ID_FS_LABEL="EXPORT-A", ID_SERIAL_SHORT="KCMTESTA")
    # a USB enclosure that says removable=0, file system on the whole disk
    _disk(root, "sdc", "8:32", "pci0000:00/0000:00:14.0/usb2/2-1/host7", removable="0", size=4 << 20)
    _udev(root, "8:32", ID_FS_TYPE="exfat", ID_FS_LABEL="EXPORT-B", ID_SERIAL_SHORT="KCMTESTB")
    # a mounted USB stick (listed by core.media.list_removable instead)
    sdd = _disk(root, "sdd", "8:48", "pci0000:00/0000:00:14.0/usb1/1-2/host8", removable="1", size=1 << 20)
    _part(sdd, "sdd1", "8:49", size=1 << 19, ro="0")
    _udev(root, "8:49", ID_FS_TYPE="vfat")
    # the boot stick: an ISO 9660 image with its EFI partition (FAT): never a candidate
    sde = _disk(root, "sde", "8:64", "pci0000:00/0000:00:14.0/usb1/1-3/host9", removable="1", size=1 << 20)
    _part(sde, "sde2", "8:66", size=10000)
    _udev(root, "8:64", ID_FS_TYPE="iso9660")
    _udev(root, "8:66", ID_FS_TYPE="vfat")
    # an SD card in a card reader
    mmc = _disk(root, "mmcblk0", "179:0", "platform/mmc0/mmc_host/mmc0/mmc0:0001", removable="0", size=1 << 21)
    _part(mmc, "mmcblk0p1", "179:1", size=1 << 20)
    _udev(root, "179:1", ID_FS_TYPE="vfat", ID_FS_LABEL="SDCARD")
    # a partition without a file system the helper mounts
    _part(sdb, "sdb2", "8:18", size=100)
    _udev(root, "8:18", ID_FS_TYPE="ntfs")
    return root


def test_lists_every_device_the_udev_rule_makes_read_only(tree: Path) -> None:
    devs = {d.name: d for d in R.list_block_devices(tree)}
    assert set(devs) == {"sdb", "sdb1", "sdb2", "sdc", "sdd", "sdd1", "sde", "sde2", "mmcblk0", "mmcblk0p1"}
    assert "sda" not in devs and "sda1" not in devs  # the workstation's own disk
    assert devs["sdc"].bus == "usb" and not devs["sdc"].removable  # removable=0 enclosure
    assert devs["sdb1"].read_only and devs["sdb1"].fs == "vfat" and devs["sdb1"].serial == "KCMTESTA"
    assert devs["sdd1"].mounted and not devs["sdd1"].read_only
    assert devs["mmcblk0p1"].bus == "mmc"


def test_export_candidates_are_unmounted_file_systems_off_boot_sticks(tree: Path) -> None:
    cands = R.export_candidates(tree)
    assert [c.device for c in cands] == ["/dev/mmcblk0p1", "/dev/sdb1", "/dev/sdc"]
    b = next(c for c in cands if c.device == "/dev/sdc")
    assert b.label == "EXPORT-B" and b.fs == "exfat" and not b.read_only and not b.mounted
    assert "made writable and mounted when chosen" in b.describe()


class FakeHelper(R.MediaHelper):
    """Does to the fake tree what kcm-media does: mount the device, unmount it again."""

    def __init__(self, root: Path, mnt: Path, fail: int = 0) -> None:
        super().__init__(["kcm-media"], runner=self._run_fake)
        self.root, self.mnt, self.fail = root, mnt, fail
        self.calls: list[list[str]] = []
        self.base = (root / "proc" / "self" / "mountinfo").read_text()

    def _run_fake(self, cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd[1:])
        info = self.root / "proc" / "self" / "mountinfo"
        if cmd[1] == "export":
            if self.fail:
                return subprocess.CompletedProcess(cmd, self.fail, "", "kcm-media: it is write-protected (slide the lock switch off)\n")
            devnum = {"/dev/sdb1": "8:17", "/dev/sdc": "8:32"}[cmd[2]]
            mp = "/" + self.mnt.relative_to(self.root).as_posix()  # as mountinfo says it
            info.write_text(self.base + f"50 22 {devnum} / {mp} rw,nosuid - vfat {cmd[2]} rw\n")
            self.mnt.mkdir(exist_ok=True)
            return subprocess.CompletedProcess(cmd, 0, f"{self.mnt}\n", "")
        if cmd[1] == "release":
            info.write_text(self.base)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 2, "", "usage")


def test_choosing_a_candidate_makes_it_the_one_writable_medium(tree: Path) -> None:
    mnt = tree / "media" / "kcm-export"
    helper = FakeHelper(tree, mnt)
    chooser = R.ExportMediaChooser(helper, tree)
    cands = [m for m in chooser.choices() if isinstance(m, R.DeviceMedium)]
    a = next(c for c in cands if c.device == "/dev/sdb1")
    target = chooser.choose(a)
    assert isinstance(target, R.PreparedMedium) and target.path == mnt and target.device == "/dev/sdb1"
    assert helper.calls == [["export", "/dev/sdb1"]]
    # listed again (F5): the prepared medium, not a second entry; choosing it again keeps it
    again = chooser.choices()
    assert [m for m in again if m.device == "/dev/sdb1"] == [target]
    assert chooser.choose(a) is target and chooser.choose(again[again.index(target)]) is target
    assert helper.calls == [["export", "/dev/sdb1"]]
    # another candidate: the first is released before the second is made writable
    b = next(c for c in cands if c.device == "/dev/sdc")
    chooser.choose(b)
    assert helper.calls[1:] == [["release"], ["export", "/dev/sdc"]]
    # no medium: released
    assert chooser.choose(None) is None
    assert helper.calls[-1] == ["release"] and chooser.prepared is None


def test_a_refusal_of_the_helper_is_a_media_error_with_its_message(tree: Path) -> None:
    helper = FakeHelper(tree, tree / "media" / "kcm-export", fail=4)
    chooser = R.ExportMediaChooser(helper, tree)
    a = next(c for c in R.export_candidates(tree) if c.device == "/dev/sdb1")
    with pytest.raises(media.ReadOnlyMedium, match="write-protected"):
        chooser.choose(a)
    assert chooser.prepared is None
    helper.fail = 3
    with pytest.raises(media.NotRemovable):
        chooser.choose(a)


def test_without_a_helper_only_mounted_media_are_offered(tree: Path) -> None:
    chooser = R.ExportMediaChooser(None, tree)
    assert [m.device for m in chooser.choices()] == ["/dev/sdd1"]


def test_session_makes_the_chosen_device_writable_and_releases_it(tree: Path, tmp_path: Path) -> None:
    from kcm_tui.backend import BackendError, Session

    helper = FakeHelper(tree, tree / "media" / "kcm-export")
    exporter = FolderExporter(tmp_path / "exports")
    backend = SimpleNamespace(demo=False, media_root=tree, media_chooser=R.ExportMediaChooser(helper, tree))
    fake = SimpleNamespace(c=SimpleNamespace(exporter=exporter), backend=backend, media=tmp_path)
    listed = Session.export_media_choices(fake)  # type: ignore[arg-type]
    assert listed is not None
    cand = next(m for m in listed if m.device == "/dev/sdc")
    Session.set_export_medium(fake, cand)  # type: ignore[arg-type]
    assert isinstance(exporter.medium, R.PreparedMedium) and exporter.unmount
    assert helper.calls == [["export", "/dev/sdc"]]
    helper.fail = 4
    other = next(m for m in listed if m.device == "/dev/sdb1")
    with pytest.raises(BackendError, match="write-protected"):
        Session.set_export_medium(fake, other)  # type: ignore[arg-type]
    assert exporter.medium is None  # the first was released, the second refused: nothing chosen
    assert helper.calls[1] == ["release"]


@pytest.fixture()
def stick(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "stick"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_exporter_releases_a_prepared_medium_after_the_verified_write(stick: Path, tmp_path: Path) -> None:
    released: list[bool] = []
    size, free, _ro = media._statvfs(stick)
    prepared = R.PreparedMedium(
        stick, "STICK", size, free, "tmpfs", False, True, "/dev/sdz1", release=lambda: released.append(True)
    )
    exporter = FolderExporter(tmp_path / "exports")
    exporter.use(prepared)
    files = {"envelope.json": b"{}\n"}
    exporter.write("export-1", files, ceremony_id="c1")
    assert released == [True]
    assert exporter.last.unmounted and exporter.last.safe_to_remove
    assert media.verify_export(stick / "export-1", files)

    def busy() -> None:
        raise media.MediumGone("/dev/sdz1 is still busy; close what uses it and release again")

    exporter.use(R.PreparedMedium(stick, "STICK", size, free, "tmpfs", False, True, "/dev/sdz1", release=busy))
    exporter.write("export-2", files, ceremony_id="c1")
    assert not exporter.last.unmounted and any("still busy" in n for n in exporter.last.notes)
