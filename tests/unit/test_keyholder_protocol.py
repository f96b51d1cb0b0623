"""The keyholder process and its framed protocol, through the real client (no root needed)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

from core import secmem
from core.keyholder import ops_core
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderDied, MalformedRequest, Refused, UnknownOperation
from core.keyholder.protocol import (
    HEADER,
    KIND_OK,
    KIND_REQUEST,
    FieldType,
    ProtocolError,
    Secret,
    decode_fields,
    encode_fields,
    pack_header,
    unpack_header,
)


@pytest.fixture
def kh():
    client = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    yield client
    client.close()


def test_hello_reports_hardening(kh: KeyholderClient) -> None:
    info = kh.info
    assert info["protocol"] == 1
    assert info["hardening"]["core_limit_zero"] is True
    assert info["hardening"]["not_dumpable"] is True
    assert info["secmem_backend"] in ("memfd_secret", "mlock")
    assert "core.keyholder.ops_core" in info["areas"]
    assert info["pid"] == kh.pid != os.getpid()


def test_generate_returns_only_public_fingerprint(kh: KeyholderClient) -> None:
    reply = kh.generate_master()
    assert set(reply) == {"origin", "locked", "fingerprint", "kcv", "kcv_words"}
    assert len(bytes.fromhex(reply["fingerprint"])) == 32
    assert len(reply["kcv_words"]) == 7
    assert kh.fingerprint()["fingerprint"] == reply["fingerprint"]


def test_immutability_refuses_second_key_until_wiped(kh: KeyholderClient) -> None:
    first = kh.generate_master()["fingerprint"]
    with pytest.raises(Refused, match="already holds a MasterKey"):
        kh.generate_master()
    assert kh.fingerprint()["fingerprint"] == first  # the first key is untouched
    kh.wipe()
    assert kh.status()["master_held"] is False
    assert kh.generate_master()["fingerprint"] != first


def test_sign_verifies_with_fingerprint(kh: KeyholderClient) -> None:
    from core.crypto.fingerprint import verify_signature

    fp = bytes.fromhex(kh.generate_master()["fingerprint"])
    sig = kh.sign("journal-final-hash", b"\x01" * 32)
    assert verify_signature(fp, ops_core.signed_bytes("journal-final-hash", b"\x01" * 32), sig)
    assert not verify_signature(fp, b"\x01" * 32, sig), "signatures are domain-separated"
    assert not verify_signature(fp, ops_core.signed_bytes("genesis-manifest", b"\x01" * 32), sig)
    with pytest.raises(MalformedRequest, match="cannot sign for purpose"):
        kh.call(ops_core.SIGN, purpose="envelope", message=b"x")


def test_no_key_errors_are_clear(kh: KeyholderClient) -> None:
    with pytest.raises(Exception, match="no MasterKey is held"):
        kh.fingerprint()


def test_unknown_operation_and_wrong_field_type(kh: KeyholderClient) -> None:
    with pytest.raises(UnknownOperation):
        kh.call(0x7FFF)
    kh.generate_master()
    with pytest.raises(MalformedRequest, match="wrong type"):
        kh.call(ops_core.SIGN, purpose="genesis-manifest", message="a str, not bytes")
    with pytest.raises(MalformedRequest, match="missing field"):
        kh.call(ops_core.SIGN, purpose="genesis-manifest")
    assert kh.status()["master_held"] is True  # errors lose nothing


def test_malformed_frame_gets_an_error_and_the_keyholder_stops(kh: KeyholderClient) -> None:
    os.write(kh._w, b"XX" + bytes(HEADER.size - 2))
    _kind, _op, length = unpack_header(kh._recv_exact(HEADER.size))
    fields = decode_fields(memoryview(kh._recv_exact(length)))
    assert fields["code"][1].tobytes() == b"malformed"
    assert kh.proc.wait(5) == 3


def test_truncated_field_is_rejected_not_crashing(kh: KeyholderClient) -> None:
    payload = bytes([4]) + b"name" + struct.pack(">BI", FieldType.STR, 99) + b"short"
    os.write(kh._w, pack_header(KIND_REQUEST, ops_core.STATUS, len(payload)) + payload)
    _kind, _op, length = unpack_header(kh._recv_exact(HEADER.size))
    fields = decode_fields(memoryview(kh._recv_exact(length)))
    assert fields["code"][1].tobytes() == b"malformed"
    assert kh.status()["master_held"] is False  # still serving


def test_reply_encoding_refuses_secret_fields() -> None:
    buf = bytearray(b"0123456789abcdef")
    with pytest.raises(ProtocolError, match="refusing to send secret"):
        encode_fields({"share": Secret(memoryview(buf))}, allow_secret=False)
    parts = encode_fields({"share": Secret(memoryview(buf))}, allow_secret=True)
    assert any(isinstance(p, memoryview) and p.obj is buf for p in parts), "sent without a copy"


def test_client_refuses_a_reply_carrying_a_secret_field() -> None:
    """Even a compromised or buggy keyholder cannot hand the parent secret bytes."""
    r_req, w_req = os.pipe()
    r_rep, w_rep = os.pipe()

    class FakeProc:
        stdin = os.fdopen(w_req, "wb")
        stdout = os.fdopen(r_rep, "rb")
        pid = 0

    client = KeyholderClient(FakeProc())  # type: ignore[arg-type]

    def fake_server() -> None:
        header = os.read(r_req, HEADER.size)
        _k, opcode, length = unpack_header(header)
        if length:
            os.read(r_req, length)
        parts = b"".join(bytes(p) for p in encode_fields({"x": Secret(memoryview(b"k" * 32))}, allow_secret=True))
        os.write(w_rep, pack_header(KIND_OK, opcode, len(parts)) + parts)

    t = threading.Thread(target=fake_server)
    t.start()
    with pytest.raises(ProtocolError, match="secret field"):
        client.call(ops_core.STATUS)
    t.join()


def test_sigterm_exits_143_and_sigint_130() -> None:
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)):
        kh = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
        kh.generate_master()
        kh.proc.send_signal(sig)
        assert kh.proc.wait(5) == code
        with pytest.raises(KeyholderDied):
            kh.status()


def test_pipe_close_makes_keyholder_wipe_and_exit() -> None:
    kh = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    kh.generate_master()
    assert kh.proc.stdin is not None
    kh.proc.stdin.close()
    assert kh.proc.wait(5) == 0


def test_parent_death_ends_the_keyholder() -> None:
    code = (
        "from core.keyholder.client import KeyholderClient as K; import os, sys;"
        f"c = K.start(allow_unlocked={os.geteuid() != 0}); c.generate_master();"
        "print(c.pid, flush=True); os._exit(0)"  # dies without closing anything
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    kpid = int(out.stdout.strip())
    for _ in range(600):  # up to 30 s: a loaded machine may be slow to schedule it
        try:
            os.kill(kpid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("keyholder outlived its parent")


def test_environment_is_not_inherited() -> None:
    os.environ["TEXTUAL_LOG"] = "/tmp/leak.log"
    try:
        from core.keyholder.client import _clean_env

        env = _clean_env(os.environ)
        assert "TEXTUAL_LOG" not in env
        assert all(not k.startswith("PYTHON") for k in env)
    finally:
        del os.environ["TEXTUAL_LOG"]


def test_secmem_buffer_basics() -> None:
    buf = secmem.SecretBuffer(48, allow_unlocked=True)
    buf.fill_random()
    with buf.view() as mv:
        assert any(mv)
        copy = bytearray(mv)
    buf.wipe()
    with buf.view() as mv:
        assert not any(mv)
    assert secmem.ct_equal(copy, bytearray(copy)) and not secmem.ct_equal(copy, bytearray(48))
    secmem.memset(copy)
    assert not any(copy)
    buf.close()
    with pytest.raises(secmem.SecureMemoryError):
        with buf.view():
            pass
    with pytest.raises(secmem.SecureMemoryError):
        import pickle

        pickle.dumps(secmem.SecretBuffer(8, allow_unlocked=True))


def test_secmem_refuses_unlocked_without_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    """When mlock fails and demo mode was not asked for, allocation refuses clearly."""
    monkeypatch.setattr(secmem, "_backend", "mlock")
    monkeypatch.setattr(secmem._libc, "mlock", lambda addr, n: -1)
    with pytest.raises(secmem.SecureMemoryError, match="cannot lock memory"):
        secmem.SecretBuffer(32)
    demo = secmem.SecretBuffer(32, allow_unlocked=True)
    assert demo.kind == "unlocked" and not demo.locked
    assert any("DEMO ONLY" in r for r in secmem.insecure_reasons)
    demo.close()


def test_process_default_for_unlocked_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers allocated without an explicit choice follow the keyholder's demo policy."""
    monkeypatch.setattr(secmem, "_backend", "mlock")
    monkeypatch.setattr(secmem._libc, "mlock", lambda addr, n: -1)
    monkeypatch.setattr(secmem, "_allow_unlocked_default", False)
    with pytest.raises(secmem.SecureMemoryError):
        secmem.SecretBuffer(16)
    secmem.set_allow_unlocked_default(True)
    buf = secmem.SecretBuffer(16)
    assert buf.kind == "unlocked"
    buf.close()
