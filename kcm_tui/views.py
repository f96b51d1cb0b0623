"""The public data the screens show: preflight checks, scripts, steps, typed-entry answers.

Frozen views built by :mod:`kcm_tui.backend` from the engine's state; a screen never sees
an engine object (and never a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ActLine", "Check", "EntryResult", "ModelEnumValues", "ScriptInfo", "ShareDisplay", "StepView", "WordStatus"]


@dataclass(frozen=True)
class Check:
    """One preflight result."""

    name: str
    status: str
    reason: str
    action: str


@dataclass(frozen=True)
class ScriptInfo:
    """A ceremony script found on disk, valid or not."""

    path: Path
    name: str
    purpose: str
    practice: bool
    description: str
    problems: tuple[str, ...] = ()
    sha256: str = ""
    #: Demo values still in a real script (core.ceremony.demovalues), one line each: a
    #: real ceremony refuses the script until it is edited; a demo may run it.
    demo_values: tuple[str, ...] = ()

    @property
    def hash_words(self) -> list[str]:
        """The script's SHA-256 as words (core.words), as on the printed checklist."""
        if len(self.sha256) != 64:
            return []
        from core.words import to_words

        return to_words(bytes.fromhex(self.sha256))

    @property
    def valid(self) -> bool:
        """True when the script can be run."""
        return not self.problems


@dataclass(frozen=True)
class StepView:
    """A step as the UI shows it."""

    index: int
    act_id: str
    act_title: str
    id: str
    kind: str
    title: str
    instruction: str
    acknowledge: tuple[str, ...]
    params: Mapping[str, Any]
    state: str = "active"
    error: str = ""
    performed: bool = False
    acks: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    confirmed_by: str = ""
    display: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActLine:
    """One act of the script in the outline: its title, where it is (``done``, ``current``
    or ``todo``), its steps done of its steps, and the script's ``estimate_minutes``."""

    title: str
    state: str
    done: int
    steps: int
    estimate_minutes: int | None = None


@dataclass(frozen=True)
class WordStatus:
    """The keyholder's public answer to one typed word."""

    status: str  # "accepted" | "unknown" | "ambiguous"
    position: int  # 1-based position of the word just handled
    count: int  # words accepted so far
    expected: int  # words in a full share (20 or 33), 0 while unknown
    suggestions: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class EntryResult:
    """The keyholder's public verdict on a complete typed share."""

    ok: bool
    message: str
    typo_position: int = 0
    typo_candidates: tuple[str, ...] = ()
    share: Mapping[str, Any] = field(default_factory=dict)  # set id, index, group (public)


class ShareDisplay:
    """Where the keyholder writes a share for its custodian: a terminal device path,
    opened and handed to the keyholder when it is spawned (never named later: see
    :mod:`core.keyholder.terminal`). On the ceremony ISO the keyholder launcher's policy
    fixes the terminal instead (``/dev/tty1``).

    The real ceremony uses the controlling terminal (``/dev/tty``) while the app is
    suspended; tests inject the slave side of a pty they read.
    """

    def __init__(self, tty_path: str = "/dev/tty") -> None:
        self.tty_path = tty_path

    def __repr__(self) -> str:
        return f"ShareDisplay({self.tty_path!r})"


class ModelEnumValues:
    """A class attribute: the values of an enum of ``core.ceremony.model``, read on first use
    (the model is a few ms of the first screen's start-up, which needs none of it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> tuple[str, ...]:
        from core.ceremony import model

        return tuple(m.value for m in getattr(model, self.name))
