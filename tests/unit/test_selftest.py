"""core.selftest: the report the ISO boot test reads from the serial console."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from core import selftest

LIVE_MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/sr0 /run/live/medium iso9660 ro,noatime,nojoliet,check=s,map=n,blocksize=2048 0 0
/dev/loop0 /run/live/rootfs/filesystem.squashfs squashfs ro,noatime,errors=continue 0 0
tmpfs /run/live/overlay tmpfs rw,noatime,mode=755 0 0
overlay / overlay rw,noatime,lowerdir=/run/live/rootfs/filesystem.squashfs/,upperdir=/run/live/overlay/rw,workdir=/run/live/overlay/work 0 0
"""

HARDENED_CMDLINE = "BOOT_IMAGE=/live/vmlinuz boot=live quiet " + " ".join(selftest.HARDENING_FLAGS)


def hardened_facts() -> dict[str, object]:
    return {
        "interfaces": ["lo"],
        "swaps": [],
        "rlimit_core": [0, 0],
        "core_pattern": selftest.CORE_PATTERN_OFF,
        "suid_dumpable": "0",
        "cmdline": HARDENED_CMDLINE,
        "root": selftest.root_description(selftest.parse_mounts(LIVE_MOUNTS)),
        "ipv6": False,
        "uptime_s": 61.5,
        "python": "3.11.2",
        "executable": "/opt/kcm/venv/bin/python",
        "ui_importable": True,
    }


def test_hardened_facts_pass_every_check() -> None:
    results = selftest.checks(hardened_facts())
    assert [name for name, ok, _ in results if not ok] == []
    assert len(results) == 8


@pytest.mark.parametrize(
    ("key", "value", "check"),
    [
        ("interfaces", ["eth0", "lo"], "only-loopback"),
        ("swaps", ["/dev/zram0"], "no-swap"),
        ("rlimit_core", [0, -1], "rlimit-core-zero"),
        ("core_pattern", "core", "core-pattern-off"),
        ("cmdline", "boot=live quiet init_on_free=1", "kernel-cmdline"),
        (
            "root",
            {"fstype": "ext4", "ro": False, "lowerdirs": [], "squashfs": []},
            "root-readonly-squashfs",
        ),
        ("ipv6", True, "ipv6-off"),
        ("ui_importable", False, "ui-installed"),
    ],
)
def test_each_check_can_fail(key: str, value: object, check: str) -> None:
    facts = hardened_facts()
    facts[key] = value
    failed = [name for name, ok, _ in selftest.checks(facts) if not ok]
    assert failed == [check]


def test_report_round_trip_through_a_noisy_serial_log() -> None:
    facts = hardened_facts()
    text = selftest.format_report(facts, selftest.checks(facts), 0)
    # A serial console interleaves kernel messages and may prefix lines or use CRLF.
    noisy = "[   12.3] random: crng init done\r\n" + "".join(
        f"\x1b[0m{line}\r\n" for line in text.splitlines()
    )
    report = selftest.parse_report("old junk\n" + noisy + "[  70.1] reboot: Power down\n")
    assert report.rc == 0
    assert report.facts["interfaces"] == ["lo"]
    assert report.facts["rlimit_core"] == [0, 0]
    assert report.facts["cmdline"] == HARDENED_CMDLINE
    assert all(report.checks.values()) and len(report.checks) == 8


def test_parse_report_takes_the_last_complete_block() -> None:
    first = selftest.format_report({"interfaces": ["eth0"]}, [], 1)
    second = selftest.format_report({"interfaces": ["lo"]}, [], 0)
    report = selftest.parse_report(first + second)
    assert report.facts == {"interfaces": ["lo"]} and report.rc == 0


def test_parse_report_without_end_marker_raises() -> None:
    text = selftest.format_report({"swaps": []}, [], 0)
    truncated = "\n".join(text.splitlines()[:-1])
    with pytest.raises(selftest.SelftestError, match="no complete"):
        selftest.parse_report(truncated)


def test_parse_report_rejects_a_malformed_fact() -> None:
    text = f"{selftest.BEGIN}\n{selftest.FACT_PREFIX}swaps=[oops\n{selftest.END_PREFIX}0\n"
    with pytest.raises(selftest.SelftestError, match="not valid JSON"):
        selftest.parse_report(text)


def test_parse_report_rejects_a_malformed_end_line() -> None:
    with pytest.raises(selftest.SelftestError, match="malformed end"):
        selftest.parse_report(f"{selftest.BEGIN}\n{selftest.END_PREFIX}x\n")


def test_live_overlay_root_is_a_readonly_squashfs() -> None:
    root = selftest.root_description(selftest.parse_mounts(LIVE_MOUNTS))
    assert root["fstype"] == "overlay"
    assert root["lowerdirs"] == ["/run/live/rootfs/filesystem.squashfs/"]
    assert selftest.root_is_readonly_squashfs(root)


def test_overlay_over_a_writable_lower_layer_is_rejected() -> None:
    mounts = LIVE_MOUNTS.replace("squashfs ro,noatime", "squashfs rw,noatime")
    assert not selftest.root_is_readonly_squashfs(
        selftest.root_description(selftest.parse_mounts(mounts))
    )
    other = LIVE_MOUNTS.replace("lowerdir=/run/live/rootfs/filesystem.squashfs/", "lowerdir=/srv/x")
    assert not selftest.root_is_readonly_squashfs(
        selftest.root_description(selftest.parse_mounts(other))
    )


def test_parse_mounts_decodes_octal_escapes_and_parse_swaps_skips_header() -> None:
    (m,) = selftest.parse_mounts("/dev/sdb1 /media/my\\040stick vfat ro,nosuid 0 0\n")
    assert m.target == "/media/my stick" and m.options == ("ro", "nosuid")
    swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/zram0 partition 100 0 -2\n"
    assert selftest.parse_swaps(swaps) == ["/dev/zram0"]
    assert selftest.parse_swaps("Filename\tType\tSize\tUsed\tPriority\n") == []


def test_collect_facts_reads_proc_and_sys(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "fs").mkdir(parents=True)
    (proc / "swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n")
    (proc / "sys" / "kernel" / "core_pattern").write_text("|/bin/false\n")
    (proc / "sys" / "fs" / "suid_dumpable").write_text("0\n")
    (proc / "cmdline").write_text(HARDENED_CMDLINE + "\n")
    (proc / "mounts").write_text(LIVE_MOUNTS)
    (proc / "uptime").write_text("61.50 100.00\n")
    net = tmp_path / "sys" / "class" / "net"
    (net / "lo").mkdir(parents=True)
    facts = selftest.collect_facts(proc=proc, sys_root=tmp_path / "sys")
    assert facts["interfaces"] == ["lo"]
    assert facts["swaps"] == []
    assert facts["core_pattern"] == "|/bin/false"
    assert facts["cmdline"] == HARDENED_CMDLINE
    assert facts["ipv6"] is False
    assert facts["uptime_s"] == 61.5
    assert selftest.root_is_readonly_squashfs(facts["root"])
    json.dumps(facts)  # every fact must be JSON for the report


def test_main_prints_markers_and_exits_zero_without_expectations() -> None:
    buf = io.StringIO()
    rc = selftest.main([], out=buf.write)
    lines = buf.getvalue().splitlines()
    assert rc == 0
    assert lines[0] == selftest.BEGIN
    assert lines[-1] == f"{selftest.END_PREFIX}0"
    report = selftest.parse_report(buf.getvalue())
    assert "interfaces" in report.facts and "ui_importable" in report.facts


def test_main_with_expectations_fails_on_a_development_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        selftest, "collect_facts", lambda: {**hardened_facts(), "interfaces": ["eth0", "lo"]}
    )
    buf = io.StringIO()
    assert selftest.main(["--expect-hardened"], out=buf.write) == 1
    report = selftest.parse_report(buf.getvalue())
    assert report.rc == 1 and report.checks["only-loopback"] is False


def test_main_passes_on_hardened_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "collect_facts", hardened_facts)
    buf = io.StringIO()
    assert selftest.main(["--expect-hardened"], out=buf.write) == 0


def test_main_rejects_unknown_arguments() -> None:
    assert selftest.main(["--bogus"], out=io.StringIO().write) == 2


def test_collect_failure_still_prints_an_end_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> dict[str, object]:
        raise RuntimeError("no /proc")

    monkeypatch.setattr(selftest, "collect_facts", boom)
    buf = io.StringIO()
    assert selftest.main([], out=buf.write) == 1
    assert selftest.parse_report(buf.getvalue()).rc == 1
