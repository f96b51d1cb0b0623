"""MasterKey rotation end to end, through the engine and the REAL keyholder (issue 19).

A 3-of-5 genesis (ceremony_scripts/genesis.toml; each share read off a pseudo-terminal
standing in for the custodian's screen), then ceremony_scripts/rotate.toml: three old
shares typed, the old key rebuilt and checked, the new key generated in the second slot,
split 2 of 3 groups of 2-of-3 (nine shares read off the terminal), sealed to the KMS, the
old key sealed to the KMS as a transitional envelope (30 days), the continuity statement,
the export, the old set marked rotated out, both keys wiped. Then every check of the issue:

* the new set recovers the new key (an unseal-and-seal from two shares of two groups),
  and its KCV is the statement's;
* the old set still recovers the old key, but unseal-and-seal refuses it, naming the
  rotation ceremony and the new set; an old share typed into the new set's ceremony is
  refused the same way; verify-shares reports it as a share of a rotated-out set;
* the transitional envelope opens (with the KMS's private key) before its expiry and is
  refused after it; after it the tool refuses to use the old set at all;
* the statement verifies with the independent checker written from the document, and
  every file the rotation wrote validates against its schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import continuity
from core import journal as jr
from core.ceremony import records
from core.ceremony.engine import (
    Ceremony,
    CeremonyState,
    ClientKeyholder,
    ShareRefusedError,
    StepFailedError,
)
from core.ceremony.model import StepKind
from core.keyholder.client import KeyholderClient
from core.seal import envelope as E
from tests.schemas import valid
from tests.support import rotation as rs
from tests.support import seal_reader
from tests.support.continuity_check import independent_check
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, practice_pem, step_once
from tests.support.keyholders import run_genesis

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _kh(terminal: str | None = None) -> KeyholderClient:
    """A keyholder; ``terminal`` (the custodians' pty) is its display terminal, fixed at
    spawn (a pty is allowed in demo mode only)."""
    return KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0, terminal=terminal, demo=terminal is not None
    )


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = tmp_path_factory.mktemp("rotation") / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(PEM, SPKI)
    )
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    terminal = CustodianTerminal()
    try:
        g = run_genesis(ws, terminal)
        assert g.state is CeremonyState.COMPLETED and len(terminal.shares) == 5
        old_shares = list(terminal.shares)
        with _kh(terminal.path) as kc:
            r = Ceremony.load(
                SCRIPTS / "rotate.toml",
                ws,
                ClientKeyholder(kc, tty=terminal.path),
                preflight=ok_preflight,
            )
            drive(r, shares=[typed(old_shares[i]) for i in (4, 0, 2)])
            status = kc.status()
        new_shares = terminal.shares[5:]
    finally:
        terminal.close()
    yield {
        "ws": ws,
        "kms": kms,
        "genesis": g,
        "rotate": r,
        "old": old_shares,
        "new": new_shares,
        "status": status,
    }


def test_the_rotation_completes_and_leaves_its_records(rotated: dict[str, Any]) -> None:
    g, r, ws = rotated["genesis"], rotated["rotate"], rotated["ws"]
    assert r.state is CeremonyState.COMPLETED
    assert (
        rotated["status"]["master_held"] is False and rotated["status"]["signing_key_held"] is False
    )
    old_fp, old_set = g.manifest["fingerprint"], g.manifest["set_id"]
    new = r.manifest
    assert new["fingerprint"] != old_fp and new["supersedes"] == old_set
    assert new["policy"]["slip39"]["group_threshold"] == 2
    assert new["selftest"]["mode"] in ("exhaustive", "consistency")  # the genesis self-test ran
    assert [g2[:2] for g2 in new["policy"]["slip39"]["groups"]] == [[2, 3], [2, 3], [2, 3]]
    assert len(rotated["new"]) == 9 and all(len(s.split()) == 33 for s in rotated["new"])
    # every step of the flow ran, in order
    kinds = [s.kind for s in r.steps if s.state.value == "done"]
    for a, b in ((StepKind.RECOVER, StepKind.GENERATE), (StepKind.GENERATE, StepKind.DISTRIBUTE_SHARES),
                 (StepKind.SEAL, StepKind.CONTINUITY_STATEMENT), (StepKind.EXPORT, StepKind.MARK_ROTATED_OUT),
                 (StepKind.MARK_ROTATED_OUT, StepKind.WIPE)):  # fmt: skip
        assert kinds.index(a) < kinds.index(b)
    gen = next(s for s in r.steps if s.kind is StepKind.GENERATE)
    assert gen.results["rotation"] is True and gen.results["old_fingerprint"] == old_fp
    kcv_new = next(s for s in r.steps if s.step.id == "kcv-new")
    assert (
        kcv_new.display["fingerprint"] == new["fingerprint"] and kcv_new.confirmed_by == "witness"
    )

    # the continuity statement: on the ceremony folder and the export, independent check
    data = (ws / "ceremonies" / r.ceremony_id / "rotation-statement.json").read_bytes()
    export = ws / "exports" / "rotate-export"
    assert (export / "rotation-statement.json").read_bytes() == data
    doc = independent_check(data, old_fp)
    assert doc["new"]["fingerprint"] == new["fingerprint"] and doc["new"]["set_id"] == new["set_id"]
    assert doc["old"]["set_id"] == old_set and doc["old"]["policy"] == {
        "group_threshold": 1,
        "groups": [[3, 5]],
    }
    assert doc["new"]["policy"] == {"group_threshold": 2, "groups": [[2, 3], [2, 3], [2, 3]]}
    assert doc["ceremony_id"] == r.ceremony_id and "practice" not in doc
    expires = doc["transition_expires_utc"]
    end = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(days=29) < end - datetime.now(UTC) <= timedelta(days=30)
    continuity.verify(data, old_fingerprint=old_fp[:16], new_fingerprint=new["fingerprint"])

    # the old set's manifest is marked, signed by the old key, here and on the medium
    marked = json.loads((ws / "manifests" / f"set-{old_set}.json").read_bytes())
    mark = records.rotated_out(marked)
    assert (
        mark is not None and mark.ceremony_id == r.ceremony_id and mark.new_set_id == new["set_id"]
    )
    assert mark.transition_expires_utc == expires and marked["signature"]["public_key"] == old_fp
    exported_mark = ws / "exports" / "rotate-export-rotated-out" / f"manifest-set-{old_set}.json"
    assert json.loads(exported_mark.read_bytes()) == marked

    # envelopes of both keys, each seal manifest signed by its own key
    new_env = E.parse((export / "masterkey-kms.sealed.json").read_bytes())
    old_env = E.parse((export / "transitional-masterkey-kms.sealed.json").read_bytes())
    assert (
        new_env.header["masterkey_fingerprint"] == new["fingerprint"] and new_env.transition is None
    )
    assert old_env.header["masterkey_fingerprint"] == old_fp
    assert old_env.transition == {
        "expires_utc": expires,
        "successor_fingerprint": new["fingerprint"],
    }
    for name, fp in (
        ("seal-manifest.json", new["fingerprint"]),
        ("transitional-seal-manifest.json", old_fp),
    ):
        sm = json.loads((export / name).read_bytes())
        assert sm["body"]["masterkey_fingerprint"] == fp
    # schemas
    valid("rotation-statement", data)
    valid("share-set", json.dumps(marked).encode())
    valid("share-set", _manifest_bytes(new))
    for f in ("masterkey-kms.sealed.json", "transitional-masterkey-kms.sealed.json"):
        valid("envelope", (export / f).read_bytes())
    # the journal: closed, signed by the NEW key, and it tells the rotation
    res = jr.verify(r.journal.path, fingerprint=new["fingerprint"])
    assert res.ok and res.proven
    text = r.exports["transcript"].read_text()
    assert doc["old"]["fingerprint"] in text and hashlib_hex(data) in text


def hashlib_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _manifest_bytes(m: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in m.items() if not k.startswith("_")}).encode()


def test_the_new_set_recovers_the_new_key(rotated: dict[str, Any]) -> None:
    r, ws, new = rotated["rotate"], rotated["ws"], rotated["new"]
    stmt = json.loads((ws / "ceremonies" / r.ceremony_id / "rotation-statement.json").read_bytes())
    with _kh() as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        # two shares of the "us" group and two of the "ap" group (groups 2 and 3)
        drive(u, shares=[typed(new[i]) for i in (3, 5, 6, 8)])
        assert u.state is CeremonyState.COMPLETED
        rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
        assert rec.results["fingerprint"] == stmt["new"]["fingerprint"] and rec.results["verified"]
        assert rec.results["kcv"].replace(" ", "") == stmt["new"]["kcv"]


def test_the_old_set_still_recovers_the_old_key_but_is_refused(rotated: dict[str, Any]) -> None:
    g, r, ws, old = rotated["genesis"], rotated["rotate"], rotated["ws"], rotated["old"]
    old_set, new_set = g.manifest["set_id"], r.manifest["set_id"]
    # the shares still rebuild the old key (nothing about them changed)
    with _kh() as kc:
        rec = rs.recover(kc, g.manifest, [old[1].split(), old[3].split(), old[4].split()])
        assert rec["fingerprint"] == g.manifest["fingerprint"] and rec["verified"] is True
    # unseal-and-seal of the old set: refused, naming the rotation and the new set
    with _kh() as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(u, until="recover.collect")
        with pytest.raises(StepFailedError) as err:
            u.perform(manifest=f"set-{old_set}.json")
        text = str(err.value)
        assert f"set {old_set} was rotated out by ceremony {r.ceremony_id}" in text
        assert f"use the shares of set {new_set}" in text
        # the default choice is the new set; an old share typed into it is refused by name
        u.retry()
        u.perform()
        with pytest.raises(ShareRefusedError) as err2:
            u.add_share("typed", typed(old[0]))
        assert f"rotated out by ceremony {r.ceremony_id}" in str(err2.value)
        u.abort("test over", "admin")


def test_verify_shares_reports_a_rotated_out_share(rotated: dict[str, Any]) -> None:
    g, r, ws, old = rotated["genesis"], rotated["rotate"], rotated["ws"], rotated["old"]
    old_set = g.manifest["set_id"]
    with _kh() as kc:
        v = Ceremony.load(
            SCRIPTS / "verify-shares.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(v, until="check.check")
        out = v.perform(manifest=f"set-{old_set}.json")
        assert out["rotated_out"]["ceremony_id"] == r.ceremony_id
        got = v.add_share("typed", typed(old[2]))
        assert got["ok"] is True and got["rotated_out"] is True
        assert f"rotated out by ceremony {r.ceremony_id}" in got["message"]
        v.abort("test over", "admin")


def test_the_transitional_envelope_opens_only_before_its_expiry(rotated: dict[str, Any]) -> None:
    g, ws, kms = rotated["genesis"], rotated["ws"], rotated["kms"]
    data = (
        ws / "exports" / "rotate-export" / "transitional-masterkey-kms.sealed.json"
    ).read_bytes()
    key = seal_reader.open_envelope(data, rsa_key=kms)
    from core.crypto.fingerprint import derive_fingerprint

    assert derive_fingerprint(memoryview(bytearray(key))).hex == g.manifest["fingerprint"]
    env = E.parse(data)
    end = datetime.strptime(env.transition["expires_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    E.parse(data, now=end - timedelta(seconds=1))
    with pytest.raises(E.EnvelopeError, match="expired"):
        E.parse(data, now=end)
    # after the expiry the tool refuses the old set for every purpose, transition included
    marked = json.loads((ws / "manifests" / f"set-{g.manifest['set_id']}.json").read_bytes())
    with pytest.raises(records.SetRotatedOut, match="window ended"):
        records.check_usable(marked, [], transition=True, now=end)
    assert (
        records.check_usable(marked, [], transition=True, now=end - timedelta(seconds=1))
        is not None
    )


def test_practice_rotation(tmp_path: Path) -> None:
    """practice-genesis then practice-rotate: throwaway keys, everything marked PRACTICE;
    the real set of the same workspace is never touched."""
    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    terminal = CustodianTerminal()
    try:
        with KeyholderClient.start(allow_unlocked=os.geteuid() != 0, practice=True, terminal=terminal.path, demo=True) as kc:
            g = Ceremony.load(SCRIPTS / "practice-genesis.toml", ws, ClientKeyholder(kc, tty=terminal.path),
                              preflight=ok_preflight)  # fmt: skip
            drive(g)
        old = list(terminal.shares)
        with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
            with pytest.raises(Exception, match="practice mode"):
                Ceremony.load(SCRIPTS / "practice-rotate.toml", ws, ClientKeyholder(kc))
        with KeyholderClient.start(allow_unlocked=os.geteuid() != 0, practice=True, terminal=terminal.path, demo=True) as kc:
            r = Ceremony.load(SCRIPTS / "practice-rotate.toml", ws, ClientKeyholder(kc, tty=terminal.path),
                              preflight=ok_preflight)  # fmt: skip
            drive(r, shares=[typed(old[i]) for i in (0, 1, 2)])
    finally:
        terminal.close()
    assert r.state is CeremonyState.COMPLETED and r.ceremony_id.startswith("PRACTICE-rotate-")
    out = ws / "exports" / "PRACTICE-rotate-export"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "MANIFEST.sha256",
        f"PRACTICE-manifest-set-{r.manifest['set_id']}.json",  # type: ignore[index]
        "PRACTICE-masterkey-kms.sealed.json",
        "PRACTICE-rotation-statement.json",
        "PRACTICE-seal-manifest.json",
        "PRACTICE-transitional-masterkey-kms.sealed.json",
        "PRACTICE-transitional-seal-manifest.json",
    ]
    doc = independent_check(
        (out / "PRACTICE-rotation-statement.json").read_bytes(), g.manifest["fingerprint"]
    )  # type: ignore[index]
    assert doc["practice"] is True and doc["cluster_id"] == "practice"
    marked = json.loads(
        (ws / "manifests" / f"PRACTICE-set-{g.manifest['set_id']}.json").read_bytes()
    )  # type: ignore[index]
    assert marked["version"] == 2 and marked["practice"] is True
    assert (ws / "exports" / "PRACTICE-rotate-export-rotated-out").is_dir()
    assert r.exports["transcript"].read_text().startswith("# PRACTICE")


def test_a_transition_ceremony_opens_the_old_set_inside_its_window(rotated: dict[str, Any]) -> None:
    g, r, ws, old, kms = (
        rotated["genesis"],
        rotated["rotate"],
        rotated["ws"],
        rotated["old"],
        rotated["kms"],
    )
    old_set, old_fp = g.manifest["set_id"], g.manifest["fingerprint"]
    stmt = json.loads((ws / "ceremonies" / r.ceremony_id / "rotation-statement.json").read_bytes())
    with _kh() as kc:
        t = Ceremony.load(
            SCRIPTS / "transition.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(t, shares=[typed(old[i]) for i in (1, 2, 3)])
        assert t.state is CeremonyState.COMPLETED
    collect = next(s for s in t.steps if s.kind is StepKind.COLLECT_SHARES)
    assert collect.results["set_id"] == str(old_set)
    assert collect.results["transition"]["ceremony_id"] == r.ceremony_id
    # the journal says so
    evs = jr._events_from_path(t.journal.path)
    opened = [e for e in evs if e.kind == "transition.opened"]
    assert len(opened) == 1 and "ROTATED OUT" in opened[0].details["note"]
    assert opened[0].details["transition_expires_utc"] == stmt["transition_expires_utc"]
    assert "ROTATED OUT" in t.exports["transcript"].read_text()
    # one transitional envelope, with the rotation's window and successor, from the mark
    data = (
        ws / "exports" / "transition-export" / "transitional-masterkey-kms.sealed.json"
    ).read_bytes()
    env = E.parse(data)
    assert env.header["masterkey_fingerprint"] == old_fp
    assert env.transition == {
        "expires_utc": stmt["transition_expires_utc"],
        "successor_fingerprint": stmt["new"]["fingerprint"],
    }
    from core.crypto.fingerprint import derive_fingerprint

    assert (
        derive_fingerprint(memoryview(bytearray(seal_reader.open_envelope(data, rsa_key=kms)))).hex
        == old_fp
    )
    # signed by the old key (its journal too)
    assert jr.verify(t.journal.path, fingerprint=old_fp).proven


def test_after_the_window_the_tool_refuses_the_old_set(
    rotated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock past the rotation's expiry: transition and unseal-and-seal refuse the
    old set (the clock is the only double here)."""
    g, r, ws, old = rotated["genesis"], rotated["rotate"], rotated["ws"], rotated["old"]
    stmt = json.loads((ws / "ceremonies" / r.ceremony_id / "rotation-statement.json").read_bytes())
    end = datetime.strptime(stmt["transition_expires_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return end + timedelta(seconds=1)

    monkeypatch.setattr(records, "datetime", Later)
    with _kh() as kc:
        t = Ceremony.load(
            SCRIPTS / "transition.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(t, until="recover.collect")
        with pytest.raises(
            StepFailedError, match="no rotated-out share set with an open transition window"
        ):
            t.perform()
        t.retry()
        with pytest.raises(
            StepFailedError, match=f"window ended at {stmt['transition_expires_utc']}"
        ):
            t.perform(manifest=f"set-{g.manifest['set_id']}.json")
        t.abort("test over", "admin")
    with _kh() as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", ws, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(u, until="recover.collect")
        with pytest.raises(StepFailedError, match=f"rotated out by ceremony {r.ceremony_id}"):
            u.perform(manifest=f"set-{g.manifest['set_id']}.json")
        u.abort("test over", "admin")
    del old


def test_a_failed_generate_is_retried_inside_the_same_rotation(tmp_path: Path) -> None:
    """The keyholder refuses the first draw of the new key (a fault injected at the port):
    the step fails, Retry draws it in the rotation already begun (not a second begin)."""
    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    kms = rsa.generate_private_key(65537, 3072)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(
        kms.public_key().public_bytes(PEM, SPKI)
    )
    terminal = CustodianTerminal()
    try:
        run_genesis(ws, terminal)
        old = list(terminal.shares)
        with _kh(terminal.path) as kc:
            port = ClientKeyholder(kc, tty=terminal.path)
            real = port.generate_master
            calls = {"n": 0}

            def flaky() -> dict[str, Any]:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("entropy source busy")
                return real()

            port.generate_master = flaky  # type: ignore[method-assign]
            r = Ceremony.load(SCRIPTS / "rotate.toml", ws, port, preflight=ok_preflight)
            drive(r, shares=[typed(old[i]) for i in (0, 1, 2)], until="new.generate")
            with pytest.raises(StepFailedError, match="entropy source busy"):
                r.perform()
            assert kc.status()["rotation_keys"]["new"] is None
            r.retry()
            step_once(r)
            assert r.rotation is not None and kc.status()["rotation_keys"]["new"] is not None
            r.abort("test over", "admin")
    finally:
        terminal.close()
