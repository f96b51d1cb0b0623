"""check-shares with cards and QR codes (verify-only reads), over the REAL keyholder and
REAL SoftHSM2 tokens (RSA-2048 card keys).

A 2-of-3 genesis gives c1 a smart card, c2 a QR on the custodian terminal and c3 words.
Then verify-shares: the card, the QR photo (file, replayed camera frames, wedge scanner)
are checked against the manifest's salted commitments in the keyholder and wiped; nothing
enters a recovery. Refusals: a QR of another set and an altered share (same set, same
slot, other value), at check and at collection; after a reshare-like manifest supersedes
the set, c1's card is refused naming the superseding set. Finally the keyholder's PKCS#11
module is rescanned and sees a token created after it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core import journal as jr
from core.carriers import pkcs11 as cards
from core.carriers import qr
from core.carriers.errors import CardError
from core.ceremony.engine import (
    CardAccess,
    CarrierRefusedError,
    Ceremony,
    CeremonyState,
    ClientKeyholder,
    QRCamera,
    ShareRefusedError,
)
from core.ceremony.model import StepKind
from core.ceremony.script import check_script
from core.keyholder import ops_shares
from core.keyholder.client import KeyholderClient
from core.secmem import SecretBuffer
from core.shamir import slip39
from tests.support.custodian import CustodianTerminal, pin
from tests.support.engine import SCRIPTS, no_card_module, ok_preflight, step_once
from tests.support.gridcards import card_digits, card_photo, read_screen
from tests.support.softhsm import HAVE_SOFTHSM, MODULE, PINS, SO_PIN, init_tokens

pytestmark = pytest.mark.skipif(not HAVE_SOFTHSM, reason="SoftHSM2 missing")




@dataclass
class World:
    root: Path
    ws: Path
    conf: Path
    serials: dict[str, str]
    manifest: dict[str, Any]
    qr_photo: Path
    verify_script: Path


def _keyholder(terminal: str | None = None) -> KeyholderClient:
    return KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0,
        pkcs11_modules=("softhsm2",),
        terminal=terminal,
        demo=terminal is not None,  # the test's pty: allowed in demo mode only
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("verify-carriers")
    tokendir = root / "tokens"
    tokendir.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = true\n"
    )
    old_conf = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # the keyholder child inherits it
    terminal = CustodianTerminal(read_qr=read_screen)
    try:
        serials = init_tokens(conf, ["c1"])
        ws = root / "ws"
        (ws / "recipients").mkdir(parents=True)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        kms = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
            kms.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        text = (SCRIPTS / "genesis.toml").read_text()
        text = no_card_module(text)  # the shipped line; the test names its own
        text = text.replace("threshold = 3\nshares = 5", "threshold = 2\nshares = 3")
        text = text.replace('["c1", "c2", "c3", "c4", "c5"]', '["c1", "c2", "c3"]')
        text = text.replace('"DEMO-0001"', f'"{serials["c1"]}"')
        text = text.replace(
            'display = ["screen", "qr", "card"]\n',
            'display = ["screen", "qr", "card"]\n'
            'carriers = { c1 = "card", c2 = "qr" }\n'
            'card_module = "softhsm2"\ncard_key_bits = 2048\n',
        )
        gpath = root / "genesis-2of3.toml"
        gpath.write_text(text)
        assert check_script(gpath) == []
        vtext = (SCRIPTS / "verify-shares.toml").read_text()
        vtext = no_card_module(vtext)  # the shipped line; the test names its own
        assert vtext.count('carriers = ["typed", "qr", "card"]\n') == 2
        vtext = vtext.replace(
            'carriers = ["typed", "qr", "card"]\n',
            'carriers = ["typed", "qr", "card"]\ncard_module = "softhsm2"\n',
        )
        vpath = root / "verify-cards.toml"
        vpath.write_text(vtext)
        assert check_script(vpath) == []

        with _keyholder(terminal.path) as kc:
            g = Ceremony.load(
                gpath, ws, ClientKeyholder(kc, tty=terminal.path), preflight=ok_preflight
            )
            while (run := g.current_step) is not None:
                if run.kind is StepKind.DISTRIBUTE_SHARES:
                    g.perform()
                    for cu in ("c1", "c2", "c3"):
                        card = CardAccess(pin=pin(PINS[cu])) if cu == "c1" else None
                        g.show_share(cu, card=card)
                        g.acknowledge(cu)
                    for r in run.required_roles:
                        if r not in run.acks:
                            g.acknowledge(r)
                    g.complete_step()
                else:
                    step_once(g)
        assert g.state is CeremonyState.COMPLETED and g.manifest is not None
        assert len(terminal.qr_reads) == 1
        photo = card_photo(terminal.qr_reads[0], root / "c2-grid-card.jpg", 2)
        yield World(root, ws, conf, serials, g.manifest, photo, vpath)
    finally:
        terminal.close()
        if old_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old_conf


def _check_step(script: Path, ws: Path, kc: KeyholderClient) -> Ceremony:
    v = Ceremony.load(script, ws, ClientKeyholder(kc), preflight=ok_preflight)
    while (run := v.current_step) is not None and run.kind is not StepKind.CHECK_SHARES:
        step_once(v)
    v.perform()
    return v


def _no_recovery(kc: KeyholderClient) -> None:
    assert kc.status()["master_held"] is False
    progress = kc.call(ops_shares.RECOVERY_STATUS)["progress"]
    assert progress["identifier"] is None and progress["groups"] == []


def _share_qr(path: Path, identifier: int) -> Path:
    """A share QR of a fresh random key, set ``identifier``, group 1 member 1."""
    master = SecretBuffer(32)
    master.fill_random()
    with master.view() as mv:
        groups = slip39.split_master(
            mv, group_threshold=1, groups=[(2, 3)], iteration_exponent=0, identifier=identifier
        )
    master.close()
    share = slip39.encode_share(groups[0][0])
    for s in groups[0]:
        s.close()
    with share.view() as sv, qr.make_matrix(sv) as mat:
        qr.render_image(mat).save(path)
    share.close()
    return path


def _scanner_keys(photo: Path, t0: int) -> list[tuple[memoryview, int]]:
    """The digits a handheld scanner would type for the code on the card (test side)."""
    digits = card_digits(photo) + b"\r"
    return [(memoryview(bytearray([ch])), t0 + 5_000 * i) for i, ch in enumerate(digits)]


# ------------------------------------------------------------------------------------ tests


def test_check_shares_with_card_and_qr_nothing_recovered(world: World) -> None:
    sid = str(world.manifest["set_id"])
    fps = {h["custodian"]: h.get("key_fingerprint") for h in world.manifest["holders"]}
    with _keyholder() as kc:
        v = _check_step(world.verify_script, world.ws, kc)
        run = v.current_step
        assert run is not None and run.kind is StepKind.CHECK_SHARES
        before = kc.status()["live_buffers"]
        card = v.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
        assert card["ok"] is True and card["set_id"] == sid
        assert (card["group"], card["index"]) == (1, 1) and card["source"] == "card"
        assert card["card_serial"] == world.serials["c1"]
        assert card["key_fingerprint"] == fps["c1"]
        photo = v.add_share("qr-file", str(world.qr_photo))
        assert photo["ok"] is True and photo["index"] == 2 and photo["source"] == "qr-file"
        # the share read was wiped right after the check: no buffer left behind
        assert kc.status()["live_buffers"] == before
        _no_recovery(kc)

        cam = v.add_share("qr-camera", QRCamera(replay=(str(world.qr_photo),)))
        assert cam["ok"] is True and cam["source"] == "qr-replay"
        scan = v.add_share("scanner", _scanner_keys(world.qr_photo, 1_000_000))
        assert scan["ok"] is True and scan["index"] == 2
        # the scanner key by key (as the TUI forwards key presses)
        keys = _scanner_keys(world.qr_photo, 9_000_000)
        for key, t in keys[:-1]:
            assert v.scanner_key(key, t)["status"] == "pending"
        last = v.scanner_key(*keys[-1])
        assert last["status"] == "complete" and last["ok"] is True and last["index"] == 2
        _no_recovery(kc)
        assert [c["source"] for c in run.display["checked"]] == [
            "card", "qr-file", "qr-replay", "qr-scanner", "qr-scanner",
        ]  # fmt: skip
        assert run.performed is True

        # the dry-run act afterwards collects from zero: the checks left nothing behind
        step_once(v)
        collect = v.current_step
        assert collect is not None and collect.kind is StepKind.COLLECT_SHARES
        v.perform()
        got = v.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
        assert got["complete"] is False and got["index"] == 1
        v.abort("test ends", "admin")
    assert jr.verify(v.journal.path).ok
    evs = jr._events_from_path(v.journal.path)
    checks = [e.details for e in evs if e.details.get("step_kind") == "check-shares"
              and "accepted" in e.details]  # fmt: skip
    assert [(d["carrier"], d["accepted"], d["ok"], d["set_id"]) for d in checks[:2]] == [
        ("card", True, True, sid),
        ("qr-file", True, True, sid),
    ]
    assert checks[0]["card_serial"] == world.serials["c1"]
    assert not any(PINS["c1"] in json.dumps(e.details) for e in evs)


def test_other_set_and_altered_qr_refused(world: World) -> None:
    sid = int(world.manifest["set_id"])
    other = (sid + 1) % 32768
    other_qr = _share_qr(world.root / "other-set.png", other)
    altered = _share_qr(world.root / "altered.png", sid)  # c1's slot, another value
    with _keyholder() as kc:
        v = _check_step(world.verify_script, world.ws, kc)
        run = v.current_step
        assert run is not None
        with pytest.raises(ShareRefusedError, match=f"belongs to set {other}, not to set {sid}"):
            v.add_share("qr-file", str(other_qr))
        with pytest.raises(ShareRefusedError, match="does NOT match the manifest") as ei:
            v.add_share("qr-camera", QRCamera(replay=(str(altered),)))
        assert ei.value.code == "commitment" and ei.value.set_id == str(sid)
        with pytest.raises(ShareRefusedError) as ei:
            v.add_share("scanner", _scanner_keys(other_qr, 2_000_000))
        assert ei.value.code == "other-set" and ei.value.set_id == str(other)
        assert [c["ok"] for c in run.display["checked"]] == [False, False, False]
        assert v.add_share("qr-file", str(world.qr_photo))["ok"] is True
        _no_recovery(kc)

        # at collection, a QR of another set names its set like typed entry does
        step_once(v)
        v.perform()
        with pytest.raises(ShareRefusedError, match=f"belongs to set {other}") as ei:
            v.add_share("qr-file", str(other_qr))
        assert not isinstance(ei.value, CarrierRefusedError)
        assert ei.value.code == "other-set" and ei.value.set_id == str(other)
        assert v.add_share("qr-file", str(world.qr_photo))["index"] == 2
        v.abort("test ends", "admin")
    evs = jr._events_from_path(v.journal.path)
    refused = [e.details for e in evs if e.details.get("accepted") is False]
    assert [(d["carrier"], d["code"]) for d in refused] == [
        ("qr-file", "other-set"),
        ("qr-camera", "commitment"),
        ("scanner", "other-set"),
        ("qr-file", "other-set"),
    ]
    assert str(other) in refused[0]["reason"] and refused[0]["set_id"] == str(other)


def test_card_of_superseded_set_refused(world: World, tmp_path: Path) -> None:
    """A later set (as a reshare writes it) supersedes the genesis set: c1's card, which
    holds only the old share, is refused at check and at collection, naming the new set."""
    ws = tmp_path / "ws"
    shutil.copytree(world.ws, ws)
    old = world.manifest
    new_id = (int(old["set_id"]) + 7) % 32768
    new = json.loads(json.dumps(old))
    new.update(set_id=new_id, supersedes=old["set_id"], ceremony_id="RESHARE-TEST")
    new.pop("signature", None)  # a hand-made manifest: unsigned (an edited signed one is refused)
    for c in new["commitments"]:
        c["set"] = new_id
    (ws / "manifests" / f"set-{new_id}.json").write_text(json.dumps(new, indent=2))
    card = CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"]))
    with _keyholder() as kc:
        v = _check_step(world.verify_script, ws, kc)
        assert v.manifest is not None and v.manifest["set_id"] == new_id
        with pytest.raises(
            ShareRefusedError,
            match=f"belongs to set {old['set_id']}, superseded by set {new_id} "
            r"\(ceremony RESHARE-TEST\)",
        ) as ei:
            v.add_share("card", card)
        assert ei.value.set_id == str(old["set_id"]) and ei.value.code == "other-set"
        _no_recovery(kc)
        step_once(v)  # the refused share was checked: the step can be signed off
        v.perform()
        with pytest.raises(ShareRefusedError, match=f"superseded by set {new_id}") as ei:
            v.add_share("card", card)
        assert not isinstance(ei.value, CarrierRefusedError)
        assert ei.value.set_id == str(old["set_id"])
        run = v.current_step
        assert run is not None and run.display["accepted"] == []
        v.abort("test ends", "admin")

    # when the new set's cards are others, the old card is refused before it is touched
    new["holders"][0]["card_serial"] = "NOT-THIS-CARD"
    (ws / "manifests" / f"set-{new_id}.json").write_text(json.dumps(new, indent=2))
    with _keyholder() as kc:
        v = _check_step(world.verify_script, ws, kc)
        with pytest.raises(CarrierRefusedError, match=f"superseded by set {new_id}") as ei:
            v.add_share("card", card)
        assert ei.value.code == "card-wrong-card" and ei.value.set_id == str(old["set_id"])
        v.abort("test ends", "admin")


def test_rescan_sees_a_token_created_later(world: World) -> None:
    with _keyholder() as kc:
        v = _check_step(world.verify_script, world.ws, kc)
        before = {t["label"] for t in v.list_cards()}  # the module is loaded now
        assert "c1" in before and "late" not in before
        env = dict(os.environ, SOFTHSM2_CONF=str(world.conf))
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", "late",
             "--so-pin", SO_PIN, "--pin", "4444"],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        assert "late" not in {t["label"] for t in v.list_cards()}  # SoftHSM: not yet
        after = v.rescan_cards()
        assert {t["label"] for t in after} == before | {"late"}
        assert {t["label"] for t in v.list_cards()} == before | {"late"}
        # the rescanned module still reads cards
        ok = v.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
        assert ok["ok"] is True
        v.abort("test ends", "admin")


def test_rescan_refused_while_a_session_is_open(world: World) -> None:
    """In-process: C_Finalize would pull an open session away, so rescan refuses."""
    cards.rescan(MODULE)
    token = next(t for _s, t in cards._tokens(cards.load_module(MODULE)) if t.label == "c1")
    with cards._session(token, world.serials["c1"], pin(PINS["c1"]), rw=False):
        assert cards.open_sessions() == 1
        with pytest.raises(CardError, match="still running"):
            cards.rescan(MODULE)
    assert cards.open_sessions() == 0
    cards.rescan(MODULE)
    assert any(t.serial == world.serials["c1"] for t in cards.list_tokens(MODULE))
