"""Ceremony engine: every shipped script end to end (headless), and the engine's logic.

The keyholder here is ``KeyholderDouble`` (tests/support/keyholder_double.py), a TEST DOUBLE
of the engine's port, because the real share and seal operations are still being built;
the journal, the script loader, the exporter (core.media) and the recipient loader
(core.seal.recipients) are the real ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core import journal as jr
from core.ceremony.engine import (
    Ceremony,
    CeremonyState,
    EngineError,
    ShareRefusedError,
    StepFailedError,
    StepState,
)
from core.ceremony.facts import fp_words
from core.ceremony.model import StepKind
from core.ceremony.script import ScriptError
from tests.support.engine import (
    ROOT,
    SCRIPTS,
    drive,
    events,
    genesis,
    start,
    step_once,
    step_once_acks,
)
from tests.support.keyholder_double import KeyholderDouble

# --- end to end -----------------------------------------------------------------------------


def test_genesis_3_of_5_then_unseal_and_seal_from_3(workspace: Path) -> None:
    c, kh = genesis(workspace)
    assert c.state is CeremonyState.COMPLETED
    res = jr.verify(c.journal.path)
    assert res.ok and res.closed and res.final_hash == c.final_hash
    assert len(c.final_words) == 26
    set_id = c.manifest["set_id"]  # type: ignore[index]
    assert (workspace / "manifests" / f"set-{set_id}.json").exists()
    assert [m for m, _d in kh.shown] == [0, 1, 2, 3, 4]
    assert kh.key is None and kh.wipes >= 1  # wipe step ran
    export_dir = workspace / "exports" / "genesis-export"
    assert (export_dir / "masterkey-kms.sealed.json").exists()
    assert (export_dir / f"manifest-set-{set_id}.json").exists()
    fp = c.steps[4].results["fingerprint"]  # generate
    text = c.exports["transcript"].read_text()
    assert c.final_hash in text and fp in text
    assert jr.verify(c.exports["jsonl"]).ok

    shares = kh.issued[set_id]
    kh2 = KeyholderDouble()
    u = start("unseal-and-seal", workspace, kh2)
    drive(u, shares=[shares[4], shares[0], shares[2]])
    assert u.state is CeremonyState.COMPLETED
    recover = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    assert recover.results["fingerprint"] == fp and recover.results["matches_manifest"]
    assert (workspace / "exports" / "unseal-export" / "masterkey-kms.sealed.json").exists()
    assert jr.verify(u.journal.path).ok


def _two_of_three_genesis(ws: Path, tmp: Path) -> Path:
    text = (SCRIPTS / "genesis.toml").read_text()
    text = text.replace("threshold = 3\nshares = 5", "threshold = 2\nshares = 3")
    text = text.replace(
        'custodians = ["c1", "c2", "c3", "c4", "c5"]', 'custodians = ["c1", "c2", "c3"]'
    )
    p = tmp / "genesis-2of3.toml"
    p.write_text(text)
    return p


def test_reshare_2_of_3_to_3_of_5_supersedes_old_set(workspace: Path, tmp_path: Path) -> None:
    g, kh = genesis(workspace, _two_of_three_genesis(workspace, tmp_path))
    old_set = g.manifest["set_id"]  # type: ignore[index]
    fp = g.manifest["fingerprint"]  # type: ignore[index]
    old = kh.issued[old_set]

    kh2 = KeyholderDouble()
    r = start("reshare", workspace, kh2)
    drive(r, shares=[old[2], old[0]])
    assert r.state is CeremonyState.COMPLETED
    new = r.manifest
    assert new is not None and new["supersedes"] == old_set and new["fingerprint"] == fp
    assert new["policy"]["threshold"] == 3 and new["policy"]["shares"] == 5
    assert r.superseded_by(old_set)["set_id"] == new["set_id"]  # type: ignore[index]

    # an old share is refused with the reason in a later unseal (the new set is active)
    kh3 = KeyholderDouble()
    u = start("unseal-and-seal", workspace, kh3)
    drive(u, until="recover.collect")
    u.perform()
    with pytest.raises(ShareRefusedError, match=f"superseded by set {new['set_id']}"):
        u.add_share("typed", old[1])
    for s in kh2.issued[new["set_id"]][:3]:
        u.add_share("typed", s)
    drive(u)
    assert u.state is CeremonyState.COMPLETED
    rows = [e for e in events(u) if e.kind == "step.input" and e.details.get("accepted") is False]
    assert "superseded" in rows[0].details["reason"]

    # naming the old manifest explicitly is refused too
    kh4 = KeyholderDouble()
    v = start("unseal-and-seal", workspace, kh4)
    drive(v, until="recover.collect")
    with pytest.raises(StepFailedError, match="superseded"):
        v.perform(manifest=f"set-{old_set}.json")


def test_verify_shares_with_and_without_dry_run(workspace: Path) -> None:
    g, kh = genesis(workspace)
    sid = g.manifest["set_id"]  # type: ignore[index]
    shares = kh.issued[sid]
    kh2 = KeyholderDouble()
    v = start("verify-shares", workspace, kh2)
    drive(v, until="check.check")
    v.perform()
    assert v.add_share("typed", shares[1])["ok"]
    forged = {**shares[2], "key": "00" * 32}
    with pytest.raises(ShareRefusedError):
        v.add_share("typed", forged)
    step_once(v)  # acks + complete
    drive(v, shares=shares[:3])
    assert v.state is CeremonyState.COMPLETED
    rec = next(s for s in v.steps if s.kind is StepKind.RECOVER)
    assert rec.results["dry_run"] and rec.results["matches_manifest"]
    assert not (workspace / "exports" / "verify").exists()
    assert kh2.calls.count("seal") == 0

    # the optional act can be skipped, with a reason
    kh3 = KeyholderDouble()
    w = start("verify-shares", workspace, kh3)
    drive(w, shares=shares[3:4], until="dry-run.collect")
    w.skip_act("no quorum today", "admin")
    drive(w)
    assert w.state is CeremonyState.COMPLETED
    assert [s.state for s in w.steps if s.act_id == "dry-run"] == [StepState.SKIPPED] * 3


def test_practice_marked_everywhere(workspace: Path) -> None:
    c, _kh = genesis(workspace, "practice-genesis")
    assert c.practice and c.ceremony_id.startswith("PRACTICE-genesis-")
    evs = events(c)
    assert evs[0].details["practice"] is True
    assert all(e.details.get("practice") in (True, "PRACTICE") for e in evs)
    assert c.exports["transcript"].name.startswith("PRACTICE-")
    text = c.exports["transcript"].read_text()
    assert text.startswith("# PRACTICE")
    out = workspace / "exports" / "PRACTICE-genesis-export"
    names = sorted(p.name for p in out.iterdir() if p.name != "MANIFEST.sha256")
    assert names and all(n.startswith("PRACTICE-") for n in names)
    man = next((workspace / "manifests").glob("PRACTICE-set-*.json"))
    assert json.loads(man.read_text())["practice"] is True
    # a real unseal does not pick up a practice manifest, and says which script rehearses:
    # before its first step (issue 15), with nothing journaled
    with pytest.raises(
        EngineError,
        match="only PRACTICE share sets are here; run the practice-unseal-and-seal script "
        "to rehearse",
    ) as err:
        start("unseal-and-seal", workspace, KeyholderDouble())
    assert err.value.code == "share-set-kind"
    assert [p.name for p in (workspace / "ceremonies").iterdir() if not p.name.startswith("PRACTICE-")] == []


def test_practice_unseal_and_seal_uses_only_practice_sets(workspace: Path) -> None:
    g, kh = genesis(workspace, "practice-genesis")
    psid = g.manifest["set_id"]  # type: ignore[index]
    fp = g.manifest["fingerprint"]  # type: ignore[index]
    # a real set on the same medium is never used by the practice ceremony (nor shown)
    r, rkh = genesis(workspace)
    rsid = r.manifest["set_id"]  # type: ignore[index]
    names = sorted(p.name for p in (workspace / "manifests").iterdir())
    assert names == sorted([f"PRACTICE-set-{psid}.json", f"set-{rsid}.json"])

    u = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    assert u.practice and u.ceremony_id.startswith("PRACTICE-unseal-and-seal-")
    choices = u.manifest_choices()
    assert [(m["file"], m["practice"]) for m in choices] == [(f"PRACTICE-set-{psid}.json", True)]
    drive(u, until="recover.collect")
    with pytest.raises(StepFailedError, match="a real share set: a PRACTICE ceremony never"):
        u.perform(manifest=f"set-{rsid}.json")
    u.retry()
    drive(u, shares=[kh.issued[psid][i] for i in (3, 1, 4)])
    assert u.state is CeremonyState.COMPLETED
    rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    assert rec.results["fingerprint"] == fp and rec.results["matches_manifest"]
    assert all(e.details.get("practice") in (True, "PRACTICE") for e in events(u))
    out = workspace / "exports" / "PRACTICE-unseal-export"
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.sha256",
        "PRACTICE-masterkey-kms.sealed.json",
    ]
    # the real unseal picks the real set only (the practice set is not "another active set")
    real = start("unseal-and-seal", workspace, KeyholderDouble())
    assert [m["file"] for m in real.manifest_choices()] == [f"set-{rsid}.json"]
    drive(real, until="recover.collect")
    with pytest.raises(StepFailedError, match="PRACTICE share set: a real ceremony never uses"):
        real.perform(manifest=f"PRACTICE-set-{psid}.json")
    real.retry()
    drive(real, shares=rkh.issued[rsid][:3])
    assert real.state is CeremonyState.COMPLETED


def test_practice_unseal_without_practice_set(workspace: Path) -> None:
    genesis(workspace)  # only a real set on the medium: refused before the first step
    with pytest.raises(EngineError, match=r"only real share sets are here.*practice-genesis"):
        start("practice-unseal-and-seal", workspace, KeyholderDouble())


def test_practice_verify_shares(workspace: Path) -> None:
    g, kh = genesis(workspace, "practice-genesis")
    shares = kh.issued[g.manifest["set_id"]]  # type: ignore[index]
    v = start("practice-verify-shares", workspace, KeyholderDouble())
    drive(v, shares=shares[:3])
    assert v.state is CeremonyState.COMPLETED and v.ceremony_id.startswith("PRACTICE-")
    assert v.exports["transcript"].name == "PRACTICE-transcript.md"


# --- engine logic -----------------------------------------------------------------------------


def test_invalid_script_refused_and_nothing_created(workspace: Path) -> None:
    bad = ROOT / "tests" / "data" / "bad_scripts" / "threshold_gt_shares.toml"
    with pytest.raises(ScriptError, match="threshold 4"):
        Ceremony.load(bad, workspace, KeyholderDouble())
    assert not (workspace / "ceremonies").exists()


def test_acknowledgments_are_enforced(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    run = c.current_step
    assert run is not None and run.kind is StepKind.ATTENDANCE and run.state is StepState.ACTIVE
    with pytest.raises(EngineError, match="not been done"):
        c.complete_step()
    c.perform(present=list(c.script.roles))
    with pytest.raises(EngineError, match="waiting for acknowledgment by: admin, witness"):
        c.complete_step()
    with pytest.raises(EngineError, match="does not acknowledge"):
        c.acknowledge("c1")
    with pytest.raises(EngineError, match="not a role"):
        c.acknowledge("mallory")
    c.acknowledge("admin")
    c.acknowledge("admin")  # recorded once
    c.acknowledge("witness")
    c.complete_step()
    acks = [e for e in events(c) if e.kind == "step.ack"]
    assert [(e.role, e.step) for e in acks] == [("admin", "attendance"), ("witness", "attendance")]
    assert c.progress == (1, len(c.steps))


def test_attendance_missing_person_fails_and_retry(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    with pytest.raises(StepFailedError, match="Custodian 4"):
        c.perform(present=["admin", "witness", "c1", "c2", "c3", "c5"])
    assert c.current_step.state is StepState.FAILED  # type: ignore[union-attr]
    with pytest.raises(EngineError):
        c.acknowledge("admin")
    c.retry()
    c.perform(present=list(c.script.roles))
    step_once_acks(c)
    kinds_ = [e.kind for e in events(c)]
    assert "step.failed" in kinds_ and "step.retry" in kinds_


def test_witness_mismatch_fails_step(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    drive(c, until="open.recipient-fp")
    c.perform()
    run = c.current_step
    assert run is not None and len(run.display["words"]) == 7
    with pytest.raises(EngineError, match="names witness"):
        c.confirm("admin")
    c.confirm("witness", matches=False)
    assert run.state is StepState.FAILED and "NOT match" in run.error


def test_seal_refused_without_confirmed_recipient(workspace: Path, tmp_path: Path) -> None:
    text = (SCRIPTS / "genesis.toml").read_text()
    start_i = text.index('[[acts.steps]]\nid = "recipient-fp"')
    end_i = text.index("# ----", start_i)
    p = tmp_path / "no-fp.toml"
    p.write_text(text[:start_i] + text[end_i:])
    c = start(p, workspace, KeyholderDouble())
    drive(c, until="seal.seal")
    with pytest.raises(StepFailedError, match="not been confirmed"):
        c.perform()


def test_exceptions_recorded_at_any_step(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    c.record_exception("Custodian 3 arrived 10 minutes late", "admin")
    drive(c, until="generate.kcv")
    c.record_exception("Bag 4711 seal number differs from log; replaced, see sheet 2", "witness")
    with pytest.raises(EngineError):
        c.record_exception("  ", "admin")
    drive(c)
    exc = [e for e in events(c) if e.kind == "exception"]
    assert [(e.step, e.role) for e in exc] == [("attendance", "admin"), ("kcv", "witness")]
    text = c.exports["transcript"].read_text()
    assert "Bag 4711" in text


def test_abort_wipes_and_records(workspace: Path) -> None:
    kh = KeyholderDouble()
    c = start("genesis", workspace, kh)
    drive(c, until="shares.distribute")
    assert kh.key is not None
    c.abort("fire alarm", "admin")
    assert kh.key is None and c.state is CeremonyState.ABORTED
    assert c.current_step is None
    with pytest.raises(EngineError):
        c.perform()
    res = jr.verify(c.journal.path)
    assert res.ok and res.closed
    evs = events(c)
    assert [e.kind for e in evs[-3:]] == ["keyholder.wiped", "ceremony.aborted", "journal.closed"]
    assert evs[-2].details["reason"] == "fire alarm"
    assert evs[-2].details["at_step"] == "shares.distribute"
    assert c.exports["transcript"].exists()


def test_retry_keeps_collected_shares(workspace: Path) -> None:
    g, kh = genesis(workspace)
    shares = kh.issued[g.manifest["set_id"]]  # type: ignore[index]
    kh2 = KeyholderDouble()
    u = start("unseal-and-seal", workspace, kh2)
    drive(u, until="recover.collect")
    u.perform()
    u.add_share("typed", shares[0])
    with pytest.raises(ShareRefusedError, match="already entered"):
        u.add_share("typed", shares[0])
    kh2.fail_next["add_share"] = OSError("card reader unplugged")
    with pytest.raises(ShareRefusedError, match="card reader"):
        u.add_share("typed", shares[1])
    u.add_share("typed", shares[1])
    u.add_share("typed", shares[2])
    step_once_acks(u)
    kh2.fail_next["recover"] = RuntimeError("keyholder busy")
    with pytest.raises(StepFailedError, match="busy"):
        u.perform()
    u.retry()
    u.perform()  # the three shares are still in the keyholder: no re-entry
    assert kh2.calls.count("begin_recovery") == 1
    assert len(kh2.entered) == 3


def test_export_failure_retry_keeps_written(workspace: Path) -> None:
    # a link planted where the export goes (an earlier export is no failure any more: the
    # export then goes to genesis-export-<ceremony id>, tests/unit/test_rehearsals.py)
    (workspace / "exports").mkdir()
    (workspace / "elsewhere").mkdir()
    os.symlink(workspace / "elsewhere", workspace / "exports" / "genesis-export")
    kh = KeyholderDouble()
    c2 = start("genesis", workspace, kh)
    drive(c2, until="seal.export")
    with pytest.raises(StepFailedError, match="symbolic link"):
        c2.perform()  # core.media refuses it, and the engine does not work around it
    c2.retry()
    # the operator removes the link (or uses another medium) and retries
    os.unlink(workspace / "exports" / "genesis-export")
    c2.perform()
    assert (workspace / "exports" / "genesis-export").is_dir()
    results = dict(c2.current_step.results)  # type: ignore[union-attr]
    c2.perform()  # idempotent: nothing rewritten
    assert c2.current_step.results == results  # type: ignore[union-attr]
    drive(c2)
    assert c2.state is CeremonyState.COMPLETED
    envs = [e for e in events(c2) if e.kind == "step.result" and e.step == "seal"]
    assert envs and len(envs[0].details["sha256"]) == 64


def test_unimplemented_keyholder_operation_fails_step_clearly(workspace: Path) -> None:
    kh = KeyholderDouble()
    kh.fail_next["genesis_split"] = NotImplementedError(
        "core.keyholder.ops_shares is not built yet"
    )
    c = start("genesis", workspace, kh)
    drive(c, until="shares.distribute")
    with pytest.raises(StepFailedError, match="not available yet"):
        c.perform()
    c.retry()
    c.perform()


def test_distribute_requires_each_custodian(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    drive(c, until="shares.distribute")
    c.perform()
    with pytest.raises(EngineError, match="not been shown"):
        c.acknowledge("c2")
    c.show_share("c1", "qr")
    c.acknowledge("c1")
    c.acknowledge("admin")
    c.acknowledge("witness")
    with pytest.raises(EngineError, match="c2, c3, c4, c5"):
        c.complete_step()
    with pytest.raises(EngineError, match="not allowed"):
        c.show_share("c2", "printer")


def test_listener_sees_every_event(workspace: Path) -> None:
    seen: list[str] = []
    c = start("verify-shares", workspace, KeyholderDouble())
    c.subscribe(lambda e: seen.append(e.kind))
    c.perform(present=["admin", "witness"])
    step_once_acks(c)
    assert seen == ["step.result", "step.ack", "step.ack", "step.done", "step.started"]


def test_manifest_with_duplicate_key_is_refused_with_the_reason(workspace: Path) -> None:
    """docs/formats.md section 0: the engine reads manifests under the strict JSON rules.

    A second "fingerprint" member (Python's json keeps the last one) would make the unseal
    compare the rebuilt key with a fingerprint that other readers never see."""
    g, _kh = genesis(workspace)
    sid = g.manifest["set_id"]  # type: ignore[index]
    path = workspace / "manifests" / f"set-{sid}.json"
    text = path.read_text()
    path.write_text(
        text.replace('"fingerprint": ', '"fingerprint": "' + "00" * 32 + '",\n  "fingerprint": ', 1)
    )
    u = start("unseal-and-seal", workspace, KeyholderDouble())
    assert u.manifest_choices() == []
    assert "duplicate key 'fingerprint'" in u.refused_manifests[f"set-{sid}.json"]
    drive(u, until="recover.collect")
    with pytest.raises(StepFailedError, match=r"refused: set-\d+\.json: duplicate key"):
        u.perform()
    u.retry()
    with pytest.raises(StepFailedError, match="not a valid share-set file: duplicate key"):
        u.perform(manifest=f"set-{sid}.json")


def test_seal_and_summary_results_are_public_and_complete(workspace: Path) -> None:
    """Issue 15: the seal step records each recipient, its key's fingerprint words and the
    envelope made (name, size); the summary step, before anyone acknowledges it, has the set
    id, the KCV words, the files written (name, size) and the journal's rows."""
    kh = KeyholderDouble()
    c = start("genesis", workspace, kh)
    drive(c, until="close.summary")
    seal = next(s for s in c.steps if s.kind is StepKind.SEAL)
    kms = seal.results["sealed"]["kms"]
    assert kms["file"] == "masterkey-kms.sealed.json" and kms["size"] > 0
    assert kms["fingerprint"] and kms["fingerprint_words"] == fp_words(kms["fingerprint"]) != []
    assert kms["size"] == len(c.envelopes["kms"][1])
    summary = c.current_step
    assert summary is not None and summary.kind is StepKind.SUMMARY and not summary.acks
    r = summary.results
    assert r["set_id"] == str(c.manifest["set_id"])  # type: ignore[index]
    gen = next(s for s in c.steps if s.kind is StepKind.GENERATE)
    assert r["fingerprint"] == gen.results["fingerprint"]
    assert r["kcv_words"] == (gen.results.get("kcv_words") or fp_words(r["fingerprint"])) != []
    names = {f["name"]: f["size"] for f in r["files"]}
    envelope = next(n for n in names if n.endswith("/masterkey-kms.sealed.json"))
    assert names[envelope] == kms["size"]
    assert f"manifests/set-{c.manifest['set_id']}.json" in names  # type: ignore[index]
    assert r["journal_rows"] == c.journal.count  # rows so far (the summary's step.started included)
    json.dumps(r)  # public, plain data


def test_an_acknowledgement_can_be_taken_back_before_the_step_is_done(workspace: Path) -> None:
    """Issue 15: the UI records an acknowledgement when its box is ticked; unticking it
    takes it back (journaled), and the step then waits for it again."""
    c = start("verify-shares", workspace, KeyholderDouble())
    c.perform(present=["admin", "witness"])
    c.acknowledge("admin")
    c.acknowledge("witness")
    c.withdraw_ack("witness")
    c.withdraw_ack("witness")  # nothing to take back: no second record
    with pytest.raises(EngineError, match="waiting for acknowledgment by: witness"):
        c.complete_step()
    kinds = [e.kind for e in events(c)]
    assert kinds.count("step.ack_withdrawn") == 1
    c.acknowledge("witness")
    c.complete_step()
    assert c.steps[0].state is StepState.DONE
