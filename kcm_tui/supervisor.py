"""The process that starts the full-screen UI: a clean environment, and a terminal that is
put back however the UI ends (issue 14, items 6 and 7).

``kcm-ceremony`` (no subcommand) runs :func:`run`. It imports no Textual and reads nothing
from the terminal; it:

1. checks the environment. Every ``TEXTUAL*`` and ``PYTHON*`` variable is refused by name
   outside demo mode (Textual and CPython read many of them: ``TEXTUAL_DEBUG`` makes
   Textual write every key to ``keys.log``, ``PYTHONINSPECT`` opens a prompt at exit,
   ``PYTHONMALLOC``/``PYTHONTRACEMALLOC`` keep copies of freed memory...). In demo mode
   they are dropped, with a DEMO notice naming them;
2. saves the terminal's modes (``tcgetattr``);
3. starts the UI as a child, ``python -I -m kcm_tui.cli --ui-child ...`` (isolated mode:
   no ``PYTHON*`` variable, no user site, no current folder on the path) with only the
   variables of :data:`ALLOWED` (:func:`child_environment`);
4. waits for it, passing SIGTERM and SIGHUP on; when it has ended, by any signal too
   (SIGKILL included, which no handler in the UI can catch), puts the terminal back:
   the saved modes (cooked: echo, canonical input), the main screen, mouse reporting off,
   bracketed paste off, the cursor shown. It returns the UI's status (128 + N for a
   signal N) and says which signal stopped it.

Textual restores the terminal itself on a normal exit; this covers every other end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import termios
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ALLOWED",
    "RESTORE",
    "child_argv",
    "child_environment",
    "refused_variables",
    "restore_terminal",
    "run",
]

#: The only variables the UI process gets: the terminal, the locale and time zone, where to
#: find programs, the user, the demo's SoftHSM2 configuration, the keyholder's memory
#: backend, and the session markers the preflight check warns about (an ssh or graphical
#: session must still be seen). Everything else is dropped.
ALLOWED: Final = (
    "TERM", "COLORTERM", "NO_COLOR", "COLUMNS", "LINES",
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ",
    "PATH", "HOME", "USER", "LOGNAME",
    "SOFTHSM2_CONF", "KCM_SECMEM_BACKEND", "KCM_DEMO",
    "DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "TMUX", "STY",
)  # fmt: skip
#: Refused outside demo mode, dropped in it: every variable with one of these prefixes.
REFUSED_PREFIXES: Final = ("TEXTUAL", "PYTHON")
#: Main screen, every mouse mode off, bracketed paste off, focus events off, cursor shown,
#: attributes reset: what Textual turns on, turned off.
RESTORE: Final = (
    b"\x1b[?1049l"  # leave the alternate screen
    b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l"  # mouse
    b"\x1b[?2004l"  # bracketed paste
    b"\x1b[?1004l"  # focus events
    b"\x1b[?25h"  # cursor
    b"\x1b[0m"
)
UI_CHILD_FLAG: Final = "--ui-child"


def refused_variables(env: Mapping[str, str]) -> list[str]:
    """Names of the set ``TEXTUAL*`` and ``PYTHON*`` variables, sorted."""
    return sorted(k for k in env if k.startswith(REFUSED_PREFIXES))


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The UI's environment: the :data:`ALLOWED` variables of ``env``, nothing else."""
    return {k: env[k] for k in ALLOWED if k in env}


def child_argv(args: Sequence[str]) -> list[str]:
    """The UI's command line: this interpreter in isolated mode, no .pyc written."""
    return [sys.executable, "-I", "-B", "-m", "kcm_tui.cli", UI_CHILD_FLAG, *args]


def _terminal_fd() -> int | None:
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        if os.isatty(fd):
            return fd
    return None


def restore_terminal(fd: int, saved: list[Any] | None) -> None:
    """Put the terminal on ``fd`` back: the ``saved`` modes (if any), then :data:`RESTORE`."""
    if saved is not None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (OSError, termios.error):
            pass
    try:
        os.write(fd, RESTORE)
    except OSError:
        pass


def run(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Check the environment, start the UI as a child, put the terminal back after it."""
    environ = os.environ if env is None else env
    demo = "--demo" in args
    refused = refused_variables(environ)
    if refused and not demo:
        sys.stderr.write(
            "kcm-ceremony refuses to start: these variables change what the user interface or\n"
            "Python does (debug logs of every key, prompts, memory tracing, other code):\n"
            f"  {', '.join(refused)}\n"
            f"Unset them (unset {' '.join(refused)}) or start from a clean login on the\n"
            "console. (In a demo, --demo drops them with a notice.)\n"
        )
        return 2
    if refused:
        sys.stderr.write(f"DEMO: dropped {', '.join(refused)} (a real ceremony refuses them).\n")
    fd = _terminal_fd()
    saved: list[Any] | None = None
    if fd is not None:
        try:
            saved = termios.tcgetattr(fd)
        except termios.error:
            saved = None
    proc = subprocess.Popen(child_argv(list(args)), env=child_environment(environ))
    forwarded = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {s: signal.getsignal(s) for s in forwarded}

    def forward(signum: int, _frame: object) -> None:
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for s in forwarded:
        signal.signal(s, forward)
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries wait() itself
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if fd is not None:
        if rc < 0:  # killed: nothing in the UI could put the terminal back
            restore_terminal(fd, saved)
        elif saved is not None:  # ended by itself (Textual restored the screen): the modes
            try:
                termios.tcsetattr(fd, termios.TCSANOW, saved)
            except (OSError, termios.error):
                pass
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        sys.stderr.write(
            f"\nkcm-ceremony: the user interface was stopped by {name}; the terminal was "
            "restored.\nThe keyholder ends with it and wipes every secret it held: start the "
            "ceremony again from its last completed step (the journal on the ceremony medium "
            "says which).\n"
        )
        return 128 - rc
    return rc
