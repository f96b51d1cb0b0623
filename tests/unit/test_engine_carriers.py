"""The engine with share carriers, over the REAL keyholder and REAL SoftHSM2 tokens.

Genesis 3-of-5 where custodians c1 and c2 get smart cards (SoftHSM2 tokens in a temporary
token directory, RSA-2048 card keys), c3 gets a QR on the custodian terminal (a pty: the
test reads the squares off the transcription display, copies them onto a grid card by
"hand" and photographs the card, :mod:`benchmarks.gridcard_corpus`) and c4, c5 get
words on that terminal. Then unseal-and-seal with shares coming in mixed (typed words, a
card, a QR image file), and the error paths through the engine: wrong PIN then the right
one, a card not in the manifest, a garbage QR image, the same share twice by two carriers.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import qrcode
from PIL import Image

from core import journal as jr
from core.carriers import qr
from core.ceremony.engine import (
    CardAccess,
    CarrierRefusedError,
    Ceremony,
    CeremonyState,
    ClientKeyholder,
    EngineError,
    QRCamera,
    ShareRefusedError,
    StepFailedError,
    StepState,
)
from core.ceremony.model import StepKind
from core.ceremony.script import check_script
from core.keyholder.client import KeyholderClient
from core.shamir.wordlist import indices_from_mnemonic
from tests import schemas
from tests.support.custodian import CustodianTerminal, pin, typed
from tests.support.engine import SCRIPTS, no_card_module, ok_preflight, step_once
from tests.support.gridcards import card_digits, card_photo, read_screen
from tests.support.keyholder_double import KeyholderDouble
from tests.support.softhsm import HAVE_SOFTHSM, PINS, init_tokens


@dataclass
class World:
    """One genesis with cards, shared by the tests of this module (keeps it < 60 s)."""

    root: Path
    ws: Path
    serials: dict[str, str]
    genesis: Ceremony
    words: dict[str, str]  # custodian -> words shown on the terminal
    qr_images: dict[str, Path]  # custodian -> photo of their QR screen
    unseal_script: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _keyholder(terminal: str | None = None) -> KeyholderClient:
    return KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0,
        pkcs11_modules=("softhsm2",),
        terminal=terminal,
        demo=terminal is not None,  # the test's pty: allowed in demo mode only
    )


def _distribute(c: Ceremony) -> None:
    run = c.current_step
    assert run is not None and run.kind is StepKind.DISTRIBUTE_SHARES
    c.perform()
    assert len(c.list_cards()) == 3  # c1, c2 and a stranger's card in the readers
    carriers = c.share_carriers()
    assert carriers == {"c1": "card", "c2": "card", "c3": "qr", "c4": "screen", "c5": "screen"}
    assert run.display["carriers"] == carriers
    # the declared carrier is the default; another one needs a recorded reason
    with pytest.raises(EngineError, match="gives c1 their share by card"):
        c.show_share("c1", "screen")
    for cu in c.script.policy.custodians:  # type: ignore[union-attr]
        if carriers[cu] == "card":
            res = c.show_share(cu, card=CardAccess(pin=pin(PINS[cu])))
            assert res["verified"] is True and res["stored_on_card"] is True
            assert len(res["key_fingerprint_words"]) >= 6
        else:
            c.show_share(cu)
        c.acknowledge(cu)
    for r in run.required_roles:
        if r not in run.acks:
            c.acknowledge(r)
    c.complete_step()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not HAVE_SOFTHSM:
        pytest.skip("SoftHSM2 missing")
    root = tmp_path_factory.mktemp("carriers")
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
        serials = init_tokens(conf, ["c1", "c2", "stranger"])
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
        text = text.replace('"DEMO-0001"', f'"{serials["c1"]}"')
        text = text.replace('"DEMO-0002"', f'"{serials["c2"]}"')
        text = text.replace(
            'display = ["screen", "qr", "card"]\n',
            'display = ["screen", "qr", "card"]\n'
            'carriers = { c1 = "card", c2 = "card", c3 = "qr" }\n'
            'card_module = "softhsm2"\ncard_key_bits = 2048\n',
        )
        gpath = root / "genesis-cards.toml"
        gpath.write_text(text)
        assert check_script(gpath) == []
        utext = (SCRIPTS / "unseal-and-seal.toml").read_text()
        utext = no_card_module(utext)  # the shipped line; the test names its own
        assert utext.count('carriers = ["typed", "qr", "card"]') == 1
        utext = utext.replace(
            'carriers = ["typed", "qr", "card"]',
            'carriers = ["typed", "qr", "card"]\ncard_module = "softhsm2"',
        )
        upath = root / "unseal-cards.toml"
        upath.write_text(utext)
        assert check_script(upath) == []

        with _keyholder(terminal.path) as kc:
            g = Ceremony.load(
                gpath, ws, ClientKeyholder(kc, tty=terminal.path), preflight=ok_preflight
            )
            while (run := g.current_step) is not None:
                if run.kind is StepKind.DISTRIBUTE_SHARES:
                    _distribute(g)
                else:
                    step_once(g)
            assert kc.status()["master_held"] is False
        assert g.state is CeremonyState.COMPLETED
        assert len(terminal.shares) == 2 and len(terminal.qr_reads) == 1
        photo = card_photo(terminal.qr_reads[0], root / "c3-grid-card.jpg", 3)
        yield World(
            root=root,
            ws=ws,
            serials=serials,
            genesis=g,
            words={"c4": terminal.shares[0], "c5": terminal.shares[1]},
            qr_images={"c3": photo},
            unseal_script=upath,
        )
    finally:
        terminal.close()
        if old_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old_conf


def _collect_step(w: World, kc: KeyholderClient) -> Ceremony:
    u = Ceremony.load(w.unseal_script, w.ws, ClientKeyholder(kc), preflight=ok_preflight)
    while (run := u.current_step) is not None and run.kind is not StepKind.COLLECT_SHARES:
        step_once(u)
    u.perform()
    return u


def _finish(u: Ceremony) -> None:
    run = u.current_step
    assert run is not None and run.kind is StepKind.COLLECT_SHARES and run.performed
    for r in run.required_roles:
        u.acknowledge(r)
    u.complete_step()


# ------------------------------------------------------------------------------------ tests


def test_genesis_records_cards_in_manifest_and_journal(world: World) -> None:
    g = world.genesis
    m = g.manifest
    assert m is not None
    holders = {h["custodian"]: h for h in m["holders"]}
    for cu in ("c1", "c2"):
        h = holders[cu]
        assert h["carrier"] == "card" and h["card_serial"] == world.serials[cu]
        assert re.fullmatch(r"[0-9a-f]{64}", h["key_fingerprint"])
        assert h["stored_on_card"] is True and h["verified"] is True
        assert h["card_key_bits"] == 2048
    assert holders["c3"]["carrier"] == "qr" and "card_serial" not in holders["c3"]
    assert holders["c4"]["carrier"] == "screen"
    # the file with the card facts (rewritten after each card) follows the share-set schema
    schemas.valid("share-set", (world.ws / "manifests" / f"set-{m['set_id']}.json").read_bytes())
    assert holders["c1"]["key_fingerprint"] != holders["c2"]["key_fingerprint"]
    # the manifest on the workspace and on the export media carry the card facts
    saved = json.loads((world.ws / "manifests" / f"set-{m['set_id']}.json").read_text())
    exported = json.loads(
        (world.ws / "exports" / "genesis-export" / f"manifest-set-{m['set_id']}.json").read_text()
    )
    assert saved == exported == m
    dist = next(s for s in g.steps if s.kind is StepKind.DISTRIBUTE_SHARES)
    assert dist.results["manifest"] == m
    # every card hand-over is in the journal, with serial and key fingerprint
    assert jr.verify(g.journal.path).ok
    evs = jr._events_from_path(g.journal.path)
    cards = [e for e in evs if e.details.get("display") == "card" and e.details.get("ok", True)]
    assert {e.details["card_serial"]: e.details["key_fingerprint"] for e in cards} == {
        world.serials[cu]: holders[cu]["key_fingerprint"] for cu in ("c1", "c2")
    }
    assert any(e.details.get("display") == "qr" and e.role == "c3" for e in evs)
    # data objects on the cards: no sealed share file needed on the media
    assert g.card_files == {}
    assert not (world.ws / "card-shares").exists()


def test_unseal_with_typed_card_and_qr_file(world: World) -> None:
    fp = world.genesis.manifest["fingerprint"]  # type: ignore[index]
    kcv = world.genesis.manifest["kcv"]  # type: ignore[index]
    with _keyholder() as kc:
        u = _collect_step(world, kc)
        a = u.add_share("typed", typed(world.words["c5"]))
        assert a["complete"] is False
        b = u.add_share("card", CardAccess(serial=world.serials["c2"], pin=pin(PINS["c2"])))
        assert b["card_serial"] == world.serials["c2"] and b["complete"] is False
        assert b["key_fingerprint"] == next(
            h["key_fingerprint"]
            for h in world.genesis.manifest["holders"]  # type: ignore[index]
            if h["custodian"] == "c2"
        )
        c = u.add_share("qr-file", str(world.qr_images["c3"]))
        assert c["complete"] is True and c["source"] == "qr-file"
        assert [x["index"] for x in u.current_step.display["accepted"]] == [5, 2, 3]  # type: ignore[union-attr]
        _finish(u)
        while u.current_step is not None:
            step_once(u)
        assert u.state is CeremonyState.COMPLETED
        assert kc.status()["master_held"] is False
    rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    assert rec.results["fingerprint"] == fp and rec.results["kcv"].replace(" ", "") == kcv
    assert rec.results["verified"] is True
    assert jr.verify(u.journal.path).ok
    evs = jr._events_from_path(u.journal.path)
    ins = [e.details["carrier"] for e in evs if e.details.get("accepted") is True]
    assert ins == ["typed", "card", "qr-file"]


def test_grid_card_read_by_the_camera_path(world: World) -> None:
    """Issue 18: the hand-filled grid card held in front of the camera. No camera here: the
    card's photo is replayed as the camera's frames, through the same keyholder path and
    sandboxed decode chain as live frames (``qr_scan_replay``)."""
    with _keyholder() as kc:
        u = _collect_step(world, kc)
        out = u.add_share("qr-camera", QRCamera(replay=(str(world.qr_images["c3"]),)))
        assert out["index"] == 3 and out["complete"] is False
        run = u.current_step
        assert run is not None and [a["index"] for a in run.display["accepted"]] == [3]
        u.abort("test: one share was enough", "admin")


def _noise_png(path: Path) -> Path:
    rnd = random.Random(7)
    img = Image.new("L", (200, 200))
    img.putdata([rnd.choice((0, 255)) for _ in range(200 * 200)])
    img.save(path)
    return path


def test_carrier_errors_keep_the_step(world: World) -> None:
    with _keyholder() as kc:
        u = _collect_step(world, kc)
        run = u.current_step
        assert run is not None
        u.add_share("typed", typed(world.words["c4"]))

        # wrong PIN: refused, nothing lost; the right PIN then works
        with pytest.raises(CarrierRefusedError, match="wrong PIN") as ei:
            u.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin("9999")))
        assert ei.value.code == "card-pin-incorrect" and ei.value.carrier == "card"
        assert run.state is StepState.ACTIVE and len(run.display["accepted"]) == 1
        ok = u.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
        assert ok["card_serial"] == world.serials["c1"] and ok["index"] == 1

        # a card that is not in the manifest is refused before it is touched
        stranger = world.serials["stranger"]
        with pytest.raises(CarrierRefusedError, match=f"card {stranger} is not one of") as ei:
            u.add_share("card", CardAccess(serial=stranger, pin=pin(PINS["stranger"])))
        assert ei.value.code == "card-wrong-card"
        # without a serial, with every card inserted: the keyholder asks which one
        with pytest.raises(CarrierRefusedError, match="several cards"):
            u.add_share("card", CardAccess(pin=pin(PINS["c2"])))

        # a garbage image, and a QR that is not a share
        with pytest.raises(CarrierRefusedError) as ei:
            u.add_share("qr-file", str(_noise_png(world.root / "noise.png")))
        assert ei.value.code == "qr-not-found"
        qrcode.make("https://example.com/not-a-share").save(world.root / "url.png")
        with pytest.raises(CarrierRefusedError) as ei:
            u.add_share("qr-file", str(world.root / "url.png"))
        assert ei.value.code in ("qr-payload", "qr-not-found")
        with pytest.raises(CarrierRefusedError):
            u.add_share("qr-file", str(world.root / "missing.png"))

        # the same share (c4, typed above) again by another carrier: the camera
        idx = indices_from_mnemonic(world.words["c4"])
        with idx.view() as mv, qr.make_matrix(mv) as mat:
            qr.render_image(mat).save(world.root / "c4.png")
        idx.close()
        with pytest.raises(ShareRefusedError, match="already given") as ei2:
            u.add_share("qr-camera", QRCamera(replay=(str(world.root / "c4.png"),)))
        assert ei2.value.code == "duplicate"
        assert run.state is StepState.ACTIVE and len(run.display["accepted"]) == 2
        assert run.performed is False

        # a carrier the step does not list is an intent error
        with pytest.raises(EngineError, match="not allowed"):
            u.add_share("nfc", None)

        # the third share from a keyboard-wedge scanner (digits of c3's grid card, 5 ms apart)
        digits = card_digits(world.qr_images["c3"])
        keys = [(memoryview(bytearray([ch])), 1_000_000 + 5_000 * i)
                for i, ch in enumerate(digits + b"\r")]  # fmt: skip
        done = u.add_share("scanner", keys)
        assert done["complete"] is True and done["index"] == 3
        assert run.performed is True
        _finish(u)
        rec = u.current_step
        assert rec is not None and rec.kind is StepKind.RECOVER
        res = u.perform()
        assert res["fingerprint"] == world.genesis.manifest["fingerprint"]  # type: ignore[index]
        u.abort("test ends after recovery", "admin")
    assert jr.verify(u.journal.path).ok
    evs = jr._events_from_path(u.journal.path)
    refused = [e.details.get("code") for e in evs if e.details.get("accepted") is False]
    assert "card-pin-incorrect" in refused and "card-wrong-card" in refused
    assert "qr-not-found" in refused and "duplicate" in refused
    accepted = [e.details["carrier"] for e in evs if e.details.get("accepted") is True]
    assert accepted == ["typed", "card", "scanner"]
    assert not any("9999" in json.dumps(e.details) for e in evs)


def test_scanner_key_by_key(world: World) -> None:
    """The per-key scanner intent (the UI forwards each key press as it comes)."""
    with _keyholder() as kc:
        u = _collect_step(world, kc)
        digits = card_digits(world.qr_images["c3"])
        t = 5_000_000
        for ch in digits:
            st = u.scanner_key(memoryview(bytearray([ch])), t)
            assert st["status"] == "pending"
            t += 4_000
        out = u.scanner_key(memoryview(bytearray(b"\r")), t)
        assert out["status"] == "complete" and out["index"] == 3
        # a person typing is too slow for a scanner: the burst is dropped, no share
        assert u.scanner_key(memoryview(bytearray(b"1")), t + 10_000)["status"] == "pending"
        assert u.scanner_key(memoryview(bytearray(b"2")), t + 900_000)["status"] == "not-scanner"
        u.abort("test ends", "admin")
    assert jr.verify(u.journal.path).ok


def test_card_without_data_objects_and_pin_retry_at_genesis(world: World, tmp_path: Path) -> None:
    """A card that keeps no data object (YubiKey PIV style): the sealed share file is
    exported with the manifest and used at collection; a wrong PIN at the card write keeps
    the distribution going."""
    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    shutil.copy(world.ws / "recipients" / "kms-openkcm-boot.pem", ws / "recipients")
    text = world.genesis.script.source.read_text()
    text = text.replace("threshold = 3\nshares = 5", "threshold = 2\nshares = 3")
    text = text.replace('["c1", "c2", "c3", "c4", "c5"]', '["c1", "c2", "c3"]')
    text = text.replace(
        'carriers = { c1 = "card", c2 = "card", c3 = "qr" }',
        'carriers = { c1 = "card" }\ncard_data_object = false',
    )
    gpath = tmp_path / "genesis-piv.toml"
    gpath.write_text(text)
    terminal = CustodianTerminal(read_qr=read_screen)
    try:
        with _keyholder(terminal.path) as kc:
            g = Ceremony.load(
                gpath, ws, ClientKeyholder(kc, tty=terminal.path), preflight=ok_preflight
            )
            while (
                run := g.current_step
            ) is not None and run.kind is not StepKind.DISTRIBUTE_SHARES:
                step_once(g)
            g.perform()
            # the script names c1's card: another card is refused before anything is written
            with pytest.raises(EngineError, match=f"gives Custodian 1 card {world.serials['c1']}"):
                g.show_share("c1", card=CardAccess(serial=world.serials["c2"], pin=pin("2222")))
            with pytest.raises(CarrierRefusedError, match="wrong PIN") as ei:
                g.show_share("c1", card=CardAccess(pin=pin("0000")))
            assert ei.value.code == "card-pin-incorrect"
            assert run.state is StepState.ACTIVE and "c1" not in run.shown
            res = g.show_share("c1", card=CardAccess(pin=pin(PINS["c1"])))
            assert res["stored_on_card"] is False and res["verified"] is True
            name = res["sealed_file"]
            assert (ws / "card-shares" / name).is_file()
            for cu in ("c1", "c2", "c3"):
                if cu != "c1":
                    g.show_share(cu)
                g.acknowledge(cu)
            for r in run.required_roles:
                if r not in run.acks:
                    g.acknowledge(r)
            g.complete_step()
            while g.current_step is not None:
                step_once(g)
        assert g.state is CeremonyState.COMPLETED
        exported = sorted(p.name for p in (ws / "exports" / "genesis-export").iterdir())
        assert name in exported
        sealed = (ws / "exports" / "genesis-export" / name).read_bytes()
        assert json.loads(sealed)["card_serial"] == world.serials["c1"]
        holder = next(h for h in g.manifest["holders"] if h["custodian"] == "c1")  # type: ignore[index]
        assert holder["sealed_file"] == name and holder["stored_on_card"] is False
        # the sealed card-share file and the manifest with its card facts follow the schemas
        schemas.valid("card-share", sealed)
        for m in (ws / "manifests").glob("set-*.json"):
            schemas.valid("share-set", m.read_bytes())
        words = terminal.shares[0]
    finally:
        terminal.close()

    upath = tmp_path / "unseal.toml"
    upath.write_text(world.unseal_script.read_text())
    with _keyholder() as kc:
        u = Ceremony.load(upath, ws, ClientKeyholder(kc), preflight=ok_preflight)
        while (run := u.current_step) is not None and run.kind is not StepKind.COLLECT_SHARES:
            step_once(u)
        u.perform()
        # the card also holds the share object of the other set (world genesis): ignored
        got = u.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
        assert got["card_source"] == "sealed-file" and got["index"] == 1
        # the TUI's QR payload form ({"image": path}) under the script's "qr"
        with pytest.raises(CarrierRefusedError):
            u.add_share("qr", {"image": str(_noise_png(tmp_path / "noise.png"))})
        done = u.add_share("typed", typed(words))
        assert done["complete"] is True
        _finish(u)
        res = u.perform()
        assert res["fingerprint"] == g.manifest["fingerprint"]  # type: ignore[index]
        u.abort("test ends after recovery", "admin")


def test_declared_carriers_with_a_keyholder_without_cards(workspace: Path, tmp_path: Path) -> None:
    """Script-declared carriers, an override with a recorded reason, and a keyholder port
    without card support (the test double): the card hand-over says so, nothing is faked."""
    text = (
        (SCRIPTS / "genesis.toml")
        .read_text()
        .replace(
            'display = ["screen", "qr", "card"]\n',
            'display = ["screen", "qr", "card"]\ncarriers = { c1 = "qr", c2 = "card" }\n',
        )
    )
    path = tmp_path / "g.toml"
    path.write_text(text)
    kh = KeyholderDouble()
    c = Ceremony.load(path, workspace, kh, preflight=ok_preflight)
    while (run := c.current_step) is not None and run.kind is not StepKind.DISTRIBUTE_SHARES:
        step_once(c)
    assert run is not None
    c.perform()
    holders = {h["custodian"]: h for h in c.manifest.get("holders", [])}  # type: ignore[union-attr]
    # the declared carriers are written into the manifest's holders
    assert holders["c1"]["carrier"] == "qr" and holders["c2"]["carrier"] == "card"
    assert holders["c3"]["carrier"] == "screen"  # not listed: the default
    with pytest.raises(EngineError, match="give a reason"):
        c.show_share("c1", "screen")
    c.show_share("c1", "screen", override_reason="the custodian cannot keep a QR safely")
    assert "instead of qr" in run.exceptions[-1]["text"] and run.exceptions[-1]["who"] == "admin"
    c.show_share("c3")  # not listed: screen
    assert kh.shown[-2:] == [(0, "screen"), (2, "screen")]
    with pytest.raises(StepFailedError, match="cannot write shares to smart cards"):
        c.show_share("c2", card=CardAccess(pin=pin("1234")))
    assert run.state is StepState.FAILED
    c.retry()
    assert c.share_carriers()["c2"] == "card"


def test_rotation_collects_old_shares_and_hands_new_ones_out_by_every_carrier(world: World, tmp_path: Path) -> None:
    """Issue 19: a rotation over this world's set (on a copy of its workspace): old shares
    come in by card, QR photo and typed words; the NEW key's shares go out on a fresh card
    (eu1), as a QR (eu2) and as words (the rest), every carrier under the rotation."""
    ws = tmp_path / "ws"
    shutil.copytree(world.ws, ws)
    conf = Path(os.environ["SOFTHSM2_CONF"])
    PINS["eu1"] = "4444"  # a new custodian's fresh card
    serials = init_tokens(conf, ["eu1"])
    text = no_card_module((SCRIPTS / "rotate.toml").read_text())  # the test names its own
    assert 'display = ["screen", "qr", "card"]\nsupersedes_collected = true\n' in text
    text = text.replace('[roles.eu1]\nkind = "custodian"\nname = "EU custodian 1"\n',
                        f'[roles.eu1]\nkind = "custodian"\nname = "EU custodian 1"\ncard_serial = "{serials["eu1"]}"\n')  # fmt: skip
    text = text.replace('carriers = ["typed", "qr", "card"]', 'carriers = ["typed", "qr", "card"]\ncard_module = "softhsm2"')
    text = text.replace(
        'display = ["screen", "qr", "card"]\nsupersedes_collected = true\n',
        'display = ["screen", "qr", "card"]\nsupersedes_collected = true\n'
        'carriers = { eu1 = "card", eu2 = "qr" }\ncard_module = "softhsm2"\ncard_key_bits = 2048\n',
    )
    path = tmp_path / "rotate-cards.toml"
    path.write_text(text)
    assert check_script(path) == []
    terminal = CustodianTerminal(read_qr=read_screen)
    try:
        with _keyholder(terminal.path) as kc:
            r = Ceremony.load(path, ws, ClientKeyholder(kc, tty=terminal.path), preflight=ok_preflight)
            while (run := r.current_step) is not None:
                if run.kind is StepKind.COLLECT_SHARES:
                    r.perform()
                    r.add_share("card", CardAccess(serial=world.serials["c1"], pin=pin(PINS["c1"])))
                    r.add_share("qr-file", str(world.qr_images["c3"]))
                    assert r.add_share("typed", typed(world.words["c4"]))["complete"] is True
                    for role in run.required_roles:
                        r.acknowledge(role)
                    r.complete_step()
                elif run.kind is StepKind.DISTRIBUTE_SHARES:
                    r.perform()
                    assert r.share_carriers()["eu1"] == "card" and r.share_carriers()["eu2"] == "qr"
                    kc_cards = r.rescan_cards("softhsm2")
                    assert serials["eu1"] in {t["serial"] for t in kc_cards}
                    for cu in r.script.policy.custodians:  # type: ignore[union-attr]
                        if cu == "eu1":
                            res = r.show_share(cu, card=CardAccess(pin=pin(PINS["eu1"])))
                            assert res["verified"] is True and res["stored_on_card"] is True
                        else:
                            r.show_share(cu)
                        r.acknowledge(cu)
                    for role in run.required_roles:
                        if role not in run.acks:
                            r.acknowledge(role)
                    r.complete_step()
                else:
                    step_once(r)
            assert kc.status()["master_held"] is False
    finally:
        terminal.close()
    assert r.state is CeremonyState.COMPLETED
    assert len(terminal.qr_reads) == 1 and len(terminal.shares) == 7  # eu2's QR, 7 word sheets
    new = r.manifest
    assert new is not None and new["fingerprint"] != world.genesis.manifest["fingerprint"]  # type: ignore[index]
    holders = {h["custodian"]: h for h in new["holders"]}
    assert holders["eu1"]["carrier"] == "card" and holders["eu1"]["card_serial"] == serials["eu1"]
    assert holders["eu2"]["carrier"] == "qr"
    evs = jr._events_from_path(r.journal.path)
    ins = [e.details["carrier"] for e in evs if e.details.get("accepted") is True]
    assert ins == ["card", "qr-file", "typed"]
