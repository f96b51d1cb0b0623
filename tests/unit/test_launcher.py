"""The keyholder launcher (issue 20, item 1): the keyholder runs as its own unprivileged
user, started by a privileged launcher from a root-owned policy; the UI decides nothing.

Real processes throughout: the launcher runs as root (this test), drops to a numeric test
uid and execs the real keyholder. The keyholder's interpreter is a small venv over Debian's
``/usr/bin/python3.11`` pointing at this checkout's site-packages (the developer's own
interpreter may sit in a home folder other users cannot enter: :func:`launcher.plan` then
says so and starts the keyholder directly).
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import privsep
from core.keyholder import launcher
from core.keyholder.client import KeyholderClient

pytestmark = pytest.mark.root

KH_UID = 64123  # the keyholder's user in these tests (no passwd entry needed)
UI_UID = 64124  # another unprivileged user standing in for the UI


def _status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


@pytest.fixture(scope="module")
def keyholder_python() -> Iterator[str]:
    """An interpreter every user can run, with this checkout importable."""
    if os.geteuid() != 0:
        pytest.skip("the launcher changes users: run as root")
    base = "/usr/bin/python3.11"
    if not os.access(base, os.X_OK):
        pytest.skip("Debian's python3.11 is missing (tools/install-debian-deps.sh installs it)")
    d = tempfile.mkdtemp(prefix="kcm-khpy-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        subprocess.run([base, "-m", "venv", "--without-pip", f"{d}/venv"], check=True, timeout=120)
        site = sysconfig.get_paths()["purelib"]
        pth = Path(d, "venv/lib/python3.11/site-packages/kcm-test.pth")
        pth.write_text(f"import site; site.addsitedir({site!r})\n")
        yield f"{d}/venv/bin/python"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _has_cap_sys_resource() -> bool:
    return bool(int(_status(os.getpid())["CapEff"], 16) & (1 << 24))


def _policy(python: str, **kw: object) -> launcher.Policy:
    base: dict[str, object] = {
        "keyholder_user": KH_UID,
        "client_users": [0],
        "unlocked_memory": True,
        "pkcs11_modules": [],
        "python": python,
    }
    base.update(kw)
    return launcher.Policy.from_mapping(base, where="test policy")


def test_the_keyholder_runs_as_its_own_user_with_nothing_of_root(keyholder_python: str) -> None:
    kh = launcher.spawn_local(_policy(keyholder_python), allow_unlocked=True, stderr=None)
    try:
        pid = kh.info["pid"]
        assert kh.info["uid"] == KH_UID
        st = _status(pid)
        assert st["Uid"].split() == [str(KH_UID)] * 4
        assert st["Gid"].split() == [str(KH_UID)] * 4
        assert st["Groups"].split() == [str(KH_UID)]
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        assert st["NoNewPrivs"] == "1"
        # the keyholder works as that user: a key in locked memory, its fingerprint
        kh.generate_master()
        assert len(kh.fingerprint()["fingerprint"]) == 64
        # the launcher raises the memlock limit (root with CAP_SYS_RESOURCE, as on the ISO,
        # where systemd also sets LimitMEMLOCK): the whole process is then locked; in a
        # container without it, the keyholder says why it locked its secret buffers only
        if _has_cap_sys_resource():
            assert kh.info["hardening"]["mlockall"] is True, kh.info["hardening"]
        else:
            assert "mlockall skipped" in " ".join(kh.info["hardening"]["notes"])
    finally:
        kh.close()


def test_another_unprivileged_user_cannot_read_the_keyholders_memory(
    keyholder_python: str,
) -> None:
    """The UI's user (and even the keyholder's own user: it is not dumpable) cannot open
    /proc/<keyholder>/mem; root here can (positive control)."""
    kh = launcher.spawn_local(_policy(keyholder_python), allow_unlocked=True, stderr=None)
    try:
        pid = kh.info["pid"]
        probe = (
            "import sys\n"
            "try:\n"
            f"    open('/proc/{pid}/mem','rb').close()\n"
            "except OSError as e:\n"
            "    print('denied', e.errno); sys.exit(0)\n"
            "print('OPENED'); sys.exit(1)\n"
        )
        for uid in (UI_UID, KH_UID):
            r = subprocess.run(
                ["/usr/bin/python3.11", "-I", "-c", probe], user=uid, group=uid,
                extra_groups=[], capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert r.returncode == 0 and r.stdout.startswith("denied"), (uid, r.stdout, r.stderr)
        with open(f"/proc/{pid}/mem", "rb"):
            pass  # root (CAP_SYS_PTRACE) can: why the ISO runs no ceremony process as root
    finally:
        kh.close()


def test_the_policy_not_the_ui_decides(keyholder_python: str) -> None:
    with pytest.raises(launcher.LauncherRefused, match="unlocked memory is not allowed"):
        launcher.spawn_local(_policy(keyholder_python, unlocked_memory=False), allow_unlocked=True)
    with pytest.raises(launcher.LauncherRefused, match="practice ceremonies are not allowed"):
        launcher.spawn_local(_policy(keyholder_python, practice="never"), practice=True,
                             allow_unlocked=True)  # fmt: skip
    with pytest.raises(launcher.LauncherRefused, match="may not start a keyholder"):
        launcher.spawn_local(_policy(keyholder_python, client_users=[UI_UID]), allow_unlocked=True)
    # a rehearsal-only workstation makes every key PRACTICE, asked or not
    kh = launcher.spawn_local(_policy(keyholder_python, practice="always"), allow_unlocked=True)
    try:
        assert b"--practice" in Path(f"/proc/{kh.info['pid']}/cmdline").read_bytes().split(b"\0")
    finally:
        kh.close()


def test_the_launchers_terminal_is_the_keyholders_and_a_pty_needs_the_policy(
    keyholder_python: str,
) -> None:
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    try:
        with pytest.raises(launcher.LauncherRefused, match="pseudo-terminal"):
            launcher.spawn_local(_policy(keyholder_python, terminal=path), allow_unlocked=True)
        kh = launcher.spawn_local(
            _policy(keyholder_python, terminal=path, allow_pty=True), allow_unlocked=True
        )
        try:
            assert kh.info["terminal"] == {"path": path, "pty": True, "usable": True}
        finally:
            kh.close()
    finally:
        os.close(master)
        os.close(slave)


def test_the_ui_cannot_ask_for_more_than_the_request_line() -> None:
    pol = launcher.Policy(keyholder_user=KH_UID, client_users=(0,), unlocked_memory=False)
    assert launcher.decide(pol, "KCM-SPAWN practice=1 unlocked=0") == (True, False)
    for bad in ("KCM-SPAWN practice=1 unlocked=0 module=/tmp/evil.so",
                "KCM-SPAWN practice=1", "KCM-SPAWN practice=2 unlocked=0", ""):  # fmt: skip
        with pytest.raises(launcher.LauncherRefused, match="malformed"):
            launcher.decide(pol, bad)
    argv = launcher.keyholder_argv(pol, practice=False, unlocked=False, terminal=True)
    assert argv[1:4] == ["-I", "-m", "core.keyholder"]
    assert "--allow-unlocked" not in argv and "--demo" not in argv
    assert argv[-2:] == ["--terminal-fd", "3"]


def test_the_policy_file_must_be_roots_alone(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("checks root ownership")
    d = Path(tempfile.mkdtemp(prefix="kcm-pol-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        f = d / "keyholder.toml"
        f.write_text('keyholder_user = "kcm-keyholder"\nclient_users = ["kcm"]\n')
        os.chmod(f, 0o644)
        assert launcher.load_policy(str(f)).keyholder_user == "kcm-keyholder"
        os.chmod(f, 0o664)
        with pytest.raises(launcher.LauncherError, match="writable by root alone"):
            launcher.load_policy(str(f))
        os.chmod(f, 0o644)
        os.chown(f, UI_UID, UI_UID)
        with pytest.raises(launcher.LauncherError, match="owned by root"):
            launcher.load_policy(str(f))
        os.chown(f, 0, 0)
        f.write_text('keyholder_user = "root"\nclient_users = ["kcm"]\n')
        with pytest.raises(launcher.LauncherError, match="must not be root"):
            launcher.load_policy(str(f))
        f.write_text('keyholder_user = "kcm-keyholder"\nclient_users = ["kcm"]\nmodules = ["/x"]\n')
        with pytest.raises(launcher.LauncherError, match="unknown setting"):
            launcher.load_policy(str(f))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    # a folder above it that others may write: they could swap the file
    d2 = Path(tempfile.mkdtemp(prefix="kcm-pol-", dir="/tmp"))
    try:
        os.chmod(d2, 0o777)
        g = d2 / "keyholder.toml"
        g.write_text('keyholder_user = "kcm-keyholder"\nclient_users = ["kcm"]\n')
        with pytest.raises(privsep.PrivsepError, match="writable by root alone"):
            privsep.check_root_owned(str(g))
    finally:
        shutil.rmtree(d2, ignore_errors=True)


def test_drop_privileges_refuses_root() -> None:
    with pytest.raises(launcher.LauncherError, match="must not run as root"):
        launcher.drop_privileges(0, 0, [0], memlock_unlimited=False)


def test_plan_says_why_when_the_keyholder_cannot_run_apart() -> None:
    """No launcher socket, and the development keyholder user does not exist here: the
    keyholder runs as the UI's user, and the plan says what would separate it."""
    p = launcher.plan(socket_path="/nonexistent/kcm.sock", dev_user="kcm-no-such-user")
    assert p.kind == "direct" and not p.separate_user
    assert "kcm-no-such-user" in p.detail or "launcher service" in p.detail


def test_the_socket_transport_behaves_like_the_pipes(keyholder_python: str) -> None:
    """The client over the launcher's socket: requests work, close() ends the keyholder
    (it reads EOF, wipes and exits)."""
    kh = launcher.spawn_local(_policy(keyholder_python), allow_unlocked=True)
    pid = kh.info["pid"]
    assert isinstance(kh, KeyholderClient)
    kh.generate_master()
    kh.close()
    assert not Path(f"/proc/{pid}").exists() or _status(pid).get("State", "").startswith("Z")
    assert sys.executable  # the UI itself never changed user
    assert os.geteuid() == 0


# ----------------------------------------------------------- the service, as on the ISO


class _SocketService:
    """systemd's ``Accept=yes`` socket unit, done by hand: a listening Unix socket; each
    connection runs ``python -I -m core.keyholder.launcher serve --config FILE`` as root
    with the connection on fds 0 and 1."""

    def __init__(self, config: str, path: str) -> None:
        import socket
        import threading

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(4)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stderr: list[bytes] = []

        def loop() -> None:
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                with conn:
                    p = subprocess.Popen(
                        [sys.executable, "-I", "-m", "core.keyholder.launcher", "serve",
                         "--config", config],
                        stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.PIPE,
                        cwd="/",
                    )  # fmt: skip
                    self.procs.append(p)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # wake the accept first and wait for the thread: a thread still blocked in accept()
        # on a closed descriptor number would serve the next socket that reuses it
        import socket

        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.sock.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _ui_as(uid: int, python: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-I", "-c", code], user=uid, group=uid, extra_groups=[], cwd="/",
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_service_starts_the_keyholder_for_the_ui_user_only(keyholder_python: str) -> None:
    """The ISO's arrangement with real processes: the UI runs as one unprivileged user,
    asks the launcher service over its socket, and gets a keyholder running as another
    user; the UI cannot read the keyholder's memory; anyone else is refused."""
    d = Path(tempfile.mkdtemp(prefix="kcm-svc-", dir="/tmp"))
    os.chmod(d, 0o755)
    conf = d / "keyholder.toml"
    conf.write_text(
        f"keyholder_user = {KH_UID}\nclient_users = [{UI_UID}]\npkcs11_modules = []\n"
        f'python = "{keyholder_python}"\nunlocked_memory = false\n'
    )
    os.chmod(conf, 0o644)
    svc = _SocketService(str(conf), str(d / "keyholder.sock"))
    try:
        code = (
            "import json\n"
            "from core.keyholder import launcher\n"
            f"kh = launcher.connect({svc.path!r})\n"
            "pid = kh.info['pid']\n"
            "try:\n"
            "    open(f'/proc/{pid}/mem', 'rb').close(); mem = 'OPENED'\n"
            "except OSError as e:\n"
            "    mem = f'denied {e.errno}'\n"
            "kh.generate_master()\n"
            "fp = kh.fingerprint()['fingerprint']\n"
            "print(json.dumps({'uid': kh.info['uid'], 'pid': pid, 'mem': mem, 'fp': len(fp)}))\n"
            "kh.close()\n"
            "try:\n"
            f"    launcher.connect({svc.path!r}, allow_unlocked=True)\n"
            "except launcher.LauncherRefused as e:\n"
            "    print('REFUSED', e)\n"
        )
        r = _ui_as(UI_UID, keyholder_python, code)
        assert r.returncode == 0, r.stderr
        import json

        first, second = r.stdout.splitlines()[:2]
        got = json.loads(first)
        assert got["uid"] == KH_UID and got["fp"] == 64
        assert got["mem"].startswith("denied"), got
        assert second.startswith("REFUSED unlocked memory is not allowed")
        # root (not in client_users) is refused by SO_PEERCRED, whatever the file mode says
        with pytest.raises(launcher.LauncherRefused, match=f"only \\[{UI_UID}\\]"):
            launcher.connect(svc.path)
    finally:
        svc.close()
        shutil.rmtree(d, ignore_errors=True)


def test_the_launcher_reads_the_request_only_after_dropping_root(keyholder_python: str) -> None:
    """A client that connects and sends nothing: the launcher waiting for its request is
    already the keyholder's user, with no capability (it parses no byte of the UI as root)."""
    import socket
    import time

    d = Path(tempfile.mkdtemp(prefix="kcm-svc-", dir="/tmp"))
    os.chmod(d, 0o755)
    conf = d / "keyholder.toml"
    conf.write_text(
        f"keyholder_user = {KH_UID}\nclient_users = [0]\npkcs11_modules = []\n"
        f'python = "{keyholder_python}"\n'
    )
    os.chmod(conf, 0o644)
    svc = _SocketService(str(conf), str(d / "keyholder.sock"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(svc.path)
        end = time.monotonic() + 30
        while not svc.procs and time.monotonic() < end:
            time.sleep(0.05)
        pid = svc.procs[0].pid
        st: dict[str, str] = {}
        while time.monotonic() < end:
            st = _status(pid)
            if st["Uid"].split()[0] != "0":
                break
            time.sleep(0.05)
        assert st["Uid"].split() == [str(KH_UID)] * 4, st["Uid"]
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
        assert st["NoNewPrivs"] == "1"
        assert b"core.keyholder.launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        sock.close()
        svc.close()
        shutil.rmtree(d, ignore_errors=True)
