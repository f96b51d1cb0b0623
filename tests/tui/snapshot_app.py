"""The app fixture for SVG snapshots: the real screens over fixed public data.

``FakeSession`` stands in for ``kcm_tui.backend.Session`` with canned PUBLIC answers (no
keyholder, no journal, no clock, no randomness), so every snapshot is stable. Behaviour
over the real engine and keyholder is covered by test_e2e.py and test_safety.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input

from kcm_tui.app import CeremonyApp
from kcm_tui.backend import (
    Backend,
    BackendError,
    Check,
    ScriptInfo,
)
from kcm_tui.backend_recovery import Closed, UnfinishedView
from tests.support.fake_session import (
    CAMERA_MISSING,
    CARD_ERRORS,
    CARD_WRITTEN,
    CHECKS,
    EXPORT_FILES,
    FINAL_WORDS,
    FP_WORDS,
    ROLES,
    SCRIPT_SHA,
    TOKENS,
    WORDS,
    ExportSession,
    FailingChecks,
    FakeSession,
    step,
)

_orig_input_init = Input.__init__


def _input_init(self: Input, *args: Any, **kwargs: Any) -> None:
    _orig_input_init(self, *args, **kwargs)
    self.set_reactive(Input.cursor_blink, False)  # frozen cursor in snapshots


Input.__init__ = _input_init  # type: ignore[method-assign]

class FakeBackend(Backend):
    """Fixed preflight and scripts; ``open`` installs the prepared FakeSession."""

    def __init__(self, *, demo: bool = True, checks: list[Check] | None = None, session: FakeSession | None = None, scripts: list[ScriptInfo] | None = None) -> None:
        super().__init__(demo=demo, media=Path("/media/ceremony"), env={}, term_size=(80, 24))
        self.checks = CHECKS if checks is None else checks
        #: OPEN journals the start screen finds (after a crash); set by a scenario
        self.unfinished_views: list[UnfinishedView] = []
        self.fake_session = session
        self.session = session  # type: ignore[assignment]
        self.script_list = scripts if scripts is not None else [
            ScriptInfo(Path("practice-genesis.toml"), "practice-genesis", "genesis", True, "PRACTICE ONLY: rehearses genesis with a throwaway key.", sha256=SCRIPT_SHA["practice-genesis"]),
            ScriptInfo(Path("genesis.toml"), "genesis", "genesis", False, "Creates the MasterKey and splits it 3-of-5.", sha256=SCRIPT_SHA["genesis"]),
            ScriptInfo(Path("unseal-and-seal.toml"), "unseal-and-seal", "unseal-and-seal", False, "Rebuilds the key from 3 shares and seals it.", sha256=SCRIPT_SHA["unseal-and-seal"]),
            ScriptInfo(Path("broken.toml"), "broken", "?", False, "", ("broken.toml:12: unknown step kind 'dance'",)),
        ]

    def unfinished(self, extra: Path | None = None) -> list[UnfinishedView]:
        return list(self.unfinished_views)

    def close_interrupted(self, view: UnfinishedView, reason: str, witness: str) -> Closed:
        self.unfinished_views = []
        return Closed("ab" * 32, tuple(FINAL_WORDS), (f"the journal of {view.ceremony_id} is CLOSED (interrupted)",
                                                      "share set 4821 marked void (retired/set-4821.json)"))

    def preflight(self) -> list[Check]:
        return list(self.checks)

    def scripts(self) -> list[ScriptInfo]:
        return list(self.script_list)

    def media_problem(self, media: Path | None) -> str:
        return "" if media and str(media) == "/media/ceremony" else f"{media} does not exist or is not a folder: insert and mount the medium"

    def open(self, script: ScriptInfo, media: Path) -> Any:
        if self.fake_session is None:
            raise BackendError("not available yet: core.ceremony.engine")
        self.session = self.fake_session  # type: ignore[assignment]
        return self.fake_session

    def close(self) -> None:
        pass


class SnapApp(CeremonyApp):
    """Starts on a given screen with a FakeBackend."""

    def __init__(self, backend: FakeBackend, screen_factory: Any = None) -> None:
        super().__init__(backend, preselect_script="practice-genesis.toml")
        self.screen_factory = screen_factory

    def first_screen(self) -> Any:
        if self.screen_factory is None:
            return super().first_screen()
        return self.screen_factory()


#: A genesis a crash stopped during the share hand-out (the start screen's scenario).
CRASHED = UnfinishedView(
    path=Path("/media/ceremony/ceremonies/genesis-20270115T100000Z-ab12/journal.db"),
    ceremony_id="genesis-20270115T100000Z-ab12",
    text="genesis-20270115T100000Z-ab12 (genesis) stopped at step shares.distribute (in progress); last journal row "
         "2027-01-15T10:42:07.123456Z. Shares handed out to: Alice Custodian, Bob Custodian. Those shares of set 4821 "
         "are now VOID: the key they split is gone. Collect and destroy them.",
    witnesses=(("witness", "Internal Witness"),),
    administrator="admin",
    practice=False,
    summary="genesis-20270115T100000Z-ab12 stopped at step shares.distribute; 2 share(s) handed out",
)

__all__ = [
    "CAMERA_MISSING",
    "CARD_ERRORS",
    "CARD_WRITTEN",
    "CRASHED",
    "EXPORT_FILES",
    "FINAL_WORDS",
    "FP_WORDS",
    "ROLES",
    "TOKENS",
    "WORDS",
    "BackendError",
    "ExportSession",
    "FailingChecks",
    "FakeBackend",
    "FakeSession",
    "SnapApp",
    "step",
]
