"""``kcm-ceremony script check`` (issue 15, items 5 and 7): one root problem is one message,
demo values left in a real script are reported, and recipient key files are read from the
ceremony medium named by ``--media`` / ``--workspace``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.ceremony.cli import script_main
from core.ceremony.demovalues import demo_values
from core.ceremony.script import check_script
from core.demo import init_workspace

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "ceremony_scripts"
REAL = ["genesis", "unseal-and-seal", "reshare", "verify-shares", "rotate", "transition"]


def edited(tmp_path: Path, name: str, *pairs: tuple[str, str]) -> Path:
    """A copy of a shipped script with text replaced (each replacement must apply)."""
    text = (SCRIPTS / f"{name}.toml").read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    out = tmp_path / f"{name}.toml"
    out.write_text(text)
    return out


def real_values(tmp_path: Path, name: str = "genesis") -> Path:
    """The shipped script with its demo values edited, as an administrator does."""
    text = (SCRIPTS / f"{name}.toml").read_text()
    text = text.replace('cluster_id = "openkcm-demo"', 'cluster_id = "openkcm-prod-eu10"')
    text = text.replace('card_serial = "DEMO-0001"', 'card_serial = "0F1E2D3C"')
    text = text.replace('card_serial = "DEMO-0002"', 'card_serial = "0F1E2D3D"')
    out = tmp_path / f"{name}.toml"
    out.write_text(text)
    return out


# ---------------------------------------------------------------- cascades


def test_a_typo_in_a_roles_kind_is_one_message(tmp_path: Path) -> None:
    """Before: 'internal-witnes' gave 16 problems (the missing witness role and every step
    naming 'witness'); now the one root problem, at its line."""
    f = edited(tmp_path, "genesis", ('kind = "internal-witness"', 'kind = "internal-witnes"'))
    problems = check_script(f)
    assert [p.path for p in problems] == ["roles.witness.kind"], [str(p) for p in problems]
    assert "'internal-witnes' is not one of" in problems[0].message
    assert 'kind = "internal-witnes"' in f.read_text().splitlines()[problems[0].line - 1]


def test_a_typo_in_a_custodians_kind_is_one_message(tmp_path: Path) -> None:
    f = edited(tmp_path, "genesis", ('kind = "custodian"\nname = "Custodian 3"', 'kind = "custodain"\nname = "Custodian 3"'))
    problems = check_script(f)
    assert [p.path for p in problems] == ["roles.c3.kind"], [str(p) for p in problems]


def test_a_missing_kind_is_one_message(tmp_path: Path) -> None:
    f = edited(tmp_path, "unseal-and-seal", ('kind = "internal-witness"\n', ""))
    problems = check_script(f)
    assert [p.message for p in problems] == ["missing 'kind'"], [str(p) for p in problems]


def test_an_undefined_role_is_reported_once(tmp_path: Path) -> None:
    """A role renamed in [roles] only: its first use is reported, saying the others are not."""
    f = edited(tmp_path, "genesis", ("[roles.witness]", "[roles.witnes]"))
    problems = check_script(f)
    assert len(problems) == 1, [str(p) for p in problems]
    assert "'witness'" in problems[0].message and "not reported again" in problems[0].message
    # two different undefined roles are two problems
    f = edited(tmp_path, "genesis", ("[roles.witness]", "[roles.witnes]"),
               ('roles = ["admin", "witness", "custodians"]', 'roles = ["admin", "witness", "custodians", "auditor"]'))
    msgs = [p.message for p in check_script(f)]
    assert len(msgs) == 2 and any("'auditor'" in m for m in msgs), msgs


def test_a_real_missing_role_is_still_reported(tmp_path: Path) -> None:
    """The cascade guard does not hide a missing witness when every kind is right."""
    f = edited(tmp_path, "genesis", ('kind = "internal-witness"', 'kind = "observer"'))
    msgs = [p.message for p in check_script(f)]
    assert "missing role: the script defines no internal-witness" in msgs


# ---------------------------------------------------------------- demo values


@pytest.mark.parametrize("name", REAL)
def test_shipped_real_scripts_carry_demo_values(name: str) -> None:
    """The templates name the demo cluster: check reports it, with its line."""
    found = demo_values(SCRIPTS / f"{name}.toml")
    assert any(p.path == "cluster.cluster_id" for p in found)
    lines = (SCRIPTS / f"{name}.toml").read_text().splitlines()
    for p in found:
        assert "DEMO-" in lines[p.line - 1] or "openkcm-demo" in lines[p.line - 1]


def test_practice_scripts_may_carry_demo_values() -> None:
    assert 'card_serial = "DEMO-0001"' in (SCRIPTS / "practice-genesis.toml").read_text()
    for f in SCRIPTS.glob("practice-*.toml"):
        assert demo_values(f) == [], f


def test_check_refuses_demo_values_unless_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = SCRIPTS / "genesis.toml"
    assert script_main(["check", str(g)]) == 1
    out = capsys.readouterr()
    assert f"{g}:16: demo value: cluster_id = 'openkcm-demo'" in out.out
    assert "card_serial = 'DEMO-0001' is a demo token" in out.out
    assert "3 problem(s)" in out.err
    assert script_main(["check", "--demo", str(g)]) == 0
    assert "(--demo: allowed)" in capsys.readouterr().out
    # edited: OK without --demo
    assert script_main(["check", str(real_values(tmp_path))]) == 0
    assert ": OK (genesis" in capsys.readouterr().out


# ---------------------------------------------------------------- recipient files


def test_recipient_files_are_read_from_the_media_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = init_workspace(tmp_path / "ws")
    script = real_values(tmp_path)
    # without a medium: checked as far as possible, and it says the key files were not
    assert script_main(["check", str(script)]) == 0
    assert "recipient key files not checked (give --media DIR" in capsys.readouterr().out
    # the demo workspace's medium has the key: OK, with its fingerprint
    assert script_main(["check", "--media", str(ws.media), str(script)]) == 0
    assert "recipient kms: recipients/kms-openkcm-boot.pem OK, fingerprint " in capsys.readouterr().out
    assert script_main(["check", "--workspace", str(ws.root), str(script)]) == 0
    capsys.readouterr()
    # a medium without it: reported at the public_key_file line, with what to do
    empty = tmp_path / "empty"
    empty.mkdir()
    assert script_main(["check", "--media", str(empty), str(script)]) == 1
    out = capsys.readouterr().out
    assert f"{script}:56: recipient 'kms': recipients/kms-openkcm-boot.pem is not in {empty}: copy" in out
    # a file that is no public key
    (ws.media / "recipients" / "kms-openkcm-boot.pem").write_text("not a key\n")
    assert script_main(["check", "--media", str(ws.media), str(script)]) == 1
    assert "not a public key" in capsys.readouterr().out


def test_a_recipient_fingerprint_must_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = init_workspace(tmp_path / "ws")
    script = real_values(tmp_path)
    text = script.read_text().replace('file = "masterkey-kms.sealed.json"', 'file = "masterkey-kms.sealed.json"\nfingerprint = "' + "ab" * 32 + '"')
    script.write_text(text)
    assert script_main(["check", "--media", str(ws.media), str(script)]) == 1
    assert "not the script's " + "ab" * 32 in capsys.readouterr().out


def test_check_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kcm_tui.cli", "script", "check", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    out = run("--media", str(tmp_path / "nope"), str(SCRIPTS / "genesis.toml"))
    assert out.returncode == 2 and "is not a folder" in out.stderr
    out = run("--workspace", str(tmp_path), str(SCRIPTS / "genesis.toml"))
    assert out.returncode == 2 and "not a demo workspace" in out.stderr
    out = run("--media", str(tmp_path), "--workspace", str(tmp_path), str(SCRIPTS / "genesis.toml"))
    assert out.returncode == 2 and "not allowed with" in out.stderr
