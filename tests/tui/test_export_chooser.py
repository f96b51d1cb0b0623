"""The export step's medium chooser: mounted removable media (``core.media.list_removable``
over a fake /proc + /sys tree whose mount points are real folders), read-only ones shown
with the reason but refused, F5 lists again after a stick is inserted, and the chosen medium
gets the export, verified, synced and unmounted before the screen says SAFE TO REMOVE."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import Button, OptionList

from core import media
from core.ceremony.engine import FolderExporter
from kcm_tui.backend import BackendError, Session, export_media_choices
from kcm_tui.screens.runner import RunnerScreen
from tests.tui.helpers import press, screen_text, settle, start_ready
from tests.tui.snapshot_app import EXPORT_FILES, ExportSession, FakeBackend, SnapApp

SIZE = (100, 40)
USB_LINE = "40 22 8:17 / /media/KCM-USB rw,nosuid,nodev shared:20 - vfat /dev/sdb1 rw,fmask=0022\n"


def fake_root(tmp_path: Path, *, usb: bool) -> Path:
    """A root with the system disk, a write-protected SD card and (``usb``) a USB stick."""
    root = tmp_path / "root"
    (root / "proc" / "self").mkdir(parents=True)
    for d in ("KCM-USB", "SDCARD"):
        (root / "media" / d).mkdir(parents=True)
    dev = root / "sys" / "devices"
    usb_disk = dev / "pci0000:00" / "usb1" / "1-1" / "block" / "sdb"
    mmc = dev / "platform" / "mmc0" / "block" / "mmcblk0"
    sata = dev / "pci0000:00" / "ata1" / "block" / "sda"
    for disk, part, removable, ro in ((usb_disk, "sdb1", "0", "0"), (mmc, "mmcblk0p1", "1", "1"), (sata, "sda2", "0", "0")):
        (disk / part).mkdir(parents=True)
        (disk / part / "partition").write_text("1\n")
        (disk / "removable").write_text(removable + "\n")
        (disk / "ro").write_text(ro + "\n")
        (root / "sys" / "block").mkdir(parents=True, exist_ok=True)
        (root / "sys" / "class" / "block").mkdir(parents=True, exist_ok=True)
        (root / "sys" / "block" / disk.name).symlink_to(disk)
        (root / "sys" / "class" / "block" / part).symlink_to(disk / part)
    mountinfo(root, usb=usb)
    return root


def mountinfo(root: Path, *, usb: bool) -> None:
    (root / "proc" / "self" / "mountinfo").write_text(
        "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n"
        "42 22 179:1 / /media/SDCARD ro,nosuid shared:22 - exfat /dev/mmcblk0p1 ro\n"
        + (USB_LINE if usb else "")
    )


def labels(app: SnapApp) -> list[str]:
    listing = app.screen.query_one("#media-list", OptionList)
    return [str(listing.get_option_at_index(i).prompt).split("  ")[0] for i in range(listing.option_count)]


async def _test_choose_removable_medium_then_safe_to_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_root(tmp_path, usb=False)
    events: list[str] = []

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        events.append(" ".join(cmd))
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(media, "_on_system_disk", lambda p: False)  # tmp_path may share / 's disk
    monkeypatch.setattr(media.subprocess, "run", run)
    exporter = FolderExporter(tmp_path / "ceremony-medium")
    session = ExportSession(exporter, choices=lambda: export_media_choices(root))
    app = SnapApp(FakeBackend(demo=False, session=session), RunnerScreen)
    async with app.run_test(size=SIZE) as pilot:
        await start_ready(pilot)
        text = screen_text(app)
        # ceremony mode: only the removable media, nothing preselected, no write possible yet
        assert labels(app) == ["SDCARD"]
        assert "READ-ONLY, cannot be chosen" in text and "write-protected" in text
        assert "No medium chosen" in text
        assert app.screen.query_one("#action", Button).disabled
        assert app.screen.query_one("#media-list", OptionList).get_option_at_index(0).disabled
        # the read-only medium is refused, with the reason
        app.screen.choose_medium(0)  # type: ignore[attr-defined]
        await pilot.pause()
        text = screen_text(app)
        assert "SDCARD cannot be used" in text and "No medium chosen" in text
        assert exporter.medium is None and app.screen.query_one("#action", Button).disabled
        # a stick inserted later: F5 lists it
        mountinfo(root, usb=True)
        await pilot.press("f5")
        await pilot.pause()
        assert labels(app) == ["SDCARD", "KCM-USB"]
        listing = app.screen.query_one("#media-list", OptionList)
        listing.focus()
        await pilot.press("down", "enter")  # the disabled SD card is skipped
        await pilot.pause()
        assert exporter.medium is not None and exporter.medium.device == "/dev/sdb1"
        assert exporter.unmount and "Writes to: KCM-USB" in screen_text(app)
        assert not app.screen.query_one("#action", Button).disabled
        await press(pilot, "#action")
        await settle(pilot)
        text = screen_text(app)
        assert events == [f"umount {root / 'media' / 'KCM-USB'}"]
        assert "SAFE TO REMOVE the medium KCM-USB" in text
    assert media.verify_export(root / "media" / "KCM-USB" / "export", EXPORT_FILES)
    assert not (tmp_path / "ceremony-medium").exists(), "nothing went to the ceremony medium"


async def _test_demo_mode_preselects_the_demo_folder(tmp_path: Path) -> None:
    root = fake_root(tmp_path, usb=True)
    exporter = FolderExporter(tmp_path / "exports")
    session = ExportSession(exporter, choices=lambda: export_media_choices(root, exporter.root))
    app = SnapApp(FakeBackend(demo=True, session=session), RunnerScreen)
    async with app.run_test(size=SIZE) as pilot:
        await start_ready(pilot)
        assert labels(app) == ["demo", "SDCARD", "KCM-USB"]
        assert exporter.medium is not None and exporter.medium.demo and not exporter.unmount
        await press(pilot, "#action")
        await settle(pilot)
        assert "(demo folder, nothing to remove)" in screen_text(app)
    assert media.verify_export(tmp_path / "exports" / "export", EXPORT_FILES)


def test_choose_removable_medium_then_safe_to_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_test_choose_removable_medium_then_safe_to_remove(tmp_path, monkeypatch))


def test_demo_mode_preselects_the_demo_folder(tmp_path: Path) -> None:
    asyncio.run(_test_demo_mode_preselects_the_demo_folder(tmp_path))


def test_session_lists_and_sets_the_export_medium(tmp_path: Path) -> None:
    root = fake_root(tmp_path, usb=True)
    exporter = FolderExporter(tmp_path / "exports")
    fake = SimpleNamespace(c=SimpleNamespace(exporter=exporter),
                           backend=SimpleNamespace(demo=False, media_root=root), media=tmp_path)
    listed = Session.export_media_choices(fake)  # type: ignore[arg-type]
    assert listed is not None and [m.label for m in listed] == ["SDCARD", "KCM-USB"]  # no folder outside demo
    with pytest.raises(BackendError, match="cannot be used"):
        Session.set_export_medium(fake, listed[0])  # type: ignore[arg-type]
    assert exporter.medium is None
    Session.set_export_medium(fake, listed[1])  # type: ignore[arg-type]
    assert exporter.target() is listed[1] and exporter.unmount
    Session.set_export_medium(fake, None)  # type: ignore[arg-type]
    assert exporter.medium is None and not exporter.unmount
    fake.backend.demo = True
    listed = Session.export_media_choices(fake)  # type: ignore[arg-type]
    assert listed is not None and listed[0].demo and listed[0].path == tmp_path / "exports"
    fake.c.exporter = SimpleNamespace()  # an exporter with a fixed medium: no chooser
    assert Session.export_media_choices(fake) is None  # type: ignore[arg-type]
