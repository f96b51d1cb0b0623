"""The SLIP-39 word list, and word lookups that do not copy secrets into ``str``.

Every word index a share uses is looked up in *pre-built public tables*, so a lookup
returns a reference to an object that already exists (a word's ``bytes``, or its index
as an ``int``) instead of creating a new object holding secret data:

* index -> word: a two-level table ``WORDS_HL[hi][lo]`` where a share stores an index as
  two bytes ``hi, lo`` (no ``hi*256+lo`` int is ever computed from a secret).
* typed characters -> index: a trie over the characters (ints 0..255, cached by CPython).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Final

from core.secmem import SecretBuffer

__all__ = [
    "WORDS",
    "WORDS_HL",
    "WORD_BYTES",
    "PrefixResult",
    "indices_from_mnemonic",
    "lookup_typed",
    "mnemonic_from_indices",
    "nearest_words",
    "word_index",
]


def _load() -> tuple[str, ...]:
    text = resources.files("core.shamir").joinpath("wordlist.txt").read_text("ascii")
    words = tuple(w.strip() for w in text.split() if w.strip())
    if len(words) != 1024 or list(words) != sorted(words):
        raise RuntimeError("the SLIP-39 word list must hold 1024 sorted words")
    return words


WORDS: Final = _load()
WORD_BYTES: Final = tuple(w.encode("ascii") for w in WORDS)
WORDS_HL: Final = tuple(WORD_BYTES[hi * 256 : hi * 256 + 256] for hi in range(4))
_INDEX: Final = {w: i for i, w in enumerate(WORDS)}
_INDEX_OBJ: Final = tuple(range(1024))  # the int objects the trie hands out


def word_index(word: str) -> int:
    """Index of a PUBLIC word (tests, public data); raises KeyError if unknown."""
    return _INDEX[word]


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    word: int = -1  # index of the word ending here
    count: int = 0  # number of words below
    only: int = -1  # the word below, when count == 1


def _build_trie() -> _Node:
    root = _Node()
    for idx, wb in enumerate(WORD_BYTES):
        node = root
        node.count += 1
        for ch in wb:
            node = node.children.setdefault(ch, _Node())
            node.count += 1
            node.only = _INDEX_OBJ[idx] if node.count == 1 else -1
        node.word = _INDEX_OBJ[idx]
    return root


_TRIE: Final = _build_trie()
MIN_PREFIX: Final = 4  # every SLIP-39 word is identified by its first 4 letters


@dataclass(frozen=True)
class PrefixResult:
    """Outcome of looking up typed characters.

    ``status`` is ``"accepted"`` (an exact word, or a unique prefix of at least 4
    letters), ``"ambiguous"`` (a prefix of several words), or ``"unknown"``.
    ``index`` is the word index when accepted, else -1 (secret: never leaves the keyholder).
    """

    status: str
    # repr=False: a typed word's index is share material; keep it out of reprs (debug
    # output, tracebacks with locals).
    index: int = field(default=-1, repr=False)


def lookup_typed(chars: memoryview | bytearray) -> PrefixResult:
    """Look up what a custodian typed (ASCII letters, case-insensitive) in the trie."""
    node = _TRIE
    n = len(chars)
    for i in range(n):
        ch = chars[i]
        if 65 <= ch <= 90:
            ch |= 0x20
        nxt = node.children.get(ch)
        if nxt is None:
            return PrefixResult("unknown")
        node = nxt
    if n == 0:
        return PrefixResult("unknown")
    if node.word >= 0:
        return PrefixResult("accepted", node.word)
    if n >= MIN_PREFIX and node.count == 1:
        return PrefixResult("accepted", node.only)
    return PrefixResult("ambiguous")


def _distance(a: memoryview | bytearray, b: bytes, limit: int) -> int:
    """Optimal-string-alignment distance (substitution, insertion, deletion, swap)."""
    la, lb = len(a), len(b)
    if abs(la - lb) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        ai = a[i - 1] | 0x20
        for j in range(1, lb + 1):
            cost = 0 if ai == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ai == b[j - 2] and (a[i - 2] | 0x20) == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
        prev2, prev = prev, cur
    return prev[lb]


def nearest_words(chars: memoryview | bytearray, count: int = 4) -> list[str]:
    """The words closest to what was typed (edit distance, then a shared prefix).

    The typed characters are a *wrong* word; the suggestions are public list words,
    shown only to the custodian who is typing.
    """
    typed = chars[:8]
    scored: list[tuple[int, int, int]] = []
    for idx, wb in enumerate(WORD_BYTES):
        d = _distance(typed, wb, 3)
        if d <= 3:
            common = 0
            for k in range(min(len(typed), len(wb))):
                if (typed[k] | 0x20) != wb[k]:
                    break
                common += 1
            scored.append((d, -common, idx))
    scored.sort()
    return [WORDS[idx] for _, _, idx in scored[:count]]


def indices_from_mnemonic(mnemonic: str) -> SecretBuffer:
    """Parse a mnemonic given as text into a buffer of 2-byte word indices.

    For tests, benchmarks and interop only: the argument is already a ``str``. The
    keyholder never holds a share as ``str``; typed entry goes through :func:`lookup_typed`.
    """
    words = mnemonic.lower().split()
    if not words:
        raise ValueError("empty mnemonic")
    buf = SecretBuffer(2 * len(words))
    with buf.view() as mv:
        for k, w in enumerate(words):
            try:
                i = _INDEX[w]
            except KeyError:
                buf.close()
                raise ValueError(f"word {k + 1} is not in the SLIP-39 word list") from None
            mv[2 * k] = i >> 8
            mv[2 * k + 1] = i & 0xFF
    return buf


def mnemonic_from_indices(indices: memoryview | bytearray) -> str:
    """Render a share as a ``str`` mnemonic: FOR TESTS AND INTEROP ONLY.

    The keyholder displays shares through :mod:`core.shamir.display`, which writes word
    bytes straight from the public table to the terminal without building a ``str``.
    """
    return " ".join(
        WORDS_HL[indices[k]][indices[k + 1]].decode("ascii") for k in range(0, len(indices), 2)
    )


@cache
def max_word_length() -> int:
    """Length of the longest word (8)."""
    return max(len(w) for w in WORDS)
