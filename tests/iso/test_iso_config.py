"""Fast checks of the ISO build configuration (no build, no root, a few seconds).

They catch the mistakes that would otherwise show only after a 6-minute build and a
2-minute boot: a network package in a list, a hook that is not executable or does not
parse, a missing hardening flag, a boot menu that waits forever, a self-test entry gone.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from core import selftest

ROOT = Path(__file__).resolve().parents[2]
ISO = ROOT / "iso_build"
CONFIG = ISO / "config"
INCLUDES = CONFIG / "includes.chroot"

REQUIRED_FLAGS = {
    "init_on_alloc=1",
    "init_on_free=1",
    "slab_nomerge",
    "page_alloc.shuffle=1",
    "randomize_kstack_offset=on",
    "vsyscall=none",
    "lockdown=confidentiality",
    "ipv6.disable=1",
}
REQUIRED_PACKAGES = {"python3", "libzbar0", "pcscd", "opensc", "live-boot", "systemd-sysv"}
FORBIDDEN = tomllib.loads((ISO / "forbidden.toml").read_text())
FORBIDDEN_PACKAGES = set(FORBIDDEN["packages"]["names"]) | {
    # desktop stacks pull network managers in with them
    "task-desktop", "xserver-xorg", "gnome-core",
}  # fmt: skip
PKG_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def package_lists() -> dict[str, list[str]]:
    lists = {}
    for path in sorted((CONFIG / "package-lists").glob("*.list.chroot")):
        names = []
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            names.extend(line.split())
        lists[path.name] = names
    return lists


def build_sh() -> str:
    return (ISO / "build.sh").read_text()


def cmdline_from_build_sh() -> list[str]:
    m = re.search(r'^HARDENING="([^"]+)"', build_sh(), re.M)
    assert m, "HARDENING= line missing in build.sh"
    return m.group(1).split()


def test_package_lists_are_well_formed_and_complete() -> None:
    lists = package_lists()
    assert "kcm.list.chroot" in lists and "live.list.chroot" in lists
    names = [n for ns in lists.values() for n in ns]
    assert all(PKG_NAME.match(n) for n in names), names
    assert len(names) == len(set(names)), "a package is listed twice"
    assert REQUIRED_PACKAGES <= set(names)
    assert "ykcs11" in names  # the Yubico PKCS#11 module, present in bookworm


def test_no_network_package_is_listed() -> None:
    names = {n for ns in package_lists().values() for n in ns}
    assert not (names & FORBIDDEN_PACKAGES)


def test_build_audits_files_not_package_names() -> None:
    """The build deletes busybox and klibc's network programs from the root file system
    (after the initramfs is made) and audits packages, programs, busybox applets and kernel
    modules, in the tree and in the initramfs, failing on any finding (core.offline_audit)."""
    text = build_sh()
    strip = text.index('offline_audit.py" strip-programs chroot')
    audit = text.index('offline_audit.py" audit chroot')
    assert text.index("lb chroot\n") < strip < audit < text.index('log "lb binary"')
    assert "lsinitramfs" in text and "--initramfs-list" in text
    assert 'die "forbidden items in the image' in text
    assert "FORBIDDEN=" not in text  # the old package-name regex is gone
    # The findings are on the list.
    assert {"firewire-net", "dvb-core"} <= set(FORBIDDEN["modules"]["names"])
    assert {"udhcpc", "udhcpd", "wget", "nc", "telnet", "httpd", "tftp"} <= set(FORBIDDEN["busybox"]["applets"])
    assert "register_netdev" in FORBIDDEN["modules"]["symbols"]
    # The image's self test audits the running system with the same list.
    assert 'cp "$BUILD/forbidden.toml" config/includes.chroot/usr/local/share/kcm/forbidden.toml' in text
    run = (INCLUDES / "usr" / "local" / "sbin" / "kcm-selftest-run").read_text()
    assert "--audit" in run
    assert str(selftest.FORBIDDEN_LIST) == "/usr/local/share/kcm/forbidden.toml"


def test_hooks_are_executable_shell_that_parses() -> None:
    hooks = sorted((CONFIG / "hooks" / "normal").iterdir())
    assert hooks, "no hooks"
    for hook in hooks:
        assert re.search(r"\.hook\.(chroot|binary)$", hook.name), hook.name
        assert hook.stat().st_mode & 0o111, f"{hook.name} is not executable"
        first = hook.read_text().splitlines()[0]
        assert first in ("#!/bin/sh", "#!/bin/bash"), f"{hook.name}: {first}"
        shell = first[2:]
        subprocess.run([shell, "-n", str(hook)], check=True)
    names = [h.name for h in hooks]
    assert any("no-network" in n for n in names)
    assert any("venv" in n for n in names)
    assert any("squashfs-blkid" in n and n.endswith(".binary") for n in names)


def test_network_modules_are_deleted_not_only_blacklisted() -> None:
    hook = next((CONFIG / "hooks" / "normal").glob("*no-network*.hook.chroot")).read_text()
    assert 'python3 "$AUDIT" strip-modules / "$LIST"' in hook
    assert "AUDIT=/usr/local/lib/kcm/offline_audit.py" in hook
    assert "depmod" in hook and "rm -rf /usr/local/lib/kcm" in hook
    # the list the hook reads names the network module directories
    for sub in ("kernel/drivers/net/", "kernel/net/", "kernel/drivers/bluetooth/"):
        assert sub in FORBIDDEN["modules"]["paths"], sub


def test_initramfs_carries_only_what_finds_the_boot_medium() -> None:
    conf = (INCLUDES / "etc" / "initramfs-tools" / "conf.d" / "kcm.conf").read_text()
    assert re.search(r"^MODULES=list$", conf, re.M)
    hook = INCLUDES / "etc" / "initramfs-tools" / "hooks" / "kcm-boot-media"
    assert hook.stat().st_mode & 0o111
    text = hook.read_text()
    for needed in ("usb/host", "usb/storage", "drivers/ata", "drivers/mmc", "nvme/host", "sr_mod", "squashfs", "overlay", "isofs"):
        assert needed in text, needed
    subprocess.run(["sh", "-n", str(hook)], check=True)
    # build.sh resets every included file to 0644: mkinitramfs skips a hook that is not
    # executable (the image then fails to find its boot medium), so it is made 0755 again
    modes = [ln for ln in build_sh().splitlines() if ln.startswith("chmod 0755 config/includes.chroot/")]
    assert any("config/includes.chroot/etc/initramfs-tools/hooks/*" in ln for ln in modes)


INITRAMFS_INIT = Path("/usr/share/initramfs-tools/init")  # initramfs-tools-core (install-debian-deps.sh)


def run_switch_patch(tmp_path: Path, init_text: str) -> subprocess.CompletedProcess[str]:
    """The part of the kcm-boot-media hook that rewrites /init's last line, run on init_text."""
    hook = (INCLUDES / "etc" / "initramfs-tools" / "hooks" / "kcm-boot-media").read_text()
    part = hook[hook.index("# The switch to the real root"):]
    (tmp_path / "init").write_text(init_text)
    return subprocess.run(["sh", "-ec", part], env={"DESTDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)


def test_the_switch_to_the_real_root_does_not_delete_the_initramfs(tmp_path: Path) -> None:
    """run-init deletes the initramfs first, which init_on_free=1 made cost 28 s of an emulated
    boot: the hook replaces that one line of Debian's own /init with a mount move and chroot."""
    original = INITRAMFS_INIT.read_text()
    done = run_switch_patch(tmp_path, original)
    assert done.returncode == 0, done.stderr
    patched = (tmp_path / "init").read_text()
    changed = [(a, b) for a, b in zip(original.splitlines(), patched.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and changed[0][0].startswith("exec run-init "), changed
    assert changed[0][1].startswith('cd "${rootmnt}" && mount -n -o move . / && exec chroot . "${init}" "$@" ')
    assert "<./dev/console >./dev/console 2>&1" in changed[0][1]
    subprocess.run(["sh", "-n", str(tmp_path / "init")], check=True)
    # the validation of init before the switch is kept (run-init -n: a dry run, deletes nothing)
    assert 'run-init -n "${rootmnt}"' in patched
    # a changed /init (a new initramfs-tools) fails the build rather than booting unpatched
    other = original.replace("exec run-init ${drop_caps}", "exec run-init -c ${drop_caps}")
    refused = run_switch_patch(tmp_path, other)
    assert refused.returncode != 0 and "has no 'exec run-init" in refused.stderr


def test_toram_releases_the_boot_medium_and_live_boot_configures_no_network() -> None:
    m = re.search(r'^APPEND="([^"]+)"', build_sh(), re.M)
    assert m
    words = m.group(1).split()
    assert "toram=filesystem.squashfs" in words and "nonetworking" in words
    # the kernel and initramfs are on the ISO: not a second copy inside the squashfs
    assert "boot/initrd.img*" in build_sh() and "config/rootfs/excludes" in build_sh()


def test_image_is_slim() -> None:
    hook = (CONFIG / "hooks" / "normal" / "0050-kcm-slim.hook.chroot").read_text()
    for path in ("/usr/share/doc", "/usr/share/man", "/usr/share/locale"):
        assert path in hook, path
    dpkg = (CONFIG / "includes.chroot_before_packages" / "etc" / "dpkg" / "dpkg.cfg.d" / "90-kcm-slim").read_text()
    for rule in ("path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
                 "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/locale/*"):  # fmt: skip
        assert rule in dpkg, rule


def test_scripts_are_executable_and_parse() -> None:
    for script in [ISO / "build.sh", *(INCLUDES / "usr" / "local" / "sbin").iterdir()]:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        shell = script.read_text().splitlines()[0][2:].split()
        shell = shell[1:] if shell[0].endswith("env") else shell
        subprocess.run([*shell, "-n", str(script)], check=True)


def test_kernel_command_line_carries_the_hardening_flags() -> None:
    flags = cmdline_from_build_sh()
    assert set(flags) >= REQUIRED_FLAGS
    assert set(selftest.HARDENING_FLAGS) == set(flags), "build.sh and core/selftest.py disagree"
    m = re.search(r'^APPEND="([^"]+)"', build_sh(), re.M)
    assert m and "$HARDENING" in m.group(1) and "boot=live" in m.group(1)
    assert '--bootappend-live "$APPEND"' in build_sh()


def test_clean_build_every_time_and_blkid_trap_checked() -> None:
    text = build_sh()
    assert "lb clean --all" in text
    assert "rm -rf --one-file-system" in text
    assert "blkid -p" in text
    assert "SOURCE_DATE_EPOCH" in text
    assert "9010-remove-python-pyc" in text  # the .pyc-deleting sample hook is dropped
    assert "var/cache/apt/*.bin" in text
    # a build that died leaves processes in the chroot and mounts: both cleaned at start
    assert "cleanup_build_tree" in text and 'readlink "$p/root"' in text
    assert 'PATH="$HERE/bin:$PATH"' in text  # live-build's umount retries while busy


def test_live_build_unmounts_are_retried(tmp_path: Path) -> None:
    shim = ISO / "bin" / "umount"
    assert shim.stat().st_mode & 0o111
    text = shim.read_text()
    assert "/usr/bin/umount" in text and "sleep 1" in text and '"$KCM_LB_DIR"/*' in text
    # not mounted: a plain failure at once, no retry loop (as util-linux says, exit 32)
    res = subprocess.run([str(shim), str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 32 and "try" not in res.stderr


def test_venv_is_installed_from_the_lock_and_loses_pip() -> None:
    hook = (CONFIG / "hooks" / "normal" / "0200-kcm-venv.hook.chroot").read_text()
    for flag in ("--no-index", "--require-hashes", "--only-binary=:all:", "PIP_CONFIG_FILE=/dev/null"):
        assert flag in hook, flag
    assert "uninstall --yes pip" in hook and "import pip" in hook
    assert "linuxpy.video.device" in hook  # the camera extra is in the image
    # reproducible .pyc: nothing runs Python in the venv before compileall writes hash-based
    # .pyc files (a timestamp .pyc records when the wheel was unpacked: two builds differed)
    compile_at = hook.index("compileall -q -f")
    for line in hook[:compile_at].splitlines():
        if '"$VENV/bin/python" ' in line and "pip" not in line:
            assert '"$VENV/bin/python" -B ' in line, line
    text = build_sh()
    assert "requirements/runtime.lock" in text and "requirements/build.lock" in text
    assert '"$ROOT/tools/pip-locked"' in text
    assert text.count("--require-hashes --only-binary=:all:") >= 3


def test_boot_menus_time_out_and_offer_the_self_test() -> None:
    iso_cfg = (CONFIG / "bootloaders" / "isolinux" / "isolinux.cfg").read_text()
    timeout = int(re.search(r"^timeout (\d+)", iso_cfg, re.M).group(1))  # type: ignore[union-attr]
    assert 0 < timeout <= 50, "isolinux timeout 0 waits forever"
    live = (CONFIG / "bootloaders" / "isolinux" / "live.cfg.in").read_text()
    assert "label selftest" in live and "kcm.selftest=1" in live and "console=ttyS0" in live
    assert "@APPEND_LIVE@" in live
    grub = (CONFIG / "bootloaders" / "grub-pc" / "grub.cfg").read_text()
    gt = int(re.search(r"^set timeout=(\d+)", grub, re.M).group(1))  # type: ignore[union-attr]
    assert 0 < gt <= 5
    assert grub.count("@APPEND_LIVE@") == 2 and "kcm.selftest=1" in grub


def test_core_dumps_off_and_no_swap() -> None:
    sysctl = (INCLUDES / "etc" / "sysctl.d" / "90-kcm-hardening.conf").read_text()
    assert f"kernel.core_pattern = {selftest.CORE_PATTERN_OFF}" in sysctl
    assert "fs.suid_dumpable = 0" in sysctl
    system = (INCLUDES / "etc" / "systemd" / "system.conf.d" / "90-kcm.conf").read_text()
    assert "DefaultLimitCORE=0" in system
    hook = (CONFIG / "hooks" / "normal" / "0300-kcm-system.hook.chroot").read_text()
    assert "mask swap.target" in hook and "passwd -l root" in hook


def test_console_session_and_selftest_units() -> None:
    units = INCLUDES / "etc" / "systemd" / "system"
    console = (units / "kcm-console.service").read_text()
    assert "TTYPath=/dev/tty1" in console and "ExecStart=/usr/local/sbin/kcm-session" in console
    assert "ConditionKernelCommandLine=!kcm.selftest=1" in console
    session = (INCLUDES / "usr" / "local" / "sbin" / "kcm-session").read_text()
    assert "env -i" in session and "TERM=linux" in session and "KCM-UI-START" in session
    assert "systemctl poweroff" in session
    # the ceremony scripts are data outside the wheel: shipped and passed explicitly
    assert "--scripts /opt/kcm/ceremony_scripts" in session
    assert "opt/kcm/ceremony_scripts" in build_sh()
    # a medium left writable by a crashed program is released when it ends
    assert "kcm-media release" in session
    st = (units / "kcm-selftest.service").read_text()
    assert "ConditionKernelCommandLine=kcm.selftest=1" in st and "TTYPath=/dev/ttyS0" in st
    assert "SuccessAction=poweroff" in st and "FailureAction=poweroff" in st
    run = (INCLUDES / "usr" / "local" / "sbin" / "kcm-selftest-run").read_text()
    assert "selftest --expect-hardened" in run and "preflight --json" in run


def test_console_font_is_loaded_after_udev_settles_and_again_on_takeover() -> None:
    session = (INCLUDES / "usr" / "local" / "sbin" / "kcm-session").read_text()
    settle = session.index("udevadm settle")
    font = session.index("/usr/local/sbin/kcm-console-font /dev/tty1")
    assert settle < font < session.index("while :; do")
    assert "2>/dev/null && break" not in session  # failures are shown, not hidden
    loader = (INCLUDES / "usr" / "local" / "sbin" / "kcm-console-font").read_text()
    assert "FONT=/usr/share/consolefonts/kcm-Terminus16.psf" in loader and "logger" in loader
    rule = (INCLUDES / "etc" / "udev" / "rules.d" / "90-kcm-console-font.rules").read_text()
    assert 'SUBSYSTEM=="vtconsole"' in rule and "kcm-console-font" in rule
    maker = (CONFIG / "hooks" / "normal" / "0060-kcm-console-font.hook.chroot").read_text()
    assert "consolefont.py extend /usr/share/consolefonts/Uni2-Terminus16.psf.gz" in maker
    slim = (CONFIG / "hooks" / "normal" / "0050-kcm-slim.hook.chroot").read_text()
    assert "Uni2-Terminus16.psf.gz" in slim and "kcm-Terminus16.psf" in slim  # both kept


def test_boot_check_runs_only_when_a_hypervisor_or_the_command_line_asks() -> None:
    unit = (INCLUDES / "etc" / "systemd" / "system" / "kcm-check.service").read_text()
    assert "ExecCondition=/usr/local/sbin/kcm-check-run --wanted" in unit
    head = unit.split("[Service]")[0]
    assert "SuccessAction=poweroff" in head and "FailureAction=poweroff" in head  # [Unit] keys
    run = (INCLUDES / "usr" / "local" / "sbin" / "kcm-check-run").read_text()
    assert "opt/org.openkcm/check" in run and "kcm.check=1" in run
    assert "selftest --expect-hardened --boot-check" in run and "/dev/vcsu1" in run
    assert "kcm-check.service" in (CONFIG / "hooks" / "normal" / "0300-kcm-system.hook.chroot").read_text()


RULES = INCLUDES / "etc" / "udev" / "rules.d"


def test_removable_rule_fires_at_add_for_every_usb_or_removable_disk() -> None:
    """FINDINGS 8: a rule sorting before 60-persistent-storage.rules cannot match ID_BUS. The
    rule matches on the parents (SUBSYSTEMS/ATTRS: no order dependency, USB enclosures that
    say removable=0 included) and sorts after 60-persistent-storage.rules anyway."""
    files = sorted(p.name for p in RULES.glob("*kcm-removable*"))
    assert len(files) == 1
    name = files[0]
    assert name > "60-persistent-storage.rules", name
    rules = (RULES / name).read_text()
    body = [ln for ln in rules.splitlines() if ln.strip() and not ln.startswith("#")]
    assert body[0] == 'SUBSYSTEM!="block", GOTO="kcm_ro_end"'
    assert 'ACTION!="add|change", GOTO="kcm_ro_end"' in body
    assert any(ln.startswith('SUBSYSTEMS=="usb|') for ln in body)  # removable=0 enclosures
    assert any('ATTRS{removable}=="1' in ln for ln in body)
    assert any("mmc" in ln for ln in body) and any("firewire" in ln for ln in body)
    assert 'RUN+="/usr/sbin/blockdev --setro $devnode"' in body
    assert 'ENV{KCM_READONLY}="1"' in body
    # only a "change" may keep the chosen export medium writable; an "add" never does
    keep = next(ln for ln in body if "writable/$kernel" in ln and "TEST" in ln)
    assert keep.startswith('ACTION=="change"')
    assert body.index(keep) < body.index('RUN+="/usr/sbin/blockdev --setro $devnode"')


def test_media_helper_makes_only_marked_removable_devices_writable() -> None:
    media = (INCLUDES / "usr" / "local" / "sbin" / "kcm-media").read_text()
    assert "grep -qx 'KCM_READONLY=1'" in media  # refuses anything udev did not mark
    assert 'blockdev --setrw "$d"' in media and 'blockdev --getro "$dev"' in media
    assert "lsblk -ndo PKNAME" in media  # the partition's disk too, and nothing else
    assert "exit 4" in media  # physically write-protected
    assert "umount_retry" in media and "blockdev --setro" in media
    assert 'mount -t "$t" -o "ro,$OPTS$extra"' in media  # import stays read-only
    from core import removable

    assert str(removable.HELPER) == "/usr/local/sbin/kcm-media"
    assert str(removable.EXPORT_MOUNT) in media
    assert " ".join(removable.EXPORT_FS) in media


def test_hostname_in_includes() -> None:
    assert (INCLUDES / "etc" / "hostname").read_text().strip() == "kcm-ceremony"


def test_words_display_round_trips() -> None:
    spec = importlib.util.spec_from_file_location("kcm_iso_words", ISO / "words.py")
    assert spec and spec.loader
    words = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(words)
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    seq = words.hex_to_words(digest)
    assert len(seq) == 26 and seq[0] == "repair"
    assert words.words_to_hex(seq) == digest
    assert len((ISO / "wordlist.txt").read_text().split()) == 1024
    # Same encoding as the product's own words display (core.words), when it exists.
    if importlib.util.find_spec("core.words") is not None:
        from core import words as core_words

        assert core_words.to_words(bytes.fromhex(digest)) == seq


def test_make_targets_exist() -> None:
    mk = (ROOT / "mk" / "iso.mk").read_text()
    for target in ("iso:", "iso-test:", "iso-clean:"):
        assert re.search(rf"^{re.escape(target)}", mk, re.M), target
    assert "boot_test.py" in mk and "build.sh" in mk
    # make iso-test installs qemu and OVMF (and mkfs.fat for its test disks) when root
    assert mk.index("install-test-deps.sh") < mk.index("boot_test.py")
    deps = (ISO / "install-test-deps.sh").read_text()
    assert "qemu-system-x86" in deps and "ovmf" in deps and "dosfstools" in deps


LB_CONFIG = Path("/usr/lib/live/build/config")


@pytest.mark.skipif(not LB_CONFIG.is_file(), reason="live-build not installed")
def test_lb_config_accepts_the_options() -> None:
    """Every option build.sh passes to `lb config` exists in the installed live-build."""
    m = re.search(r'LONG_OPTIONS="([^"]+)"', LB_CONFIG.read_text())
    assert m
    known = {o.strip() for o in m.group(1).replace("\n", " ").split(",") if o.strip()}
    takes_value = {o[:-1] for o in known if o.endswith(":")}
    flags = {o for o in known if not o.endswith(":")}
    block = build_sh().split("lb config \\", 1)[1].split("\n\n", 1)[0]
    tokens = shlex.split(block.replace("\\\n", " "))
    unknown, i = [], 0
    while i < len(tokens):
        name = tokens[i][2:] if tokens[i].startswith("--") else None
        if name in takes_value:
            i += 2
        elif name in flags:
            i += 1
        else:
            unknown.append(tokens[i])
            i += 1
    assert not unknown, unknown


# ------------------------------------------------------------ privilege separation (issue 20)


def _unit(name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (INCLUDES / "etc/systemd/system" / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def test_the_ui_runs_as_kcm_with_no_privilege() -> None:
    session = (INCLUDES / "usr/local/sbin/kcm-session").read_text()
    start = session[session.index("setpriv --reuid") :]
    cmd = start[: start.index("/opt/kcm/venv/bin/kcm-ceremony")]
    for opt in ("--reuid=kcm", "--regid=kcm", "--init-groups", "--no-new-privs", "--inh-caps=-all",
                "--bounding-set=-all"):  # fmt: skip
        assert opt in cmd, opt
    assert "HOME=/root" not in session and "USER=root" not in session
    # kcm-ceremony refuses PYTHON*/TEXTUAL* variables outside demo: the session sets none
    assert not re.search(r"^\s*(PYTHON|TEXTUAL)\w*=", session, re.M)
    # the ceremony medium and any export medium are released when the program ends
    assert "kcm-media release --all" in session
    hook = (CONFIG / "hooks/normal/0300-kcm-system.hook.chroot").read_text()
    assert "useradd --system --gid kcm " in hook and "--shell /usr/sbin/nologin kcm\n" in hook
    assert "--shell /usr/sbin/nologin kcm-keyholder" in hook
    assert "systemctl enable kcm-keyholder.socket kcm-media.socket" in hook


def test_the_keyholder_launcher_and_media_service_sockets() -> None:
    from core import media_service
    from core.keyholder import launcher

    for sock, service, module in (
        ("kcm-keyholder.socket", "kcm-keyholder@.service", "core.keyholder.launcher serve"),
        ("kcm-media.socket", "kcm-media@.service", "core.media_service serve --client-user kcm"),
    ):
        s, svc = _unit(sock), _unit(service)
        assert s["Accept"] == "yes" and s["SocketGroup"] == "kcm" and s["SocketMode"] == "0660"
        assert s["ListenStream"] in (launcher.SOCKET, media_service.SOCKET)
        assert svc["StandardInput"] == "socket" and svc["StandardOutput"] == "socket"
        assert svc["ExecStart"].startswith("/opt/kcm/venv/bin/python -I -m " + module)
        assert "User" not in svc  # root only until the launcher/helper drops or is done
    assert _unit("kcm-keyholder@.service")["LimitMEMLOCK"] == "infinity"


def test_the_keyholder_policy_of_the_image() -> None:
    from core.keyholder import launcher

    pol = launcher.load_policy(str(INCLUDES / "etc/kcm/keyholder.toml"), check_owner=False)
    assert pol.keyholder_user == "kcm-keyholder" and pol.client_users == ("kcm",)
    assert pol.terminal == "/dev/tty1" and pol.allow_pty is False
    assert pol.unlocked_memory is False and pol.memlock_unlimited is True
    assert pol.python == "/opt/kcm/venv/bin/python"
    assert "softhsm2" not in pol.pkcs11_modules


def test_yama_and_the_decoders_seccomp_filter_on_the_image() -> None:
    sysctl = (INCLUDES / "etc/sysctl.d/90-kcm-hardening.conf").read_text()
    assert re.search(r"^kernel\.yama\.ptrace_scope = 3$", sysctl, re.M)
    packages = (CONFIG / "package-lists/kcm.list.chroot").read_text().split()
    assert "python3-seccomp" in packages
    venv = (CONFIG / "hooks/normal/0200-kcm-venv.hook.chroot").read_text()
    assert 'ln -sfn "/usr/lib/python3/dist-packages/seccomp$SUFFIX"' in venv
    assert "import seccomp" in venv


def test_the_media_helper_has_a_ceremony_medium_for_the_journal() -> None:
    helper = (INCLUDES / "usr/local/sbin/kcm-media").read_text()
    assert "\n\tceremony)\n" in helper and "CEREMONY_DIR=/media/kcm-ceremony" in helper
    # mounts made writable belong to the UI's user (it is not root)
    assert "uid=${owner%:*},gid=${owner#*:},umask=077" in helper
    rules = (INCLUDES / "etc/udev/rules.d/61-kcm-removable-readonly.rules").read_text()
    assert 'TEST=="/run/kcm-media/ceremony/$kernel", GOTO="kcm_ro_end"' in rules
    r = subprocess.run(["sh", "-n", str(INCLUDES / "usr/local/sbin/kcm-media")], check=False)
    assert r.returncode == 0


def test_the_standalone_build_scripts_have_what_they_import_from_core() -> None:
    """consolefont.py and offline_audit.py run in the chroot with Debian's python3 before the
    venv exists; what they import from ``core`` must be copied beside them by build.sh (a
    missing one failed `make iso` in the console-font hook)."""
    import ast

    build = (ISO / "build.sh").read_text()
    copies = [ln for ln in build.splitlines() if ln.startswith("cp ") and ln.endswith("usr/local/lib/kcm/core/")]
    shipped = {m for ln in copies for m in re.findall(r'"\$BUILD/src/core/(\w+)\.py"', ln)}
    for name in ("consolefont", "offline_audit"):
        tree = ast.parse((ROOT / "core" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods.append(node.module)
            elif isinstance(node, ast.Import):
                mods += [a.name for a in node.names]
            for mod in mods:
                if mod == "core" or mod.startswith("core."):
                    assert mod.removeprefix("core.") in shipped, (name, mod, shipped)
    assert {"__init__", "errors"} <= shipped
