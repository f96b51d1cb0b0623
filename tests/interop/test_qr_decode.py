"""Decoding share QRs from images with the real decoders (zxing-cpp, zbar), the frame
source pipeline and image files on media."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
import qrcode
import shamir_mnemonic
from PIL import Image

from core.carriers import imagedecode, qr
from core.carriers.errors import CarrierError, QRNotFound, QRPayloadError
from core.secmem import SecretBuffer
from core.shamir.wordlist import indices_from_mnemonic

_spec = importlib.util.spec_from_file_location(
    "qr_corpus", Path(__file__).resolve().parents[2] / "benchmarks" / "qr_corpus.py"
)
assert _spec and _spec.loader
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def share(seed: int, secret_len: int = 32) -> SecretBuffer:
    rnd = random.Random(seed)
    m = shamir_mnemonic.generate_mnemonics(
        1, [(2, 3)], rnd.randbytes(secret_len), iteration_exponent=0
    )[0][0]
    return indices_from_mnemonic(m)


def same(a: SecretBuffer, b: SecretBuffer) -> bool:
    with a.view() as x, b.view() as y:
        return bytes(x) == bytes(y)


def card_image(s: SecretBuffer, scale: int = 6) -> Image.Image:
    with qr.make_matrix(s) as mat:
        return qr.render_image(mat, scale=scale)


def text_qr(text: str) -> Image.Image:
    q = qrcode.QRCode(border=4, box_size=6)
    q.add_data(text)
    return q.make_image().get_image().convert("L")


@pytest.mark.parametrize("kind", corpus.KINDS)
def test_moderately_degraded_photos_decode(kind: str) -> None:
    rnd = random.Random(kind)
    ok = 0
    for seed in range(4):
        s = share(seed)
        img = corpus.degrade(card_image(s), kind, 0.3, rnd)
        try:
            out = imagedecode.decode_image(img)
        except QRNotFound:
            continue
        assert same(out.indices, s)  # never a wrong share
        ok += 1
    assert ok >= 3


def test_pyzbar_alone_and_the_chain_agree() -> None:
    s = share(11)
    img = card_image(s)
    a = imagedecode.decode_image(img, decoders=("pyzbar",))
    b = imagedecode.decode_image(img)
    assert a.decoder == "pyzbar" and b.decoder == "zxing-cpp"
    assert same(a.indices, s) and same(b.indices, s)


def test_preprocessing_rescues_what_the_plain_decoders_miss() -> None:
    """At least one corpus image that neither decoder reads as-is is read by the chain."""
    rnd = random.Random(99)
    rescued = 0
    for seed in range(10):
        s = share(seed)
        img = corpus.degrade(card_image(s), "noise", 0.5, rnd)
        if any(True for _ in imagedecode.raw_decode(img, variants=("as-is",))):
            continue
        out = imagedecode.decode_image(img)
        assert same(out.indices, s) and out.variant != "as-is"
        rescued += 1
        if rescued == 2:
            break
    assert rescued == 2


def test_garbage_qr_gets_a_clear_message() -> None:
    with pytest.raises(QRPayloadError, match="holds 25 characters"):
        imagedecode.decode_image(text_qr("https://example.com/share"))
    with pytest.raises(QRPayloadError, match="beyond the 1024-word list"):
        imagedecode.decode_image(text_qr("9" * 132))


def test_no_qr_in_image() -> None:
    with pytest.raises(QRNotFound, match="no QR code found"):
        imagedecode.decode_image(Image.new("L", (300, 300), 255))


def test_image_files_on_media(tmp_path: Path) -> None:
    s = share(3)
    card_image(s).save(tmp_path / "share.jpg", quality=60)
    assert same(imagedecode.decode_file(tmp_path / "share.jpg").indices, s)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(CarrierError, match="not an image file"):
        imagedecode.decode_file(tmp_path / "notes.txt")
    with pytest.raises(CarrierError, match=r"cannot read missing\.png"):
        imagedecode.decode_file(tmp_path / "missing.png")


def test_replayed_camera_frames(tmp_path: Path) -> None:
    """The frame pipeline (as used for the V4L2 camera) over replayed frames."""
    s = share(4)
    blank = Image.new("L", (640, 480), 128)
    frame = Image.new("L", (640, 480), 180)
    frame.paste(corpus.degrade(card_image(s, 3), "rotate", 0.1, random.Random(1)), (150, 60))
    frame.save(tmp_path / "f.png")
    src = imagedecode.ReplayFrameSource([blank, blank, text_qr("hello"), tmp_path / "f.png"])
    out = imagedecode.scan_frames(src)
    assert same(out.indices, s)


def test_replayed_frames_without_share() -> None:
    src = imagedecode.ReplayFrameSource([Image.new("L", (64, 64), 255)], repeat=3)
    with pytest.raises(QRNotFound, match="in 3 frames"):
        imagedecode.scan_frames(src)
    src = imagedecode.ReplayFrameSource([text_qr("hello")])
    with pytest.raises(QRPayloadError):
        imagedecode.scan_frames(src)


def test_v4l2_frame_conversion() -> None:
    w, h = 4, 2
    grey = bytes(range(8))
    assert list(imagedecode._frame_to_image("GREY", w, h, grey).tobytes()) == list(range(8))
    yuyv = bytes(v for i in range(8) for v in (i, 128))
    assert list(imagedecode._frame_to_image("YUYV", w, h, yuyv).tobytes()) == list(range(8))
    with pytest.raises(CarrierError, match="not supported"):
        imagedecode._frame_to_image("NV12", w, h, b"")


def test_keyholder_shows_a_genesis_share_as_qr_on_a_tty() -> None:
    """qr_show (0x0310): the keyholder shows the QR on a pty for transcription, part by part;
    the squares read off the screen make a code that decodes to a share of the set."""
    import os
    import select
    import threading
    import time

    import numpy as np

    from benchmarks import gridcard_corpus as gridcards
    from core.keyholder import ops_shares
    from core.keyholder.client import KeyholderClient
    from core.keyholder.ops_carriers import QR_SHOW

    master_fd, slave_fd = os.openpty()
    tty = os.ttyname(slave_fd)
    with KeyholderClient.start(stderr=None, terminal=tty, demo=True) as kh:
        gen = kh.call(
            ops_shares.GENESIS_SPLIT,
            policy={"group_threshold": 1, "groups": [[2, 3]], "extendable": True,
                    "iteration_exponent": 0},
            generate=True,
        )
        result: dict[str, object] = {}
        th = threading.Thread(
            target=lambda: result.update(kh.call(QR_SHOW, group=1, member=2, tty=tty))
        )
        th.start()
        raw = b""
        answered = 0
        deadline = time.monotonic() + 30
        while b"Done: Enter, then Enter again" not in raw and time.monotonic() < deadline:
            if select.select([master_fd], [], [], 1)[0]:
                raw += os.read(master_fd, 65536)
            if raw.count(b"Any key: part") > answered:
                answered += 1
                os.write(master_fd, b" ")  # the next part
        os.write(master_fd, b"\r")
        time.sleep(0.2)
        os.write(master_fd, b"\r")  # Enter, then Enter again: the reveal ends
        th.join(10)
        assert result == {"shown": True, "group": 1, "member": 2, "ended": "enter-confirmed"}
        assert answered == 1 and b"part 2 of 2" in raw
        modules = gridcards.read_screen(raw)
        canvas = np.pad(np.where(modules == 1, 0, 255).astype(np.uint8), 4, constant_values=255)
        img = Image.fromarray(canvas, mode="L").resize((canvas.shape[1] * 8, canvas.shape[0] * 8))
        out = imagedecode.decode_image(img)
        with out.indices.view() as mv:
            from core.shamir.commitments import share_metadata

            assert share_metadata(mv) == (gen["identifier"], 0, 1)
    os.close(master_fd)
    os.close(slave_fd)


def test_empty_image() -> None:
    with pytest.raises(QRNotFound, match="too small"):
        imagedecode.decode_image(Image.new("L", (0, 0)))
