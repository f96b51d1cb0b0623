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
FORBIDDEN_PACKAGES = {
    "network-manager", "ifupdown", "isc-dhcp-client", "dhcpcd-base", "dhcpcd5", "udhcpc",
    "wpasupplicant", "iw", "wireless-tools", "bluez", "rfkill", "connman", "netplan.io",
    "ppp", "openssh-server", "openssh-client", "avahi-daemon", "systemd-resolved",
    "curl", "wget", "live-config", "live-config-systemd", "sudo",
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


def test_build_script_refuses_network_packages_in_the_built_image() -> None:
    text = build_sh()
    m = re.search(r"^FORBIDDEN='([^']+)'", text, re.M)
    assert m and "chroot.packages.live" in text
    pattern = re.compile(m.group(1))
    for pkg in ("network-manager", "isc-dhcp-client", "wpasupplicant", "bluez", "ifupdown"):
        assert pattern.search(f"{pkg}\t1.0"), pkg
    assert not pattern.search("pcscd\t1.9.9-2")


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
    for sub in ("drivers/net", "drivers/bluetooth", " net "):
        assert sub in hook.replace("\t", " ").replace("\n", " "), sub
    assert "rm -rf" in hook and "depmod" in hook


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
    assert (
        "--require-hashes"
        in (CONFIG / "hooks" / "normal" / "0200-kcm-venv.hook.chroot").read_text()
    )


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
    assert "systemctl poweroff" in session and "setfont" in session
    # the ceremony scripts are data outside the wheel: shipped and passed explicitly
    assert "--scripts /opt/kcm/ceremony_scripts" in session
    assert "opt/kcm/ceremony_scripts" in build_sh()
    st = (units / "kcm-selftest.service").read_text()
    assert "ConditionKernelCommandLine=kcm.selftest=1" in st and "TTYPath=/dev/ttyS0" in st
    assert "SuccessAction=poweroff" in st and "FailureAction=poweroff" in st
    run = (INCLUDES / "usr" / "local" / "sbin" / "kcm-selftest-run").read_text()
    assert "selftest --expect-hardened" in run and "preflight --json" in run


def test_removable_media_are_read_only_unless_exported() -> None:
    rules = (INCLUDES / "etc" / "udev" / "rules.d" / "60-kcm-removable-readonly.rules").read_text()
    assert rules.count("blockdev --setro") >= 2
    media = (INCLUDES / "usr" / "local" / "sbin" / "kcm-media").read_text()
    assert "--setrw" in media and "ro,$OPTS" in media


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
