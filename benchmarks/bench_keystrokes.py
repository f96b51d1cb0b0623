"""Benchmark: keystrokes to type one 33-word share on the keyholder's terminal (issue 14).

The keyholder's entry (:class:`core.keyholder.termentry.KeyEntry`, the state machine the
terminal loop feeds) is driven key by key with shares drawn from the word list (seeded),
in the ways a custodian types:

* ``prefixes``: the first 4 letters of each word (the word completes itself), Enter;
* ``whole words + space``: every letter, a space after each word (the letters after the
  completion are swallowed), Enter;
* ``before (issue 14)``: what the previous entry needed, 4 letters and a space a word,
  then Enter (counted, the reference: 166).

Each row gives the keystrokes per share (Enter included) and how many shares were read
back exactly; the word-for-word check is what makes the count honest. A third style,
whole words with no space, is reported for information (ambiguous when the end of one
word and the start of the next also begin a word; the docs say to type a space).

Target: ``prefixes`` at most 133 keys per share, every share read back exactly.

Run: ``.venv/bin/python benchmarks/bench_keystrokes.py [--shares N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import secmem
from core.keyholder.termentry import KeyEntry
from core.shamir.wordlist import WORD_BYTES, WORDS

TARGET = 133
BEFORE = 33 * 5 + 1


def run(words: list[str], data: bytes) -> tuple[int, bool]:
    buf = secmem.SecretBuffer(66, allow_unlocked=True)
    e = KeyEntry(33, buf, [False] * 33, allow_unlocked=True)
    try:
        finished = False
        for b in data:
            if e.feed(b) == "finish":
                finished = True
        with buf.view() as mv:
            got = [WORD_BYTES[mv[2 * i] << 8 | mv[2 * i + 1]].decode() for i in range(33)]
        return e.keystrokes, finished and all(e.filled) and got == words
    finally:
        e.close()
        buf.close()


STYLES = {
    "prefixes": lambda ws: b"".join(w[:4].encode() for w in ws) + b"\r",
    "whole words + space": lambda ws: b"".join(w.encode() + b" " for w in ws) + b"\r",
    "whole words, no space (info)": lambda ws: b"".join(w.encode() for w in ws) + b"\r",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", type=int, default=500)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    shares = [[rng.choice(WORDS) for _ in range(33)] for _ in range(args.shares)]
    print(f"{'style':32} {'keys/share':>10} {'exact':>12}")
    print(f"{'before (issue 14)':32} {BEFORE:>10}   (33 x (4 letters + space) + Enter)")
    ok = True
    for name, make in STYLES.items():
        keys = exact = 0
        for ws in shares:
            k, good = run(ws, make(ws))
            keys += k
            exact += good
        mean = keys / len(shares)
        print(f"{name:32} {mean:>10.1f} {exact:>6}/{len(shares):<5}  ratio to before {mean / BEFORE:.2f}")
        if name == "prefixes":
            ok = ok and mean <= TARGET and exact == len(shares)
        elif name == "whole words + space":
            ok = ok and exact == len(shares)
    print(f"target: prefixes <= {TARGET} keys per share, every share exact: {'MET' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
