"""Memory scan of the QR transcription display (issue 18, item 2).

A 3-of-5 genesis in the keyholder; each share is shown as a QR on a pty standing in for the
custodian terminal (``qr_show``, part by part, a key for the next part). The test reads
the squares off the screen as the custodian does, then searches the keyholder's and the
parent's memory for: the module matrix as the keyholder holds it (one byte per module),
each displayed part's module rows as rendered (UTF-8 text), the QR payload digits and the
word indices. While the shares are live every copy must be in locked memory; after wipe
there must be none anywhere.
"""

from __future__ import annotations

import json
import os
import pty
import threading

import numpy as np
import pytest

from benchmarks import gridcard_corpus as gridcards
from core.carriers import qr
from core.keyholder.ops_carriers import QR_SHOW
from core.secmem import SecretBuffer
from tests.memory import memscan

pytestmark = pytest.mark.root

POLICY = {"group_threshold": 1, "groups": [[3, 5]], "extendable": True, "iteration_exponent": 0}


def _show(d, member: int, master_fd: int) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()

    def reader() -> None:
        seen = 0
        while True:
            try:
                chunk = os.read(master_fd, 4096)
            except OSError:
                return
            out.extend(chunk)
            prompts = out.count(b"Any key: part")
            while seen < prompts:
                seen += 1
                os.write(master_fd, b" ")
            if b"Done: Enter, then Enter again" in out:
                os.write(master_fd, b"\r\r")  # Enter, then Enter again: the reveal ends
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    args = {"group": 1, "member": member, "custodian": f"c{member}"}
    reply = d.cmd(f"call {QR_SHOW:#x} {json.dumps(args)}")
    assert reply.get("shown") is True, reply
    t.join(5)
    return bytes(out)


def _secrets(k: int, raw: bytes) -> dict[str, bytes | str]:
    modules = gridcards.read_screen(raw)
    out: dict[str, bytes | str] = {f"matrix{k}": modules.astype(np.uint8).tobytes()}
    # each part's module rows exactly as the page buffer holds them
    for p, page in enumerate(raw.split(qr.CLEAR)):
        lines = [ln for ln in page.decode().replace("\r", "").split("\n") if ln[:3].strip().isdigit()]
        if lines:
            out[f"rows{k}.{p}"] = "\n".join(lines) + "\n"
    # the payload and the word indices, read from a clean image of the shown code
    canvas = np.pad(np.where(modules == 1, 0, 255).astype(np.uint8), 4, constant_values=255)
    from PIL import Image

    from core.carriers import imagedecode

    img = Image.fromarray(canvas, mode="L").resize((canvas.shape[1] * 8, canvas.shape[0] * 8), Image.Resampling.NEAREST)
    got = imagedecode.decode_image(img, variants=("as-is",))
    with got.indices.view() as mv:
        out[f"indices{k}"] = bytes(mv)
        digits = qr.indices_to_payload(mv)
    with digits.view() as dv:
        out[f"digits{k}"] = bytes(dv)
    digits.close()
    got.indices.close()
    return out


def test_qr_display_leaves_no_copy_outside_locked_memory(driver_factory) -> None:  # type: ignore[no-untyped-def]
    # one pty stands in for the custodian terminal, fixed when the keyholder is spawned
    master_fd, slave_fd = pty.openpty()
    d = driver_factory(
        "mlock", plugins=["tests.memory.shares_plugin"], terminal=os.ttyname(slave_fd)
    )
    g = d.cmd("genesis " + json.dumps(POLICY))
    assert "identifier" in g, g
    secrets: dict[str, bytes | str] = {}
    for member in range(1, 6):
        raw = _show(d, member, master_fd)
        assert b"part 2 of 2" in raw and b"Done: Enter, then Enter again" in raw
        secrets.update(_secrets(member, raw))
    assert len([k for k in secrets if k.startswith("rows")]) == 10

    live = memscan.scan(d.keyholder_pid, secrets)
    assert live.count("indices1") >= 1, "the scanner must see the held share (else it proves nothing)"
    assert live.outside_locked() == [], f"copies outside locked memory: {live.summary()}"
    parent = memscan.scan(d.pid, secrets)
    assert parent.count() == 0, parent.summary()

    assert d.cmd("finish")["finished"] is True
    assert d.cmd("wipe") == {"wiped": True}
    after = memscan.scan(d.keyholder_pid, secrets)
    assert after.count() == 0, after.summary()
    assert memscan.scan(d.pid, secrets).count() == 0
    os.close(slave_fd)
    os.close(master_fd)
    assert SecretBuffer  # the module's buffers are the only holders checked above
