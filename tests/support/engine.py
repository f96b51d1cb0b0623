"""Driving the ceremony engine in tests: the shipped scripts, a passing preflight, the
recipient keys of a workspace, and helpers that do what each step needs."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core import journal as jr
from core.ceremony.engine import Ceremony, Keyholder
from core.ceremony.model import StepKind
from core.journal.files import _events_from_path
from tests.support.keyholder_double import KeyholderDouble

__all__ = [
    "ROOT",
    "SCRIPTS",
    "drive",
    "events",
    "genesis",
    "make_workspace",
    "ok_preflight",
    "practice_pem",
    "rsa_pem",
    "start",
    "step_once",
    "step_once_acks",
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "ceremony_scripts"


@functools.cache
def rsa_pem() -> bytes:
    """A throwaway RSA-3072 public key (the KMS recipient of the shipped scripts)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@functools.cache
def practice_pem() -> bytes:
    """The throwaway PRACTICE recipient (practice scripts never seal to the real KMS key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_workspace(ws: Path, kms_pem: bytes) -> Path:
    """A ceremony medium with the recipients' public keys the shipped scripts name."""
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(kms_pem)
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    return ws


def ok_preflight() -> dict[str, Any]:
    """A preflight port that passes."""
    return {"ok": True, "failed": [], "checks": {"network-interfaces": "PASS"}}


def start(script: str | Path, ws: Path, kh: Keyholder, **kw: Any) -> Ceremony:
    """Load a shipped script (by name) or a script file into a new ceremony."""
    path = script if isinstance(script, Path) else SCRIPTS / f"{script}.toml"
    kw.setdefault("preflight", ok_preflight)
    return Ceremony.load(path, ws, kh, **kw)


def step_once(c: Ceremony, shares: Iterable[Any] = ()) -> None:
    """Do whatever the current step needs, acknowledge it and complete it."""
    run = c.current_step
    assert run is not None
    k = run.kind
    if k is StepKind.ATTENDANCE:
        c.perform(present=list(c.script.roles))
    elif k is StepKind.CHECKLIST:
        c.perform(checked=list(range(len(run.step.params["items"]))))
    elif k in (StepKind.VERIFY_FINGERPRINT, StepKind.VERIFY_KCV):
        c.perform()
        c.confirm(run.step.params["witness"])
    elif k is StepKind.DISTRIBUTE_SHARES:
        c.perform()
        assert c.script.policy is not None
        for cu in c.script.policy.custodians:
            c.show_share(cu)
            c.acknowledge(cu)
    elif k in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES):
        c.perform()
        for s in shares:
            c.add_share("typed", s)
    elif k not in (StepKind.INSTRUCTION, StepKind.SUMMARY):
        c.perform()
    step_once_acks(c)


def step_once_acks(c: Ceremony) -> None:
    """Every required role acknowledges the current step, which is then completed."""
    run = c.current_step
    assert run is not None
    for r in run.required_roles:
        if r not in run.acks:
            c.acknowledge(r)
    c.complete_step()


def drive(c: Ceremony, shares: Iterable[Any] = (), until: str | None = None) -> None:
    """Run the ceremony step by step (``shares`` for collect/check steps) up to the step
    ``until`` (``act.step``), or to its end."""
    shares = list(shares)
    while (run := c.current_step) is not None:
        if until and f"{run.act_id}.{run.step_id}" == until:
            return
        step_once(c, shares if run.kind in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES) else ())


def events(c: Ceremony) -> list[jr.Event]:
    """The ceremony's journal events (the chain is verified first)."""
    res = jr.verify(c.journal.path)
    assert res.ok, res.message
    return _events_from_path(c.journal.path)


def genesis(ws: Path, script: str | Path = "genesis") -> tuple[Ceremony, KeyholderDouble]:
    """A whole genesis over the keyholder double."""
    kh = KeyholderDouble()
    c = start(script, ws, kh)
    drive(c)
    return c, kh
