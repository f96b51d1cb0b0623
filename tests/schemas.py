"""Validate a file against docs/schemas (JSON Schema 2020-12), after the strict JSON rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from core import strictjson

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def _registry() -> Registry:
    reg: Registry = Registry()
    for p in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(p.read_text())
        reg = reg.with_resource(doc["$id"], Resource.from_contents(doc))
    return reg


REGISTRY = _registry()


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(schema, registry=REGISTRY)


def valid(name: str, data: bytes) -> None:
    """Strict JSON rules first, then the schema; fails with every schema error."""
    doc = strictjson.loads(data)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(doc)]
    assert not errors, f"{name}: " + "; ".join(errors)


def invalid(name: str, doc: Any) -> None:
    """The schema refuses ``doc`` (shows that a schema can fail)."""
    assert not validator(name).is_valid(doc), f"{name} accepted a broken file"
