"""The engine owns the ceremony's state (issue 13, item 2).

* distribution: per custodian shown / written down / checked / check skipped with a
  reason, each journaled as its own event; the typed-back check is decided by the engine
  (it was decided in the distribution screen and never journaled as a check);
* collection: shares in per group, refusals;
* export: the verdict on the medium (it was decided in the runner screen);
* screens read all of it through frozen views; the step kinds dispatch through an explicit
  handler table (no ``getattr`` string dispatch).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
from pathlib import Path

import pytest

from core.ceremony import engine as engine_mod
from core.ceremony.adapters.exporter import FolderExporter
from core.ceremony.engine import HANDLERS, Ceremony, EngineError, ShareRefusedError, StepFailedError
from core.ceremony.model import NO_ACTION_KINDS, StepKind
from core.ceremony.state import HandoverState, MediumVerdict
from tests.support.engine import drive, events, genesis, start
from tests.support.keyholder_double import KeyholderDouble
from tests.support.keyholders import KeyholderKit


def test_distribution_state_is_the_engines_and_journaled(workspace: Path, keyholder: KeyholderKit) -> None:
    port = keyholder.port()
    c = start("genesis", workspace, port)
    drive(c, until="shares.distribute")
    c.perform()
    view = c.distribution_progress()
    assert view is not None and view.total == 5
    assert [view.status(x) for x in view.order] == [HandoverState.DUE] * 5
    assert view.due() == ["c1", "c2", "c3", "c4", "c5"]
    with pytest.raises(EngineError, match="not been shown"):
        c.share_written("c1")
    with pytest.raises(EngineError, match="not been shown"):
        c.check_typed_share("c1")

    c.show_share("c1")
    c.show_share("c2")
    c.share_written("c1")
    # another custodian's share typed back: refused, the engine says why, journaled
    keyholder.type_back(c, port, 1)
    with pytest.raises(ShareRefusedError, match="not this custodian's share") as bad:
        c.check_typed_share("c1")
    assert bad.value.code == "check-wrong-share"
    keyholder.type_back(c, port, 0)
    assert c.check_typed_share("c1")["ok"] is True
    c.acknowledge("c1")

    c.share_written("c2")
    c.acknowledge("c2")

    c.show_share("c3")
    with pytest.raises(EngineError, match="say why"):
        c.skip_share_check("c3", "  ")
    c.skip_share_check("c3", "the custodian's hands are injured", "admin")
    c.acknowledge("c3")
    with pytest.raises(EngineError, match="already skipped"):
        c.check_typed_share("c3")

    view = c.distribution_progress()
    assert view is not None
    assert [view.status(x) for x in view.order] == [
        HandoverState.CHECKED,
        HandoverState.WRITTEN,
        HandoverState.SKIPPED,
        HandoverState.DUE,
        HandoverState.DUE,
    ]
    assert view.handovers["c3"].reason == "the custodian's hands are injured"
    assert view.handovers["c1"].failed_checks == 1
    assert view.handovers["c2"].handed_out and not view.handovers["c2"].settled
    assert not view.handovers["c4"].handed_out
    assert view.due() == ["c4", "c5"] and view.done == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.set_id = "x"  # type: ignore[misc]

    ev = events(c)
    checks = [e for e in ev if e.kind == "share.checked"]
    assert [(e.role, e.details["ok"]) for e in checks] == [("c1", False), ("c1", True)]
    assert checks[0].details["code"] == "check-wrong-share"
    assert [e.details["custodian"] for e in ev if e.kind == "share.written"] == ["c1", "c2"]
    skipped = [e for e in ev if e.kind == "share.check_skipped"]
    assert len(skipped) == 1 and skipped[0].details["reason"] == "the custodian's hands are injured"
    assert any(e.kind == "exception" and "check skipped for c3" in e.details["text"] for e in ev)


def test_a_qr_copied_needs_no_typed_check(workspace: Path) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    drive(c, until="shares.distribute")
    c.perform()
    c.show_share("c2", "qr")
    c.share_written("c2")  # the QR copied onto the grid card: nothing to type back
    view = c.distribution_progress()
    assert view is not None and view.handovers["c2"].settled


def test_collection_progress_per_group(workspace: Path, keyholder: KeyholderKit) -> None:
    g = start("genesis", workspace, keyholder.port())
    drive(g)
    set_id = str(g.manifest["set_id"])  # type: ignore[index]
    tokens = keyholder.shares(g)
    u = start("unseal-and-seal", workspace, keyholder.port())
    drive(u, until="recover.collect")
    assert u.collection_progress() is None  # before the manifest is chosen
    u.perform()
    p = u.collection_progress()
    assert p is not None and p.set_id == set_id and p.accepted == 0 and not p.is_complete()
    u.add_share("typed", tokens[0])
    with pytest.raises(ShareRefusedError):
        u.add_share("typed", keyholder.shares(g)[0])  # the same share again
    u.add_share("typed", tokens[3])
    p = u.collection_progress()
    assert p is not None
    assert p.group_status(1) == (2, 3) and p.accepted == 2 and p.refused == 1
    assert p.groups_complete() == 0 and not p.is_complete()
    # whose shares are in: the manifest's holder names (public), in the order received
    assert p.groups[0].holders == ("Custodian 1", "Custodian 4")
    u.add_share("typed", tokens[4])
    p = u.collection_progress()
    assert p is not None and p.group_status(1) == (3, 3) and p.is_complete()
    assert p.groups_complete() == 1
    assert p.groups[0].holders == ("Custodian 1", "Custodian 4", "Custodian 5")


def test_export_verdict_is_decided_by_the_engine(workspace: Path, tmp_path: Path) -> None:
    g, _ = genesis(workspace)
    assert g.export_verdict is not None and g.export_verdict.verdict is MediumVerdict.FOLDER
    assert any(e.kind == "export.verdict" and e.details["verdict"] == "folder" for e in events(g))

    # a link planted where the export goes (an earlier export is no failure: the export
    # then goes to genesis-export-<ceremony id>, test_rehearsals.py): the write is refused,
    # NOT written
    exports = workspace / "exports"
    (exports / "genesis-export").rename(workspace / "earlier-export")
    os.symlink(workspace / "earlier-export", exports / "genesis-export")
    c2 = start("genesis", workspace, KeyholderDouble())
    drive(c2, until="seal.export")
    with pytest.raises(StepFailedError):
        c2.perform()
    v = c2.export_verdict
    assert v is not None and v.verdict is MediumVerdict.NOT_WRITTEN and not v.safe_to_remove
    assert v.error

    # the ceremony's own medium (not a scratch folder): written and synced, still mounted
    medium = tmp_path / "own-medium"
    c3 = start(
        "genesis",
        workspace,
        KeyholderDouble(),
        exporter=FolderExporter(medium, scratch=False, label="CEREMONY-1"),
    )
    drive(c3, until="seal.export")
    c3.perform()
    v = c3.export_verdict
    assert v is not None and v.verdict is MediumVerdict.STILL_MOUNTED and v.label == "CEREMONY-1"
    assert not v.safe_to_remove
    shutil.rmtree(medium)


def test_every_step_kind_has_an_explicit_handler() -> None:
    assert set(HANDLERS) | set(NO_ACTION_KINDS) == set(StepKind)
    assert not set(HANDLERS) & set(NO_ACTION_KINDS)
    for kind, handler in HANDLERS.items():
        assert handler.__module__.startswith("core.ceremony.steps."), kind
    # perform dispatches through the table, not by building a method name
    assert "getattr(self" not in inspect.getsource(engine_mod.Ceremony.perform)


def test_perform_uses_the_table(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = start("genesis", workspace, KeyholderDouble())
    seen: list[StepKind] = []

    def fake(self: Ceremony, run: object, **inputs: object) -> dict[str, object]:
        seen.append(run.kind)  # type: ignore[attr-defined]
        return {}

    monkeypatch.setattr(engine_mod, "HANDLERS", {**HANDLERS, StepKind.ATTENDANCE: fake})
    assert c.current_step is not None and c.current_step.kind is StepKind.ATTENDANCE
    c.perform(present=[])
    assert seen == [StepKind.ATTENDANCE]
