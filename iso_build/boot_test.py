"""Boot the OpenKCM Ceremony ISO headless in qemu and check it from the serial log.

    python3 iso_build/boot_test.py [--only bios|uefi] ISO

Two boots of the default entry, exactly as a workstation boots it (the boot menu's own
3 second timeout, the program on tty1), under TCG (no KVM here):

1. BIOS (SeaBIOS), the ISO as a CD-ROM;
2. UEFI (OVMF), the ISO as a USB stick.

Each guest has a virtio NIC (user networking, ``restrict=on``: the image must have no driver
for it), two USB disks with a FAT file system (``KCMTESTA``: a partition table, the USB
``removable`` flag on; ``KCMTESTB``: the file system on the whole disk, ``removable`` off, as
many USB enclosures report), and a fixed SATA disk (``KCMFIXED``). A qemu ``fw_cfg`` item
(``opt/org.openkcm/check``, a channel only a hypervisor has) asks the image's boot check to
run (kcm-check.service; core/bootcheck.py) beside the program. The guest reports on the
first serial port; the test acts on its markers:

- ``KCM-FIRST-SCREEN``: the program's first frame is on tty1: the time from qemu start is
  the boot time; a picture of the screen is saved (``first-screen-<boot>.png``);
- ``KCM-CHECK-HOTPLUG-READY``: a third USB disk (``KCMTESTC``) is attached (monitor
  ``device_add``): it must be read-only from its "add" event on;
- ``KCM-CHECK-REMOVE-BOOT-MEDIUM``: the boot medium is pulled out (CD ejected, USB stick
  unplugged): the system, running from RAM, must go on reading its root.

Then the self-test report (core.selftest.parse_report) must have every check ok: hardening
facts, no forbidden item, the console font read back and every frame glyph in it, removable
media read-only until chosen and only the chosen one writable, an export written and the
medium released, a fixed disk refused, the boot medium released and removed; and the guest
must power itself off. Prints the ISO size (fails above the 220 MiB budget) and the boot
times (the 90 s goal is printed as met or not: timing is reported, not asserted).

Needs qemu-system-x86_64, OVMF and mkfs.fat (``make iso-test`` installs them as root).
Standard library only (plus core/selftest.py from this tree, standard library too).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from core import selftest  # noqa: E402  (the tree's own module, standard library only)

OVMF_CODE = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"]
OVMF_VARS = ["/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd"]
SIZE_BUDGET_MIB = 220
BOOT_GOAL_S = 90
EXPORT_SERIAL = "KCMTESTA"
EXPECTED_CHECKS = (
    "only-loopback", "no-swap", "rlimit-core-zero", "core-pattern-off", "kernel-cmdline",
    "root-readonly-squashfs", "ipv6-off", "ui-installed", "no-forbidden-items",
    "console-font", "frame-glyphs", "media-readonly-at-add", "media-hotplug-readonly",
    "media-export-writable", "media-released", "media-fixed-disk-refused",
    "boot-medium-released", "boot-medium-removed",
    # privilege separation (issue 20): checked with ps-like /proc reads in the guest
    "ui-user", "no-root-ceremony-process", "ptrace-yama", "keyholder-user",
    "ui-cannot-read-keyholder", "media-via-service", "media-ceremony-writable",
)  # fmt: skip


class Guest:
    """A qemu process whose first serial port is our stdout pipe, with an HMP monitor."""

    def __init__(self, args: list[str], log_path: Path, monitor: Path) -> None:
        self.t0 = time.monotonic()
        self.monitor_path = monitor
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.buf = bytearray()
        self.events: queue.Queue[None] = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            with self.lock:
                self.buf.extend(chunk)
            self.log.write(chunk)
            self.log.flush()
            self.events.put(None)
        self.events.put(None)

    def text(self) -> str:
        with self.lock:
            return self.buf.decode("utf-8", "replace")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def wait_for(self, needle: str, timeout: float, start: int = 0) -> float | None:
        """Seconds since qemu started when needle appeared, None on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            if needle in self.text()[start:]:
                return self.elapsed()
            if self.proc.poll() is not None:
                time.sleep(0.5)
                return self.elapsed() if needle in self.text()[start:] else None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.events.get(timeout=min(left, 1.0))
            except queue.Empty:
                pass

    def line_after(self, needle: str) -> str:
        text = self.text()
        i = text.rfind(needle)
        return text[i:].splitlines()[0] if i >= 0 else ""

    def hmp(self, command: str, wait: float = 2.0) -> str:
        """One monitor command; returns what the monitor printed."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.monitor_path))
            time.sleep(0.3)
            s.recv(65536)  # banner and prompt
            s.sendall(command.encode() + b"\n")
            time.sleep(wait)
            try:
                return s.recv(65536).decode("utf-8", "replace")
            except TimeoutError:
                return ""

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.close()


def _mbr_one_partition(total_sectors: int, start: int = 2048, ptype: int = 0x0C) -> bytes:
    entry = struct.pack(
        "<B3sB3sII", 0, b"\xfe\xff\xff", ptype, b"\xfe\xff\xff", start, total_sectors - start
    )
    return bytes(446) + entry + bytes(48) + b"\x55\xaa"


def make_disk(path: Path, label: str, *, partitioned: bool, size_mib: int = 64) -> None:
    """A raw disk image with a FAT file system (in one MBR partition, or on the whole disk)."""
    mkfs = shutil.which("mkfs.fat") or shutil.which("mkfs.vfat")
    if not mkfs:
        raise SystemExit("mkfs.fat not found (apt-get install dosfstools)")
    size = size_mib << 20
    with path.open("wb") as fh:
        fh.truncate(size)
    if partitioned:
        with path.open("r+b") as fh:
            fh.write(_mbr_one_partition(size // 512))
        kib = (size - (2048 << 9)) // 1024
        cmd = [mkfs, "-F", "32", "-n", label, "--offset", "2048", str(path), str(kib)]
    else:
        cmd = [mkfs, "-F", "32", "-n", label, str(path)]
    subprocess.run(cmd, check=True, capture_output=True)


def qemu_base(memory: str, monitor: Path) -> list[str]:
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise SystemExit("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    return [
        qemu,
        "-accel", "tcg",
        "-machine", "q35",
        "-cpu", "max",
        "-smp", "2",
        "-m", memory,
        "-display", "none",
        "-vga", "std",
        "-serial", "stdio",
        "-monitor", f"unix:{monitor},server=on,wait=off",
        "-no-reboot",
        # A NIC is attached on purpose: the image must not have a driver for it.
        "-netdev", "user,id=n0,restrict=on",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
        # The boot check: a hypervisor-only channel, with the serial of the disk to export to.
        "-fw_cfg", f"name=opt/org.openkcm/check,string={EXPORT_SERIAL}",
        "-device", "qemu-xhci,id=xhci",
    ]  # fmt: skip


def test_disks(logdir: Path) -> list[str]:
    """Two USB disks and a fixed SATA disk (fresh images every run)."""
    a, b, c, fixed = (logdir / f"disk-{n}.img" for n in ("a", "b", "c", "fixed"))
    make_disk(a, "KCMTESTA", partitioned=True)
    make_disk(b, "KCMTESTB", partitioned=False)
    make_disk(c, "KCMTESTC", partitioned=True)
    make_disk(fixed, "KCMFIXED", partitioned=True)
    return [
        "-drive", f"if=none,id=diska,format=raw,file={a}",
        "-device", "usb-storage,bus=xhci.0,drive=diska,removable=on,serial=KCMTESTA",
        "-drive", f"if=none,id=diskb,format=raw,file={b}",
        "-device", "usb-storage,bus=xhci.0,drive=diskb,removable=off,serial=KCMTESTB",
        "-drive", f"if=none,id=fixed,format=raw,file={fixed}",
        "-device", "ide-hd,drive=fixed,bus=ide.2,serial=KCMFIXED",
    ]  # fmt: skip


def ppm_to_png(ppm: Path, png: Path) -> bool:
    """Convert qemu's screendump (binary PPM) to PNG, standard library only."""
    try:
        data = ppm.read_bytes()
        parts = data.split(maxsplit=4)
        if parts[0] != b"P6":
            return False
        width, height = int(parts[1]), int(parts[2])
        pixels = parts[4][: width * height * 3]
        rows = b"".join(
            b"\x00" + pixels[y * width * 3 : (y + 1) * width * 3] for y in range(height)
        )

        def chunk(tag: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + tag
                + body
                + struct.pack(">I", zlib.crc32(tag + body))
            )

        png.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6))
            + chunk(b"IEND", b"")
        )
        return True
    except (OSError, ValueError, IndexError):
        return False


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []
        self.figures: dict[str, float] = {}

    def check(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)

    def note(self, text: str) -> None:
        print(f"  [note] {text}")


def boot(kind: str, iso: Path, logdir: Path, timeout: float, memory: str) -> Result:
    r = Result(kind)
    monitor = logdir / f"monitor-{kind}.sock"
    monitor.unlink(missing_ok=True)
    args = [*qemu_base(memory, monitor), *test_disks(logdir)]
    if kind == "bios":
        print(f"\n== BIOS boot from a CD-ROM, default entry; serial log {logdir / 'bios.log'}")
        args += [
            "-drive", f"if=none,id=cd0,media=cdrom,readonly=on,file={iso}",
            "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=0",
        ]  # fmt: skip
        remove_boot = "eject -f cd0"
    else:
        code = next((p for p in OVMF_CODE if os.path.exists(p)), None)
        vars_src = next((p for p in OVMF_VARS if os.path.exists(p)), None)
        if not code or not vars_src:
            r.check(False, "OVMF firmware present (apt-get install ovmf)")
            return r
        print(f"\n== UEFI boot from a USB stick, default entry; serial log {logdir / 'uefi.log'}")
        vars_copy = logdir / "OVMF_VARS.fd"
        shutil.copyfile(vars_src, vars_copy)
        args += [
            "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,file={vars_copy}",
            "-drive", f"if=none,id=stick,format=raw,file={iso},snapshot=on",
            "-device", "usb-storage,bus=xhci.0,drive=stick,id=stick,removable=on,serial=KCMBOOT,bootindex=0",
        ]  # fmt: skip
        remove_boot = "device_del stick"
    g = Guest(args, logdir / f"{kind}.log", monitor)
    try:
        t_ui = g.wait_for("KCM-UI-START", timeout)
        r.check(
            t_ui is not None,
            f"the tty1 session starts the program (KCM-UI-START) within {timeout:.0f} s",
        )
        if t_ui is None:
            print(g.text()[-3000:])
            return r
        t_first = g.wait_for("KCM-FIRST-SCREEN", timeout)
        r.check(t_first is not None, "the program's first screen appears on tty1")
        if t_first is None:
            print(g.text()[-3000:])
            return r
        g.wait_for("frame_cells=", 30, start=g.text().rfind("KCM-FIRST-SCREEN"))
        g.wait_for("\n", 10, start=g.text().rfind("frame_cells="))
        line = g.line_after("KCM-FIRST-SCREEN")
        cells = line.split("frame_cells=")[-1].split()[0] if "frame_cells=" in line else "?"
        r.check(
            cells.isdigit() and int(cells) >= 40,
            f"the first screen has a frame ({cells} box-drawing cells)",
        )
        r.figures["first_screen_s"] = t_first
        print(
            f"  program started {t_ui:.1f} s, first screen {t_first:.1f} s after qemu start ({line.strip()})"
        )
        shot = logdir / f"first-screen-{kind}.ppm"
        shot.unlink(missing_ok=True)
        g.hmp(f"screendump {shot}", wait=3)
        if shot.exists() and ppm_to_png(shot, shot.with_suffix(".png")):
            r.note(f"tty1 saved as {shot.with_suffix('.png')}")
            shot.unlink()
        if g.wait_for("KCM-CHECK-HOTPLUG-READY", timeout) is not None:
            disk_c = logdir / "disk-c.img"
            out = g.hmp(f"drive_add 0 if=none,id=diskc,format=raw,file={disk_c}")
            out += g.hmp(
                "device_add usb-storage,bus=xhci.0,drive=diskc,id=usbc,removable=off,serial=KCMTESTC"
            )
            r.note(f"attached USB disk KCMTESTC after boot ({' '.join(out.split())[-80:]})")
        else:
            r.check(False, "the boot check asked for a hot-plugged disk")
        if g.wait_for("KCM-CHECK-REMOVE-BOOT-MEDIUM", timeout) is not None:
            out = g.hmp(remove_boot)
            r.note(f"boot medium removed: {remove_boot} ({' '.join(out.split())[-60:]})")
        else:
            r.check(False, "the boot check asked for the boot medium to be removed")
        t_done = g.wait_for("KCM-CHECK-DONE", timeout)
        rc = g.wait_exit(120)
        r.check(t_done is not None, "the boot check finished")
        r.check(rc is not None, "the guest powered itself off afterwards")
        try:
            report = selftest.parse_report(g.text())
        except selftest.SelftestError as exc:
            r.check(False, f"self-test report: {exc}")
            return r
        for name in EXPECTED_CHECKS:
            ok = report.checks.get(name)
            detail = _check_line(g.text(), name)
            r.check(ok is True, f"{name}: {detail}" if detail else f"{name} (missing)")
        extra = sorted(set(report.checks) - set(EXPECTED_CHECKS))
        for name in extra:
            r.check(report.checks[name], f"{name}: {_check_line(g.text(), name)}")
        r.check(report.rc == 0, f"selftest --expect-hardened --boot-check rc=0 (got {report.rc})")
        f = report.facts
        if isinstance(f.get("frame"), dict):
            r.note(
                f"glyphs on the first screen beyond ASCII: {' '.join(f['frame'].get('distinct_non_ascii', []))}"
            )
        return r
    finally:
        g.kill()


def _check_line(text: str, name: str) -> str:
    prefix = f"{selftest.CHECK_PREFIX}{name} "
    lines = [ln for ln in text.splitlines() if prefix in ln]
    if not lines:
        return ""
    body = lines[-1][lines[-1].index(prefix) + len(prefix) :]
    return body.split(" ", 1)[1][:160] if " " in body else body


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Boot the ISO in qemu and check it.")
    ap.add_argument("iso", type=Path)
    ap.add_argument("--only", choices=["bios", "uefi"], help="run one of the two boots")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for a marker")
    ap.add_argument("--memory", default="2048")
    ap.add_argument(
        "--log-dir", type=Path, help="serial logs and pictures (default: beside the ISO)"
    )
    args = ap.parse_args(argv)
    iso = args.iso.resolve()
    if not iso.is_file():
        raise SystemExit(f"{iso}: no such ISO (make iso)")
    logdir = (args.log_dir or iso.parent / "boot-test").resolve()
    logdir.mkdir(parents=True, exist_ok=True)
    size = iso.stat().st_size
    print(f"ISO {iso.name}: {size} bytes ({size / 1048576:.1f} MiB)")
    if os.path.exists("/dev/kvm"):
        print("(KVM present but not used: TCG, as on the build machines)")
    t0 = time.monotonic()
    results: list[Result] = []
    for kind in ("bios", "uefi"):
        if args.only in (None, kind):
            results.append(boot(kind, iso, logdir, args.timeout, args.memory))
    size_ok = size <= SIZE_BUDGET_MIB << 20
    print("\n== summary")
    print(f"ISO size: {size} bytes ({size / 1048576:.1f} MiB), budget {SIZE_BUDGET_MIB} MiB: "
          f"{'ok' if size_ok else 'OVER'}")  # fmt: skip
    for r in results:
        t = r.figures.get("first_screen_s")
        goal = (
            ""
            if t is None
            else f" (goal {BOOT_GOAL_S} s: {'met' if t <= BOOT_GOAL_S else 'NOT met'})"
        )
        status = (
            "ok" if not r.failures else f"FAILED ({len(r.failures)}: {'; '.join(r.failures)[:300]})"
        )
        first = f"{t:.1f} s" if t is not None else "n/a"
        print(f"{r.name}: {status}; first screen {first} after qemu start{goal}")
    print(f"total test time {time.monotonic() - t0:.0f} s")
    failed = sum(len(r.failures) for r in results) + (0 if size_ok else 1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
