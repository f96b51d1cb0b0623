"""Tests for core.preflight against faked /proc and /sys trees (plus one real run)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from core import preflight
from core.preflight import CHECK_NAMES, CheckResult

MiB = 1 << 20

ISO_CMDLINE = (
    "BOOT_IMAGE=/live/vmlinuz boot=live components quiet init_on_alloc=1 init_on_free=1 "
    "slab_nomerge page_alloc.shuffle=1 randomize_kstack_offset=on vsyscall=none "
    "lockdown=confidentiality ipv6.disable=1 modprobe.blacklist=e1000,virtio_net\n"
)
ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
LIVE_MOUNTS = (
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "/dev/sr0 /run/live/medium iso9660 ro,noatime 0 0\n"
    "/dev/loop0 /run/live/rootfs/filesystem.squashfs squashfs ro,noatime 0 0\n"
    "tmpfs /run/live/overlay tmpfs rw,noatime,mode=755 0 0\n"
    "overlay / overlay rw,noatime,lowerdir=/run/live/rootfs/filesystem.squashfs/,"
    "upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work 0 0\n"
)

# The hardened ceremony ISO, as the checks should see it: every check PASSes.
CLEAN_TREE: dict[str, str] = {
    "sys/class/net/lo/flags": "0x9\n",
    "sys/class/net/lo/operstate": "unknown\n",
    "proc/net/route": ROUTE_HEADER,
    "proc/swaps": SWAPS_HEADER,
    "proc/sys/kernel/core_pattern": "core\n",
    "proc/sys/fs/suid_dumpable": "0\n",
    # the UI as an unprivileged user (issue 20): no root, no CAP_SYS_PTRACE
    "proc/self/status": (
        "Name:\tkcm-ceremony\nUid:\t1000\t1000\t1000\t1000\n"
        "CapPrm:\t0000000000004000\nCapEff:\t0000000000004000\n"
    ),
    "proc/cmdline": ISO_CMDLINE,
    "proc/sys/kernel/random/entropy_avail": "256\n",
    "proc/mounts": LIVE_MOUNTS,
}

Maker = Callable[..., str]


@pytest.fixture
def make_root(tmp_path: Path) -> Maker:
    """Build a fake filesystem root: the clean ISO tree, with overrides (None deletes)."""
    counter = iter(range(1000))

    def build(overrides: dict[str, str | None] | None = None) -> str:
        root = tmp_path / f"root{next(counter)}"
        tree: dict[str, str | None] = {**CLEAN_TREE, **(overrides or {})}
        for rel, text in tree.items():
            if text is None:
                continue
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "proc" / "self").mkdir(parents=True, exist_ok=True)
        return str(root)

    return build


def ok_probe() -> tuple[bool, str]:
    return True, "probe ok"


def failing_probe() -> tuple[bool, str]:
    return False, "the kernel has no memfd_secret (ENOSYS)"


CLEAN_PROCESS: dict[str, object] = {
    "env": {},
    "term_size": (80, 24),
    "core_limit": (0, 0),
    "memlock_limit": (8 * MiB, 8 * MiB),
    "memfd_secret_probe": ok_probe,
    "getrandom_probe": ok_probe,
    "seccomp_probe": ok_probe,
}


# --------------------------------------------------------------------------- run_all


def test_clean_iso_tree_passes_everything(make_root: Maker) -> None:
    results = preflight.run_all(make_root(), **CLEAN_PROCESS)  # type: ignore[arg-type]
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert {r.name: r.status for r in results} == dict.fromkeys(CHECK_NAMES, "PASS")
    assert all(r.action == "nothing to do" for r in results)
    assert preflight.exit_status(results) == 0


def test_run_all_turns_a_crashing_check_into_a_result(make_root: Maker) -> None:
    def boom() -> tuple[bool, str]:
        raise RuntimeError("probe exploded")

    kwargs = {**CLEAN_PROCESS, "getrandom_probe": boom}
    results = preflight.run_all(make_root(), **kwargs)  # type: ignore[arg-type]
    entropy = next(r for r in results if r.name == "entropy")
    assert entropy.status == "FAIL"
    assert "RuntimeError: probe exploded" in entropy.reason
    assert [r.name for r in results] == list(CHECK_NAMES)


def test_unknown_mode_is_rejected(make_root: Maker) -> None:
    with pytest.raises(ValueError, match="unknown preflight mode"):
        preflight.run_all(make_root(), mode="lenient", **CLEAN_PROCESS)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        preflight.check_swap(make_root(), mode="Ceremony")


def test_demo_mode_never_fails(make_root: Maker) -> None:
    root = make_root(
        {
            "sys/class/net/eth0/flags": "0x1003\n",
            "sys/class/net/eth0/operstate": "up\n",
            "proc/swaps": SWAPS_HEADER + "/dev/sda2 partition 8388604 0 -2\n",
        }
    )
    bad = {
        **CLEAN_PROCESS,
        "env": {"TEXTUAL_LOG": "/tmp/log"},
        "term_size": (40, 10),
        "core_limit": (-1, -1),
        "memlock_limit": (64 * 1024, 64 * 1024),
        "getrandom_probe": failing_probe,
    }
    strict = preflight.run_all(root, mode="ceremony", **bad)  # type: ignore[arg-type]
    demo = preflight.run_all(root, mode="demo", **bad)  # type: ignore[arg-type]
    failed = {r.name for r in strict if r.status == "FAIL"}
    assert failed == {
        "network-interfaces",
        "swap",
        "core-dumps",
        "entropy",
        "environment",
        "terminal-size",
    }
    assert {r.name for r in demo if r.status == "WARN"} >= failed
    assert not [r for r in demo if r.status == "FAIL"]
    # Demo changes the severity, not the words.
    assert [(r.reason, r.action) for r in strict] == [(r.reason, r.action) for r in demo]


def test_results_are_one_line_each(make_root: Maker) -> None:
    root = make_root({"sys/class/net/eth0/flags": "0x1003\n"})
    for r in preflight.run_all(root, **CLEAN_PROCESS):  # type: ignore[arg-type]
        assert "\n" not in r.reason and "\n" not in r.action
        assert r.reason and r.action


def test_real_machine_returns_every_check() -> None:
    results = preflight.run_all()
    assert [r.name for r in results] == list(CHECK_NAMES)
    for r in results:
        assert isinstance(r, CheckResult)
        assert r.status in ("PASS", "WARN", "FAIL")
        assert r.reason and r.action
        assert "the check itself failed" not in r.reason, r
    for probe in (preflight.probe_getrandom, preflight.probe_memfd_secret):
        works, detail = probe()
        assert isinstance(works, bool) and detail


# --------------------------------------------------------------------------- network


def test_network_only_loopback_passes(make_root: Maker) -> None:
    assert preflight.check_network_interfaces(make_root()).status == "PASS"


def test_network_interface_up_fails(make_root: Maker) -> None:
    root = make_root(
        {
            "sys/class/net/eth0/flags": "0x1003\n",
            "sys/class/net/eth0/operstate": "up\n",
            "sys/class/net/ifb0/flags": "0x82\n",
        }
    )
    r = preflight.check_network_interfaces(root)
    assert r.status == "FAIL"
    assert "eth0 (up)" in r.reason and "ifb0" in r.reason
    assert preflight.check_network_interfaces(root, mode="demo").status == "WARN"


def test_network_interface_admin_up_without_carrier_fails(make_root: Maker) -> None:
    root = make_root(
        {"sys/class/net/wlan0/flags": "0x1003\n", "sys/class/net/wlan0/operstate": "down\n"}
    )
    assert preflight.check_network_interfaces(root).status == "FAIL"


def test_network_operstate_used_when_flags_unreadable(make_root: Maker) -> None:
    root = make_root({"sys/class/net/eth0/operstate": "up\n"})
    assert preflight.check_network_interfaces(root).status == "FAIL"
    root = make_root({"sys/class/net/eth0/operstate": "down\n"})
    assert preflight.check_network_interfaces(root).status == "WARN"


def test_network_interface_present_but_down_warns(make_root: Maker) -> None:
    root = make_root(
        {"sys/class/net/eth0/flags": "0x1002\n", "sys/class/net/eth0/operstate": "down\n"}
    )
    r = preflight.check_network_interfaces(root)
    assert r.status == "WARN"
    assert "eth0" in r.reason


def test_network_bluetooth_adapter_warns(make_root: Maker) -> None:
    root = make_root(
        {
            "sys/class/bluetooth/hci0/uevent": "DEVTYPE=host\n",
            "sys/class/bluetooth/hci0:11/uevent": "DEVTYPE=link\n",
        }
    )
    r = preflight.check_network_interfaces(root)
    assert r.status == "WARN"
    assert r.reason == "no interface is up, but present: hci0 (bluetooth)"


def test_network_ignores_non_interface_files_and_loopback_flag(make_root: Maker) -> None:
    root = make_root(
        {
            "sys/class/net/bonding_masters": "\n",
            "sys/class/net/lo2/flags": "0x9\n",  # a second loopback, by flag not by name
        }
    )
    assert preflight.check_network_interfaces(root).status == "PASS"


def test_network_without_sysfs_warns(tmp_path: Path) -> None:
    r = preflight.check_network_interfaces(str(tmp_path))
    assert r.status == "WARN"
    assert "/sys/class/net" in r.reason


# --------------------------------------------------------------------------- routes

V4_DEFAULT = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
V4_SUBNET = "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
V6_LOCAL = (
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
)
V6_UNREACHABLE = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)
V6_DEFAULT = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
)


def test_route_none_passes(make_root: Maker) -> None:
    root = make_root({"proc/net/route": ROUTE_HEADER + V4_SUBNET})
    assert preflight.check_default_route(root).status == "PASS"


def test_route_ipv4_default_fails(make_root: Maker) -> None:
    r = preflight.check_default_route(make_root({"proc/net/route": ROUTE_HEADER + V4_DEFAULT}))
    assert r.status == "FAIL"
    assert "IPv4 via 192.0.2.1 dev eth0" in r.reason


def test_route_ipv4_default_not_up_is_ignored(make_root: Maker) -> None:
    down = V4_DEFAULT.replace("\t0003\t", "\t0002\t")
    assert (
        preflight.check_default_route(make_root({"proc/net/route": ROUTE_HEADER + down})).status
        == "PASS"
    )


def test_route_reject_default_is_not_a_way_out(make_root: Maker) -> None:
    # `ip route add unreachable default`: flagged RTF_UP | RTF_REJECT, routes nothing.
    v4 = ROUTE_HEADER + V4_DEFAULT.replace("\t0003\t", "\t0201\t")
    v6 = V6_UNREACHABLE.replace("00200200", "00200201")
    root = make_root({"proc/net/route": v4, "proc/net/ipv6_route": v6})
    assert preflight.check_default_route(root).status == "PASS"


def test_route_ipv6_default_fails_unreachable_does_not(make_root: Maker) -> None:
    ok = make_root({"proc/net/ipv6_route": V6_LOCAL + V6_UNREACHABLE})
    assert preflight.check_default_route(ok).status == "PASS"
    bad = make_root({"proc/net/ipv6_route": V6_LOCAL + V6_DEFAULT + V6_UNREACHABLE})
    r = preflight.check_default_route(bad)
    assert r.status == "FAIL"
    assert "IPv6 via fd00::1 dev eth0" in r.reason
    assert preflight.check_default_route(bad, mode="demo").status == "WARN"


def test_route_tables_unreadable_warns(make_root: Maker) -> None:
    assert preflight.check_default_route(make_root({"proc/net/route": None})).status == "WARN"


# --------------------------------------------------------------------------- swap


def test_swap_none_passes(make_root: Maker) -> None:
    assert preflight.check_swap(make_root()).status == "PASS"


def test_swap_partition_fails(make_root: Maker) -> None:
    root = make_root({"proc/swaps": SWAPS_HEADER + "/dev/sda2 partition 8388604 0 -2\n"})
    r = preflight.check_swap(root)
    assert r.status == "FAIL"
    assert "/dev/sda2" in r.reason
    assert preflight.check_swap(root, mode="demo").status == "WARN"


def test_swap_zram_only_warns(make_root: Maker) -> None:
    root = make_root({"proc/swaps": SWAPS_HEADER + "/dev/zram0 partition 4194300 0 100\n"})
    assert preflight.check_swap(root).status == "WARN"


def test_swap_zram_and_file_fails(make_root: Maker) -> None:
    root = make_root(
        {
            "proc/swaps": SWAPS_HEADER
            + "/dev/zram0 partition 4194300 0 100\n/swapfile file 1048572 0 -2\n"
        }
    )
    assert preflight.check_swap(root).status == "FAIL"


def test_swap_kernel_without_swap_support_passes(make_root: Maker) -> None:
    assert preflight.check_swap(make_root({"proc/swaps": None})).status == "PASS"


# --------------------------------------------------------------------------- core dumps


def test_core_dumps_off_passes(make_root: Maker) -> None:
    r = preflight.check_core_dumps(make_root(), core_limit=(0, -1))
    assert r.status == "PASS"


def test_core_dumps_rlimit_with_file_pattern_fails(make_root: Maker) -> None:
    r = preflight.check_core_dumps(make_root(), core_limit=(-1, -1))
    assert r.status == "FAIL"
    assert "RLIMIT_CORE is unlimited" in r.reason
    assert (
        preflight.check_core_dumps(make_root(), mode="demo", core_limit=(-1, -1)).status == "WARN"
    )


def test_core_dumps_suid_dumpable_fails_even_with_rlimit_zero(make_root: Maker) -> None:
    root = make_root({"proc/sys/fs/suid_dumpable": "2\n"})
    r = preflight.check_core_dumps(root, core_limit=(0, 0))
    assert r.status == "FAIL"
    assert "suid_dumpable=2" in r.reason


def test_core_dumps_pipe_helper(make_root: Maker) -> None:
    root = make_root(
        {"proc/sys/kernel/core_pattern": "|/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n"}
    )
    # The kernel ignores RLIMIT_CORE for pipes: the helper still gets the memory image.
    warn = preflight.check_core_dumps(root, core_limit=(0, 0))
    assert warn.status == "WARN"
    assert "systemd-coredump" in warn.reason
    assert preflight.check_core_dumps(root, core_limit=(-1, -1)).status == "FAIL"


def test_core_dumps_pipe_to_false_passes(make_root: Maker) -> None:
    root = make_root({"proc/sys/kernel/core_pattern": "|/bin/false\n"})
    assert preflight.check_core_dumps(root, core_limit=(-1, -1)).status == "PASS"


def test_core_dumps_unreadable_settings_warn(make_root: Maker) -> None:
    root = make_root({"proc/sys/fs/suid_dumpable": None})
    assert preflight.check_core_dumps(root, core_limit=(0, 0)).status == "WARN"


# --------------------------------------------------------------------------- memory locking

NO_CAPS = "Name:\tpython3\nCapEff:\t0000000000000000\n"
ONLY_IPC_LOCK = "Name:\tpython3\nCapEff:\t0000000000004000\n"


def test_memlock_memfd_secret_passes(make_root: Maker) -> None:
    r = preflight.check_memory_locking(
        make_root({"proc/self/status": NO_CAPS}),
        memlock_limit=(8 * MiB, 8 * MiB),
        memfd_secret_probe=ok_probe,
    )
    assert r.status == "PASS"
    assert "8 MiB" in r.reason


def test_memlock_too_small_without_capability_fails(make_root: Maker) -> None:
    root = make_root({"proc/self/status": NO_CAPS})
    r = preflight.check_memory_locking(
        root, memlock_limit=(64 * 1024, 64 * 1024), memfd_secret_probe=ok_probe
    )
    assert r.status == "FAIL"
    assert "64 KiB" in r.reason and "no CAP_IPC_LOCK" in r.reason
    demo = preflight.check_memory_locking(
        root, mode="demo", memlock_limit=(64 * 1024, 64 * 1024), memfd_secret_probe=ok_probe
    )
    assert demo.status == "WARN"


def test_memlock_small_limit_with_cap_ipc_lock_passes(make_root: Maker) -> None:
    root = make_root({"proc/self/status": ONLY_IPC_LOCK})
    r = preflight.check_memory_locking(root, memlock_limit=(0, 0), memfd_secret_probe=ok_probe)
    assert r.status == "PASS"
    assert "CAP_IPC_LOCK" in r.reason


def test_memlock_unlimited_passes(make_root: Maker) -> None:
    root = make_root({"proc/self/status": NO_CAPS})
    r = preflight.check_memory_locking(root, memlock_limit=(-1, -1), memfd_secret_probe=ok_probe)
    assert r.status == "PASS"


def test_memlock_without_memfd_secret_warns(make_root: Maker) -> None:
    r = preflight.check_memory_locking(
        make_root(), memlock_limit=(8 * MiB, 8 * MiB), memfd_secret_probe=failing_probe
    )
    assert r.status == "WARN"
    assert "ENOSYS" in r.reason
    assert "secretmem.enable=1" in r.action


# --------------------------------------------------------------------------- kernel cmdline


def test_cmdline_hardened_passes(make_root: Maker) -> None:
    assert preflight.check_kernel_cmdline(make_root()).status == "PASS"


def test_cmdline_missing_flags_warn_in_both_modes(make_root: Maker) -> None:
    root = make_root({"proc/cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n"})
    r = preflight.check_kernel_cmdline(root)
    assert r.status == "WARN"
    for flag in (
        "init_on_free=1",
        "lockdown=confidentiality",
        "init_on_alloc=1",
        "slab_nomerge",
        "page_alloc.shuffle=1",
        "randomize_kstack_offset=on",
        "vsyscall=none",
    ):
        assert flag in r.reason
    assert preflight.check_kernel_cmdline(root, mode="demo").status == "WARN"


def test_cmdline_single_missing_flag_is_named(make_root: Maker) -> None:
    root = make_root({"proc/cmdline": ISO_CMDLINE.replace("init_on_free=1", "init_on_free=0")})
    r = preflight.check_kernel_cmdline(root)
    assert r.status == "WARN"
    assert r.reason == "kernel hardening missing: init_on_free=1"


def test_cmdline_init_arguments_do_not_count(make_root: Maker) -> None:
    text = ISO_CMDLINE.replace(" vsyscall=none", "").strip() + " -- vsyscall=none\n"
    r = preflight.check_kernel_cmdline(make_root({"proc/cmdline": text}))
    assert r.status == "WARN"
    assert "vsyscall=none" in r.reason


def test_cmdline_lockdown_from_securityfs(make_root: Maker) -> None:
    text = ISO_CMDLINE.replace(" lockdown=confidentiality", "")
    root = make_root(
        {
            "proc/cmdline": text,
            "sys/kernel/security/lockdown": "none integrity [confidentiality]\n",
        }
    )
    assert preflight.check_kernel_cmdline(root).status == "PASS"
    weaker = make_root(
        {"proc/cmdline": text, "sys/kernel/security/lockdown": "none [integrity] confidentiality\n"}
    )
    r = preflight.check_kernel_cmdline(weaker)
    assert r.status == "WARN"
    assert "(is integrity)" in r.reason


# --------------------------------------------------------------------------- entropy


def test_entropy_ready_passes(make_root: Maker) -> None:
    r = preflight.check_entropy(make_root(), getrandom_probe=ok_probe)
    assert r.status == "PASS"
    assert "entropy_avail 256" in r.reason


def test_entropy_not_ready_fails(make_root: Maker) -> None:
    def not_ready() -> tuple[bool, str]:
        return False, "the kernel's random pool is not initialised yet (EAGAIN)"

    r = preflight.check_entropy(make_root(), getrandom_probe=not_ready)
    assert r.status == "FAIL"
    assert "EAGAIN" in r.reason
    assert (
        preflight.check_entropy(make_root(), mode="demo", getrandom_probe=not_ready).status
        == "WARN"
    )


# --------------------------------------------------------------------------- live media


def test_live_boot_overlay_passes(make_root: Maker) -> None:
    r = preflight.check_live_media(make_root())
    assert r.status == "PASS"
    assert "overlay" in r.reason


def test_live_root_copied_to_ram_says_the_boot_medium_can_go(make_root: Maker) -> None:
    # live-boot toram: the squashfs copied into a tmpfs moved to /run/live/medium
    toram = (
        "/dev/shm /run/live/medium tmpfs ro,relatime,size=127968k 0 0\n"
        "/dev/loop0 /run/live/rootfs/filesystem.squashfs squashfs ro 0 0\n"
        "overlay / overlay rw,lowerdir=/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw 0 0\n"
    )
    r = preflight.check_live_media(make_root({"proc/mounts": toram, "proc/cmdline": "boot=live toram\n"}))
    assert r.status == "PASS" and "copied to RAM: the boot medium can be removed now" in r.reason
    # from the stick: no such sentence (the stick must stay in)
    stick = toram.replace("/dev/shm /run/live/medium tmpfs", "/dev/sdb1 /run/live/medium iso9660")
    r = preflight.check_live_media(make_root({"proc/mounts": stick, "proc/cmdline": "boot=live\n"}))
    assert r.status == "PASS" and "removed" not in r.reason


def test_squashfs_root_passes(make_root: Maker) -> None:
    root = make_root({"proc/mounts": "/dev/loop0 / squashfs ro 0 0\n", "proc/cmdline": "quiet\n"})
    assert preflight.check_live_media(root).status == "PASS"


def test_writable_disk_root_warns_even_in_ceremony_mode(make_root: Maker) -> None:
    root = make_root(
        {"proc/mounts": "/dev/vda / ext4 rw,relatime 0 0\n", "proc/cmdline": "quiet\n"}
    )
    r = preflight.check_live_media(root)
    assert r.status == "WARN"
    assert "ext4 on /dev/vda" in r.reason


def test_read_only_disk_root_passes(make_root: Maker) -> None:
    root = make_root(
        {"proc/mounts": "/dev/vda / ext4 ro,relatime 0 0\n", "proc/cmdline": "quiet\n"}
    )
    assert preflight.check_live_media(root).status == "PASS"


def test_plain_overlay_root_is_not_live(make_root: Maker) -> None:
    # A container's overlay root is writable and not live-boot.
    mounts = "overlay / overlay rw,lowerdir=/var/lib/docker/l1,upperdir=/var/lib/docker/u 0 0\n"
    root = make_root({"proc/mounts": mounts, "proc/cmdline": "quiet\n"})
    assert preflight.check_live_media(root).status == "WARN"


def test_last_root_mount_wins(make_root: Maker) -> None:
    mounts = "rootfs / rootfs rw 0 0\n/dev/loop0 / squashfs ro 0 0\n"
    assert preflight.check_live_media(make_root({"proc/mounts": mounts})).status == "PASS"
    mounts = "/dev/loop0 / squashfs ro 0 0\n/dev/sda1 / ext4 rw 0 0\n"
    root = make_root({"proc/mounts": mounts, "proc/cmdline": "quiet\n"})
    assert preflight.check_live_media(root).status == "WARN"


def test_live_persistence_warns(make_root: Maker) -> None:
    root = make_root({"proc/cmdline": "boot=live persistence quiet\n"})
    r = preflight.check_live_media(root)
    assert r.status == "WARN"
    assert "persistence" in r.reason


# --------------------------------------------------------------------------- environment


def test_environment_clean_passes() -> None:
    env = {"PATH": "/usr/bin", "TERM": "linux", "PYTHONFAULTHANDLER": "1", "TEXTUAL": "headless"}
    assert preflight.check_environment(env=env).status == "PASS"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TEXTUAL_LOG", "/tmp/textual.log"),
        ("TEXTUAL_SCREENSHOT", "5"),
        ("TEXTUAL_DEBUG", "1"),
        ("TEXTUAL", "devtools"),
        ("TEXTUAL", "headless, Debug"),
        ("PYTHONTRACEMALLOC", "25"),
        ("PYTHONDEVMODE", "1"),
        ("PYTHONINSPECT", "1"),
        ("LD_PRELOAD", "/tmp/evil.so"),
    ],
)
def test_environment_leaking_variable_fails(var: str, value: str) -> None:
    r = preflight.check_environment(env={var: value})
    assert r.status == "FAIL"
    assert var in r.reason
    if var != "TEXTUAL":  # names only, never values (TEXTUAL's feature names are shown)
        assert value not in r.reason
    assert f"unset {var}" in r.action
    assert preflight.check_environment(env={var: value}, mode="demo").status == "WARN"


@pytest.mark.parametrize(
    "var", ["DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "PYTHONPATH", "KCM_SECMEM_BACKEND"]
)
def test_environment_risky_variable_warns(var: str) -> None:
    value = "mlock" if var == "KCM_SECMEM_BACKEND" else "x"
    r = preflight.check_environment(env={var: value})
    assert r.status == "WARN"
    assert var in r.reason


def test_environment_empty_values_do_not_count() -> None:
    env = {"TEXTUAL_LOG": "", "DISPLAY": "", "KCM_SECMEM_BACKEND": "memfd_secret"}
    assert preflight.check_environment(env=env).status == "PASS"


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONINSPECT", "1")
    assert preflight.check_environment().status == "FAIL"


# --------------------------------------------------------------------------- terminal


@pytest.mark.parametrize(
    ("size", "status"),
    [((80, 24), "PASS"), ((200, 60), "PASS"), ((79, 24), "FAIL"), ((80, 23), "FAIL")],
)
def test_terminal_size(size: tuple[int, int], status: str) -> None:
    assert preflight.check_terminal_size(term_size=size).status == status


def test_terminal_too_small_is_warn_in_demo() -> None:
    r = preflight.check_terminal_size(mode="demo", term_size=(60, 20))
    assert r.status == "WARN"
    assert "60x20" in r.reason


def test_terminal_size_unknown_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tty(fd: int) -> object:
        raise OSError(25, "Inappropriate ioctl for device")

    monkeypatch.setattr(os, "get_terminal_size", no_tty)
    assert preflight.check_terminal_size().status == "WARN"


# --------------------------------------------------------------------------- CLI


def test_main_json_shape_and_fail_exit(
    make_root: Maker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root({"sys/class/net/eth0/flags": "0x1003\n"})
    assert preflight.main(["--json", "--root", root]) == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    assert [item["name"] for item in data] == list(CHECK_NAMES)
    for item in data:
        assert set(item) == {"name", "status", "reason", "action"}
        assert item["status"] in ("PASS", "WARN", "FAIL")
    assert data[0]["status"] == "FAIL"


def test_main_demo_exits_zero(make_root: Maker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root({"sys/class/net/eth0/flags": "0x1003\n"})
    assert preflight.main(["--demo", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "mode: demo" in out
    assert "0 FAIL" in out
    assert "not a ceremony verdict" in out
    for name in CHECK_NAMES:
        assert name in out


def test_main_table_shows_action_for_failures(
    make_root: Maker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root({"sys/class/net/eth0/flags": "0x1003\n"})
    assert preflight.main(["--root", root]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "network-interfaces" in ln)
    assert line.startswith("FAIL")
    assert "-> unplug the cable" in out
    assert "NOT READY" in out
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_main_bad_argument_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main(["--bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def test_exit_status() -> None:
    warn = CheckResult("swap", "WARN", "r", "a")
    fail = CheckResult("entropy", "FAIL", "r", "a")
    assert preflight.exit_status([warn]) == 0
    assert preflight.exit_status([warn, fail]) == 1
    assert preflight.exit_status([]) == 0


def test_format_json_round_trips() -> None:
    results = [CheckResult("swap", "PASS", "no swap is active", "nothing to do")]
    assert json.loads(preflight.format_json(results)) == [
        {"name": "swap", "status": "PASS", "reason": "no swap is active", "action": "nothing to do"}
    ]


def test_terminal_size_zero_by_zero_is_unknown_not_too_small() -> None:
    """A serial console reports 0x0: that is 'no size', not 'too small' (the ISO self-test)."""
    r = preflight.check_terminal_size(term_size=(0, 0))
    assert r.status == "WARN" and "unknown" in r.reason
    assert preflight.check_terminal_size(term_size=(79, 24)).status == "FAIL"


# --------------------------------------------------------------------------- privileges

DISK_ROOT = {"proc/mounts": "/dev/vda / ext4 rw,relatime 0 0\n", "proc/cmdline": "quiet\n"}
ROOT_STATUS = "Name:\tkcm-ceremony\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n"
KEYHOLDER_CMD = "/opt/kcm/venv/bin/python3\0-I\0-m\0core.keyholder\0"
HELPER_CMD = "/opt/kcm/venv/bin/python3\0-I\0-m\0core.carriers.decodehelper\0"
UI_CMD = "/opt/kcm/venv/bin/python3\0/opt/kcm/venv/bin/kcm-ceremony\0--scripts\0/opt\0"


def _proc(pid: int, cmd: str, uid: str, caps: str = "0000000000000000") -> dict[str, str]:
    return {
        f"proc/{pid}/cmdline": cmd,
        f"proc/{pid}/status": f"Name:\tx\nUid:\t{uid}\nCapEff:\t{caps}\n",
    }


def test_privileges_unprivileged_split_passes(make_root: Maker) -> None:
    root = make_root(
        {
            **_proc(1, "/sbin/init\0", "0\t0\t0\t0", "000001ffffffffff"),  # not ours
            **_proc(700, KEYHOLDER_CMD, "1001\t1001\t1001\t1001", "0000000000004000"),
            **_proc(701, HELPER_CMD, "1001\t1001\t1001\t1001"),
        }
    )
    r = preflight.check_privileges(root)
    assert r.status == "PASS", r
    assert "1000, 1001" in r.reason
    assert preflight.on_ceremony_iso(root)


def test_privileges_root_on_the_iso_fails(make_root: Maker) -> None:
    root = make_root({"proc/self/status": ROOT_STATUS})
    r = preflight.check_privileges(root)
    assert r.status == "FAIL"
    assert "on the ceremony ISO" in r.reason and "this process as root" in r.reason
    assert "never start kcm-ceremony as root" in r.action
    assert preflight.check_privileges(root, mode="demo").status == "WARN"
    results = preflight.run_all(root, **CLEAN_PROCESS)  # type: ignore[arg-type]
    assert [x.name for x in results if x.status == "FAIL"] == ["privileges"]
    assert preflight.exit_status(results) == 1


def test_privileges_root_outside_the_iso_warns(make_root: Maker) -> None:
    root = make_root({**DISK_ROOT, "proc/self/status": ROOT_STATUS})
    assert not preflight.on_ceremony_iso(root)
    r = preflight.check_privileges(root)
    assert r.status == "WARN"
    assert r.reason.startswith("running as root: this process as root")
    assert "demo" in r.action


@pytest.mark.parametrize(
    ("procs", "named"),
    [
        (_proc(812, KEYHOLDER_CMD, "0\t0\t0\t0"), "keyholder (pid 812) as root"),
        (_proc(813, HELPER_CMD, "0\t0\t0\t0"), "image decoder (pid 813) as root"),
        (_proc(814, UI_CMD, "0\t0\t0\t0"), "kcm-ceremony (pid 814) as root"),
        # a saved uid of 0 can become root again
        (_proc(815, KEYHOLDER_CMD, "1001\t1001\t0\t1001"), "keyholder (pid 815) as root"),
        # not root, but able to read any process's memory
        (
            _proc(816, UI_CMD, "1000\t1000\t1000\t1000", "0000000000080000"),
            "kcm-ceremony (pid 816) with CAP_SYS_PTRACE",
        ),
    ],
)
def test_privileges_names_every_privileged_ceremony_process(
    make_root: Maker, procs: dict[str, str], named: str
) -> None:
    r = preflight.check_privileges(make_root(procs))
    assert r.status == "FAIL" and named in r.reason, r
    off_iso = preflight.check_privileges(make_root({**DISK_ROOT, **procs}))
    assert off_iso.status == "WARN" and named in off_iso.reason


def test_privileges_ignores_other_root_processes_that_mention_the_program(
    make_root: Maker,
) -> None:
    root = make_root(
        {
            **_proc(900, "grep\0kcm-ceremony\0", "0\t0\t0\t0"),
            **_proc(901, "less\0/opt/kcm/venv/bin/kcm-ceremony\0", "0\t0\t0\t0"),
            **_proc(902, "vi\0-m\0core.keyholder\0", "0\t0\t0\t0"),
            **_proc(903, "/usr/bin/python3\0-c\0print('core.keyholder')\0", "0\t0\t0\t0"),
        }
    )
    assert preflight.check_privileges(root).status == "PASS"
    # and the real command lines are recognised
    assert preflight._ceremony_role(["/usr/bin/python3", "-I", "-m", "core.keyholder"]) == (
        "keyholder"
    )
    assert preflight._ceremony_role(["/usr/bin/kcm-ceremony", "--demo"]) == "kcm-ceremony"


def test_privileges_unreadable_self_warns(make_root: Maker) -> None:
    r = preflight.check_privileges(make_root({"proc/self/status": None}))
    assert r.status == "WARN" and "cannot read" in r.reason


def test_privileges_on_this_machine_sees_a_real_keyholder() -> None:
    from core.keyholder.client import KeyholderClient

    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        r = preflight.check_privileges()
        if os.geteuid() == 0:
            assert r.status == ("FAIL" if preflight.on_ceremony_iso() else "WARN")
            assert "this process as root" in r.reason
            assert f"keyholder (pid {kc.pid}) as root" in r.reason
        else:
            assert f"pid {kc.pid}" not in r.reason


# --------------------------------------------------------------------------- decoder sandbox


def test_decoder_sandbox_found_passes() -> None:
    assert preflight.check_decoder_sandbox(seccomp_probe=ok_probe).status == "PASS"


def test_decoder_sandbox_missing_warns_in_both_modes() -> None:
    def missing() -> tuple[bool, str]:
        return False, "libseccomp's Python bindings (module seccomp) are not installed"

    r = preflight.check_decoder_sandbox(seccomp_probe=missing)
    assert r.status == "WARN" and "refused in a ceremony" in r.reason
    assert "python3-seccomp" in r.action
    demo = preflight.check_decoder_sandbox(mode="demo", seccomp_probe=missing)
    assert demo == r  # demo changes severities only, and this one is WARN in both


def test_decoder_sandbox_on_this_machine() -> None:
    """make test links python3-seccomp into the venv: the real probe finds it."""
    found, detail = preflight.probe_seccomp()
    assert found, detail
    assert preflight.check_decoder_sandbox().status == "PASS"
