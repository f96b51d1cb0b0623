"""The media service: the UI (an unprivileged user) asks root to mount a removable medium.

On the ceremony ISO the UI runs as ``kcm`` and cannot mount anything. The one privileged
program that mounts, remounts and unmounts removable media is the helper ``kcm-media``
(:data:`HELPER`, a fixed command set: ``export DEV``, ``import DEV``, ``ceremony DEV``,
``release``, ``status``); this module puts a socket in front of it:

* ``kcm-media.socket`` (systemd, ``Accept=yes``, mode 0660 for group ``kcm``) runs
  ``python -I -m core.media_service serve --client-user kcm`` as root for each connection,
  with the connection on fds 0 and 1;
* the service checks the peer with ``SO_PEERCRED`` (only the client user), reads one line,
  checks it against the fixed command set (:func:`parse_request`: a command word and, for
  the three that take one, a device name of a removable disk or partition), runs the helper
  with exactly those arguments in a clean environment, and answers one JSON line
  ``{"rc": N, "stdout": "...", "stderr": "..."}``;
* the UI's side is ``python -I -m core.media_service client CMD [DEV]`` (what
  :class:`core.removable.MediaHelper` runs on the ISO): it prints the helper's output and
  exits with its status, so the UI reads it exactly as it read the helper itself.

The helper still refuses any device udev did not mark as removable media, so neither a
malformed request nor a hostile UI can make the workstation's own disks writable.
Standard library only; no UI imports.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from typing import Final

from core import privsep
from core.errors import KcmError

__all__ = ["COMMANDS", "HELPER", "SOCKET", "MediaServiceError", "call", "main", "parse_request"]

SOCKET: Final = "/run/kcm/media.sock"
HELPER: Final = "/usr/local/sbin/kcm-media"
#: The fixed command set: the command word and whether it takes a device.
COMMANDS: Final = {"export": True, "import": True, "ceremony": True, "release": False, "status": False}
_DEVICE_RE: Final = re.compile(r"/dev/(sd[a-z]{1,2}[0-9]{0,3}|mmcblk[0-9]{1,2}(p[0-9]{1,3})?|nvme[0-9]{1,2}n[0-9]{1,2}(p[0-9]{1,3})?)")
REQUEST_TIMEOUT_S: Final = 10.0
HELPER_TIMEOUT_S: Final = 110.0  # the helper retries a busy unmount for ~10 s; mounts are slow
MAX_OUTPUT: Final = 4000


class MediaServiceError(KcmError):
    """The media service refused or failed (the message is for the people in the room)."""

    code = "media-service"


def parse_request(line: str) -> list[str]:
    """The helper's arguments for one request line, or a refusal.

    Raises:
        MediaServiceError: not a command of the fixed set, or not a removable device name.
    """
    parts = line.split(" ")
    cmd = parts[0] if parts else ""
    if cmd not in COMMANDS:
        raise MediaServiceError(f"unknown command {cmd[:20]!r} (only {', '.join(COMMANDS)})")
    takes_device = COMMANDS[cmd]
    if len(parts) != (2 if takes_device else 1):
        raise MediaServiceError(f"{cmd} takes {'one device' if takes_device else 'nothing'}")
    if takes_device and not _DEVICE_RE.fullmatch(parts[1]):
        raise MediaServiceError(f"{parts[1][:40]!r} is not the name of a removable disk")
    return parts


def _answer(fd: int, rc: int, stdout: str = "", stderr: str = "") -> None:
    doc = {"rc": rc, "stdout": stdout[-MAX_OUTPUT:], "stderr": stderr[-MAX_OUTPUT:]}
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode("utf-8"))
    except OSError:
        pass


def serve(client_users: list[str], *, helper: str = HELPER, rfd: int = 0, wfd: int = 1) -> int:
    """One connection (see the module doc). Returns the exit status of this process."""
    try:
        _pid, uid, _gid = privsep.peer_of_fd(rfd)
    except privsep.PrivsepError as exc:
        _answer(wfd, 3, stderr=f"kcm-media: the media service needs the connection on fd 0 ({exc})")
        return 2
    allowed = privsep.uids_of(client_users)
    if uid not in allowed:
        _answer(wfd, 3, stderr=f"kcm-media: uid {uid} may not use the media service")
        return 3
    try:
        args = parse_request(privsep.read_line(rfd, REQUEST_TIMEOUT_S))
    except (privsep.PrivsepError, MediaServiceError) as exc:
        _answer(wfd, 2, stderr=f"kcm-media: {exc}")
        return 2
    try:
        res = subprocess.run(
            [helper, *args], capture_output=True, text=True, timeout=HELPER_TIMEOUT_S,
            check=False, stdin=subprocess.DEVNULL, cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _answer(wfd, 5, stderr="kcm-media: the media helper did not finish in time")
        return 5
    except OSError as exc:
        _answer(wfd, 5, stderr=f"kcm-media: the media helper could not run ({exc.strerror})")
        return 5
    _answer(wfd, res.returncode, res.stdout, res.stderr)
    return 0


def call(args: list[str], path: str = SOCKET) -> tuple[int, str, str]:
    """Ask the media service; returns the helper's (status, stdout, stderr).

    Raises:
        MediaServiceError: no service there, or no answer.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(HELPER_TIMEOUT_S + 10)
        try:
            sock.connect(path)
            sock.sendall((" ".join(args) + "\n").encode("ascii", "replace"))
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise MediaServiceError(f"the media service at {path} failed: {exc}") from None
    finally:
        sock.close()
    try:
        doc = json.loads(data.decode("utf-8"))
        return int(doc["rc"]), str(doc["stdout"]), str(doc["stderr"])
    except (ValueError, KeyError, TypeError):
        raise MediaServiceError("the media service answered something unexpected") from None


def main(argv: list[str] | None = None) -> int:
    """``serve --client-user NAME`` (systemd, per connection) or ``client CMD [DEV]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 3 and args[0] == "serve" and args[1] == "--client-user":
        return serve(args[2:])
    if len(args) >= 2 and args[0] == "client":
        path = SOCKET
        if args[1] == "--socket" and len(args) >= 4:
            path, args = args[2], args[2:]
        try:
            rc, out, err = call(args[1:], path)
        except MediaServiceError as exc:
            sys.stderr.write(f"kcm-media: {exc}\n")
            return 5
        sys.stdout.write(out)
        sys.stderr.write(err)
        return rc
    sys.stderr.write(
        "usage: python -I -m core.media_service serve --client-user NAME [NAME ...]\n"
        "       python -I -m core.media_service client [--socket PATH] "
        "export|import|ceremony DEV | release | status\n"
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
