"""MasterKey rotation in the ceremony engine (issue 19; docs/formats.md sections 1.9, 7.1, 10).

A ``rotate`` ceremony (``ceremony_scripts/rotate.toml``, ``practice-rotate.toml``) runs the
ordinary steps with a few rotation meanings:

1. attendance, preflight, the recipient's fingerprint;
2. ``collect-shares`` + ``recover`` + ``verify-kcv``: the OLD key rebuilt from a quorum of
   the old set and checked against the old manifest;
3. ``generate``: :func:`generate_new` enters the rotation in the keyholder
   (``rotation_begin``: the recovered key becomes the old one, a second locked slot opens)
   and draws the NEW key into that slot; neither key is ever overwritten;
4. ``verify-kcv`` with ``key = "new"``: the witness reads the new KCV aloud;
5. ``distribute-shares`` (``supersedes_collected``): the new key split under the script's
   policy (groups allowed), genesis self-test, every carrier;
6. ``seal``: the new key for its recipients;
7. ``seal`` with ``key = "old"`` and ``transition_days``: :func:`seal_transitional`, the old
   key to online recipients only, as transitional envelopes with an expiry (1.9);
8. ``continuity-statement``: :func:`write_statement` (made and signed by both keys in the
   keyholder, checked here as any reader checks it);
9. ``export``: envelopes of both keys, both seal manifests, the new manifest, the statement;
10. ``mark-rotated-out``: :func:`mark_old_set`, the old set's manifest rewritten as version 2
    and signed by the old key, in ``manifests/`` and on the export medium;
11. ``wipe``: both keys (the keyholder ends the rotation); only the new key's signing key
    stays to sign the closed journal.

Throughout, the keyholder port names the key of every use (``ClientKeyholder.key``: "new"
by default once the rotation began, "old" inside :func:`using`).

A ``transition`` ceremony opens a rotated-out set only while its window is open
(:func:`check_selected`), says so in its journal, and seals the old key only as a
transitional envelope whose window and successor come from the signed rotated-out mark.
``unseal-and-seal`` (every other purpose) refuses a rotated-out set, naming the rotation
ceremony and the new set; ``verify-shares`` checks its shares and reports them as shares
of a rotated-out set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core import continuity
from core.ceremony import records
from core.ceremony.errors import StepFailedError
from core.ceremony.facts import public_facts as _public_facts
from core.ceremony.facts import raw_signature as _raw
from core.ceremony.facts import sha256_hex as _sha256
from core.ceremony.state import StepRun
from core.ceremony.steps.base import CeremonyBase as Ceremony
from core.words import to_words

__all__ = [
    "RotationRun",
    "expected_fingerprint",
    "export_files",
    "generate_new",
    "mark_old_set",
    "rotated_out_verdict",
    "seal_in_transition",
    "seal_transitional",
    "using",
    "write_statement",
]

STATEMENT_FILE = "rotation-statement.json"
TRANSITIONAL_PREFIX = "transitional-"


@dataclass
class RotationRun:
    """Public facts of a rotation in progress (never a secret)."""

    old_manifest: dict[str, Any]
    old_set_id: str
    old_fingerprint: str
    old_facts: dict[str, Any]
    new_facts: dict[str, Any]
    transition_expires_utc: str | None = None
    #: recipient id -> (file name, envelope bytes) of the old key's transitional envelopes
    transitional: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    transitional_manifest: bytes | None = None
    statement: bytes | None = None
    statement_sha256: str = ""
    marked: dict[str, Any] | None = None

    @property
    def new_fingerprint(self) -> str:
        return str(self.new_facts.get("fingerprint", ""))


@contextlib.contextmanager
def using(port: Any, key: str) -> Iterator[None]:
    """Name ``key`` ("old"/"new") in every keyholder call inside the block."""
    before = getattr(port, "key", None)
    port.key = key
    try:
        yield
    finally:
        port.key = before


def _prefix(c: Ceremony) -> str:
    return "PRACTICE-" if c.practice else ""


def _require(c: Ceremony) -> RotationRun:
    rot: RotationRun | None = c.rotation
    if rot is None:
        raise StepFailedError("no rotation is in progress: the new key has not been generated")
    return rot


def generate_new(c: Ceremony, run: StepRun) -> dict[str, Any]:
    """``generate`` in a rotate ceremony: enter the rotation, draw the new key."""
    if c.rotation is not None:
        return dict(run.results)  # retry: the new key exists
    port: Any = c.keyholder
    if not callable(getattr(port, "rotation_begin", None)):
        raise StepFailedError("this keyholder cannot rotate a MasterKey (no second key slot)")
    if c.key_facts is None or c.manifest is None or c.collected_set is None:
        raise StepFailedError("rebuild the old key from its share set first")
    c._require_verified_key("rotate the key")
    old_manifest = {k: v for k, v in c.manifest.items() if not k.startswith("_")}
    slip = (old_manifest.get("policy") or {}).get("slip39")
    if not isinstance(slip, dict):
        raise StepFailedError(
            f"the manifest of set {c.collected_set} has no SLIP-39 policy: it cannot be rotated"
        )
    # a retry after a failed generate: the keyholder is already in the rotation
    begin = c.rotation_begun
    if begin is None:
        begin = dict(port.rotation_begin(int(c.collected_set), slip))
        c.rotation_begun = begin
    port.key = "new"
    new = _public_facts(port.generate_master())
    old = _public_facts(dict(begin.get("old") or {}))
    c.rotation = RotationRun(
        old_manifest=old_manifest,
        old_set_id=str(c.collected_set),
        old_fingerprint=str(old_manifest.get("fingerprint", "")),
        old_facts=old,
        new_facts=new,
    )
    c.key_facts = new
    c.key_verified = True
    c._signing_key_known()  # the new key signs this ceremony's records from now on
    run.display = {"old": old, "new": new}
    return c._result(
        run,
        {
            **new,
            "rotation": True,
            "old_set_id": c.rotation.old_set_id,
            "old_fingerprint": c.rotation.old_fingerprint,
            "old_kcv": old.get("kcv", ""),
        },
    )


def expected_fingerprint(c: Ceremony, run: StepRun) -> str | None:
    """What ``verify-kcv`` compares with: the new key's (``key = "new"``) or the old one's."""
    if run.step.params.get("key") == "new":
        return _require(c).new_fingerprint
    if c.rotation is not None:
        return _require(c).old_fingerprint
    return c._expected_fingerprint()


def key_for(run: StepRun) -> str | None:
    """The key a step names in a rotation ("old"/"new"), if any."""
    key = run.step.params.get("key")
    return str(key) if key in ("old", "new") else None


def _utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def seal_transitional(c: Ceremony, run: StepRun) -> dict[str, Any]:
    """``seal`` with ``key = "old"``: the old key as transitional envelopes (1.9) to the
    step's online recipients, and their own seal manifest signed by the old key."""
    rot = _require(c)
    if rot.transition_expires_utc is None:
        days = int(run.step.params["transition_days"])
        rot.transition_expires_utc = _utc(datetime.now(UTC) + timedelta(days=days))
    prefix = _prefix(c)
    port: Any = c.keyholder
    for rid in run.step.params["recipients"]:
        if rid in rot.transitional:
            continue  # retry: already sealed
        if rid not in c.confirmed_recipients:
            raise StepFailedError(
                f"recipient {rid}'s fingerprint has not been confirmed by a witness in this ceremony"
            )
        facts, handle = c.recipients.load(rid)
        header = {
            "cluster_id": c.script.cluster_id,
            "region_id": c.script.region_id,
            "kind": "masterkey",
            "ceremony_id": c.ceremony_id,
            "masterkey_fingerprint": rot.old_fingerprint,
            "recipient": rid,
            "practice": c.practice,
            "confirmation": dict(c.confirmed_recipients[rid]),
            "transition_expires_utc": rot.transition_expires_utc,
        }
        with using(port, "old"):
            data = bytes(port.seal(handle, header))
        spec = c.script.recipients[rid]
        base = spec.file[len(prefix) :] if prefix and spec.file.startswith(prefix) else spec.file
        name = f"{prefix}{TRANSITIONAL_PREFIX}{base}"
        rot.transitional[rid] = (name, data)
        c._record(
            "step.result",
            {
                "recipient": rid,
                "recipient_fingerprint": facts.get("fingerprint", ""),
                "file": name,
                "sha256": _sha256(data),
                "size": len(data),
                "key": "old",
                "masterkey_fingerprint": rot.old_fingerprint,
                "transitional": True,
                "transition_expires_utc": rot.transition_expires_utc,
                "successor_fingerprint": rot.new_fingerprint,
            },
            run=run,
        )
    if rot.transitional_manifest is None and records.can_sign(port):
        from core.seal import envelope as _envelope

        with using(port, "old"):
            rot.transitional_manifest = _envelope.seal_manifest(
                dict(rot.transitional.values()),
                ceremony_id=c.ceremony_id,
                signer=lambda purpose, msg: _raw(records.sign_block(port, purpose, msg)),
            )
        c._record(
            "step.result",
            {
                "seal_manifest": f"{prefix}{TRANSITIONAL_PREFIX}seal-manifest.json",
                "sha256": _sha256(rot.transitional_manifest),
                "signed_by": rot.old_fingerprint,
            },
            run=run,
        )
    run.performed = True
    run.display = {"transition_expires_utc": rot.transition_expires_utc, "key": "old"}
    return {
        rid: {"file": n, "sha256": _sha256(d), "transition_expires_utc": rot.transition_expires_utc}
        for rid, (n, d) in rot.transitional.items()
    }


def write_statement(c: Ceremony, run: StepRun) -> dict[str, Any]:
    """``continuity-statement``: made and signed by both keys in the keyholder, verified
    here against the old manifest's and the new key's fingerprints, kept in the
    ceremony's folder."""
    rot = _require(c)
    if rot.statement is not None:
        return dict(run.results)
    if c.manifest is None or str(c.manifest.get("fingerprint")) != rot.new_fingerprint:
        raise StepFailedError("split the new key first: the statement names its share set")
    port: Any = c.keyholder
    out = port.rotation_statement(
        ceremony_id=c.ceremony_id,
        cluster_id=c.script.cluster_id,
        region_id=c.script.region_id,
        transition_expires_utc=rot.transition_expires_utc,
    )
    data = bytes(out["statement"])
    try:
        st = continuity.verify(
            data, old_fingerprint=rot.old_fingerprint, new_fingerprint=rot.new_fingerprint
        )
    except continuity.StatementError as exc:
        raise StepFailedError(f"the continuity statement does not verify: {exc}") from None
    if str(st.old.set_id) != rot.old_set_id or str(st.new.set_id) != str(c.manifest["set_id"]):
        raise StepFailedError(
            "the continuity statement names other share sets than this ceremony's"
        )
    rot.statement = data
    rot.statement_sha256 = hashlib.sha256(data).hexdigest()
    name = f"{_prefix(c)}{STATEMENT_FILE}"
    c.ws.write_new(f"ceremonies/{c.ceremony_id}", name, data)
    words = to_words(bytes.fromhex(rot.statement_sha256)[:8])
    run.display = {
        "sha256": rot.statement_sha256,
        "words": words,
        "old_kcv": st.old.kcv_grouped,
        "new_kcv": st.new.kcv_grouped,
        "transition_expires_utc": st.transition_expires_utc,
    }
    return c._result(
        run,
        {
            "file": name,
            "sha256": rot.statement_sha256,
            "sha256_words": words,
            "old": {
                "fingerprint": st.old.fingerprint,
                "set_id": st.old.set_id,
                "policy": st.old.policy,
            },
            "new": {
                "fingerprint": st.new.fingerprint,
                "set_id": st.new.set_id,
                "policy": st.new.policy,
            },
            "transition_expires_utc": st.transition_expires_utc,
        },
    )


def export_files(c: Ceremony, contents: Sequence[str]) -> dict[str, bytes]:
    """What a rotation adds to an ``export`` step: the transitional envelopes and their
    seal manifest (with ``envelopes``), the statement (``statement``)."""
    rot = c.rotation
    if rot is None:
        if "statement" in contents:
            raise StepFailedError("there is no continuity statement to export (not a rotation)")
        return {}
    prefix = _prefix(c)
    files: dict[str, bytes] = {}
    if "envelopes" in contents:
        files.update(dict(rot.transitional.values()))
        if rot.transitional_manifest is not None:
            files[f"{prefix}{TRANSITIONAL_PREFIX}seal-manifest.json"] = rot.transitional_manifest
    if "statement" in contents:
        if rot.statement is None:
            raise StepFailedError("the continuity statement has not been written yet")
        files[f"{prefix}{STATEMENT_FILE}"] = rot.statement
    return files


def _old_manifest_file(c: Ceremony, rot: RotationRun) -> str:
    for m in c.manifest_store.own():
        if str(m.get("set_id")) == rot.old_set_id and m.get("fingerprint") == rot.old_fingerprint:
            return str(m["_file"])
    raise StepFailedError(f"the manifest of set {rot.old_set_id} is no longer in manifests/")


def mark_old_set(c: Ceremony, run: StepRun) -> dict[str, Any]:
    """``mark-rotated-out``: the old set's manifest as version 2, signed by the old key,
    replaces it in ``manifests/`` and goes to the export medium."""
    rot = _require(c)
    if rot.marked is not None:
        return dict(run.results)
    if rot.statement is None:
        raise StepFailedError("write the continuity statement first: the mark is made from it")
    port: Any = c.keyholder
    with using(port, "old"):
        try:
            marked = records.mark_rotated_out(port.sign, rot.old_manifest, rot.statement)
        except records.RotationRecordError as exc:
            raise StepFailedError(str(exc)) from None
    data = (json.dumps(marked, indent=2, sort_keys=True) + "\n").encode("ascii")
    name = _old_manifest_file(c, rot)
    c.ws.replace("manifests", name, data)
    rot.marked = marked
    folder = str(run.step.params.get("folder", "rotate-export")) + "-rotated-out"
    if c.practice and not folder.startswith("PRACTICE-"):
        folder = "PRACTICE-" + folder
    exported = {f"{_prefix(c)}manifest-set-{rot.old_set_id}.json": data}
    written = c.exporter.write(folder, exported, ceremony_id=c.ceremony_id)
    c.written[folder] = written
    run.display = {
        "set_id": rot.old_set_id,
        "new_set_id": str(marked["rotated_out"]["new_set_id"]),
        "transition_expires_utc": marked["rotated_out"]["transition_expires_utc"],
    }
    return c._result(
        run,
        {
            "set_id": rot.old_set_id,
            "manifest_file": f"manifests/{name}",
            "manifest_sha256": _sha256(data),
            "rotated_out": marked["rotated_out"],
            "folder": folder,
            "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in written},
        },
    )


def seal_in_transition(c: Ceremony, run: StepRun) -> dict[str, Any]:
    """``seal`` with ``key = "old"`` in a ``transition`` ceremony: the keyholder checks the
    rotated-out mark itself (signed by the very key it holds) and seals only transitional
    envelopes with the mark's expiry and successor."""
    r = c.rotated_out
    if r is None or not c.rotated_out_file:
        raise StepFailedError("no rotated-out set was opened by this transition ceremony")
    port: Any = c.keyholder
    if not c.transition_opened:
        manifest = c.ws.read(f"manifests/{c.rotated_out_file}")
        opened = port.transition_begin(manifest)
        c.transition_opened = dict(opened.get("transition") or {})
        c._record("transition.keyholder", {"opened": c.transition_opened}, run=run)
    expires = str(c.transition_opened["expires_utc"])
    prefix = _prefix(c)
    for rid in run.step.params["recipients"]:
        if rid in c.envelopes:
            continue
        if rid not in c.confirmed_recipients:
            raise StepFailedError(
                f"recipient {rid}'s fingerprint has not been confirmed by a witness in this ceremony"
            )
        facts, handle = c.recipients.load(rid)
        header = {
            "cluster_id": c.script.cluster_id,
            "region_id": c.script.region_id,
            "kind": "masterkey",
            "ceremony_id": c.ceremony_id,
            "recipient": rid,
            "practice": c.practice,
            "confirmation": dict(c.confirmed_recipients[rid]),
            "transition_expires_utc": expires,
        }
        data = bytes(port.seal(handle, header))
        spec = c.script.recipients[rid]
        base = spec.file[len(prefix) :] if prefix and spec.file.startswith(prefix) else spec.file
        name = f"{prefix}{TRANSITIONAL_PREFIX}{base}"
        c.envelopes[rid] = (name, data)
        c._record(
            "step.result",
            {
                "recipient": rid,
                "recipient_fingerprint": facts.get("fingerprint", ""),
                "file": name,
                "sha256": _sha256(data),
                "size": len(data),
                "transitional": True,
                "transition_expires_utc": expires,
                "successor_fingerprint": c.transition_opened["successor_fingerprint"],
                "note": f"TRANSITION: the rotated-out key of set {r.set_id} sealed for the online "
                f"re-wrap only; the envelope expires at {expires}",
            },
            run=run,
        )
    if records.can_sign(port) and c.seal_manifest is None:
        from core.seal import envelope as _envelope

        c.seal_manifest = _envelope.seal_manifest(
            dict(c.envelopes.values()),
            ceremony_id=c.ceremony_id,
            signer=lambda purpose, msg: _raw(records.sign_block(port, purpose, msg)),
        )
    run.performed = True
    run.display = {"transition_expires_utc": expires, "set_id": r.set_id}
    return {rid: {"file": n, "sha256": _sha256(d), "transition_expires_utc": expires}
            for rid, (n, d) in c.envelopes.items()}  # fmt: skip


def rotated_out_verdict(r: records.RotatedOut) -> dict[str, Any]:
    """What ``verify-shares`` says of a share that matches a rotated-out set."""
    window = (
        f" Until {r.transition_expires_utc} a transition ceremony may still open the set for "
        "the online re-wrap; after that the share opens nothing."
        if r.transition_open()
        else " It opens nothing any more: keep it sealed until it is destroyed in front of a "
        "witness."
    )
    return {
        "rotated_out": True,
        "message": f"matches the manifest, but {r.describe()}.{window}",
        "new_set_id": r.new_set_id,
    }


