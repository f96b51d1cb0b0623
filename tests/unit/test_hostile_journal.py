"""Issue 12, PoC 4: the journal could be rewritten consistently.

The PoC against the old code: change a row (who witnessed a step), recompute every hash
and the head; ``kcm-ceremony journal verify`` said OK. Only the paper log's final hash
(``--final``) caught it. Now the keyholder signs the closed journal's final hash (and the
genesis manifest, the seal manifest and the transcript) with the MasterKey-derived key;
``journal verify`` checks the signature against the MasterKey fingerprint given from
outside the journal (``--fingerprint`` from the paper log, or ``--manifest``), and an
unsigned or unanchored journal is not called OK.

A real genesis runs once (real keyholder, shares on a pty) and is then attacked on copies.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core import journal as jr
from core.crypto.fingerprint import verify_signature
from core.keyholder import ops_core
from core.keyholder.client import KeyholderClient
from core.keyholder.errors import KeyholderError, NoMasterKey, Refused
from tests.support.custodian import CustodianTerminal
from tests.support.engine import SCRIPTS, drive, ok_preflight
from tests.support.keyholder_double import KeyholderDouble
from tests.support.keyholders import run_genesis

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Genesis:
    ws: Path
    db: Path
    fp: str
    kcv_words: str
    manifest_export: Path
    shares: list[str]


@pytest.fixture(scope="module")
def genesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Genesis]:
    root = tmp_path_factory.mktemp("signed")
    ws = root / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    terminal = CustodianTerminal()
    try:
        g = run_genesis(ws, terminal)
    finally:
        terminal.close()
    assert g.manifest is not None
    gen = next(s for s in g.steps if s.kind.value == "generate")
    yield Genesis(
        ws=ws,
        db=g.journal.path,
        fp=g.manifest["fingerprint"],
        kcv_words=" ".join(gen.results["kcv_words"]),
        manifest_export=ws / "exports" / "genesis-export" / f"manifest-set-{g.manifest['set_id']}.json",
        shares=list(terminal.shares),
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kcm_tui.cli", "journal", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def _copy(g: Genesis, tmp_path: Path) -> Path:
    out = tmp_path / "journal.db"
    shutil.copy(g.db, out)
    return out


def _rewrite(path: Path, edit: Any) -> None:
    """The attacker's tool: edit rows, then recompute every hash and the head."""
    db = sqlite3.connect(path)
    rows = [
        dict(zip(("seq", "ts", "ceremony_id", "act", "step", "role", "kind", "details", "prev_hash"), r, strict=True))
        for r in db.execute(
            "SELECT seq, ts, ceremony_id, act, step, role, kind, details, prev_hash FROM events ORDER BY seq"
        )
    ]
    for r in rows:
        r["details"] = json.loads(r["details"])
    edit(rows)
    prev = jr.GENESIS_PREV_HASH
    for r in rows:
        r["prev_hash"] = prev
        h = jr.row_hash(prev, r)
        db.execute(
            "UPDATE events SET role=?, details=?, prev_hash=?, hash=? WHERE seq=?",
            (r["role"], jr.canonical_json(r["details"]), prev, h, r["seq"]),
        )
        prev = h
    db.execute("UPDATE head SET hash=? WHERE id=1", (prev,))
    db.commit()
    db.close()


def _swap_witness(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if r["kind"] == "step.ack" and r["role"] == "witness":
            r["details"]["name"] = "Mallory (not present)"
            return
    raise AssertionError("no witness acknowledgement to change")


def _resign(path: Path, key: Ed25519PrivateKey, *, claim: bool) -> str:
    """Re-sign the rewritten journal with the attacker's own key (and name it in the
    closing row when ``claim``)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from core import signatures as sig

    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def edit(rows: list[dict[str, Any]]) -> None:
        _swap_witness(rows)
        if claim:
            rows[-1]["details"]["signed_by"] = pub
        else:
            rows[-1]["details"].pop("signed_by", None)

    _rewrite(path, edit)
    db = sqlite3.connect(path)
    seq, final, cid = db.execute(
        "SELECT seq, hash, ceremony_id FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    value = key.sign(sig.signed_bytes("journal-final-hash", sig.journal_message(cid, seq, final)))
    block = sig.make_block("journal-final-hash", pub, value)
    db.execute("UPDATE signatures SET block=? WHERE purpose='journal-final-hash'", (jr.canonical_json(block),))
    db.commit()
    db.close()
    return pub


# ------------------------------------------------------------------------------ the PoC


def test_the_genuine_journal_is_ok_only_with_an_anchor(genesis: Genesis, tmp_path: Path) -> None:
    path = _copy(genesis, tmp_path)
    res = jr.verify(path, fingerprint=genesis.kcv_words)
    assert res.ok and res.signed and res.anchored and res.proven and res.signer == genesis.fp
    assert _cli("verify", str(path), "--fingerprint", genesis.kcv_words).returncode == 0
    assert _cli("verify", str(path), "--fingerprint", genesis.fp).returncode == 0
    assert _cli("verify", str(path), "--manifest", str(genesis.manifest_export)).returncode == 0
    plain = _cli("verify", str(path))
    assert plain.returncode == 4 and "UNANCHORED" in plain.stdout and ": OK:" not in plain.stdout


def test_rewritten_chain_fails_on_the_signature(genesis: Genesis, tmp_path: Path) -> None:
    """The PoC itself: a witness changed, every hash and the head recomputed."""
    path = _copy(genesis, tmp_path)
    _rewrite(path, _swap_witness)
    plain = _cli("verify", str(path))
    assert plain.returncode != 0 and ": OK:" not in plain.stdout, "the rewritten journal passed"
    assert plain.returncode == 1 and "signature does not verify" in plain.stdout
    res = jr.verify(path, fingerprint=genesis.kcv_words)
    assert not res.ok and "changed after it was signed" in res.message


def test_rewritten_chain_with_the_signature_removed_is_not_ok(genesis: Genesis, tmp_path: Path) -> None:
    path = _copy(genesis, tmp_path)
    _rewrite(path, _swap_witness)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE signatures")
    db.commit()
    db.close()
    out = _cli("verify", str(path))
    assert out.returncode == 1 and "carries no signature" in out.stdout  # closing row names it
    # ...and the closing row's claim removed as well: UNSIGNED, never OK
    _rewrite(path, lambda rows: rows[-1]["details"].pop("signed_by"))
    out = _cli("verify", str(path))
    assert out.returncode == 4 and "UNSIGNED" in out.stdout and ": OK:" not in out.stdout
    out = _cli("verify", str(path), "--fingerprint", genesis.kcv_words)
    assert out.returncode == 1 and "no signature" in out.stdout


def test_rewritten_chain_resigned_with_another_key_fails_the_anchor(
    genesis: Genesis, tmp_path: Path
) -> None:
    path = _copy(genesis, tmp_path)
    _resign(path, Ed25519PrivateKey.generate(), claim=True)
    out = _cli("verify", str(path))
    assert out.returncode == 4 and "UNANCHORED" in out.stdout  # self-consistent, but whose?
    for anchor in (["--fingerprint", genesis.kcv_words], ["--fingerprint", genesis.fp],
                   ["--manifest", str(genesis.manifest_export)]):  # fmt: skip
        out = _cli("verify", str(path), *anchor)
        assert out.returncode == 1 and "not by the MasterKey fingerprint given" in out.stdout
    # the paper log's final hash catches it too, as before
    assert _cli("verify", str(path), "--final", jr.verify(genesis.db).final_hash).returncode == 1


def test_exports_carry_the_signature(genesis: Genesis) -> None:
    folder = genesis.db.parent
    jl = folder / "journal.jsonl"
    res = jr.verify(jl, fingerprint=genesis.fp)
    assert res.ok and res.signed and res.proven
    # an edited JSONL with its hashes recomputed fails on the trailer signature
    lines = jl.read_text().splitlines()
    rows = [json.loads(x) for x in lines[:-1]]
    for r in rows:
        if r["kind"] == "step.ack" and r["role"] == "witness":
            r["details"]["name"] = "Mallory"
            break
    prev = jr.GENESIS_PREV_HASH
    for r in rows:
        r["prev_hash"] = prev
        r["hash"] = prev = jr.row_hash(prev, r)
    forged = folder.parent / "forged.jsonl"
    forged.write_text("\n".join([*(jr.canonical_json(r) for r in rows), lines[-1]]) + "\n")
    try:
        assert not jr.verify(forged).ok
    finally:
        forged.unlink()
    # the transcript: shows who signed, and is itself signed
    md = folder / "transcript.md"
    assert genesis.kcv_words in md.read_text()
    assert _cli("verify", str(md), "--fingerprint", genesis.kcv_words).returncode == 0
    edited = folder.parent / "transcript.md"
    edited.write_text(md.read_text().replace("Internal Witness", "Mallory"))
    shutil.copy(str(md) + ".sig", str(edited) + ".sig")
    try:
        out = _cli("verify", str(edited), "--fingerprint", genesis.kcv_words)
        assert out.returncode == 1 and "changed after it was signed" in out.stdout
    finally:
        edited.unlink()
        Path(str(edited) + ".sig").unlink()


def test_manifests_are_signed_and_an_edited_one_is_refused(genesis: Genesis, tmp_path: Path) -> None:
    from core import signatures as sig
    from core.ceremony.engine import Ceremony, ClientKeyholder, StepFailedError

    m = json.loads(genesis.manifest_export.read_text())
    assert sig.verify_block(m["signature"], sig.manifest_message(m), purpose="genesis-manifest") == genesis.fp
    seal = json.loads((genesis.manifest_export.parent / "seal-manifest.json").read_text())
    msg = b"openkcm-seal-manifest/v1\x00" + sig.canonical(seal["body"])
    assert verify_signature(
        bytes.fromhex(genesis.fp),
        sig.signed_bytes("seal-manifest", msg),
        base64.b64decode(seal["signature"]["value"]),
    )
    # a stick whose manifest was edited (a holder renamed) after genesis
    ws = tmp_path / "ws"
    shutil.copytree(genesis.ws, ws, ignore=shutil.ignore_patterns("ceremonies"))
    mpath = ws / "manifests" / f"set-{m['set_id']}.json"
    edited = json.loads(mpath.read_text())
    edited["holders"][0]["name"] = "Mallory"
    mpath.write_text(json.dumps(edited, indent=2))
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        u = Ceremony.load(SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight)
        drive(u, until="recover.collect")
        with pytest.raises(StepFailedError, match="changed after it was signed"):
            u.perform()
        u.abort("test", "admin")


# ------------------------------------------------------------------------------ the order problem


def test_signing_key_outlives_the_wipe_only_for_the_closing_records() -> None:
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kh:
        fp = bytes.fromhex(kh.generate_master()["fingerprint"])
        reply = kh.wipe(keep_signing_key=True)
        assert reply["signing_key_kept"] is True and reply["fingerprint"] == fp.hex()
        st = kh.status()
        assert st["master_held"] is False and st["signing_key_held"] is True
        assert st["signing_purposes_left"] == ["ceremony-transcript", "journal-final-hash"]
        with pytest.raises(NoMasterKey):
            kh.fingerprint()
        for purpose in ("genesis-manifest", "seal-manifest"):
            with pytest.raises(Refused, match="signs only"):
                kh.sign(purpose, b"x")
        s1 = kh.sign("journal-final-hash", b"final")
        assert verify_signature(fp, ops_core.signed_bytes("journal-final-hash", b"final"), s1)
        with pytest.raises(Refused, match="signs only"):
            kh.sign("journal-final-hash", b"another final hash")  # once
        kh.sign("ceremony-transcript", b"t")
        assert kh.status()["signing_key_held"] is False  # gone after the last use
        with pytest.raises(KeyholderError, match="no signing key was kept"):
            kh.sign("ceremony-transcript", b"t")
        # a wipe without the flag drops a kept key at once
        kh.generate_master()
        kh.wipe(keep_signing_key=True)
        kh.wipe()
        assert kh.status()["signing_key_held"] is False


def test_ceremony_that_never_held_the_key_is_unsigned_not_ok(tmp_path: Path) -> None:
    """verify-shares without its optional dry run: nothing to sign with."""
    ws = tmp_path / "ws"
    (ws / "manifests").mkdir(parents=True)
    kh = KeyholderDouble()
    m = {"set_id": "1234", "policy": {"threshold": 3}, "commitments": [], "fingerprint": "00" * 32}
    (ws / "manifests" / "set-1234.json").write_text(json.dumps(m))
    from core.ceremony.engine import Ceremony

    c = Ceremony.load(SCRIPTS / "verify-shares.toml", ws, kh, preflight=ok_preflight)
    c.abort("nobody came", "admin")
    res = jr.verify(c.journal.path)
    assert res.ok and not res.signed and res.status == "UNSIGNED" and not res.proven
    out = _cli("verify", str(c.journal.path))
    assert out.returncode == 4 and "UNSIGNED" in out.stdout and ": OK:" not in out.stdout
    assert _cli("verify", str(c.journal.path), "--final", res.final_hash).returncode == 0
    assert "UNSIGNED" in c.exports["transcript"].read_text()


def test_keyholder_gone_before_the_close_gives_an_honest_unsigned_journal(tmp_path: Path) -> None:
    """If the signing key is gone (the keyholder died) the journal does not claim a
    signature it cannot get: it records why and closes UNSIGNED (not FAILED)."""
    from core.ceremony.engine import Ceremony, ClientKeyholder

    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    kc = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    c = Ceremony.load(SCRIPTS / "genesis.toml", ws, ClientKeyholder(kc), preflight=ok_preflight)
    drive(c, until="generate.kcv")
    assert c.signing_fp
    kc.kill()  # the keyholder is gone: every secret with it
    c.abort("the keyholder died", "admin")
    evs = jr._events_from_path(c.journal.path)
    assert any(e.kind == "journal.unsigned" for e in evs)
    assert "signed_by" not in evs[-1].details
    res = jr.verify(c.journal.path)
    assert res.ok and res.status == "UNSIGNED"
