"""All 45 official SLIP-39 test vectors (trezor/python-shamir-mnemonic vectors.json).

Valid cases must recover the exact master secret (passphrase "TREZOR", as the vectors
specify); invalid ones must be rejected, for the reason the description states.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.secmem import SecretBuffer
from core.shamir import slip39
from core.shamir.errors import ChecksumError, DigestError, ShareFormatError, Slip39Error
from core.shamir.wordlist import indices_from_mnemonic

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "slip39-vectors.json").read_text())
PASSPHRASE = b"TREZOR"

# Expected rejection per invalid vector: (exception class, error code or None).
EXPECTED_ERRORS: dict[str, tuple[type[Exception], str | None]] = {
    "Mnemonic with invalid checksum": (ChecksumError, "checksum"),
    "Mnemonic with invalid padding": (ShareFormatError, "share-format"),
    "Basic sharing 2-of-3": (Slip39Error, "insufficient"),
    "Mnemonics with different identifiers": (Slip39Error, "other-set"),
    "Mnemonics with different iteration exponents": (Slip39Error, "mismatch"),
    "Mnemonics with mismatching group thresholds": (Slip39Error, "mismatch"),
    "Mnemonics with mismatching group counts": (Slip39Error, "mismatch"),
    "Mnemonics with greater group threshold than group counts": (ShareFormatError, None),
    "Mnemonics with duplicate member indices": (Slip39Error, "duplicate"),
    "Mnemonics with mismatching member thresholds": (Slip39Error, "mismatch"),
    "Mnemonics giving an invalid digest": (DigestError, "digest"),
    "Insufficient number of groups": (Slip39Error, "insufficient"),
    "Threshold number of groups, but insufficient number of members in one group": (
        Slip39Error,
        "insufficient",
    ),
    "Mnemonic with insufficient length": (ShareFormatError, None),
    "Mnemonic with invalid master secret length": (ShareFormatError, None),
}


def _reason(description: str) -> tuple[type[Exception], str | None]:
    text = description.split(". ", 1)[1]
    text = text.split(" (")[0]
    return EXPECTED_ERRORS[text]


def _combine(mnemonics: list[str]) -> SecretBuffer:
    shares = []
    try:
        for m in mnemonics:
            with indices_from_mnemonic(m) as idx, idx.view() as mv:
                shares.append(slip39.decode_share(mv))
        with SecretBuffer(len(PASSPHRASE)) as pw, pw.view() as pmv:
            pmv[:] = PASSPHRASE
            return slip39.combine(shares, pmv)
    finally:
        for s in shares:
            s.close()


def test_there_are_45_vectors() -> None:
    assert len(VECTORS) == 45


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0].split(".")[0] for v in VECTORS])
def test_vector(vector: list[object]) -> None:
    description, mnemonics, secret_hex, _xprv = vector
    assert isinstance(description, str) and isinstance(mnemonics, list)
    assert isinstance(secret_hex, str)
    if secret_hex:
        with _combine(mnemonics) as master, master.view() as mv:
            assert mv.hex() == secret_hex  # test only: the vectors are public
    else:
        exc_type, code = _reason(description)
        with pytest.raises(exc_type) as info:
            _combine(mnemonics).close()
        if code is not None:
            assert info.value.code == code, info.value  # type: ignore[attr-defined]


@pytest.mark.parametrize("vector", [v for v in VECTORS if v[2]], ids=lambda v: v[0].split(".")[0])
def test_valid_shares_reencode_identically(vector: list[object]) -> None:
    """decode -> encode round trip gives back the same words (checksum and padding)."""
    for m in vector[1]:  # type: ignore[attr-defined]
        with indices_from_mnemonic(m) as idx, idx.view() as mv:
            share = slip39.decode_share(mv)
            with share.value, slip39.encode_share(share) as again, again.view() as amv:
                assert amv.tobytes() == mv.tobytes()
