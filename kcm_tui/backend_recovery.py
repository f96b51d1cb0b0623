"""After a crash: the unfinished ceremonies the start screen finds, and closing one as
interrupted. Split out of :mod:`kcm_tui.backend` (the UI's one door to core); the screens
see only :class:`UnfinishedView` (public facts) and :class:`Closed`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kcm_tui.errors import BackendError

__all__ = ["Closed", "UnfinishedView", "close_interrupted", "find_unfinished"]


@dataclass(frozen=True)
class UnfinishedView:
    """An OPEN journal found on a medium (a ceremony a crash left unfinished)."""

    path: Path
    ceremony_id: str
    #: what happened: the last step, whose shares were handed out (void at genesis)
    text: str
    #: (role id, name) of the witnesses who may acknowledge the closing
    witnesses: tuple[tuple[str, str], ...]
    #: the administrator's role id ("" when the journal names none)
    administrator: str
    practice: bool
    #: one line for the start screen
    summary: str = ""
    #: the journal does not verify: it cannot be closed here
    problem: str = ""


@dataclass(frozen=True)
class Closed:
    """What closing a journal as interrupted did."""

    final_hash: str
    final_words: tuple[str, ...]
    lines: tuple[str, ...]


def find_unfinished(media: Iterable[Path | None]) -> list[UnfinishedView]:
    """Every OPEN journal under ``<medium>/ceremonies/`` of the media given."""
    from core.ceremony import interrupted

    folders = [Path(m) for m in media if m is not None and str(m) and Path(m).is_dir()]
    out = []
    for u in interrupted.find_unfinished(folders):
        admins = u.names("ceremony-administrator")
        shown = f"{len(u.shown)} share(s) handed out" if u.shown else "no share handed out"
        summary = (
            f"{u.ceremony_id}: the journal does not verify"
            if u.problem
            else f"{u.ceremony_id} stopped at step {u.last_step or '-'}; {shown}"
        )
        out.append(
            UnfinishedView(
                path=u.path,
                ceremony_id=u.ceremony_id,
                text=u.describe(),
                witnesses=tuple(u.names("internal-witness")),
                administrator=admins[0][0] if admins else "",
                practice=u.practice,
                summary=summary,
                problem=u.problem,
            )
        )
    return out


def close_interrupted(view: UnfinishedView, reason: str, witness: str) -> Closed:
    """Close the journal as interrupted, the witness having acknowledged it.

    Raises:
        BackendError: refused (no reason, no witness, the journal changed or does not
            verify); the message says why. Nothing is written then.
    """
    from core import journal as jr
    from core.ceremony import interrupted

    try:
        final, lines = interrupted.close_interrupted(
            view.path,
            reason=reason,
            who=view.administrator or "administrator",
            witness=witness,
            witness_acknowledged=bool(witness),
        )
    except (jr.JournalError, OSError) as exc:
        raise BackendError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return Closed(final, tuple(jr.hash_words(final)), tuple(lines))


class RecoveryServices:
    """The :class:`~kcm_tui.backend.Backend`'s crash-recovery methods (a mixin: the
    backend's ``media``, the demo workspace's medium with ``--workspace``, is scanned)."""

    media: Path | None

    def unfinished(self, extra: Path | None = None) -> list[UnfinishedView]:
        """The OPEN journals on the ceremony medium (``media``, and ``extra``: the folder
        typed on the start screen)."""
        return find_unfinished([self.media, extra])

    def close_interrupted(self, view: UnfinishedView, reason: str, witness: str) -> Closed:
        """Close ``view``'s journal as interrupted (see :func:`close_interrupted`)."""
        return close_interrupted(view, reason, witness)
