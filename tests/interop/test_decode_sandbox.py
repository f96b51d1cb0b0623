"""The sandboxed image decoder (issue 20, item 3): real helper processes, real decoders,
a real seccomp filter.

* the project's QR corpus (benchmarks/qr_corpus.py, as bench_qr.py builds it) decodes to
  the same results through the sandbox as through the in-process chain, and so do image
  files of every accepted format, replayed frames and raw camera frames;
* the helper runs confined (seen from outside in /proc: seccomp mode 2, no_new_privs, no
  root, no capabilities, the rlimits, fds 0-2 only);
* a helper that tries open(), socket(), execve(), fork(), ptrace() or executable memory
  after the filter is killed with SIGSYS (and the same open() before the filter works);
* a hang is killed at the wall-clock limit, a busy loop at the CPU limit, an image too big
  for the memory limit ends cleanly; a crash is a clean error;
* malformed or hostile answers are refused; the keyholder side checks the file before
  starting a helper.

Hostile helpers come from the test-only entry point tests/interop/hostile_decoder.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.carriers import decodehelper, imagedecode, qr, sandbox
from core.carriers.camera import RawFrame
from core.carriers.errors import (
    CarrierError,
    QRDecoderFailed,
    QRImageUnreadable,
    QRNotFound,
    QRPayloadError,
)
from core.secmem import SecretBuffer
from tests.support.images import bomb_png, helpers_running, truncated_jpeg

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = str(Path(__file__).resolve().parent / "hostile_decoder.py")


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench_qr = _load("bench_qr", ROOT / "benchmarks" / "bench_qr.py")


def hostile(mode: str) -> tuple[str, ...]:
    return ("-I", HOSTILE, mode)


def outcome(fn: Any) -> tuple[Any, ...]:
    """A decode's result as comparable public facts plus the share's bytes."""
    try:
        out = fn()
    except CarrierError as exc:
        return ("error", exc.code, exc.message)
    with out.indices.view() as mv:
        got = bytes(mv)  # test only: the reference comparison
    out.indices.close()
    return ("share", got, out.decoder, out.variant, out.attempts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path, bytes]]:
    """The benchmark's corpus: one share per source (card print, console screen), every
    damage kind at every strength (42 images)."""
    out = tmp_path_factory.mktemp("qr_corpus")
    bench_qr.OUT = out
    rnd = random.Random(20)
    shares = bench_qr.make_shares(2, rnd)
    items = bench_qr.build_corpus(shares[:1], "card", rnd)
    items += bench_qr.build_corpus(shares[1:], "terminal", rnd)
    for buf, _ref in shares:
        buf.close()
    return items  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def share_png(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    rnd = random.Random(7)
    (buf, ref), *_ = bench_qr.make_shares(1, rnd)
    path = tmp_path_factory.mktemp("share") / "share.png"
    bench_qr.card_image(buf).save(path)
    buf.close()
    return path, ref


# --- same results as the in-process chain -------------------------------------------------


def test_corpus_decodes_the_same_through_the_sandbox(
    corpus: list[tuple[str, Path, bytes]],
) -> None:
    decoded = 0
    for _kind, path, ref in corpus:
        inproc = outcome(lambda p=path: imagedecode.decode_file(p))
        sandboxed = outcome(lambda p=path: sandbox.decode_file(str(p)))
        assert sandboxed == inproc, path.name
        if inproc[0] == "share":
            assert inproc[1] == ref
            decoded += 1
    # the corpus has both outcomes, so the comparison covers successes and failures
    assert 0 < decoded < len(corpus)


def test_every_accepted_format_decodes(share_png: tuple[Path, bytes], tmp_path: Path) -> None:
    path, ref = share_png
    img = Image.open(path)
    for fmt in imagedecode.IMAGE_FORMATS:
        p = tmp_path / f"share.{fmt.lower()}"
        img.convert("RGB" if fmt == "JPEG" else "L").save(p, format=fmt)
        got = outcome(lambda p=p: sandbox.decode_file(str(p)))
        assert got[0] == "share" and got[1] == ref, (fmt, got)
        assert got == outcome(lambda p=p: imagedecode.decode_file(p)), fmt


def test_splice_and_locked_bounce_buffer_give_the_same(share_png: tuple[Path, bytes]) -> None:
    path, ref = share_png
    made: list[SecretBuffer] = []

    def alloc(n: int) -> SecretBuffer:
        made.append(SecretBuffer(n))
        return made[-1]

    a = outcome(lambda: sandbox.decode_file(str(path), alloc=alloc))
    assert [m.size for m in made] == [132, 66]  # spliced: the image never came through us
    made.clear()
    b = outcome(lambda: sandbox.decode_file(str(path), alloc=alloc, use_splice=False))
    assert a == b and a[1] == ref
    # the fallback carried the file through one locked 64 KiB buffer, closed afterwards
    assert [m.size for m in made] == [65536, 132, 66] and all(m.closed for m in made)


def test_replayed_frames_match_the_in_process_scan(
    share_png: tuple[Path, bytes], tmp_path: Path
) -> None:
    path, ref = share_png
    blank = tmp_path / "blank.png"
    Image.new("L", (320, 240), 90).save(blank)
    url = tmp_path / "url.png"
    import qrcode

    qrcode.make("https://example.com/not-a-share").save(url)
    frames = [blank, url, blank, path]
    inproc = outcome(
        lambda: imagedecode.scan_frames(imagedecode.ReplayFrameSource(frames))
    )
    sandboxed = outcome(
        lambda: sandbox.scan_frames([sandbox.FileFrame(str(p)) for p in frames])
    )
    assert sandboxed == inproc and inproc[1] == ref
    # no share among the frames: the first payload error wins, as in-process
    no_share = [blank, url, blank]
    a = outcome(lambda: imagedecode.scan_frames(imagedecode.ReplayFrameSource(no_share)))
    b = outcome(lambda: sandbox.scan_frames([sandbox.FileFrame(str(p)) for p in no_share]))
    assert a == b and a[1] == "qr-payload"


def test_raw_camera_frames_decode(share_png: tuple[Path, bytes]) -> None:
    path, ref = share_png
    gray = Image.open(path).convert("L")
    w, h = gray.size
    grey = gray.tobytes()
    yuyv = bytes(b for px in grey for b in (px, 128))
    bio = io.BytesIO()
    gray.save(bio, format="JPEG", quality=90)
    empty = RawFrame("GREY", 64, 48, bytes(64 * 48))
    for frame in (
        RawFrame("GREY", w, h, grey),
        RawFrame("YUYV", w, h, yuyv),
        RawFrame("MJPG", w, h, bio.getvalue()),
    ):
        got = outcome(lambda f=frame: sandbox.scan_frames([empty, f]))
        assert got[0] == "share" and got[1] == ref, frame.fourcc
    with pytest.raises(QRImageUnreadable, match="NV12"):
        sandbox.scan_frames([RawFrame("NV12", w, h, grey)])
    with pytest.raises(QRImageUnreadable, match="too large"):
        sandbox.scan_frames([RawFrame("GREY", 100_000, 100_000, grey)])


def test_scan_stops_at_max_frames(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)

    def endless() -> Iterator[sandbox.FileFrame]:
        while True:
            yield sandbox.FileFrame(str(blank))

    with pytest.raises(QRNotFound, match="in 5 frames"):
        sandbox.scan_frames(endless(), max_frames=5)


# --- confinement, seen from outside -------------------------------------------------------


def _spawn(mode: str, *, cpu_s: int = 30, as_mib: int = 1536) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *hostile(mode)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=sandbox._helper_env(),
    )
    assert proc.stdin is not None
    proc.stdin.write(
        sandbox.REQUEST.pack(
            sandbox.REQUEST_MAGIC, sandbox.MODE_FILE, sandbox.FLAG_REQUIRE_SECCOMP, 1, 0,
            cpu_s, as_mib,
        )
    )  # fmt: skip
    proc.stdin.flush()
    return proc


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _wait_confined(pid: int) -> dict[str, str]:
    for _ in range(200):
        st = _status(pid)
        if st.get("Seccomp") == "2":
            return st
        time.sleep(0.05)
    raise AssertionError("the helper never installed its filter")


def test_helper_is_confined_as_seen_in_proc() -> None:
    proc = _spawn("hang-block", cpu_s=17, as_mib=1536)
    try:
        st = _wait_confined(proc.pid)
        assert st["NoNewPrivs"] == "1"
        assert st["Threads"] == "1"
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
        uids = st["Uid"].split()
        if os.geteuid() == 0:
            assert uids == ["65534"] * 4 and st["Gid"].split() == ["65534"] * 4
        else:
            assert "0" not in uids
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        for name, value in (
            ("Max cpu time", "17"),
            ("Max file size", "0"),
            ("Max core file size", "0"),
            ("Max processes", "0"),
            ("Max open files", "3"),
            ("Max address space", str(1536 << 20)),
        ):
            line = next(ln for ln in limits.splitlines() if ln.startswith(name))
            assert line.split()[len(name.split())] == value, line
        assert sorted(os.listdir(f"/proc/{proc.pid}/fd")) == ["0", "1", "2"]
        # not dumpable: its memory is not readable by another process of its user
        assert st.get("Seccomp_filters") == "1"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "mode", ["open", "socket", "socket-unix", "exec", "fork", "ptrace", "exec-memory"]
)
def test_forbidden_system_call_after_the_filter_kills(mode: str) -> None:
    proc = _spawn(mode)
    _out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGSYS, proc.returncode


def test_the_same_open_before_the_filter_works(share_png: tuple[Path, bytes]) -> None:
    """The control: the kill above is the filter's doing, not a broken open()."""
    path, ref = share_png
    got = outcome(lambda: sandbox.decode_file(str(path), command=hostile("open-before")))
    assert got[0] == "share" and got[1] == ref
    # and the hostile entry point without a hostile step is the production path
    assert outcome(lambda: sandbox.decode_file(str(path), command=hostile("decode"))) == got


def test_sandbox_kill_is_a_clean_error(share_png: tuple[Path, bytes]) -> None:
    path, _ref = share_png
    for mode in ("open", "socket", "exec"):
        with pytest.raises(QRDecoderFailed, match="forbidden system call") as ei:
            sandbox.decode_file(str(path), command=hostile(mode))
        assert ei.value.code == "qr-decoder-failed"
        assert "could not read this image" in ei.value.message
        assert "collected so far are kept" in ei.value.message
    assert helpers_running() == []


# --- limits -------------------------------------------------------------------------------


def test_hang_is_killed_at_the_wall_clock_limit(share_png: tuple[Path, bytes]) -> None:
    path, _ref = share_png
    limits = sandbox.Limits(cpu_s=60, wall_s=3.0)
    with pytest.raises(QRDecoderFailed, match="did not finish within 3 s"):
        sandbox.decode_file(str(path), command=hostile("hang-block"), limits=limits)
    assert helpers_running() == []


def test_busy_loop_is_killed_at_the_cpu_limit(share_png: tuple[Path, bytes]) -> None:
    path, _ref = share_png
    limits = sandbox.Limits(cpu_s=2, wall_s=120.0)
    with pytest.raises(QRDecoderFailed, match="used up its 2 s of processor time"):
        sandbox.decode_file(str(path), command=hostile("hang-cpu"), limits=limits)
    assert helpers_running() == []


def test_an_image_over_the_memory_limit_ends_cleanly(
    share_png: tuple[Path, bytes], tmp_path: Path
) -> None:
    """A legitimate but large image (6000x6000 RGB: 108 MB decoded) under a 256 MiB
    address-space limit: the decoder runs out of memory, the answer is clean. Under the
    same limit a share photo still decodes: the image's size is what hit it."""
    big = tmp_path / "big.png"
    Image.new("RGB", (6000, 6000), (200, 180, 160)).save(big)
    limits = sandbox.Limits(address_space_mib=256)
    with pytest.raises(QRDecoderFailed, match="memory") as ei:
        sandbox.decode_file(str(big), limits=limits)
    assert ei.value.code == "qr-decoder-failed"
    got = outcome(lambda: sandbox.decode_file(str(share_png[0]), limits=limits))
    assert got[0] == "share" and got[1] == share_png[1]


def test_a_crash_is_a_clean_error(share_png: tuple[Path, bytes]) -> None:
    path, _ref = share_png
    with pytest.raises(QRDecoderFailed, match="crashed \\(SIGSEGV"):
        sandbox.decode_file(str(path), command=hostile("segv"))


def test_a_helper_that_dies_while_it_is_fed(tmp_path: Path) -> None:
    """The keyholder is still writing (8 MB) when the helper exits: EPIPE, a clean error."""
    noisy = tmp_path / "noise.png"
    rnd = random.Random(3)
    Image.frombytes("L", (3000, 3000), rnd.randbytes(9_000_000)).save(noisy)
    assert noisy.stat().st_size > 8_000_000
    with pytest.raises(QRDecoderFailed, match="exit status 3"):
        sandbox.decode_file(str(noisy), command=hostile("die-early"))


def test_production_helper_has_no_test_modes(share_png: tuple[Path, bytes]) -> None:
    """Arguments (and test-looking variables) do not change what the production helper does."""
    path, ref = share_png
    cmd = ("-I", "-m", sandbox.HELPER_MODULE, "hang-cpu", "open")
    got = outcome(lambda: sandbox.decode_file(str(path), command=cmd))
    assert got[0] == "share" and got[1] == ref


# --- hostile answers ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["garbage", "bad-length", "unknown-code", "silent"])
def test_malformed_answers_are_refused(share_png: tuple[Path, bytes], mode: str) -> None:
    path, _ref = share_png
    with pytest.raises(QRDecoderFailed, match="without a valid answer"):
        sandbox.decode_file(str(path), command=hostile(mode))


def test_an_answer_that_is_not_digits_fails_validation(share_png: tuple[Path, bytes]) -> None:
    path, _ref = share_png
    with pytest.raises(QRPayloadError, match="other than digits"):
        sandbox.decode_file(str(path), command=hostile("not-digits"))


def test_helper_cannot_write_escape_sequences_to_the_screen(
    share_png: tuple[Path, bytes],
) -> None:
    path, _ref = share_png
    with pytest.raises(QRNotFound) as ei:
        sandbox.decode_file(str(path), command=hostile("escape-message"))
    assert ei.value.message == "no QR code found in the image"


# --- the keyholder side checks the file before any helper starts -------------------------


def _no_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("a helper was started")

    monkeypatch.setattr(sandbox.subprocess, "Popen", refuse)


def test_file_checks_come_before_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_helper(monkeypatch)
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as fh:
        fh.truncate(sandbox.MAX_FILE_BYTES + 1)  # sparse: nothing is read
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    secret = tmp_path / "outside.png"  # e.g. a root-only file of the live system
    secret.write_bytes(b"\x89PNG not for the decoder")
    link = tmp_path / "share.png"
    link.symlink_to(secret)
    for path, why in (
        (link, "is a symbolic link: refused"),
        (huge, "over 40 MiB are refused"),
        (empty, "is empty"),
        (fifo, "not a regular file"),  # and opening it did not block
        (tmp_path, "not a regular file"),
        (tmp_path / "missing.png", "No such file"),
    ):
        with pytest.raises(QRImageUnreadable, match=why):
            sandbox.decode_file(str(path))


def test_bomb_and_truncated_jpeg_are_clean_messages(
    share_png: tuple[Path, bytes], tmp_path: Path
) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(QRImageUnreadable, match=r"bomb\.png declares far more .* too large"):
        sandbox.decode_file(str(bomb))
    # under Pillow's own bomb threshold but over the chain's pixel limit
    bomb2 = bomb_png(tmp_path / "bomb2.png", side=8000)
    with pytest.raises(QRImageUnreadable, match=r"bomb2\.png is 8000x8000 pixels: too large"):
        sandbox.decode_file(str(bomb2))
    jpg = truncated_jpeg(share_png[0], tmp_path / "half.jpg")
    with pytest.raises(QRImageUnreadable, match=r"half\.jpg is not an image file this tool can read"):
        sandbox.decode_file(str(jpg))


def test_formats_outside_the_list_are_refused(tmp_path: Path) -> None:
    """EPS (Pillow would run Ghostscript) and other plugins are not offered the bytes."""
    eps = tmp_path / "card.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    ico = tmp_path / "card.ico"
    Image.new("L", (32, 32), 0).save(ico, format="ICO")
    for p in (eps, ico):
        with pytest.raises(QRImageUnreadable, match="not an image file"):
            sandbox.decode_file(str(p))
        with pytest.raises(QRImageUnreadable, match="not an image file"):
            imagedecode.decode_file(p)


def test_demo_mode_without_seccomp_still_confines(
    share_png: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where python3-seccomp is missing, a ceremony refuses to decode; demo mode decodes
    with the other limits and says so in the reply's facts."""
    path, ref = share_png
    cmd = ("-I", "-c", NO_SECCOMP)
    with pytest.raises(QRDecoderFailed, match="python3-seccomp"):
        sandbox.decode_file(str(path), command=cmd)
    out = sandbox.decode_file(str(path), command=cmd, require_seccomp=False)
    with out.indices.view() as mv:
        assert bytes(mv) == ref
    out.indices.close()
    assert out.sandbox == {
        "seccomp": False,
        "no_new_privs": True,
        "rlimits": True,
        "dropped_root": os.geteuid() == 0,
    }


# The production helper with the seccomp module hidden (as on a machine without the package).
NO_SECCOMP = (
    "import sys; sys.modules['seccomp'] = None; "
    "from core.carriers import decodehelper; decodehelper.main()"
)


def test_decoded_answer_reports_full_confinement(share_png: tuple[Path, bytes]) -> None:
    out = sandbox.decode_file(str(share_png[0]))
    out.indices.close()
    assert out.sandbox == {
        "seccomp": True,
        "no_new_privs": True,
        "rlimits": True,
        "dropped_root": os.geteuid() == 0,
    }


def test_secret_results_land_in_the_given_allocator(share_png: tuple[Path, bytes]) -> None:
    made: list[SecretBuffer] = []

    def alloc(n: int) -> SecretBuffer:
        made.append(SecretBuffer(n))
        return made[-1]

    out = sandbox.decode_file(str(share_png[0]), alloc=alloc)
    # the payload digits (132) were read into one buffer, converted, and that buffer wiped
    assert [b.size for b in made] == [132, 66]
    assert made[0].closed and not made[1].closed and out.indices is made[1]
    out.indices.close()


def test_decodehelper_allowlist_has_no_file_process_or_network_calls() -> None:
    forbidden = {
        "open", "openat", "openat2", "creat", "execve", "execveat", "socket", "socketpair",
        "connect", "bind", "clone", "clone3", "fork", "vfork", "ptrace", "process_vm_readv",
        "process_vm_writev", "memfd_create", "ioctl",
    }  # fmt: skip
    assert not forbidden & set(decodehelper.ALLOWED)
    assert qr.VALID_WORD_COUNTS == (20, 33) and sandbox.PAYLOAD_LENGTHS == (80, 132)


SIGPIPE_PROBE = """
import os, sys
from core.carriers import sandbox
from core.keyholder import harden
wiped = []
harden.install_signal_handlers(lambda: wiped.append(1))  # the keyholder's handlers
r, w = os.pipe()
os.close(r)  # a helper that went away
guard = sandbox._sigpipe_blocked() if sys.argv[1] == "guarded" else open(os.devnull)
with guard:
    try:
        os.write(w, b"image bytes")
    except BrokenPipeError:
        print("EPIPE")
print("alive", len(wiped))
"""


def test_a_write_to_a_dead_helper_does_not_trigger_the_keyholder_sigpipe_handler() -> None:
    """The keyholder wipes and exits on SIGPIPE (a UI that died); writing to a dead helper
    must be a plain EPIPE instead. The control, unguarded, shows the handler firing."""
    run = [sys.executable, "-I", "-c", SIGPIPE_PROBE]
    guarded = subprocess.run([*run, "guarded"], capture_output=True, text=True, timeout=60)
    assert guarded.returncode == 0 and guarded.stdout.split() == ["EPIPE", "alive", "0"]
    bare = subprocess.run([*run, "bare"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 128 + signal.SIGPIPE and bare.stdout == ""


def test_image_modes_and_encodings_seen_in_the_wild(
    share_png: tuple[Path, bytes], tmp_path: Path
) -> None:
    """Palette, alpha, 16-bit, 1-bit G4 TIFF, CMYK and progressive JPEG with EXIF, text
    chunks, animated GIF, lossy WebP, and codeless float/16-bit images that run the whole
    chain: the filter lets every path of the decoders through, with the same results."""
    from PIL import PngImagePlugin

    src = Image.open(share_png[0]).convert("L")
    noise = Image.frombytes("L", (300, 200), random.Random(1).randbytes(60_000))
    text = PngImagePlugin.PngInfo()
    text.add_itxt("Description", "\u00e9" * 400, zip=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    cases: list[tuple[str, Image.Image, dict[str, Any]]] = [
        ("p.png", src.convert("P"), {}),
        ("rgba.png", src.convert("RGBA"), {}),
        ("i16.png", src.convert("I;16"), {}),
        ("text.png", src, {"pnginfo": text}),
        ("g4.tif", src.convert("1"), {"compression": "group4"}),
        ("cmyk.jpg", src.convert("CMYK"), {}),
        ("exif.jpg", src.convert("RGB"), {"progressive": True, "exif": exif.tobytes()}),
        ("anim.gif", src.convert("P"), {"save_all": True, "append_images": [noise.convert("P")]}),
        ("lossy.webp", src.convert("RGB"), {"quality": 80}),
        ("noise-f.tif", noise.convert("F"), {}),
        ("noise-i16.png", noise.convert("I;16"), {}),
        ("noise-la.webp", noise.convert("LA"), {}),
    ]
    for name, img, kw in cases:
        p = tmp_path / name
        img.save(p, **kw)
        inproc = outcome(lambda p=p: imagedecode.decode_file(p))
        assert outcome(lambda p=p: sandbox.decode_file(str(p))) == inproc, name
        assert inproc[0] == ("error" if name.startswith("noise") else "share"), (name, inproc)


def test_scan_parameters_from_the_ui_are_clamped(tmp_path: Path) -> None:
    """timeout_s and max_frames come from the UI's request: a huge timeout cannot give a
    helper hours of CPU (nor overflow the request), nonsense counts still run."""
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    lim = sandbox.scan_limits(sandbox.MAX_SCAN_S)
    assert lim.cpu_s <= 315 and lim.wall_s <= 330
    for timeout_s, max_frames in ((1e12, 10**12), (-5, -5), (0, 0)):
        with pytest.raises(QRNotFound):
            sandbox.scan_frames(
                [sandbox.FileFrame(str(blank))], timeout_s=timeout_s, max_frames=max_frames
            )


def test_a_helper_that_cannot_start_is_a_clean_error(
    share_png: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.sys, "executable", "/nonexistent/python3")
    with pytest.raises(QRDecoderFailed, match="could not be started"):
        sandbox.decode_file(str(share_png[0]))


#: Imports inside functions of the chain's modules that the helper never needs (capture
#: runs in the keyholder, not in the helper; so does the terminal QR reveal, qrshow).
_LAZY_NOT_IN_HELPER = {"core.carriers.camera", "core.carriers.qrshow"}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, not a submodule
        return False


def test_every_lazy_import_of_the_chain_is_loaded_before_confinement() -> None:
    """A module the chain imports inside a function (the grid-card stage, a decoder) must be
    loaded by ``prepare()``: after the filter, an import is refused and the read fails."""
    import ast

    import core.carriers as pkg

    lazy: set[str] = set()
    for name in ("imagedecode", "gridcard", "qrfit", "qrgrid", "qr"):
        tree = ast.parse(Path(pkg.__path__[0], f"{name}.py").read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    lazy.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    lazy.add(node.module)
                    # "from package import module" loads the module too
                    lazy.update(m for a in node.names if _is_module(m := f"{node.module}.{a.name}"))
    lazy -= _LAZY_NOT_IN_HELPER
    assert "core.carriers.gridcard" in lazy  # the check sees the stages the chain loads late
    assert "core.carriers.qrfit" in lazy
    code = (
        "import sys, json\n"
        "from core.carriers import decodehelper\n"
        "decodehelper.prepare()\n"
        f"print(json.dumps(sorted(m for m in {sorted(lazy)!r} if m not in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(pkg.__path__[0]).parent.parent,
    )
    assert json.loads(out.stdout) == []
