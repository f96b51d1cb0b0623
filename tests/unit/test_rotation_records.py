"""Rotated-out share sets (docs/formats.md 7.1): the records a rotation leaves, read back.

A real genesis by the engine (3-of-5), its key rebuilt from three typed shares in the real
keyholder and rotated (tests/support/rotation.py): the old manifest marked rotated out and
signed by the old key (``records.mark_rotated_out``). Then what every reader does with it:
refuse it for unseal-and-seal naming the rotation and the new set, let a transition open it
only before the expiry, and refuse records that are tampered with or disagree.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import signatures as sig
from core.ceremony import records
from core.seal import recipients as R
from tests.support import rotation as rs
from tests.support.custodian import CustodianTerminal
from tests.support.keyholders import run_genesis

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.Records]:
    ws = tmp_path_factory.mktemp("rotation") / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(PEM, SPKI)
    )
    terminal = CustodianTerminal()
    try:
        run_genesis(ws, terminal)
        shares = [terminal.shares[i].split() for i in (1, 3, 4)]
    finally:
        terminal.close()
    (path,) = (ws / "manifests").glob("set-*.json")
    old = json.loads(path.read_bytes())
    r = R.recipient_from_key(kms.public_key(), name="aws", kind="aws-kms", key_id="arn:aws:kms:k")
    r = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
    expires = _utc(datetime.now(UTC) + timedelta(days=14))
    kh = rs.start()
    try:
        yield rs.rotation_records(kh, old, shares, r, expires=expires)
    finally:
        kh.close()


def test_a_marked_set_names_its_rotation(rotation: rs.Records) -> None:
    r = records.rotated_out(rotation.marked, [rotation.new_manifest])
    assert r is not None and r.marked is True
    assert r.set_id == rotation.old_manifest["set_id"]
    assert (
        r.new_set_id == rotation.new_manifest["set_id"]
        and r.new_fingerprint == rotation.rotation.new_fp
    )
    assert r.ceremony_id == "rotate-test" and r.transition_expires_utc == rotation.expires
    assert records.rotated_out(rotation.old_manifest, []) is None  # before the rotation


def test_unseal_and_seal_refuses_it_naming_the_rotation_and_the_new_set(
    rotation: rs.Records,
) -> None:
    for manifests in ([], [rotation.new_manifest]):
        with pytest.raises(records.SetRotatedOut) as err:
            records.check_usable(rotation.marked, manifests)
        text = str(err.value)
        assert "rotate-test" in text and f"set {rotation.new_manifest['set_id']}" in text
        assert f"Until {rotation.expires} a transition ceremony" in text
    # the unmarked old manifest is refused too, from the new set's manifest alone
    with pytest.raises(records.SetRotatedOut, match=f"set {rotation.new_manifest['set_id']}"):
        records.check_usable(rotation.old_manifest, [rotation.new_manifest])


def test_a_transition_opens_it_only_before_the_expiry(rotation: rs.Records) -> None:
    end = datetime.strptime(rotation.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    got = records.check_usable(
        rotation.marked, [rotation.new_manifest], transition=True, now=end - timedelta(seconds=1)
    )
    assert got is not None and got.transition_expires_utc == rotation.expires
    for now in (end, end + timedelta(days=1)):
        with pytest.raises(records.SetRotatedOut, match=f"window ended at {rotation.expires}"):
            records.check_usable(rotation.marked, [rotation.new_manifest], transition=True, now=now)
    # without the mark there is no window at all
    with pytest.raises(records.SetRotatedOut, match="no rotated-out mark"):
        records.check_usable(rotation.old_manifest, [rotation.new_manifest], transition=True)


def test_tampered_or_contradicting_records_are_refused(rotation: rs.Records) -> None:
    m = rotation.marked
    for member, value in (
        ("new_set_id", (m["rotated_out"]["new_set_id"] + 1) % 32768),
        ("transition_expires_utc", _utc(datetime.now(UTC) + timedelta(days=60))),
        ("transition_expires_utc", None),
        ("ceremony_id", "another-ceremony"),
    ):
        bad = copy.deepcopy(m)
        bad["rotated_out"][member] = value
        with pytest.raises(records.RotationRecordError):
            records.rotated_out(bad)
    unsigned = {k: v for k, v in m.items() if k != "signature"}
    with pytest.raises(records.RotationRecordError, match="not signed"):
        records.rotated_out(unsigned)
    # signed again, but by the NEW key: a mark is only the old key's to make
    kh = rotation.rotation.kh
    body = {k: v for k, v in m.items() if k != "signature"}
    reply = kh.sign_reply("genesis-manifest", sig.manifest_message(body), key="new")
    by_new = {
        **body,
        "signature": sig.make_block(
            "genesis-manifest", str(reply["fingerprint"]), bytes(reply["signature"])
        ),
    }
    with pytest.raises(records.RotationRecordError):
        records.rotated_out(by_new)
    # mark_rotated_out itself refuses a signer that is not the old key
    with pytest.raises(records.RotationRecordError, match="another key"):
        records.mark_rotated_out(
            lambda p, msg: kh.sign_reply(p, msg, key="new"),
            rotation.old_manifest,
            rotation.statement,
        )
    # the new set's manifest names another key than the mark: the records disagree
    other = {**rotation.new_manifest, "set_id": (rotation.new_manifest["set_id"] + 7) % 32768}
    body = {k: v for k, v in other.items() if k != "signature"}
    reply = kh.sign_reply("genesis-manifest", sig.manifest_message(body), key="new")
    other["signature"] = sig.make_block(
        "genesis-manifest", str(reply["fingerprint"]), bytes(reply["signature"])
    )
    with pytest.raises(records.RotationRecordError, match="disagree"):
        records.rotated_out(m, [other])
    # a statement about another set cannot mark this one
    wrong: dict[str, Any] = {
        **rotation.old_manifest,
        "set_id": (rotation.old_manifest["set_id"] + 1) % 32768,
    }
    with pytest.raises(records.RotationRecordError, match="not set"):
        records.rotated_out_manifest(wrong, rotation.statement)


# --- the keyholder's transition_begin: opened only under the signed mark ---------------------


def _transition_keyholder(rotation: rs.Records) -> Any:
    kh = rs.start()
    rec = rs.recover(kh, rotation.old_manifest, rotation.old_shares)
    assert rec["verified"] is True
    return kh


def _bytes(m: dict[str, Any]) -> bytes:
    return json.dumps(m).encode()


def _kms(kind: str = "aws-kms") -> R.Recipient:
    key = rsa.generate_private_key(65537, 3072)
    r = R.recipient_from_key(key.public_key(), name="kms", kind=kind, key_id="k")
    return R.confirm(r, "Wendy Witness", r.fingerprint_hex)


def test_transition_begin_refuses_what_is_not_the_signed_mark_of_the_held_key(
    rotation: rs.Records,
) -> None:
    from core.keyholder import ops_rotation as rot
    from core.keyholder.errors import Refused

    kh = _transition_keyholder(rotation)
    try:
        with pytest.raises(Refused, match="not marked rotated out"):
            rot.client_transition_begin(kh, _bytes(rotation.old_manifest))
        with pytest.raises(Refused, match="not of the key held here"):
            rot.client_transition_begin(kh, _bytes(rotation.new_manifest))
        for member, value in (
            ("transition_expires_utc", _utc(datetime.now(UTC) + timedelta(days=80))),
            ("new_fingerprint", "ab" * 32),
        ):
            bad = copy.deepcopy(rotation.marked)
            bad["rotated_out"][member] = value
            with pytest.raises(Refused, match="not trusted"):
                rot.client_transition_begin(kh, _bytes(bad))
        # a mark re-signed by another key (the new one) is not the old key's word
        body = {k: v for k, v in rotation.marked.items() if k != "signature"}
        reply = rotation.rotation.kh.sign_reply(
            "genesis-manifest", sig.manifest_message(body), key="new"
        )
        body["signature"] = sig.make_block(
            "genesis-manifest", str(reply["fingerprint"]), bytes(reply["signature"])
        )
        with pytest.raises(Refused):
            rot.client_transition_begin(kh, _bytes(body))
        # nothing was opened by the refusals: the key may still be sealed, but the next
        # good call opens the transition
        out = rot.client_transition_begin(kh, _bytes(rotation.marked))
        assert out["transition"]["expires_utc"] == rotation.expires
        assert out["transition"]["successor_fingerprint"] == rotation.rotation.new_fp
        with pytest.raises(Refused, match="already open"):
            rot.client_transition_begin(kh, _bytes(rotation.marked))
    finally:
        kh.close()


def test_in_a_transition_the_key_leaves_only_as_a_transitional_envelope(
    rotation: rs.Records,
) -> None:
    from core.keyholder import ops_rotation as rot
    from core.keyholder import ops_seal
    from core.keyholder.errors import Refused
    from core.seal import envelope as E

    kh = _transition_keyholder(rotation)
    try:
        rot.client_transition_begin(kh, _bytes(rotation.marked))
        common = {"cluster_id": "c", "region_id": "r", "ceremony_id": "transition-test"}
        # no expiry asked: the mark's is used; the successor is the mark's
        data = ops_seal.seal_envelope(kh, _kms(), kind="masterkey", **common)["envelope"]
        env = E.parse(data)
        assert env.transition == {
            "expires_utc": rotation.expires,
            "successor_fingerprint": rotation.rotation.new_fp,
        }
        with pytest.raises(Refused, match="exactly that expiry"):
            ops_seal.seal_envelope(kh, _kms(), kind="masterkey",
                                   transition_expires_utc=_utc(datetime.now(UTC) + timedelta(days=1)), **common)  # fmt: skip
        with pytest.raises(Refused, match="online recipients only"):
            ops_seal.seal_envelope(kh, _kms("custodian-rsa"), kind="masterkey", **common)
        wk = rsa.generate_private_key(65537, 4096).public_key().public_bytes(PEM, SPKI)
        with pytest.raises(Refused, match="rotated out"):
            ops_seal.byok_vault(kh, wrapping_key=wk, witness="Wendy Witness",
                                confirmed_fingerprint=ops_seal.wrapping_key_fingerprint(wk), key_name="mk")  # fmt: skip
    finally:
        kh.close()


def test_transition_begin_after_the_window_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A rotation with a window of a few seconds: once it has passed, the keyholder's own
    clock refuses to open the old key (whatever the UI believes the time is)."""
    import time

    from core.keyholder import ops_rotation as rot
    from core.keyholder.errors import Refused

    ws = tmp_path_factory.mktemp("short") / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(PEM, SPKI)
    )
    terminal = CustodianTerminal()
    try:
        run_genesis(ws, terminal)
        shares = [terminal.shares[i].split() for i in (0, 1, 2)]
    finally:
        terminal.close()
    (path,) = (ws / "manifests").glob("set-*.json")
    old = json.loads(path.read_bytes())
    r = R.recipient_from_key(kms.public_key(), name="aws", kind="aws-kms", key_id="k")
    r = R.confirm(r, "Wendy Witness", r.fingerprint_hex)
    expires = _utc(datetime.now(UTC) + timedelta(seconds=4))
    kh = rs.start()
    try:
        recs = rs.rotation_records(kh, old, shares, r, expires=expires)
    finally:
        kh.close()
    end = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.0)
    kh = rs.start()
    try:
        rs.recover(kh, old, shares)
        with pytest.raises(Refused, match=f"window of set {old['set_id']} ended at {expires}"):
            rot.client_transition_begin(kh, _bytes(recs.marked))
    finally:
        kh.close()
