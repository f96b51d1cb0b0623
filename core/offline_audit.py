"""Find network code in a root file system: packages, programs, busybox applets, kernel modules.

The ceremony image must carry no network code (docs/iso.md). The list of what is forbidden is
data (``iso_build/forbidden.toml``, shipped in the image as
``/usr/local/share/kcm/forbidden.toml``); this module checks *files* against it:

- **packages**: installed Debian packages of a listed name (``var/lib/dpkg/status``);
- **programs**: a file or symlink of a listed name in a directory of executables;
- **busybox**: any executable that is a busybox binary (it is asked for its applets, or, when
  it cannot be run, it is reported anyway);
- **modules**: a kernel module under a listed directory, of a listed name, importing a listed
  kernel symbol (read from the module's ELF symbol table: it can create a network interface,
  register a protocol or open kernel sockets), or depending on such a module
  (``modules.dep``).

Used three ways, all with the same code: ``iso_build/build.sh`` audits the built tree and fails
on any finding; the image's network hook deletes the modules it finds (``strip-modules``);
``kcm-ceremony selftest`` audits the running system at boot and reports every finding.

Command line (standard library only, so it also runs inside the build chroot)::

    python3 offline_audit.py audit ROOT LIST.toml [--initramfs-list FILE]
    python3 offline_audit.py strip-modules ROOT LIST.toml
    python3 offline_audit.py strip-programs ROOT LIST.toml
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Finding",
    "ForbiddenList",
    "audit",
    "busybox_applets",
    "elf_undefined_symbols",
    "forbidden_modules",
    "is_busybox",
    "load_list",
    "module_name",
]

_BUSYBOX_MARK = b"BusyBox v"


@dataclass(frozen=True)
class Finding:
    """One forbidden item: its kind, the path inside the root, and why."""

    kind: str  # "package", "program", "busybox", "module"
    path: str
    why: str

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form (for the self-test report)."""
        return {"kind": self.kind, "path": self.path, "why": self.why}


@dataclass(frozen=True)
class ForbiddenList:
    """The parsed forbidden-item list."""

    packages: frozenset[str]
    program_dirs: tuple[str, ...]
    programs: frozenset[str]
    applets: frozenset[str]
    module_paths: tuple[str, ...]
    module_names: frozenset[str]
    symbols: frozenset[str]


def load_list(path: str | os.PathLike[str]) -> ForbiddenList:
    """Read ``forbidden.toml``.

    Raises:
        ValueError: a section or key is missing or of the wrong type.
    """
    with open(path, "rb") as fh:
        data = tomllib.load(fh)

    def strings(section: str, key: str) -> list[str]:
        value: Any = data.get(section, {}).get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"{path}: [{section}] {key} must be a list of names")
        return list(value)

    return ForbiddenList(
        packages=frozenset(strings("packages", "names")),
        program_dirs=tuple(strings("programs", "dirs")),
        programs=frozenset(strings("programs", "names")),
        applets=frozenset(strings("busybox", "applets")),
        module_paths=tuple(strings("modules", "paths")),
        module_names=frozenset(module_name(n) for n in strings("modules", "names")),
        symbols=frozenset(strings("modules", "symbols")),
    )


# ------------------------------------------------------------------------------- ELF


def _decompress(path: Path) -> bytes:
    name = path.name
    if name.endswith(".ko"):
        return path.read_bytes()
    if name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".ko.zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ValueError(f"{path}: zstd-compressed and no zstd program to read it")
        return subprocess.run([zstd, "-dc", str(path)], check=True, capture_output=True).stdout
    raise ValueError(f"{path}: not a kernel module")


def elf_undefined_symbols(data: bytes) -> set[str]:
    """Names of the undefined (imported) symbols in a 64-bit little-endian ELF object.

    Raises:
        ValueError: not a 64-bit little-endian ELF file, or a malformed one.
    """
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    try:
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
        ]
        out: set[str] = set()
        for sec in sections:
            if sec[1] != 2:  # SHT_SYMTAB
                continue
            offset, size, link, entsize = sec[4], sec[5], sec[6], sec[9] or 24
            strtab = sections[link]
            str_off, str_size = strtab[4], strtab[5]
            for pos in range(offset + entsize, offset + size, entsize):  # entry 0 is null
                st_name, _info, _other, st_shndx = struct.unpack_from("<IBBH", data, pos)
                if st_shndx != 0 or st_name == 0 or st_name >= str_size:  # SHN_UNDEF only
                    continue
                start = str_off + st_name
                end = data.index(b"\0", start)
                out.add(data[start:end].decode("ascii", "replace"))
        return out
    except (struct.error, IndexError, ValueError) as exc:
        raise ValueError(f"malformed ELF file: {exc}") from None


def module_name(file_name: str) -> str:
    """``firewire-net.ko.xz`` -> ``firewire_net`` (the kernel treats - and _ alike)."""
    base = file_name.split("/")[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


# ---------------------------------------------------------------------------- modules


def _module_files(moddir: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(moddir):
        for f in files:
            if re.search(r"\.ko(\.(xz|gz|zst))?$", f):
                yield Path(dirpath) / f


def _depends(moddir: Path) -> dict[str, set[str]]:
    """Relative module path -> relative paths it depends on, from ``modules.dep``."""
    deps: dict[str, set[str]] = {}
    try:
        text = (moddir / "modules.dep").read_text()
    except OSError:
        return deps
    for line in text.splitlines():
        mod, sep, rest = line.partition(":")
        if sep:
            deps[mod.strip()] = set(rest.split())
    return deps


def forbidden_modules(moddir: Path, flist: ForbiddenList) -> dict[str, str]:
    """Modules under one ``lib/modules/<version>`` that are network code: rel path -> why."""
    found: dict[str, str] = {}
    for path in sorted(_module_files(moddir)):
        rel = path.relative_to(moddir).as_posix()
        name = module_name(path.name)
        why = ""
        if any(rel.startswith(p) for p in flist.module_paths):
            why = "in a network directory"
        elif name in flist.module_names:
            why = "a network module by name"
        else:
            try:
                hits = elf_undefined_symbols(_decompress(path)) & flist.symbols
            except (OSError, ValueError, subprocess.CalledProcessError) as exc:
                why = f"cannot be read ({exc})"
            else:
                if hits:
                    why = "imports " + ", ".join(sorted(hits))
        if why:
            found[rel] = why
    # Whatever needs a forbidden module is network code too (and could not load anyway).
    deps = _depends(moddir)
    changed = True
    while changed:
        changed = False
        for mod, needs in deps.items():
            if mod in found:
                continue
            bad = sorted(n for n in needs if n in found)
            if bad:
                found[mod] = f"depends on {bad[0]}"
                changed = True
    return found


def _module_dirs(root: Path) -> list[Path]:
    base = root / "lib" / "modules"
    if not base.is_dir() and (root / "usr" / "lib" / "modules").is_dir():
        base = root / "usr" / "lib" / "modules"
    try:
        return sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


# ---------------------------------------------------------------------------- programs


def is_busybox(path: Path) -> bool:
    """True for a busybox executable (its version banner is in the file)."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 16 << 20:
            return False
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head != b"\x7fELF":
                return False
            return _BUSYBOX_MARK in head + fh.read()
    except OSError:
        return False


def busybox_applets(path: Path, root: Path = Path("/")) -> list[str] | None:
    """The applets a busybox binary offers (``busybox --list``), None if it cannot be run.

    A binary inside another root is run through ``chroot`` (as root) so it finds its own
    libraries.
    """
    cmd = [str(path), "--list"]
    if root.resolve() != Path("/"):
        chroot = shutil.which("chroot")
        if chroot is None or os.geteuid() != 0:
            return None
        cmd = [chroot, str(root), "/" + path.relative_to(root).as_posix(), "--list"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return sorted({line.strip() for line in res.stdout.splitlines() if line.strip()})


def _program_findings(root: Path, flist: ForbiddenList) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    for d in flist.program_dirs:
        directory = root / d.lstrip("/")
        if directory.is_symlink() or not directory.is_dir():
            continue  # /bin -> usr/bin on a merged-/usr system: searched once, as usr/bin
        try:
            key = (directory.stat().st_dev, directory.stat().st_ino)
        except OSError:
            continue
        if key in seen:
            continue
        seen.add(key)
        for entry in sorted(directory.iterdir()):
            rel = "/" + entry.relative_to(root).as_posix()
            if entry.name in flist.programs:
                out.append(Finding("program", rel, f"a network program ({entry.name})"))
            elif is_busybox(entry):
                applets = busybox_applets(entry, root)
                if applets is None:
                    out.append(Finding("busybox", rel, "a busybox binary (applets unknown)"))
                else:
                    bad = sorted(set(applets) & flist.applets)
                    if bad:
                        out.append(Finding("busybox", rel, "busybox with " + ", ".join(bad)))
    return out


def installed_packages(root: Path) -> set[str]:
    """Names of the packages dpkg lists as installed under ``root``."""
    try:
        text = (root / "var" / "lib" / "dpkg" / "status").read_text(errors="replace")
    except OSError:
        return set()
    names: set[str] = set()
    for block in text.split("\n\n"):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in block.splitlines())
            if not k.startswith(" ")
        )
        if fields.get("Status", "").endswith("install ok installed") and fields.get("Package"):
            names.add(fields["Package"])
    return names


def audit(
    root: str | os.PathLike[str], flist: ForbiddenList, initramfs_files: Iterable[str] = ()
) -> list[Finding]:
    """Every forbidden item in the tree at ``root`` (and, if given, in an initramfs listing).

    Args:
        root: the root file system to audit (``/`` on the running system).
        flist: from :func:`load_list`.
        initramfs_files: paths listed from an initramfs (``lsinitramfs``): its kernel
            modules are checked by directory and name (busybox stays there: live-boot's
            ``/init`` runs on it, and without network modules its network applets reach
            nothing).
    """
    r = Path(root)
    out: list[Finding] = []
    for pkg in sorted(installed_packages(r) & flist.packages):
        out.append(Finding("package", pkg, "a network package is installed"))
    out.extend(_program_findings(r, flist))
    for moddir in _module_dirs(r):
        for rel, why in forbidden_modules(moddir, flist).items():
            out.append(Finding("module", f"/{moddir.relative_to(r).as_posix()}/{rel}", why))
    for path in initramfs_files:
        m = re.search(r"lib/modules/[^/]+/(.+\.ko(\.(xz|gz|zst))?)$", path)
        if not m:
            continue
        rel = m.group(1)
        if any(rel.startswith(p) for p in flist.module_paths):
            out.append(Finding("module", f"initramfs:{path}", "in a network directory"))
        elif module_name(rel) in flist.module_names:
            out.append(Finding("module", f"initramfs:{path}", "a network module by name"))
    return out


def strip_modules(root: Path, flist: ForbiddenList) -> list[str]:
    """Delete every forbidden module under ``root`` (the build's network hook); returns them."""
    removed: list[str] = []
    for moddir in _module_dirs(root):
        for rel in forbidden_modules(moddir, flist):
            p = moddir / rel
            if p.exists():
                p.unlink()
                removed.append(f"{moddir.name}/{rel}")
    return removed


def strip_programs(root: Path, flist: ForbiddenList) -> list[str]:
    """Delete every forbidden program and busybox binary under ``root``; returns them."""
    removed: list[str] = []
    for f in _program_findings(root, flist):
        p = root / f.path.lstrip("/")
        if p.is_symlink() or p.exists():
            p.unlink()
            removed.append(f"{f.path} ({f.why})")
    return removed


def main(argv: list[str]) -> int:
    """Command line; see the module docstring."""
    if len(argv) < 3 or argv[0] not in ("audit", "strip-modules", "strip-programs"):
        sys.stderr.write(
            "usage: offline_audit.py audit|strip-modules|strip-programs ROOT LIST.toml "
            "[--initramfs-list FILE]\n"
        )
        return 2
    cmd, root, flist = argv[0], Path(argv[1]), load_list(argv[2])
    if cmd == "strip-modules":
        for line in strip_modules(root, flist):
            print(f"kcm: removed module {line}")
        return 0
    if cmd == "strip-programs":
        for line in strip_programs(root, flist):
            print(f"kcm: removed {line}")
        return 0
    listing: list[str] = []
    if len(argv) == 5 and argv[3] == "--initramfs-list":
        listing = Path(argv[4]).read_text().splitlines()
    findings = audit(root, flist, listing)
    for f in findings:
        print(f"forbidden {f.kind}: {f.path}: {f.why}")
    print(f"{len(findings)} forbidden item(s) in {root}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
