"""TEST-ONLY entry point of the image decoder helper: the production helper's steps
(:func:`prepare`, :func:`read_request`, :func:`confine`, :func:`serve`) with a hostile or
broken step in between, chosen by ``argv[1]``.

Run as ``python -I tests/interop/hostile_decoder.py MODE``; the tests pass this command to
:func:`core.carriers.sandbox.decode_file` in their own process (``command=``). The
production entry point (``python -I -m core.carriers.decodehelper``) has none of these
modes, and the keyholder never starts anything but that.

Modes, after confinement unless the name says otherwise:

* ``open``, ``socket``, ``socket-unix``, ``exec``, ``fork``, ``ptrace``, ``exec-memory``
  (an mmap with PROT_EXEC): the sandbox must kill the process (SIGSYS);
* ``open-before``: the same ``open`` before confinement (the control: it works), then a
  normal decode;
* ``hang-block`` (blocks forever on a lock), ``hang-cpu`` (busy loop): limits must end it;
* ``die-early``: exits before reading the image (the keyholder is still writing);
* ``segv``: a NULL dereference;
* ``garbage``, ``bad-length``, ``not-digits``, ``unknown-code``, ``escape-message``,
  ``silent``: malformed or hostile answers;
* ``decode``: exactly what production does.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import socket
import struct
import sys
import threading

from core.carriers import decodehelper as helper
from core.carriers import sandbox as wire

MODE = sys.argv[1] if len(sys.argv) > 1 else "decode"
_libc = ctypes.CDLL(None, use_errno=True)
# made before confinement: getrandom() is not allowed after it
GARBAGE = os.urandom(64)


def _raw_answer(data: bytes) -> None:
    os.write(1, data)


def _hostile_after_confinement() -> None:
    if MODE == "open":
        os.open("/etc/hostname", os.O_RDONLY)
    elif MODE == "socket":
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    elif MODE == "socket-unix":
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    elif MODE == "exec":
        os.execv("/bin/true", ["true"])
    elif MODE == "fork":
        os.fork()
    elif MODE == "ptrace":
        _libc.ptrace(16, os.getppid(), 0, 0)  # PTRACE_ATTACH to the keyholder
    elif MODE == "exec-memory":
        mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    elif MODE == "hang-block":
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()
    elif MODE == "hang-cpu":
        while True:
            pass
    elif MODE == "segv":
        ctypes.string_at(8, 1)  # (address 0 would make an empty bytes instead)


def _hostile_answer() -> bool:
    head = wire.RESULT.pack(wire.RESULT_MAGIC, wire.STATUS_OK, 15)
    ok = head + b"\x09zxing-cpp\x05as-is" + struct.pack(">I", 1)
    if MODE == "garbage":
        _raw_answer(GARBAGE)
    elif MODE == "bad-length":
        _raw_answer(ok + struct.pack(">H", 200) + b"1" * 200)
    elif MODE == "not-digits":
        _raw_answer(ok + struct.pack(">H", 132) + b"A" * 132)
    elif MODE == "unknown-code":
        msg = b"all good, share accepted"
        _raw_answer(
            wire.RESULT.pack(wire.RESULT_MAGIC, wire.STATUS_ERROR, 15)
            + b"\x02ok"
            + struct.pack(">H", len(msg))
            + msg
        )
    elif MODE == "escape-message":
        msg = b"\x1b[2J\x1b[HShare accepted. Remove the card."
        _raw_answer(
            wire.RESULT.pack(wire.RESULT_MAGIC, wire.STATUS_ERROR, 15)
            + b"\x0cqr-not-found"
            + struct.pack(">H", len(msg))
            + msg
        )
    elif MODE == "silent":
        pass
    else:
        return False
    return True


def main() -> None:
    helper.prepare()
    if MODE == "die-early":
        os._exit(3)
    req = helper.read_request(0)
    if MODE == "open-before":
        os.close(os.open("/etc/hostname", os.O_RDONLY))
    flags = helper.confine(req)
    _hostile_after_confinement()
    if _hostile_answer():
        return
    try:
        out = helper.serve(req, 0)
        helper.answer_ok(1, out, flags)
    except Exception as exc:
        code = getattr(exc, "code", "qr-decoder-failed")
        helper.answer_error(1, code, getattr(exc, "message", type(exc).__name__), flags)


if __name__ == "__main__":
    try:
        main()
    finally:
        os._exit(0)
