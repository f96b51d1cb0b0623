"""The engine over the REAL keyholder process (core.keyholder via ClientKeyholder).

Full ceremonies with real SLIP-39 shares in the keyholder: genesis 3-of-5 (each share shown
on a pseudo-terminal standing in for the custodian's screen; the "custodian" reads the
words off it), then unseal-and-seal typing 3 of those shares word by word, a real sealed
envelope, and a verify-shares check; reshare 2-of-3 -> 3-of-5 with a superseded old share
refused; the rehearsal of `make run` (practice genesis, then practice unseal-and-seal from 3
of its shares) in a demo workspace, with the envelopes opened by the DEMO private key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import journal as jr
from core.ceremony.engine import (
    Ceremony,
    CeremonyState,
    ClientKeyholder,
    EngineError,
    ShareRefusedError,
)
from core.ceremony.model import StepKind
from core.keyholder.client import KeyholderClient
from core.seal import envelope
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, step_once
from tests.support.keyholders import run_genesis


@pytest.fixture
def client() -> Iterator[KeyholderClient]:
    c = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    yield c
    c.close()


def test_genesis_then_unseal_and_seal_real(
    workspace: Path,
    terminal: CustodianTerminal,
    client: KeyholderClient,
) -> None:
    g = run_genesis(workspace, terminal)
    assert g.state is CeremonyState.COMPLETED
    assert len(terminal.shares) == 5 and all(len(s.split()) == 33 for s in terminal.shares)
    # every showing is journaled with its number and how it ended (issue 14)
    shows = [e.details for e in jr._events_from_path(g.journal.path) if e.details.get("shown_to")]
    assert len(shows) == 5
    assert all(d["showing"] == 1 and d["ended"] == "enter-confirmed" for d in shows), shows
    fp = g.manifest["fingerprint"]  # type: ignore[index]
    assert len(g.manifest["commitments"]) == 5  # type: ignore[index]
    env = envelope.parse(
        (workspace / "exports" / "genesis-export" / "masterkey-kms.sealed.json").read_bytes()
    )
    assert env.header["masterkey_fingerprint"] == fp

    u = Ceremony.load(
        SCRIPTS / "unseal-and-seal.toml", workspace, ClientKeyholder(client), preflight=ok_preflight
    )
    drive(u, until="recover.collect")
    u.perform()
    bad = terminal.shares[1].split()
    bad[5] = "academic" if bad[5] != "academic" else "acid"
    with pytest.raises(ShareRefusedError, match="checksum"):
        u.add_share("typed", typed(" ".join(bad)))
    for i in (4, 0, 2):
        u.add_share("typed", typed(terminal.shares[i]))
    step_once(u)
    drive(u)
    assert u.state is CeremonyState.COMPLETED
    rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    assert rec.results["fingerprint"] == fp and rec.results["verified"] is True
    assert jr.verify(u.journal.path).ok
    # signed by the rebuilt key after its wipe step (issue 12): proven against the genesis
    # fingerprint; nothing of the key or its signing key is left in the keyholder
    res = jr.verify(u.journal.path, fingerprint=fp)
    assert res.proven and res.signer == fp
    assert jr.verify(g.journal.path, fingerprint=fp).proven
    st = client.status()
    assert st["master_held"] is False and st["signing_key_held"] is False

    # verify-shares: a custodian checks a share against the manifest without recovery
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        v = Ceremony.load(
            SCRIPTS / "verify-shares.toml", workspace, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(v, until="check.check")
        v.perform()
        assert v.add_share("typed", typed(terminal.shares[3]))["ok"] is True
        step_once(v)
        drive(v, shares=[typed(terminal.shares[i]) for i in (0, 1, 2)])
        assert v.state is CeremonyState.COMPLETED
        dry = next(s for s in v.steps if s.kind is StepKind.RECOVER)
        assert dry.results["fingerprint"] == fp and dry.results["dry_run"] is True
        assert jr.verify(v.journal.path, fingerprint=fp).proven  # the dry run held the key


def test_reshare_real(workspace: Path, terminal: CustodianTerminal, tmp_path: Path) -> None:
    text = (SCRIPTS / "genesis.toml").read_text()
    text = text.replace("threshold = 3\nshares = 5", "threshold = 2\nshares = 3")
    text = text.replace('["c1", "c2", "c3", "c4", "c5"]', '["c1", "c2", "c3"]')
    p = tmp_path / "genesis-2of3.toml"
    p.write_text(text)
    g = run_genesis(workspace, terminal, p)
    old = list(terminal.shares)
    assert len(old) == 3
    old_set = g.manifest["set_id"]  # type: ignore[index]
    fp = g.manifest["fingerprint"]  # type: ignore[index]

    with KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0, terminal=terminal.path, demo=True
    ) as kc:
        r = Ceremony.load(
            SCRIPTS / "reshare.toml",
            workspace,
            ClientKeyholder(kc, tty=terminal.path),
            preflight=ok_preflight,
        )
        drive(r, shares=[typed(old[2]), typed(old[0])])
        assert r.state is CeremonyState.COMPLETED
    new = r.manifest
    assert new is not None and new["supersedes"] == old_set and new["fingerprint"] == fp
    new_shares = terminal.shares[3:]
    assert len(new_shares) == 5

    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", workspace, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(u, until="recover.collect")
        u.perform()
        with pytest.raises(ShareRefusedError, match=f"superseded by set {new['set_id']}") as err:
            u.add_share("typed", typed(old[1]))
        assert err.value.code == "other-set"  # as docs/scripts.md says (it was None)
        u.add_share("typed", typed(new_shares[0]))
        with pytest.raises(ShareRefusedError) as err:
            u.add_share("typed", typed(new_shares[0]))
        assert err.value.code == "duplicate"
        bad = new_shares[1].split()
        bad[5] = "academic" if bad[5] != "academic" else "acid"
        with pytest.raises(ShareRefusedError, match="checksum") as err:
            u.add_share("typed", typed(" ".join(bad)))
        assert err.value.code == "checksum"
        refused = [
            e.details.get("code")
            for e in jr._events_from_path(u.journal.path)
            if e.details.get("accepted") is False
        ]
        assert refused == ["other-set", "duplicate", "checksum"]
        for s in new_shares[1:3]:
            u.add_share("typed", typed(s))
        step_once(u)
        drive(u)
        assert u.state is CeremonyState.COMPLETED


def test_practice_real(workspace: Path, terminal: CustodianTerminal) -> None:
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        with pytest.raises(EngineError, match="practice mode"):
            Ceremony.load(SCRIPTS / "practice-genesis.toml", workspace, ClientKeyholder(kc))
    with KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0, practice=True, terminal=terminal.path, demo=True
    ) as kc:
        with pytest.raises(EngineError, match="practice mode"):
            Ceremony.load(SCRIPTS / "genesis.toml", workspace, ClientKeyholder(kc))
        c = Ceremony.load(
            SCRIPTS / "practice-genesis.toml",
            workspace,
            ClientKeyholder(kc, tty=terminal.path),
            preflight=ok_preflight,
        )
        drive(c)
    assert c.state is CeremonyState.COMPLETED and c.ceremony_id.startswith("PRACTICE-")
    gen = next(s for s in c.steps if s.kind is StepKind.GENERATE)
    assert gen.results["origin"] == "practice"
    events = jr._events_from_path(c.journal.path)
    assert all(e.details.get("practice") in (True, "PRACTICE") for e in events)
    assert c.exports["transcript"].read_text().startswith("# PRACTICE")
    out = workspace / "exports" / "PRACTICE-genesis-export"
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.sha256",
        f"PRACTICE-manifest-set-{c.manifest['set_id']}.json",  # type: ignore[index]
        "PRACTICE-masterkey-kms.sealed.json",
        "PRACTICE-seal-manifest.json",  # the signed list of envelopes (issue 12)
    ]


def test_practice_genesis_then_practice_unseal_and_seal_in_demo_workspace(
    tmp_path: Path, terminal: CustodianTerminal
) -> None:
    """What a new user does after `make run`: both rehearsals in the demo workspace."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from core.demo import init_workspace, load_workspace
    from tests.support import seal_reader

    ws = init_workspace(tmp_path / "demo")
    assert ws.preselect == "practice-genesis.toml"
    assert ws.next_script == "practice-unseal-and-seal.toml"
    media = ws.media
    unlocked = os.geteuid() != 0

    with KeyholderClient.start(
        allow_unlocked=unlocked, practice=True, terminal=terminal.path, demo=True
    ) as kc:
        g = Ceremony.load(
            ws.scripts / ws.preselect,
            media,
            ClientKeyholder(kc, tty=terminal.path),
            preflight=ok_preflight,
        )
        drive(g)
    assert g.state is CeremonyState.COMPLETED and len(terminal.shares) == 5
    sid = g.manifest["set_id"]  # type: ignore[index]
    fp = g.manifest["fingerprint"]  # type: ignore[index]
    assert (media / "manifests" / f"PRACTICE-set-{sid}.json").exists()
    # the next `make run` preselects the practice unseal-and-seal
    assert load_workspace(ws.root).preselect == "practice-unseal-and-seal.toml"

    # a real unseal-and-seal refuses the PRACTICE set, naming the rehearsal script, before
    # its first step (issue 15)
    with KeyholderClient.start(allow_unlocked=unlocked) as kc, pytest.raises(
        EngineError,
        match="only PRACTICE share sets are here; run the practice-unseal-and-seal script",
    ):
        Ceremony.load(
            ws.scripts / "unseal-and-seal.toml", media, ClientKeyholder(kc), preflight=ok_preflight
        )

    with KeyholderClient.start(allow_unlocked=unlocked, practice=True) as kc:
        u = Ceremony.load(
            ws.scripts / "practice-unseal-and-seal.toml",
            media,
            ClientKeyholder(kc),
            preflight=ok_preflight,
        )
        drive(u, shares=[typed(terminal.shares[i]) for i in (1, 4, 2)])
        assert kc.status()["master_held"] is False
    assert u.state is CeremonyState.COMPLETED and u.ceremony_id.startswith("PRACTICE-")
    rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    kcv = next(s for s in u.steps if s.kind is StepKind.VERIFY_KCV)
    assert rec.results["fingerprint"] == fp and rec.results["matches_manifest"] is True
    assert kcv.results["kcv"].replace(" ", "") == g.manifest["kcv"]  # type: ignore[index]
    assert jr.verify(u.journal.path).ok and jr.verify(g.journal.path).ok
    evs = jr._events_from_path(u.journal.path)
    assert all(e.details.get("practice") in (True, "PRACTICE") for e in evs)
    assert u.exports["transcript"].name == "PRACTICE-transcript.md"

    out = media / "exports" / "PRACTICE-unseal-export"
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.sha256",
        "PRACTICE-masterkey-kms.sealed.json",
        "PRACTICE-seal-manifest.json",
    ]
    data = (out / "PRACTICE-masterkey-kms.sealed.json").read_bytes()
    header = envelope.parse(data).header
    assert header["ceremony_id"].startswith("PRACTICE-") and header["cluster_id"] == "practice"
    assert header["recipient"]["name"] == "PRACTICE-kms"
    assert header["recipient"]["key_id"].startswith("PRACTICE")
    assert header["masterkey_fingerprint"] == fp
    # the DEMO private key of the PRACTICE recipient opens both envelopes: the same key
    pem = next(p for p in ws.demo_keys.iterdir() if p.name.startswith("PRACTICE-kms"))
    key = serialization.load_pem_private_key(
        b"".join(ln for ln in pem.read_bytes().splitlines(True) if not ln.startswith(b"#")), None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    first = media / "exports" / "PRACTICE-genesis-export" / "PRACTICE-masterkey-kms.sealed.json"
    assert seal_reader.open_envelope(data, rsa_key=key) == seal_reader.open_envelope(
        first.read_bytes(), rsa_key=key
    )
