"""Memory-scan fixture: count copies of secrets in another process's memory.

A root test process reads ``/proc/PID/smaps`` and ``/proc/PID/mem`` of a child and looks
for every encoding of each secret: raw bytes, hex (lower and upper), base64 (standard and
URL-safe, at every 3-byte alignment), CPython's int digit arrays (30-bit digits of the
value read big- and little-endian) and, for text secrets (mnemonics), their UTF-8 and
UTF-32/UTF-16 forms. Each hit records the mapping it lies in and whether that mapping is
locked (``lo``) and excluded from dumps (``dd``), so a test can assert both "0 copies after
wipe" and "while live, every copy is inside the locked mapping".

:func:`trap_exit` stops a process at the moment of exit (ptrace ``PTRACE_O_TRACEEXIT``:
after its last instruction, before the kernel frees its memory), so a test can prove that
a SIGTERM-ed keyholder wiped before dying. No hook in the product is needed for it.

Everything here needs root (CAP_SYS_PTRACE) because the keyholder is non-dumpable.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import os
import re
import signal
import struct
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

MIN_PATTERN = 12  # shorter fragments would match by chance in 100 MB of memory

_SMAPS_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


@dataclass
class Mapping_:
    start: int
    end: int
    perms: str
    path: str
    flags: set[str] = field(default_factory=set)

    @property
    def locked(self) -> bool:
        return "lo" in self.flags

    @property
    def dontdump(self) -> bool:
        return "dd" in self.flags

    @property
    def secretmem(self) -> bool:
        return "secretmem" in self.path


@dataclass(frozen=True)
class Hit:
    secret: str
    encoding: str
    address: int
    mapping: str
    locked: bool
    dontdump: bool


@dataclass
class ScanResult:
    pid: int
    hits: list[Hit]
    unreadable: list[str]
    bytes_scanned: int

    def count(self, secret: str | None = None) -> int:
        return sum(1 for h in self.hits if secret is None or h.secret == secret)

    def outside_locked(self) -> list[Hit]:
        """Hits not inside a locked, no-dump mapping."""
        return [h for h in self.hits if not (h.locked and h.dontdump)]

    def summary(self) -> str:
        by: dict[tuple[str, str], int] = {}
        for h in self.hits:
            by[(h.secret, h.encoding)] = by.get((h.secret, h.encoding), 0) + 1
        return ", ".join(f"{s}/{e}: {n}" for (s, e), n in sorted(by.items())) or "no hits"


def _int_digits(value: int) -> bytes:
    """CPython's in-memory digit array for a non-negative int (30-bit digits, LE u32)."""
    out = bytearray()
    while value:
        out += struct.pack("<I", value & ((1 << 30) - 1))
        value >>= 30
    return bytes(out)


def encodings(secret: bytes | str) -> dict[str, bytes]:
    """All encodings of one secret to search for (patterns shorter than 12 bytes dropped)."""
    pats: dict[str, bytes] = {}
    if isinstance(secret, str):
        pats["utf8"] = secret.encode()
        pats["utf16"] = secret.encode("utf-16-le")
        pats["utf32"] = secret.encode("utf-32-le")
        raw = secret.encode()
    else:
        raw = bytes(secret)
        pats["raw"] = raw
        pats["hex"] = raw.hex().encode()
        pats["HEX"] = raw.hex().upper().encode()
        for k in range(3):
            b64 = base64.b64encode(raw[k:]).rstrip(b"=")
            # the last 1-2 characters depend on padding; the interior is fixed
            pats[f"b64@{k}"] = b64[:-2]
            pats[f"b64url@{k}"] = base64.urlsafe_b64encode(raw[k:]).rstrip(b"=")[:-2]
        for order in ("big", "little"):
            digits = _int_digits(int.from_bytes(raw, order))  # type: ignore[arg-type]
            # drop the top digit: its width depends on the value
            pats[f"int-{order}"] = digits[:-4]
    return {k: v for k, v in pats.items() if len(v) >= MIN_PATTERN}


def read_mappings(pid: int) -> list[Mapping_]:
    maps: list[Mapping_] = []
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _SMAPS_HEAD.match(line)
            if m and not line.startswith("VmFlags"):
                maps.append(Mapping_(int(m[1], 16), int(m[2], 16), m[3], m[4].strip()))
            elif line.startswith("VmFlags:") and maps:
                maps[-1].flags = set(line.split()[1:])
    return maps


def iter_memory(pid: int, maps: Iterable[Mapping_], unreadable: list[str]) -> Iterator[tuple[Mapping_, int, bytes]]:
    """Yield (mapping, address, data) for every readable region, in 16 MiB chunks."""
    chunk = 16 << 20
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for mp in maps:
            if not mp.perms.startswith("r") and not mp.secretmem:
                continue
            if mp.path in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            addr = mp.start
            while addr < mp.end:
                n = min(chunk, mp.end - addr)
                try:
                    data = os.pread(fd, n, addr)
                except OSError as exc:
                    unreadable.append(f"{mp.path or 'anon'}@{addr:#x}: {exc.strerror}")
                    break
                if not data:
                    unreadable.append(f"{mp.path or 'anon'}@{addr:#x}: empty read")
                    break
                yield mp, addr, data
                addr += len(data)
    finally:
        os.close(fd)


def scan(pid: int, secrets: Mapping[str, bytes | str]) -> ScanResult:
    """Count every encoding of every secret in the memory of ``pid``."""
    patterns = [(name, enc, pat) for name, s in secrets.items() for enc, pat in encodings(s).items()]
    maps = read_mappings(pid)
    hits: list[Hit] = []
    unreadable: list[str] = []
    total = 0
    overlap = max((len(p) for _, _, p in patterns), default=0)
    prev_tail = b""
    prev_end = -1
    for mp, addr, data in iter_memory(pid, maps, unreadable):
        total += len(data)
        # join with the previous chunk when contiguous so that a pattern across a chunk
        # boundary is found once
        if addr == prev_end and prev_tail:
            buf, base = prev_tail + data, addr - len(prev_tail)
        else:
            buf, base = data, addr
        for name, enc, pat in patterns:
            start = 0
            while True:
                i = buf.find(pat, start)
                if i < 0:
                    break
                where = base + i
                if where + len(pat) > addr:  # not entirely inside the already-scanned tail
                    hits.append(Hit(name, enc, where, mp.path or "[anon]", mp.locked, mp.dontdump))
                start = i + 1
        prev_tail = data[-overlap:] if overlap else b""
        prev_end = addr + len(data)
    return ScanResult(pid, hits, unreadable, total)


def locked_secret_candidates(pid: int, size: int = 32) -> list[bytes]:
    """Read the first ``size`` bytes of every small no-dump (MADV_DONTDUMP) mapping that is
    not all zero: with the mlock backend these are the keyholder's SecretBuffers."""
    out: list[bytes] = []
    maps = [m for m in read_mappings(pid) if m.dontdump and m.end - m.start <= 64 * 4096]
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for m in maps:
            try:
                data = os.pread(fd, size, m.start)
            except OSError:
                continue
            if any(data):
                out.append(data)
    finally:
        os.close(fd)
    return out


# ptrace: stop a process at exit -----------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long
PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
__WALL = 0x40000000


def _ptrace(req: int, pid: int, addr: int = 0, data: int = 0) -> None:
    if _libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({req:#x}) on {pid}: {os.strerror(err)}")


@contextmanager
def trap_exit(pid: int) -> Iterator[callable]:  # type: ignore[valid-type]
    """Seize ``pid`` so that it stops at the moment of exit.

    Yields ``wait_for_exit_stop()``: call it after making the process exit (e.g. after
    sending SIGTERM); it forwards any signal stops, returns once the process is stopped in
    PTRACE_EVENT_EXIT with its memory intact, and the caller scans it then. On leaving the
    context the process is released and finishes exiting.
    """
    _ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACEEXIT)
    state = {"at_exit": False}

    def wait_for_exit_stop(timeout_loops: int = 1000) -> None:
        for _ in range(timeout_loops):
            _, status = os.waitpid(pid, __WALL)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                raise AssertionError("process exited without an exit stop")
            if not os.WIFSTOPPED(status):
                continue
            event = status >> 16
            sig = os.WSTOPSIG(status)
            if event == PTRACE_EVENT_EXIT:
                state["at_exit"] = True
                return
            # signal-delivery-stop: deliver the signal as the kernel would have
            inject = sig if sig != signal.SIGTRAP else 0
            _ptrace(PTRACE_CONT, pid, 0, inject)
        raise AssertionError("no exit stop observed")

    try:
        yield wait_for_exit_stop
    finally:
        try:
            _ptrace(PTRACE_DETACH, pid, 0, 0)
        except OSError:
            pass


def is_root() -> bool:
    return os.geteuid() == 0
