"""The share-set manifests in the workspace's ``manifests/`` folder.

A manifest is the public description of a share set (set id, policy, which custodian holds
which share, salted commitments, fingerprint and KCV), signed by the MasterKey signing key
(:mod:`core.ceremony.records`). :class:`ManifestStore` reads them under the strict JSON
rules, through the workspace's descriptors, and answers: which sets this ceremony may use
(PRACTICE sets only in a practice ceremony), which set superseded which, which one to
collect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from core import strictjson
from core.ceremony import records, retirement
from core.ceremony.errors import StepFailedError
from core.ceremony.workspace import Workspace
from core.safeio import SafeIOError

__all__ = ["ManifestStore", "is_practice_manifest", "manifest_bytes"]


def is_practice_manifest(manifest: Mapping[str, Any]) -> bool:
    """True for a PRACTICE share-set manifest: ``"practice": true`` in it, or its file in
    ``manifests/`` (``_file``, as the engine lists them) named ``PRACTICE-...``.

    A practice ceremony uses only these; a real ceremony never does.
    """
    if manifest.get("practice") is True:
        return True
    return str(manifest.get("_file", "")).upper().startswith("PRACTICE-")


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest file's bytes (sorted keys, indented, UTF-8, final newline)."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


class ManifestStore:
    """The manifests of one workspace, as one ceremony (practice or real) sees them.

    Args:
        ws: the workspace (ceremony medium).
        practice: True in a practice ceremony (it uses only PRACTICE sets).
        purpose: the script's purpose (named in a message when only the other kind is here).
    """

    def __init__(self, ws: Workspace, *, practice: bool, purpose: str) -> None:
        self.ws = ws
        self.practice = practice
        self.purpose = purpose
        #: Files of ``manifests/`` left out at the last read, with the reason.
        self.refused: dict[str, str] = {}

    def read_all(self) -> list[dict[str, Any]]:
        """The share-set manifests in ``manifests/``, read under the strict JSON rules of
        docs/formats.md section 0 (a duplicate key, ``1.0`` or a BOM makes a file unusable:
        two readers could see two different sets) and through the workspace's descriptors
        (a link, a device or an oversized file there is no manifest of ours). Unusable files
        are left out and named, with the reason, in :attr:`refused_manifests`."""
        out = []
        self.refused = {}
        for name in self.ws.list_files("manifests", ".json"):
            try:
                m = strictjson.loads(self.ws.read(f"manifests/{name}"))
            except SafeIOError as exc:
                self.refused[name] = str(exc)
                continue
            except OSError as exc:
                self.refused[name] = f"cannot be read ({exc.strerror})"
                continue
            except strictjson.StrictJSONError as exc:
                self.refused[name] = str(exc)
                continue
            if isinstance(m, dict) and "set_id" in m:
                m["_file"] = name
                out.append(m)
        return out

    def refused_note(self) -> str:
        """The refused files and why, as a note for a message ("" when none)."""
        refused = self.refused
        if not refused:
            return ""
        return " (refused: " + "; ".join(f"{n}: {why}" for n, why in sorted(refused.items())) + ")"

    def own(self) -> list[dict[str, Any]]:
        """The manifests this ceremony may use: PRACTICE ones in a practice ceremony,
        real ones in a real ceremony (never both)."""
        return [m for m in self.read_all() if is_practice_manifest(m) == self.practice]

    def superseded_by(self, set_id: str) -> dict[str, Any] | None:
        """The manifest that superseded ``set_id``, or None.

        Only manifests of this ceremony's kind count: a practice reshare never supersedes
        a real set, nor a real one a practice set.
        """
        for m in self.own():
            if str(m.get("supersedes")) == str(set_id):
                return m
        return None

    def choices(self) -> list[dict[str, Any]]:
        """Active share sets this ceremony may collect or check, for a chooser.

        Each: ``file`` (name in ``manifests/``), ``set_id``, ``ceremony_id``, ``practice``.
        A practice ceremony lists only PRACTICE sets (``PRACTICE-set-*.json``), a real one
        only real sets; superseded sets and void ones (aborted, interrupted, retired:
        :mod:`core.ceremony.retirement`) are left out. ``perform(manifest=file)`` takes one.
        """
        return [
            {
                "file": str(m["_file"]),
                "set_id": str(m["set_id"]),
                "ceremony_id": str(m.get("ceremony_id", "?")),
                "practice": is_practice_manifest(m),
            }
            for m in self.own()
            if self.superseded_by(str(m["set_id"])) is None and not self.is_retired(m)
        ]

    def is_retired(self, manifest: Mapping[str, Any]) -> bool:
        """True when the set has a retirement record (aborted, interrupted, retired)."""
        return (
            retirement.find(self.ws, manifest.get("set_id"), is_practice_manifest(manifest))
            is not None
        )

    def check_retired(self, manifest: Mapping[str, Any]) -> None:
        """Refuse a void set, naming the ceremony that voided it and why.

        Raises:
            StepFailedError: the set was aborted, interrupted or retired.
        """
        try:
            retirement.check_not_retired(self.ws, manifest)
        except retirement.SetRetired as exc:
            raise StepFailedError(str(exc), code=exc.code, set_id=exc.set_id) from None

    def check_rotation(
        self, manifest: Mapping[str, Any], manifests: Sequence[Mapping[str, Any]]
    ) -> records.RotatedOut | None:
        """May this ceremony use ``manifest``'s set? A rotated-out set (docs/formats.md 7.1)
        is refused, naming the rotation ceremony and the new set, except by a
        ``transition`` ceremony inside its window and by ``verify-shares`` (which checks
        its shares and reports them as rotated out). Returns the rotation's facts then.

        Raises:
            StepFailedError: the set is rotated out, or its rotation records cannot be
                trusted.
        """
        try:
            if self.purpose == "verify-shares":
                return records.rotated_out(manifest, manifests)
            return records.check_usable(
                manifest, manifests, transition=self.purpose == "transition"
            )
        except records.SetRotatedOut as exc:
            raise StepFailedError(str(exc), code=exc.code, set_id=exc.set_id) from None
        except records.RotationRecordError as exc:
            raise StepFailedError(
                f"share set {manifest.get('set_id')}: the records of its rotation cannot be "
                f"trusted ({exc}); it is refused",
                code=exc.code,
            ) from None

    def transition_choices(self, manifests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The sets a ``transition`` ceremony may open: rotated out, window still open."""
        out = []
        for m in manifests:
            try:
                r = records.rotated_out(m, manifests)
            except records.RotationRecordError:
                continue
            if r is not None and r.transition_open():
                out.append(dict(m))
        if not out:
            raise StepFailedError(
                "no rotated-out share set with an open transition window is here: a transition "
                "ceremony opens only the old set of a rotation, before its transition expiry"
            )
        return out

    def rotation_refusal(self, set_id: str) -> str | None:
        """Why a share of ``set_id`` is refused when that set was rotated out, else None."""
        own = self.own()
        for m in own:
            if str(m.get("set_id")) != str(set_id):
                continue
            try:
                r = records.rotated_out(m, own)
            except records.RotationRecordError:
                return None
            if r is not None:
                return f"this share belongs to set {set_id}: {r.describe()}; it is refused"
        return None

    def wrong_kind_message(self, files: Sequence[str]) -> str:
        """Why no manifest of this ceremony's kind is here although the other kind is."""
        found = ", ".join(files)
        if self.practice:
            return (
                "only real share sets are here, and a PRACTICE ceremony never uses them; run "
                f"the practice-genesis script first to make a PRACTICE share set (found: {found})"
            )
        return (
            f"only PRACTICE share sets are here; run the practice-{self.purpose} script "
            f"to rehearse (found: {found})"
        )

    def kind_mismatch(self, uses: Sequence[str | None]) -> str:
        """Why a ceremony that collects or checks an existing share set cannot run on this
        medium at all ('' when it may): the medium holds share sets of the other kind only
        (PRACTICE sets for a real ceremony, real sets for a practice one), or a step names
        a manifest of the other kind. Asked before the ceremony's first step, so the
        mismatch is refused before anything is journaled (issue 15).

        Args:
            uses: the ``manifest`` each collect/check step names (None: the active set).
        """
        every = self.read_all()
        own = [m for m in every if is_practice_manifest(m) == self.practice]
        others = [str(m["_file"]) for m in every if is_practice_manifest(m) != self.practice]
        for name in uses:
            if name and name in others:
                return (
                    f"manifest {name} is a PRACTICE share set: a real ceremony never uses it"
                    if not self.practice
                    else f"manifest {name} is a real share set: a PRACTICE ceremony never uses it"
                )
        if any(name is None for name in uses) and others and not own:
            return self.wrong_kind_message(others)
        return ""

    def select(self, name: str | None) -> dict[str, Any]:
        """The manifest to collect or check: ``name`` (a file in ``manifests/``), else the
        one active set of this ceremony's kind. Its signature is checked (``_signed`` in
        the copy returned says whether it was signed).

        Raises:
            StepFailedError: no such manifest, the other kind, refused, superseded, more
                than one active set, or a signature that does not verify.
        """
        every = self.read_all()
        ms = [m for m in every if is_practice_manifest(m) == self.practice]
        others = [m["_file"] for m in every if is_practice_manifest(m) != self.practice]
        if name:
            chosen = [m for m in ms if m["_file"] == name]
            if not chosen:
                if name in others:
                    raise StepFailedError(
                        f"manifest {name} is a PRACTICE share set: a real ceremony never uses it"
                        if not self.practice
                        else f"manifest {name} is a real share set: a PRACTICE ceremony never "
                        "uses it"
                    )
                if name in self.refused:
                    raise StepFailedError(
                        f"manifest {name} is not a valid share-set file: "
                        f"{self.refused[name]}"
                    )
                raise StepFailedError(f"manifest {name} is not in the workspace's manifests folder")
        elif self.purpose == "transition":
            chosen = self.transition_choices(ms)
        else:
            chosen = [m for m in ms if self.superseded_by(str(m["set_id"])) is None]
            if not chosen and others:
                raise StepFailedError(self.wrong_kind_message(others))
            active = [m for m in chosen if not self.is_retired(m)]
            if len(active) == 0 and len(chosen) == 1:
                self.check_retired(chosen[0])  # the only set is void: say by whom and why
            chosen = active
            if len(chosen) != 1:
                files = ", ".join(m["_file"] for m in chosen) or "none"
                kind = "PRACTICE " if self.practice else ""
                raise StepFailedError(
                    f"expected exactly one active {kind}share-set manifest in manifests/, "
                    f"found: {files}{self.refused_note()}"
                )
        m = chosen[0]
        # an aborted, interrupted or retired set: refused, naming the ceremony and the reason
        self.check_retired(m)
        # a rotated-out set: refused naming the rotation (unseal-and-seal, reshare...),
        # opened by a transition inside its window, reported by verify-shares
        rotated = self.check_rotation(m, ms)
        newer = None if rotated is not None else self.superseded_by(str(m["set_id"]))
        if newer is not None:
            raise StepFailedError(
                f"share set {m['set_id']} was superseded by set {newer['set_id']} "
                f"(ceremony {newer.get('ceremony_id', '?')}); its shares are refused"
            )
        source = str(m["_file"])
        m = {k: v for k, v in m.items() if k != "_file"}
        try:
            m["_signed"] = records.check_manifest(m)
        except records.ManifestSignatureError as exc:
            raise StepFailedError(
                f"share-set manifest of set {m['set_id']} refused: {exc}. Use the manifest "
                "exported at genesis (kept apart from this medium)"
            ) from None
        if rotated is not None:  # after the signature check: not part of the manifest
            m["_rotated_out"] = rotated
            m["_source_file"] = source
        return m
