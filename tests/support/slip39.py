"""SLIP-39 share sets made by the reference package (``shamir-mnemonic``), for tests that
need real shares without a genesis in the keyholder."""

from __future__ import annotations

import os
from dataclasses import dataclass

from shamir_mnemonic import shamir
from shamir_mnemonic.share import Share


@dataclass(frozen=True)
class ReferenceSet:
    """One 3-of-5 share set of a random 256-bit secret (words, and its identifier)."""

    identifier: int
    mnemonics: tuple[str, ...]


def reference_shares(count: int, *, threshold: int = 3, shares: int = 5) -> list[ReferenceSet]:
    """``count`` share sets with distinct identifiers (the reference package draws them
    from its seeded generator: see the root conftest)."""
    out: list[ReferenceSet] = []
    while len(out) < count:
        groups = shamir.generate_mnemonics(
            1, [(threshold, shares)], os.urandom(32), b"", extendable=True, iteration_exponent=0
        )
        mnemonics = tuple(groups[0])
        ident = Share.from_mnemonic(mnemonics[0]).identifier
        if all(s.identifier != ident for s in out):
            out.append(ReferenceSet(ident, mnemonics))
    return out
