"""KeyholderDouble: a TEST DOUBLE of the engine's Keyholder port (engine-logic tests only).

It is NOT a keyholder: it keeps its toy "key" in ordinary Python memory and its "shares"
are dicts that carry the key in clear, so the engine's sequencing (acks, exceptions, abort,
retry, reshare/supersede, practice marking) can be tested before the real share and seal
operations exist. Real-keyholder tests live next to the keyholder and in the secret-search
test (see the lead's notes). Nothing here may be used outside tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.ceremony.engine import ShareRefusedError


def _fp(key: bytes) -> dict[str, Any]:
    h = hashlib.sha256(b"double-fp" + key).hexdigest()
    return {"fingerprint": h, "kcv": f"{h[:4]} {h[4:8]} {h[8:12]} {h[12:16]}"}


class KeyholderDouble:
    """Test double of :class:`core.ceremony.engine.Keyholder` (see module docstring)."""

    def __init__(self) -> None:
        self.key: bytes | None = None
        self.issued: dict[str, list[dict[str, Any]]] = {}  # set id -> share tokens
        self.shown: list[tuple[int, str]] = []
        self.expect_set: str | None = None
        self.threshold = 0
        self.entered: list[dict[str, Any]] = []
        self.wipes = 0
        self.fail_next: dict[str, Exception] = {}
        self.calls: list[str] = []
        self.typed_entry: dict[str, Any] | None = None

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        exc = self.fail_next.pop(name, None)
        if exc is not None:
            raise exc

    def generate_master(self) -> dict[str, Any]:
        self._maybe_fail("generate_master")
        if self.key is not None:
            raise RuntimeError("a MasterKey is already held")
        self.key = os.urandom(32)
        return {"origin": "generated", **_fp(self.key)}

    def fingerprint(self) -> dict[str, Any]:
        self._maybe_fail("fingerprint")
        if self.key is None:
            raise RuntimeError("no MasterKey is held")
        return _fp(self.key)

    def genesis_split(self, policy: Mapping[str, Any], *, supersedes: str | None) -> dict[str, Any]:
        self._maybe_fail("genesis_split")
        assert self.key is not None
        set_id = str(int.from_bytes(os.urandom(2), "big") & 0x7FFF)
        tokens = [
            {"set_id": set_id, "member": i, "key": self.key.hex(), "threshold": policy["threshold"]}
            for i in range(policy["shares"])
        ]
        self.issued[set_id] = tokens
        commitments = [
            hashlib.sha256(json.dumps(t, sort_keys=True).encode()).hexdigest() for t in tokens
        ]
        return {
            "set_id": set_id,
            "policy": {k: policy[k] for k in ("threshold", "shares", "custodians")},
            "holders": [
                {"group": 1, "member": i + 1, "custodian": c}
                for i, c in enumerate(policy["custodians"])
            ],
            "commitments": commitments,
            "supersedes": supersedes,
            **_fp(self.key),
        }

    def show_share(self, member: int, display: str) -> dict[str, Any]:
        self._maybe_fail("show_share")
        self.shown.append((member, display))
        return {"member": member}

    def begin_recovery(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self._maybe_fail("begin_recovery")
        self.expect_set = str(manifest["set_id"])
        self.threshold = int(manifest["policy"]["threshold"])
        self.entered = []
        return {"set_id": self.expect_set}

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        self._maybe_fail("add_share")
        tok = dict(payload)
        if tok["set_id"] != self.expect_set:
            raise ShareRefusedError(
                f"this share belongs to set {tok['set_id']}, this ceremony expects set "
                f"{self.expect_set}",
                set_id=tok["set_id"],
            )
        if any(t["member"] == tok["member"] for t in self.entered):
            raise ShareRefusedError(f"share {tok['member'] + 1} was already entered")
        self.entered.append(tok)
        remaining = max(0, self.threshold - len(self.entered))
        return {
            "set_id": tok["set_id"],
            "index": tok["member"] + 1,
            "remaining": remaining,
            "complete": remaining == 0,
        }

    def check_share(
        self, manifest: Mapping[str, Any], carrier: str, payload: Any
    ) -> dict[str, Any]:
        self._maybe_fail("check_share")
        tok = dict(payload)
        c = hashlib.sha256(json.dumps(tok, sort_keys=True).encode()).hexdigest()
        ok = tok["set_id"] == str(manifest["set_id"]) and c in manifest["commitments"]
        return {"ok": ok, "index": tok["member"] + 1, "message": "matches" if ok else "no match"}

    def type_back(self, token: Mapping[str, Any]) -> None:
        """The custodian types a share back into the (double's) entry."""
        self.typed_entry = dict(token)

    def verify_entry(self, commitments: Any) -> dict[str, Any]:
        """The finished typed entry against the manifest's commitments (entry wiped)."""
        self._maybe_fail("verify_entry")
        tok, self.typed_entry = self.typed_entry, None
        if tok is None:
            raise ShareRefusedError("no share has been typed in", code="refused")
        c = hashlib.sha256(json.dumps(tok, sort_keys=True).encode()).hexdigest()
        return {
            "matches": c in list(commitments),
            "set_id": tok["set_id"],
            "group": 1,
            "member": tok["member"] + 1,
        }

    def recover(self) -> dict[str, Any]:
        self._maybe_fail("recover")
        if len(self.entered) < self.threshold:
            raise RuntimeError(f"{self.threshold - len(self.entered)} more shares needed")
        self.key = bytes.fromhex(self.entered[0]["key"])
        return _fp(self.key)

    def seal(self, recipient: Any, header: Mapping[str, Any]) -> bytes:
        self._maybe_fail("seal")
        assert self.key is not None
        ct = hashlib.sha256(b"double-seal" + self.key).hexdigest()
        return json.dumps({"double": True, "header": dict(header), "ct": ct}).encode()

    def wipe(self) -> None:
        self.calls.append("wipe")
        self.key = None
        self.entered = []
        self.wipes += 1


if TYPE_CHECKING:
    from core.ceremony.ports import EntryKeyholder, Keyholder

    def _conforms(double: KeyholderDouble) -> tuple[Keyholder, EntryKeyholder]:
        """mypy: the double satisfies the engine's ports, as the real adapter does."""
        return double, double
