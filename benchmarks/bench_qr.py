"""Benchmark: share-QR decoding, zxing-cpp vs pyzbar vs our decoding chain.

Generates a corpus of degraded images of share QRs (printed-card renders and terminal
renders as the Linux console draws them) into ``benchmarks/out/qr_corpus/`` (git-ignored),
then decodes every image with each single decoder (on the image as given) and with
:func:`core.carriers.imagedecode.decode_image`. A decode counts only when it yields the
right share. Prints success rate and mean ms per image per damage kind, side by side.

Target: the chain decodes at least as many images as the best single decoder.

Run: ``.venv/bin/python benchmarks/bench_qr.py [--shares N] [--seed S]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import shamir_mnemonic
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qr_corpus import KINDS, degrade

from core.carriers import imagedecode, qr
from core.carriers.errors import CarrierError
from core.secmem import SecretBuffer
from core.shamir.wordlist import indices_from_mnemonic

OUT = Path(__file__).resolve().parent / "out" / "qr_corpus"
STRENGTHS = (0.2, 0.5, 0.8)


def make_shares(n: int, rnd: random.Random) -> list[tuple[SecretBuffer, bytes]]:
    out = []
    while len(out) < n:
        for m in shamir_mnemonic.generate_mnemonics(
            1, [(3, 5)], rnd.randbytes(32), iteration_exponent=0
        )[0]:
            buf = indices_from_mnemonic(m)
            with buf.view() as mv:
                out.append((buf, bytes(mv)))  # benchmark only: the reference as bytes
    return out[:n]


def terminal_image(buf: SecretBuffer) -> Image.Image:
    with qr.make_matrix(buf) as mat:
        text_buf = qr.render_terminal(mat)
    n = qr.text_length(text_buf)
    with text_buf.view() as mv:
        text = bytes(mv[:n]).decode()
    return qr.console_image(text)


def card_image(buf: SecretBuffer) -> Image.Image:
    with qr.make_matrix(buf) as mat:
        return qr.render_image(mat, scale=6)


def build_corpus(
    shares: list[tuple[SecretBuffer, bytes]], source: str, rnd: random.Random
) -> list[tuple[str, Path, bytes]]:
    items = []
    d = OUT / source
    d.mkdir(parents=True, exist_ok=True)
    for si, (buf, ref) in enumerate(shares):
        clean = card_image(buf) if source == "card" else terminal_image(buf)
        for kind in KINDS:
            for strength in STRENGTHS:
                img = degrade(clean, kind, strength, rnd)
                path = d / f"s{si:02d}-{kind}-{int(strength * 10)}.png"
                img.save(path)
                items.append((kind, path, ref))
    return items


def single(name: str, img: Image.Image, ref: bytes) -> bool:
    for _dec, _var, payload in imagedecode.raw_decode(img, decoders=(name,), variants=("as-is",)):
        try:
            buf = qr.payload_to_indices(payload)
        except CarrierError:
            continue
        with buf.view() as mv:
            ok = bytes(mv) == ref
        buf.close()
        if ok:
            return True
    return False


def chain(img: Image.Image, ref: bytes) -> bool:
    try:
        out = imagedecode.decode_image(img)
    except CarrierError:
        return False
    with out.indices.view() as mv:
        ok = bytes(mv) == ref
    out.indices.close()
    return ok


def run(items: list[tuple[str, Path, bytes]], title: str) -> dict[str, int]:
    methods = {
        "zxing-cpp": lambda im, ref: single("zxing-cpp", im, ref),
        "pyzbar": lambda im, ref: single("pyzbar", im, ref),
        "chain": chain,
    }
    ok: dict[tuple[str, str], int] = defaultdict(int)
    ms: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for kind, path, ref in items:
        img = Image.open(path)
        img.load()
        count[kind] += 1
        count["ALL"] += 1
        for name, fn in methods.items():
            t = time.perf_counter()
            good = fn(img, ref)
            dt = (time.perf_counter() - t) * 1000
            for k in (kind, "ALL"):
                ok[(k, name)] += good
                ms[(k, name)] += dt
    print(f"\n{title}: {count['ALL']} images")
    head = f"{'damage':<12}" + "".join(f"{n:>22}" for n in methods)
    print(head)
    print("-" * len(head))
    for k in [*KINDS, "ALL"]:
        row = f"{k:<12}"
        for name in methods:
            rate = ok[(k, name)] / count[k] * 100
            row += f"{rate:>9.1f}% {ms[(k, name)] / count[k]:>8.1f} ms  "
        print(row)
    return {name: ok[("ALL", name)] for name in methods}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", type=int, default=6)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    shares = make_shares(args.shares, rnd)
    verdicts = []
    for source, title in (("card", "Printed share card (PNG)"), ("terminal", "Terminal-rendered QR")):
        items = build_corpus(shares, source, rnd)
        res = run(items, title)
        best = max(res["zxing-cpp"], res["pyzbar"])
        verdicts.append(res["chain"] >= best)
        print(
            f"chain {res['chain']} vs best single decoder {best}: "
            f"{'OK' if res['chain'] >= best else 'BELOW TARGET'}"
        )
    for buf, _ in shares:
        buf.close()
    print(f"\ncorpus written to {OUT}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
