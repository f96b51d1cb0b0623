"""The export step's medium messages, in order: "writing... do not remove" while the write
runs (in a worker thread: the screen stays live), "safe to remove" only after the write was
read back, verified and synced (and unmounted on a real medium); a failed write never says
safe to remove and offers Retry on the same or another medium with nothing lost."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import Button

from core import media
from core.ceremony.engine import FolderExporter
from kcm_tui.backend import Session
from kcm_tui.screens.runner import RunnerScreen
from tests.tui.helpers import press, screen_text, settle, start_ready
from tests.tui.snapshot_app import EXPORT_FILES, ExportSession, FakeBackend, SnapApp

SIZE = (100, 40)
WRITING = "writing... do not remove"
SAFE = "SAFE TO REMOVE"
DEMO_DONE = "written and verified; (demo folder, nothing to remove)"


class GatedWriter:
    """``os.write`` that stops on its first call until released (a slow medium)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, fd: int, data: Any) -> int:
        self.entered.set()
        if not self.release.wait(20):
            raise AssertionError("the test never released the writer")
        return os.write(fd, data)


async def wait_for(pilot: Any, cond: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``cond`` (real state, not Pilot's idle guess) for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {screen_text(pilot.app)}")
        await pilot.pause(0.02)


def app_for(session: ExportSession) -> SnapApp:
    return SnapApp(FakeBackend(session=session), RunnerScreen)


async def _test_demo_folder_not_done_before_verify_and_sync(tmp_path: Path) -> None:
    writer = GatedWriter()
    exporter = FolderExporter(tmp_path / "exports", writer=writer)
    calls: list[str] = []
    real_sync = os.sync

    def sync() -> None:
        calls.append("sync")
        real_sync()

    app = app_for(ExportSession(exporter))
    mp = pytest.MonkeyPatch()
    mp.setattr(media.os, "sync", sync)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await press(pilot, "#action")
            await wait_for(pilot, writer.entered.is_set, "the write to start")
            await pilot.pause()
            text = screen_text(app)
            assert WRITING in text
            assert "cannot be stopped half-way" in text
            assert SAFE not in text and DEMO_DONE not in text
            assert app.screen.query_one("#continue", Button).disabled
            await pilot.press("escape")  # does not abort the write
            await pilot.pause()
            assert WRITING in screen_text(app) and not calls
            writer.release.set()
            await settle(pilot)
            text = screen_text(app)
            assert calls == ["sync"]
            assert DEMO_DONE in text and WRITING not in text and SAFE not in text
    finally:
        mp.undo()
        writer.release.set()
    out = tmp_path / "exports" / "export"
    assert media.verify_export(out, EXPORT_FILES)


async def _test_real_medium_safe_to_remove_only_after_sync_and_unmount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "usb"
    root.mkdir()
    usb = media.Medium(root, "KCM-USB", 1 << 30, 1 << 29, "vfat", False, True, "/dev/sdz1")
    events: list[str] = []
    real_sync = os.sync

    def sync() -> None:
        events.append("sync")
        real_sync()

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        events.append(" ".join(cmd[:1]))
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(media, "_on_system_disk", lambda p: False)
    monkeypatch.setattr(media.os, "sync", sync)
    monkeypatch.setattr(media.subprocess, "run", run)
    writer = GatedWriter()
    exporter = FolderExporter(tmp_path / "unused", medium=usb, unmount=True, writer=writer)
    app = app_for(ExportSession(exporter))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await start_ready(pilot)
            await press(pilot, "#action")
            await wait_for(pilot, writer.entered.is_set, "the write to start")
            await pilot.pause()
            text = screen_text(app)
            assert WRITING in text and "KCM-USB" in text
            assert SAFE not in text and events == []
            writer.release.set()
            await settle(pilot)
            text = screen_text(app)
            assert events == ["sync", "umount"]
            assert "SAFE TO REMOVE the medium KCM-USB" in text
            assert WRITING not in text
    finally:
        writer.release.set()


async def _test_real_medium_still_mounted_is_not_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "usb"
    root.mkdir()
    usb = media.Medium(root, "KCM-USB", 1 << 30, 1 << 29, "vfat", False, True, "/dev/sdz1")

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        raise subprocess.CalledProcessError(32, cmd, b"", b"target is busy")

    monkeypatch.setattr(media, "_on_system_disk", lambda p: False)
    monkeypatch.setattr(media.subprocess, "run", run)
    app = app_for(ExportSession(FolderExporter(tmp_path, medium=usb, unmount=True)))
    async with app.run_test(size=SIZE) as pilot:
        await start_ready(pilot)
        await press(pilot, "#action")
        await settle(pilot)
        text = screen_text(app)
        assert SAFE not in text
        assert "still mounted" in text and "could not unmount automatically" in text


async def _test_failed_write_never_safe_and_retry_on_another_medium(tmp_path: Path) -> None:
    fail = {"on": True}

    def flaky(fd: int, data: Any) -> int:
        if fail["on"]:
            raise OSError(errno.EIO, "Input/output error")
        return os.write(fd, data)

    first = tmp_path / "first"
    exporter = FolderExporter(first, writer=flaky)
    session = ExportSession(exporter)
    app = app_for(session)
    async with app.run_test(size=SIZE) as pilot:
        await start_ready(pilot)
        await press(pilot, "#action")
        await settle(pilot)
        text = screen_text(app)
        assert "NOT written" in text and "Nothing is lost" in text
        assert SAFE not in text and DEMO_DONE not in text and WRITING not in text
        assert app.screen.query_one("#retry", Button).display
        assert app.screen.query_one("#continue", Button).has_class("-waiting")  # reachable, refuses
        assert "Continue needs: Retry" in " ".join(text.split())
        assert not any((first / "export").glob("*")), "a failed attempt leaves nothing looking complete"
        # another medium: the same files go there
        second = tmp_path / "second"
        exporter.root = second
        fail["on"] = False
        await press(pilot, "#retry")
        await press(pilot, "#action")
        await settle(pilot)
        text = screen_text(app)
        assert DEMO_DONE in text and "NOT written" not in text
    assert media.verify_export(second / "export", EXPORT_FILES)


def test_session_reports_the_exporters_medium(tmp_path: Path) -> None:
    exporter = FolderExporter(tmp_path / "exports")
    fake = SimpleNamespace(c=SimpleNamespace(exporter=exporter), backend=SimpleNamespace(demo=True), media=tmp_path)
    info = Session.export_medium(fake)  # type: ignore[arg-type]
    assert info["demo"] is True and info["label"] == "demo"
    assert Session.export_status(fake) is None  # type: ignore[arg-type]
    fake.backend.demo = False  # a real ceremony: the folder is on the chosen medium
    info = Session.export_medium(fake)  # type: ignore[arg-type]
    assert info["demo"] is False and info["label"] == str(tmp_path)
    exporter.write("x", {"a.txt": b"a"}, ceremony_id="c")
    status = Session.export_status(fake)  # type: ignore[arg-type]
    assert status is not None and status["safe_to_remove"] and not status["unmounted"]


def test_demo_folder_not_done_before_verify_and_sync(tmp_path: Path) -> None:
    asyncio.run(_test_demo_folder_not_done_before_verify_and_sync(tmp_path))


def test_real_medium_safe_to_remove_only_after_sync_and_unmount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_test_real_medium_safe_to_remove_only_after_sync_and_unmount(tmp_path, monkeypatch))


def test_real_medium_still_mounted_is_not_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_test_real_medium_still_mounted_is_not_safe(tmp_path, monkeypatch))


def test_failed_write_never_safe_and_retry_on_another_medium(tmp_path: Path) -> None:
    asyncio.run(_test_failed_write_never_safe_and_retry_on_another_medium(tmp_path))
