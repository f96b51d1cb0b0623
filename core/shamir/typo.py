"""Word entry helpers: prefix completion, nearest words, and locating a wrong word.

Locating a wrong word uses RS1024's linearity (see :mod:`core.shamir.rs1024`): the
syndrome ``s = polymod(received) XOR 1`` of a share with one wrong word at distance ``d``
from the end equals ``F^d(e)`` where ``e`` is the XOR difference between the typed and the
correct word index. For every position we look ``s`` up in a precomputed public table
``F^d(e) -> e`` (one dict lookup per position, instead of trying 33 x 1024 substitutions
with a full checksum each). RS1024 has distance 4, so for a single wrong word exactly one
position and one word fit; with two or three wrong words usually none fits (which we
report as "several words may be wrong").

Secrecy: the syndrome depends only on the error, not on the share, so it is handled as
an int. A candidate word *is* a correct share word: it is computed as two bytes
(``hi``/``lo``, ints <= 255) and turned into a word ``str`` only for the custodian's own
screen (the accepted residue; the keyholder hands it out with the entry status only).
We never correct silently: the caller shows the candidates and the custodian retypes.

Word 2 holds the extendable flag, which selects the checksum's customization string; a
typo there that flips the flag is checked against the other string.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.shamir import rs1024
from core.shamir.slip39 import CUSTOM_EXT, CUSTOM_ORIG
from core.shamir.wordlist import WORDS_HL

__all__ = ["Candidate", "locate_wrong_word", "locate_wrong_word_raw"]

_EXT_WORD = 1  # 0-based position of the word holding the extendable flag (bit 4)


@dataclass(frozen=True)
class Candidate:
    """One way to make the checksum valid by changing the word at ``position`` (0-based).

    ``words`` are the replacement words (for the custodian's screen only).
    """

    position: int
    words: tuple[str, ...]


def locate_wrong_word_raw(indices: memoryview | bytearray) -> list[tuple[int, int, int]]:
    """Candidates as ``(position, hi, lo)`` of the replacement word index.

    Returns an empty list when the checksum already verifies (nothing to locate) or when
    no single substitution fixes it.
    """
    words = len(indices) // 2
    ext = (indices[2 * _EXT_WORD + 1] >> 4) & 1
    same, other = (CUSTOM_EXT, CUSTOM_ORIG) if ext else (CUSTOM_ORIG, CUSTOM_EXT)
    s = rs1024.syndrome_words(same, indices)
    if s == 0:
        return []
    out: list[tuple[int, int, int]] = []
    for pos in range(words):
        e = rs1024.error_image_table(words - 1 - pos).get(s)
        if e is None:
            continue
        hi = indices[2 * pos] ^ (e >> 8)
        lo = indices[2 * pos + 1] ^ (e & 0xFF)
        if hi > 3:
            continue
        if pos == _EXT_WORD and ((lo >> 4) & 1) != ext:
            continue  # would flip the flag: not valid under this customization string
        out.append((pos, hi, lo))
    # A wrong word 2 that flipped the extendable flag: syndrome under the other string.
    s2 = rs1024.syndrome_words(other, indices)
    e = rs1024.error_image_table(words - 1 - _EXT_WORD).get(s2)
    if e is not None:
        hi = indices[2 * _EXT_WORD] ^ (e >> 8)
        lo = indices[2 * _EXT_WORD + 1] ^ (e & 0xFF)
        if hi <= 3 and ((lo >> 4) & 1) != ext:
            out.append((_EXT_WORD, hi, lo))
    out.sort()
    return out


def locate_wrong_word(indices: memoryview | bytearray) -> list[Candidate]:
    """Every position where one substitution makes the checksum valid, with the words.

    Args:
        indices: the share as typed (2 bytes per word index).

    Returns:
        Candidates sorted by position; empty if the checksum verifies or no single
        substitution fixes it. Never changes ``indices``.
    """
    by_pos: dict[int, list[str]] = {}
    for pos, hi, lo in locate_wrong_word_raw(indices):
        # The one accepted residue: the candidate word as str, for the custodian's screen.
        by_pos.setdefault(pos, []).append(WORDS_HL[hi][lo].decode("ascii"))
    return [Candidate(pos, tuple(ws)) for pos, ws in sorted(by_pos.items())]
