"""The forbidden-item audit (core.offline_audit) on synthetic root file systems.

Kernel modules are real ELF relocatable objects written here (a symbol table with the
imported kernel symbols), so the symbol reader is tested on the format the kernel uses; the
image's real modules are audited by the build and in the guest (``make iso-test``).
"""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from core import offline_audit as A

ROOT = Path(__file__).resolve().parents[2]
LIST = ROOT / "iso_build" / "forbidden.toml"


def elf_object(undefined: list[str], defined: list[str] = ()) -> bytes:  # type: ignore[assignment]
    """A minimal ELF64 LE relocatable with .symtab/.strtab/.shstrtab."""
    strtab = b"\0"
    offsets = {}
    for name in [*undefined, *defined]:
        offsets[name] = len(strtab)
        strtab += name.encode() + b"\0"
    shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0.text\0"
    text = b"\xc3" * 16
    syms = bytes(24)  # the null symbol
    for name in undefined:
        syms += struct.pack("<IBBHQQ", offsets[name], 0x10, 0, 0, 0, 0)  # GLOBAL NOTYPE UNDEF
    for name in defined:
        syms += struct.pack("<IBBHQQ", offsets[name], 0x12, 0, 4, 0, 1)  # GLOBAL FUNC in .text
    body = text + syms + strtab + shstrtab
    off_text = 64
    off_sym = off_text + len(text)
    off_str = off_sym + len(syms)
    off_shstr = off_str + len(strtab)
    shoff = 64 + len(body)
    shoff += (-shoff) % 8
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 5, 3)
    sections = bytes(64)  # null section
    sections += struct.pack("<IIQQQQIIQQ", 1, 2, 0, 0, off_sym, len(syms), 2, 1, 8, 24)  # .symtab
    sections += struct.pack("<IIQQQQIIQQ", 9, 3, 0, 0, off_str, len(strtab), 0, 0, 1, 0)  # .strtab
    sections += struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, off_shstr, len(shstrtab), 0, 0, 1, 0)  # .shstrtab
    sections += struct.pack("<IIQQQQIIQQ", 27, 1, 6, 0, off_text, len(text), 0, 0, 16, 0)  # .text
    data = header + body
    data += bytes(shoff - len(data))
    return data + sections


def test_elf_reader_returns_only_undefined_symbols() -> None:
    data = elf_object(["register_netdev", "printk"], ["init_module"])
    assert A.elf_undefined_symbols(data) == {"register_netdev", "printk"}
    with pytest.raises(ValueError):
        A.elf_undefined_symbols(b"not an elf file" * 10)
    with pytest.raises(ValueError):
        A.elf_undefined_symbols(data[:100])  # truncated


def test_the_shipped_list_names_what_the_issue_found() -> None:
    flist = A.load_list(LIST)
    assert {"firewire_net", "dvb_core"} <= flist.module_names
    assert {"udhcpc", "udhcpd", "wget", "nc", "telnet", "httpd", "tftp"} <= flist.applets
    assert {"register_netdev", "alloc_netdev_mqs", "alloc_etherdev_mqs"} <= flist.symbols
    assert {"kernel/drivers/net/", "kernel/net/"} <= set(flist.module_paths)
    assert {"wget", "curl", "nc", "ipconfig", "nfsmount", "dhclient"} <= flist.programs
    assert {"network-manager", "isc-dhcp-client", "openssh-client", "wpasupplicant"} <= flist.packages


def _modtree(root: Path) -> Path:
    moddir = root / "lib" / "modules" / "6.1.0-test"
    files = {
        "kernel/drivers/firewire/firewire-net.ko": elf_object(["printk"]),  # by name
        "kernel/drivers/media/dvb-core/dvb-core.ko": elf_object(["printk"]),  # by dir and name
        "kernel/drivers/net/ethernet/e1000.ko": elf_object(["printk"]),  # by directory
        "kernel/drivers/tty/synclink_gt.ko": elf_object(["register_netdev", "printk"]),  # symbol
        "kernel/drivers/usb/storage/usb-storage.ko": elf_object(["printk", "scsi_add_host"]),
        "kernel/drivers/media/dvb-frontends/tda10021.ko": elf_object(["printk"]),  # needs dvb-core
        "kernel/drivers/misc/xz-compressed.ko.xz": lzma.compress(elf_object(["alloc_etherdev_mqs"])),
    }
    for rel, data in files.items():
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        (moddir / rel).write_bytes(data)
    (moddir / "modules.dep").write_text(
        "kernel/drivers/usb/storage/usb-storage.ko:\n"
        "kernel/drivers/media/dvb-frontends/tda10021.ko: kernel/drivers/media/dvb-core/dvb-core.ko\n"
    )
    return moddir


def test_modules_found_by_name_directory_symbol_and_dependency(tmp_path: Path) -> None:
    moddir = _modtree(tmp_path)
    found = A.forbidden_modules(moddir, A.load_list(LIST))
    assert set(found) == {
        "kernel/drivers/firewire/firewire-net.ko",
        "kernel/drivers/media/dvb-core/dvb-core.ko",
        "kernel/drivers/net/ethernet/e1000.ko",
        "kernel/drivers/tty/synclink_gt.ko",
        "kernel/drivers/media/dvb-frontends/tda10021.ko",
        "kernel/drivers/misc/xz-compressed.ko.xz",
    }
    assert found["kernel/drivers/tty/synclink_gt.ko"] == "imports register_netdev"
    assert found["kernel/drivers/media/dvb-frontends/tda10021.ko"].startswith("depends on")
    removed = A.strip_modules(tmp_path, A.load_list(LIST))
    assert len(removed) == 6
    assert (moddir / "kernel/drivers/usb/storage/usb-storage.ko").exists()
    assert A.audit(tmp_path, A.load_list(LIST)) == []


def test_programs_busybox_and_packages_are_found_on_files(tmp_path: Path) -> None:
    flist = A.load_list(LIST)
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "sbin").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "klibc" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")  # merged /usr: searched once
    (tmp_path / "usr" / "bin" / "wget").write_text("#!/bin/sh\n")
    (tmp_path / "usr" / "bin" / "ls").write_bytes(b"\x7fELF" + b"\0" * 100)
    (tmp_path / "usr" / "lib" / "klibc" / "bin" / "ipconfig").write_bytes(b"\x7fELF")
    # an ELF file carrying busybox's banner, that cannot be asked for its applets here
    (tmp_path / "usr" / "sbin" / "bb").write_bytes(b"\x7fELF" + b"\0" * 64 + b"BusyBox v1.35.0 (Debian)")
    status = tmp_path / "var" / "lib" / "dpkg"
    status.mkdir(parents=True)
    (status / "status").write_text(
        "Package: wget\nStatus: install ok installed\nVersion: 1\n\n"
        "Package: curl\nStatus: deinstall ok config-files\nVersion: 1\n\n"
        "Package: pcscd\nStatus: install ok installed\nVersion: 1\n"
    )
    found = {(f.kind, f.path) for f in A.audit(tmp_path, flist)}
    assert found == {
        ("package", "wget"),
        ("program", "/usr/bin/wget"),
        ("program", "/usr/lib/klibc/bin/ipconfig"),
        ("busybox", "/usr/sbin/bb"),
    }
    removed = A.strip_programs(tmp_path, flist)
    assert len(removed) == 3 and not (tmp_path / "usr" / "sbin" / "bb").exists()
    assert (tmp_path / "usr" / "bin" / "ls").exists()


def test_busybox_applets_are_read_from_the_binary(tmp_path: Path) -> None:
    # Any executable answering --list stands in for busybox (the real one is audited in the
    # guest); a busybox with only harmless applets is not a finding.
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\nprintf 'ls\\nwget\\nudhcpc\\n'\n")
    fake.chmod(0o755)
    assert A.busybox_applets(fake) == ["ls", "udhcpc", "wget"]


def test_initramfs_listing_is_checked_for_network_modules() -> None:
    flist = A.load_list(LIST)
    listing = [
        "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/usb/storage/usb-storage.ko",
        "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/net/virtio_net.ko",
        "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/firewire/firewire-net.ko",
        "usr/bin/busybox",
    ]
    found = A.audit(Path("/nonexistent-root"), flist, listing)
    assert [f.path for f in found] == [
        "initramfs:usr/lib/modules/6.1.0-57-amd64/kernel/drivers/net/virtio_net.ko",
        "initramfs:usr/lib/modules/6.1.0-57-amd64/kernel/drivers/firewire/firewire-net.ko",
    ]


def test_command_line_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert A.main(["audit", str(tmp_path), str(LIST)]) == 0
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "telnet").write_text("")
    assert A.main(["audit", str(tmp_path), str(LIST)]) == 1
    assert "forbidden program: /usr/bin/telnet" in capsys.readouterr().out
    assert A.main(["bogus"]) == 2
