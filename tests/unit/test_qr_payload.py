"""Share QR payload: encoding, validation, QR version/mode, round trips."""

from __future__ import annotations

import os
import random

import pytest
import qrcode.util
import shamir_mnemonic
import zxingcpp
from qrcode.constants import ERROR_CORRECT_M

from core.carriers import qr
from core.carriers.errors import QRPayloadError
from core.secmem import SecretBuffer
from core.shamir.wordlist import indices_from_mnemonic


def mnemonics(secret_len: int, n: int = 5, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        groups = shamir_mnemonic.generate_mnemonics(
            1, [(3, 5)], rnd.randbytes(secret_len), extendable=rnd.random() < 0.5,
            iteration_exponent=0,
        )
        out += groups[0]
    return out[:n]


def word_ints(m: str) -> list[int]:
    return list(shamir_mnemonic.wordlist.mnemonic_to_indices(m))


def payload_text(buf: SecretBuffer) -> str:
    with buf.view() as mv:
        return bytes(mv).decode()


def indices_list(buf: SecretBuffer) -> list[int]:
    with buf.view() as mv:
        return [(mv[i] << 8) | mv[i + 1] for i in range(0, len(mv), 2)]


@pytest.mark.parametrize("secret_len", [16, 32])
def test_round_trip_many_shares(secret_len: int) -> None:
    for m in mnemonics(secret_len, n=40, seed=secret_len):
        idx = indices_from_mnemonic(m)
        payload = qr.indices_to_payload(idx)
        expected = "".join(f"{w:04d}" for w in word_ints(m))
        assert payload_text(payload) == expected  # the SeedQR convention, 4 digits per word
        with payload.view() as mv:
            back = qr.payload_to_indices(mv)
        assert indices_list(back) == word_ints(m)


def test_33_words_is_version_4_level_m_numeric() -> None:
    (m,) = mnemonics(32, n=1)
    idx = indices_from_mnemonic(m)
    with qr.make_matrix(idx) as mat:
        assert (mat.version, mat.size, mat.ec_level) == (4, 33, "M")
        img = qr.render_image(mat, scale=4)
    (res,) = zxingcpp.read_barcodes(img)
    assert res.extra["Version"] == "4" and res.extra["ECLevel"] == "M"
    assert res.bytes == "".join(f"{w:04d}" for w in word_ints(m)).encode()
    # Numeric mode: the bit stream starts with mode indicator 0001 and a 10-bit count
    # of 132; in byte mode 132 characters would not even fit version 4-M (62 bytes).
    payload = qr.indices_to_payload(idx)
    with payload.view() as mv:
        seg = qr._LockedNumeric(mv)
        data = qrcode.util.create_data(4, ERROR_CORRECT_M, [seg])
    assert data[0] >> 4 == 0b0001
    # (v4-M has two blocks and the code words are interleaved: block 1 is data[0::2])
    assert ((data[0] & 0x0F) << 6) | (data[2] >> 2) == 132


def test_20_words_is_version_3() -> None:
    (m,) = mnemonics(16, n=1)
    with qr.make_matrix(indices_from_mnemonic(m)) as mat:
        assert (mat.version, mat.size) == (3, 29)


def _digits(m: str) -> bytearray:
    return bytearray("".join(f"{w:04d}" for w in word_ints(m)).encode())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p[:-4], "holds 128 characters"),
        (lambda p: p + b"0", "holds 133 characters"),
        (lambda p: bytearray(b""), "holds 0 characters"),
        (lambda p: p[:10] + b"A" + p[11:], "characters other than digits"),
        (lambda p: p[:8] + b"1024" + p[12:], "word 3 .* beyond the 1024-word list"),
        (lambda p: p[:8] + b"9999" + p[12:], "word 3 .* beyond the 1024-word list"),
    ],
)
def test_validation_errors(mutate: object, message: str) -> None:
    (m,) = mnemonics(32, n=1)
    bad = mutate(_digits(m))  # type: ignore[operator]
    with pytest.raises(QRPayloadError, match=message) as ei:
        qr.payload_to_indices(bad)
    assert bytes(bad[:8]).decode(errors="replace") not in str(ei.value) or not bad


def test_checksum_error_on_one_changed_word() -> None:
    (m,) = mnemonics(32, n=1)
    p = _digits(m)
    w = int(p[40:44]) ^ 1
    p[40:44] = f"{w:04d}".encode()
    with pytest.raises(QRPayloadError, match="checksum"):
        qr.payload_to_indices(p)


def test_garbage_text_qr() -> None:
    with pytest.raises(QRPayloadError, match="holds 19 characters"):
        qr.payload_to_indices(b"https://example.com")


def test_indices_validation() -> None:
    buf = SecretBuffer(10)
    with pytest.raises(QRPayloadError, match="20 or 33 words"):
        qr.indices_to_payload(buf)
    buf = SecretBuffer(66)
    with buf.view() as mv:
        mv[0] = 4  # index 1024
    with pytest.raises(QRPayloadError, match="word 1 is outside"):
        qr.indices_to_payload(buf)


def test_rs1024_matches_reference() -> None:
    for m in mnemonics(32, n=10, seed=7):
        idx = indices_from_mnemonic(m)
        with idx.view() as mv:
            assert qr.rs1024_verify(mv, 33)
            mv[21] ^= 1
            assert not qr.rs1024_verify(mv, 33)


def test_valid_word_counts() -> None:
    assert 20 in qr.VALID_WORD_COUNTS and 33 in qr.VALID_WORD_COUNTS
    assert 21 not in qr.VALID_WORD_COUNTS and 23 not in qr.VALID_WORD_COUNTS


def test_matrix_differs_per_share() -> None:
    a, b = mnemonics(32, n=2, seed=os.getpid())
    with qr.make_matrix(indices_from_mnemonic(a)) as ma, qr.make_matrix(
        indices_from_mnemonic(b)
    ) as mb, ma.rows() as x, mb.rows() as y:
        assert bytes(x) != bytes(y)
