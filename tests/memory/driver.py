"""A stand-in for the UI process in memory-scan tests.

Runs as its own process (so the scanner can read its memory separately from the test's),
starts a keyholder through the real client and obeys line commands on stdin, answering one
JSON line each on stdout. Only public values ever reach it.

Commands: ``generate``, ``fingerprint``, ``wipe``, ``term`` (SIGTERM the keyholder and report
its exit status), ``close``, ``call OPCODE JSON`` (a generic public call), ``quit``.
Extra command modules can be loaded with ``--plugin module`` (each defines
``COMMANDS: dict[str, callable(client, arg) -> dict]``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

from core.keyholder.client import KeyholderClient


def main() -> int:
    plugins: dict[str, Any] = {}
    args = sys.argv[1:]
    while args and args[0] == "--plugin":
        mod = importlib.import_module(args[1])
        plugins.update(mod.COMMANDS)
        args = args[2:]
    # the SoftHSM2 "cards" of the carrier scans: a test keyholder allows the software token
    # the display terminal, fixed at spawn (a pty of the test: allowed in demo mode only)
    terminal = os.environ.get("KCM_TEST_TERMINAL") or None
    client = KeyholderClient.start(
        stderr=sys.stderr, pkcs11_modules=("softhsm2",), terminal=terminal, demo=bool(terminal)
    )
    out = sys.stdout
    out.write(json.dumps({"ready": True, "keyholder_pid": client.pid, "info": client.info}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            reply: dict[str, Any]
            if cmd == "generate":
                reply = client.generate_master()
            elif cmd == "fingerprint":
                reply = client.fingerprint()
            elif cmd == "wipe":
                client.wipe()
                reply = {"wiped": True}
            elif cmd == "term":
                client.proc.send_signal(signal.SIGTERM)
                reply = {"returncode": client.proc.wait(30)}
            elif cmd == "close":
                reply = {"returncode": client.close()}
            elif cmd == "call":
                op, _, js = arg.partition(" ")
                reply = client.call(int(op, 0), **(json.loads(js) if js else {}))
            elif cmd in plugins:
                reply = plugins[cmd](client, arg)
            elif cmd == "quit":
                break
            else:
                reply = {"error": f"unknown command {cmd}"}
        except Exception as exc:
            reply = {"error": type(exc).__name__, "message": str(exc)}
        out.write(json.dumps(reply, default=str) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
