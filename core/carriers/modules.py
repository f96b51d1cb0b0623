"""PKCS#11 modules: named in scripts, fixed when the keyholder starts, checked before loading.

A PKCS#11 module is a shared library: loading it runs its code inside the process, and in
the keyholder that process holds the MasterKey. So a module is never chosen by a path that
arrives later (a script, a recipients file, a request): scripts *name* one of
:data:`MODULES`, the launcher resolves the names it allows to paths from this fixed table
and passes them to the keyholder on its command line when it is spawned
(``--pkcs11-module NAME=PATH``), and the keyholder refuses every other module, even when
its client asks for a path directly.

Before a module is loaded (:func:`open_module`), the file and every folder above it must be
owned by root, not writable by group or others, and on the root filesystem (the mount of
``/``, compared by mount id: not on a USB stick, not on a separately mounted tmpfs). The file is opened once (``O_NOFOLLOW``
on the resolved path), checked through that descriptor, and that very file is loaded
through ``/proc/self/fd/N``: swapping the file after the check changes nothing.

What this does not cover: the vendor module itself (OpenSC, Yubico's ykcs11) runs inside
the keyholder with access to its memory (docs/threat-model.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from core import safeio
from core.errors import KcmError

__all__ = [
    "DEMO_ONLY",
    "MODULES",
    "ModuleRefused",
    "OpenedModule",
    "check_module_file",
    "default_names",
    "describe_names",
    "open_module",
    "resolve",
]

#: The PKCS#11 modules a script may name, and where Debian (x86_64) installs them.
MODULES: Final[Mapping[str, tuple[str, ...]]] = {
    "opensc": (
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    ),
    "ykcs11": (
        "/usr/lib/x86_64-linux-gnu/libykcs11.so",
        "/usr/lib/x86_64-linux-gnu/libykcs11.so.2",
    ),
    "softhsm2": (
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ),
}
#: Software tokens for the demo and tests: a "card" in SoftHSM2 is a file on this
#: computer. The launcher allows it only in demo or practice mode (the ISO lacks it).
DEMO_ONLY: Final = frozenset({"softhsm2"})


class ModuleRefused(KcmError):
    """A PKCS#11 module was refused (not allowed, or its file fails the checks)."""

    code = "module-refused"


@dataclass(frozen=True)
class OpenedModule:
    """A module file opened and checked; load it from :attr:`load_path`."""

    path: str  # the resolved path that was checked
    fd: int  # kept open while the module is loaded (the /proc path stays unambiguous)

    @property
    def load_path(self) -> str:
        """``/proc/self/fd/N``: the very file that was checked."""
        return f"/proc/self/fd/{self.fd}"


def describe_names() -> str:
    """``opensc, ykcs11, softhsm2 (demo only)`` for messages."""
    return ", ".join(n + (" (demo only)" if n in DEMO_ONLY else "") for n in MODULES)


def default_names(*, demo: bool) -> tuple[str, ...]:
    """The module names a launcher allows: every real one; the software token in a demo."""
    return tuple(n for n in MODULES if demo or n not in DEMO_ONLY)


def resolve(names: Iterable[str]) -> dict[str, str]:
    """Name -> path of the installed module, for each name whose module is installed.

    Raises:
        ModuleRefused: a name is not in :data:`MODULES`.
    """
    out: dict[str, str] = {}
    for name in names:
        if name not in MODULES:
            raise ModuleRefused(
                f"unknown PKCS#11 module {name!r}: one of {describe_names()}"
            )
        for candidate in MODULES[name]:
            if os.path.exists(candidate):
                out[name] = candidate
                break
    return out


_NOT_ON_ROOT = "is not on the root filesystem (a removable medium or a scratch filesystem)"


def _problem(st: os.stat_result) -> str:
    if st.st_uid != 0:
        return f"is owned by uid {st.st_uid}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
    return ""


def _on_root(path: str, root_fd: int) -> bool:
    """True if ``path`` (not followed if a link) is on the mount of ``/``: compared by the
    kernel's mount id (on the live ISO's overlayfs a file's ``st_dev`` is its layer's, not
    the root's; the mount is the same)."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return safeio.same_filesystem(fd, root_fd)
    finally:
        os.close(fd)


def check_module_file(path: str) -> tuple[str, os.stat_result]:
    """Check a module file and the folders above it; returns (resolved path, lstat).

    Raises:
        ModuleRefused: with the first problem found, naming the file or folder.
    """
    if not os.path.isabs(path):
        raise ModuleRefused(f"PKCS#11 module {path!r}: an absolute path is required")
    real = os.path.realpath(path)
    try:
        st = os.lstat(real)
    except OSError as exc:
        raise ModuleRefused(
            f"PKCS#11 module {path} not found ({exc.strerror}): install the card's middleware "
            "(opensc, ykcs11) or pick another module"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise ModuleRefused(f"PKCS#11 module {real} is not a regular file")
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        why = _problem(st) or ("" if _on_root(real, root_fd) else _NOT_ON_ROOT)
        if why:
            raise ModuleRefused(
                f"PKCS#11 module {real} {why}: refused (it would run in the keyholder)"
            )
        folder = os.path.dirname(real)
        while True:
            why = _problem(os.lstat(folder)) or (
                "" if _on_root(folder, root_fd) else _NOT_ON_ROOT
            )
            if why:
                raise ModuleRefused(
                    f"PKCS#11 module {real}: its folder {folder} {why}: refused (the module "
                    "could be replaced)"
                )
            if folder == "/":
                break
            folder = os.path.dirname(folder)
    finally:
        os.close(root_fd)
    return real, st


def open_module(path: str) -> OpenedModule:
    """Check a module and open it once; load it from ``OpenedModule.load_path``.

    Raises:
        ModuleRefused: the checks fail, or the file changed between the checks and the open.
    """
    real, st = check_module_file(path)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ModuleRefused(f"PKCS#11 module {real} cannot be opened ({exc.strerror})") from None
    fst = os.fstat(fd)
    why = "" if stat.S_ISREG(fst.st_mode) else "is not a regular file"
    why = why or _problem(fst)
    if not why:
        root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            why = "" if safeio.same_filesystem(fd, root_fd) else _NOT_ON_ROOT
        finally:
            os.close(root_fd)
    if not why and (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        why = "was replaced while it was being checked"
    if why:
        os.close(fd)
        raise ModuleRefused(f"PKCS#11 module {real} {why}: refused")
    return OpenedModule(real, fd)
