"""The media service (issue 20, item 2): the UI, an unprivileged user on the ISO, asks root
to run the media helper; only the fixed command set passes, only for the UI's user.

The service runs in-process on one end of a real Unix socket pair (the peer check reads
``SO_PEERCRED`` from it); the helper is a stand-in script that records its arguments
(the real ``kcm-media`` needs udev-marked removable disks: ``make iso-test`` runs it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from core import media_service
from core.removable import MediaHelper


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    log = tmp_path / "calls.log"
    script = tmp_path / "kcm-media"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {log}\n'
        'case "$1" in\n'
        "  export) echo /media/kcm-export ;;\n"
        '  ceremony) echo "kcm-media: $2 is write-protected (slide the lock switch off)" >&2; exit 4 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return script


def _ask(line: bytes, helper: Path, users: list[str]) -> tuple[dict[str, object], int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    result: dict[str, int] = {}

    def run() -> None:
        result["rc"] = media_service.serve(
            users, helper=str(helper), rfd=theirs.fileno(), wfd=theirs.fileno()
        )

    t = threading.Thread(target=run)
    t.start()
    ours.sendall(line)
    data = b""
    while not data.endswith(b"\n"):
        chunk = ours.recv(65536)
        if not chunk:
            break
        data += chunk
    t.join(30)
    ours.close()
    theirs.close()
    return json.loads(data), result["rc"]


def _calls(helper: Path) -> list[str]:
    log = helper.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_the_fixed_commands_reach_the_helper_with_exactly_their_arguments(helper: Path) -> None:
    got, _ = _ask(b"export /dev/sdb1\n", helper, [_me()])
    assert got == {"rc": 0, "stdout": "/media/kcm-export\n", "stderr": ""}
    got, _ = _ask(b"ceremony /dev/sdc\n", helper, [_me()])
    assert got["rc"] == 4 and "write-protected" in str(got["stderr"])
    for line in (b"release\n", b"status\n", b"import /dev/mmcblk0p1\n"):
        got, _ = _ask(line, helper, [_me()])
        assert got["rc"] == 0
    assert _calls(helper) == [
        "export /dev/sdb1", "ceremony /dev/sdc", "release", "status", "import /dev/mmcblk0p1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "line",
    [
        b"export /dev/sda1; rm -rf /\n",  # shell syntax
        b"export /dev/../dev/sda1\n",  # path games
        b"export /dev/sda1 /dev/sdb1\n",  # two devices
        b"export /dev/loop0\n",  # not a removable disk name
        b"export /etc/shadow\n",
        b"mount /dev/sdb1\n",  # not in the command set
        b"release --all\n",  # the session script's, not the UI's
        b"export\n",
        b"status now\n",
        b"export /dev/sdb1\x00\n",  # not printable
        b"e" * 400 + b"\n",  # too long
        b"",  # nothing at all
    ],
)
def test_anything_else_is_refused_before_the_helper_runs(helper: Path, line: bytes) -> None:
    got, _ = _ask(line, helper, [_me()])
    assert got["rc"] == 2, got
    assert str(got["stderr"]).startswith("kcm-media: ")
    assert _calls(helper) == []


def test_only_the_ui_user_may_ask(helper: Path) -> None:
    """SO_PEERCRED: a connection from another user is refused, whatever the socket mode."""
    got, rc = _ask(b"status\n", helper, ["no-such-user-kcm"])
    assert got["rc"] == 3 and "may not use the media service" in str(got["stderr"])
    assert rc == 3 and _calls(helper) == []


def test_the_ui_reads_the_services_answers_as_it_read_the_helper(
    helper: Path, tmp_path: Path
) -> None:
    """core.removable.MediaHelper over the service: the same paths and exceptions."""
    from core import media

    path = str(tmp_path / "media.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                media_service.serve([_me()], helper=str(helper), rfd=conn.fileno(), wfd=conn.fileno())

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        h = MediaHelper.via_service(path)
        assert h.available()
        assert h.export("/dev/sdb1") == Path("/media/kcm-export")
        with pytest.raises(media.ReadOnlyMedium, match="write-protected"):
            h.ceremony("/dev/sdc")
        assert not MediaHelper.via_service(str(tmp_path / "none.sock")).available()
    finally:
        # wake the accept first and wait for the thread: a thread still blocked in accept()
        # on a closed descriptor number would serve the next socket that reuses it
        srv.shutdown(socket.SHUT_RDWR)
        th.join(10)
        srv.close()


def test_the_start_screen_takes_a_device_as_the_ceremony_medium(tmp_path: Path) -> None:
    """On the ISO the journal's stick is read-only and unmounted: a device typed as the
    media folder is mounted writable through the helper; a refusal is a clear message."""
    from core import media
    from kcm_tui.backend import Backend, BackendError

    mount = tmp_path / "kcm-ceremony"
    mount.mkdir()

    class Helper:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def ceremony(self, device: str) -> Path:
            self.calls.append(device)
            if device == "/dev/sdc1":
                raise media.ReadOnlyMedium("/dev/sdc1 is write-protected")
            return mount

    h = Helper()
    b = Backend(media_helper=h, media_root=tmp_path)
    assert b.media_problem(Path("/dev/sdb1")) == ""
    assert b.ceremony_medium(Path("/dev/sdb1")) == mount and h.calls == ["/dev/sdb1"]
    with pytest.raises(BackendError, match="write-protected"):
        b.ceremony_medium(Path("/dev/sdc1"))
    assert b.ceremony_medium(tmp_path) == tmp_path  # a folder stays a folder
    # without a helper (a development machine) a device is not a folder
    plain = Backend(media_helper=None, media_root=tmp_path)
    plain.media_chooser.helper = None
    assert "does not exist or is not a folder" in plain.media_problem(Path("/dev/sdb1"))
