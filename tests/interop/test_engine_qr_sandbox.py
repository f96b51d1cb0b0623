"""Image reads in real ceremonies go through the decoder sandbox (issue 20, item 3).

The engine over the REAL keyholder: a genesis (words on a pseudo-terminal), then
unseal-and-seal where shares come in typed and as QR image files, and the image reads that
go wrong give a clean "could not read this image" with a code while the ceremony goes on:

* a decompression bomb (20000x20000 PNG) and a truncated JPEG (production keyholder);
* a helper that hangs (killed at its wall-clock limit), one the seccomp filter kills, and
  one that dies while the keyholder is still writing the image into its pipe (the keyholder
  must not die of SIGPIPE): a test-only keyholder (tests/interop/keyholder_hostile_decoder.py)
  whose helper is tests/interop/hostile_decoder.py.

Every time, the shares collected before stay, the keyholder keeps running, and the key is
then rebuilt and matches the manifest. The keyholder process never maps a decoder library.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from core import journal as jr
from core.carriers import qr
from core.ceremony.engine import (
    CarrierRefusedError,
    Ceremony,
    ClientKeyholder,
    QRCamera,
    StepState,
)
from core.ceremony.model import StepKind
from core.keyholder import ops_core
from core.keyholder.client import KeyholderClient, _clean_env
from core.shamir.wordlist import indices_from_mnemonic
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, practice_pem
from tests.support.images import bomb_png, helpers_running, truncated_jpeg
from tests.support.keyholders import run_genesis

ROOT = Path(__file__).resolve().parents[2]

WRAPPER = str(ROOT / "tests" / "interop" / "keyholder_hostile_decoder.py")
DEMO = os.geteuid() != 0


@dataclass
class World:
    ws: Path
    shares: list[str]
    fingerprint: str
    images: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("qr-sandbox")
    ws = root / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    terminal = CustodianTerminal()
    try:
        g = run_genesis(ws, terminal)
    finally:
        terminal.close()
    assert len(terminal.shares) == 5
    images = root / "images"
    images.mkdir()
    for i, words in enumerate(terminal.shares):
        idx = indices_from_mnemonic(words)
        with idx.view() as mv, qr.make_matrix(mv) as mat:
            qr.render_image(mat, scale=6).save(images / f"share{i}.png")
        idx.close()
    bomb_png(images / "bomb.png")
    truncated_jpeg(images / "share1.png", images / "half.jpg")
    rnd = random.Random(3)
    Image.frombytes("L", (3000, 3000), rnd.randbytes(9_000_000)).save(images / "noise.png")
    yield World(ws, terminal.shares, str(g.manifest["fingerprint"]), images)  # type: ignore[index]


def _collect(w: World, kc: KeyholderClient) -> Ceremony:
    u = Ceremony.load(
        SCRIPTS / "unseal-and-seal.toml", w.ws, ClientKeyholder(kc), preflight=ok_preflight
    )
    drive(u, until="recover.collect")
    u.perform()
    return u


def _finish_recovery(u: Ceremony, w: World) -> None:
    run = u.current_step
    assert run is not None and run.kind is StepKind.COLLECT_SHARES and run.performed
    for r in run.required_roles:
        u.acknowledge(r)
    u.complete_step()
    rec = u.current_step
    assert rec is not None and rec.kind is StepKind.RECOVER
    res = u.perform()
    assert res["fingerprint"] == w.fingerprint and res["verified"] is True
    u.abort("test ends after recovery", "admin")


def _hostile_keyholder(mode: str, wall_s: float = 3.0) -> KeyholderClient:
    args = [sys.executable, "-I", WRAPPER, mode, str(wall_s)]
    if DEMO:
        args.append("--allow-unlocked")
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_clean_env(os.environ),
    )
    kc = KeyholderClient(proc)
    kc.info = kc.call(ops_core.HELLO)
    return kc


def _refused_codes(u: Ceremony) -> list[str]:
    res = jr.verify(u.journal.path)
    assert res.ok, res.message
    evs = jr._events_from_path(u.journal.path)
    return [str(e.details.get("code")) for e in evs if e.details.get("accepted") is False]


def test_bomb_and_truncated_jpeg_in_a_ceremony(world: World) -> None:
    with KeyholderClient.start(allow_unlocked=DEMO) as kc:
        u = _collect(world, kc)
        run = u.current_step
        assert run is not None
        u.add_share("typed", typed(world.shares[0]))

        with pytest.raises(CarrierRefusedError, match=r"bomb\.png declares far more") as ei:
            u.add_share("qr-file", str(world.images / "bomb.png"))
        assert ei.value.code == "qr-unreadable" and ei.value.carrier == "qr-file"
        with pytest.raises(CarrierRefusedError, match=r"half\.jpg is not an image") as ei:
            u.add_share("qr-file", str(world.images / "half.jpg"))
        assert ei.value.code == "qr-unreadable"
        # the bomb among replayed frames: the same clean refusal
        with pytest.raises(CarrierRefusedError) as ei:
            u.add_share("qr-camera", QRCamera(replay=(str(world.images / "bomb.png"),)))
        assert ei.value.code == "qr-unreadable"
        assert run.state is StepState.ACTIVE and len(run.display["accepted"]) == 1
        assert kc.proc.poll() is None

        got = u.add_share("qr-file", str(world.images / "share1.png"))
        assert got["source"] == "qr-file" and got["complete"] is False
        got = u.add_share("qr-camera", QRCamera(replay=(str(world.images / "share2.png"),)))
        assert got["complete"] is True
        assert helpers_running() == []
        _finish_recovery(u, world)
    assert _refused_codes(u) == ["qr-unreadable"] * 3


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("hang-block", "did not finish within 3 s"),
        ("open", "forbidden system call"),
        ("segv", "crashed"),
    ],
)
def test_a_failing_decoder_does_not_stop_the_ceremony(world: World, mode: str, why: str) -> None:
    kc = _hostile_keyholder(mode)
    try:
        u = _collect(world, kc)
        run = u.current_step
        assert run is not None
        u.add_share("typed", typed(world.shares[3]))
        for payload in (
            str(world.images / "share1.png"),
            QRCamera(replay=(str(world.images / "share1.png"),)),
        ):
            carrier = "qr-file" if isinstance(payload, str) else "qr-camera"
            with pytest.raises(CarrierRefusedError, match=why) as ei:
                u.add_share(carrier, payload)
            assert ei.value.code == "qr-decoder-failed"
            assert "could not read this image" in str(ei.value)
        assert run.state is StepState.ACTIVE and len(run.display["accepted"]) == 1
        assert kc.status()["master_held"] is False  # the keyholder is alive and answers
        assert helpers_running() == []
        u.add_share("typed", typed(world.shares[4]))
        u.add_share("typed", typed(world.shares[0]))
        _finish_recovery(u, world)
    finally:
        kc.close()
    assert _refused_codes(u) == ["qr-decoder-failed"] * 2


def test_a_decoder_that_dies_while_fed_does_not_kill_the_keyholder(world: World) -> None:
    """The helper exits while the keyholder is still splicing 8 MB into its pipe: EPIPE.
    The keyholder's SIGPIPE handler (wipe everything and exit) must not fire."""
    assert (world.images / "noise.png").stat().st_size > 8_000_000
    kc = _hostile_keyholder("die-early", wall_s=30)
    try:
        u = _collect(world, kc)
        u.add_share("typed", typed(world.shares[2]))
        for _ in range(3):
            with pytest.raises(CarrierRefusedError, match="exit status 3") as ei:
                u.add_share("qr-file", str(world.images / "noise.png"))
            assert ei.value.code == "qr-decoder-failed"
            assert kc.proc.poll() is None
        run = u.current_step
        assert run is not None and len(run.display["accepted"]) == 1
        u.add_share("typed", typed(world.shares[1]))
        u.add_share("typed", typed(world.shares[4]))
        _finish_recovery(u, world)
    finally:
        kc.close()


@pytest.mark.root
def test_the_keyholder_never_maps_a_decoder(world: World) -> None:
    """After QR reads (file and replayed frames) the keyholder has not loaded zxing-cpp,
    zbar or numpy: they ran in the helpers, which are gone. (Reading the maps of the
    non-dumpable keyholder needs root.)"""
    if os.geteuid() != 0:
        pytest.skip("reading a non-dumpable process's maps needs root")
    with KeyholderClient.start() as kc:
        u = _collect(world, kc)
        u.add_share("qr-file", str(world.images / "share0.png"))
        u.add_share("qr-camera", QRCamera(replay=(str(world.images / "share3.png"),)))
        maps = Path(f"/proc/{kc.pid}/maps").read_text()
        for lib in ("zxingcpp", "libzbar", "_multiarray_umath", "libopenblas"):
            assert lib not in maps, f"{lib} is mapped in the keyholder"
        assert helpers_running() == []
        u.abort("test ends", "admin")
