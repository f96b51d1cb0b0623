"""Public values as words to read aloud (fingerprints, KCVs, journal hashes, ISO hashes).

Uses the SLIP-39 word list (1024 words, unique 4-letter prefixes, chosen to be hard to
confuse when spoken), 10 bits per word, most significant bit first; the last word is
zero-padded on the right. Only for PUBLIC data: the result is a list of ``str``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["from_words", "to_words", "wordlist"]


@cache
def wordlist() -> tuple[str, ...]:
    """Return the 1024 SLIP-39 words in index order."""
    text = resources.files("core.shamir").joinpath("wordlist.txt").read_text("ascii")
    words = tuple(w.strip() for w in text.split() if w.strip())
    if len(words) != 1024:
        raise RuntimeError(f"word list has {len(words)} words, expected 1024")
    return words


def to_words(data: bytes, count: int | None = None) -> list[str]:
    """Encode public bytes as words, 10 bits each.

    Args:
        data: the public value (a hash or fingerprint).
        count: number of words wanted (a prefix of the full encoding); default all.

    Returns:
        Words covering ``ceil(8*len(data)/10)`` chunks, or ``count`` of them.
    """
    words = wordlist()
    bits = len(data) * 8
    total = -(-bits // 10)
    n = total if count is None else min(count, total)
    acc = int.from_bytes(data, "big") << (total * 10 - bits)  # public data only
    return [words[(acc >> (10 * (total - 1 - i))) & 0x3FF] for i in range(n)]


def from_words(text: str, nbytes: int) -> bytes:
    """Decode words produced by :func:`to_words` for ``nbytes`` bytes (full length)."""
    index = {w: i for i, w in enumerate(wordlist())}
    parts = text.split()
    total = -(-nbytes * 8 // 10)
    if len(parts) != total:
        raise ValueError(f"expected {total} words, got {len(parts)}")
    acc = 0
    for p in parts:
        if p not in index:
            raise ValueError(f"{p!r} is not in the word list")
        acc = (acc << 10) | index[p]
    return (acc >> (total * 10 - nbytes * 8)).to_bytes(nbytes, "big")
