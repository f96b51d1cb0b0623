"""The boot check of the ceremony image: what ``make iso-test`` proves inside the guest.

Run as ``kcm-ceremony selftest --expect-hardened --boot-check`` by ``kcm-check-run`` when the
kernel command line has ``kcm.check=1`` (the boot test types it at the boot menu), while the
program runs on tty1 as in every boot. It adds facts and checks to the self-test report
(core/selftest.py):

- **console font** (``console-font``): the font tty1 uses, read back from the kernel
  (``KDFONTOP``) and with ``setfont -O``, is the image's font (Terminus with the block
  elements added) glyph for glyph, and Terminus at every other position;
- **frame glyphs** (``frame-glyphs``): every code point on tty1 now (``/dev/vcsu1``: the
  program's first screen) is in the loaded font's Unicode table;
- **removable media** (``media-readonly-at-add``, ``media-hotplug-readonly``,
  ``media-export-writable``, ``media-released``, ``media-fixed-disk-refused``): every USB or
  removable disk and partition is read-only (``blockdev --getro`` = 1) from the moment it
  appears, a disk attached after boot too; choosing one as the export medium through
  :class:`core.removable.ExportMediaChooser` (what the program's export chooser uses) makes
  that one writable (0) and no other; an export is written through the ceremony's exporter,
  verified, and the medium released (read-only again, unmounted); a fixed disk is refused;
- **privilege separation** (``ui-user``, ``no-root-ceremony-process``, ``ptrace-yama``,
  ``keyholder-user``, ``ui-cannot-read-keyholder``): the program on tty1 runs as ``kcm``;
  a keyholder asked for by a ``kcm`` process through the launcher socket runs as
  ``kcm-keyholder`` with no capability; no ceremony process other than this check runs as
  root; Yama ``ptrace_scope`` is 3; a ``kcm`` process cannot open the keyholder's
  ``/proc/PID/mem``. The media checks above go through the media service as ``kcm``;
- **boot medium** (``boot-medium-released``, ``boot-medium-removed``): the root was copied to
  RAM and the boot medium is not mounted; once the test has pulled it out, files are still
  read from the root (page cache dropped first).

The guest cannot be told things during the test; it prints a marker and waits for what the
host does (``KCM-CHECK-HOTPLUG-READY``: attach a disk; ``KCM-CHECK-REMOVE-BOOT-MEDIUM``: pull
the boot medium). No UI imports.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import consolefont, removable

HOTPLUG_READY = "KCM-CHECK-HOTPLUG-READY"
REMOVE_BOOT_MEDIUM = "KCM-CHECK-REMOVE-BOOT-MEDIUM"
EXPORT_SERIAL_PARAM = "kcm.check.export="
FW_CFG_CHECK = Path("/sys/firmware/qemu_fw_cfg/by_name/opt/org.openkcm/check/raw")

Check = tuple[str, bool, str]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _cmdline() -> list[str]:
    try:
        return Path("/proc/cmdline").read_text().split()
    except OSError:
        return []


def _export_serial() -> str:
    """The serial of the USB disk the check may write to (fw_cfg item, or kernel parameter)."""
    try:
        value = FW_CFG_CHECK.read_text().strip()
        if value:
            return value
    except OSError:
        pass
    return next(
        (a[len(EXPORT_SERIAL_PARAM) :] for a in _cmdline() if a.startswith(EXPORT_SERIAL_PARAM)), ""
    )


# ------------------------------------------------------------------------------- font


def font_check(
    tty: str = "/dev/tty1", vcsu: str = "/dev/vcsu1"
) -> tuple[dict[str, Any], list[Check]]:
    """Read tty1's font back two ways and check it, and the glyphs on screen."""
    facts: dict[str, Any] = {}
    checks: list[Check] = []
    try:
        loaded = consolefont.read_console_font(tty)
    except consolefont.FontError as exc:
        facts["font_error"] = str(exc)
        return facts, [("console-font", False, str(exc)), ("frame-glyphs", False, "no font")]
    facts["font_loaded"] = {
        "width": loaded.width, "height": loaded.height, "charcount": loaded.charcount,
        "unicode_entries": len(loaded.unicode),
        "sha256": hashlib.sha256(b"".join(loaded.glyphs)).hexdigest(),
    }  # fmt: skip
    # setfont -O saves the current font (and its Unicode table) without loading another.
    readback: consolefont.Font | None = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "readback.psf"
        try:
            subprocess.run(
                ["setfont", "-C", tty, "-O", str(out)], check=True, capture_output=True, timeout=30
            )
            readback = consolefont.read_psf(out)
        except (OSError, subprocess.SubprocessError, consolefont.FontError) as exc:
            facts["setfont_readback_error"] = str(exc)
    try:
        image_font = consolefont.read_psf(consolefont.KCM_FONT)
        terminus = consolefont.read_psf(consolefont.TERMINUS)
    except consolefont.FontError as exc:
        return facts, [
            ("console-font", False, f"reference font: {exc}"),
            ("frame-glyphs", False, "no reference"),
        ]
    same_as_image = consolefont.same_glyphs(loaded, image_font)
    same_readback = readback is not None and consolefont.same_glyphs(readback, image_font)
    terminus_positions = sum(a == b for a, b in zip(loaded.glyphs, terminus.glyphs, strict=False))
    facts["font_is_image_font"] = same_as_image
    facts["font_setfont_readback_is_image_font"] = same_readback
    facts["font_terminus_positions"] = [terminus_positions, terminus.charcount]
    ok = same_as_image and same_readback and terminus_positions >= terminus.charcount - 24
    checks.append((
        "console-font", ok,
        f"tty1 font = kcm-Terminus16 (ioctl {same_as_image}, setfont -O {same_readback}); "
        f"{terminus_positions}/{terminus.charcount} glyphs identical to Uni2-Terminus16",
    ))  # fmt: skip
    try:
        cells = consolefont.screen_code_points(Path(vcsu).read_bytes())
    except OSError as exc:
        checks.append(("frame-glyphs", False, f"cannot read {vcsu}: {exc.strerror}"))
        return facts, checks
    frame = [c for c in cells if 0x2500 <= c <= 0x259F]
    missing = consolefont.missing_glyphs(loaded, cells)
    facts["frame"] = {
        "cells": len(cells), "frame_cells": len(frame),
        "distinct_non_ascii": sorted(f"U+{c:04X}" for c in set(cells) if c >= 0x80),
        "missing": [f"U+{c:04X}" for c in missing],
    }  # fmt: skip
    checks.append((
        "frame-glyphs", bool(frame) and not missing,
        f"{len(frame)} frame cells on tty1; missing from the font: {facts['frame']['missing']}",
    ))  # fmt: skip
    return facts, checks


# ------------------------------------------------------------------------------ media


def _getro(name: str) -> int | None:
    """What ``blockdev --getro /dev/NAME`` prints (None if it fails)."""
    try:
        res = subprocess.run(
            ["blockdev", "--getro", f"/dev/{name}"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip().isdigit() else None


def _snapshot() -> list[dict[str, Any]]:
    out = removable.describe_devices(removable.list_block_devices("/"))
    for d in out:
        d["getro"] = _getro(d["name"])
    return out


def _settle() -> None:
    subprocess.run(["udevadm", "settle", "--timeout=60"], capture_output=True, check=False)


def _fixed_disks() -> list[str]:
    """Whole disks that are neither removable nor on a removable bus (sd*, vd*, nvme*)."""
    listed = {d.disk for d in removable.list_block_devices("/")}
    out = []
    for p in sorted(Path("/sys/block").iterdir()):
        if p.name in listed or not p.name.startswith(("sd", "vd", "nvme", "hd")):
            continue
        out.append(p.name)
    return out


_JOURNAL_PROBE = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/boot-check-journal.db")
db.execute("create table if not exists t (x)")
db.execute("insert into t values (1)")
db.commit()
db.close()
print("written")
"""


def _ceremony_medium_check(helper: removable.MediaHelper, device: str, facts: dict[str, Any]) -> Check:
    """``media-ceremony-writable``: ``kcm-media ceremony DEV`` through the helper, a journal
    written by the UI's user, released again."""
    try:
        mount = helper.ceremony(device)
    except Exception as exc:
        return ("media-ceremony-writable", False, f"ceremony {device}: {exc}")
    r = subprocess.run(
        _as_ui([sys.executable, "-I", "-c", _JOURNAL_PROBE, str(mount)]), capture_output=True,
        text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip
    written = r.returncode == 0 and r.stdout.strip() == "written"
    subprocess.run([str(removable.HELPER), "release", "--all"], capture_output=True, timeout=120,
                   check=False)  # fmt: skip
    name = device.removeprefix("/dev/")
    after = {d["name"]: d for d in _snapshot()}
    released = name in after and after[name]["getro"] == 1 and not after[name]["mounted"]
    facts["ceremony_medium"] = {"mount": str(mount), "written": written, "stderr": r.stderr[-300:],
                                "released": released}  # fmt: skip
    return (
        "media-ceremony-writable", written and released,
        f"{device} at {mount}: journal written by {UI_USER}: {written}; "
        f"read-only and unmounted after release --all: {released}",
    )


def media_check(wait_hotplug: float = 180) -> tuple[dict[str, Any], list[Check]]:
    """The removable-media path, end to end (see the module docstring)."""
    facts: dict[str, Any] = {}
    checks: list[Check] = []
    _settle()
    first = _snapshot()
    facts["media_at_boot"] = first
    ok = bool(first) and all(d["getro"] == 1 for d in first)
    checks.append(("media-readonly-at-add", ok, f"{[(d['name'], d['getro']) for d in first]}"))
    # A disk attached now, after boot: the "add" event proper.
    _say(HOTPLUG_READY)
    before = {d["name"] for d in first}
    deadline = time.monotonic() + wait_hotplug
    new: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(1)
        _settle()
        now = _snapshot()
        new = [d for d in now if d["name"] not in before]
        if new and any(d["partition"] for d in new):
            break
    facts["media_hotplugged"] = new
    checks.append((
        "media-hotplug-readonly", bool(new) and all(d["getro"] == 1 for d in new),
        f"{[(d['name'], d['getro']) for d in new] or 'no disk appeared'}",
    ))  # fmt: skip
    # Choose one as the export medium, as the program's chooser does.
    wanted = _export_serial()
    facts["export_serial"] = wanted
    helper = _ui_media_helper()
    facts["media_helper"] = helper.command
    checks.append((
        "media-via-service", bool(helper.service_socket) and helper.command[0] == "setpriv",
        f"the export below runs as {UI_USER} through the media service: {' '.join(helper.command[:8])}",
    ))  # fmt: skip
    chooser = removable.ExportMediaChooser(helper, "/")
    candidates = [m for m in chooser.choices() if isinstance(m, removable.DeviceMedium)]
    facts["export_candidates"] = [m.device for m in candidates]
    # Only the disk the test named: the check writes to it.
    pick = next(
        (m for m in candidates if wanted and m.block is not None and m.block.serial == wanted), None
    )
    if pick is None:
        checks.append(
            ("media-export-writable", False, f"no export candidate with serial {wanted!r}")
        )
        return facts, checks
    try:
        target = chooser.choose(pick)
    except Exception as exc:  # reported, the check fails
        checks.append(("media-export-writable", False, f"choosing {pick.device}: {exc}"))
        return facts, checks
    chosen = pick.device.removeprefix("/dev/")
    during = _snapshot()
    facts["export_chosen"] = chosen
    facts["media_while_chosen"] = during
    writable = sorted(d["name"] for d in during if d["getro"] != 1)
    # The chosen file system's device, and its disk when it is a partition (the kernel keeps
    # a partition read-only while its disk is); every other device stays read-only.
    expected = sorted({chosen, pick.block.disk if pick.block is not None else chosen})
    checks.append((
        "media-export-writable", writable == expected,
        f"writable (getro 0): {writable}; chosen {chosen}, expected {expected}",
    ))  # fmt: skip
    # Write, verify and release through the exporter the ceremony uses.
    from core.ceremony.engine import FolderExporter

    exporter = FolderExporter(Path(tempfile.mkdtemp()))
    exporter.use(target)
    files = {"boot-check.txt": f"kcm boot check {time.time():.0f}\n".encode()}
    try:
        exported = exporter.write(f"kcm-boot-check-{os.getpid()}", files, ceremony_id="boot-check")
        res = exporter.last
        facts["export_written"] = [e.name for e in exported]
        facts["export_result"] = {"safe_to_remove": res.safe_to_remove, "unmounted": res.unmounted,
                                  "notes": list(res.notes)}  # fmt: skip
        export_ok = bool(res.safe_to_remove and res.unmounted)
    except Exception as exc:
        facts["export_error"] = str(exc)
        export_ok = False
        try:
            chooser.release()
        except Exception as rel_exc:
            facts["release_error"] = str(rel_exc)
    after = _snapshot()
    facts["media_after_release"] = after
    still = [d["name"] for d in after if d["getro"] != 1 or d["mounted"]]
    checks.append((
        "media-released", export_ok and not still,
        f"export written, verified, unmounted: {export_ok}; not read-only or mounted: {still}",
    ))  # fmt: skip
    # The same stick as the ceremony medium (the journal's), as the start screen does it:
    # writable for the UI's user, a SQLite journal written there by that user, then released
    # by the session's `kcm-media release --all`.
    checks.append(_ceremony_medium_check(helper, pick.device, facts))
    # A fixed disk (the workstation's own): the helper refuses it, it stays untouched.
    fixed = _fixed_disks()
    facts["fixed_disks"] = fixed
    if fixed:
        name = fixed[0]
        ro_before = _getro(name)
        try:
            helper.export(f"/dev/{name}")
            refused, why = False, "the helper accepted it"
        except Exception as exc:
            refused, why = True, str(exc)
            try:
                helper.release()
            except Exception:
                pass
        checks.append((
            "media-fixed-disk-refused", refused and _getro(name) == ro_before,
            f"/dev/{name}: {why}; getro {ro_before} -> {_getro(name)}",
        ))  # fmt: skip
    return facts, checks


# -------------------------------------------------------------------------- boot medium


def _mounts() -> list[list[str]]:
    try:
        return [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return []


def boot_medium_check(wait_removal: float = 180) -> tuple[dict[str, Any], list[Check]]:
    """The root runs from RAM; the boot medium is released, then pulled out by the host."""
    facts: dict[str, Any] = {}
    checks: list[Check] = []
    mounts = _mounts()
    medium = [m for m in mounts if len(m) > 2 and m[1] == "/run/live/medium"]
    # Mounted block devices (live-boot names its RAM copy "/dev/shm": a tmpfs, not one);
    # loop devices count by what backs them: a file on the RAM copy is fine.
    block_mounts = []
    for m in mounts:
        if len(m) < 2 or not _is_block(m[0]):
            continue
        name = Path(m[0]).name
        backing = _read_text(Path(f"/sys/block/{name}/loop/backing_file"))
        if name.startswith("loop") and backing.startswith("/run/live/medium/"):
            continue
        block_mounts.append(f"{m[0]} on {m[1]}" + (f" (backed by {backing})" if backing else ""))
    boot_devs = [d.name for d in removable.list_block_devices("/") if d.fs == "iso9660"]
    cdroms = sorted(p.name for p in Path("/sys/block").glob("sr*"))
    facts["live_medium_mount"] = medium[-1][:3] if medium else None
    facts["block_device_mounts"] = block_mounts
    facts["boot_devices"] = boot_devs + cdroms
    in_ram = bool(medium) and medium[-1][2] == "tmpfs"
    released = in_ram and not block_mounts
    checks.append((
        "boot-medium-released", released,
        f"/run/live/medium is {medium[-1][2] if medium else 'absent'}; block devices mounted: {block_mounts}",
    ))  # fmt: skip
    _say(f"{REMOVE_BOOT_MEDIUM} devices={','.join(boot_devs + cdroms) or 'none'}")
    deadline = time.monotonic() + wait_removal
    gone = False
    while time.monotonic() < deadline:
        time.sleep(1)
        usb_left = [n for n in boot_devs if Path(f"/sys/block/{n}").exists()]
        cd_left = [n for n in cdroms if _cd_has_disc(n)]
        if not usb_left and not cd_left:
            gone = True
            break
    # Read the root with the page cache dropped: it must come from RAM, not the medium.
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass
    digest = hashlib.sha256()
    count = 0
    for base in (Path(sys.prefix) / "lib", Path("/usr/lib/python3.11")):
        for path in sorted(base.rglob("*.py"))[:4000]:
            try:
                digest.update(path.read_bytes())
                count += 1
            except OSError:
                pass
    facts["boot_medium_removed"] = gone
    facts["files_read_after_removal"] = count
    checks.append((
        "boot-medium-removed", gone and count > 1000,
        f"boot medium gone: {gone}; {count} files read from the root afterwards",
    ))  # fmt: skip
    return facts, checks


def _is_block(path: str) -> bool:
    import stat

    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _cd_has_disc(name: str) -> bool:
    """True while the optical drive ``name`` holds a disc (CDROM_DRIVE_STATUS)."""
    import fcntl

    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, 0x5326, 0x7FFFFFFF) == 4  # CDROM_DRIVE_STATUS == CDS_DISC_OK
    except OSError:
        return False
    finally:
        os.close(fd)


UI_USER = "kcm"
KEYHOLDER_USER = "kcm-keyholder"


def _as_ui(args: list[str]) -> list[str]:
    """``args`` run as the UI's user, as the program on tty1 runs (no privilege)."""
    return ["setpriv", f"--reuid={UI_USER}", f"--regid={UI_USER}", "--init-groups",
            "--no-new-privs", "--inh-caps=-all", *args]  # fmt: skip


def _ui_media_helper() -> removable.MediaHelper:
    """The media helper as the program on tty1 reaches it: through the media service, as
    the UI's user (the image's own arrangement); the helper itself where there is none."""
    service = removable.MediaHelper.via_service()
    if not service.available():
        return removable.MediaHelper()
    return removable.MediaHelper(_as_ui(service.command), service_socket=service.service_socket)


def _uid_of(name: str) -> int:
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return -1


_PROBE = r"""
import json, sys
from core.keyholder import launcher
kh = launcher.connect()
pid = kh.info["pid"]
try:
    with open(f"/proc/{pid}/mem", "rb") as fh:
        fh.read(1)
    mem = "READ"
except OSError as exc:
    mem = f"denied ({exc.strerror})"
print(json.dumps({"pid": pid, "uid": kh.info["uid"], "mem": mem,
                  "hardening": kh.info["hardening"], "terminal": kh.info["terminal"]}), flush=True)
sys.stdin.readline()
kh.close()
"""


def privilege_check() -> tuple[dict[str, Any], list[Check]]:
    """The ``ui-user`` .. ``ui-cannot-read-keyholder`` checks (see the module doc)."""
    import json

    from core.preflight import session as preflight

    facts: dict[str, Any] = {}
    checks: list[Check] = []
    ui_uid, kh_uid = _uid_of(UI_USER), _uid_of(KEYHOLDER_USER)
    facts["users"] = {UI_USER: ui_uid, KEYHOLDER_USER: kh_uid}
    me = {str(os.getpid()), str(os.getppid())}
    procs: list[dict[str, Any]] = []
    for pid, role in preflight._ceremony_processes("/"):
        if pid == "self" or pid in me:
            continue  # this check (root, started by the check unit), not the ceremony
        st = preflight._proc_status("/", pid)
        if st is not None:
            procs.append({"pid": pid, "role": role, "uids": list(st[0]), "caps": st[1]})
    facts["ceremony_processes"] = procs
    uis = [p for p in procs if p["role"] == "kcm-ceremony"]
    checks.append((
        "ui-user", bool(uis) and ui_uid > 0 and all(set(p["uids"]) == {ui_uid} for p in uis),
        f"program on tty1: {[(p['pid'], p['uids']) for p in uis] or 'not found'}; {UI_USER}={ui_uid}",
    ))  # fmt: skip
    try:
        scope = Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError as exc:
        scope = f"unreadable ({exc.strerror})"
    facts["ptrace_scope"] = scope
    checks.append(("ptrace-yama", scope == "3", f"kernel.yama.ptrace_scope = {scope}"))
    python = sys.executable
    probe = subprocess.Popen(
        _as_ui([python, "-I", "-c", _PROBE]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd="/",
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"},
    )  # fmt: skip
    assert probe.stdin is not None and probe.stdout is not None
    line = probe.stdout.readline()
    try:
        got = json.loads(line)
    except ValueError:
        got = {}
    kh_status: dict[str, str] = {}
    if got:
        try:
            for ln in Path(f"/proc/{got['pid']}/status").read_text().splitlines():
                k, _, v = ln.partition(":")
                kh_status[k] = v.strip()
        except OSError:
            pass
        # the keyholder, seen from here while it runs: a ceremony process too
        procs.append({"pid": str(got["pid"]), "role": "keyholder", "uids": [
            int(u) for u in kh_status.get("Uid", "").split()], "caps": -1})
    try:
        probe.stdin.write("\n")
        probe.stdin.flush()
        _out, err = probe.communicate(timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        probe.kill()
        _out, err = probe.communicate()
    facts["keyholder_probe"] = got or {"error": (line + err)[-400:]}
    facts["keyholder_status"] = {k: kh_status.get(k, "") for k in (
        "Uid", "Gid", "Groups", "CapEff", "CapPrm", "NoNewPrivs", "VmLck")}  # fmt: skip
    uids = kh_status.get("Uid", "").split()
    checks.append((
        "keyholder-user",
        bool(got) and kh_uid > 0 and uids == [str(kh_uid)] * 4
        and int(kh_status.get("CapEff", "1"), 16) == 0 and int(kh_status.get("CapPrm", "1"), 16) == 0,
        f"keyholder pid {got.get('pid')}: Uid {uids}, CapEff {kh_status.get('CapEff')}, "
        f"VmLck {kh_status.get('VmLck')}; {KEYHOLDER_USER}={kh_uid}"
        if got else f"no keyholder: {(line + err).strip()[-200:]}",
    ))  # fmt: skip
    checks.append((
        "ui-cannot-read-keyholder", bool(got) and str(got.get("mem", "")).startswith("denied"),
        f"a {UI_USER} process opening /proc/<keyholder>/mem: {got.get('mem', 'no keyholder')}",
    ))  # fmt: skip
    rooted = [p for p in procs if 0 in p["uids"]]
    checks.append((
        "no-root-ceremony-process", bool(procs) and not rooted,
        f"{len(procs)} ceremony process(es); as root: {[(p['pid'], p['role']) for p in rooted]}",
    ))  # fmt: skip
    return facts, checks


def run(step: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[Check]]:
    """Every part of the boot check; returns (facts, checks) for the self-test report."""
    facts: dict[str, Any] = {}
    checks: list[Check] = []
    for part in (privilege_check, font_check, media_check, boot_medium_check):
        if step is not None:
            step(part.__name__)
        try:
            f, c = part()
        except Exception as exc:  # a crash is a failed check, never a missing report
            f, c = {f"{part.__name__}_error": repr(exc)}, [(part.__name__, False, repr(exc))]
        facts.update(f)
        checks.extend(c)
    return facts, checks
