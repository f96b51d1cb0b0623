"""The order of a script's steps: a key is held before a step uses it, a wipe follows the
last key-holding step, a rotation's steps come in the order the rotation needs
(:mod:`core.ceremony.validate` runs these checks with the others)."""

from __future__ import annotations

from typing import Any

from core.ceremony.model import StepKind
from core.ceremony.rules import (
    _NEEDS_KEY,
    Checker,
)
from core.ceremony.source import PathItem


def _purpose(v: Checker) -> object:
    meta = v.data.get("ceremony")
    return meta.get("purpose") if isinstance(meta, dict) else None


def _order(
    v: Checker,
    seq: list[tuple[tuple[PathItem, ...], StepKind, dict[str, Any]]],
    purpose: str | None,
    practice: bool,
    policy_present: bool,
) -> None:
    have_key = False
    collected = False
    recovered_unwitnessed: tuple[PathItem, ...] | None = None
    last_key_step: int | None = None
    last_wipe: int | None = None
    kinds = [k for _p, k, _s in seq]
    for i, (path, kind, step) in enumerate(seq):
        if kind is StepKind.GENERATE:
            if purpose not in (None, "genesis", "rotate"):
                v.add((*path, "kind"), f"a {purpose} ceremony must not generate a new key")
            if purpose == "rotate":
                if not have_key:
                    v.add(
                        (*path, "kind"),
                        "a rotation generates the new key after the old one is rebuilt "
                        "(collect-shares, recover, verify-kcv)",
                    )
            elif have_key:
                v.add((*path, "kind"), "a key is already held at this point")
            have_key = True
            last_key_step = i
        elif kind is StepKind.COLLECT_SHARES:
            collected = True
        elif kind is StepKind.RECOVER:
            if not collected:
                v.add((*path, "kind"), "recover needs a collect-shares step before it")
            have_key = True
            last_key_step = i
            recovered_unwitnessed = path
        elif kind in _NEEDS_KEY:
            if not have_key:
                v.add(
                    (*path, "kind"), f"{kind.value} needs a key: put it after generate or recover"
                )
            last_key_step = i
        elif kind is StepKind.WIPE:
            last_wipe = i
            have_key = False
        if kind is StepKind.VERIFY_KCV:
            recovered_unwitnessed = None
        if kind in (StepKind.SEAL, StepKind.DISTRIBUTE_SHARES) and recovered_unwitnessed:
            v.add(
                (*path, "kind"),
                f"{kind.value} after recover needs a verify-kcv step between them: a witness "
                "compares the rebuilt key's KCV words with the genesis record (a wrong "
                "passphrase, or a manifest without fingerprint, gives another key)",
            )
            recovered_unwitnessed = None
        if kind is StepKind.DISTRIBUTE_SHARES:
            if not policy_present:
                v.add((*path, "kind"), "distribute-shares needs a [policy] table")
            if purpose == "reshare" and step.get("supersedes_collected") is not True:
                v.add(
                    (*path, "supersedes_collected"),
                    "a reshare must set supersedes_collected = true (the new set replaces the old)",
                )
        if purpose == "verify-shares":
            if kind in (StepKind.GENERATE, StepKind.DISTRIBUTE_SHARES, StepKind.SEAL):
                v.add((*path, "kind"), f"a verify-shares ceremony must not {kind.value}")
            if kind is StepKind.RECOVER and step.get("dry_run") is not True:
                v.add((*path, "dry_run"), "verify-shares may only recover as a dry run")
            if kind is StepKind.EXPORT and set(step.get("files", [])) - {"journal", "transcript"}:
                v.add(
                    (*path, "files"), "verify-shares exports nothing but the journal and transcript"
                )
        if kind is StepKind.RECOVER and step.get("dry_run") is True and purpose != "verify-shares":
            v.add((*path, "dry_run"), "dry_run recovery is only for verify-shares")
    if last_key_step is not None and (last_wipe is None or last_wipe < last_key_step):
        path = seq[last_key_step][0]
        v.add(
            path, "the key would stay in memory: add a wipe step after the last step that uses it"
        )
    if purpose == "genesis" and StepKind.GENERATE not in kinds:
        v.add(("ceremony", "purpose"), "a genesis ceremony needs a generate step")
    if purpose == "genesis" and StepKind.DISTRIBUTE_SHARES not in kinds:
        v.add(("ceremony", "purpose"), "a genesis ceremony needs a distribute-shares step")
    if purpose in ("unseal-and-seal", "reshare") and StepKind.RECOVER not in kinds:
        v.add(
            ("ceremony", "purpose"), f"a {purpose} ceremony needs collect-shares and recover steps"
        )
    if purpose == "reshare" and StepKind.DISTRIBUTE_SHARES not in kinds:
        v.add(("ceremony", "purpose"), "a reshare ceremony needs a distribute-shares step")
    _rotation_order(v, seq, purpose)


def _rotation_order(
    v: Checker, seq: list[tuple[tuple[PathItem, ...], StepKind, dict[str, Any]]], purpose: str | None
) -> None:
    """The rules of the rotate and transition purposes (docs/scripts.md, "Rotation")."""
    kinds = [k for _p, k, _s in seq]
    rotation_only = (StepKind.CONTINUITY_STATEMENT, StepKind.MARK_ROTATED_OUT)
    if purpose != "rotate":
        for path, kind, step in seq:
            if kind in rotation_only:
                v.add((*path, "kind"), f"{kind.value} is a step of a rotate ceremony only")
            if kind in (StepKind.SEAL, StepKind.VERIFY_KCV) and "key" in step:
                if not (
                    purpose == "transition" and kind is StepKind.SEAL and step.get("key") == "old"
                ):
                    v.add(
                        (*path, "key"), "'key' names a key of a rotation: only in a rotate ceremony"
                    )
        if purpose == "transition":
            if StepKind.RECOVER not in kinds:
                v.add(
                    ("ceremony", "purpose"),
                    "a transition ceremony needs collect-shares and recover steps",
                )
            for path, kind, step in seq:
                if kind in (StepKind.GENERATE, StepKind.DISTRIBUTE_SHARES):
                    v.add((*path, "kind"), f"a transition ceremony must not {kind.value}")
                if kind is StepKind.SEAL and step.get("key") != "old":
                    v.add(
                        (*path, "key"),
                        'a transition ceremony seals only the old key: key = "old" (its window '
                        "comes from the rotated-out manifest, not from the script)",
                    )
                if kind is StepKind.SEAL and "transition_days" in step:
                    v.add(
                        (*path, "transition_days"),
                        "a transition ceremony cannot set the window: it is the rotation's",
                    )
        return
    where = ("ceremony", "purpose")
    needed = (
        StepKind.COLLECT_SHARES,
        StepKind.RECOVER,
        StepKind.GENERATE,
        StepKind.DISTRIBUTE_SHARES,
        StepKind.SEAL,
        StepKind.CONTINUITY_STATEMENT,
        StepKind.EXPORT,
        StepKind.MARK_ROTATED_OUT,
        StepKind.WIPE,
    )
    for k in needed:
        if k not in kinds:
            v.add(where, f"a rotate ceremony needs a {k.value} step")
    if any(k not in kinds for k in needed):
        return
    first = {k: kinds.index(k) for k in needed}
    gen = first[StepKind.GENERATE]
    old_kcv = [
        i
        for i, (_p, k, s) in enumerate(seq)
        if k is StepKind.VERIFY_KCV and s.get("key", "old") == "old"
    ]
    new_kcv = [
        i for i, (_p, k, s) in enumerate(seq) if k is StepKind.VERIFY_KCV and s.get("key") == "new"
    ]
    if not any(first[StepKind.RECOVER] < i < gen for i in old_kcv):
        v.add(
            seq[gen][0],
            "a rotation checks the old key's KCV (verify-kcv) before it generates the new one",
        )
    if not any(gen < i < first[StepKind.DISTRIBUTE_SHARES] for i in new_kcv):
        v.add(
            seq[first[StepKind.DISTRIBUTE_SHARES]][0],
            'the witness reads the new KCV aloud (verify-kcv with key = "new") before the new '
            "key is split",
        )
    for path, kind, step in seq:
        if kind is StepKind.DISTRIBUTE_SHARES and step.get("supersedes_collected") is not True:
            v.add(
                (*path, "supersedes_collected"),
                "a rotation must set supersedes_collected = true (the new set replaces the old)",
            )
    seals = [(i, s) for i, (_p, k, s) in enumerate(seq) if k is StepKind.SEAL]
    if not any(s.get("key", "new") == "new" for _i, s in seals):
        v.add(where, 'a rotate ceremony seals the new key (a seal step without key = "old")')
    for i, _s in seals:
        if i < gen:
            v.add((*seq[i][0], "kind"), "in a rotation, seal after the new key is generated")
    stmt, export, mark, wipe = (
        first[StepKind.CONTINUITY_STATEMENT],
        first[StepKind.EXPORT],
        first[StepKind.MARK_ROTATED_OUT],
        max(i for i, k in enumerate(kinds) if k is StepKind.WIPE),
    )
    if any(i > stmt for i, _s in seals):
        v.add(
            seq[stmt][0],
            "the continuity statement comes after every seal step (it fixes the transition window)",
        )
    if stmt < first[StepKind.DISTRIBUTE_SHARES]:
        v.add(
            seq[stmt][0],
            "the continuity statement names the new share set: put it after distribute-shares",
        )
    if not stmt < export < mark < wipe:
        v.add(
            seq[mark][0],
            "a rotation writes the statement, then the export, then marks the old set rotated "
            "out, then wipes both keys (in that order)",
        )
