"""Benchmark: what the decoder sandbox costs per image read (issue 20).

Every QR read from a file starts a fresh helper process (exec of ``python -I -m
core.carriers.decodehelper``, imports, a warm-up pass, confinement), sends the file through a
pipe and reads back the payload digits. This prints, side by side with the in-process chain
(:func:`core.carriers.imagedecode.decode_file`, what the keyholder ran before):

* share images as printed on a card (decoded by the first variant): the boundary's cost
  dominates;
* a 12-megapixel photo with the code small in it;
* a scan of replayed frames (one helper for all the frames);
* the helper's fixed cost alone (a 64x64 blank image, which the chain rejects at once).

Then every image of the project's QR corpus (the 252 images ``bench_qr.py`` builds: seed
2026, 6 shares, card and terminal renders, 7 kinds of damage at 3 strengths) is decoded both
ways; the exit status is 1 if any result differs (share, decoder, variant, attempts, or
error code and message). ``tests/interop/test_decode_sandbox.py`` checks a 42-image cross
section of the same corpus on every ``make test``.

Run: ``.venv/bin/python benchmarks/bench_decode_sandbox.py [--n N] [--no-corpus]``
(``make bench``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_qr
from bench_qr import card_image, make_shares

from core.carriers import imagedecode, sandbox
from core.carriers.errors import CarrierError


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            res = fn()
        except CarrierError:
            res = None
        out.append((time.perf_counter() - t) * 1000)
        idx = getattr(res, "indices", None)
        if idx is not None:
            idx.close()
    return out


def row(name: str, inproc: list[float], boxed: list[float]) -> None:
    a, b = statistics.median(inproc), statistics.median(boxed)
    print(f"{name:<34}{a:>10.1f} ms{b:>10.1f} ms{b - a:>10.1f} ms{b / a:>8.1f}x")


def outcome(fn: Callable[[], object]) -> tuple[object, ...]:
    try:
        out = fn()
    except CarrierError as exc:
        return ("error", exc.code, exc.message)
    idx = out.indices  # type: ignore[attr-defined]
    with idx.view() as mv:
        got = bytes(mv)  # benchmark only: the comparison
    idx.close()
    return ("share", got, out.decoder, out.variant, out.attempts)  # type: ignore[attr-defined]


def whole_corpus() -> bool:
    """bench_qr's corpus, decoded in-process and sandboxed; True if every result matches."""
    with tempfile.TemporaryDirectory() as tmp:
        bench_qr.OUT = Path(tmp)
        rnd = random.Random(2026)  # bench_qr's defaults: the same 252 images
        shares = make_shares(6, rnd)
        items = bench_qr.build_corpus(shares, "card", rnd)
        items += bench_qr.build_corpus(shares, "terminal", rnd)
        for buf, _ in shares:
            buf.close()
        same = decoded = 0
        t_in = t_box = 0.0
        for _kind, path, ref in items:
            t = time.perf_counter()
            a = outcome(lambda p=path: imagedecode.decode_file(p))
            t_in += time.perf_counter() - t
            t = time.perf_counter()
            b = outcome(lambda p=path: sandbox.decode_file(str(p)))
            t_box += time.perf_counter() - t
            same += a == b
            decoded += a[0] == "share" and a[1] == ref
            if a != b:
                print(f"  DIFFERENT: {path.name}: in-process {a[:2]} sandboxed {b[:2]}")
    n = len(items)
    print(
        f"\nQR corpus: {n} images, {same} identical results through the sandbox "
        f"({decoded} decoded to the right share); total {t_in:.1f} s in-process, "
        f"{t_box:.1f} s sandboxed"
    )
    return same == n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10, help="repetitions per case")
    ap.add_argument("--no-corpus", action="store_true", help="skip the whole-corpus comparison")
    args = ap.parse_args()
    rnd = random.Random(20)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        shares = make_shares(3, rnd)
        cards = []
        for i, (buf, _ref) in enumerate(shares):
            p = d / f"card{i}.png"
            card_image(buf).save(p)
            cards.append(p)
            buf.close()
        photo = Image.new("L", (4000, 3000), 170)
        photo.paste(Image.open(cards[0]).resize((500, 500)), (1700, 1200))
        photo.convert("RGB").save(d / "photo.jpg", quality=90)
        Image.new("L", (64, 64), 255).save(d / "blank.png")
        blank = Image.new("L", (640, 480), 120)
        for i in range(4):
            blank.save(d / f"frame{i}.png")
        frames = [d / f"frame{i}.png" for i in range(4)] + [cards[1]]

        print(f"median of {args.n} runs; 'boundary' = sandboxed - in-process")
        print(f"{'case':<34}{'in-process':>13}{'sandboxed':>13}{'boundary':>13}{'ratio':>9}")
        print("-" * 82)
        for name, path in (
            ("share card PNG (first variant)", cards[2]),
            ("12 MP JPEG photo, small code", d / "photo.jpg"),
            ("64x64 blank (fixed cost)", d / "blank.png"),
        ):
            inproc = timed(lambda p=path: imagedecode.decode_file(p), args.n)
            boxed = timed(lambda p=path: sandbox.decode_file(str(p)), args.n)
            row(name, inproc, boxed)
        inproc = timed(
            lambda: imagedecode.scan_frames(imagedecode.ReplayFrameSource(frames)), args.n
        )
        boxed = timed(
            lambda: sandbox.scan_frames([sandbox.FileFrame(str(p)) for p in frames]), args.n
        )
        row("replay: 4 blank frames + a share", inproc, boxed)
    print(
        "\nThe boundary is a fixed cost per read (process start, imports, warm-up, filter),"
        " paid once per scan of frames, not per frame."
    )
    if not args.no_corpus and not whole_corpus():
        print("the sandbox gave different results: FAIL")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
