"""Groups by name (issue 18, item 3).

With groups eu 2/3, us 2/2 and vault 1/1 (group threshold 2), the collection used to say
"0 of 2 group(s) complete; need 1 more share(s) from group 1": numbers only, no lines.
Now every accepted share's progress carries one line per group (name, threshold, received)
and a message that names the groups; the REAL keyholder makes and takes the shares.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.ceremony import groups as G
from core.ceremony.engine import Ceremony, CeremonyState, ClientKeyholder, ShareRefusedError
from core.ceremony.script import check_script
from core.keyholder.client import KeyholderClient
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, step_once

POLICY = {
    "group_threshold": 2,
    "groups": [
        {"name": "eu", "threshold": 2, "members": ["c1", "c2", "c3"]},
        {"name": "us", "threshold": 2, "members": ["c4", "c5"]},
        {"name": "vault", "threshold": 1, "members": ["c6"]},
    ],
}

GROUPS_TOML = """[roles.c6]
kind = "custodian"
name = "Custodian 6"

[policy]
group_threshold = 2

[[policy.groups]]
name = "eu"
threshold = 2
members = ["c1", "c2", "c3"]

[[policy.groups]]
name = "us"
threshold = 2
members = ["c4", "c5"]

[[policy.groups]]
name = "vault"
threshold = 1
members = ["c6"]
"""


def groups_genesis(tmp_path: Path) -> Path:
    text = (SCRIPTS / "genesis.toml").read_text()
    old = '[policy]\nthreshold = 3\nshares = 5\ncustodians = ["c1", "c2", "c3", "c4", "c5"]\n'
    assert old in text
    path = tmp_path / "genesis-groups.toml"
    path.write_text(text.replace(old, GROUPS_TOML))
    assert check_script(path) == []
    return path


def test_share_title_keeps_printable_ascii_only() -> None:
    from core.shamir.display import share_title

    assert share_title(1187, 1, 3, custodian="Ann", group_name="eu") == (
        "Set 1187 - group eu, share 3 - for Ann"
    )
    assert share_title(None, 2, 1) == "group 2, share 1"
    evil = share_title(1, 1, 1, custodian="A\x1b[2J\x07", group_name="\x1b]0;x\x07")
    assert "\x1b" not in evil and "\x07" not in evil


def test_messages_name_the_groups() -> None:
    lines = G.collection_lines(POLICY, [{"group": 1}])
    assert [(g.name, g.threshold, g.received) for g in lines] == [
        ("eu", 2, 1),
        ("us", 2, 0),
        ("vault", 1, 0),
    ]
    msg = G.collection_message(POLICY, lines, set_id=1187, complete=False)
    assert msg == (
        "set 1187: 0 of 2 groups complete; need 2 more complete groups from: "
        "eu (1 more), vault (1 more), us (2 more)"
    )
    lines = G.collection_lines(POLICY, [{"group": 1}, {"group": 1}, {"group": 2}])
    msg = G.collection_message(POLICY, lines, set_id=1187, complete=False)
    assert (
        msg == "set 1187: 1 of 2 groups complete (eu); need 1 more share from us, or 1 from vault"
    )
    assert "group 1" not in msg and "group(s)" not in msg
    assert G.line_text(lines[0]) == "eu               2 of 3 needed   received 2  complete"
    assert all(len(G.line_text(g)) <= 76 for g in lines)
    single = {"threshold": 3, "shares": 5, "custodians": ["c1", "c2", "c3", "c4", "c5"]}
    one = G.collection_lines(single, [{"group": 1}])
    assert G.collection_message(single, one, set_id=5, complete=False) == (
        "set 5: 1 of 3 shares; need 2 more shares"
    )
    assert G.group_name(POLICY, 3) == "vault" and G.group_name(single, 1) == "custodians"
    assert G.name_groups_in("group 2 share 1 was already given", POLICY) == (
        "group us share 1 was already given"
    )
    assert G.name_groups_in("group 9 share 1", POLICY) == "group 9 share 1"
    assert G.name_groups_in("group 1 share 2", single) == "group 1 share 2"
    dist = G.distribution_lines(POLICY, ["c1", "c6"])
    assert [(g.name, g.received) for g in dist] == [("eu", 1), ("us", 0), ("vault", 1)]


def test_collection_with_named_groups_real_keyholder(workspace: Path, tmp_path: Path) -> None:
    terminal = CustodianTerminal()
    try:
        with KeyholderClient.start(
            allow_unlocked=os.geteuid() != 0, terminal=terminal.path, demo=True
        ) as kc:
            g = Ceremony.load(
                groups_genesis(tmp_path),
                workspace,
                ClientKeyholder(kc, tty=terminal.path),
                preflight=ok_preflight,
            )
            drive(g)
        assert g.state is CeremonyState.COMPLETED
        shares = list(terminal.shares)
        raw = bytes(terminal.raw)
    finally:
        terminal.close()
    assert len(shares) == 6  # c1..c6 in policy order
    # the custodian's screen names the group
    titles = [t.decode() for t in re.findall(rb"Set \d+ - group [^\r\n]*", raw)]
    assert [t.split(" - ", 1)[1] for t in titles] == [
        "group eu, share 1 - for Custodian 1",
        "group eu, share 2 - for Custodian 2",
        "group eu, share 3 - for Custodian 3",
        "group us, share 1 - for Custodian 4",
        "group us, share 2 - for Custodian 5",
        "group vault, share 1 - for Custodian 6",
    ]
    assert [gr["name"] for gr in g.manifest["policy"]["groups"]] == ["eu", "us", "vault"]  # type: ignore[index]

    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", workspace, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(u, until="recover.collect")
        u.perform()
        a = u.add_share("typed", typed(shares[0]))  # eu
        assert a["group_name"] == "eu" and a["complete"] is False
        assert [(x["name"], x["threshold"], x["received"]) for x in a["groups"]] == [
            ("eu", 2, 1),
            ("us", 2, 0),
            ("vault", 1, 0),
        ]
        assert "from: eu (1 more)" in a["message"] and "group 1" not in a["message"]
        b = u.add_share("typed", typed(shares[5]))  # vault
        assert b["group_name"] == "vault"
        assert b["message"].endswith(
            "1 of 2 groups complete (vault); need 1 more share from eu, or 2 from us"
        )
        with pytest.raises(ShareRefusedError, match="group vault share 1 was already given") as err:
            u.add_share("typed", typed(shares[5]))  # vault again: named in the refusal
        assert err.value.code == "duplicate"
        c = u.add_share("typed", typed(shares[2]))  # eu again: eu and vault complete
        assert c["complete"] is True and c["message"].endswith("enough shares to recover")
        assert [x["complete"] for x in c["groups"]] == [True, False, True]
        step_once(u)
        drive(u)
        assert u.state is CeremonyState.COMPLETED
