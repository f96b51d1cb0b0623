"""The demo workspace AS SHIPPED reaches its smart cards (issue 18, item 1).

``core.demo.init_workspace`` creates the workspace exactly as ``make run`` does (the
shipped scripts copied, SoftHSM2 tokens made with ``softhsm2-util``, the scripts' card
serials bound to them); nothing in the scripts is edited here. A real keyholder started
the way the TUI starts it in demo mode (``allow_unlocked`` when not root, ``practice``,
the default module names) then runs the practice genesis, whose custodians 1 and 2 get
their shares on their DEMO cards, and the practice unseal-and-seal, which reads two of
them back from the cards (demo PIN) and one typed. Before the fix the scripts named no
module, the engine's default was OpenSC, and the demo answered "no card in any reader".
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import demo
from core.ceremony.engine import (
    CardAccess,
    CarrierRefusedError,
    Ceremony,
    CeremonyState,
    ClientKeyholder,
)
from core.ceremony.model import StepKind
from core.ceremony.script import check_script
from core.keyholder.client import KeyholderClient
from tests.support.custodian import CustodianTerminal, pin, typed
from tests.support.engine import ok_preflight, step_once

HAVE_SOFTHSM = bool(
    shutil.which("softhsm2-util") and any(os.path.exists(p) for p in demo.SOFTHSM_MODULE_PATHS)
)
pytestmark = pytest.mark.skipif(not HAVE_SOFTHSM, reason="SoftHSM2 missing (make test installs it)")


@pytest.fixture
def demo_ws(tmp_path: Path) -> Iterator[demo.Workspace]:
    ws = demo.init_workspace(tmp_path / "demo")
    assert ws.softhsm2_conf is not None and len(ws.tokens) == 5
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(ws.softhsm2_conf)  # as kcm_tui.app does in demo mode
    try:
        yield ws
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def _keyholder(terminal: str | None = None) -> KeyholderClient:
    """As the TUI starts it for a practice script in demo mode (kcm_tui.backend); the
    custodians' terminal is fixed at spawn (a pty: demo mode)."""
    return KeyholderClient.start(
        allow_unlocked=os.geteuid() != 0, practice=True, terminal=terminal, demo=True
    )


def _ack_all(c: Ceremony) -> None:
    run = c.current_step
    assert run is not None
    for r in run.required_roles:
        if r not in run.acks:
            c.acknowledge(r)
    c.complete_step()


def test_shipped_practice_scripts_name_the_softhsm2_module() -> None:
    """Every card step of the shipped practice scripts names SoftHSM2; the real ones name
    OpenSC. A name, never a path (the named-module scheme of core/carriers/modules.py)."""
    root = Path(__file__).resolve().parents[2] / "ceremony_scripts"
    seen = 0
    for path in sorted(root.glob("*.toml")):
        data = tomllib.loads(path.read_text("utf-8"))
        practice = bool(data["ceremony"].get("practice"))
        for act in data["acts"]:
            for step in act["steps"]:
                uses_cards = "card" in step.get("display", []) or "card" in step.get("carriers", [])
                if (
                    step["kind"] in ("distribute-shares", "collect-shares", "check-shares")
                    and uses_cards
                ):
                    seen += 1
                    want = "softhsm2" if practice else "opensc"
                    assert step.get("card_module") == want, f"{path.name}: {step['id']}"
        assert check_script(path) == [], path.name
    assert seen >= 8


def test_demo_workspace_as_shipped_cards_out_and_back(demo_ws: demo.Workspace) -> None:
    terminal = CustodianTerminal()
    try:
        with _keyholder(terminal.path) as kc:
            g = Ceremony.load(
                demo_ws.scripts / "practice-genesis.toml",
                demo_ws.media,
                ClientKeyholder(kc, tty=terminal.path),
                preflight=ok_preflight,
            )
            while (run := g.current_step) is not None:
                if run.kind is not StepKind.DISTRIBUTE_SHARES:
                    step_once(g)
                    continue
                g.perform()
                # the TUI's token list (list_cards with no module: the step's)
                cards = g.list_cards()
                assert sorted(c["label"] for c in cards) == sorted(demo_ws.tokens)
                # and list_cards honours a module it is given (it used to pass None)
                assert len(g.list_cards(module="softhsm2")) == 5
                with pytest.raises(CarrierRefusedError) as err:  # no YubiKey module, no reader
                    g.list_cards(module="ykcs11")
                print("list_cards(module='ykcs11'):", err.value)
                carriers = g.share_carriers()
                assert carriers == {
                    "c1": "card", "c2": "card", "c3": "screen", "c4": "screen", "c5": "screen"
                }  # fmt: skip
                for cu in g.script.policy.custodians:  # type: ignore[union-attr]
                    if carriers[cu] == "card":
                        res = g.show_share(cu, card=CardAccess(pin=pin(demo.DEMO_PIN)))
                        assert res["verified"] is True and res["stored_on_card"] is True
                    else:
                        g.show_share(cu)
                    g.acknowledge(cu)
                _ack_all(g)
            assert g.state is CeremonyState.COMPLETED
        holders = {h["custodian"]: h for h in g.manifest["holders"]}  # type: ignore[index]
        assert holders["c1"]["carrier"] == "card" and holders["c2"]["carrier"] == "card"
        assert len(terminal.shares) == 3  # c3, c4, c5 on the custodian terminal
        c3_words = terminal.shares[0]
    finally:
        terminal.close()

    # the demo now preselects the practice unseal-and-seal
    ws = demo.load_workspace(demo_ws.root)
    assert ws.preselect == "practice-unseal-and-seal.toml"
    with _keyholder() as kc:
        u = Ceremony.load(
            ws.scripts / ws.preselect, ws.media, ClientKeyholder(kc), preflight=ok_preflight
        )
        while (run := u.current_step) is not None and run.kind is not StepKind.COLLECT_SHARES:
            step_once(u)
        u.perform()
        assert len(u.list_cards()) == 5
        a = u.add_share(
            "card", CardAccess(serial=holders["c1"]["card_serial"], pin=pin(demo.DEMO_PIN))
        )
        assert a["card_serial"] == holders["c1"]["card_serial"] and a["complete"] is False
        b = u.add_share(
            "card", CardAccess(serial=holders["c2"]["card_serial"], pin=pin(demo.DEMO_PIN))
        )
        assert b["complete"] is False
        c = u.add_share("typed", typed(c3_words))
        assert c["complete"] is True
        _ack_all(u)
        while u.current_step is not None:
            step_once(u)
        assert u.state is CeremonyState.COMPLETED
    rec = next(s for s in u.steps if s.kind is StepKind.RECOVER)
    assert rec.results["fingerprint"] == g.manifest["fingerprint"]  # type: ignore[index]
