"""TEST-ONLY keyholder whose image decodes go to a hostile helper.

``python -I tests/interop/keyholder_hostile_decoder.py MODE WALL_S [keyholder flags]``: the
real keyholder (:func:`core.keyholder.server.main`), with :mod:`core.carriers.sandbox`'s
entry points patched in this process only, so that every image read starts
``tests/interop/hostile_decoder.py MODE`` with a wall-clock limit of ``WALL_S`` seconds.
The production keyholder has no way to be told this (no argument, no variable, no request
field): the tests build this process themselves and talk to it with the real client.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from core.carriers import sandbox

MODE, WALL_S = sys.argv[1], float(sys.argv[2])
COMMAND = ("-I", str(Path(__file__).resolve().parent / "hostile_decoder.py"), MODE)
LIMITS = sandbox.Limits(cpu_s=60, wall_s=WALL_S)

sandbox.decode_file = functools.partial(sandbox.decode_file, command=COMMAND, limits=LIMITS)  # type: ignore[assignment]
sandbox.scan_frames = functools.partial(sandbox.scan_frames, command=COMMAND, limits=LIMITS)  # type: ignore[assignment]

from core.keyholder.server import main  # noqa: E402

raise SystemExit(main(sys.argv[3:]))
