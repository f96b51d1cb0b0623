"""Repeatable rehearsals (issue 18, item 4): the same script twice in one workspace.

Before the fix the second practice unseal-and-seal failed at its export step: the script's
folder ``PRACTICE-unseal-export`` was on the medium already, nothing is overwritten, and
the step took no other name. Now the export goes to ``<folder>-<ceremony id>``, recorded
in the result and the journal; the first export is untouched, and a link planted under
the scripted name is still refused (the fallback is for an earlier export only).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from core import journal as jr
from core.ceremony.engine import CeremonyState, EngineError, ShareRefusedError, StepFailedError
from core.ceremony.exportnames import unique_folder_names
from core.ceremony.model import StepKind
from tests.support.engine import SCRIPTS, drive, genesis, make_workspace, start
from tests.support.keyholder_double import KeyholderDouble


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_practice_unseal_twice_in_one_workspace(workspace: Path) -> None:
    g, kh = genesis(workspace, "practice-genesis")
    shares = kh.issued[g.manifest["set_id"]]  # type: ignore[index]
    exports = workspace / "exports"

    first = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    drive(first, shares=[shares[0], shares[1], shares[2]])
    assert first.state is CeremonyState.COMPLETED
    out1 = exports / "PRACTICE-unseal-export"
    before = _digests(out1)
    assert "PRACTICE-masterkey-kms.sealed.json" in before

    second = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    drive(second, shares=[shares[4], shares[3], shares[1]])
    assert second.state is CeremonyState.COMPLETED
    export = next(s for s in second.steps if s.kind is StepKind.EXPORT)
    name = f"PRACTICE-unseal-export-{second.ceremony_id}"
    assert export.results["folder"] == name
    out2 = exports / name
    assert (out2 / "PRACTICE-masterkey-kms.sealed.json").exists()
    assert _digests(out1) == before  # the first rehearsal's export is untouched
    # the journal says where the export went
    evs = jr._events_from_path(second.journal.path)
    assert any(e.kind == "step.result" and e.details.get("folder") == name for e in evs)
    assert jr.verify(second.journal.path).ok

    # a third rehearsal: again its own folder
    third = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    drive(third, shares=[shares[2], shares[3], shares[4]])
    assert third.state is CeremonyState.COMPLETED
    assert (exports / f"PRACTICE-unseal-export-{third.ceremony_id}").is_dir()


def test_genesis_journal_export_follows_its_folder(workspace: Path, tmp_path: Path) -> None:
    """A script that exports the journal writes it beside the export it belongs to."""
    text = (SCRIPTS / "practice-genesis.toml").read_text()
    assert 'files = ["envelopes", "manifest"]' in text
    script = tmp_path / "genesis-with-journal.toml"
    script.write_text(
        text.replace(
            'files = ["envelopes", "manifest"]',
            'files = ["envelopes", "manifest", "journal", "transcript"]',
        )
    )
    a, _ = genesis(workspace, script)
    b, _ = genesis(workspace, script)
    assert a.state is b.state is CeremonyState.COMPLETED
    exports = workspace / "exports"
    assert (exports / "PRACTICE-genesis-export-journal" / "PRACTICE-journal.jsonl").exists() or any(
        (exports / "PRACTICE-genesis-export-journal").iterdir()
    )
    second = exports / f"PRACTICE-genesis-export-{b.ceremony_id}-journal"
    assert second.is_dir() and any(p.name.endswith("journal.jsonl") for p in second.iterdir())


def test_a_link_planted_under_the_scripted_name_is_still_refused(workspace: Path) -> None:
    g, kh = genesis(workspace, "practice-genesis")
    shares = kh.issued[g.manifest["set_id"]]  # type: ignore[index]
    target = workspace.parent / "elsewhere"
    target.mkdir()
    os.symlink(target, workspace / "exports" / "PRACTICE-unseal-export")
    u = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    with pytest.raises(StepFailedError, match="symbolic link"):
        drive(u, shares=[shares[0], shares[1], shares[2]])
    assert list(target.iterdir()) == []
    assert not any(
        p.name.startswith("PRACTICE-unseal-export-") for p in (workspace / "exports").iterdir()
    )


def test_unique_folder_names() -> None:
    names = list(unique_folder_names("unseal-export", "unseal-and-seal-20260101T000000Z-ab12"))
    assert names[:2] == ["unseal-export", "unseal-export-unseal-and-seal-20260101T000000Z-ab12"]
    assert len(names) == len(set(names)) == 10


def test_practice_reshare_supersedes_the_practice_set(workspace: Path) -> None:
    """The shipped practice reshare: 3 shares of the practice genesis rebuild the key, a new
    PRACTICE set supersedes the old one; an old share is then refused (code other-set) and
    the practice unseal-and-seal works from the new set. A real set is never involved."""
    g, kh = genesis(workspace, "practice-genesis")
    old_set = g.manifest["set_id"]  # type: ignore[index]
    old = kh.issued[old_set]

    kh2 = KeyholderDouble()
    r = start("practice-reshare", workspace, kh2)
    assert r.practice and r.ceremony_id.startswith("PRACTICE-reshare-")
    drive(r, shares=[old[4], old[2], old[0]])
    assert r.state is CeremonyState.COMPLETED
    new = r.manifest
    assert new is not None and new["supersedes"] == old_set and new["practice"] is True
    assert (workspace / "manifests" / f"PRACTICE-set-{new['set_id']}.json").exists()
    assert (workspace / "exports" / "PRACTICE-reshare-export").is_dir()

    u = start("practice-unseal-and-seal", workspace, KeyholderDouble())
    drive(u, until="recover.collect")
    u.perform()
    with pytest.raises(ShareRefusedError, match=f"superseded by set {new['set_id']}") as err:
        u.add_share("typed", old[1])
    assert err.value.code == "other-set"
    for s in kh2.issued[new["set_id"]][:3]:
        u.add_share("typed", s)
    drive(u)
    assert u.state is CeremonyState.COMPLETED
    # a real reshare never takes the practice set
    with pytest.raises(
        EngineError, match="only PRACTICE share sets are here; run the practice-reshare"
    ):
        start("reshare", workspace, KeyholderDouble())


def test_kind_mismatch_is_refused_before_the_first_step(workspace: Path) -> None:
    """Issue 15: the real unseal refused practice sets only at its collect step (step 4);
    now the mismatch, either way round, is refused when the ceremony is opened, before
    anything is journaled. A ceremony that makes its own set first is not refused."""
    genesis(workspace, "practice-genesis")
    before = sorted(p.name for p in (workspace / "ceremonies").iterdir())
    for script in ("unseal-and-seal", "verify-shares", "reshare", "rotate"):
        with pytest.raises(EngineError, match="only PRACTICE share sets are here") as err:
            start(script, workspace, KeyholderDouble())
        assert err.value.code == "share-set-kind"
    assert sorted(p.name for p in (workspace / "ceremonies").iterdir()) == before
    # a real genesis makes its own set: not refused
    start("genesis", workspace, KeyholderDouble()).abort("only opened", "admin")
    # a practice script naming a real set's manifest is refused the same way
    real_ws = make_workspace(workspace.parent / "real-ws", (workspace / "recipients" / "kms-openkcm-boot.pem").read_bytes())
    genesis(real_ws)
    with pytest.raises(EngineError, match="only real share sets are here, and a PRACTICE ceremony never uses them"):
        start("practice-unseal-and-seal", real_ws, KeyholderDouble())
