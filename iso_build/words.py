"""Show a SHA-256 digest as words to read aloud: ``python3 words.py HEX`` or ``--file PATH``.

The 256 bits are cut into 10-bit chunks (the last one padded with zero bits), each chunk
an index into the 1024-word SLIP-39 list: 26 words, printed in lines of 6 with their
position. Deterministic and reversible (``--decode`` maps the words back to the hex), so
two people comparing an ISO's hash can read words instead of 64 hex digits.
Standard library only: it runs on a fresh build machine before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_wordlist() -> list[str]:
    """The SLIP-39 word list: the project's copy in core/shamir if present, else ours."""
    for candidate in (HERE.parent / "core" / "shamir" / "wordlist.txt", HERE / "wordlist.txt"):
        if candidate.is_file():
            words = candidate.read_text(encoding="utf-8").split()
            if len(words) == 1024:
                return words
    raise SystemExit("words.py: no 1024-word list found")


def hex_to_words(hexdigest: str, words: list[str] | None = None) -> list[str]:
    """Map a hex digest to words, 10 bits per word (MSB first, zero-padded at the end)."""
    wl = words or load_wordlist()
    data = bytes.fromhex(hexdigest)
    nbits = len(data) * 8
    value = int.from_bytes(data, "big")
    nwords = -(-nbits // 10)
    value <<= nwords * 10 - nbits
    return [wl[(value >> (10 * (nwords - 1 - i))) & 0x3FF] for i in range(nwords)]


def words_to_hex(seq: list[str], nbytes: int = 32, words: list[str] | None = None) -> str:
    """Inverse of hex_to_words."""
    wl = words or load_wordlist()
    index = {w: i for i, w in enumerate(wl)}
    value = 0
    for w in seq:
        value = (value << 10) | index[w]
    value >>= len(seq) * 10 - nbytes * 8
    return value.to_bytes(nbytes, "big").hex()


def format_words(seq: list[str], per_line: int = 6) -> str:
    """Number the words and put per_line on a line."""
    lines = []
    for start in range(0, len(seq), per_line):
        chunk = seq[start : start + per_line]
        lines.append("  ".join(f"{start + i + 1:2d} {w:<10}" for i, w in enumerate(chunk)).rstrip())
    return "\n".join(lines)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hex", nargs="?", help="a hex digest")
    ap.add_argument("--file", type=Path, help="hash this file with SHA-256 first")
    ap.add_argument("--decode", nargs="+", metavar="WORD", help="words back to hex")
    args = ap.parse_args(argv)
    if args.decode:
        print(words_to_hex(args.decode))
        return 0
    digest = sha256_file(args.file) if args.file else args.hex
    if not digest:
        ap.error("give a hex digest or --file")
    print(format_words(hex_to_words(digest)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
