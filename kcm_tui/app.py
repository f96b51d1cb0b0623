"""The ceremony TUI: a view over the headless engine that never holds a secret.

Safety of the app itself (docs/tui.md):

* the command palette is disabled (its Screenshot command writes the screen to disk), the
  screenshot actions refuse, and nothing is ever written to the clipboard (OSC 52 included);
  mouse text selection is off;
* an unexpected exception never shows a traceback with local variables, nor the exception's
  message (it could quote data): the keyholder is told to wipe, the journal records the
  abort, and the terminal says what happened and what to do;
* the program refuses to start when the environment would leak the screen or messages
  (TEXTUAL_LOG, TEXTUAL_SCREENSHOT, TEXTUAL=devtools/debug) unless in demo mode;
* borders are solid/heavy/ascii; every screen fits 80x24; no mouse needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

# The progress bar's half-cell ends use light/heavy half-line glyphs (U+2578, U+257A) the
# Linux console font lacks; a full heavy line is drawn instead (colour shows the split).
from textual.renderables.bar import Bar as _Bar
from textual.screen import Screen

from kcm_tui.backend import Backend, ShareDisplay, environment_leaks
from kcm_tui.options import build_parser

_Bar.HALF_BAR_LEFT = _Bar.HALF_BAR_RIGHT = "\u2501"
# Scrollbar thumbs end in eighth blocks (U+2581..U+2587, U+2589..U+258F) the console font lacks
# too: whole cells only.
from textual.scrollbar import ScrollBarRender as _ScrollBarRender  # noqa: E402

_ScrollBarRender.VERTICAL_BARS = [" "] * 8
_ScrollBarRender.HORIZONTAL_BARS = [" "] * 8

CRASH_TEXT = """\
The ceremony program stopped because of an internal error ({kind}).
No share words and no program variables are shown here, by design.

What was done:
{done}

What to do now:
  1. Note the time and this message on the paper log (exception sheet).
  2. Do not restart the same ceremony: start a new one from the beginning
     (shares already handed out stay valid; a key being rebuilt must be rebuilt again).
  3. Keep the export medium: its journal records the abort and can be verified with
     'kcm-ceremony journal verify PATH'. A journal left open is closed as interrupted
     at the next start (F6 on the start screen).
"""


class CeremonyApp(App[int]):
    """OpenKCM Ceremony."""

    CSS_PATH = Path(__file__).resolve().parent / "app.tcss"
    TITLE = "OpenKCM Ceremony"
    ENABLE_COMMAND_PALETTE: ClassVar[bool] = False
    ALLOW_SELECT: ClassVar[bool] = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "refuse_copy", show=False, priority=True),
        Binding("ctrl+p", "noop", show=False, priority=True),
    ]
    #: Screen classes by width (app.tcss lays out -narrow, up to 119 columns, and -wide).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # 120: kcm_tui.widgets.progress.WIDE  # noqa: RUF012 (an instance variable of App)

    def __init__(
        self,
        backend: Backend,
        *,
        preselect_script: str = "",
        poweroff: bool = False,
        idle_warn: float = 120.0,
        idle_wipe: float = 180.0,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.preselect_script = preselect_script
        self.poweroff = poweroff
        self.idle_warn = idle_warn
        self.idle_wipe = idle_wipe
        self.crash_report = ""
        self.clipboard_refusals = 0
        self.first_paint_done = False
        self._after_first_paint: list[Callable[[], object]] = []

    def get_default_screen(self) -> Screen[Any]:
        """The first screen is the app's base screen (not pushed over Textual's default
        one: that cost a second screen's compose and refresh, ~7% of the cold start); the
        ceremony screens replace it with ``switch_screen``, sub-screens are pushed on top."""
        screen = self.first_screen()
        # switch_screen pops the replaced screen's result callback, which push_screen adds
        # and Textual's default-screen path does not (Textual is pinned exactly).
        screen._push_result_callback(self, None)
        return screen

    def on_ready(self) -> None:
        """The first frame is on the screen: run the work deferred until then."""
        self.first_paint_done = True
        self.fit_terminal()
        pending, self._after_first_paint = self._after_first_paint, []
        for fn in pending:
            self.call_after_refresh(fn)

    def after_first_paint(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` once the first frame has been drawn (at once after a refresh if it has)."""
        if self.first_paint_done:
            self.call_after_refresh(fn)
        else:
            self._after_first_paint.append(fn)

    def first_screen(self) -> Screen[Any]:
        """The screen shown at start (the start screen: preflight, script, media)."""
        from kcm_tui.screens.start import StartScreen

        return StartScreen()

    # ---------------------------------------------------------------- terminal size

    def _check_resize(self) -> None:
        super()._check_resize()
        self.fit_terminal()

    def too_small_screen(self) -> Screen[Any] | None:
        """The "enlarge the terminal" screen if it is shown (always on top)."""
        from kcm_tui.screens.toosmall import TooSmallScreen

        top = self.screen_stack[-1] if self.screen_stack else None
        return top if isinstance(top, TooSmallScreen) else None

    def fit_terminal(self) -> None:
        """Below 80x24 show the "enlarge the terminal" screen over the current one; remove it
        once the terminal is large enough (the screen underneath is as it was)."""
        from kcm_tui.screens.toosmall import TooSmallScreen, too_small

        shown = self.too_small_screen()
        small = too_small(*self.size)
        if small and shown is None and self.screen_stack:
            super().push_screen(TooSmallScreen())
        elif not small and shown is not None:
            super().pop_screen()

    def push_screen(self, screen: Any, callback: Any = None, wait_for_dismiss: bool = False, *,
                    mode: str | None = None) -> Any:
        """Push ``screen``; while the terminal is too small it goes under the "enlarge the
        terminal" screen, which stays on top."""
        push: Any = super().push_screen
        if self.too_small_screen() is None:
            return push(screen, callback, wait_for_dismiss, mode=mode)
        super().pop_screen()
        result = push(screen, callback, wait_for_dismiss, mode=mode)
        self.fit_terminal()
        return result

    def switch_screen(self, screen: Any) -> Any:
        """Replace the current screen (under the "enlarge the terminal" screen if shown)."""
        if self.too_small_screen() is None:
            return super().switch_screen(screen)
        super().pop_screen()
        result = super().switch_screen(screen)
        self.fit_terminal()
        return result

    def pop_screen(self) -> Any:
        """Pop the current screen (the one under the "enlarge the terminal" screen if shown)."""
        if self.too_small_screen() is None or len(self.screen_stack) <= 2:
            return super().pop_screen()
        super().pop_screen()
        result = super().pop_screen()
        self.fit_terminal()
        return result

    # ---------------------------------------------------------------- global actions

    def action_help(self) -> None:
        from kcm_tui.screens.common import BaseScreen, HelpModal

        screen = self.screen
        keys: list[tuple[str, str]] = [("F1", "this help")]
        title = "OpenKCM Ceremony"
        about: Any = ""
        if isinstance(screen, BaseScreen):
            title = screen.TITLE_TEXT or title
            keys += list(screen.KEY_HELP)
            about = screen.help_about()
        listed = {k.lower() for k, _ in keys}
        for _key, active in screen.active_bindings.items():
            b = active.binding
            label = b.key_display or b.key
            if b.show and b.description and label.lower() not in listed:
                listed.add(label.lower())
                keys.append((label.upper() if len(label) <= 3 else label, b.description))
        self.push_screen(HelpModal(title, keys[:16], about))

    def action_refuse_copy(self) -> None:
        self.clipboard_refusals += 1
        self.notify("Copying is disabled in the ceremony program.", timeout=3)

    def action_noop(self) -> None:
        """Swallow keys that Textual would bind to something we do not want."""

    def action_request_quit(self) -> None:
        session = self.backend.session
        if session is not None and session.state == "running":
            self.notify("A ceremony is running: use F10 to abort it (with confirmation).", timeout=4)
            return
        from kcm_tui.screens.common import ConfirmModal

        def answer(yes: bool | None) -> None:
            if yes:
                self.wipe_and_exit()

        self.push_screen(ConfirmModal("Leave the ceremony program?", yes="Leave", no="Stay"), answer)

    def wipe_and_exit(self) -> None:
        """Stop the keyholder (it wipes), exit; power off on the ceremony ISO."""
        self.backend.close()
        self.exit(0)
        if self.poweroff:
            os.system("systemctl poweroff")  # the ISO's last step

    # ---------------------------------------------------------------- no clipboard, no screenshots

    def copy_to_clipboard(self, text: str) -> None:
        """Refused: nothing from this program ever reaches the clipboard (or OSC 52)."""
        self.clipboard_refusals += 1

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Refused: a screenshot would write the screen to disk."""
        self.notify("Screenshots are disabled in the ceremony program.", timeout=3)

    def save_screenshot(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("screenshots are disabled in the ceremony program")

    def deliver_screenshot(self, *args: Any, **kwargs: Any) -> str | None:
        self.notify("Screenshots are disabled in the ceremony program.", timeout=3)
        return None

    # ---------------------------------------------------------------- crash handling

    def _handle_exception(self, error: Exception) -> None:
        """Replace Textual's crash handler: no traceback, no locals, no message text."""
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        kind = type(error).__name__
        original = getattr(error, "error", None)  # WorkerFailed wraps the real one
        if isinstance(original, BaseException):
            kind = f"{kind}: {type(original).__name__}"
        try:
            done = self.backend.emergency_wipe(f"unexpected error in the ceremony program ({kind})")
        except Exception:  # never fail while failing
            done = ["the keyholder could not be reached: power the machine off"]
        self.crash_report = CRASH_TEXT.format(kind=kind, done="\n".join(f"  - {d}" for d in done))
        from rich.text import Text

        self._exit_renderables.clear()
        self._exit_renderables.append(Text(self.crash_report))
        self._close_messages_no_wait()

    def _fatal_error(self) -> None:  # pragma: no cover - _handle_exception never calls it
        self._handle_exception(RuntimeError("fatal error"))


# -------------------------------------------------------------------- entry point


def _quiet_excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """Last resort outside the app loop: the type only, never the message or locals."""
    sys.stderr.write(f"kcm-ceremony stopped: internal error ({exc_type.__name__}); no details are shown.\n")


#: The scripts shipped with the program (listed unless ``--scripts`` names folders).
BUNDLED_SCRIPTS = Path(__file__).resolve().parent.parent / "ceremony_scripts"


def make_app(args: argparse.Namespace, env: dict[str, str] | None = None) -> CeremonyApp:
    """Build the app from parsed arguments (also used by tests and the benchmark)."""
    scripts: list[Path] = list(args.scripts)
    media = args.media
    preselect = args.script
    if args.workspace is not None:
        from core.demo import load_workspace

        ws = load_workspace(args.workspace)
        scripts.append(ws.scripts)
        media = media or ws.media
        preselect = preselect or ws.preselect
        if ws.softhsm2_conf is not None:
            os.environ.setdefault("SOFTHSM2_CONF", str(ws.softhsm2_conf))
    if not args.scripts:  # --scripts DIR: that folder's scripts only
        scripts.append(BUNDLED_SCRIPTS)
    backend = Backend(demo=args.demo, media=media, scripts_dirs=scripts, share_display=ShareDisplay("/dev/tty"), env=env)
    return CeremonyApp(backend, preselect_script=preselect, poweroff=args.poweroff)


def main(argv: list[str] | None = None) -> int:
    """Start the TUI (``kcm-ceremony [--demo] [--workspace DIR] ...``)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from kcm_tui import supervisor

    leaks = sorted(set(environment_leaks(os.environ)) | set(supervisor.refused_variables(os.environ)))
    if leaks and not args.demo:
        sys.stderr.write(
            "kcm-ceremony refuses to start: these variables make the user interface write the\n"
            f"screen or its messages somewhere else: {', '.join(leaks)}.\n"
            f"Unset them (unset {' '.join(v.split('=')[0] for v in leaks)}) or start from a clean\n"
            "login on the console. (In a demo, --demo allows them with a warning.)\n"
        )
        return 2
    if not args.demo and not sys.flags.isolated:
        sys.stderr.write(
            "kcm-ceremony: the user interface runs only in Python's isolated mode, started by "
            "kcm-ceremony itself (not with --ui-child by hand)\n"
        )
        return 2
    if leaks:
        sys.stderr.write(f"DEMO: leaking variables set ({', '.join(leaks)}); allowed in demo mode only.\n")
    sys.excepthook = _quiet_excepthook
    threading.excepthook = lambda a: _quiet_excepthook(a.exc_type, a.exc_value or Exception(), a.exc_traceback)
    app = make_app(args)
    try:
        result = app.run()
    finally:
        app.backend.close()
    return int(app.return_code if app.return_code is not None else (result or 0))
