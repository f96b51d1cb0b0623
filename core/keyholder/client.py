"""The parent's side of the keyholder: start it, talk to it, stop it.

The client never receives secret bytes: the protocol forbids SECRET fields in replies
and :meth:`KeyholderClient.call` raises :class:`ProtocolError` if one arrives. Secret
*inputs* (typed words, PINs, passphrases) are passed as :class:`Secret` wrapping a
memoryview of the parent's own locked buffer and written with ``writev`` (no copy).
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from core.keyholder import ops_core as core_ops
from core.keyholder.errors import KeyholderDied, KeyholderError, error_class
from core.keyholder.protocol import (
    HEADER,
    KIND_ERROR,
    KIND_OK,
    KIND_REQUEST,
    FieldType,
    ProtocolError,
    Secret,
    decode_fields,
    encode_fields,
    pack_header,
    public_value,
    unpack_header,
)

__all__ = ["KeyholderClient", "Secret", "SocketKeyholder"]


class _SocketEnd:
    """``stdin``/``stdout`` of a keyholder reached over a socket: closing "stdin" ends the
    requests (the keyholder reads EOF, wipes and exits), closing "stdout" closes the socket
    once the keyholder has gone (see :meth:`SocketKeyholder.wait`)."""

    def __init__(self, owner: SocketKeyholder, write_side: bool) -> None:
        self._owner = owner
        self._write_side = write_side

    def fileno(self) -> int:
        return self._owner.sock.fileno()

    def close(self) -> None:
        if self._write_side:
            self._owner.shutdown_write()


class SocketKeyholder:
    """The subset of ``subprocess.Popen`` the client uses, for a keyholder reached over a
    socket (started by the keyholder launcher, :mod:`core.keyholder.launcher`).

    A keyholder started by the launcher service is another user's process: the UI can
    neither signal nor wait for it. It ends when its socket does (it reads EOF, wipes
    everything and exits), so ``send_signal`` shuts the socket down (or signals the
    local launcher's child, which the root UI may) and ``wait`` waits for the socket's EOF.
    """

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.sock = sock
        self.popen = proc
        self.stdin = _SocketEnd(self, True)
        self.stdout = _SocketEnd(self, False)
        self.returncode: int | None = None
        self.pid: int = proc.pid if proc is not None else 0

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _eof(self, timeout: float) -> bool:
        """Drain the socket until EOF (True) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ready, _w, _x = select.select([self.sock], [], [], max(0.0, left))
            except (OSError, ValueError):
                return True
            if not ready:
                return False
            try:
                if not self.sock.recv(65536):
                    return True
            except OSError:
                return True

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            rc = self.popen.poll()
            if rc is not None:
                self._finish(rc)
            return rc
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if data:
            return None
        self._finish(0)
        return 0

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            rc = self.popen.wait(timeout)
            self._finish(rc)
            return rc
        if not self._eof(3600.0 if timeout is None else timeout):
            raise subprocess.TimeoutExpired("keyholder", timeout or 0.0)
        self._finish(0)
        return 0

    def _finish(self, rc: int) -> None:
        self.returncode = rc
        try:
            self.sock.close()
        except OSError:
            pass

    def send_signal(self, sig: int) -> None:
        if self.popen is not None:
            self.popen.send_signal(sig)
            return
        # another user's process: end its connection instead (it wipes and exits on EOF)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class KeyholderClient:
    """A running keyholder process and the pipes (or the socket) to it."""

    def __init__(self, proc: subprocess.Popen[bytes] | SocketKeyholder) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._w = proc.stdin.fileno()
        self._r = proc.stdout.fileno()
        self._lock = threading.Lock()
        self.info: dict[str, Any] = {}

    @classmethod
    def start(
        cls,
        *,
        allow_unlocked: bool = False,
        practice: bool = False,
        env: Mapping[str, str] | None = None,
        stderr: int | IO[bytes] | None = subprocess.DEVNULL,
        pkcs11_modules: Sequence[str] | Mapping[str, str] | None = None,
        terminal: str | int | None = None,
        demo: bool | None = None,
    ) -> KeyholderClient:
        """Start a fresh keyholder (``python -I -m core.keyholder``; never a fork of the UI).

        Args:
            allow_unlocked: permit the demo fallback when memory cannot be locked.
            practice: mark every key it makes as a PRACTICE key.
            env: environment for the child (default: a minimal copy of ours).
            stderr: where the child's diagnostics go (never secrets).
            pkcs11_modules: the PKCS#11 modules the keyholder may load, fixed for its
                whole life: names from :data:`core.carriers.modules.MODULES` (resolved to
                their installed paths here), or ``{name: path}``. Default: every real
                module, plus the SoftHSM2 software token in demo or practice mode
                (:func:`core.carriers.modules.default_names`).
            terminal: the display terminal (a path such as ``/dev/tty``, or an open
                descriptor), opened here and handed to the keyholder at spawn
                (``--terminal-fd``): shares are shown there and nowhere else, whatever a
                later request says (:mod:`core.keyholder.terminal`). ``None``: none (the
                keyholder then refuses to show a share).
            demo: demo mode (a pseudo-terminal is then allowed, with a DEMO notice).
                Default: ``allow_unlocked``.

        Raises:
            OSError: ``terminal`` cannot be opened.
        """
        from core.carriers import modules as _modules

        args = [sys.executable, "-I", "-m", "core.keyholder"]
        if allow_unlocked:
            args.append("--allow-unlocked")
        if practice:
            args.append("--practice")
        if pkcs11_modules is None:
            pkcs11_modules = _modules.default_names(demo=allow_unlocked or practice)
        paths = (
            dict(pkcs11_modules)
            if isinstance(pkcs11_modules, Mapping)
            else _modules.resolve(pkcs11_modules)
        )
        for name, path in sorted(paths.items()):
            args += ["--pkcs11-module", f"{name}={path}"]
        if allow_unlocked if demo is None else demo:
            args.append("--demo")
        term_fd = -1
        if terminal is not None:
            opened = (
                terminal
                if isinstance(terminal, int)
                else os.open(terminal, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
            )
            try:  # a copy above 2 (the keyholder's stdin/stdout/stderr are taken)
                term_fd = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, 3)
            finally:
                if not isinstance(terminal, int):
                    os.close(opened)
        if term_fd >= 0:
            args += ["--terminal-fd", str(term_fd)]
        child_env = dict(env) if env is not None else _clean_env(os.environ)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=child_env,
                close_fds=True,
                pass_fds=(term_fd,) if term_fd >= 0 else (),
                start_new_session=False,
            )
        finally:
            if term_fd >= 0:
                os.close(term_fd)
        client = cls(proc)
        try:
            client.info = client.call(core_ops.HELLO)
        except Exception:
            client.kill()
            raise
        return client

    @classmethod
    def over_socket(
        cls, sock: socket.socket, *, proc: subprocess.Popen[bytes] | None = None
    ) -> KeyholderClient:
        """A keyholder the launcher started (:mod:`core.keyholder.launcher`), reached over
        ``sock`` after the launcher's answer; ``proc`` is the local launcher's child, if any.
        """
        transport = SocketKeyholder(sock, proc)
        client = cls(transport)
        try:
            client.info = client.call(core_ops.HELLO)
        except Exception:
            client.kill()
            raise
        if not transport.pid:
            pid = client.info.get("pid")
            transport.pid = pid if isinstance(pid, int) else 0
        return client

    @property
    def pid(self) -> int:
        """The keyholder's process id."""
        return self.proc.pid

    def _send(self, opcode: int, fields: Mapping[str, Any]) -> None:
        parts = encode_fields(fields, allow_secret=True)
        length = sum(memoryview(p).nbytes for p in parts)
        bufs = [memoryview(pack_header(KIND_REQUEST, opcode, length))]
        bufs += [memoryview(p).cast("B") for p in parts if len(p)]
        while bufs:
            n = os.writev(self._w, bufs)
            while n:
                if n >= bufs[0].nbytes:
                    n -= bufs[0].nbytes
                    bufs.pop(0)
                else:
                    bufs[0] = bufs[0][n:]
                    n = 0

    def _recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._r, n)
            if not chunk:
                raise KeyholderDied(
                    "the keyholder process ended; every secret it held is gone. "
                    "Restart the step (shares must be entered again)."
                )
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, opcode: int, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply's public fields.

        Raises:
            KeyholderError: (or a subclass) the keyholder refused, with its message.
            ProtocolError: the reply was malformed or carried a secret field.
        """
        with self._lock:
            try:
                self._send(opcode, fields)
            except (BrokenPipeError, OSError) as exc:
                raise KeyholderDied("the keyholder process is not running") from exc
            kind, r_opcode, length = unpack_header(self._recv_exact(HEADER.size))
            payload = self._recv_exact(length)
        decoded = decode_fields(memoryview(payload))
        out: dict[str, Any] = {}
        for name, (ftype, view) in decoded.items():
            if ftype == FieldType.SECRET:
                raise ProtocolError(f"the keyholder sent a secret field {name!r}; refusing it")
            out[name] = public_value(ftype, view)
        if kind == KIND_ERROR:
            code = str(out.get("code", KeyholderError.code))
            set_id = out.get("set_id")
            raise error_class(code)(
                str(out.get("message", "keyholder error")),
                code=code,
                set_id=str(set_id) if set_id is not None else None,
            )
        if kind != KIND_OK or (r_opcode != opcode):
            raise ProtocolError("reply does not match the request")
        return out

    # Core operations -----------------------------------------------------------------
    # ``key`` (``"old"``/``"new"``): which MasterKey, required in a rotation and refused
    # outside one (core.keyholder.ops_rotation); None sends no ``key`` field.

    @staticmethod
    def _key(key: str | None) -> dict[str, Any]:
        return {} if key is None else {"key": key}

    def generate_master(self, *, key: str | None = None) -> dict[str, Any]:
        """Generate the MasterKey in the keyholder (in a rotation: ``key="new"``); returns
        its public fingerprint."""
        return self.call(core_ops.GENERATE_MASTER, **self._key(key))

    def fingerprint(self, *, key: str | None = None) -> dict[str, Any]:
        """Public fingerprint (hex, KCV, words) of the held MasterKey (or the named one)."""
        return self.call(core_ops.FINGERPRINT, **self._key(key))

    def sign(self, purpose: str, message: bytes, *, key: str | None = None) -> bytes:
        """Ed25519 signature by the MasterKey-derived key over a public message.

        ``purpose`` is one of :data:`core.keyholder.ops_core.SIGN_PURPOSES` (but not the
        rotation statement's); verify with
        ``verify_signature(fingerprint, ops_core.signed_bytes(purpose, message), sig)``.
        Use :meth:`sign_reply` to get the signer's fingerprint facts too.
        """
        sig = self.sign_reply(purpose, message, key=key)["signature"]
        assert isinstance(sig, bytes)
        return sig

    def sign_reply(self, purpose: str, message: bytes, *, key: str | None = None) -> dict[str, Any]:
        """The whole SIGN reply: ``signature`` and the signing key's ``fingerprint``,
        ``kcv``, ``kcv_words`` (and ``key`` in a rotation)."""
        return self.call(core_ops.SIGN, purpose=purpose, message=message, **self._key(key))

    def kcv_confirm(self, witness: str, kcv: str, *, key: str | None = None) -> dict[str, Any]:
        """A witness confirmed the held key's KCV (``kcv``: the words, KCV hex or the full
        fingerprint they compared); refused when it does not match the key."""
        return self.call(core_ops.KCV_CONFIRM, witness=witness, kcv=kcv, **self._key(key))

    def status(self) -> dict[str, Any]:
        """Public status of the keyholder."""
        return self.call(core_ops.STATUS)

    def wipe(self, *, keep_signing_key: bool = False, key: str | None = None) -> dict[str, Any]:
        """Wipe every secret the keyholder holds, both keys of a rotation included (it
        keeps running).

        ``keep_signing_key``: keep only the MasterKey-derived signing key, to sign the
        journal's final hash and the transcript once the journal is closed (then it is
        wiped); see :func:`core.keyholder.ops_core.wipe`. In a rotation ``key`` says whose.
        """
        return self.call(core_ops.WIPE, keep_signing_key=keep_signing_key, **self._key(key))

    # Lifecycle -----------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> int:
        """Ask for a wipe, close the pipes (the keyholder wipes again and exits)."""
        if self.proc.poll() is None:
            try:
                self.wipe()
            except KeyholderError:
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGTERM (the keyholder wipes and exits 143)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)

    def __enter__(self) -> KeyholderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "SOFTHSM2_CONF", "KCM_SECMEM_BACKEND", "TZ")


def _clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the UI side (TEXTUAL_*, PYTHON*) leaks in."""
    env = {k: v for k, v in environ.items() if k in _KEEP_ENV or k.startswith("KCM_")}
    # numeric libraries (QR decoding) must not start worker threads in the keyholder
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return env
