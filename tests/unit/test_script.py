"""Ceremony script loading and validation: shipped scripts, malformed corpus, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ceremony.cli import script_main
from core.ceremony.model import RoleKind, StepKind
from core.ceremony.script import ScriptError, SourceMap, check_script, load_script
from core.ceremony.validate import is_safe_filename

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "ceremony_scripts"
BAD = ROOT / "tests" / "data" / "bad_scripts"
SHIPPED = [
    "genesis",
    "practice-genesis",
    "practice-unseal-and-seal",
    "practice-verify-shares",
    "practice-reshare",
    "unseal-and-seal",
    "reshare",
    "verify-shares",
    "rotate",
    "practice-rotate",
    "transition",
]

# For each malformed script: a token that must appear on the line the problem is reported at.
LINE_TOKEN = {
    "estimate_not_int": "estimate_minutes",
    "estimate_out_of_range": "estimate_minutes",
    "bad_cluster_id": "cluster_id",
    "bad_export_content": "secrets",
    "bad_purpose": "party",
    "card_key_bits": "1024",
    "card_module_path": "evil",
    # issue 12: a module on the medium, absolute and without "..", was accepted
    "card_module_on_medium": "libcardos",
    # issue 12: a rebuilt key sealed with no witness comparing its KCV
    "recover_without_kcv_witness": "seal",
    "carrier_not_custodian": 'witness = "qr"',
    "carrier_not_displayed": 'c1 = "card"',
    "carrier_unknown": "usb-stick",
    "carriers_not_table": 'carriers = ["card"]',
    "collect_carrier_unknown": "nfc-ring",
    "custodian_as_witness": 'witness = "c1"',
    "duplicate_step_id": 'id = "gen"',
    "group_threshold_too_big": "group_threshold",
    # issue 18: groups are named on every screen line and message
    "group_name_duplicate": 'name = "EU"',
    "group_name_unsafe": "vault",
    "group_name_missing": "[[policy.groups]]",
    "role_name_control_chars": "owned",
    "hidden_export_name": ".hidden",
    "missing_admin_role": "[roles.",
    "missing_title": "[[acts.steps]]",
    "missing_witness_role": "[roles.",
    "no_wipe": "[[acts.steps]]",
    "one_of_n": "threshold = 1",
    "practice_real_cluster": "openkcm-prod",
    "practice_real_manifest": "set-1234.json",
    "practice_real_recipient": "kms-openkcm-boot.pem",
    "real_practice_folder": "PRACTICE-out",
    "real_practice_manifest": "PRACTICE-set-1234.json",
    "reserved_export_name": "con.json",
    "reshare_generates": '"generate"',
    "seal_before_key": 'kind = "seal"',
    "shares_mismatch": "shares = 5",
    "threshold_gt_shares": "threshold = 4",
    "threshold_not_int": "two",
    "toml_syntax": 'name = "mini',
    "undefined_ack_role": "auditor",
    "undefined_custodian": "c9",
    "unknown_key": "colour",
    "unknown_recipient": "hsm",
    "unknown_step_kind": "seel",
    "unsafe_export_folder": "/media/out",
    "unsafe_export_name": "etc/passwd",
    "witness_not_acknowledging": "witness =",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scripts_are_valid(name: str) -> None:
    path = SCRIPTS / f"{name}.toml"
    assert check_script(path) == []
    s = load_script(path)
    assert s.name == name
    assert any(r.kind is RoleKind.ADMINISTRATOR for r in s.roles.values())
    kinds = [st.kind for _a, st in s.steps()]
    assert StepKind.WIPE in kinds or s.purpose == "verify-shares"
    assert s.practice is name.startswith("practice-")


def test_practice_scripts_are_practice_throughout() -> None:
    """Every shipped practice script: a practice cluster, PRACTICE keys, files and folders;
    the real scripts: none of these."""
    for name in SHIPPED:
        s = load_script(SCRIPTS / f"{name}.toml")
        folders = [st.params["folder"] for _a, st in s.steps() if "folder" in st.params]
        names = [r.file for r in s.recipients.values()] + folders
        names += [r.public_key_file.rsplit("/", 1)[-1] for r in s.recipients.values()]
        marked = [n.startswith("PRACTICE-") for n in names]
        assert all(marked) if s.practice else not any(marked), (name, names)
        assert s.cluster_id.startswith("practice") is s.practice
    purposes = {load_script(SCRIPTS / f"{n}.toml").purpose for n in SHIPPED if "practice" in n}
    assert purposes == {"genesis", "unseal-and-seal", "verify-shares", "reshare", "rotate"}


def test_practice_allowed_for_every_purpose(tmp_path: Path) -> None:
    """A practice variant of every shipped real script is valid once marked PRACTICE."""
    for name in ("genesis", "unseal-and-seal", "reshare", "verify-shares"):
        text = (SCRIPTS / f"{name}.toml").read_text()
        text = text.replace("[ceremony]\n", "[ceremony]\npractice = true\n", 1)
        text = text.replace('cluster_id = "openkcm-demo"', 'cluster_id = "practice"')
        text = text.replace('public_key_file = "recipients/', 'public_key_file = "recipients/PRACTICE-')
        text = text.replace('file = "masterkey', 'file = "PRACTICE-masterkey')
        text = text.replace('folder = "', 'folder = "PRACTICE-')
        p = tmp_path / f"practice-{name}.toml"
        p.write_text(text)
        assert check_script(p) == [], name
        assert load_script(p).practice is True
        # the same variant without the PRACTICE marks is refused, each mark named
        bare = text.replace('cluster_id = "practice"', 'cluster_id = "openkcm-demo"')
        bare = bare.replace("PRACTICE-", "")
        p.write_text(bare)
        msgs = [pr.message for pr in check_script(p)]
        assert msgs and all("practice" in m.lower() for m in msgs), (name, msgs)
        assert any("cluster_id 'openkcm-demo' of a practice script" in m for m in msgs)


def test_bad_corpus_is_complete() -> None:
    assert {p.stem for p in BAD.glob("*.toml")} == set(LINE_TOKEN)


@pytest.mark.parametrize("name", sorted(LINE_TOKEN))
def test_bad_script_reports_problem_at_line(name: str) -> None:
    path = BAD / f"{name}.toml"
    lines = path.read_text().splitlines()
    expect = lines[0].removeprefix("# expect: ")
    problems = check_script(path)
    matching = [p for p in problems if expect in p.message]
    assert matching, f"{name}: expected {expect!r}, got {[str(p) for p in problems]}"
    p = matching[0]
    assert p.file == str(path)
    assert LINE_TOKEN[name] in lines[p.line - 1], f"{name}: line {p.line} is {lines[p.line - 1]!r}"
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert expect in str(info.value)


def test_every_problem_reported(tmp_path: Path) -> None:
    text = (ROOT / "tests/data/good_mini.toml").read_text()
    text = text.replace('kind = "seal"', 'kind = "seel"').replace("threshold = 2", "threshold = 9")
    text = text.replace('file = "masterkey.sealed.json"', 'file = "a/b.json"')
    text = text.replace('acknowledge = ["admin", "witness"]', 'acknowledge = ["nobody"]')
    f = tmp_path / "many.toml"
    f.write_text(text)
    msgs = [p.message for p in check_script(f)]
    assert any("unknown step kind" in m for m in msgs)
    assert any("threshold 9 is larger" in m for m in msgs)
    assert any("safe export file name" in m for m in msgs)
    assert any("'nobody'" in m for m in msgs)


def test_good_mini_valid() -> None:
    assert check_script(ROOT / "tests/data/good_mini.toml") == []


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    # the shipped genesis is a template with demo values: OK for a demo only
    assert script_main(["check", "--demo", str(SCRIPTS / "genesis.toml")]) == 0
    assert "OK" in capsys.readouterr().out
    assert script_main(["check", str(SCRIPTS / "practice-genesis.toml")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = BAD / "threshold_gt_shares.toml"
    assert script_main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:32:" in out
    assert script_main(["check", str(BAD / "nope.toml")]) == 1
    assert script_main([]) == 2


def test_source_map_locates_array_tables() -> None:
    text = "[a]\nx = 1\n[[acts]]\nid = 'a'\n[[acts.steps]]\nid = 's1'\n[[acts.steps]]\nid = 's2'\nkind = 'k'\n[[acts]]\nid='b'\n[[acts.steps]]\nkind = 'z'\n"
    sm = SourceMap(text)
    assert sm.line_of(("a", "x")) == 2
    assert sm.line_of(("acts", 0, "steps", 1, "kind")) == 9
    assert sm.line_of(("acts", 1, "steps", 0, "kind")) == 13
    assert sm.line_of(("acts", 1, "id")) == 11
    assert sm.line_of(("acts", 0, "steps", 1, "missing")) == 7


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("masterkey.sealed.json", True),
        ("PRACTICE-x_1.json", True),
        ("../x", False),
        ("a/b", False),
        (".x", False),
        ("-rf", False),
        ("nul.txt", False),
        ("x.", False),
        ("a b", False),
        ("", False),
        ("é.json", False),
    ],
)
def test_safe_filenames(name: str, ok: bool) -> None:
    assert is_safe_filename(name) is ok


def test_missing_file() -> None:
    problems = check_script(BAD / "does-not-exist.toml")
    assert problems and "cannot read" in problems[0].message
