"""Issue 12, "smaller problems": each was confirmed against the code before the fix.

* a 64 MiB recipient key file was read whole and parsed (5.4 s, 117 MB): every key-file
  read is capped at one limit, checked with fstat before reading;
* an ``oct`` (symmetric) JWK was refused as a "PRIVATE key";
* a PIN that is not UTF-8 survived as bytes in the exception's ``__context__``;
* a STR field that is not UTF-8 was answered "internal" instead of "malformed";
* custodian terminals were opened without ``O_NONBLOCK`` (a serial line without carrier
  blocks the open forever) and the key press was awaited without a timeout.
"""

from __future__ import annotations

import os
import pty
import struct
import time
import tty
from pathlib import Path
from typing import Any

import pytest

from core.carriers import pkcs11 as cards
from core.carriers.errors import CardPinIncorrect
from core.keyholder import ops_core
from core.keyholder.client import KeyholderClient
from core.keyholder.protocol import (
    HEADER,
    KIND_REQUEST,
    FieldType,
    decode_fields,
    pack_header,
    unpack_header,
)
from core.seal import byok
from core.seal import recipients as R
from tests.support.engine import SCRIPTS

BIG = 64 << 20


# ------------------------------------------------------------------------- key-file cap


def _timed(fn: Any) -> tuple[BaseException, float]:
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:
        return exc, time.perf_counter() - t0
    raise AssertionError("not refused")


def test_64_mib_recipient_key_file_is_refused_before_reading(tmp_path: Path) -> None:
    from core.ceremony.engine import StepFailedError, WorkspaceRecipients
    from core.ceremony.script import load_script

    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    big = ws / "recipients" / "kms-openkcm-boot.pem"
    with open(big, "wb") as fh:  # a real 64 MiB file (not sparse: the old code read it all)
        chunk = b"-----BEGIN PUBLIC KEY-----\n" + b"A" * (1 << 20)
        for _ in range(BIG // len(chunk) + 1):
            fh.write(chunk)
    src = WorkspaceRecipients(ws, load_script(SCRIPTS / "genesis.toml"))
    exc, took = _timed(lambda: src.load("kms"))
    assert isinstance(exc, StepFailedError), exc
    assert f"more than the {R.MAX_KEY_FILE} accepted" in str(exc) and "nothing of it was read" in str(exc)
    # the same file through the recipients-file reader
    exc2, took2 = _timed(lambda: R.read_key_file(big))
    assert isinstance(exc2, R.MalformedKey) and "more than the" in str(exc2)
    print(f"\n64 MiB key file refused in {took * 1e3:.2f} ms (engine), {took2 * 1e3:.2f} ms (reader)")


def test_64_mib_of_key_bytes_are_refused_before_parsing() -> None:
    """The BYOK wrapping key and every parser take the same cap on raw bytes."""
    data = b"-----BEGIN PUBLIC KEY-----\n" + b"A" * BIG
    exc, took = _timed(lambda: byok.load_wrapping_key(data))
    assert isinstance(exc, byok.ByokError)
    assert "too large for a public key" in str(exc) and str(R.MAX_KEY_FILE) in str(exc)
    exc, _ = _timed(lambda: R.parse_public_key(b"{" + b" " * R.MAX_KEY_FILE + b"}"))
    assert isinstance(exc, R.MalformedKey) and "too large" in str(exc)
    print(f"\n64 MiB wrapping key refused in {took * 1e3:.3f} ms")


def test_key_file_that_is_a_link_or_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "key.pem"
    os.symlink("/dev/zero", link)
    with pytest.raises(R.MalformedKey, match="symbolic link"):
        R.read_key_file(link)
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    with pytest.raises(R.MalformedKey, match="a FIFO, not a plain file"):
        R.read_key_file(fifo)  # O_NONBLOCK: the open does not wait for a writer


# ------------------------------------------------------------------------- oct JWK


def test_oct_jwk_is_called_a_symmetric_key_not_a_private_key() -> None:
    jwk = b'{"kty":"oct","k":"GawgguFyGrWKav7AX4VKUg","alg":"A128KW"}'
    with pytest.raises(R.RecipientError) as info:
        R.parse_public_key(bytearray(jwk))
    msg = str(info.value)
    assert "symmetric" in msg and "kty oct" in msg, msg
    assert "PRIVATE key" not in msg
    assert "GawgguFyGrWKav7AX4VKUg" not in msg  # never echoed
    assert isinstance(info.value, R.PrivateKeySupplied)  # still secret material: same handling
    # a JWK set holding one oct key, and BYOK, say the same
    with pytest.raises(R.RecipientError, match="symmetric"):
        R.parse_public_key(b'{"keys":[{"k":"AAAA","kty":"oct"}]}')
    with pytest.raises(byok.ByokError, match="symmetric"):
        byok.load_wrapping_key(jwk)


# ------------------------------------------------------------------------- PIN


class _Token:
    flags = 0

    def open(self, **_kw: Any) -> Any:  # pragma: no cover - never reached
        raise AssertionError("a malformed PIN must not reach the card")


def test_non_utf8_pin_leaves_no_copy_in_the_exception() -> None:
    pin = bytearray(b"12\xff\xfe3456")
    with pytest.raises(CardPinIncorrect, match="not valid UTF-8") as info:
        with cards._session(_Token(), "S1", memoryview(pin), rw=False):
            pass
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__context__ or exc.__cause__
    assert not [e for e in chain if isinstance(e, UnicodeDecodeError)], (
        "the PIN's bytes are kept by a UnicodeDecodeError in the exception chain"
    )
    for e in chain:
        assert b"\xff\xfe3456" not in repr(e.args).encode("latin-1", "replace")


def test_is_utf8_matches_the_codec() -> None:
    from core.secmem import is_utf8

    for raw in (b"", b"1234", "éü€😀".encode(), b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80", b"\xe2\x82", b"a\xe2\x82\xac"):  # fmt: skip
        try:
            raw.decode("utf-8")
            ok = True
        except UnicodeDecodeError:
            ok = False
        assert is_utf8(memoryview(raw)) is ok, raw


# ------------------------------------------------------------------------- STR field


def test_non_utf8_text_field_is_malformed_not_internal() -> None:
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kh:
        value = b"genesis-\xff\xfe"
        payload = bytes([7]) + b"purpose" + struct.pack(">BI", FieldType.STR, len(value)) + value
        os.write(kh._w, pack_header(KIND_REQUEST, ops_core.SIGN, len(payload)) + payload)
        _kind, _op, length = unpack_header(kh._recv_exact(HEADER.size))
        fields = decode_fields(memoryview(kh._recv_exact(length)))
        assert fields["code"][1].tobytes() == b"malformed"
        assert b"UTF-8" in fields["message"][1].tobytes()
        assert kh.status()["master_held"] is False  # still serving


# ------------------------------------------------------------------------- terminals


def test_custodian_terminal_is_opened_non_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import custodian_tty as ct

    master, slave = pty.openpty()
    path = os.ttyname(slave)
    seen: list[int] = []
    real_open = os.open

    def spy(p: str, flags: int, *a: Any, **k: Any) -> int:
        if p == path:
            seen.append(flags)
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr(ct.os, "open", spy)
    try:
        with ct.custodian_tty(path, "shares") as fd:
            assert os.isatty(fd)
        assert seen and seen[0] & os.O_NONBLOCK, "opened without O_NONBLOCK"
    finally:
        os.close(master)
        os.close(slave)


def test_key_wait_times_out_and_still_erases_the_screen() -> None:
    from core import custodian_tty as ct

    master, slave = pty.openpty()
    tty.setraw(master)
    try:
        fd = os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="no key was pressed"):
                ct.wait_for_key_then_clear(fd, timeout=0.3)
            assert time.monotonic() - t0 < 30
            assert ct.CLEAR in os.read(master, 4096)  # erased although nobody pressed a key
            # with a key press it returns normally (and erases)
            os.write(master, b"x")
            ct.wait_for_key_then_clear(fd, timeout=5)
            assert ct.CLEAR in os.read(master, 4096)
        finally:
            os.close(fd)
    finally:
        os.close(master)
        os.close(slave)


def test_recipients_file_and_qr_image_take_the_same_checks(tmp_path: Path) -> None:
    """The recipients file (TOML listing the keys) and a share-QR image file are read
    like key files: plain files only, size checked first (a FIFO would block forever)."""
    from core.carriers import imagedecode
    from core.carriers.errors import CarrierError

    big = tmp_path / "recipients.toml"
    big.write_bytes(b"#" * (R.MAX_KEY_FILE + 1))
    with pytest.raises(R.RecipientError, match="more than the"):
        R.load_recipients_file(big)
    fifo = tmp_path / "share.png"
    os.mkfifo(fifo)
    with pytest.raises(CarrierError, match="a FIFO, not a plain file"):
        imagedecode.open_image(fifo)
