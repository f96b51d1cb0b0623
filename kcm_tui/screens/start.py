"""Start: preflight results, ceremony script, export media."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from kcm_tui.backend import BackendError, Check, ScriptInfo
from kcm_tui.backend_recovery import UnfinishedView
from kcm_tui.screens.common import BaseScreen, MessageModal

STATUS_STYLE = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold white on red"}


ORDER = {"FAIL": 0, "WARN": 1}


def preflight_text(checks: list[Check]) -> Table:
    """One row per check, FAIL and WARN first; what to do under every WARN and FAIL. A long
    reason wraps under itself (the status and name columns keep their width)."""
    out = Table.grid(padding=(0, 1, 0, 0))
    out.add_column(width=4, no_wrap=True)
    out.add_column(width=18, no_wrap=True, overflow="fold")
    out.add_column(ratio=1)
    for c in sorted(checks, key=lambda c: ORDER.get(c.status, 2)):
        reason = Text(c.reason)
        if c.status != "PASS":
            reason.append("\ndo: ", style="yellow")
            reason.append(c.action)
        out.add_row(Text(c.status, style=STATUS_STYLE.get(c.status, "bold")), Text(c.name, style="bold"), reason)
    return out


class CheckBox(VerticalScroll):
    """The workstation checks; its bottom edge says how many lines are below the visible
    ones ("↓ 3 more lines") so a WARN scrolled out of view is never missed."""

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_more)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.show_more()

    def show_more(self) -> None:
        """Set the bottom edge's text."""
        below = int(self.virtual_size.height - self.scroll_y - self.scrollable_content_region.height)
        self.border_subtitle = f"\u2193 {below} more line{'s' if below != 1 else ''} Shift+Tab, Down" if below > 0 else ""


def script_hash_text(s: ScriptInfo) -> Text:
    """The script's SHA-256 as words: the witness compares them with the printed script
    (``kcm-ceremony script print``) before the ceremony begins."""
    words = s.hash_words
    if not s.valid or not words:
        return Text("")
    out = Text("Script SHA-256 (compare with the printed script): ", style="bold")
    out.append(" ".join(words))
    return out


#: Lines of a script's description shown under the list (F3 shows all of it).
ABOUT_LINES = 2


def about_lines(text: str, width: int, lines: int = ABOUT_LINES) -> str:
    """``text`` in at most ``lines`` lines of ``width`` columns, cut at a word and followed
    by "(more: F3)" when it is longer (never cut mid-word, never a silent cut)."""
    wrapped = textwrap.wrap(text, width)
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    more = " (more: F3)"
    shown = wrapped[:lines]
    last = textwrap.wrap(shown[-1], width - len(more))[0]
    return "\n".join([*shown[:-1], last + more])


class StartScreen(BaseScreen[None]):
    """Preflight, script and media: everything checked before the ceremony begins."""

    TITLE_TEXT = "Start"
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Tab/Shift+Tab", "move between the script list, the medium field, Begin"),
        ("Up/Down", "choose a ceremony script"),
        ("Enter", "on Begin: open the ceremony"),
        ("F3", "the highlighted script's whole description"),
        ("F4", "choose the ceremony medium from the removable media"),
        ("F5", "run the workstation checks again"),
        ("F6", "close a journal a crash left open"),
        ("Ctrl+Q", "leave the program (asks first)"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        # F5, not a letter: a letter typed in the media field is part of the path
        Binding("f3", "describe", "Script", show=False),  # the "(more: F3)" says it
        Binding("f4", "choose_medium", "Medium"),
        Binding("f5", "rerun", "Re-check"),
        Binding("f6", "close_interrupted", "Close unfinished"),
        Binding("ctrl+q", "app.request_quit", "Quit", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[Check] = []
        self.script_list: list[ScriptInfo] = []
        self.scripts_loaded = False  # the worker's list has been shown
        self.checking = False  # the workstation checks run in a worker
        self.checks_done = False
        self.error = ""
        self.unfinished: list[UnfinishedView] = []
        self._fit_key: tuple[int, int, int] = (0, 0, 0)  # what the rows were last shared for
        #: True from a change of size or content until the rows are shared stably (tests wait on it)
        self.fitting = False

    def compose(self) -> ComposeResult:
        """Title, the checks, the script list and the medium field."""
        yield from self.compose_banners()
        yield Static("", id="preflight-summary")
        box = CheckBox(id="preflight-box", classes="panel", can_focus=True)
        box.border_title = "Start: the workstation checks"
        # the checks and the script list share the rows left; the medium and Begin stay at
        # the bottom, always on the screen (this part scrolls if ever too tall)
        with Vertical(id="start-middle"):
            with box:
                yield Static("", id="preflight")
            with Vertical(id="start-controls"):
                yield Static("reading the ceremony scripts...", classes="muted")
        yield Vertical(id="start-media")
        yield Static("", id="start-error", classes="error")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        # The first frame says "Workstation: checking..."; the checks start once it is on
        # the screen (the app's Ready) and run in a worker thread (their first run imports
        # the probes and reads /proc and /sys: ~5% of the cold start; started earlier, the
        # thread would take the GIL from the first frame). The script list and the media
        # field (and parsing every script, ~0.1 s) follow the first frame too, as mounting
        # them loads and applies the CSS of OptionList/Input/Button (~10% of the cold start).
        """Paint first, then run the checks and mount the controls."""
        self.query_one("#preflight-summary", Static).update(Text("Workstation: checking...", style="bold"))
        self.query_one("#start-error").display = False
        self.capp.after_first_paint(self.run_checks)
        self.capp.after_first_paint(self.mount_controls)

    def mount_controls(self) -> None:
        """The script list, the medium field and Begin."""
        controls = self.query_one("#start-controls", Vertical)
        controls.remove_children()
        scripts = OptionList(Option("reading the ceremony scripts...", disabled=True), id="scripts")
        scripts.border_title = "Ceremony script"
        controls.mount_all(
            [
                Static("", id="unfinished"),
                scripts,
                Static("", id="script-about", classes="muted"),
                Static("", id="script-hash"),
            ]
        )
        field = Input(str(self.capp.backend.media or ""), placeholder="ceremony medium: F4 lists them, or type a folder",
                      id="media")
        field.border_title = "Ceremony medium (F4 chooses)"
        chooser = Button("F4 Medium", id="choose-medium")
        chooser.can_focus = False  # F4 from anywhere; Tab keeps going field -> Begin
        media = self.query_one("#start-media", Vertical)
        if not media.is_attached:  # the app is leaving before its first refresh: nothing to mount into
            return
        media.mount(
            Horizontal(
                field,
                chooser,
                Button("Begin", id="begin", variant="primary"),
                classes="buttons",
                id="media-row",
            )
        )
        self.call_after_refresh(self.controls_ready)

    def controls_ready(self) -> None:
        """Fill the script list and choose the preselected script."""
        scripts = self.query("#scripts").results(OptionList)
        lst = next(scripts, None)
        if lst is None:  # the app is leaving before its first refresh: nothing to read
            return
        lst.focus()
        # Reading and validating the scripts is plain file parsing of public data: a thread.
        self.run_in_thread(self._read_scripts, lambda res: self.load_scripts(*res), group="scripts",
                           name="read-scripts")
        self.query_one("#unfinished").display = False
        self.find_unfinished()

    # ---------------------------------------------------------------- after a crash

    def find_unfinished(self) -> None:
        """Look for OPEN journals on the medium (a worker thread: they are read and verified)."""
        field = self.query("#media").results(Input)
        typed = next(field, None)
        extra = Path(typed.value.strip()) if typed is not None and typed.value.strip() else None
        self.run_in_thread(lambda: self.capp.backend.unfinished(extra), self.show_unfinished,
                           group="unfinished", name="find-unfinished")

    def show_unfinished(self, found: list[UnfinishedView]) -> None:
        """Say which ceremony a crash left unfinished, and how to close it."""
        self.unfinished = found
        row = self.query_one("#unfinished", Static)
        row.display = bool(found)
        if not found:
            self.schedule_fit()
            return
        text = Text("UNFINISHED", style="bold black on yellow")
        text.append(" " + found[0].summary, style="bold")
        if len(found) > 1:
            text.append(f" (and {len(found) - 1} more)")
        text.append(". F6 closes it as interrupted.", style="yellow")
        row.update(text)
        self.schedule_fit()

    def action_close_interrupted(self) -> None:
        """F6: close the first unfinished ceremony's journal as interrupted."""
        if not self.unfinished:
            self.notify("No unfinished ceremony on this medium.", timeout=4)
            return
        view = self.unfinished[0]
        if view.problem:
            self.app.push_screen(MessageModal(f"{view.ceremony_id} cannot be closed here", view.text, error=True))
            return
        from kcm_tui.screens.closing import InterruptedModal

        def answer(result: tuple[str, str] | None) -> None:
            if result is None:
                return
            try:
                closed = self.capp.backend.close_interrupted(view, *result)
            except BackendError as exc:
                self.app.push_screen(MessageModal("The journal was not closed", str(exc), error=True))
                return
            lines = list(closed.lines)
            lines.append("Write the final hash on the paper log (journal verify --final checks it):")
            lines.append(" ".join(closed.final_words))
            self.app.push_screen(MessageModal("Closed as interrupted", "\n".join(lines)))
            self.find_unfinished()

        self.app.push_screen(InterruptedModal(view), answer)

    def _read_scripts(self) -> tuple[list[ScriptInfo], str]:
        try:
            return self.capp.backend.scripts(), ""
        except BackendError as exc:
            return [], str(exc)

    # ---------------------------------------------------------------- checks

    def run_checks(self) -> None:
        """Run the workstation checks in a worker thread (they read /proc and /sys, and the
        first run imports the probes: the screen is drawn meanwhile); Begin waits for them."""
        if self.checking:
            return
        self.checking = True
        self.checks_done = False
        self.query_one("#preflight-summary", Static).update(Text("Workstation: checking...", style="bold"))
        self.run_in_thread(self._preflight, self.show_checks, group="preflight", name="preflight")

    def _preflight(self) -> list[Check]:
        try:
            return self.capp.backend.preflight()
        except BackendError as exc:
            return [Check("preflight", "FAIL", str(exc), "use a build with core.preflight")]

    def show_checks(self, checks: list[Check]) -> None:
        """Show the workstation checks."""
        self.checks = checks
        self.checking = False
        self.checks_done = True
        fails = sum(c.status == "FAIL" for c in self.checks)
        warns = sum(c.status == "WARN" for c in self.checks)
        passes = sum(c.status == "PASS" for c in self.checks)
        summary = Text("Workstation: ", style="bold")
        summary.append(f"{passes} PASS", style="green")
        summary.append(", ")
        summary.append(f"{warns} WARN", style="yellow")
        summary.append(", ")
        summary.append(f"{fails} FAIL", style="bold red" if fails else "")
        if fails:
            summary.append("  - the ceremony cannot begin: see 'do:' below", style="bold red")
        self.query_one("#preflight-summary", Static).update(summary)
        self.query_one("#preflight", Static).update(preflight_text(self.checks))
        self.schedule_fit()

    def action_rerun(self) -> None:
        """F5: run the checks again."""
        self.run_checks()

    # ---------------------------------------------------------------- scripts

    def load_scripts(self, scripts: list[ScriptInfo], error: str = "") -> None:
        """List the ceremony scripts (valid or not, with their problems)."""
        ol = self.query_one("#scripts", OptionList)
        ol.clear_options()
        self.script_list = scripts
        self.scripts_loaded = True
        if error:
            self.show_error(error)
        for s in self.script_list:
            label = Text()
            if s.practice:
                label.append("[PRACTICE] ", style="bold black on yellow")
            if s.path.stem == s.name:  # the file's name says the script's name: once, not twice
                label.append(s.name, style="bold")
                label.append(f"{s.path.suffix}  ({s.purpose})")
            else:
                label.append(s.name, style="bold")
                label.append(f"  ({s.purpose}, {s.path.name})")
            if not s.valid:
                label.append(f"  INVALID: {len(s.problems)} problem(s)", style="bold red")
            elif s.demo_values and not s.practice:
                label.append("  DEMO VALUES", style="bold black on yellow")
            ol.add_option(Option(label, id=str(s.path)))
        if not self.script_list:
            self.show_error("no ceremony scripts found: put the scripts (*.toml) in the scripts folder")
            return
        preselect = 0
        wanted = self.capp.preselect_script
        for i, s in enumerate(self.script_list):
            if wanted and (s.path.name == wanted or s.name == wanted or str(s.path) == wanted):
                preselect = i
                break
        ol.highlighted = preselect
        self.describe(preselect)
        self.schedule_fit()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """Describe the highlighted script."""
        self.describe(event.option_index)

    def describe(self, index: int) -> None:
        """Show the script's description (or its first problems) and its hash words."""
        if not 0 <= index < len(self.script_list):
            return
        s = self.script_list[index]
        text = s.description if s.valid else "; ".join(s.problems[:2])
        about = Text(about_lines(text, self.size.width or 80))
        if s.valid and s.demo_values and not s.practice:
            n = len(s.demo_values)
            about = Text(  # one line at 80 columns; Begin (or script check) lists them
                f"{n} demo value(s): allowed in this demo; edit them for a real ceremony."
                if self.capp.backend.demo
                else f"{n} demo value(s): edit this script before a real ceremony (Begin lists them).",
                style="bold yellow",
            )
        self.query_one("#script-about", Static).update(about)
        self.query_one("#script-hash", Static).update(script_hash_text(s))
        self.schedule_fit()

    def action_describe(self) -> None:
        """F3: the highlighted script's whole description (or all its problems)."""
        s = self.selected_script()
        if s is None:
            return
        body = s.description if s.valid else "\n".join(s.problems)
        self.app.push_screen(MessageModal(f"{s.name} ({s.path.name})", body, error=not s.valid))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on a script: begin."""
        self.query_one("#media", Input).focus()

    def selected_script(self) -> ScriptInfo | None:
        """The highlighted script (None when none)."""
        idx = self.query_one("#scripts", OptionList).highlighted
        if idx is None or not 0 <= idx < len(self.script_list):
            return None
        return self.script_list[idx]

    # ---------------------------------------------------------------- begin

    def show_error(self, text: str) -> None:
        """Show an error under the controls."""
        self.error = text
        line = self.query_one("#start-error", Static)
        line.update(text)
        line.display = bool(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the medium field: begin."""
        self.begin()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Begin."""
        if event.button.id == "begin":
            self.begin()
        elif event.button.id == "choose-medium":
            self.action_choose_medium()

    def action_choose_medium(self) -> None:
        """F4: choose the ceremony medium among the removable media; the field gets its
        mount point (or its device, mounted when the ceremony opens)."""
        from kcm_tui.widgets.media_chooser import MediumModal

        fields = list(self.query("#media").results(Input))
        if not fields:
            return
        field = fields[0]

        def chosen(value: str | None) -> None:
            if value:
                field.value = value
                field.cursor_position = len(value)
                self.show_error("")
                self.find_unfinished()
                self.query_one("#begin", Button).focus()

        self.app.push_screen(MediumModal(self.capp.backend, field.value.strip()), chosen)

    # ---------------------------------------------------------------- layout

    def on_resize(self) -> None:
        """Describe the script for the new width; share the rows again."""
        lists = list(self.query("#scripts").results(OptionList))
        if lists and lists[0].highlighted is not None:
            self.describe(lists[0].highlighted)
        self.schedule_fit()

    def schedule_fit(self) -> None:
        """Share the rows again after the next refresh (``fitting`` until the layout is stable)."""
        self.fitting = True
        self.call_after_refresh(self.fit_lists)

    def fit_lists(self) -> None:
        """Share the rows: when both fit, the checks get their lines and the script list
        the rest; otherwise the script list half of the rows (at least one script shown) and
        the checks the other half (both scroll, the checks say how much is below)."""
        lists = list(self.query("#scripts").results(OptionList))
        if not lists:
            self.fitting = False
            return
        scripts = lists[0]
        box = self.query_one("#preflight-box", CheckBox)
        controls = self.query_one("#start-controls")
        middle = self.query_one("#start-middle")
        used = sum(w.outer_size.height for w in controls.children if w.display and w is not scripts)
        free = middle.size.height - used
        list_want = max(1, scripts.option_count) + 2
        box_want = self.query_one("#preflight").outer_size.height + 2
        key = (free, list_want, box_want)
        if key == self._fit_key:
            self.fitting = False  # stable: the same measures twice
            return
        self._fit_key = key  # measured again after this layout: a line that wrapped differently
        self.schedule_fit()
        if box_want + list_want <= free:
            box_h, list_h = box_want, free - box_want
        else:
            list_h = max(3, min(list_want, free // 2))
            box_h = max(3, free - list_h)
        box.styles.height = box_h
        scripts.styles.height = list_h
        count = scripts.option_count
        scripts.border_subtitle = f"{count} scripts, {list_h - 2} shown: Up/Down scrolls" if list_h - 2 < count else ""
        box.call_after_refresh(box.show_more)
        # the preselected script stays in view when the list gets fewer rows than it has
        # scripts (many WARN lines on the workstation: the list is given half the rows)
        scripts.call_after_refresh(scripts.scroll_to_highlight)

    def begin(self) -> None:
        """Open the chosen script on the medium (refused while checks FAIL outside demo mode)."""
        backend = self.capp.backend
        if not self.checks_done:
            self.show_error("The workstation checks are still running: Begin when they are shown.")
            return
        fails = [c for c in self.checks if c.status == "FAIL"]
        if fails and not backend.demo:
            names = ", ".join(c.name for c in fails)
            self.show_error(f"Cannot begin: {len(fails)} check(s) failed ({names}). Fix them, then press F5.")
            return
        script = self.selected_script()
        if script is None:
            self.show_error("Choose a ceremony script first.")
            return
        if not script.valid:
            self.app.push_screen(MessageModal(f"{script.path.name} cannot be used", "\n".join(script.problems[:8]), error=True))
            return
        demo_problem = backend.demo_values_problem(script)
        if demo_problem:
            body = "\n".join([*script.demo_values, "",
                              f"Edit {script.path} for this ceremony, check it with",
                              f"'kcm-ceremony script check {script.path.name}', then start again."])
            self.app.push_screen(MessageModal(f"{script.path.name} still has demo values", body, error=True))
            return
        media = Path(self.query_one("#media", Input).value.strip()) if self.query_one("#media", Input).value.strip() else None
        problem = backend.media_problem(media)
        if problem:
            self.show_error(problem)
            return
        assert media is not None
        try:
            backend.open(script, media)
        except BackendError as exc:
            self.show_error(str(exc))
            if len(str(exc)) > 76:  # the error line holds one line at 80 columns: all of it here
                self.app.push_screen(MessageModal("The ceremony cannot begin", str(exc), error=True))
            return
        from kcm_tui.screens.runner import RunnerScreen

        self.app.switch_screen(RunnerScreen())
