"""Refusal codes follow the docs (issue 18, item 4).

docs/scripts.md "Refusal codes" lists every code a refused share or a carrier failure can
carry at collection and check. This test demands that table be exactly the registry's
(``core.codes``) ``share`` and ``carrier`` families, less the few of them that fail a step
rather than refuse a share, and that every code the refusing sources raise (every carrier
error class; the literal codes of the recovery, the SLIP-39 combine, the keyholder's share
intake and the engine) is in it: a new code without documentation, or a documented code
nothing knows, fails here. The codes themselves are checked end to end in test_engine_real
(other-set for a superseded share, duplicate, checksum), test_rehearsals (other-set
through any port) and the carrier tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from core.carriers import errors as carrier_errors

ROOT = Path(__file__).resolve().parents[2]
#: Codes of the share family that are not a refusal at collection or check: a recovery
#: started with too few shares, shares that combine to a wrong digest (the recover step
#: fails), a witness's KCV that differs (verify-kcv), a share typed back at distribution
#: that is another custodian's. Documented with their steps.
NOT_REFUSALS = {"insufficient", "digest", "kcv-mismatch", "check-wrong-share"}
#: Where share refusals are raised with literal codes.
SOURCES = [
    "core/shamir/recovery.py",
    "core/shamir/slip39.py",
    "core/keyholder/ops_shares.py",
    "core/keyholder/ops_carriers.py",
    "core/ceremony/adapters/keyholder.py",
    "core/ceremony/steps/collection.py",
]


def documented() -> set[str]:
    text = (ROOT / "docs" / "scripts.md").read_text("utf-8")
    section = text.split("### Refusal codes", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    codes: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            codes |= set(re.findall(r"`([a-z0-9-]+)`", first))
    return codes


def raised() -> set[str]:
    """Codes of every carrier error class, and every literal ``code=...`` (or third
    argument of ``RecoveryState._reject``) in the sources that refuse shares."""
    codes: set[str] = set()
    stack = [carrier_errors.CarrierError]
    while stack:
        cls = stack.pop()
        codes.add(cls.code)
        stack += cls.__subclasses__()
    for rel in SOURCES:
        for node in ast.walk(ast.parse((ROOT / rel).read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "code" and isinstance(kw.value, ast.Constant):
                    codes.add(str(kw.value.value))
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name == "_reject" and len(node.args) == 3 and isinstance(node.args[2], ast.Constant):
                codes.add(str(node.args[2].value))
    return codes - NOT_REFUSALS


def registry() -> set[str]:
    """The registry's share and carrier codes that a refusal at collection can carry."""
    from core.codes import CODES, Family

    return {
        c.code for c in CODES.values() if c.family in (Family.SHARE, Family.CARRIER)
    } - NOT_REFUSALS


def test_docs_list_every_refusal_code_and_only_those() -> None:
    docs, known, code = documented(), registry(), raised()
    assert docs, "docs/scripts.md has no Refusal codes table"
    assert known - docs == set(), f"in the registry but not documented: {sorted(known - docs)}"
    assert docs - known == set(), f"documented but not in the registry: {sorted(docs - known)}"
    assert code - docs == set(), f"raised but not documented: {sorted(code - docs)}"


def test_recovery_codes_are_found_in_the_source() -> None:
    """The scan above is not empty by accident: the recovery's own codes are in it."""
    src = (ROOT / "core/shamir/recovery.py").read_text("utf-8")
    for code in ("other-set", "extendable-mix", "mismatch", "duplicate", "conflict", "commitment"):
        assert f'"{code}"' in src
    assert {"other-set", "duplicate", "conflict", "checksum", "card-pin-locked"} <= raised()
