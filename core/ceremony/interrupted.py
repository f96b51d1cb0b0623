"""Ceremonies left unfinished by a crash, and closing their journals as interrupted.

After a crash (power cut, killed UI, keyholder gone) a ceremony's journal stays OPEN: no
``journal.closed`` row. The next start finds it (:func:`find_unfinished`) and says what
happened from the journal alone: the last step, and which custodians were handed their
share. At genesis (or a reshare, a rotation) those shares are void: the key they split was
in the keyholder's memory only and is gone.

:func:`close_interrupted` then closes that journal, with the reason and the witness's
acknowledgement: a ``ceremony.interrupted`` row (reason, who, witness, last step, shares
handed out), the share set the ceremony made marked void on the medium
(:mod:`core.ceremony.retirement`, cause ``interrupted``), and ``journal.closed`` with
``state: interrupted``. ``kcm-ceremony journal verify`` then says ``CLOSED
(interrupted)``. Nothing is signed: no key is held any more; the final hash goes on the
paper log (``journal verify --final``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import journal as jr
from core.ceremony import retirement
from core.ceremony.workspace import Workspace
from core.journal.files import _events_from_path

__all__ = ["Unfinished", "close_interrupted", "find_unfinished", "read_unfinished"]

#: Purposes whose shares are void when the ceremony does not finish (a new key or split).
NEW_SET_PURPOSES = ("genesis", "reshare", "rotate")


@dataclass(frozen=True)
class Unfinished:
    """What an OPEN journal says about its ceremony (public facts only)."""

    path: Path
    ceremony_id: str
    script_name: str
    purpose: str
    practice: bool
    started_utc: str
    last_utc: str
    #: "act.step" of the last step started, and its state ("running" or "done")
    last_step: str
    last_step_done: bool
    #: custodian role ids handed their share (shown on screen or written to a card)
    shown: tuple[str, ...]
    #: role id -> (kind, name), from ``ceremony.started``
    roles: dict[str, tuple[str, str]] = field(default_factory=dict)
    set_id: str = ""
    manifest_file: str = ""
    rows: int = 0
    #: a rotation that had already marked the old set rotated out (its new set is kept)
    old_set_marked: bool = False
    #: the journal does not verify: it cannot be closed here (the message says why)
    problem: str = ""

    @property
    def medium(self) -> Path:
        """The medium (workspace) the ceremony ran on: ``<medium>/ceremonies/<id>/``."""
        return self.path.parent.parent.parent

    def names(self, kind: str) -> list[tuple[str, str]]:
        """(role id, name) of the roles of ``kind`` (e.g. ``internal-witness``)."""
        return [(r, n) for r, (k, n) in self.roles.items() if k == kind]

    def describe(self) -> str:
        """What happened, for the screen."""
        if self.problem:
            return f"{self.ceremony_id}: the journal does not verify ({self.problem})"
        state = "done" if self.last_step_done else "in progress"
        out = (
            f"{self.ceremony_id} ({self.script_name}) stopped at step {self.last_step or '-'} "
            f"({state}); last journal row {self.last_utc}."
        )
        if self.shown:
            names = ", ".join(self.roles.get(c, ("", c))[1] or c for c in self.shown)
            out += f" Shares handed out to: {names}."
            if self.set_id and self.purpose in NEW_SET_PURPOSES:
                out += (
                    f" Those shares of set {self.set_id} are now VOID: the key they split is "
                    "gone. Collect and destroy them."
                )
        elif self.set_id:
            out += f" Share set {self.set_id} was made but no share was handed out."
        else:
            out += " No share was handed out."
        return out


def read_unfinished(path: Path) -> Unfinished | None:
    """The facts of the journal at ``path`` if it is OPEN (None when closed)."""
    try:
        res = jr.verify(path)
    except jr.JournalError as exc:
        return _broken(path, str(exc))
    if res.ok and res.closed:
        return None
    if not res.ok:
        return _broken(path, res.message)
    events = _events_from_path(path)
    return _facts(path, events)


def _broken(path: Path, why: str) -> Unfinished:
    return Unfinished(path, path.parent.name, "?", "?", False, "", "", "", False, (), problem=why)


def _facts(path: Path, events: Sequence[jr.Event]) -> Unfinished:
    first = events[0].details
    roles: dict[str, tuple[str, str]] = {}
    last_step, last_done = "", False
    shown: list[str] = []
    set_id = manifest_file = ""
    marked = False
    for ev in events:
        d = ev.details
        if ev.kind == "ceremony.started" and isinstance(d.get("roles"), dict):
            for rid, r in d["roles"].items():
                if isinstance(r, dict):
                    roles[str(rid)] = (str(r.get("kind", "")), str(r.get("name", "")))
        elif ev.kind == "step.started":
            last_step, last_done = f"{ev.act}.{ev.step}", False
        elif ev.kind == "step.done" and f"{ev.act}.{ev.step}" == last_step:
            last_done = True
        elif ev.kind == "step.input" and d.get("shown_to") and d.get("ok") is not False:
            who = str(d["shown_to"])
            if who not in shown:
                shown.append(who)
        elif ev.kind == "step.result" and d.get("manifest_file") and d.get("set_id"):
            if "rotated_out" in d:  # mark-rotated-out: the OLD set's rewritten manifest
                marked = True
            else:  # distribute-shares: the set this ceremony made
                set_id, manifest_file = str(d["set_id"]), str(d["manifest_file"])
    return Unfinished(
        path=path,
        ceremony_id=events[0].ceremony_id,
        script_name=str(first.get("script_name", "?")),
        purpose=str(first.get("purpose", "?")),
        practice=first.get("practice") is True,
        started_utc=events[0].ts,
        last_utc=events[-1].ts,
        last_step=last_step,
        last_step_done=last_done,
        shown=tuple(shown),
        roles=roles,
        set_id=set_id,
        manifest_file=manifest_file,
        rows=len(events),
        old_set_marked=marked,
    )


def find_unfinished(media: Iterable[Path]) -> list[Unfinished]:
    """Every OPEN journal in ``<medium>/ceremonies/*/journal.db`` of the media given
    (the ceremony medium, the demo workspace's), oldest first."""
    out: list[Unfinished] = []
    seen: set[Path] = set()
    for medium in media:
        base = Path(medium) / "ceremonies"
        if not base.is_dir():
            continue
        for db in sorted(base.glob("*/journal.db")):
            key = db.resolve()
            if key in seen or db.is_symlink():
                continue
            seen.add(key)
            found = read_unfinished(db)
            if found is not None:
                out.append(found)
    out.sort(key=lambda u: u.started_utc)
    return out


def close_interrupted(
    path: Path, *, reason: str, who: str, witness: str, witness_acknowledged: bool
) -> tuple[str, list[str]]:
    """Close an OPEN journal as interrupted; mark the set it made void.

    Args:
        path: the ``journal.db``.
        reason: what happened (public text).
        who: the role id (or name) closing it, usually the administrator.
        witness: the witness's role id who saw the facts and agrees.
        witness_acknowledged: the witness ticked the acknowledgement (required).

    Returns:
        (the final hash, what was done as lines for the screen).

    Raises:
        JournalError: the journal does not verify, is closed, or the reason or the
            witness's acknowledgement is missing.
    """
    text = " ".join(reason.split())
    if not text:
        raise jr.JournalError("say why the ceremony was interrupted")
    if len(text) > 400:
        raise jr.JournalError("the reason is longer than 400 characters")
    if not witness.strip() or not witness_acknowledged:
        raise jr.JournalError("a witness must acknowledge the closing")
    facts = read_unfinished(path)
    if facts is None:
        raise jr.JournalError(f"{path}: the journal is closed already")
    if facts.problem:
        raise jr.JournalError(f"{path}: {facts.problem}; it cannot be closed here")
    journal = jr.Journal.open(path)
    done: list[str] = []
    try:
        role = who if who in facts.roles else ""
        journal.append(
            "ceremony.interrupted",
            {
                "reason": text,
                "who": who,
                "witness": witness,
                "witness_acknowledged": True,
                "at_step": facts.last_step,
                "shown_to": list(facts.shown),
                "set_id": facts.set_id,
            },
            role=role,
        )
        if facts.set_id and facts.old_set_marked:
            # voiding the new set too would leave no usable set: it replaces the old one
            journal.append(
                "set.aborted",
                {
                    "set_id": facts.set_id,
                    "cause": "interrupted",
                    "kept": "the old set is already marked rotated out: the new set replaces it",
                },
                role=role,
            )
            done.append(f"share set {facts.set_id} kept: the old set is already rotated out")
        elif facts.set_id and facts.manifest_file and facts.purpose in NEW_SET_PURPOSES:
            details = _void_set(facts, text, who)
            journal.append("set.aborted", details, role=role)
            done.append(
                f"share set {facts.set_id} marked void ({details['retirement_file']})"
                if "retirement_file" in details
                else f"share set {facts.set_id} could NOT be marked void: {details['error']}"
            )
        journal.close({"state": "interrupted", **({"practice": "PRACTICE"} if facts.practice else {})})
        final = journal.final_hash()
        events = journal.events()
    finally:
        journal.shutdown()
    prefix = "PRACTICE-" if facts.practice else ""
    folder = path.parent
    for name, writer in (
        ("journal.jsonl", jr.export_jsonl),
        ("transcript.md", jr.export_transcript),
    ):
        target = folder / f"{prefix}{name}"
        if not target.exists():
            writer(events, target)
            done.append(f"wrote {target}")
    done.insert(0, f"the journal of {facts.ceremony_id} is CLOSED (interrupted)")
    return final, done


def _void_set(facts: Unfinished, reason: str, who: str) -> dict[str, Any]:
    ws = Workspace(facts.medium)
    name = Path(facts.manifest_file).name
    details: dict[str, Any] = {
        "set_id": facts.set_id,
        "manifest_file": facts.manifest_file,
        "cause": "interrupted",
    }
    try:
        from core import strictjson

        data = ws.read(f"manifests/{name}")
        manifest = strictjson.loads(data)
        if not isinstance(manifest, dict):
            raise ValueError("not a share-set manifest")
        who_name = facts.roles.get(who, ("", who))[1] or who
        retirement.write(
            ws,
            {**manifest, "_file": name},
            manifest_file=name,
            manifest_data=data,
            cause="interrupted",
            ceremony_id=facts.ceremony_id,
            who=who_name,
            why=reason,
        )
        practice = manifest.get("practice") is True or name.upper().startswith("PRACTICE-")
        details["retirement_file"] = (
            f"{retirement.FOLDER}/{retirement.record_name(manifest.get('set_id'), practice)}"
        )
    except Exception as exc:
        details["error"] = str(exc) or type(exc).__name__
    return details
