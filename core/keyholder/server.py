"""The keyholder process: a small loop that reads framed requests from a pipe and answers.

Run as ``python -I -m core.keyholder [--allow-unlocked] [--practice] [--pkcs11-module
NAME=PATH ...] [--terminal-fd N] [--demo]`` with the request pipe on stdin and the reply pipe on
stdout (the client does this), or a socket on both (the keyholder launcher,
:mod:`core.keyholder.launcher`). The PKCS#11 modules it may load are fixed by these options;
``--terminal-fd`` is the custodian terminal its launcher opened for it: shares are shown
there and nowhere else (:mod:`core.keyholder.terminal`); ``--demo`` allows that terminal to be
a pseudo-terminal, with a DEMO notice. It hardens itself
before anything else, reads every payload straight into a locked receive buffer (so secret
fields never exist as ``bytes``), wipes that buffer after each request, and on EOF (the
parent is gone), SIGTERM, SIGINT or SIGHUP wipes everything and exits.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from core import secmem
from core.errors import KcmError, crosses_wire
from core.keyholder import harden as _harden
from core.keyholder import terminal as _terminal
from core.keyholder.errors import MalformedRequest, UnknownOperation
from core.keyholder.ops import OPS, KeyholderState, Request
from core.keyholder.protocol import (
    HEADER,
    KIND_ERROR,
    KIND_OK,
    KIND_REQUEST,
    MAX_PAYLOAD,
    ProtocolError,
    decode_fields,
    encode_fields,
    pack_header,
    unpack_header,
)

__all__ = ["AREA_MODULES", "main", "parse_modules", "serve"]

#: Modules that register operations. Missing ones are skipped (a part not yet built);
#: any other import error is fatal.
AREA_MODULES = (
    "core.keyholder.ops_core",
    "core.keyholder.ops_shares",
    "core.keyholder.ops_entry",
    "core.keyholder.ops_seal",
    "core.keyholder.ops_carriers",
    "core.keyholder.ops_rotation",
)


def load_areas() -> list[str]:
    """Import the area modules; return the names loaded."""
    loaded = []
    for name in AREA_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        loaded.append(name)
    return loaded


def _read_exact(fd: int, view: memoryview) -> bool:
    """Fill ``view`` from ``fd``; False on EOF before the first byte."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            if got == 0:
                return False
            raise ProtocolError("the parent closed the pipe in the middle of a frame")
        got += n
    return True


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    bufs = [memoryview(p) for p in parts if len(p)]
    while bufs:
        n = os.writev(fd, bufs)
        while n:
            if n >= len(bufs[0]):
                n -= len(bufs[0])
                bufs.pop(0)
            else:
                bufs[0] = bufs[0][n:]
                n = 0


def _reply(fd: int, kind: int, opcode: int, fields: dict[str, Any]) -> None:
    parts = encode_fields(fields, allow_secret=False)
    length = sum(len(p) for p in parts)
    _write_all(fd, [pack_header(kind, opcode, length), *parts])


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The error frame's fields for ``exc``: code, message (and the share's set id) of an
    error that may cross the pipe (:func:`core.errors.crosses_wire`); for anything else a
    generic "internal error" naming only the exception's type, since its text could quote
    data."""
    if isinstance(exc, KcmError) and crosses_wire(exc):
        reply: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.set_id is not None:
            reply["set_id"] = str(exc.set_id)
        return reply
    return {
        "code": "internal",
        "message": f"internal error in the keyholder ({type(exc).__name__}); "
        "the secrets it holds are intact. Retry or abort the ceremony.",
    }


def serve(rfd: int, wfd: int, state: KeyholderState, info: dict[str, Any]) -> int:
    """Answer requests until EOF; returns the exit status."""
    rx = secmem.SecretBuffer(MAX_PAYLOAD, allow_unlocked=state.allow_unlocked)
    header = bytearray(HEADER.size)
    try:
        while True:
            if not _read_exact(rfd, memoryview(header)):
                return 0
            try:
                kind, opcode, length = unpack_header(header)
                if kind != KIND_REQUEST:
                    raise ProtocolError("expected a request frame")
            except ProtocolError as exc:
                # The stream can no longer be trusted to be in sync: answer and stop.
                _reply(wfd, KIND_ERROR, 0, {"code": "malformed", "message": str(exc)})
                return 3
            with rx.view(0, length) as payload:
                if not _read_exact(rfd, payload) and length:
                    return 0
                try:
                    try:
                        fields = decode_fields(payload)
                    except ProtocolError as exc:
                        raise MalformedRequest(str(exc)) from None
                    spec = OPS.get(opcode)
                    if spec is None:
                        raise UnknownOperation(f"unknown operation 0x{opcode:04x}")
                    request = Request(opcode, fields)
                    if opcode == 0x0001:
                        result = {**info, **spec.handler(state, request)}
                    else:
                        result = spec.handler(state, request)
                    del request, fields
                    if state.rotation:
                        # two keys are held: every answer names both, each with its own
                        # fingerprint and KCV, so no screen or journal row can mix them up
                        result["rotation_keys"] = state.rotation_facts()
                    _reply(wfd, KIND_OK, opcode, result)
                except Exception as exc:  # never echo str(exc) of a foreign error
                    _reply(wfd, KIND_ERROR, opcode, error_reply(exc))
                finally:
                    secmem.memset(payload)
    finally:
        state.wipe()
        rx.close()


def parse_modules(args: list[str]) -> dict[str, str]:
    """``--pkcs11-module NAME=PATH`` (repeated): the PKCS#11 modules this keyholder may
    load, given by its launcher when it is spawned and never changed by a request.

    Raises:
        SystemExit: a malformed option (the launcher is broken: refuse to start).
    """
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg != "--pkcs11-module":
            continue
        name, sep, path = (args[i + 1] if i + 1 < len(args) else "").partition("=")
        if not sep or not name or not path.startswith("/"):
            raise SystemExit("keyholder: --pkcs11-module needs NAME=/absolute/path")
        out[name] = path
    return out


def parse_terminal_fd(args: list[str]) -> int | None:
    """``--terminal-fd N``: the terminal the launcher opened for this keyholder, if any.

    Raises:
        SystemExit: malformed, or not an open terminal (the launcher is broken: refuse).
    """
    if "--terminal-fd" not in args:
        return None
    i = args.index("--terminal-fd")
    value = args[i + 1] if i + 1 < len(args) else ""
    if not value.isdigit() or int(value) < 3:
        raise SystemExit("keyholder: --terminal-fd needs a descriptor number above 2")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m core.keyholder``."""
    args = sys.argv[1:] if argv is None else argv
    terminal_fd = parse_terminal_fd(args)
    hardening = _harden.harden()
    terminal: dict[str, Any] = {}
    if terminal_fd is not None:
        try:
            terminal = _terminal.fix(terminal_fd, demo="--demo" in args).public()
        except (OSError, ValueError) as exc:
            raise SystemExit(f"keyholder: --terminal-fd {terminal_fd}: {exc}") from None
    state = KeyholderState(
        allow_unlocked="--allow-unlocked" in args,
        practice="--practice" in args,
        pkcs11_modules=parse_modules(args),
    )
    secmem.set_allow_unlocked_default(state.allow_unlocked)
    _harden.install_signal_handlers(state.wipe)
    areas = load_areas()
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "terminal": terminal,  # {} when none was given: shares cannot be shown
        "demo": "--demo" in args,
        "protocol": 1,
        "areas": areas,
        "pkcs11_modules": dict(state.pkcs11_modules),
        "hardening": {
            "core_limit_zero": hardening.core_limit_zero,
            "not_dumpable": hardening.not_dumpable,
            "pdeathsig": hardening.pdeathsig,
            "mlockall": hardening.mlockall,
            "notes": hardening.notes,
        },
    }
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    # Nothing else may write to the reply pipe: move stdout's Python object to stderr.
    sys.stdout = sys.stderr
    return serve(rfd, wfd, state, info)
