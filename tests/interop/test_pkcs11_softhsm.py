"""Shares on smart cards, against real SoftHSM2 tokens (python-pkcs11).

Each test gets its own SoftHSM2 configuration and token directory (``SOFTHSM2_CONF``);
tokens are created with ``softhsm2-util`` and the module is re-initialised so it sees them.
Card removal is simulated by deleting the token's directory in the middle of a session.
RSA-2048 keeps key generation fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.carriers import imagedecode, qr
from core.carriers import pkcs11 as cards
from core.carriers.errors import (
    CardDataMissing,
    CardModuleError,
    CardNoToken,
    CardPinIncorrect,
    CardRemoved,
    CardVerifyFailed,
    WrongCard,
)
from core.crypto.fingerprint import derive_fingerprint
from core.secmem import SecretBuffer, ct_equal
from core.shamir import slip39
from core.shamir.wordlist import indices_from_mnemonic, mnemonic_from_indices

MODULE = cards.DEFAULT_MODULES["softhsm2"]
SO_PIN = "12345678"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(MODULE) and shutil.which("softhsm2-util")), reason="SoftHSM2 missing"
)


def pin(text: str) -> memoryview:
    """A PIN as the keyholder passes it: a memoryview (of its locked receive buffer)."""
    return memoryview(text.encode())


class Hsm:
    """A private SoftHSM2 installation in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.tokendir = root / "tokens"
        self.tokendir.mkdir()
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.tokendir}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = true\n"
        )

    def init_tokens(self, labels: list[str], pins: list[str] | None = None) -> list[cards.TokenInfo]:
        for label, user_pin in zip(labels, pins or ["1234"] * len(labels), strict=True):
            subprocess.run(
                ["softhsm2-util", "--init-token", "--free", "--label", label,
                 "--so-pin", SO_PIN, "--pin", user_pin],
                check=True, capture_output=True, env=dict(os.environ, SOFTHSM2_CONF=str(self.conf)),
            )
        cards.rescan(MODULE)
        infos = {t.label: t for t in cards.list_tokens(MODULE)}
        return [infos[x] for x in labels]

    def remove(self, serial: str) -> None:
        """Delete a token's directory: the card is 'pulled out'."""
        for d in self.tokendir.iterdir():
            token_file = d / "token.object"
            if token_file.exists() and serial.encode() in token_file.read_bytes():
                shutil.rmtree(d)
                return
        raise AssertionError(f"token {serial} not found on disk")


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hsm]:
    h = Hsm(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(h.conf))
    cards.rescan(MODULE)
    yield h
    monkeypatch.undo()


def make_share_set(threshold: int = 3, count: int = 5) -> tuple[SecretBuffer, list[SecretBuffer]]:
    """A 256-bit MasterKey split 3-of-5 by core.shamir; returns (master, share indices)."""
    master = SecretBuffer(32)
    master.fill_random()
    with master.view() as mv:
        groups = slip39.split_master(
            mv, group_threshold=1, groups=[(threshold, count)], iteration_exponent=0
        )
    shares = [slip39.encode_share(s) for s in groups[0]]
    for s in groups[0]:
        s.close()
    return master, shares


def combine(indices: list[SecretBuffer]) -> SecretBuffer:
    decoded = []
    for buf in indices:
        with buf.view() as mv:
            decoded.append(slip39.decode_share(mv))
    try:
        return slip39.combine(decoded)
    finally:
        for s in decoded:
            s.close()


def same(a: SecretBuffer, b: SecretBuffer) -> bool:
    with a.view() as x, b.view() as y:
        return x.nbytes == y.nbytes and ct_equal(x, y)


def kcv(master: SecretBuffer) -> str:
    with master.view() as mv:
        return derive_fingerprint(mv).kcv


# --------------------------------------------------------------------------------- tests


def test_token_listing(hsm: Hsm) -> None:
    infos = hsm.init_tokens(["alice", "bob"])
    assert [t.label for t in infos] == ["alice", "bob"]
    for t in infos:
        assert t.serial and t.manufacturer == "SoftHSM project"
        assert t.initialized and not t.pin_pad and t.pin_state == "ok"
    assert len({t.serial for t in infos}) == 2
    assert set(infos[0].public()) >= {"label", "serial", "manufacturer", "pin_state", "pin_pad"}


def test_oaep_fallback_to_sha1_on_softhsm(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c1"])
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    # SoftHSM 2.6 refuses OAEP with SHA-256 (CKR_ARGUMENTS_BAD): we fall back and say so.
    assert key.oaep_hash == "sha1"
    assert any("SHA256" in n and "ArgumentsBad" in n for n in key.notes)
    assert key.bits == 2048 and len(key.fingerprint) == 64 and key.serial == t.serial


def test_genesis_5_cards_recover_3(hsm: Hsm) -> None:
    """Genesis writes 5 shares to 5 tokens; recovery reads 3 with PINs; the KCV matches."""
    pins = [f"{i}{i}{i}{i}55" for i in range(1, 6)]  # each custodian's own PIN
    tokens = hsm.init_tokens([f"custodian{i}" for i in range(1, 6)], pins)
    master, shares = make_share_set()
    manifest: dict[str, dict[str, str]] = {}
    sealed_files: dict[str, bytes] = {}
    for i, (t, share) in enumerate(zip(tokens, shares, strict=True)):
        key = cards.provision_key(MODULE, t.serial, pin(pins[i]), bits=2048)
        res = cards.write_share(
            MODULE, t.serial, pin(pins[i]), share, key, meta={"set": "demo", "member": i}
        )
        assert res.verified and res.stored_on_card
        manifest[t.serial] = {"fingerprint": key.fingerprint, "oaep": key.oaep_hash}
        sealed_files[t.serial] = res.sealed
        assert b"ciphertext" in res.sealed
    # nothing of the share is in the sealed document in the clear
    for share, t in zip(shares, tokens, strict=True):
        with share.view() as mv:
            assert mnemonic_from_indices(mv).encode() not in sealed_files[t.serial]
    # recovery: custodians 2, 4 and 5
    got = []
    for k in (1, 3, 4):
        t = tokens[k]
        r = cards.read_share(MODULE, t.serial, pin(pins[k]), expected_serials=set(manifest))
        assert r.source == "card" and r.key_fingerprint == manifest[t.serial]["fingerprint"]
        got.append(r.indices)
    for r_idx, share in zip(got, (shares[1], shares[3], shares[4]), strict=True):
        assert same(r_idx, share)
    recovered = combine(got)
    assert same(recovered, master)
    assert kcv(recovered) == kcv(master)


def test_sealed_file_only_card(hsm: Hsm) -> None:
    """Cards that cannot hold data objects (YubiKey PIV): share from the sealed file."""
    (t,) = hsm.init_tokens(["piv"])
    _master, shares = make_share_set()
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    res = cards.write_share(MODULE, t.serial, pin("1234"), shares[0], key, store_on_card=False)
    assert not res.stored_on_card and res.verified
    with pytest.raises(CardDataMissing, match="sealed share file"):
        cards.read_share(MODULE, t.serial, pin("1234"))
    r = cards.read_share(MODULE, t.serial, pin("1234"), sealed=res.sealed)
    assert r.source == "sealed-file" and same(r.indices, shares[0])


def test_write_verify_check_hook(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c"])
    _m, shares = make_share_set()
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    with pytest.raises(CardVerifyFailed, match="does not match"):
        cards.write_share(MODULE, t.serial, pin("1234"), shares[0], key, check=lambda mv: False)


def test_wrong_pin(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c"])
    with pytest.raises(CardPinIncorrect, match=f"wrong PIN for card {t.serial}") as ei:
        cards.read_share(MODULE, t.serial, pin("9999"))
    assert ei.value.code == "card-pin-incorrect"


def test_wrong_card(hsm: Hsm) -> None:
    a, b = hsm.init_tokens(["a", "b"])
    _m, shares = make_share_set()
    key_a = cards.provision_key(MODULE, a.serial, pin("1234"), bits=2048)
    res = cards.write_share(MODULE, a.serial, pin("1234"), shares[0], key_a, store_on_card=False)
    with pytest.raises(WrongCard, match=f"card {b.serial} is not one of this ceremony"):
        cards.read_share(MODULE, b.serial, pin("1234"), expected_serials={a.serial})
    # the sealed file of card a, with card b inserted
    with pytest.raises(WrongCard, match=f"belongs to card {a.serial}"):
        cards.read_share(MODULE, b.serial, pin("1234"), sealed=res.sealed)
    # only card b inserted, ceremony expects a
    with pytest.raises(WrongCard, match="not among this ceremony's cards"):
        cards.read_share(MODULE, None, pin("1234"), expected_serials={"0000"})


def test_no_token(hsm: Hsm) -> None:
    # An empty token directory: SoftHSM shows one uninitialised slot, no card.
    assert cards.list_tokens(MODULE) == []
    with pytest.raises(CardNoToken, match="no card in any reader"):
        cards.read_share(MODULE, None, pin("1234"))
    hsm.init_tokens(["x"])
    with pytest.raises(CardNoToken, match="card 123 is not in any reader"):
        cards.read_share(MODULE, "123", pin("1234"))


def test_missing_module() -> None:
    with pytest.raises(CardModuleError, match="not found"):
        cards.list_tokens("/nonexistent/libpkcs11.so")


def _removal_at(hsm: Hsm, t: cards.TokenInfo, stage: str) -> Callable[[str], None]:
    def progress(at: str) -> None:
        if at == stage:
            hsm.remove(t.serial)  # the card is pulled out at this point of the session

    return progress


def test_card_removed_during_read(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c"])
    _m, shares = make_share_set()
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    cards.write_share(MODULE, t.serial, pin("1234"), shares[0], key)
    # after the key was found, before the card decrypts
    with pytest.raises(CardRemoved, match=r"removed or stopped answering.*progress is kept"):
        cards.read_share(MODULE, t.serial, pin("1234"), progress=_removal_at(hsm, t, "decrypting"))


def test_card_removed_after_login(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c"])
    _m, shares = make_share_set()
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    cards.write_share(MODULE, t.serial, pin("1234"), shares[0], key)
    with pytest.raises(CardRemoved, match="pulled out, reinsert it"):
        cards.read_share(MODULE, t.serial, pin("1234"), progress=_removal_at(hsm, t, "logged-in"))


def test_card_removed_during_write(hsm: Hsm) -> None:
    (t,) = hsm.init_tokens(["c"])
    _m, shares = make_share_set()
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    hsm.remove(t.serial)
    with pytest.raises((CardRemoved, CardNoToken)):
        cards.write_share(MODULE, t.serial, pin("1234"), shares[0], key)


def test_mixed_recovery_words_card_qr(hsm: Hsm, tmp_path: Path) -> None:
    """One recovery from a typed share, a card share and a QR share."""
    (t,) = hsm.init_tokens(["card"])
    master, shares = make_share_set()
    # share 1: typed words (the word list round trip of core.shamir)
    with shares[0].view() as mv:
        words = mnemonic_from_indices(mv)
    typed = indices_from_mnemonic(words)
    # share 2: on a card
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    cards.write_share(MODULE, t.serial, pin("1234"), shares[1], key)
    from_card = cards.read_share(MODULE, t.serial, pin("1234"), expected_serials={t.serial})
    # share 3: a printed QR, photographed slightly rotated, read from a file on media
    with qr.make_matrix(shares[2]) as m:
        qr.render_image(m, scale=6).rotate(7, expand=True, fillcolor=255).save(tmp_path / "s3.png")
    from_qr = imagedecode.decode_file(tmp_path / "s3.png")
    recovered = combine([typed, from_card.indices, from_qr.indices])
    assert same(recovered, master) and kcv(recovered) == kcv(master)


# ------------------------------------------------------- error mapping the SoftHSM can't show
# SoftHSM never blocks a PIN, has always a reader and never fills up; real cards do. These
# feed the exceptions python-pkcs11 raises for those return values through the mapping.


class _FakeSlot:
    def get_token(self) -> object:
        raise AssertionError("unused")


class _FakeLib:
    def get_slots(self) -> list[object]:
        return []


def test_no_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.carriers.errors import CardNoReader

    monkeypatch.setitem(cards._libs, "/fake/module.so", _FakeLib())
    with pytest.raises(CardNoReader, match=r"no card reader found.*pcscd"):
        cards.list_tokens("/fake/module.so")


@pytest.mark.parametrize(
    ("exc", "flags", "cls", "text"),
    [
        ("PinIncorrect", 0x20000, "CardPinIncorrect", "ONE try remains"),
        ("PinIncorrect", 0x10000, "CardPinIncorrect", "few tries left"),
        ("PinIncorrect", 0x40000, "CardPinLocked", "blocked its PIN"),
        ("PinLocked", 0, "CardPinLocked", "PIN of card 42 is blocked"),
        ("DeviceMemory", 0, "CardFull", "no room for the share object"),
        ("MechanismInvalid", 0, "CardMechanismUnsupported", "does not support the mechanism"),
        ("DeviceRemoved", 0, "CardRemoved", "was removed"),
        ("TokenNotPresent", 0, "CardRemoved", "was removed"),
        ("SessionHandleInvalid", 0, "CardRemoved", "was removed"),
        ("FunctionCancelled", 0, "CardError", "cancelled"),
    ],
)
def test_error_mapping(exc: str, flags: int, cls: str, text: str) -> None:
    import pkcs11.exceptions as p11e

    from core.carriers import errors

    with pytest.raises(getattr(errors, cls), match=text) as ei:
        cards._raise_mapped(getattr(p11e, exc)(), "store the share object", "42", flags)
    assert type(ei.value).__name__ == cls


# ------------------------------------------------------------ through the keyholder process


def _client():  # type: ignore[no-untyped-def]
    from core.keyholder.client import KeyholderClient

    return KeyholderClient.start(stderr=None, pkcs11_modules=("softhsm2",))


def test_keyholder_genesis_to_5_cards_and_recovery_from_3(hsm: Hsm) -> None:
    """Genesis in one keyholder writes 5 cards; a fresh keyholder recovers from 3 cards."""
    from core.keyholder import ops_shares
    from core.keyholder.ops_carriers import CarrierClient

    pins = [f"pin-{i}" for i in range(1, 6)]
    tokens = hsm.init_tokens([f"k{i}" for i in range(1, 6)], pins)
    policy = {"group_threshold": 1, "groups": [[3, 5]], "extendable": True, "iteration_exponent": 0}
    manifest: dict[str, object] = {}
    with _client() as kh:
        cc = CarrierClient(kh)
        assert {t["serial"] for t in cc.list_cards(MODULE)} == {t.serial for t in tokens}
        gen = kh.call(ops_shares.GENESIS_SPLIT, policy=policy, generate=True)
        manifest.update(fingerprint=gen["fingerprint"], kcv=gen["kcv"], cards={})
        for i, t in enumerate(tokens):
            key = cc.provision(MODULE, t.serial, pin(pins[i]), bits=2048)
            out = cc.write_share(
                MODULE, t.serial, pin(pins[i]), 1, i + 1, key,
                commitment=gen["commitments"][i],
            )
            assert out["result"]["verified"] and out["result"]["stored_on_card"]
            assert isinstance(out["sealed"], bytes)
            manifest["cards"][t.serial] = key["fingerprint"]  # type: ignore[index]
        # a share goes to one carrier only
        from core.keyholder.errors import Refused

        with pytest.raises(Refused, match="already handed to card"):
            cc.write_share(MODULE, tokens[0].serial, pin(pins[0]), 1, 1, key)
    with _client() as kh:
        cc = CarrierClient(kh)
        kh.call(ops_shares.RECOVERY_BEGIN, commitments=gen["commitments"],
                fingerprint=gen["fingerprint"])
        expected = sorted(manifest["cards"])  # type: ignore[call-overload]
        with pytest.raises(CardPinIncorrect, match="wrong PIN"):
            cc.read_share(MODULE, tokens[0].serial, pin("nope"), expected_serials=expected)
        for k in (0, 2, 4):
            r = cc.read_share(MODULE, tokens[k].serial, pin(pins[k]), expected_serials=expected)
            assert r["share"]["member"] == k + 1 and r["share"]["source"] == "card"
            assert r["card"]["key_fingerprint"] == manifest["cards"][tokens[k].serial]  # type: ignore[index]
        rec = kh.call(ops_shares.RECOVER)
        assert rec["verified"] is True and rec["kcv"] == manifest["kcv"]


def test_keyholder_mixed_recovery_words_card_qr_scanner(hsm: Hsm, tmp_path: Path) -> None:
    """Typed words, a card, a QR image file (and a wedge scanner) in one recovery."""
    import time

    from core.keyholder import ops_shares
    from core.keyholder.ops_carriers import CarrierClient

    (t,) = hsm.init_tokens(["mixed"])
    master, shares = make_share_set(threshold=4, count=5)
    key = cards.provision_key(MODULE, t.serial, pin("1234"), bits=2048)
    cards.write_share(MODULE, t.serial, pin("1234"), shares[1], key)
    with qr.make_matrix(shares[2]) as m:
        qr.render_image(m, scale=5).save(tmp_path / "qr.png")
    with shares[3].view() as mv:
        scanned = "".join(f"{(mv[i] << 8) | mv[i + 1]:04d}" for i in range(0, len(mv), 2))
    with shares[0].view() as mv:
        words = mnemonic_from_indices(mv).split()
    with _client() as kh:
        cc = CarrierClient(kh)
        kh.call(ops_shares.RECOVERY_BEGIN, fingerprint=derive_fingerprint_hex(master))
        # 1: typed words
        kh.call(ops_shares.ENTRY_BEGIN, words=33)
        from core.keyholder.client import Secret

        for i, w in enumerate(words):
            kh.call(ops_shares.ENTRY_WORD, position=i + 1, chars=Secret(memoryview(w.encode())))
        assert kh.call(ops_shares.ENTRY_FINISH)["status"] == "ok"
        kh.call(ops_shares.ADD_SHARE)
        # 2: card
        assert cc.read_share(MODULE, t.serial, pin("1234"))["share"]["source"] == "card"
        # 3: QR image on media
        r = cc.decode_file(str(tmp_path / "qr.png"))
        assert r["share"]["source"] == "qr-file" and r["decoder"] == "zxing-cpp"
        # 4: handheld scanner burst
        t0 = int(time.monotonic() * 1e6)
        for i, ch in enumerate(scanned.encode() + b"\r"):
            out = cc.scanner_key(memoryview(bytes([ch])), t0 + 3000 * i)
        assert out["status"] == "complete" and out["share"]["source"] == "qr-scanner"
        rec = kh.call(ops_shares.RECOVER)
        assert rec["verified"] is True and rec["kcv"] == kcv(master)


def derive_fingerprint_hex(master: SecretBuffer) -> str:
    with master.view() as mv:
        return derive_fingerprint(mv).hex


_ANOTHER_CALLER = """
import os, sys
import pkcs11
from core.carriers import pkcs11 as cards
from core.carriers.errors import CardModuleError
module, first, second = sys.argv[1:4]
os.environ["SOFTHSM2_CONF"] = first
lib = pkcs11.lib(module)  # another caller, outside core.carriers.pkcs11
lib.reinitialize()
assert [t.label for t in lib.get_tokens() if t.label] == ["elsewhere"]
os.environ["SOFTHSM2_CONF"] = second
try:
    cards.rescan(module)
    print("listed", [t.label for t in cards.list_tokens(module)])
except CardModuleError as exc:
    print("refused", exc)
"""


def test_a_module_another_caller_initialised_is_never_silently_reused(tmp_path: Path) -> None:
    """Regression (found by a shuffled-order sweep): python-pkcs11 keeps one initialised
    instance per library in a process. When other code had initialised SoftHSM2 with its
    own configuration, ``rescan`` handed back that instance and the cards listed were the
    other configuration's (a login with the right PIN then failed). The module is now
    loaded through ``/proc/self/fd/N`` (the file checked, issue 12), so a module someone
    else initialised in the process is refused with an error or re-initialised with our
    configuration, never reused with theirs. A fresh process: the test order must not
    matter."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Hsm(tmp_path / "a"), Hsm(tmp_path / "b")
    for hsm, label in ((first, "elsewhere"), (second, "mine")):
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                        "--pin", "1111"], check=True, capture_output=True,
                       env=dict(os.environ, SOFTHSM2_CONF=str(hsm.conf)))
    out = subprocess.run(
        [sys.executable, "-c", _ANOTHER_CALLER, MODULE, str(first.conf), str(second.conf)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.startswith("refused") or out.strip() == "listed ['mine']", out
    assert "elsewhere" not in out
