"""Who starts the keyholder, as which user, and with what: the keyholder launcher.

The UI must not decide what a keyholder may do, and on the ceremony ISO the UI runs as an
unprivileged user (``kcm``) that cannot start a process as another user. So every keyholder
is started by a privileged launcher, as its own user (``kcm-keyholder``), with what a
root-owned policy grants. Three ways, chosen by :func:`plan` (the preflight check
``privileges`` reports the choice and what could not be done):

``service``
    A launcher socket exists (the ceremony ISO: ``kcm-keyholder.socket``, a systemd socket
    unit with ``Accept=yes``, mode 0660 for group ``kcm``). The UI connects to
    :data:`SOCKET`; for that one connection systemd runs ``python -I -m
    core.keyholder.launcher serve --config /etc/kcm/keyholder.toml`` as root, with the
    connection on fds 0 and 1.
``local``
    The UI itself runs as root (``make run`` as root) and the development keyholder user
    :data:`DEV_KEYHOLDER_USER` exists and can use what the demo needs: the UI runs the same
    launcher as a child over a socket pair.
``direct``
    Otherwise :meth:`KeyholderClient.start`: the keyholder runs as the UI's own user (tests,
    ``make run`` without root or without the user).

What root does in the launcher, in order, reading nothing the UI sends:

1. loads the policy, a TOML file that must be owned by root and writable by root alone
   (``/etc/kcm/keyholder.toml`` on the ISO, :class:`Policy`);
2. checks the peer with ``SO_PEERCRED``: only the policy's client users may connect (the
   socket's file mode says the same; this is the second lock);
3. opens the policy's terminal (the custodian terminal, ``/dev/tty1`` on the ISO) and keeps
   it as fd 3 for the keyholder: requests cannot choose another one
   (:func:`core.custodian_tty.fix_terminal`);
4. raises ``RLIMIT_MEMLOCK`` to unlimited (so that the keyholder can ``mlockall`` without any
   capability), sets ``RLIMIT_CORE`` to 0, and drops to the keyholder user for good
   after ``PR_SET_NO_NEW_PRIVS`` (``setgroups``, ``setresgid``, ``setresuid``; checked: no
   capability left, ``setuid(0)`` fails).

Only then, as the keyholder user, it reads the spawn request (one line: practice? unlocked
memory?), grants only what the policy allows, answers ``OK`` or ``REFUSED <why>`` and
replaces itself with ``python -I -m core.keyholder``: the PKCS#11 modules come from the
policy (``--pkcs11-module``), never from the UI; the terminal is ``--terminal-fd 3``.

The protocol on the socket before the keyholder's own framed protocol::

    UI -> launcher   KCM-SPAWN practice=0|1 unlocked=0|1\\n
    launcher -> UI   OK <user>\\n   or   REFUSED <message>\\n

Standard library only on the launcher's side (plus :mod:`core.carriers.modules`, the fixed
table of module names); the client side imports :mod:`core.keyholder.client` when used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import pwd
import re
import resource
import socket
import stat
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from core import privsep
from core.errors import KcmError

if TYPE_CHECKING:
    from core.keyholder.client import KeyholderClient

__all__ = [
    "CONFIG",
    "DEV_KEYHOLDER_USER",
    "SOCKET",
    "LauncherError",
    "LauncherRefused",
    "Plan",
    "Policy",
    "connect",
    "load_policy",
    "main",
    "open_keyholder",
    "plan",
    "spawn_local",
]

#: The launcher service's socket on the ceremony ISO (kcm-keyholder.socket).
SOCKET: Final = "/run/kcm/keyholder.sock"
#: The launcher's policy on the ceremony ISO (root-owned).
CONFIG: Final = "/etc/kcm/keyholder.toml"
#: The keyholder's user on a development machine, when it exists (``make run`` as root).
DEV_KEYHOLDER_USER: Final = "kcm-keyholder"

SPAWN_PREFIX: Final = "KCM-SPAWN"
_REQUEST_RE: Final = re.compile(r"KCM-SPAWN practice=([01]) unlocked=([01])")
#: How long the launcher waits for the spawn request, and the UI for the answer.
REQUEST_TIMEOUT_S: Final = 30.0
ANSWER_TIMEOUT_S: Final = 120.0  # the launcher starts Python as root first (slow under emulation)
#: Pseudo-terminal majors (Unix98 ptys: 136-143); the custodian terminal is a real one.
PTY_MAJORS: Final = range(136, 144)
_PR_SET_NO_NEW_PRIVS: Final = 38
_TERMINAL_FD: Final = 3
#: Environment passed on to the keyholder (the same allow-list as a directly started one).
_KEEP_ENV: Final = ("PATH", "LANG", "LC_ALL", "SOFTHSM2_CONF", "KCM_SECMEM_BACKEND", "TZ")


class LauncherError(KcmError):
    """The launcher could not start a keyholder (the message says why and what to do)."""

    code = "keyholder-launcher"


class LauncherRefused(LauncherError):
    """The launcher refused the request (the policy does not allow it)."""

    code = "keyholder-policy"


# ------------------------------------------------------------------------------ policy


Practice = Literal["never", "on-request", "always"]


@dataclass(frozen=True)
class Policy:
    """What the launcher grants, fixed by root (never by the UI).

    Attributes:
        keyholder_user: the keyholder's user: a name, or a numeric uid (its group is the
            same number; tests).
        client_users: who may connect and ask for a keyholder (names or uids).
        practice: ``never`` (a request for practice is refused), ``on-request`` (the UI may
            ask for PRACTICE keys: a restriction, never a privilege), ``always`` (a
            rehearsal-only workstation: every key is PRACTICE).
        unlocked_memory: whether the UI may ask for the demo fallback (secrets in memory that
            is not locked); never on the ISO.
        pkcs11_modules: the PKCS#11 module names (:data:`core.carriers.modules.MODULES`)
            the keyholder may load; those installed are passed on, resolved here.
        terminal: the custodian terminal opened as root and handed over as fd 3 (``""``:
            none; the keyholder then opens the path a request names, as before).
        allow_pty: accept a pseudo-terminal as ``terminal`` (demo only: a multiplexer or an
            ssh session can keep copies of what is shown).
        memlock_unlimited: raise ``RLIMIT_MEMLOCK`` to unlimited before dropping root (the
            keyholder then locks all its memory without ``CAP_IPC_LOCK``).
        python: the keyholder's interpreter (an absolute path the keyholder user can run;
            ``""``: the launcher's own, ``/opt/kcm/venv/bin/python`` on the ISO).
        env: extra environment for the keyholder (allow-listed names only).
    """

    keyholder_user: str | int
    client_users: tuple[str | int, ...]
    practice: Practice = "on-request"
    unlocked_memory: bool = False
    pkcs11_modules: tuple[str, ...] = ("opensc", "ykcs11")
    terminal: str = ""
    allow_pty: bool = False
    memlock_unlimited: bool = True
    python: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The policy as JSON (the local launcher's command line)."""
        d = asdict(self)
        d["env"] = dict(self.env)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, where: str = "policy") -> Policy:
        """Validate a parsed policy (TOML or JSON).

        Raises:
            LauncherError: an unknown key, a wrong type or value (naming it).
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise LauncherError(f"{where}: unknown setting(s) {', '.join(unknown)}")

        def user(v: Any, key: str, *, root_ok: bool = False) -> str | int:
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise LauncherError(f"{where}: {key} must be a user name or a uid")
            if isinstance(v, int) and not (0 if root_ok else 1) <= v < 2**31:
                raise LauncherError(f"{where}: {key} must be a uid above 0")
            if v == "root" and not root_ok:
                raise LauncherError(f"{where}: {key} must not be root")
            if isinstance(v, str) and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", v):
                raise LauncherError(f"{where}: {key} {v!r} is not a user name")
            return v

        def flag(key: str, default: bool) -> bool:
            v = doc.get(key, default)
            if not isinstance(v, bool):
                raise LauncherError(f"{where}: {key} must be true or false")
            return v

        if "keyholder_user" not in doc or "client_users" not in doc:
            raise LauncherError(f"{where}: keyholder_user and client_users are required")
        clients = doc["client_users"]
        if not isinstance(clients, list) or not clients:
            raise LauncherError(f"{where}: client_users must be a non-empty list")
        practice = doc.get("practice", "on-request")
        if practice not in ("never", "on-request", "always"):
            raise LauncherError(f"{where}: practice must be never, on-request or always")
        modules = doc.get("pkcs11_modules", ["opensc", "ykcs11"])
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise LauncherError(f"{where}: pkcs11_modules must be a list of module names")
        from core.carriers import modules as _modules

        for m in modules:
            if m not in _modules.MODULES:
                raise LauncherError(
                    f"{where}: unknown PKCS#11 module {m!r} ({_modules.describe_names()})"
                )
        terminal = doc.get("terminal", "")
        if not isinstance(terminal, str) or (terminal and not terminal.startswith("/dev/")):
            raise LauncherError(f"{where}: terminal must be a device under /dev/ (or empty)")
        python = doc.get("python", "")
        if not isinstance(python, str) or (python and not python.startswith("/")):
            raise LauncherError(f"{where}: python must be an absolute path (or empty)")
        env = doc.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise LauncherError(f"{where}: env must map names to strings")
        policy = cls(
            keyholder_user=user(doc["keyholder_user"], "keyholder_user"),
            client_users=tuple(user(c, "client_users", root_ok=True) for c in clients),
            practice=practice,
            unlocked_memory=flag("unlocked_memory", False),
            pkcs11_modules=tuple(modules),
            terminal=terminal,
            allow_pty=flag("allow_pty", False),
            memlock_unlimited=flag("memlock_unlimited", True),
            python=python,
            env={k: v for k, v in env.items() if k in _KEEP_ENV or k.startswith("KCM_")},
        )
        return policy


def load_policy(path: str = CONFIG, *, check_owner: bool = True) -> Policy:
    """Read and check the launcher's policy file.

    Raises:
        LauncherError: unreadable, not root-owned (``check_owner``), or invalid.
    """
    try:
        if check_owner:
            privsep.check_root_owned(path)
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except privsep.PrivsepError as exc:
        raise LauncherError(f"the keyholder policy: {exc}") from None
    except OSError as exc:
        raise LauncherError(f"cannot read the keyholder policy {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LauncherError(f"the keyholder policy {path} is not valid TOML: {exc}") from None
    return Policy.from_mapping(doc, where=path)


def _resolve_user(spec: str | int) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary groups, display name) of a policy user."""
    if isinstance(spec, int):
        return spec, spec, [spec], f"uid {spec}"
    try:
        pw = pwd.getpwnam(spec)
    except KeyError:
        raise LauncherError(f"no user {spec!r} on this machine") from None
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(spec, pw.pw_gid), spec


# ------------------------------------------------------------------------ launcher side


def open_terminal(path: str, *, allow_pty: bool) -> int:
    """Open the custodian terminal (as root): a character device that is a terminal, and
    not a pseudo-terminal unless allowed. Returns the fd (close-on-exec).

    Raises:
        LauncherError: not a terminal, or a pty where none is allowed.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise LauncherError(f"cannot open the custodian terminal {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or not os.isatty(fd):
            raise LauncherError(f"{path} is not a terminal")
        if os.major(st.st_rdev) in PTY_MAJORS and not allow_pty:
            raise LauncherError(
                f"{path} is a pseudo-terminal: the custodian terminal must be a console or a "
                "serial line (a multiplexer or an ssh session can keep copies of a share)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _status_caps() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status", "rb") as fh:
        for raw in fh:
            line = raw.decode()
            key, _, value = line.partition(":")
            if key in ("CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs"):
                out[key] = int(value.strip(), 16) if key != "NoNewPrivs" else int(value)
    return out


def drop_privileges(uid: int, gid: int, groups: Sequence[int], *, memlock_unlimited: bool) -> None:
    """Become ``uid``/``gid`` for good, with ``groups`` only, no capability, no way back.

    Raises:
        LauncherError: the drop did not happen exactly (the launcher then refuses).
    """
    if uid == 0:
        raise LauncherError("the keyholder must not run as root (keyholder_user is root)")
    # no_new_privs first: from the moment this process is the keyholder's user it can never
    # gain a privilege again (an observer never sees the new uid without the flag)
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise LauncherError("PR_SET_NO_NEW_PRIVS failed")
    if os.geteuid() == 0:
        if memlock_unlimited:
            try:
                resource.setrlimit(
                    resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                )
            except (ValueError, OSError):
                # root without CAP_SYS_RESOURCE (a container): the limit stays; the keyholder
                # then locks its secret buffers only and says so (its hardening notes)
                pass
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    elif os.getresuid() != (uid, uid, uid):
        raise LauncherError(f"the launcher runs as uid {os.geteuid()}: it cannot become uid {uid}")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise LauncherError("the user change did not take effect")
    if 0 in os.getgroups() and gid != 0:
        raise LauncherError("the root group is still among the supplementary groups")
    caps = _status_caps()
    if any(caps.get(k, 0) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")):
        raise LauncherError(f"capabilities left after the user change: {caps}")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - the kernel forbids it after the checks above
        raise LauncherError("setuid(0) succeeded after the drop")


def decide(policy: Policy, request: str) -> tuple[bool, bool]:
    """(practice, unlocked) the keyholder gets for a spawn request line.

    Raises:
        LauncherRefused: a malformed request, or one the policy does not allow.
    """
    m = _REQUEST_RE.fullmatch(request)
    if m is None:
        raise LauncherRefused("malformed spawn request")
    practice, unlocked = m.group(1) == "1", m.group(2) == "1"
    if unlocked and not policy.unlocked_memory:
        raise LauncherRefused(
            "unlocked memory is not allowed on this workstation: every secret of the keyholder "
            "stays in locked memory (start the program without --demo)"
        )
    if practice and policy.practice == "never":
        raise LauncherRefused("practice ceremonies are not allowed on this workstation")
    return practice or policy.practice == "always", unlocked


def keyholder_argv(policy: Policy, *, practice: bool, unlocked: bool, terminal: bool) -> list[str]:
    """The keyholder's command line: flags and modules from the policy alone."""
    from core.carriers import modules as _modules

    args = [policy.python or sys.executable, "-I", "-m", "core.keyholder"]
    if unlocked:  # demo mode: the only request that may ask for it
        args += ["--allow-unlocked", "--demo"]
    if practice:
        args.append("--practice")
    for name, path in sorted(_modules.resolve(policy.pkcs11_modules).items()):
        args += ["--pkcs11-module", f"{name}={path}"]
    if terminal:
        args += ["--terminal-fd", str(_TERMINAL_FD)]
    return args


def _keyholder_env(policy: Policy, inherited: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in inherited.items() if k in _KEEP_ENV or k.startswith("KCM_")}
    env.update(policy.env)
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return env


def _answer(fd: int, line: str) -> None:
    text = "".join(c if " " <= c < "\x7f" else "?" for c in line)[:1000]
    data = (text + "\n").encode("ascii")
    try:
        os.write(fd, data)
    except OSError:
        pass


def serve(policy: Policy, *, rfd: int = 0, wfd: int = 1) -> int:
    """The launcher proper, for one connection on ``rfd``/``wfd`` (see the module doc).

    Returns an exit status (it only returns on refusal: on success it becomes the keyholder).
    """
    try:
        _pid, peer_uid, _gid = privsep.peer_of_fd(rfd)
    except privsep.PrivsepError as exc:
        _answer(wfd, f"REFUSED the launcher must be started with the connection on fd 0 ({exc})")
        return 2
    try:
        return _serve(policy, peer_uid, rfd, wfd)
    except (OSError, ValueError) as exc:  # never a reset connection without a reason
        _answer(wfd, f"REFUSED the keyholder launcher failed ({type(exc).__name__}: {exc})")
        return 4


def _preload() -> None:
    """Import now, as root, what the launcher uses after the drop: the new user may not be
    able to read this interpreter's library (a Python installed in root's home)."""
    import codecs
    import encodings.ascii
    import encodings.utf_8  # noqa: F401

    from core.carriers import modules  # noqa: F401

    codecs.lookup("ascii")
    codecs.lookup("utf-8")


def _serve(policy: Policy, peer_uid: int, rfd: int, wfd: int) -> int:
    _preload()
    try:
        uid, gid, groups, name = _resolve_user(policy.keyholder_user)
        allowed = privsep.uids_of(policy.client_users)
        if peer_uid not in allowed:
            raise LauncherRefused(
                f"uid {peer_uid} may not start a keyholder (only {sorted(allowed)})"
            )
        if peer_uid == uid:
            raise LauncherRefused("the UI and the keyholder must be different users")
        term = -1
        if policy.terminal:
            term = open_terminal(policy.terminal, allow_pty=policy.allow_pty)
        drop_privileges(uid, gid, groups, memlock_unlimited=policy.memlock_unlimited)
        # From here on: the keyholder's user, no privilege. Now read what the UI asks.
        try:
            request = privsep.read_line(rfd, REQUEST_TIMEOUT_S)
        except privsep.PrivsepError as exc:
            raise LauncherRefused(f"spawn request: {exc}") from None
        practice, unlocked = decide(policy, request)
        argv = keyholder_argv(policy, practice=practice, unlocked=unlocked, terminal=term >= 0)
        if not os.access(argv[0], os.X_OK):
            raise LauncherError(f"{name} cannot run {argv[0]}")
    except LauncherError as exc:
        _answer(wfd, f"REFUSED {exc}")
        return 3
    if term >= 0:
        if term == _TERMINAL_FD:  # dup2 onto itself would keep close-on-exec
            os.set_inheritable(term, True)
        else:
            os.dup2(term, _TERMINAL_FD, inheritable=True)
            os.close(term)
    if rfd != 0:
        os.dup2(rfd, 0)
    if wfd != 1:
        os.dup2(wfd, 1)
    os.closerange(_TERMINAL_FD + 1 if term >= 0 else _TERMINAL_FD, 1 << 16)
    os.chdir("/")
    os.umask(0o077)
    _answer(1, f"OK {name}")
    env = _keyholder_env(policy, os.environ)
    os.execve(argv[0], argv, env)
    return 127  # pragma: no cover - execve does not return


def main(argv: list[str] | None = None) -> int:
    """``python -I -m core.keyholder.launcher serve --config FILE`` (systemd, per connection)
    or ``... local --policy-json JSON`` (started by a root UI over a socket pair)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["serve"] and len(args) == 3 and args[1] == "--config":
            policy = load_policy(args[2])
        elif args[:1] == ["local"] and len(args) == 3 and args[1] == "--policy-json":
            policy = Policy.from_mapping(json.loads(args[2]), where="--policy-json")
        else:
            sys.stderr.write(
                "usage: python -I -m core.keyholder.launcher serve --config FILE\n"
                "       python -I -m core.keyholder.launcher local --policy-json JSON\n"
            )
            return 2
    except (LauncherError, ValueError) as exc:
        _answer(1, f"REFUSED the keyholder launcher is misconfigured: {exc}")
        sys.stderr.write(f"kcm keyholder launcher: {exc}\n")
        return 2
    return serve(policy)


# -------------------------------------------------------------------------- client side


def _handshake(sock: socket.socket, *, practice: bool, allow_unlocked: bool) -> str:
    sock.sendall(f"{SPAWN_PREFIX} practice={int(practice)} unlocked={int(allow_unlocked)}\n".encode())
    try:
        line = privsep.read_line(sock.fileno(), ANSWER_TIMEOUT_S, limit=1024)
    except privsep.PrivsepError as exc:
        raise LauncherError(f"the keyholder launcher did not answer: {exc}") from None
    if line.startswith("REFUSED "):
        raise LauncherRefused(line.removeprefix("REFUSED "))
    if not line.startswith("OK"):
        raise LauncherError(f"the keyholder launcher answered something unexpected: {line[:80]!r}")
    return line.removeprefix("OK").strip()


def connect(
    path: str = SOCKET, *, practice: bool = False, allow_unlocked: bool = False
) -> KeyholderClient:
    """A keyholder started by the launcher service listening on ``path``.

    Raises:
        LauncherRefused: the policy does not allow the request (or this user).
        LauncherError: no launcher there, or it failed.
    """
    from core.keyholder.client import KeyholderClient

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(ANSWER_TIMEOUT_S)
        try:
            sock.connect(path)
        except OSError as exc:
            raise LauncherError(
                f"cannot reach the keyholder launcher at {path}: {exc.strerror}"
            ) from None
        sock.settimeout(None)
        _handshake(sock, practice=practice, allow_unlocked=allow_unlocked)
    except BaseException:
        sock.close()
        raise
    return KeyholderClient.over_socket(sock)


def spawn_local(
    policy: Policy,
    *,
    practice: bool = False,
    allow_unlocked: bool = False,
    stderr: int | IO[bytes] | None = subprocess.DEVNULL,
) -> KeyholderClient:
    """Run the launcher as a child (the UI is root) over a socket pair; the keyholder then
    runs as the policy's user.

    Raises:
        LauncherRefused, LauncherError: as :func:`connect`.
    """
    from core.keyholder.client import KeyholderClient

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "core.keyholder.launcher", "local", "--policy-json",
             policy.to_json()],
            stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=stderr, close_fds=True, cwd="/",
            env=_keyholder_env(policy, os.environ),
        )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    try:
        _handshake(ours, practice=practice, allow_unlocked=allow_unlocked)
    except BaseException:
        ours.close()
        proc.kill()
        proc.wait(10)
        raise
    return KeyholderClient.over_socket(ours, proc=proc)


# ------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """How the next keyholder will be started (:func:`plan`)."""

    kind: Literal["service", "local", "direct"]
    user: str  # who the keyholder runs as, for people
    detail: str  # why this way; what could not be done
    socket: str = ""
    policy: Policy | None = None

    @property
    def separate_user(self) -> bool:
        """True when the keyholder runs as a user of its own."""
        return self.kind != "direct"


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _can_use(uid: int, gid: int, groups: Sequence[int], checks: Sequence[tuple[str, str]]) -> str:
    """'' if ``uid`` may (``-r``/``-w``/``-x``) each path, else the first that fails."""
    for flag, path in checks:
        try:
            res = subprocess.run(
                ["test", flag, path], user=uid, group=gid, extra_groups=list(groups),
                capture_output=True, timeout=10, check=False, env={"PATH": "/usr/bin:/bin"},
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return path
        if res.returncode != 0:
            return path
    return ""


def _demo_paths(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """What a demo keyholder reads and writes: the SoftHSM2 configuration and token folder."""
    conf = env.get("SOFTHSM2_CONF", "")
    out: list[tuple[str, str]] = []
    if not conf:
        return out
    out.append(("-r", conf))
    try:
        with open(conf, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition("=")
                if key.strip() == "directories.tokendir" and value.strip():
                    out += [("-w", value.strip()), ("-x", value.strip())]
    except OSError:
        pass
    return out


def plan(
    *,
    demo: bool = False,
    socket_path: str = SOCKET,
    euid: int | None = None,
    env: Mapping[str, str] | None = None,
    dev_user: str = DEV_KEYHOLDER_USER,
    terminal: str = "/dev/tty",
) -> Plan:
    """Which way the next keyholder starts, and as whom (see the module doc). ``terminal``
    is the display terminal of a ``local`` keyholder (the launcher opens it as root; the
    service's comes from its own policy)."""
    environ = os.environ if env is None else env
    if _is_socket(socket_path):
        return Plan(
            "service", "the launcher's keyholder user",
            f"started by the keyholder launcher service ({socket_path}) as its own user",
            socket=socket_path,
        )  # fmt: skip
    uid_now = os.geteuid() if euid is None else euid
    me = _user_name(uid_now)
    if uid_now != 0:
        return Plan(
            "direct", me,
            f"the keyholder runs as this user ({me}): starting it as another user needs root "
            f"or the ceremony ISO's launcher service ({socket_path})",
        )  # fmt: skip
    try:
        uid, gid, groups, _name = _resolve_user(dev_user)
    except LauncherError:
        return Plan(
            "direct", me,
            f"the keyholder runs as root too: this machine has no user {dev_user!r} (create it "
            f"with `useradd --system --no-create-home --shell /usr/sbin/nologin {dev_user}` to "
            "run it apart)",
        )  # fmt: skip
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    needs = [("-x", sys.executable), ("-r", os.path.join(here, "keyholder", "server.py"))]
    blocked = _can_use(uid, gid, groups, [*needs, *_demo_paths(environ)])
    if blocked:
        return Plan(
            "direct", me,
            f"the keyholder runs as root too: {dev_user} cannot use {blocked} (the program "
            "or the demo's SoftHSM2 tokens); make it readable for that user",
        )  # fmt: skip
    from core.carriers import modules as _modules

    policy = Policy(
        keyholder_user=dev_user,
        client_users=(uid_now,),
        practice="on-request",
        unlocked_memory=demo,
        pkcs11_modules=_modules.default_names(demo=demo),
        terminal=_terminal_name(terminal),
        allow_pty=demo,
        env={k: v for k, v in environ.items() if k in _KEEP_ENV or k.startswith("KCM_")},
    )
    return Plan(
        "local", dev_user,
        f"started by a local launcher as {dev_user} (uid {uid}); the UI itself runs as root",
        policy=policy,
    )  # fmt: skip


def _terminal_name(path: str) -> str:
    """The device behind ``path`` (``/dev/tty`` is the caller's controlling terminal: the
    launcher, a new session, has none), or ``""`` when there is no terminal."""
    if not path:
        return ""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.ttyname(fd) if os.isatty(fd) else ""
    except OSError:
        return ""
    finally:
        os.close(fd)


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def open_keyholder(
    *,
    allow_unlocked: bool = False,
    practice: bool = False,
    stderr: int | IO[bytes] | None = subprocess.DEVNULL,
    the_plan: Plan | None = None,
    terminal: str = "/dev/tty",
) -> KeyholderClient:
    """A fresh keyholder for one ceremony, started the way :func:`plan` says, with
    ``terminal`` as its display terminal unless the launcher service fixes its own.

    Raises:
        LauncherRefused: the launcher's policy refused (e.g. unlocked memory on the ISO).
        LauncherError, OSError: it could not be started.
    """
    p = the_plan or plan(demo=allow_unlocked, terminal=terminal)
    if p.kind == "service":
        return connect(p.socket, practice=practice, allow_unlocked=allow_unlocked)
    if p.kind == "local" and p.policy is not None:
        return spawn_local(p.policy, practice=practice, allow_unlocked=allow_unlocked,
                           stderr=stderr)  # fmt: skip
    from core.keyholder.client import KeyholderClient

    try:
        return KeyholderClient.start(
            allow_unlocked=allow_unlocked, practice=practice, stderr=stderr, terminal=terminal
        )
    except OSError as exc:
        if exc.filename != terminal:
            raise
    # no such terminal (a test, a UI without one): a keyholder that shows no share
    return KeyholderClient.start(allow_unlocked=allow_unlocked, practice=practice, stderr=stderr)


if __name__ == "__main__":
    raise SystemExit(main())
