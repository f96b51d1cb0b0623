"""Void share sets (issue 15): an aborted genesis, a crash closed as interrupted, and the
journaled retirement of a set. Real journals (SQLite files), the real script loader and
manifests; the keyholder port is ``KeyholderDouble`` (the engine's test double)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import journal as jr
from core.ceremony import interrupted, retirement
from core.ceremony.engine import CeremonyState, StepFailedError
from core.ceremony.setcli import set_main
from tests.support.engine import drive, events, genesis, start
from tests.support.keyholder_double import KeyholderDouble


def _aborted_genesis(ws: Path) -> tuple[str, str, KeyholderDouble]:
    kh = KeyholderDouble()
    c = start("genesis", ws, kh)
    drive(c, until="seal.seal")  # shares handed out, nothing sealed yet
    set_id = str(c.manifest["set_id"])  # type: ignore[index]
    c.abort("custodian c3 was taken ill", "admin")
    assert c.state is CeremonyState.ABORTED
    return set_id, c.ceremony_id, kh


def test_an_aborted_genesis_set_is_refused_by_unseal(workspace: Path) -> None:
    set_id, cid, _kh = _aborted_genesis(workspace)
    record = json.loads((workspace / "retired" / f"set-{set_id}.json").read_text())
    assert record["cause"] == "aborted" and record["ceremony_id"] == cid
    assert record["why"] == "custodian c3 was taken ill"
    # the journal says who aborted, why, and that the set is void
    rows = jr._events_from_path(next((workspace / "ceremonies").glob(f"{cid}/journal.db")))
    aborted = next(e for e in rows if e.kind == "ceremony.aborted")
    assert aborted.role == "admin" and aborted.details["reason"] == "custodian c3 was taken ill"
    void = next(e for e in rows if e.kind == "set.aborted")
    assert void.details["set_id"] == int(set_id) or str(void.details["set_id"]) == set_id
    assert void.details["retirement_file"] == f"retired/set-{set_id}.json"

    # the only set is the aborted one: unseal refuses it, naming the abort
    u = start("unseal-and-seal", workspace, KeyholderDouble())
    assert u.manifest_choices() == []
    drive(u, until="recover.collect")
    with pytest.raises(StepFailedError, match=rf"share set {set_id} was made by ceremony {cid}, which was aborted"):
        u.perform()
    # naming its manifest explicitly is refused too, with the reason
    u.retry()
    with pytest.raises(StepFailedError, match="custodian c3 was taken ill"):
        u.perform(manifest=f"set-{set_id}.json")


def test_an_aborted_set_beside_an_active_one_is_left_out(workspace: Path) -> None:
    good, kh = genesis(workspace)
    good_id = str(good.manifest["set_id"])  # type: ignore[index]
    bad_id, _cid, _kh = _aborted_genesis(workspace)
    u = start("unseal-and-seal", workspace, KeyholderDouble())
    assert [c["set_id"] for c in u.manifest_choices()] == [good_id]
    drive(u, shares=kh.issued[good.manifest["set_id"]][:3])  # type: ignore[index]
    assert u.state is CeremonyState.COMPLETED
    assert bad_id != good_id


def test_abort_before_the_split_voids_nothing(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    drive(c, until="generate.kcv")
    c.abort("rehearsal stopped", "admin")
    assert not (workspace / "retired").exists()
    assert "set.aborted" not in [e.kind for e in events(c)]


def test_an_unreadable_retirement_record_still_refuses_its_set(workspace: Path) -> None:
    c, _kh = genesis(workspace)
    set_id = c.manifest["set_id"]  # type: ignore[index]
    (workspace / "retired").mkdir()
    (workspace / "retired" / f"set-{set_id}.json").write_text('{"format": 1, "format": 2}')
    u = start("unseal-and-seal", workspace, KeyholderDouble())
    drive(u, until="recover.collect")
    with pytest.raises(StepFailedError, match="cannot be read"):
        u.perform()


def test_retire_a_set_is_journaled_and_refused_by_unseal(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, _kh = genesis(workspace)
    set_id = c.manifest["set_id"]  # type: ignore[index]
    # bad input: a clear message, nothing written
    assert set_main(["retire", str(workspace), str(set_id), "--why", " ", "--who", "Ada",
                     "--witness", "Wes"]) == 1
    assert "say why the set is retired" in capsys.readouterr().err
    assert not (workspace / "retired").exists()
    assert set_main(["retire", str(workspace), "set-99999.json", "--why", "x", "--who", "Ada",
                     "--witness", "Wes"]) == 1
    assert "no share-set manifest set-99999.json" in capsys.readouterr().err

    assert set_main(["retire", str(workspace), str(set_id), "--why", "replaced by reshare",
                     "--who", "Ada", "--witness", "Wes"]) == 0
    out = capsys.readouterr().out
    assert f"share set {set_id} retired" in out
    db = next((workspace / "ceremonies").glob(f"retire-set-{set_id}-*/journal.db"))
    res = jr.verify(db)
    assert res.ok and res.closed
    rows = jr._events_from_path(db)
    retired = next(e for e in rows if e.kind == "set.retired")
    assert retired.details["who"] == "Ada" and retired.details["witness"] == "Wes"
    assert rows[-1].details["state"] == "retired"
    # a second retirement is refused, naming the first
    assert set_main(["retire", str(workspace), str(set_id), "--why", "again", "--who", "Ada",
                     "--witness", "Wes"]) == 1
    assert "void already" in capsys.readouterr().err
    assert set_main(["list", str(workspace)]) == 0
    assert f"set {set_id}" in capsys.readouterr().out

    u = start("unseal-and-seal", workspace, KeyholderDouble())
    drive(u, until="recover.collect")
    with pytest.raises(StepFailedError, match=rf"was retired by {db.parent.name}.*replaced by reshare"):
        u.perform()


def test_an_open_journal_is_found_and_closed_as_interrupted(workspace: Path) -> None:
    kh = KeyholderDouble()
    c = start("genesis", workspace, kh)
    drive(c, until="shares.distribute")
    c.perform()
    first = c.script.policy.custodians[0]  # type: ignore[union-attr]
    c.show_share(first)
    set_id = str(c.manifest["set_id"])  # type: ignore[index]
    path = c.journal.path
    c.journal.shutdown()  # the process dies here: the journal stays OPEN
    assert jr.cli_main(["verify", str(path)]) == 3

    found = interrupted.find_unfinished([workspace, workspace])  # each journal once
    assert [u.ceremony_id for u in found] == [c.ceremony_id]
    u = found[0]
    assert u.last_step == "shares.distribute" and not u.last_step_done
    assert u.shown == (first,) and u.set_id == set_id
    assert "VOID" in u.describe() and u.roles[first][1] in u.describe()

    with pytest.raises(jr.JournalError, match="witness must acknowledge"):
        interrupted.close_interrupted(path, reason="power cut", who="admin", witness="witness",
                                      witness_acknowledged=False)
    with pytest.raises(jr.JournalError, match="say why"):
        interrupted.close_interrupted(path, reason="  ", who="admin", witness="witness",
                                      witness_acknowledged=True)
    assert jr.verify(path).closed is False  # nothing written by the refusals

    final, done = interrupted.close_interrupted(
        path, reason="power cut", who="admin", witness="witness", witness_acknowledged=True
    )
    assert "CLOSED (interrupted)" in done[0]
    res = jr.verify(path)
    assert res.ok and res.status == "CLOSED (interrupted)" and res.final_hash == final
    assert jr.cli_main(["verify", str(path)]) == 4  # nothing outside vouches for it yet
    assert jr.cli_main(["verify", str(path), "--final", final]) == 0
    assert interrupted.find_unfinished([workspace]) == []
    assert retirement.find(retirement.Workspace(workspace), set_id, False) is not None
    rows = jr._events_from_path(path)
    row = next(e for e in rows if e.kind == "ceremony.interrupted")
    assert row.details["witness_acknowledged"] is True and row.details["shown_to"] == [first]
    with pytest.raises(jr.JournalError, match="closed already"):
        interrupted.close_interrupted(path, reason="x", who="admin", witness="witness",
                                      witness_acknowledged=True)


def test_a_rotation_interrupted_after_marking_the_old_set_keeps_the_new_set(workspace: Path) -> None:
    """The old set's mark is signed and cannot be taken back: voiding the new set as well
    would leave no usable set. The journal says why it is kept."""
    path = workspace / "ceremonies" / "rotate-x" / "journal.db"
    j = jr.Journal.create(path, "rotate-x", details={"script_name": "rotate", "purpose": "rotate",
                                                     "practice": False})
    j.append("step.started", {}, act="shares", step="distribute")
    j.append("step.result", {"set_id": "1187", "manifest_file": "manifests/set-1187.json"},
             act="shares", step="distribute")
    j.append("step.started", {}, act="export", step="mark")
    j.append("step.result", {"set_id": "4821", "manifest_file": "manifests/set-4821.json",
                             "rotated_out": {"new_set_id": 1187}}, act="export", step="mark")
    j.shutdown()
    (u,) = interrupted.find_unfinished([workspace])
    assert u.set_id == "1187" and u.old_set_marked  # not the old set's rewritten manifest
    _final, done = interrupted.close_interrupted(path, reason="power cut", who="admin",
                                                 witness="witness", witness_acknowledged=True)
    assert any("kept" in line for line in done)
    assert not (workspace / "retired").exists()
    kept = next(e for e in jr._events_from_path(path) if e.kind == "set.aborted")
    assert "rotated out" in kept.details["kept"]


@pytest.mark.parametrize(("until", "voided"), [("seal.retire", True), ("seal.wipe", False)])
def test_an_aborted_rotation_voids_its_new_set_only_before_the_old_one_is_marked(
    tmp_path: Path, until: str, voided: bool
) -> None:
    """Real keyholder (rotation needs its second key slot). Aborted before
    mark-rotated-out: the new set is void, the old one stays usable. Aborted after it: the
    old set's signed mark cannot be taken back, so the new set is kept (journaled)."""
    import os

    from core.ceremony.engine import Ceremony, ClientKeyholder
    from core.keyholder.client import KeyholderClient
    from tests.support.custodian import CustodianTerminal, typed
    from tests.support.engine import SCRIPTS, ok_preflight, practice_pem

    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    terminal = CustodianTerminal()
    try:
        kw = {"allow_unlocked": os.geteuid() != 0, "practice": True, "terminal": terminal.path, "demo": True}
        with KeyholderClient.start(**kw) as kc:
            g = Ceremony.load(SCRIPTS / "practice-genesis.toml", ws, ClientKeyholder(kc, tty=terminal.path),
                              preflight=ok_preflight)  # fmt: skip
            drive(g)
        old = list(terminal.shares)
        with KeyholderClient.start(**kw) as kc:
            r = Ceremony.load(SCRIPTS / "practice-rotate.toml", ws, ClientKeyholder(kc, tty=terminal.path),
                              preflight=ok_preflight)  # fmt: skip
            drive(r, shares=[typed(old[i]) for i in (0, 1, 2)], until=until)
            r.abort("the witness left", "admin")
    finally:
        terminal.close()
    new_id = r.manifest["set_id"]  # type: ignore[index]
    old_id = g.manifest["set_id"]  # type: ignore[index]
    assert new_id != old_id
    assert (ws / "retired" / f"PRACTICE-set-{new_id}.json").exists() is voided
    assert not (ws / "retired" / f"PRACTICE-set-{old_id}.json").exists()
    row = next(e for e in events(r) if e.kind == "set.aborted")
    assert ("kept" in row.details) is not voided
    old_manifest = json.loads((ws / "manifests" / f"PRACTICE-set-{old_id}.json").read_text())
    assert ("rotated_out" in old_manifest) is not voided
