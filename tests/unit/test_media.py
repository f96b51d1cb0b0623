"""Removable media: detection, atomic verified writes, and every failure with its retry.

Fault tests use a real tiny tmpfs mounted as root where possible (out of space,
read-only, removal by lazy unmount), and an injected writer elsewhere (I/O error mid-file,
corruption). Each checks the message, that nothing is left looking complete (no manifest,
no file under its final name, no partial), and that a retry on the same or another medium
then succeeds.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import media as M

FILES = {
    "masterkey-aws.envelope.json": b'{"format":"openkcm-envelope"}\n' * 40,
    "shard-1-alice.envelope.json": os.urandom(3000),
    "seal-manifest.json": b"{}\n",
}


def _assert_nothing_complete(directory: Path) -> None:
    """No manifest, no partial, no file under a final name (directory may be gone)."""
    if not directory.exists():
        return
    names = [p.name for p in directory.iterdir()]
    assert M.MANIFEST_NAME not in names
    assert not [n for n in names if n.endswith(".partial")], names
    assert not [n for n in names if n in FILES], names


# ---------------------------------------------------------------- detection


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "proc" / "self").mkdir(parents=True)
    (root / "media" / "KCM EXPORT").mkdir(parents=True)
    (root / "media" / "internal").mkdir(parents=True)
    (root / "media" / "sdcard").mkdir(parents=True)
    (root / "proc" / "self" / "mountinfo").write_text(
        "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n"
        "23 22 0:5 / /proc rw - proc proc rw\n"
        "40 22 8:17 / /media/KCM\\040EXPORT rw,nosuid,nodev shared:20 - vfat /dev/sdb1 rw,fmask=0022\n"
        "41 22 8:3 / /media/internal rw shared:21 - ext4 /dev/sda3 rw\n"
        "42 22 179:1 / /media/sdcard ro,nosuid shared:22 - exfat /dev/mmcblk0p1 ro\n"
    )
    dev = root / "sys" / "devices"
    usb_disk = dev / "pci0000:00" / "0000:00:14.0" / "usb1" / "1-1" / "host6" / "block" / "sdb"
    (usb_disk / "sdb1").mkdir(parents=True)
    (usb_disk / "sdb1" / "partition").write_text("1\n")
    (usb_disk / "removable").write_text("0\n")  # many USB sticks say 0: the usb path decides
    (usb_disk / "ro").write_text("0\n")
    sata = dev / "pci0000:00" / "ata1" / "block" / "sda"
    for p in ("sda2", "sda3"):
        (sata / p).mkdir(parents=True)
        (sata / p / "partition").write_text("1\n")
    (sata / "removable").write_text("0\n")
    mmc = dev / "platform" / "mmc0" / "block" / "mmcblk0"
    (mmc / "mmcblk0p1").mkdir(parents=True)
    (mmc / "mmcblk0p1" / "partition").write_text("1\n")
    (mmc / "removable").write_text("1\n")
    (mmc / "ro").write_text("1\n")
    blk = root / "sys" / "block"
    cls = root / "sys" / "class" / "block"
    blk.mkdir(parents=True)
    cls.mkdir(parents=True)
    for disk, parts in ((usb_disk, ["sdb1"]), (sata, ["sda2", "sda3"]), (mmc, ["mmcblk0p1"])):
        (blk / disk.name).symlink_to(disk)
        for p in parts:
            (cls / p).symlink_to(disk / p)
    lab = root / "dev" / "disk" / "by-label"
    lab.mkdir(parents=True)
    (lab / "KCM\\x20EXPORT").symlink_to("../../sdb1")
    return root


def test_list_removable_from_fake_sysfs(tmp_path: Path) -> None:
    media = M.list_removable(_fake_root(tmp_path))
    by_dev = {m.device: m for m in media}
    assert set(by_dev) == {"/dev/sdb1", "/dev/mmcblk0p1"}  # not / nor the internal disk
    usb = by_dev["/dev/sdb1"]
    assert usb.label == "KCM EXPORT" and usb.fs == "vfat" and not usb.read_only and usb.removable
    assert usb.size > 0 and usb.free > 0
    sd = by_dev["/dev/mmcblk0p1"]
    assert sd.read_only and sd.fs == "exfat" and sd.label == "sdcard"
    assert "READ-ONLY" in sd.describe()


def test_list_removable_without_proc(tmp_path: Path) -> None:
    assert M.list_removable(tmp_path) == []


def test_list_removable_real_system_does_not_crash() -> None:
    for m in M.list_removable("/"):
        assert m.removable and str(m.path) not in ("/", "/boot")


# ---------------------------------------------------------------- good writes


def test_write_export_atomic_verified(tmp_path: Path) -> None:
    medium = M.folder_medium(tmp_path / "stick")
    seen: list[tuple[int, int, str]] = []
    res = M.write_export(
        medium, FILES, ceremony_id="genesis-1", progress=lambda d, t, n: seen.append((d, t, n))
    )
    d = tmp_path / "stick" / "openkcm-genesis-1"
    assert res.directory == d and res.safe_to_remove
    assert sorted(p.name for p in d.iterdir()) == sorted([*FILES, M.MANIFEST_NAME])
    for name, data in FILES.items():
        assert (d / name).read_bytes() == data
        assert res.files[name] == hashlib.sha256(data).hexdigest()
    assert res.manifest_sha256 == hashlib.sha256((d / M.MANIFEST_NAME).read_bytes()).hexdigest()
    total = sum(map(len, FILES.values())) + len((d / M.MANIFEST_NAME).read_bytes())
    assert seen[-1][0] == total and all(t == total for _, t, _ in seen)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)
    assert seen[-1][2] == M.MANIFEST_NAME  # manifest written last
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", M.MANIFEST_NAME], cwd=d, check=True)


def test_large_write_reports_progress(tmp_path: Path) -> None:
    big = {"journal.jsonl": os.urandom(3 * M.CHUNK + 5)}
    seen: list[int] = []
    M.write_export(
        M.folder_medium(tmp_path), big, ceremony_id="c", progress=lambda d, t, n: seen.append(d)
    )
    assert len(seen) >= 4


def test_not_removable_refused(tmp_path: Path) -> None:
    disk = M.Medium(tmp_path, "sda3", 10**9, 10**9, "ext4", False, removable=False)
    with pytest.raises(M.NotRemovable, match="never go to this computer's own disks"):
        M.write_export(disk, FILES, ceremony_id="c")
    assert list(tmp_path.iterdir()) == []


def test_system_disk_refused_even_if_marked_removable(tmp_path: Path) -> None:
    if os.stat(tmp_path).st_dev != os.stat("/").st_dev:
        pytest.skip("tmp_path is not on the root filesystem here")
    fake = M.Medium(
        tmp_path, "fake", 10**9, 10**9, "ext4", False, removable=True, device="/dev/sda2"
    )
    with pytest.raises(M.NotRemovable, match="system disk"):
        M.write_export(fake, FILES, ceremony_id="c")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", M.MANIFEST_NAME, "x.partial", ""])
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(M.MediaError):
        M.write_export(M.folder_medium(tmp_path / "s"), {name: b"x"}, ceremony_id="c")


def test_name_clash_never_overwrites_and_retry_with_new_name(tmp_path: Path) -> None:
    medium = M.folder_medium(tmp_path)
    M.write_export(medium, FILES, ceremony_id="c1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "openkcm-c1").iterdir()}
    other = {k: b"different" for k in FILES}
    with pytest.raises(M.NameClash, match="nothing is overwritten"):
        M.write_export(medium, other, ceremony_id="c1")
    assert {p.name: p.read_bytes() for p in (tmp_path / "openkcm-c1").iterdir()} == before
    res = M.write_export(medium, other, ceremony_id="c1", directory="openkcm-c1-retry")
    assert res.safe_to_remove and (tmp_path / "openkcm-c1-retry" / M.MANIFEST_NAME).exists()


# ---------------------------------------------------------------- injected faults


class FailingWriter:
    """os.write that fails with ``err`` once ``after`` bytes have been written."""

    def __init__(self, after: int, err: int) -> None:
        self.after, self.err, self.done = after, err, 0

    def __call__(self, fd: int, view: memoryview) -> int:
        if self.done + len(view) > self.after:
            n = os.write(fd, view[: self.after - self.done]) if self.after > self.done else 0
            self.done += n
            raise OSError(self.err, os.strerror(self.err))
        n = os.write(fd, view)
        self.done += n
        return n


@pytest.mark.parametrize(
    ("err", "exc", "words"),
    [
        (errno.EIO, M.MediumGone, "removed or is faulty"),
        (errno.ENODEV, M.MediumGone, "removed or is faulty"),
        (errno.ENOSPC, M.OutOfSpace, "ran out of space"),
        (errno.EROFS, M.ReadOnlyMedium, "read-only"),
    ],
)
def test_fault_mid_write_leaves_nothing_complete_then_retry(
    tmp_path: Path, err: int, exc: type, words: str
) -> None:
    medium = M.folder_medium(tmp_path / "stick")
    first = len(sorted(FILES.items())[0][1])
    with pytest.raises(exc, match=words) as info:
        M.write_export(medium, FILES, ceremony_id="c", writer=FailingWriter(first + 100, err))
    assert "retry" in info.value.message
    _assert_nothing_complete(tmp_path / "stick" / "openkcm-c")
    # retry on the same medium works (nothing clashes with the failed attempt)
    res = M.write_export(medium, FILES, ceremony_id="c")
    assert M.verify_export(res.directory, FILES) == res.files


def test_corruption_detected_by_read_back(tmp_path: Path) -> None:
    def corrupting(fd: int, view: memoryview) -> int:
        data = bytearray(view)
        data[0] ^= 0xFF
        return os.write(fd, data)

    with pytest.raises(M.VerifyFailed, match=r"differs|not what|damaged"):
        M.write_export(M.folder_medium(tmp_path), FILES, ceremony_id="c", writer=corrupting)
    _assert_nothing_complete(tmp_path / "openkcm-c")


def test_verify_export_flags_incomplete(tmp_path: Path) -> None:
    res = M.write_export(M.folder_medium(tmp_path), FILES, ceremony_id="c")
    (res.directory / ".x.partial").write_bytes(b"half")
    with pytest.raises(M.VerifyFailed, match="partial"):
        M.verify_export(res.directory)
    (res.directory / ".x.partial").unlink()
    (res.directory / M.MANIFEST_NAME).unlink()
    with pytest.raises(M.VerifyFailed, match="INCOMPLETE"):
        M.verify_export(res.directory)


def test_medium_gone_before_write(tmp_path: Path) -> None:
    medium = M.folder_medium(tmp_path / "stick")
    shutil.rmtree(tmp_path / "stick")
    with pytest.raises(M.MediumGone, match="removed"):
        M.write_export(medium, FILES, ceremony_id="c")


# ---------------------------------------------------------------- real tiny filesystems (root)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture()
def tiny(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "usb"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _medium(path: Path) -> M.Medium:
    # a tmpfs stands in for the stick: mark it removable as list_removable would
    size, free, ro = M._statvfs(path)
    return M.Medium(path, "TINY", size, free, "tmpfs", ro, removable=True, device="tmpfs")


@needs_root
def test_real_out_of_space_precheck(tiny: Path, tmp_path: Path) -> None:
    big = {"journal.jsonl": os.urandom(100_000)}
    with pytest.raises(M.OutOfSpace, match="free; this export needs"):
        M.write_export(_medium(tiny), big, ceremony_id="c")
    assert list(tiny.iterdir()) == []
    other = M.folder_medium(tmp_path / "bigger")
    assert M.write_export(other, big, ceremony_id="c").safe_to_remove


@needs_root
def test_real_out_of_space_mid_write(tiny: Path) -> None:
    filled = False

    def filler(fd: int, view: memoryview) -> int:
        nonlocal filled
        if not filled:  # something else fills the stick after our check
            filled = True
            with open(tiny / "other-data.bin", "wb") as fh:
                try:
                    fh.write(b"\0" * 60_000)
                    fh.flush()
                except OSError:
                    pass
        return os.write(fd, view)

    data = {"a.json": os.urandom(20_000), "b.json": os.urandom(20_000)}
    with pytest.raises(M.OutOfSpace, match="ran out of space"):
        M.write_export(_medium(tiny), data, ceremony_id="c", writer=filler)
    _assert_nothing_complete(tiny / "openkcm-c")
    (tiny / "other-data.bin").unlink()  # the custodian frees space: retry on the same stick
    res = M.write_export(_medium(tiny), data, ceremony_id="c")
    assert M.verify_export(res.directory, data)


@needs_root
def test_real_read_only(tiny: Path, tmp_path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny)], check=True)
    with pytest.raises(M.ReadOnlyMedium, match="read-only"):
        M.write_export(_medium(tiny), FILES, ceremony_id="c")
    # even if the Medium object is stale (said writable), the write is refused cleanly
    stale = M.Medium(tiny, "TINY", 65536, 65536, "tmpfs", False, removable=True)
    with pytest.raises(M.ReadOnlyMedium):
        M.write_export(stale, FILES, ceremony_id="c")
    subprocess.run(["mount", "-o", "remount,rw", str(tiny)], check=True)
    assert M.write_export(_medium(tiny), FILES, ceremony_id="c").safe_to_remove


@needs_root
def test_real_removal_mid_write(tiny: Path, tmp_path: Path) -> None:
    calls = 0

    def yank(fd: int, view: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the stick is pulled during the second file
            subprocess.run(["umount", "-l", str(tiny)], check=True)
        return os.write(fd, view)

    with pytest.raises(M.MediumGone, match="removed"):
        M.write_export(_medium(tiny), FILES, ceremony_id="c", writer=yank)
    # nothing landed on the host's own directory under the mount point
    assert list(tiny.iterdir()) == []
    # retry on another medium
    res = M.write_export(M.folder_medium(tmp_path / "other"), FILES, ceremony_id="c")
    assert M.verify_export(res.directory, FILES) == res.files


@needs_root
def test_real_unmount_after_sync(tiny: Path) -> None:
    res = M.write_export(_medium(tiny), FILES, ceremony_id="c", unmount=True)
    assert res.safe_to_remove and res.unmounted and not res.notes
    assert not os.path.ismount(tiny)
    assert list(tiny.iterdir()) == []  # the files went to the medium, not under the mount point
