"""Issue 12, PoC 5: recovery accepted what it should not.

* ``op_recover`` installed a 128-bit secret as the MasterKey (no length check);
* with no expected fingerprint (a manifest without one), a wrong passphrase gave another
  key that was silently accepted (``verified: None``) and could be sealed at once.

Real keyholder process; the shares come from the SLIP-39 reference implementation (a
test dependency), so the secret is known to the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.crypto.fingerprint import derive_fingerprint
from core.keyholder import ops_seal, ops_shares
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError
from core.seal.recipients import confirm, recipient_from_key
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, step_once
from tests.support.keyholders import run_genesis

SECRET = bytes(range(32))


@pytest.fixture
def kh() -> Iterator[KeyholderClient]:
    c = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    yield c
    c.close()


def _shares(secret: bytes, passphrase: bytes = b"") -> list[str]:
    groups = shamir_mnemonic.generate_mnemonics(1, [(2, 3)], secret, passphrase, extendable=True)
    return list(groups[0])


def _enter(kh: KeyholderClient, mnemonic: str) -> dict[str, Any]:
    words = typed(mnemonic)
    ops_shares.client_entry_begin(kh, len(words))
    for pos, w in enumerate(words, 1):
        assert ops_shares.client_entry_word(kh, pos, w)["status"] == "accepted"
    assert ops_shares.client_entry_finish(kh)["status"] == "ok"
    return ops_shares.client_add_share(kh)


def _recipient() -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    r = recipient_from_key(key, name="kms", kind="aws-kms", key_id="alias/openkcm-boot")
    return confirm(r, "Internal Witness", r.fingerprint_hex)


def _seal(kh: KeyholderClient, r: Any) -> dict[str, Any]:
    return ops_seal.seal_envelope(
        kh, r, kind="masterkey", cluster_id="c1", region_id="r1", ceremony_id="unseal-1"
    )


def test_128_bit_shares_never_become_the_masterkey(kh: KeyholderClient) -> None:
    shares = _shares(bytes(16))  # a 128-bit secret: 20-word shares
    assert len(shares[0].split()) == 20
    ops_shares.client_recovery_begin(kh)
    errors: list[KeyholderError] = []
    for m in shares[:2]:
        try:
            _enter(kh, m)
        except KeyholderError as exc:
            errors.append(exc)
            kh.call(ops_shares.ENTRY_CLEAR)
    try:
        ops_shares.client_recover(kh)
    except KeyholderError as exc:
        errors.append(exc)
    assert kh.status()["master_held"] is False, "a 128-bit secret was installed as the MasterKey"
    assert errors and errors[0].code == "wrong-size"
    assert "20 words" in errors[0].message and "128-bit" in errors[0].message
    assert "256 bits" in errors[0].message


def test_recover_refuses_a_secret_that_is_not_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth in ``op_recover`` itself: whatever the shares said."""
    from core.keyholder.ops import KeyholderState, Request
    from core.keyholder.protocol import decode_fields
    from core.shamir.recovery import RecoveryState

    state = KeyholderState(allow_unlocked=True)
    made: list[Any] = []

    def short_recover(self: RecoveryState, passphrase: object = None) -> Any:
        buf = state.alloc(16)
        buf.fill_random()
        made.append(buf)
        return buf

    monkeypatch.setattr(RecoveryState, "recover", short_recover)
    with pytest.raises(ops_shares.SharesError, match=r"16-byte \(128-bit\) secret") as info:
        ops_shares.op_recover(state, Request(ops_shares.RECOVER, decode_fields(memoryview(b""))))
    assert info.value.code == "wrong-size"
    assert made[0].closed and state.master is None


def test_wrong_passphrase_without_manifest_fingerprint_is_not_verified(kh: KeyholderClient) -> None:
    """The PoC: no expected fingerprint, a wrong passphrase: another key. It must show NOT
    VERIFIED and nothing may be sealed until a witness's KCV matches the key."""
    shares = _shares(SECRET, b"the right passphrase")
    with memoryview(bytearray(SECRET)) as mv:
        genuine = derive_fingerprint(mv)
    ops_shares.client_recovery_begin(kh)  # no identifier, no commitments, no fingerprint
    for m in shares[:2]:
        _enter(kh, m)
    reply = ops_shares.client_recover(kh, memoryview(bytearray(b"a wrong passphrase")))
    assert reply["fingerprint"] != genuine.hex  # another key: SLIP-39 cannot tell
    r = _recipient()
    sealed: dict[str, Any] | None = None
    try:
        sealed = _seal(kh, r)
    except KeyholderError as exc:
        refusal = exc
    assert sealed is None, "a key rebuilt with a wrong passphrase was sealed unverified"
    assert "NOT VERIFIED" in refusal.message and "kcv_confirm" in refusal.message
    assert reply["verified"] is None and "NOT VERIFIED" in reply["verification"]
    assert kh.status()["verified"] is False
    # the witness's paper record (the genesis KCV words) does not match: still refused
    with pytest.raises(KeyholderError, match="does not match the key held"):
        kh.kcv_confirm("Internal Witness", " ".join(genuine.words))
    with pytest.raises(KeyholderError, match="NOT VERIFIED"):
        _seal(kh, r)
    with pytest.raises(KeyholderError, match="NOT VERIFIED"):
        ops_shares.client_genesis_split(
            kh, {"group_threshold": 1, "groups": [[2, 3]], "extendable": True}
        )


def test_right_passphrase_is_sealed_after_the_witness_confirms(kh: KeyholderClient) -> None:
    shares = _shares(SECRET, b"the right passphrase")
    with memoryview(bytearray(SECRET)) as mv:
        genuine = derive_fingerprint(mv)
    ops_shares.client_recovery_begin(kh)
    for m in shares[1:]:
        _enter(kh, m)
    reply = ops_shares.client_recover(kh, memoryview(bytearray(b"the right passphrase")))
    assert reply["fingerprint"] == genuine.hex and reply["verified"] is None
    with pytest.raises(KeyholderError, match="NOT VERIFIED"):
        _seal(kh, _recipient())
    # the witness typed the KCV hex from the genesis paper log
    out = kh.kcv_confirm("Internal Witness", genuine.kcv)
    assert out["verified"] is True and kh.status()["verified"] is True
    assert _seal(kh, _recipient())["header"]["masterkey_fingerprint"] == genuine.hex


def test_engine_shows_not_verified_and_waits_for_the_kcv_witness(tmp_path: Path, kms_pem: bytes) -> None:
    """Through the engine and the real keyholder: the manifest's fingerprint is stripped
    (a prepared stick), the rebuilt key is NOT VERIFIED; the verify-kcv witness typing
    another KCV fails the step; their genesis record lets the seal go on."""
    from core.ceremony.engine import Ceremony, CeremonyState, ClientKeyholder, StepFailedError
    from core.ceremony.model import StepKind

    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(kms_pem)
    terminal = CustodianTerminal()
    try:
        g = run_genesis(ws, terminal)
    finally:
        terminal.close()
    assert g.manifest is not None
    genuine_kcv = " ".join(g.steps[[s.kind for s in g.steps].index(StepKind.GENERATE)].results["kcv_words"])
    mpath = ws / "manifests" / f"set-{g.manifest['set_id']}.json"
    m = json.loads(mpath.read_text())
    # a manifest without fingerprint (and so without the signature that covered it)
    del m["fingerprint"], m["kcv"], m["signature"]
    mpath.write_text(json.dumps(m))
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        u = Ceremony.load(SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight)
        drive(u, until="recover.collect")
        u.perform()
        for i in (0, 1, 2):
            u.add_share("typed", typed(terminal.shares[i]))
        step_once(u)  # collect
        rec = u.current_step
        assert rec is not None and rec.kind is StepKind.RECOVER
        step_once(u)
        assert rec.results["verified"] is False and "NOT VERIFIED" in rec.results["verification"]
        assert u.key_verified is False
        kcv = u.current_step
        assert kcv is not None and kcv.kind is StepKind.VERIFY_KCV
        u.perform()
        assert kcv.display["not_verified"] is True
        # the witness's copy differs: the step fails, the keyholder still refuses to seal
        u.confirm("witness", out_of_band="00 11 22 33 44 55 66 77")
        assert kcv.error and kc.status()["verified"] is False
        u.retry()
        u.confirm("witness", out_of_band=genuine_kcv)
        assert kc.status()["verified"] is True
        drive(u)
        assert u.state is CeremonyState.COMPLETED
        seal = next(s for s in u.steps if s.kind is StepKind.SEAL)
        assert seal.performed
        # without the witness (a script cannot skip it; call the seal directly)
        u2 = Ceremony.load(SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight)
        drive(u2, until="recover.collect")
        u2.perform()
        for i in (3, 4, 0):
            u2.add_share("typed", typed(terminal.shares[i]))
        step_once(u2)
        step_once(u2)  # recover: NOT VERIFIED
        with pytest.raises(StepFailedError, match="NOT VERIFIED"):
            u2._do_seal(next(s for s in u2.steps if s.kind is StepKind.SEAL))
        u2.abort("test", "admin")


@pytest.fixture(scope="module")
def kms_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
