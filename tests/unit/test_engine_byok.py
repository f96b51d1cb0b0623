"""The ``byok`` step over the REAL keyholder process: what the room and a hostile medium
can do to it (issue 16, item 5).

A witness who reports a difference, a typed copy of another key, a wrapping key swapped
after the witness confirmed it, an unconfirmed wrap, an expired or future import window,
a linked or oversized file on the medium, a wrong-size key: each is refused with a message
and nothing reaches the export medium. The script rules refuse what a provider does not
accept for a 256-bit symmetric key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import journal as jr
from core.ceremony.engine import (
    Ceremony,
    ClientKeyholder,
    EngineError,
    StepFailedError,
)
from core.ceremony.model import StepKind
from core.ceremony.script import ScriptError, load_script
from core.ceremony.state import StepState
from core.keyholder.client import KeyholderClient
from core.words import to_words
from tests.support.engine import ok_preflight, step_once_acks

DER, PEM, SPKI = Encoding.DER, Encoding.PEM, PublicFormat.SubjectPublicKeyInfo

HEAD = """
[ceremony]
name = "byok-test"
version = "1.0"
purpose = "genesis"

[cluster]
cluster_id = "test"
region_id = "eu10"

[roles.admin]
kind = "ceremony-administrator"
name = "Admin"

[roles.witness]
kind = "internal-witness"
name = "Witness W"

[roles.c1]
kind = "custodian"
name = "C1"

[roles.c2]
kind = "custodian"
name = "C2"

[policy]
threshold = 2
shares = 2
custodians = ["c1", "c2"]

[[acts]]
id = "a"
title = "Act"

[[acts.steps]]
id = "generate"
kind = "generate"
title = "Generate"
acknowledge = ["admin"]
"""

TAIL = """
[[acts.steps]]
id = "distribute"
kind = "distribute-shares"
title = "Shares"
display = ["screen"]
acknowledge = ["admin", "custodians"]

[[acts.steps]]
id = "wipe"
kind = "wipe"
title = "Wipe"
acknowledge = ["admin"]
"""

AWS = """
[[acts.steps]]
id = "aws"
kind = "byok"
title = "AWS"
provider = "aws"
wrapping_key_file = "byok/aws.der"
import_token_file = "byok/token.bin"
key_id = "arn:aws:kms:eu-central-1:111122223333:key/k"
witness = "witness"
acknowledge = ["admin", "witness"]
"""

VAULT = """
[[acts.steps]]
id = "vault"
kind = "byok"
title = "Vault"
provider = "vault"
wrapping_key_file = "byok/vault.pem"
key_name = "masterkey"
witness = "witness"
acknowledge = ["admin", "witness"]
"""


def _now(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    gen = rsa.generate_private_key
    return {
        "aws": gen(public_exponent=65537, key_size=3072),
        "evil": gen(public_exponent=65537, key_size=3072),
        "vault": gen(public_exponent=65537, key_size=4096),
    }


@pytest.fixture
def medium(tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey]) -> Path:
    ws = tmp_path / "ws"
    (ws / "byok").mkdir(parents=True)
    (ws / "byok" / "aws.der").write_bytes(keys["aws"].public_key().public_bytes(DER, SPKI))
    (ws / "byok" / "token.bin").write_bytes(b"\x01token" * 100)
    (ws / "byok" / "vault.pem").write_bytes(keys["vault"].public_key().public_bytes(PEM, SPKI))
    return ws


@pytest.fixture
def client() -> Iterator[KeyholderClient]:
    c = KeyholderClient.start(allow_unlocked=os.geteuid() != 0)
    yield c
    c.close()


def _ceremony(tmp_path: Path, medium: Path, client: KeyholderClient, body: str = AWS) -> Ceremony:
    script = tmp_path / "byok-test.toml"
    script.write_text(HEAD + body + TAIL)
    c = Ceremony.load(script, medium, ClientKeyholder(client), preflight=ok_preflight)
    c.perform()  # generate
    step_once_acks(c)
    run = c.current_step
    assert run is not None and run.kind is StepKind.BYOK
    return c


def _exports(medium: Path) -> list[str]:
    out = medium / "exports"
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_shown_then_confirmed_then_wrapped(
    tmp_path: Path, medium: Path, client: KeyholderClient, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    c = _ceremony(tmp_path, medium, client)
    run = c.current_step
    assert run is not None
    res = c.perform(window_start_utc=_now())
    import hashlib

    fp = hashlib.sha256(keys["aws"].public_key().public_bytes(DER, SPKI)).hexdigest()
    assert res["wrapping_key_sha256"] == fp and run.display["fingerprint"] == fp
    assert run.display["words"] == to_words(bytes.fromhex(fp)) and len(run.display["words"]) == 26
    assert run.display["valid_until_utc"] and not run.performed
    # nothing is wrapped, and the step cannot be completed, before the witness confirms
    again = c.perform(window_start_utc=_now())
    assert again["stage"].startswith("shown") and _exports(medium) == []
    with pytest.raises(EngineError, match="has not been done yet"):
        step_once_acks(c)
    # the witness types the 26 words they compared (their copy)
    c.confirm("witness", out_of_band=" ".join(to_words(bytes.fromhex(fp))))
    done = c.perform()
    assert done["stage"] == "wrapped and written" and done["confirmed_by"] == "Witness W"
    assert _exports(medium) == ["byok-aws"]
    assert sorted(done["files"]) == [
        "EncryptedKeyMaterial.bin",
        "ImportToken.bin",
        "aws-import.json",
    ]
    assert (medium / "exports" / "byok-aws" / "MANIFEST.sha256").is_file()
    step_once_acks(c)
    assert run.state is StepState.DONE
    assert c.export_verdict is not None  # the room is told about the medium
    evs = jr._events_from_path(c.journal.path)
    assert any(e.kind == "export.verdict" and e.step == "aws" for e in evs)
    c.abort("test over", "admin")


def test_witness_reports_a_difference(
    tmp_path: Path, medium: Path, client: KeyholderClient
) -> None:
    c = _ceremony(tmp_path, medium, client)
    c.perform(window_start_utc=_now())
    c.confirm("witness", matches=False)
    run = c.current_step
    assert run is not None and run.state is StepState.FAILED
    assert "does NOT match" in run.error
    with pytest.raises(EngineError):
        c.perform()
    assert _exports(medium) == []
    c.abort("test over", "admin")


def test_witness_copy_of_another_key_fails_the_step(
    tmp_path: Path, medium: Path, client: KeyholderClient, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    import hashlib

    c = _ceremony(tmp_path, medium, client)
    c.perform(window_start_utc=_now())
    other = hashlib.sha256(keys["evil"].public_key().public_bytes(DER, SPKI)).hexdigest()
    c.confirm("witness", out_of_band=other)
    run = c.current_step
    assert run is not None and run.state is StepState.FAILED and not run.confirmed_by
    # a copy of only the first words is not a confirmation of the whole key either
    c.retry()
    c.perform(window_start_utc=_now())
    c.confirm("witness", out_of_band=" ".join(run.display["words"][:6]))
    assert run.state is StepState.FAILED
    assert _exports(medium) == []
    c.abort("test over", "admin")


def test_key_swapped_after_the_confirmation_is_refused_by_the_keyholder(
    tmp_path: Path, medium: Path, client: KeyholderClient, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """A compromised UI replaces the key between the witness's confirmation and the wrap:
    the keyholder checks what the witness confirmed against the key it wraps to."""
    c = _ceremony(tmp_path, medium, client)
    c.perform(window_start_utc=_now())
    c.confirm("witness")
    c.byok_pending["aws"]["wrapping_key"] = keys["evil"].public_key().public_bytes(DER, SPKI)
    with pytest.raises(StepFailedError, match="does not match this wrapping key"):
        c.perform()
    assert _exports(medium) == []
    c.abort("test over", "admin")


def test_the_medium_swapped_after_showing_changes_nothing(
    tmp_path: Path, medium: Path, client: KeyholderClient, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    c = _ceremony(tmp_path, medium, client)
    c.perform(window_start_utc=_now())
    shown = c.current_step.display["fingerprint"]  # type: ignore[union-attr]
    (medium / "byok" / "aws.der").write_bytes(keys["evil"].public_key().public_bytes(DER, SPKI))
    c.confirm("witness")
    res = c.perform()
    assert res["wrapping_key_sha256"] == shown  # the key shown and confirmed, not the new file
    c.abort("test over", "admin")


@pytest.mark.parametrize(
    ("start", "match"),
    [
        (timedelta(hours=-25), "import window ended"),
        (timedelta(hours=2), "in the future"),
    ],
)
def test_import_window_is_checked_before_showing(
    tmp_path: Path, medium: Path, client: KeyholderClient, start: timedelta, match: str
) -> None:
    c = _ceremony(tmp_path, medium, client)
    with pytest.raises((StepFailedError, EngineError), match=match):
        c.perform(window_start_utc=_now(start))
    if c.current_step.state is StepState.FAILED:  # type: ignore[union-attr]
        c.retry()  # an expired window fails the step: new parameters, then retry
    with pytest.raises(EngineError, match="window_start_utc"):
        c.perform(window_start_utc="")
    with pytest.raises(EngineError, match="like 2026-01-31T12:00:00Z"):
        c.perform(window_start_utc="yesterday")
    assert _exports(medium) == []
    c.abort("test over", "admin")


def test_hostile_medium_files_are_refused(
    tmp_path: Path, medium: Path, client: KeyholderClient
) -> None:
    c = _ceremony(tmp_path, medium, client)
    key = medium / "byok" / "aws.der"
    real = medium / "elsewhere.der"
    key.rename(real)
    key.symlink_to(real)
    with pytest.raises(StepFailedError, match="wrapping key"):
        c.perform(window_start_utc=_now())
    c.retry()
    key.unlink()
    key.write_bytes(b"\x30" * (200 * 1024))  # far beyond a key file's size
    with pytest.raises(StepFailedError, match="wrapping key"):
        c.perform(window_start_utc=_now())
    c.retry()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(StepFailedError, match="refused"):
        c.perform(window_start_utc=_now())
    c.retry()
    key.unlink()
    with pytest.raises(StepFailedError, match="is not on the medium"):
        c.perform(window_start_utc=_now())
    assert _exports(medium) == []
    c.abort("test over", "admin")


def test_vault_needs_its_rsa_4096_wrapping_key(
    tmp_path: Path, medium: Path, client: KeyholderClient, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    c = _ceremony(tmp_path, medium, client, VAULT)
    (medium / "byok" / "vault.pem").write_bytes(keys["aws"].public_key().public_bytes(PEM, SPKI))
    with pytest.raises(StepFailedError, match="RSA-3072 but vault"):
        c.perform()
    c.retry()
    (medium / "byok" / "vault.pem").write_bytes(keys["vault"].public_key().public_bytes(PEM, SPKI))
    c.perform()  # no import window for Vault
    c.confirm("witness", out_of_band=c.current_step.display["fingerprint"])  # type: ignore[union-attr]
    res = c.perform()
    assert sorted(res["files"]) == [
        "vault-import.json",
        "vault-transit-import.b64",
        "vault-transit-import.json",
    ]
    c.abort("test over", "admin")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('method = "RSA_AES_KEY_WRAP_SHA_256"', "what aws accepts for a 256-bit symmetric key"),
        ('method = "RSAES_PKCS1_V1_5"', "what aws accepts"),
        ('kek_kid = "https://x.vault.azure.net/keys/k/1"', "a aws BYOK step has no 'kek_kid'"),
        ('provider_x = "y"', "provider_x"),
    ],
)
def test_script_rules_refuse_what_aws_does_not_accept(
    tmp_path: Path, change: str, message: str
) -> None:
    script = tmp_path / "s.toml"
    script.write_text(
        HEAD + AWS.replace('witness = "witness"', change + '\nwitness = "witness"') + TAIL
    )
    with pytest.raises(ScriptError, match=message):
        load_script(script)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (AWS.replace('import_token_file = "byok/token.bin"\n', ""), "missing 'import_token_file'"),
        (AWS.replace('"byok/aws.der"', '"../aws.der"'), "relative path inside the workspace"),
        (AWS.replace('provider = "aws"', 'provider = "ibm"'), "one of aws, gcp, azure, vault"),
        (VAULT.replace('key_name = "masterkey"', 'key_name = "masterkey"\nmethod = "SHA512"'),
         "SHA256, SHA1"),
        (AWS.replace('witness = "witness"', 'witness = "c1"'), "is a custodian"),
    ],
)  # fmt: skip
def test_script_rules(tmp_path: Path, body: str, message: str) -> None:
    script = tmp_path / "s.toml"
    script.write_text(HEAD + body + TAIL)
    with pytest.raises(ScriptError, match=message):
        load_script(script)


def test_byok_before_a_key_is_held_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "s.toml"
    text = HEAD.replace(
        '[[acts.steps]]\nid = "generate"', AWS.strip() + '\n\n[[acts.steps]]\nid = "generate"'
    )
    script.write_text(text + TAIL)
    with pytest.raises(ScriptError, match="byok needs a key"):
        load_script(script)
