"""Boot the OpenKCM Ceremony ISO headless in qemu and check it from the serial log.

    python3 iso_build/boot_test.py [--only bios|uefi] [--require-ui] ISO

Two boots, both with a virtio NIC attached (user networking with restrict=on) so that
"only lo exists" means the image really has no NIC driver, both under TCG (no KVM here):

1. BIOS, the ISO as a CD-ROM: at the isolinux ``boot:`` prompt (also on the serial port)
   it types ``selftest``; that entry adds ``kcm.selftest=1 console=ttyS0``, and
   kcm-selftest.service runs ``kcm-ceremony selftest --expect-hardened`` and
   ``kcm-ceremony preflight --json`` with the output on the serial port, then powers off.
   The report is parsed with core.selftest.parse_report and asserted: only ``lo``, no swap,
   RLIMIT_CORE 0/0, core_pattern off, the hardening flags on the kernel command line, / a
   read-only squashfs (under the live overlay), IPv6 off, the program run from the venv.
2. UEFI (OVMF), the ISO as a USB stick: the default GRUB entry after its timeout; the
   console session on tty1 writes ``KCM-UI-START`` to the serial port just before it starts
   ``kcm-ceremony``; the test waits for it (and reports whether the program stays up).

Prints the time to each marker and the ISO size; exits non-zero on any failed assertion.
Standard library only (plus core/selftest.py from this tree, which is standard library too).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from core import selftest  # noqa: E402  (the tree's own module, standard library only)

OVMF_CODE = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"]
OVMF_VARS = ["/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd"]


class Guest:
    """A qemu process whose first serial port is our stdin/stdout pipe."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.t0 = time.monotonic()
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
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
        """Seconds since start when needle appeared in the serial output, None on timeout/exit."""
        deadline = time.monotonic() + timeout
        while True:
            if needle in self.text()[start:]:
                return self.elapsed()
            if self.proc.poll() is not None and needle not in self.text()[start:]:
                # drain what the reader still has
                time.sleep(0.5)
                return self.elapsed() if needle in self.text()[start:] else None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.events.get(timeout=min(left, 1.0))
            except queue.Empty:
                pass

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

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


def qemu_base(memory: str, monitor: str = "none") -> list[str]:
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
        "-monitor", monitor,
        "-no-reboot",
        # A NIC is attached on purpose: the image must not have a driver for it.
        "-netdev", "user,id=n0,restrict=on",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
    ]  # fmt: skip


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []
        self.notes: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)

    def note(self, text: str) -> None:
        print(f"  [note] {text}")
        self.notes.append(text)


def boot_bios_selftest(
    iso: Path, logdir: Path, timeout: float, memory: str, require_ui: bool
) -> Result:
    r = Result("bios-selftest")
    print(
        f"\n== BIOS boot from optical (cdrom), self-test entry; serial log {logdir / 'bios-selftest.log'}"
    )
    args = [
        *qemu_base(memory),
        "-drive", f"file={iso},media=cdrom,readonly=on,if=ide,index=0",
        "-boot", "d",
    ]  # fmt: skip
    g = Guest(args, logdir / "bios-selftest.log")
    try:
        t_prompt = g.wait_for("boot:", 120)
        r.check(t_prompt is not None, "isolinux boot: prompt on the serial port")
        if t_prompt is None:
            return r
        print(f"  boot prompt after {t_prompt:.1f} s; typing 'selftest'")
        time.sleep(0.3)
        g.send(b"selftest\r")
        t_begin = g.wait_for(selftest.BEGIN, timeout)
        r.check(t_begin is not None, f"self-test marker {selftest.BEGIN} within {timeout:.0f} s")
        if t_begin is None:
            print(g.text()[-3000:])
            return r
        t_done = g.wait_for("KCM-SELFTEST-DONE", 300)
        rc = g.wait_exit(120)
        r.check(rc is not None, "the guest powered itself off after the self test")
        report = selftest.parse_report(g.text())
        f = report.facts
        print(
            f"  self test started {t_begin:.1f} s after qemu start"
            f" (guest uptime {f.get('uptime_s')} s); done at {t_done or float('nan'):.1f} s"
        )
        r.check(report.rc == 0, f"selftest --expect-hardened rc=0 (got {report.rc})")
        r.check(f.get("interfaces") == ["lo"], f"only lo exists (interfaces={f.get('interfaces')})")
        r.check(f.get("swaps") == [], f"no swap ({f.get('swaps')})")
        r.check(f.get("rlimit_core") == [0, 0], f"RLIMIT_CORE 0/0 ({f.get('rlimit_core')})")
        r.check(
            f.get("core_pattern") == selftest.CORE_PATTERN_OFF,
            f"core_pattern off ({f.get('core_pattern')!r})",
        )
        cmd = str(f.get("cmdline") or "").split()
        missing = [x for x in selftest.HARDENING_FLAGS if x not in cmd]
        r.check(not missing, f"kernel command line hardening flags (missing: {missing})")
        root = f.get("root")
        r.check(
            isinstance(root, dict) and selftest.root_is_readonly_squashfs(root),
            f"root is a read-only squashfs ({root})",
        )
        r.check(f.get("ipv6") is False, "IPv6 off")
        r.check(
            str(f.get("executable", "")).startswith("/opt/kcm/venv/"),
            f"kcm-ceremony ran from the venv ({f.get('executable')})",
        )
        ui = f.get("ui_importable")
        if require_ui:
            r.check(ui is True, f"kcm_tui.app installed ({ui})")
        elif ui is not True:
            r.note(f"kcm_tui.app not installed in the image yet ({ui})")
        text = g.text()
        if "KCM-PREFLIGHT-END rc=" in text:
            prc = text.split("KCM-PREFLIGHT-END rc=")[-1].split()[0]
            r.note(f"preflight --json exit status {prc}")
        r.notes.append(f"boot_to_selftest_s={t_begin:.1f}")
        return r
    finally:
        g.kill()


def screendump(sock: Path, target: Path) -> bool:
    """Ask qemu's monitor for a picture of the VGA console (tty1: the TUI)."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(f"screendump {target}\n".encode())
            time.sleep(3)
            s.sendall(b"info status\n")
            time.sleep(1)
    except OSError as exc:
        print(f"  screendump failed: {exc}")
        return False
    return target.exists()


def boot_uefi_ui(
    iso: Path,
    logdir: Path,
    timeout: float,
    memory: str,
    require_ui: bool,
    screenshot: Path | None = None,
    shot_delay: float = 90,
) -> Result:
    r = Result("uefi-ui")
    code = next((p for p in OVMF_CODE if os.path.exists(p)), None)
    vars_src = next((p for p in OVMF_VARS if os.path.exists(p)), None)
    if not code or not vars_src:
        r.check(False, "OVMF firmware present (apt-get install ovmf)")
        return r
    print(f"\n== UEFI boot from USB stick, default entry; serial log {logdir / 'uefi-ui.log'}")
    vars_copy = logdir / "OVMF_VARS.fd"
    shutil.copyfile(vars_src, vars_copy)
    sock = logdir / "monitor.sock"
    monitor = f"unix:{sock},server=on,wait=off" if screenshot else "none"
    args = [
        *qemu_base(memory, monitor),
        "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,file={vars_copy}",
        "-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=stick,format=raw,file={iso},snapshot=on",
        "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0",
    ]  # fmt: skip
    g = Guest(args, logdir / "uefi-ui.log")
    try:
        t_menu = g.wait_for("OpenKCM Ceremony", 180)
        r.check(t_menu is not None, "GRUB menu on the serial port")
        if t_menu is not None:
            print(f"  GRUB menu after {t_menu:.1f} s (3 s timeout, default entry)")
        t_ui = g.wait_for("KCM-UI-START", timeout)
        r.check(
            t_ui is not None, f"KCM-UI-START marker from the tty1 session within {timeout:.0f} s"
        )
        if t_ui is None:
            print(g.text()[-3000:])
            return r
        print(f"  kcm-ceremony started {t_ui:.1f} s after qemu start")
        r.notes.append(f"boot_to_ui_s={t_ui:.1f}")
        start = len(g.text())
        exited = g.wait_for("KCM-UI-EXIT", 20, start=start)
        if exited is None:
            r.note("kcm-ceremony still running 20 s after start (the TUI is up)")
            if screenshot is not None:
                # Python and Textual start slowly under TCG: give the first screen time.
                time.sleep(max(0.0, shot_delay - 20))
            if screenshot is not None and screendump(sock, screenshot):
                r.note(f"tty1 screen saved to {screenshot} (PPM)")
        else:
            tail = g.text()[start:]
            rc = tail.split("KCM-UI-EXIT rc=")[-1].split()[0] if "KCM-UI-EXIT rc=" in tail else "?"
            msg = f"kcm-ceremony exited within 20 s (rc={rc}): no TUI in this build yet?"
            if require_ui:
                r.check(False, msg)
            else:
                r.note(msg)
        return r
    finally:
        g.kill()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Boot the ISO in qemu and check it.")
    ap.add_argument("iso", type=Path)
    ap.add_argument("--only", choices=["bios", "uefi"], help="run one of the two boots")
    ap.add_argument("--timeout", type=float, default=480, help="seconds to wait for a marker")
    ap.add_argument("--memory", default="2048")
    ap.add_argument("--require-ui", action="store_true", help="fail if the TUI is not in the image")
    ap.add_argument("--screenshot", type=Path, help="UEFI boot: save tty1 (the TUI) as a PPM image")
    ap.add_argument("--screenshot-delay", type=float, default=90, help="seconds after UI start")
    ap.add_argument(
        "--log-dir", type=Path, help="where the serial logs go (default: beside the ISO)"
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
    if args.only in (None, "bios"):
        results.append(boot_bios_selftest(iso, logdir, args.timeout, args.memory, args.require_ui))
    if args.only in (None, "uefi"):
        shot = args.screenshot.resolve() if args.screenshot else None
        results.append(
            boot_uefi_ui(
                iso, logdir, args.timeout, args.memory, args.require_ui, shot, args.screenshot_delay
            )
        )
    print("\n== summary")
    print(f"ISO size: {size} bytes ({size / 1048576:.1f} MiB)")
    for r in results:
        times = [n for n in r.notes if n.startswith("boot_to_")]
        status = "ok" if not r.failures else f"FAILED ({len(r.failures)})"
        print(f"{r.name}: {status} {' '.join(times)}")
    print(f"total test time {time.monotonic() - t0:.0f} s")
    failed = sum(len(r.failures) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
