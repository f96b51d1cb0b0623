"""Validation of ceremony scripts: every problem, with file and line (docs/scripts.md).

:func:`validate` takes the parsed TOML and its :class:`~core.ceremony.script.SourceMap` and
returns a list of :class:`~core.ceremony.model.Problem`; it never stops at the first one.
Besides types and required keys it checks the ceremony's logic: roles that steps refer to
exist, the policy is a valid SLIP-39 policy (threshold not larger than shares, at most 16
members and groups), key-holding steps come after a key is generated or recovered, a wipe
follows the last key-holding step, export and envelope file names are safe on any file
system, purpose-specific rules (reshare supersedes the collected set, verify-shares
exports nothing), and PRACTICE marks (a practice script, of any purpose, names only practice
clusters, keys, manifests and files; a real script none).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from core.ceremony.model import BYOK_PROVIDERS, Problem, RoleKind, StepKind
from core.ceremony.rules import (
    _CLUSTER_ID,
    _COMMON_STEP_KEYS,
    _DESTINATION,
    _HEX,
    _ID,
    _SCRIPT_NAME,
    BYOK_OPTIONAL,
    BYOK_REQUIRED,
    CARD_KEY_BITS,
    CARD_MODULES,
    CARRIERS,
    DISPLAYS,
    EXPORT_CONTENTS,
    MAX_ESTIMATE_MINUTES,
    MAX_TRANSITION_DAYS,
    ONLINE_RECIPIENT_KINDS,
    PRACTICE_CLUSTER_PREFIX,
    PRACTICE_PREFIX,
    PURPOSES,
    RECIPIENT_KINDS,
    STEP_PARAMS,
    Checker,
    byok_methods,
    is_safe_filename,
)
from core.ceremony.source import PathItem, SourceMap
from core.ceremony.validate_order import _order, _purpose

__all__ = ["is_practice_name", "is_safe_filename", "validate"]

#: Said of a problem reported once for its root cause (:meth:`Checker.add_once`).
AGAIN: Final = " (it is not reported again where other steps name it)"
#: The kind recorded for a role whose ``kind`` is missing or wrong (reported once, there).
UNKNOWN: Final = ""


def validate(data: dict[str, Any], smap: SourceMap, fname: str) -> list[Problem]:
    """Return every problem of a parsed script (empty list: the script is valid)."""
    v = Checker(data, smap, fname)
    v.unknown((), data, ("ceremony", "cluster", "roles", "policy", "recipients", "acts"))
    meta = v.table(("ceremony",), data.get("ceremony"))
    v.unknown(("ceremony",), meta, ("name", "version", "description", "purpose", "practice"))
    v.string(
        ("ceremony",),
        meta,
        "name",
        check=lambda s: bool(_SCRIPT_NAME.match(s)),
        what="a name of letters, digits, '.', '_' or '-' (it becomes part of the ceremony's "
        "folder name)",
    )
    if "version" in meta and isinstance(meta["version"], int | float):
        pass
    else:
        v.string(("ceremony",), meta, "version")
    if "description" in meta:
        v.string(("ceremony",), meta, "description")
    purpose = v.string(
        ("ceremony",),
        meta,
        "purpose",
        check=lambda s: s in PURPOSES,
        what=f"one of {', '.join(PURPOSES)}",
    )
    practice = v.boolean(("ceremony",), meta, "practice")

    cluster = v.table(("cluster",), data.get("cluster"))
    v.unknown(("cluster",), cluster, ("cluster_id", "region_id"))
    for key in ("cluster_id", "region_id"):
        v.string(
            ("cluster",),
            cluster,
            key,
            check=lambda s: bool(_CLUSTER_ID.match(s)),
            what="an id of lower-case letters, digits, '.', '_' or '-'",
        )

    roles = _roles(v)
    # a role whose kind is wrong counts as every kind from here on: its one problem is
    # reported where the kind is, not again at every step that names the role
    custodians = [rid for rid, kind in roles.items() if kind in (RoleKind.CUSTODIAN.value, UNKNOWN)]
    policy_present = "policy" in data
    if policy_present:
        _policy(v, roles)
    recipients = _recipients(v)
    _acts(v, roles, custodians, recipients, purpose, practice, policy_present)
    _practice_marks(v, practice)
    return v.problems


def _roles(v: Checker) -> dict[str, str]:
    table = v.table(("roles",), v.data.get("roles"))
    out: dict[str, str] = {}
    kinds = [k.value for k in RoleKind]
    for rid, role in table.items():
        path: tuple[PathItem, ...] = ("roles", rid)
        if not _ID.match(rid):
            v.add(path, f"role id {rid!r} must be lower-case letters, digits, '_' or '-'")
        if not isinstance(role, dict):
            v.add(path, "a role must be a table")
            out[rid] = UNKNOWN
            continue
        v.unknown(path, role, ("kind", "name", "card_serial", "key_fingerprint"))
        kind = v.string(
            path, role, "kind", check=lambda s: s in kinds, what=f"one of {', '.join(kinds)}"
        )
        # shown on every screen, the custodian terminal and the printed checklist: a control
        # character there would be a terminal escape sequence
        v.string(
            path,
            role,
            "name",
            check=lambda s: s.isprintable() and len(s) <= 60,
            what="a printable name (no control characters, at most 60 characters)",
        )
        if "card_serial" in role:
            v.string(path, role, "card_serial")
        if "key_fingerprint" in role:
            v.string(
                path,
                role,
                "key_fingerprint",
                check=lambda s: bool(_HEX.match(s)),
                what="a hex fingerprint",
            )
        out[rid] = kind if kind is not None else UNKNOWN
    if table and UNKNOWN not in out.values():  # else the wrong kind may be the missing one
        if RoleKind.ADMINISTRATOR.value not in out.values():
            v.add(("roles",), "missing role: the script defines no ceremony-administrator")
        if RoleKind.WITNESS.value not in out.values():
            v.add(("roles",), "missing role: the script defines no internal-witness")
    return out


_GROUP_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,15}$")


def _policy(v: Checker, roles: dict[str, str]) -> None:
    path: tuple[PathItem, ...] = ("policy",)
    pol = v.table(path, v.data.get("policy"))
    v.unknown(path, pol, ("threshold", "shares", "custodians", "group_threshold", "groups"))
    custodian_ids = {r for r, k in roles.items() if k in (RoleKind.CUSTODIAN.value, UNKNOWN)}

    def members_ok(mpath: tuple[PathItem, ...], members: list[str]) -> None:
        seen: set[str] = set()
        for m in members:
            if m not in roles:
                v.add_once(
                    f"role:{m}", mpath, f"custodian {m!r} is not a role defined in [roles]" + AGAIN
                )
            elif m not in custodian_ids:
                v.add(mpath, f"{m!r} is a {roles[m]}, not a custodian")
            if m in seen:
                v.add(mpath, f"custodian {m!r} is listed twice")
            seen.add(m)

    if "groups" in pol:
        for key in ("threshold", "shares", "custodians"):
            if key in pol:
                v.add((*path, key), f"{key!r} is not used with groups (each group has its own)")
        groups = pol["groups"]
        if not isinstance(groups, list) or not groups:
            v.add((*path, "groups"), "'groups' must be a non-empty array of tables")
            return
        gt = v.integer(path, pol, "group_threshold")
        if len(groups) > 16:
            v.add((*path, "groups"), f"{len(groups)} groups: SLIP-39 allows at most 16")
        if gt is not None and not 1 <= gt <= len(groups):
            v.add(
                (*path, "group_threshold"),
                f"group threshold {gt} must be between 1 and the number of groups ({len(groups)})",
            )
        all_members: list[str] = []
        names: set[str] = set()
        for gi, g in enumerate(groups):
            gpath: tuple[PathItem, ...] = (*path, "groups", gi)
            if not isinstance(g, dict):
                v.add(gpath, "a group must be a table")
                continue
            v.unknown(gpath, g, ("name", "threshold", "members"))
            # the name is what the room sees on every group line and message (issue 18)
            name = v.string(
                gpath,
                g,
                "name",
                check=lambda s: bool(_GROUP_NAME_RE.match(s)),
                what="a group name (1 to 16 letters, digits, spaces, . _ -; beginning with a "
                "letter or digit)",
            )
            if name is not None:
                if name.casefold() in names:
                    v.add((*gpath, "name"), f"group name {name!r} is used twice: name each group once")
                names.add(name.casefold())
            members = v.str_list(gpath, g, "members", required=True)
            members_ok((*gpath, "members"), members)
            all_members += members
            t = v.integer(gpath, g, "threshold")
            if t is not None and members:
                _threshold_ok(v, (*gpath, "threshold"), t, len(members))
        dup = {m for m in all_members if all_members.count(m) > 1}
        for m in sorted(dup):
            v.add((*path, "groups"), f"custodian {m!r} is a member of more than one group")
        return
    if "group_threshold" in pol:
        v.add((*path, "group_threshold"), "'group_threshold' needs [[policy.groups]]")
    t = v.integer(path, pol, "threshold")
    n = v.integer(path, pol, "shares")
    custodians = v.str_list(path, pol, "custodians", required=True)
    members_ok((*path, "custodians"), custodians)
    if n is not None and custodians and n != len(custodians):
        v.add(
            (*path, "shares"),
            f"shares = {n} but {len(custodians)} custodians are listed (one share each)",
        )
    if t is not None and n is not None:
        _threshold_ok(v, (*path, "threshold"), t, n)


def _threshold_ok(v: Checker, path: tuple[PathItem, ...], t: int, n: int) -> None:
    if n > 16:
        v.add(path, f"{n} shares: SLIP-39 allows at most 16 per group")
    if t < 1:
        v.add(path, f"threshold {t} must be at least 1")
    elif t > n:
        v.add(path, f"threshold {t} is larger than the number of shares ({n})")
    elif t == 1 and n > 1:
        v.add(path, f"1-of-{n} would give every custodian the whole key; SLIP-39 refuses it")


def _byok_params(v: Checker, spath: tuple[PathItem, ...], step: dict[str, Any]) -> None:
    """A ``byok`` step: the provider, its wrapping key (and AWS's import token) on the
    medium, a method that provider accepts for a 256-bit symmetric key, its destination."""
    provider = v.string(
        spath,
        step,
        "provider",
        check=lambda s: s in BYOK_PROVIDERS,
        what=f"one of {', '.join(BYOK_PROVIDERS)}",
    )
    in_workspace = "a relative path inside the workspace (no '..', no absolute path)"
    v.string(spath, step, "wrapping_key_file",
             check=lambda s: all(is_safe_filename(p) for p in s.split("/")), what=in_workspace)  # fmt: skip
    if "folder" in step:
        v.string(spath, step, "folder", check=is_safe_filename,
                 what="a safe folder name (letters, digits, '.', '_', '-'; no path, no '..')")  # fmt: skip
    if provider is None:
        return
    allowed = (*BYOK_REQUIRED[provider], *BYOK_OPTIONAL[provider])
    for key in ("import_token_file", "method", "key_id", "import_job", "key_name", "kek_kid",
                "file_name"):  # fmt: skip
        if key in step and key not in allowed:
            v.add((*spath, key), f"a {provider} BYOK step has no {key!r}")
    for key in BYOK_REQUIRED[provider]:
        if key == "import_token_file":
            v.string(spath, step, key,
                     check=lambda s: all(is_safe_filename(p) for p in s.split("/")),
                     what=in_workspace)  # fmt: skip
        elif key == "kek_kid":
            v.string(spath, step, key,
                     check=lambda s: s.startswith("https://") and "/keys/" in s
                     and not any(c in s for c in '"\\<>& '),
                     what="the KEK's full key identifier https://NAME.vault.azure.net/keys/KEK/VERSION")  # fmt: skip
        else:
            v.string(spath, step, key, check=lambda s: bool(_DESTINATION.match(s)),
                     what="a provider resource name (letters, digits, and : / . _ -)")  # fmt: skip
    if "method" in step:
        methods = byok_methods(provider)
        v.string(spath, step, "method", check=lambda s: s in methods,
                 what=f"what {provider} accepts for a 256-bit symmetric key: {', '.join(methods)}")  # fmt: skip
    if "file_name" in step:
        v.string(spath, step, "file_name",
                 check=lambda s: is_safe_filename(s) and s.endswith(".byok"),
                 what="a safe file name ending in .byok")  # fmt: skip


def _recipients(v: Checker) -> set[str]:
    table = v.table(("recipients",), v.data.get("recipients"), required=False)
    files: dict[str, str] = {}
    for rid, r in table.items():
        path: tuple[PathItem, ...] = ("recipients", rid)
        if not _ID.match(rid):
            v.add(path, f"recipient id {rid!r} must be lower-case letters, digits, '_' or '-'")
        if not isinstance(r, dict):
            v.add(path, "a recipient must be a table")
            continue
        v.unknown(path, r, ("kind", "public_key_file", "file", "fingerprint", "description"))
        v.string(
            path,
            r,
            "kind",
            check=lambda s: s in RECIPIENT_KINDS,
            what=f"one of {', '.join(RECIPIENT_KINDS)}",
        )
        v.string(
            path,
            r,
            "public_key_file",
            check=lambda s: all(is_safe_filename(p) for p in s.split("/")),
            what="a relative path inside the workspace (no '..', no absolute path)",
        )
        name = v.string(
            path,
            r,
            "file",
            check=is_safe_filename,
            what="a safe export file name (letters, digits, '.', '_', '-'; no path, no '..')",
        )
        if name is not None:
            if name in files:
                v.add(
                    (*path, "file"), f"file name {name!r} is also used by recipient {files[name]!r}"
                )
            files[name] = rid
        if "fingerprint" in r:
            v.string(path, r, "fingerprint", check=lambda s: bool(_HEX.match(s)), what="hex")
        if "description" in r:
            v.string(path, r, "description")
    return set(table)


def _acts(
    v: Checker,
    roles: dict[str, str],
    custodians: list[str],
    recipients: set[str],
    purpose: str | None,
    practice: bool,
    policy_present: bool,
) -> None:
    acts = v.data.get("acts")
    if not isinstance(acts, list) or not acts:
        v.add(("acts",), "the script has no acts ([[acts]] with [[acts.steps]])")
        return
    act_ids: set[str] = set()
    sequence: list[tuple[tuple[PathItem, ...], StepKind, dict[str, Any]]] = []
    for ai, act in enumerate(acts):
        apath: tuple[PathItem, ...] = ("acts", ai)
        if not isinstance(act, dict):
            v.add(apath, "an act must be a table")
            continue
        v.unknown(apath, act, ("id", "title", "optional", "estimate_minutes", "steps"))
        aid = v.string(apath, act, "id", check=lambda s: bool(_ID.match(s)), what="a valid id")
        if aid is not None:
            if aid in act_ids:
                v.add((*apath, "id"), f"act id {aid!r} is used twice")
            act_ids.add(aid)
        v.string(apath, act, "title")
        v.boolean(apath, act, "optional")
        if "estimate_minutes" in act:
            est = v.integer(apath, act, "estimate_minutes")
            if est is not None and not 1 <= est <= MAX_ESTIMATE_MINUTES:
                v.add(
                    (*apath, "estimate_minutes"),
                    f"'estimate_minutes' = {est} must be between 1 and {MAX_ESTIMATE_MINUTES} "
                    "(minutes the act is expected to take)",
                )
        steps = act.get("steps")
        if not isinstance(steps, list) or not steps:
            v.add(apath, "the act has no steps ([[acts.steps]])")
            continue
        step_ids: set[str] = set()
        for si, step in enumerate(steps):
            spath: tuple[PathItem, ...] = (*apath, "steps", si)
            if not isinstance(step, dict):
                v.add(spath, "a step must be a table")
                continue
            sid = v.string(spath, step, "id", check=lambda s: bool(_ID.match(s)), what="a valid id")
            if sid is not None:
                if sid in step_ids:
                    v.add((*spath, "id"), f"step id {sid!r} is used twice in this act")
                step_ids.add(sid)
            v.string(spath, step, "title")
            if "instruction" in step:
                v.string(spath, step, "instruction")
            raw_kind = step.get("kind")
            kinds = [k.value for k in StepKind]
            if raw_kind not in kinds:
                v.add(
                    (*spath, "kind"),
                    f"unknown step kind {raw_kind!r} (known: {', '.join(kinds)})"
                    if raw_kind is not None
                    else "missing 'kind'",
                )
                continue
            kind = StepKind(raw_kind)
            v.unknown(spath, step, _COMMON_STEP_KEYS + STEP_PARAMS[kind])
            ack = v.str_list(spath, step, "acknowledge", required=True)
            for r in ack:
                if r != "custodians" and r not in roles:
                    v.add_once(
                        f"role:{r}",
                        (*spath, "acknowledge"),
                        f"step needs role {r!r}, which the script does not define in [roles]"
                        + AGAIN,
                    )
            if "custodians" in ack and not custodians:
                v.add((*spath, "acknowledge"), "'custodians' used but the script has no custodian")
            _step_params(v, spath, kind, step, roles, ack, recipients)
            sequence.append((spath, kind, step))
    _order(v, sequence, purpose, practice, policy_present)


def _step_params(
    v: Checker,
    spath: tuple[PathItem, ...],
    kind: StepKind,
    step: dict[str, Any],
    roles: dict[str, str],
    ack: list[str],
    recipients: set[str],
) -> None:
    def role_ref(key: str, required: bool) -> None:
        rid = v.string(spath, step, key, required=required)
        if rid is None:
            return
        if rid not in roles:
            v.add_once(
                f"role:{rid}",
                (*spath, key),
                f"step needs role {rid!r}, which the script does not define in [roles]" + AGAIN,
            )
        elif roles[rid] == RoleKind.CUSTODIAN.value:
            v.add(
                (*spath, key), f"{key} {rid!r} is a custodian; a witness or administrator confirms"
            )
        elif rid not in ack:
            v.add((*spath, key), f"{key} {rid!r} must also be listed in 'acknowledge'")

    def subset(key: str, allowed: Sequence[str]) -> None:
        for item in v.str_list(spath, step, key):
            if item not in allowed:
                v.add((*spath, key), f"{item!r} is not one of {', '.join(allowed)}")

    def card_module() -> None:
        val = step.get("card_module")
        if isinstance(val, str) and ("/" in val or val.endswith(".so")):
            v.add(
                (*spath, "card_module"),
                f"card_module = {val!r} is a path: scripts name a PKCS#11 module "
                f"({', '.join(CARD_MODULES)}), never a file. A library from a script or a "
                "medium would run inside the keyholder, next to the MasterKey; the keyholder "
                "loads only the modules installed on the workstation",
            )
            return
        v.string(
            spath,
            step,
            "card_module",
            required=False,
            check=lambda s: s in CARD_MODULES,
            what=f"a PKCS#11 module name: {', '.join(CARD_MODULES)} (softhsm2: demo only)",
        )

    if kind is StepKind.CHECKLIST:
        v.str_list(spath, step, "items", required=True)
    elif kind is StepKind.ATTENDANCE:
        for r in v.str_list(spath, step, "roles"):
            if r != "custodians" and r not in roles:
                v.add_once(
                    f"role:{r}",
                    (*spath, "roles"),
                    f"attendance lists role {r!r}, which is not defined in [roles]" + AGAIN,
                )
    elif kind is StepKind.PREFLIGHT:
        v.boolean(spath, step, "require_hardened")
    elif kind is StepKind.VERIFY_FINGERPRINT:
        subj = v.string(spath, step, "subject")
        if subj is not None:
            target, _, ref = subj.partition(":")
            if target == "recipient":
                if ref not in recipients:
                    v.add((*spath, "subject"), f"recipient {ref!r} is not defined in [recipients]")
            elif target == "custodian":
                if roles.get(ref) not in (RoleKind.CUSTODIAN.value, UNKNOWN):
                    v.add((*spath, "subject"), f"custodian {ref!r} is not a custodian role")
            elif subj != "kcv":
                v.add(
                    (*spath, "subject"), "subject must be 'kcv', 'recipient:ID' or 'custodian:ID'"
                )
        role_ref("witness", True)
    elif kind is StepKind.DISTRIBUTE_SHARES:
        subset("display", DISPLAYS)
        pol = v.data.get("policy")
        holders: set[str] = set()
        if isinstance(pol, dict):
            holders = set(pol.get("custodians") or [])
            for g in pol.get("groups") or []:
                if isinstance(g, dict):
                    holders |= set(g.get("members") or [])
        _share_carriers(v, spath, step, roles, holders)
        card_module()
        if "card_key_bits" in step:
            bits = v.integer(spath, step, "card_key_bits")
            if bits is not None and bits not in CARD_KEY_BITS:
                v.add(
                    (*spath, "card_key_bits"),
                    f"card_key_bits = {bits}: use {', '.join(map(str, CARD_KEY_BITS))}",
                )
        v.boolean(spath, step, "card_data_object")
        if isinstance(pol, dict):
            for r in ack:
                if roles.get(r) == RoleKind.CUSTODIAN.value and r not in holders:
                    v.add(
                        (*spath, "acknowledge"),
                        f"{r!r} acknowledges receiving a share but is not a custodian in [policy]",
                    )
        v.boolean(spath, step, "supersedes_collected")
    elif kind in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES):
        if "carriers" in step and not isinstance(step["carriers"], list):
            v.add(
                (*spath, "carriers"),
                "'carriers' of a collect/check step is a list of ways in, "
                f'e.g. ["typed", "card"] (one of {", ".join(CARRIERS)})',
            )
        else:
            subset("carriers", CARRIERS)
        card_module()
        v.string(
            spath, step, "manifest", required=False, check=is_safe_filename, what="a safe file name"
        )
    elif kind is StepKind.RECOVER:
        v.boolean(spath, step, "dry_run")
    elif kind is StepKind.VERIFY_KCV:
        role_ref("witness", True)
        v.string(spath, step, "key", required=False, check=lambda s: s in ("old", "new"),
                 what="'old' or 'new' (which key of a rotation)")  # fmt: skip
    elif kind is StepKind.SEAL:
        rids = v.str_list(spath, step, "recipients", required=True)
        for rid in rids:
            if rid not in recipients:
                v.add((*spath, "recipients"), f"recipient {rid!r} is not defined in [recipients]")
        key = v.string(spath, step, "key", required=False, check=lambda s: s in ("old", "new"),
                       what="'old' or 'new' (which key of a rotation)")  # fmt: skip
        if "transition_days" in step:
            days = v.integer(spath, step, "transition_days")
            if days is not None and not 1 <= days <= MAX_TRANSITION_DAYS:
                v.add(
                    (*spath, "transition_days"),
                    f"transition_days = {days}: the old key's transition window is 1 to "
                    f"{MAX_TRANSITION_DAYS} days",
                )
            if key != "old":
                v.add(
                    (*spath, "transition_days"),
                    'transition_days is only for a seal with key = "old"',
                )
        elif key == "old" and _purpose(v) != "transition":
            v.add(
                (*spath, "key"),
                "sealing the old key of a rotation needs transition_days (1 to "
                f"{MAX_TRANSITION_DAYS}): it is sealed only as a transitional envelope that expires",
            )
        if key == "old":
            kinds_of = v.data.get("recipients") or {}
            for rid in rids:
                spec = kinds_of.get(rid) if isinstance(kinds_of, dict) else None
                if isinstance(spec, dict) and spec.get("kind") not in ONLINE_RECIPIENT_KINDS:
                    v.add(
                        (*spath, "recipients"),
                        f"recipient {rid!r} is a {spec.get('kind')}: the old key is sealed only to "
                        f"the online system ({', '.join(ONLINE_RECIPIENT_KINDS)}), never to a "
                        "custodian",
                    )
    elif kind is StepKind.BYOK:
        _byok_params(v, spath, step)
        role_ref("witness", True)
    elif kind is StepKind.MARK_ROTATED_OUT:
        if "folder" in step:
            v.string(
                spath,
                step,
                "folder",
                check=is_safe_filename,
                what="a safe folder name (letters, digits, '.', '_', '-'; no path, no '..')",
            )
    elif kind is StepKind.EXPORT:
        subset("files", EXPORT_CONTENTS)
        if "files" not in step:
            v.add((*spath, "files"), "missing 'files'")
        if "folder" in step:
            v.string(
                spath,
                step,
                "folder",
                check=is_safe_filename,
                what="a safe folder name (letters, digits, '.', '_', '-'; no path, no '..')",
            )


def _share_carriers(
    v: Checker,
    spath: tuple[PathItem, ...],
    step: dict[str, Any],
    roles: dict[str, str],
    holders: set[str],
) -> None:
    """distribute-shares ``carriers``: a table custodian -> screen | qr | card."""
    if "carriers" not in step:
        return
    table = step["carriers"]
    cpath = (*spath, "carriers")
    if not isinstance(table, dict):
        v.add(
            cpath,
            "'carriers' of distribute-shares is a table custodian = carrier, "
            f'e.g. {{ c1 = "card", c2 = "qr" }} (one of {", ".join(DISPLAYS)})',
        )
        return
    display = step.get("display")
    allowed = (
        [d for d in display if isinstance(d, str)] if isinstance(display, list) else ["screen"]
    )
    for cid, carrier in table.items():
        if cid not in roles:
            v.add_once(
                f"role:{cid}",
                (*cpath, cid),
                f"custodian {cid!r} is not a role defined in [roles]" + AGAIN,
            )
        elif roles[cid] not in (RoleKind.CUSTODIAN.value, UNKNOWN):
            v.add((*cpath, cid), f"{cid!r} is a {roles[cid]}, not a custodian")
        elif holders and cid not in holders:
            v.add((*cpath, cid), f"{cid!r} receives no share: not a custodian in [policy]")
        if not isinstance(carrier, str) or carrier not in DISPLAYS:
            v.add(
                (*cpath, cid),
                f"carrier of {cid!r} must be one of {', '.join(DISPLAYS)} (got {carrier!r})",
            )
        elif carrier not in allowed:
            v.add(
                (*cpath, cid),
                f"{cid!r} gets a {carrier}, but the step's display allows only "
                f"{', '.join(allowed)}: add {carrier!r} to 'display'",
            )


def is_practice_name(name: object) -> bool:
    """True for a file or folder name marked PRACTICE (``PRACTICE-...``, any case)."""
    return isinstance(name, str) and name.upper().startswith(PRACTICE_PREFIX)


def _practice_marks(v: Checker, practice: bool) -> None:
    """A practice script is PRACTICE throughout, a real script nowhere (docs/scripts.md).

    Practice (``practice = true``, any purpose): ``cluster_id`` begins with ``practice`` (it
    is associated data of every envelope, so a practice envelope never opens as a real
    cluster's), recipient ``file``, the file name of ``public_key_file`` (a throwaway
    practice key, never the real KMS key), export ``folder`` and a collect/check
    ``manifest`` begin with ``PRACTICE-``. A real script uses none of these marks, so a
    copied practice script cannot pass for a real one (nor the other way round).
    """
    marked: list[tuple[tuple[PathItem, ...], str, str]] = []  # (path, key, value)
    cluster = v.data.get("cluster")
    if isinstance(cluster, dict) and isinstance(cluster.get("cluster_id"), str):
        cid = cluster["cluster_id"]
        if practice and not cid.startswith(PRACTICE_CLUSTER_PREFIX):
            v.add(
                ("cluster", "cluster_id"),
                f"cluster_id {cid!r} of a practice script must begin with 'practice' (it is "
                "associated data of every envelope: a practice envelope must never open as a "
                "real cluster's)",
            )
        elif not practice and cid.startswith(PRACTICE_CLUSTER_PREFIX):
            v.add(
                ("cluster", "cluster_id"),
                f"cluster_id {cid!r} is reserved for practice scripts: set practice = true, "
                "or use the real cluster's id",
            )
    recipients = v.data.get("recipients")
    if isinstance(recipients, dict):
        for rid, r in recipients.items():
            if not isinstance(r, dict):
                continue
            if isinstance(r.get("file"), str):
                marked.append((("recipients", rid), "file", r["file"]))
            pkf = r.get("public_key_file")
            if isinstance(pkf, str):
                marked.append((("recipients", rid), "public_key_file", pkf))
    acts = v.data.get("acts")
    for ai, act in enumerate(acts if isinstance(acts, list) else []):
        steps = act.get("steps") if isinstance(act, dict) else None
        for si, step in enumerate(steps if isinstance(steps, list) else []):
            if not isinstance(step, dict):
                continue
            spath: tuple[PathItem, ...] = ("acts", ai, "steps", si)
            if step.get("kind") in (StepKind.EXPORT.value, StepKind.BYOK.value) and isinstance(
                step.get("folder"), str
            ):
                marked.append((spath, "folder", step["folder"]))
            if step.get("kind") == StepKind.BYOK.value:
                for key in ("wrapping_key_file", "import_token_file"):
                    if isinstance(step.get(key), str):
                        marked.append((spath, key, step[key]))
            if step.get("kind") in (StepKind.COLLECT_SHARES.value, StepKind.CHECK_SHARES.value):
                if isinstance(step.get("manifest"), str):
                    marked.append((spath, "manifest", step["manifest"]))
    for path, key, value in marked:
        name = value.rsplit("/", 1)[-1] if key.endswith("_file") and key != "file" else value
        what = {
            "file": "envelope file",
            "public_key_file": "recipient public key file",
            "wrapping_key_file": "provider wrapping key file",
            "import_token_file": "provider import token file",
            "folder": "export folder",
            "manifest": "share-set manifest",
        }[key]
        if practice and not is_practice_name(name):
            v.add(
                (*path, key),
                f"{what} {name!r} of a practice script must begin with 'PRACTICE-' "
                "(practice scripts use only practice keys, manifests and files)",
            )
        elif not practice and is_practice_name(name):
            v.add(
                (*path, key),
                f"{what} {name!r} is marked PRACTICE but the script is not a practice script: "
                "set practice = true, or use a real name",
            )
