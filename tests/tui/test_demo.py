"""The demo workspace behind `make run` (core/demo.py)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from core.ceremony.script import load_script
from core.demo import DemoError, cli_main, init_workspace, load_workspace


def test_init_creates_media_scripts_recipients_and_tokens(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    again = load_workspace(ws.root)
    assert again == ws
    assert ws.preselect == "practice-genesis.toml"
    practice = load_script(ws.scripts / ws.preselect)
    assert practice.practice is True and practice.purpose == "genesis"
    assert ws.next_script == "practice-unseal-and-seal.toml"
    after = load_script(ws.scripts / ws.next_script)
    assert after.practice is True and after.purpose == "unseal-and-seal"
    for name in ("kms-openkcm-boot.pem", "PRACTICE-kms.pem"):
        assert "BEGIN PUBLIC KEY" in (ws.media / "recipients" / name).read_text()
    # the practice scripts seal to the PRACTICE demo key, never to the "real" demo KMS key
    for script in (practice, after):
        assert [r.public_key_file for r in script.recipients.values()] == [
            "recipients/PRACTICE-kms.pem"
        ]
    privates = sorted(ws.demo_keys.iterdir())
    assert [p.name for p in privates] == [
        "PRACTICE-aws-wrapping-key.DEMO-PRIVATE.pem",
        "PRACTICE-azure-kek.DEMO-PRIVATE.pem",
        "PRACTICE-gcp-wrapping-key.DEMO-PRIVATE.pem",
        "PRACTICE-kms.DEMO-PRIVATE.pem",
        "PRACTICE-vault-wrapping-key.DEMO-PRIVATE.pem",
        "kms-openkcm-boot.DEMO-PRIVATE.pem",
    ]
    # DEMO provider wrapping keys for practice-byok (issue 16): the sizes the methods need
    from cryptography.hazmat.primitives import serialization

    byok = ws.media / "byok"
    assert sorted(p.name for p in byok.iterdir()) == [
        "PRACTICE-aws-import-token.bin",
        "PRACTICE-aws-wrapping-key.der",
        "PRACTICE-azure-kek.pem",
        "PRACTICE-gcp-wrapping-key.pem",
        "PRACTICE-vault-wrapping-key.pem",
    ]
    sizes = {
        "PRACTICE-aws-wrapping-key.der": 3072,
        "PRACTICE-azure-kek.pem": 3072,
        "PRACTICE-gcp-wrapping-key.pem": 3072,
        "PRACTICE-vault-wrapping-key.pem": 4096,
    }
    for name, bits in sizes.items():
        data = (byok / name).read_bytes()
        load = serialization.load_der_public_key if name.endswith(".der") else serialization.load_pem_public_key
        assert load(data).key_size == bits  # type: ignore[union-attr]
    assert (byok / "PRACTICE-aws-import-token.bin").read_bytes().startswith(b"DEMO AWS IMPORT TOKEN")
    for private in privates:
        assert "DEMO" in private.name and private.read_text().startswith("# DEMO KEY")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "DEMO WORKSPACE" in (ws.root / "README-DEMO.txt").read_text()
    if shutil.which("softhsm2-util"):
        assert ws.softhsm2_conf is not None and ws.softhsm2_conf.is_relative_to(ws.root)
        assert len(ws.tokens) == 5
        assert str(ws.root) in ws.softhsm2_conf.read_text()
    else:
        assert ws.softhsm2_conf is None and ws.tokens == ()


def test_refuses_a_non_empty_folder_and_bad_workspace(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    with pytest.raises(DemoError, match="not empty"):
        init_workspace(tmp_path / "x")
    with pytest.raises(DemoError, match="not a demo workspace"):
        load_workspace(tmp_path / "x")


def test_cli_init_and_if_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    assert cli_main(["init", str(target)]) == 0
    assert "DEMO workspace created" in capsys.readouterr().out
    assert cli_main(["init", "--if-missing", str(target)]) == 0
    assert "keeping it" in capsys.readouterr().out
    assert cli_main(["init", str(target)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_preselects_the_practice_unseal_once_a_practice_set_exists(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    manifests = ws.media / "manifests"
    manifests.mkdir()
    (manifests / "set-1.json").write_text("{}")  # a real set does not count
    assert load_workspace(ws.root).preselect == "practice-genesis.toml"
    (manifests / "PRACTICE-set-2.json").write_text("{}")
    again = load_workspace(ws.root)
    assert again.preselect == "practice-unseal-and-seal.toml"
    assert again.next_script == "practice-unseal-and-seal.toml"


def test_practice_variant_of_genesis_is_valid(tmp_path: Path) -> None:
    """Scripts without a practice genesis: demo init derives one, marked PRACTICE."""
    src = tmp_path / "src"
    src.mkdir()
    root = Path(__file__).resolve().parents[2] / "ceremony_scripts"
    shutil.copy(root / "genesis.toml", src / "genesis.toml")
    ws = init_workspace(tmp_path / "ws", scripts_from=src)
    s = load_script(ws.scripts / "practice-genesis.toml")
    assert s.practice and s.cluster_id == "practice"
    assert ws.next_script == ""
    assert (ws.media / "recipients" / "PRACTICE-kms-openkcm-boot.pem").exists()


def test_demo_scripts_name_the_demo_tokens_by_their_real_serials(tmp_path: Path) -> None:
    """The engine matches cards by serial; SoftHSM2 picks serials itself, so the demo must
    bind its scripts to the serials its tokens actually got (read here through PKCS#11)."""
    import json as _json
    import os
    import subprocess
    import sys

    if not shutil.which("softhsm2-util"):
        pytest.skip("softhsm2 is not installed")
    ws = init_workspace(tmp_path / "ws")
    assert ws.softhsm2_conf is not None
    code = (
        "import json; from core.carriers.pkcs11 import list_tokens, DEFAULT_MODULES;"
        "print(json.dumps({t.label: t.serial for t in list_tokens(DEFAULT_MODULES['softhsm2'])}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SOFTHSM2_CONF": str(ws.softhsm2_conf)}, check=True,
    )
    serials = _json.loads(out.stdout)
    practice = load_script(ws.scripts / ws.preselect)
    named = {r.card_serial for r in practice.roles.values() if getattr(r, "card_serial", None)}
    assert named, "the practice genesis names at least one custodian card"
    assert named <= set(serials.values()), (named, serials)
