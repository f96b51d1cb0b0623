"""Memory scan after a recovery from a smart card (SoftHSM2) and QR images (issue 6).

Three shares of a 3-of-5 set: one on a card (decrypted on the card, into the keyholder),
one from a QR image file, one from replayed camera frames. After ``recover`` the MasterKey
is live in the keyholder's locked memory only; after ``wipe`` there is no copy of the key
or of any share (word indices, QR digits, mnemonic) in the keyholder or in its parent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.carriers import pkcs11 as cards
from core.carriers import qr
from core.crypto.fingerprint import derive_fingerprint
from core.secmem import SecretBuffer
from core.shamir import slip39
from core.shamir.wordlist import mnemonic_from_indices
from tests.memory import memscan

pytestmark = pytest.mark.root
MODULE = cards.DEFAULT_MODULES["softhsm2"]


def _share_encodings(buf: SecretBuffer) -> dict[str, bytes | str]:
    with buf.view() as mv:
        raw = bytes(mv)
        digits = "".join(f"{(mv[i] << 8) | mv[i + 1]:04d}" for i in range(0, len(mv), 2))
        words = mnemonic_from_indices(mv)
    return {"indices": raw, "digits": digits, "mnemonic": words}


@pytest.mark.skipif(not shutil.which("softhsm2-util"), reason="SoftHSM2 missing")
def test_card_and_qr_recovery_leaves_nothing_after_wipe(
    driver_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    tokendir = tmp_path / "tokens"
    tokendir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokendir}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "scan", "--so-pin", "12345678",
         "--pin", "4321"],
        check=True, capture_output=True,
    )
    cards.rescan(MODULE)
    (token,) = cards.list_tokens(MODULE)

    master = SecretBuffer(32)
    master.fill_random()
    with master.view() as mv:
        groups = slip39.split_master(mv, group_threshold=1, groups=[(3, 5)], iteration_exponent=0)
        fp = derive_fingerprint(mv).hex
        master_bytes = bytes(mv)
    shares = [slip39.encode_share(s) for s in groups[0]]
    key = cards.provision_key(MODULE, token.serial, memoryview(b"4321"), bits=2048)
    cards.write_share(MODULE, token.serial, memoryview(b"4321"), shares[0], key)
    with qr.make_matrix(shares[1]) as m:
        qr.render_image(m, scale=6).save(tmp_path / "share2.png")
    with qr.make_matrix(shares[2]) as m:
        qr.render_image(m, scale=4).rotate(10, expand=True, fillcolor=255).save(tmp_path / "f2.png")
    from PIL import Image

    Image.new("L", (320, 240), 90).save(tmp_path / "f1.png")

    secrets: dict[str, bytes | str] = {"master": master_bytes}
    for i in range(3):
        for enc, val in _share_encodings(shares[i]).items():
            secrets[f"share{i + 1}-{enc}"] = val

    d = driver_factory("mlock", plugins=["tests.memory.carriers_plugin"])
    assert "progress" in d.cmd(f"recovery_begin {fp}")
    r1 = d.cmd("card_read " + json.dumps({"module": MODULE, "serial": token.serial, "pin": "4321"}))
    assert r1.get("share", {}).get("source") == "card", r1
    r2 = d.cmd(f"qr_file {tmp_path / 'share2.png'}")
    assert r2.get("share", {}).get("source") == "qr-file", r2
    r3 = d.cmd("qr_replay " + json.dumps([str(tmp_path / "f1.png"), str(tmp_path / "f2.png")]))
    assert r3.get("share", {}).get("source") == "qr-replay", r3
    rec = d.cmd("recover")
    assert rec.get("verified") is True, rec

    live = memscan.scan(d.keyholder_pid, secrets)
    assert live.count("master") >= 1, "the scanner must see the live key (else it proves nothing)"
    assert live.outside_locked() == [], f"copies outside locked memory: {live.summary()}"
    parent = memscan.scan(d.pid, secrets)
    assert parent.count() == 0, f"the parent holds secrets: {parent.summary()}"

    assert d.cmd("wipe") == {"wiped": True}
    after = memscan.scan(d.keyholder_pid, secrets)
    assert after.count() == 0, f"keyholder after wipe: {after.summary()}"
    assert memscan.scan(d.pid, secrets).count() == 0
    for s in shares:
        s.close()
    master.close()


_IN_PROCESS_DECODER = """
import sys
from core.carriers import imagedecode
out = imagedecode.decode_file(sys.argv[1])
out.indices.close()
del out
print("decoded", flush=True)
sys.stdin.read()
"""


def test_qr_reads_leave_no_copy_outside_locked_memory(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 20: images are decoded in a sandboxed helper that sends back only the payload
    digits, read straight into locked memory. Right after QR reads (two image files, one
    replay of frames), with the shares live in the recovery, every copy of every share
    encoding in the keyholder is inside locked memory, and the UI stand-in has none.

    The control: a process that decodes the same kind of image in-process (what the
    keyholder did before) keeps the decoder's copy of the digits in its heap, and this
    scanner finds it."""
    master = SecretBuffer(32)
    master.fill_random()
    with master.view() as mv:
        groups = slip39.split_master(mv, group_threshold=1, groups=[(3, 5)], iteration_exponent=0)
        fp = derive_fingerprint(mv).hex
    shares = [slip39.encode_share(s) for s in groups[0]]
    for i in range(3):
        with qr.make_matrix(shares[i]) as m:
            qr.render_image(m, scale=5).save(tmp_path / f"s{i}.png")
    secrets: dict[str, bytes | str] = {}
    for i in range(3):
        for enc, val in _share_encodings(shares[i]).items():
            secrets[f"share{i + 1}-{enc}"] = val

    d = driver_factory("mlock", plugins=["tests.memory.carriers_plugin"])
    assert "progress" in d.cmd(f"recovery_begin {fp}")
    for i in range(2):
        r = d.cmd(f"qr_file {tmp_path / f's{i}.png'}")
        assert r.get("share", {}).get("source") == "qr-file", r
        assert r.get("sandbox", {}).get("seccomp") is True, r
    r = d.cmd("qr_replay " + json.dumps([str(tmp_path / "s2.png")]))
    assert r.get("share", {}).get("source") == "qr-replay", r

    live = memscan.scan(d.keyholder_pid, secrets)
    assert live.outside_locked() == [], f"copies outside locked memory: {live.summary()}"
    assert memscan.scan(d.pid, secrets).count() == 0

    ctl = subprocess.Popen(
        [sys.executable, "-c", _IN_PROCESS_DECODER, str(tmp_path / "s0.png")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert ctl.stdout is not None and ctl.stdout.readline().strip() == "decoded"
        residue = memscan.scan(ctl.pid, {k: v for k, v in secrets.items() if "share1" in k})
        assert residue.count("share1-digits") >= 1, residue.summary()
    finally:
        ctl.kill()
        ctl.wait()
    for s in shares:
        s.close()
    master.close()
