"""The step runner: act and step titles, instruction, the step's own panel, who must
acknowledge, progress through the script, exceptions and abort.

The screen is a view over the engine (``backend.Session`` -> ``core.ceremony.engine``):
it shows ``current()``, sends intents (perform, acknowledge, confirm, complete, retry,
record_exception, abort) and re-reads the state after each one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, LoadingIndicator, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from core.ceremony.state import ExportVerdict, MediumVerdict, decide_medium_verdict
from kcm_tui.backend import BackendError, StepView, read_only_reason
from kcm_tui.screens.common import CeremonyScreen, replace_children
from kcm_tui.screens.continuegate import continue_needs
from kcm_tui.screens.stepbodies import (
    rotation_body,
    seal_body,
    summary_body,
    words_body,
)
from kcm_tui.widgets.ack import AckBox
from kcm_tui.widgets.media_chooser import medium_line, same_medium
from kcm_tui.widgets.progress import ActOutline, Breadcrumb, CustodianTable

#: Steps whose action is started with a button (label). Others act when shown
#: (preflight, fingerprints) or on Continue (checklist, attendance).
ACTION_LABEL = {
    "generate": "Generate the MasterKey",
    "distribute-shares": "Hand out the shares",
    "collect-shares": "Collect the shares",
    "check-shares": "Check the shares",
    "recover": "Recover the MasterKey",
    "seal": "Seal",
    "export": "Write to the media",
    "wipe": "Wipe the key from memory",
    "continuity-statement": "Write the continuity statement",
    "mark-rotated-out": "Mark the old set rotated out",
    "byok": "Export for BYOK...",
}
AUTO_PERFORM = ("preflight", "verify-fingerprint", "verify-kcv")
CONFIRMED = ("verify-fingerprint", "verify-kcv")


class RunnerScreen(CeremonyScreen):
    """Runs the script step by step over the session."""

    TITLE_TEXT = "Step runner"
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Tab/Shift+Tab", "move between the boxes and the buttons"),
        ("Space/Enter", "tick a box, press a button"),
        ("F2", "record an exception (a deviation from the script) in the journal"),
        ("F10", "abort the ceremony (asks first; the keyholder wipes)"),
    ]
    EXCEPTION_TIMEOUT: ClassVar[float] = 4
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "abort", "Abort", show=False, priority=True),
        Binding("f5", "refresh_media", "Refresh media", show=False),
    ]

    class WriteProgress(Message):
        """Bytes written so far (posted from the export worker: thread-safe, non-blocking)."""

        def __init__(self, done: int, total: int, name: str) -> None:
            super().__init__()
            self.done = done
            self.total = total
            self.name = name

    def __init__(self) -> None:
        super().__init__()
        # the act outline is a side panel from WIDE columns, a breadcrumb below: app.tcss, on
        # the app's -narrow / -wide classes (CeremonyApp.HORIZONTAL_BREAKPOINTS, the same 120)
        self.view: StepView | None = None
        self.error = ""
        self.busy = ""  # "seal" / "export" while a worker runs the step
        #: the export medium's state shown under an export step: (step index, state, text);
        #: state is "writing", "safe", "synced" (still mounted) or "failed"
        self.medium_state: tuple[int, str, Text] | None = None
        #: the export-medium chooser: (step index, media listed) or None (fixed medium)
        self.media_choices: tuple[int, list[Any]] | None = None
        self.chosen_medium: Any = None

    def compose(self) -> ComposeResult:
        """Step header, progress, the step body, acknowledgments, buttons and the error line."""
        yield from self.compose_banners()
        yield ActOutline(id="act-outline")
        yield Static("", id="step-head", classes="subtitle")
        yield Breadcrumb(id="breadcrumb")
        yield ProgressBar(total=self.session.total_steps(), show_eta=False, show_percentage=False, id="step-progress")
        yield Static("", id="step-title", classes="title")
        yield Static("", id="instruction")
        yield CustodianTable(id="custodians")
        yield Vertical(id="step-body")
        yield Static("", id="step-error", classes="error")
        yield Static("", id="acks-label", classes="muted")
        yield Vertical(id="acks")
        with Horizontal(classes="buttons"):
            yield Button("Do it", id="action", variant="primary")
            yield Button("Retry", id="retry", variant="error")
            yield Button("Continue", id="continue", variant="primary")
        yield Static("", id="continue-needs")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        """Show the current step."""
        self.show_step()

    # ---------------------------------------------------------------- rendering a step

    def show_step(self) -> None:
        """Show the engine's current step (or the summary once the ceremony is over)."""
        view = self.session.current()
        if view is None:
            self.finished()
            return
        self.view = view
        self.set_error(view.error)
        head = Text()
        head.append(view.act_title, style="bold cyan")
        head.append(f"   step {view.index + 1} of {self.session.total_steps()}   ", style="bold")
        head.append(f"[{view.kind}]", style="grey70")
        self.query_one("#step-head", Static).update(head)
        self.query_one("#step-progress", ProgressBar).update(progress=self.session.progress()[0])
        self.query_one("#step-title", Static).update(view.title)
        self.query_one("#instruction", Static).update(view.instruction)
        if view.kind in AUTO_PERFORM and not view.performed and view.state == "active":
            try:
                self.session.perform()
            except BackendError as exc:
                self.set_error(str(exc))
            view = self.session.current() or view
            self.view = view
        self.show_progress(view)
        self.fill_body(view)
        self.fill_acks(view)
        self.update_buttons()
        # the step's action takes the focus now, not only once its boxes are mounted: an
        # Enter typed as soon as the new step is drawn must press the action, not Continue
        # (which still has the focus from the step before and is not ready here)
        self.focus_action()

    def show_progress(self, view: StepView) -> None:
        """The act outline or breadcrumb, and the custodian table (kcm_tui.widgets.progress)."""
        acts = self.session.act_outline()
        self.query_one(ActOutline).show(acts)
        self.query_one(Breadcrumb).show(acts, f"step {view.index + 1} of {self.session.total_steps()}")
        self.query_one(CustodianTable).show(self.session, view)

    def help_about(self) -> Text:
        """F1: the current step's instruction and its runbook (kcm_tui.stephelp)."""
        from kcm_tui.stephelp import step_help

        return step_help(self.view, self.session.total_steps())

    def fill_body(self, view: StepView) -> None:
        """Fill the step body for ``view``'s kind."""
        replace_children(self.query_one("#step-body", Vertical), self.body_for(view), then=self.update_buttons)

    def fill_acks(self, view: StepView) -> None:
        """One box per role that acknowledges the step."""
        boxes: list[AckBox] = []
        for rid in view.acknowledge:
            box = AckBox(self.session.role_name(rid), id=f"ack-{rid}", classes=f"ack step-{view.index}")
            box.value = rid in view.acks
            boxes.append(box)
        self.query_one("#acks-label", Static).update(
            "Acknowledged by (tick each as the person confirms aloud):" if boxes else "No acknowledgement needed."
        )
        replace_children(self.query_one("#acks", Vertical), boxes, "ackgrid", then=self.boxes_mounted)

    def boxes_mounted(self) -> None:
        """The step's boxes exist: say what Continue needs, then place the focus."""
        self.update_buttons()
        self.focus_first()

    def body_for(self, view: StepView) -> list[Any]:
        """The widgets of a step of ``view``'s kind (items, roles, words, results, medium...)."""
        kind = view.kind
        p = view.params
        if kind == "checklist":
            return [AckBox(str(item), id=f"item-{i}", classes="item") for i, item in enumerate(p.get("items", ()))]
        if kind == "attendance":
            return [
                Static("Tick each person present (public record):", classes="muted"),
                Vertical(
                    *[
                        AckBox(self.session.role_name(rid), id=f"present-{rid}", classes="present")
                        for rid in self.session.attendance_roles(view)
                    ],
                    classes="ackgrid",
                ),
            ]
        if kind == "preflight":
            return [self.preflight_summary(view)]
        if kind in CONFIRMED:
            d = view.display
            if not d:
                return []
            caption = (
                f"Fingerprint of {d.get('subject', 'the key')}: the administrator reads the words aloud,"
                " the witness compares them with the printed copy."
                if kind == "verify-fingerprint"
                else "NOT VERIFIED against any manifest: the witness compares these words with the"
                " genesis record. Nothing is sealed until they match."
                if d.get("not_verified")
                else "The NEW key's check value: read the words aloud; the witness writes them in the paper"
                " log beside the old key's."
                if view.params.get("key") == "new"
                else "Key check value: read the words aloud; the witness writes them in the paper log."
            )
            out = words_body(caption, str(d.get("kcv", "")), str(d.get("fingerprint", "")), list(d.get("words", [])))
            witness = str(view.params.get("witness", ""))
            if witness:
                box = AckBox(
                    f"{self.session.role_name(witness)}: the words match my independent copy",
                    id=f"confirm-{witness}",
                    classes="confirm",
                )
                box.value = view.confirmed_by == witness
                out.append(box)
            return out
        if kind == "byok" and not view.performed:
            from kcm_tui.screens.byok import byok_summary

            return [Static(byok_summary(view)), *self.medium_body(view)]
        if view.performed and view.results:
            return self.results_body(view)
        return self.medium_body(view)

    def preflight_summary(self, view: StepView) -> Static:
        """The preflight result in one block."""
        pre = view.results.get("preflight") or {}
        checks: dict[str, str] = dict(pre.get("checks", {}))
        bad = {k: v for k, v in checks.items() if v != "PASS"}
        t = Text(f"{len(checks) - len(bad)} of {len(checks)} workstation checks PASS", style="bold")
        t.append(f" ({pre.get('mode', '?')} mode).")
        if bad:
            t.append("\n" + ", ".join(f"{k} {v}" for k, v in bad.items()), style="yellow")
        return Static(t)

    def results_body(self, view: StepView) -> list[Any]:
        """The step's public results (fingerprints, set id, files written...)."""
        r = view.results
        kind = view.kind
        rotation = rotation_body(view)
        if rotation is not None:
            return rotation
        if kind in ("generate", "recover"):
            from core.words import to_words  # public words of a public fingerprint

            fp = str(r.get("fingerprint", ""))
            words = list(r.get("kcv_words") or (to_words(bytes.fromhex(fp)[:8]) if fp else []))
            what = "generated" if kind == "generate" else "recovered"
            extra = " It matches the share set's manifest." if r.get("matches_manifest") else ""
            if kind == "recover" and r.get("verified") is False:
                extra = " NOT VERIFIED against any manifest: a witness compares the words next."
            return words_body(f"MasterKey {what}.{extra} Its check value, to read aloud:", str(r.get("kcv", "")), fp, words)
        if kind == "seal":
            return seal_body(view)
        if kind == "summary":
            return summary_body(view)
        if kind == "wipe":
            return [Static("The keyholder wiped every secret it held.", classes="ok")]
        if kind == "distribute-shares":
            text = f"Share set {r.get('set_id', '?')}: every custodian has been shown their share."
            progress = self.session.distribution()
            if progress is not None:  # the engine's record: typed back / read back and verified
                due = [c for c in progress.order if progress.status(c).value == "due"]
                checked = [c for c in progress.order if progress.status(c).value == "checked"]
                if due:  # one line: the table above names who
                    text = (f"Share set {r.get('set_id', '?')}: {len(due)} of {progress.total} still to hand out;"
                            f" {len(checked)} verified.")
                    return [Static(text, classes="warn")]
                text += f"\nShares verified (typed back or read back from the card): {len(checked)} of {progress.total}."
            return [Static(text, classes="ok")]
        if kind == "collect-shares":
            return [Static(f"Enough shares of set {r.get('set_id', '?')} were collected.", classes="ok")]
        if kind == "byok":
            files = r.get("files", {})
            t = Text()
            t.append(f"{r.get('provider', '?')}: wrapped with {r.get('method', '?')} and written to ", style="bold")
            t.append(f"{r.get('folder', '?')}: " + ", ".join(files))
            if r.get("valid_until_utc"):
                t.append(f"\nImport before {r['valid_until_utc']}.", style="bold yellow")
            t.append(f"\nWrapping key confirmed by {r.get('confirmed_by', '?')}.", style="grey70")
            return [Static(t, classes="ok")]
        if kind == "export":
            files = r.get("files", {})
            out: list[Any] = [
                Static(f"Written to {r.get('folder', '?')}: " + ", ".join(files) if files else "Nothing to write now.", classes="ok")
            ]
            return out + self.medium_body(view)
        return [Static("Done.", classes="ok")]

    def medium_body(self, view: StepView) -> list[Any]:
        """The export medium's state line (writing / safe to remove / failed) for this step,
        and the chooser while the step has not written yet."""
        if view.kind not in ("export", "byok"):
            return []
        out: list[Any] = []
        if not view.performed and not self.busy:
            out += self.chooser_body(view)
        ms = self.medium_state
        if ms is not None and ms[0] == view.index:
            out.append(Static(ms[2], id="medium-state", classes=f"medium-{ms[1]}"))
        return out

    # ---------------------------------------------------------------- export-medium chooser

    def load_media(self, view: StepView, *, again: bool = False) -> list[Any] | None:
        """The media listed for this export step (listed once per step; F5 lists again).
        Default: the demo folder in demo mode; in a ceremony nothing is preselected."""
        if self.media_choices is not None and self.media_choices[0] == view.index and not again:
            return self.media_choices[1]
        try:
            media = self.session.export_media_choices()
        except BackendError as exc:
            self.set_error(str(exc))
            media = []
        if media is None:
            self.media_choices = None
            return None
        first = self.media_choices is None or self.media_choices[0] != view.index
        self.media_choices = (view.index, list(media))
        chosen = self.chosen_medium
        if first and chosen is None and self.capp.backend.demo:
            chosen = next((m for m in media if m.demo and not m.read_only), None)
        elif chosen is not None:  # keep the choice only if it is still there and writable
            chosen = next((m for m in media if same_medium(m, chosen) and not m.read_only), None)
        self.set_medium(chosen)
        return self.media_choices[1]

    def set_medium(self, medium: Any) -> bool:
        """Export to ``medium`` from now on (True when the engine took it)."""
        try:
            self.session.set_export_medium(medium)
        except BackendError as exc:
            self.set_error(str(exc))
            return False
        self.chosen_medium = medium
        return True

    #: One line describing a medium in the chooser (shared with the start screen).
    medium_line = staticmethod(medium_line)

    def chooser_body(self, view: StepView) -> list[Any]:
        """The export-medium chooser (removable media; the demo folder in demo mode)."""
        media = self.load_media(view)
        if media is None:
            return []
        chosen = self.chosen_medium
        options = [
            Option(self.medium_line(m), id=f"medium-{i}", disabled=bool(m.read_only)) for i, m in enumerate(media)
        ]
        listing = OptionList(*options, id="media-list")
        if chosen is not None:
            listing.highlighted = next((i for i, m in enumerate(media) if same_medium(m, chosen)), None)
        listing.styles.height = "auto"
        listing.styles.max_height = 8
        caption = Static(
            "Export medium: choose with Enter; F5 lists the media again after inserting a stick."
            if media else "No removable medium found: insert a USB stick, wait a moment, then press F5.",
            id="media-caption", classes="muted",
        )
        line = Text()
        if chosen is None:
            line.append("No medium chosen: the export is not written until you choose one.", style="bold yellow")
        else:
            line.append("Writes to: ", style="bold")
            line.append(str(chosen.describe()))
        out: list[Any] = [caption]
        if media:
            out.append(listing)
        out.append(Static(line, id="medium-chosen"))
        return out

    def choose_medium(self, index: int) -> None:
        """Choose the listed medium ``index`` (a read-only one is refused, with the reason)."""
        view = self.view
        if view is None or self.media_choices is None or self.busy:
            return
        media = self.media_choices[1]
        if not 0 <= index < len(media):
            return
        m = media[index]
        reason = read_only_reason(m)
        if reason:
            self.set_error(f"{m.label} cannot be used: {reason}")
            return
        if self.set_medium(m):
            self.set_error("")
        self.fill_body(view)
        self.update_buttons()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A medium was chosen in the chooser."""
        if event.option_list.id == "media-list" and event.option.id:
            event.stop()
            self.choose_medium(int(event.option.id.removeprefix("medium-")))

    def action_refresh_media(self) -> None:
        """F5: list the media again."""
        view = self.view
        if view is None or view.kind not in ("export", "byok") or view.performed or self.busy:
            return
        if self.load_media(view, again=True) is None:
            return
        self.fill_body(view)
        self.update_buttons()

    def needs_medium(self, view: StepView) -> bool:
        """The export step waits for the administrator to choose a medium."""
        return (
            view.kind in ("export", "byok") and not view.performed and self.media_choices is not None
            and self.media_choices[0] == view.index and self.chosen_medium is None
        )

    def focus_first(self) -> None:
        """Focus what the step needs first (the chooser, a box, the action)."""
        if self.view is not None and self.needs_medium(self.view):
            for listing in self.query("#media-list").results(OptionList):
                listing.focus()
                return
        if self.focus_action():
            return
        for box in self.query(AckBox).results(AckBox):
            if not box.value:
                box.focus()
                return
        self.query_one("#continue", Button).focus()

    def focus_action(self) -> bool:
        """Focus the step's action (or Retry) when it is shown and enabled."""
        for bid in ("#action", "#retry"):
            b = self.query_one(bid, Button)
            if b.display and not b.disabled:
                b.focus()
                return True
        return False

    # ---------------------------------------------------------------- state

    def set_error(self, text: str) -> None:
        """Show an error under the step."""
        self.error = text
        self.query_one("#step-error", Static).update(text)

    def update_buttons(self) -> None:
        """Enable the action, Retry and Continue as the step's state allows."""
        view = self.view
        if view is None:
            return
        failed = view.state == "failed"
        action = self.query_one("#action", Button)
        label = ACTION_LABEL.get(view.kind)
        resume = view.kind == "distribute-shares" and view.performed and bool(self.distribution_due())
        if resume:  # the split is done but custodians are still due: the button takes you back
            label = "Resume handing out the shares"
        action.display = label is not None and (not view.performed or resume) and not failed
        action.label = label or ""
        action.disabled = bool(self.busy) or self.needs_medium(view)
        retry = self.query_one("#retry", Button)
        retry.display = failed
        cont = self.query_one("#continue", Button)
        # not ready: still enabled (Tab reaches it) and pressing it says what is missing;
        # disabled only while a seal / export worker runs
        cont.disabled = bool(self.busy)
        missing = [] if self.busy else continue_needs(
            view, self.query(AckBox).results(AckBox), self.session.role_name, action=label,
            needs_perform=view.kind in ACTION_LABEL or view.kind in AUTO_PERFORM,
        )
        cont.set_class(bool(missing), "-waiting")
        hint = self.query_one("#continue-needs", Static)
        hint.update("Continue needs: " + "; ".join(missing) if missing else "")
        hint.display = bool(missing)
        hint.remove_class("-refused")

    def refresh_view(self) -> None:
        """Read the current step again and refresh the buttons."""
        self.view = self.session.current()
        if self.view is None:
            self.finished()
            return
        self.set_error(self.view.error)
        self.update_buttons()

    def on_checkbox_changed(self, event: AckBox.Changed) -> None:
        """A box changed: a witness confirmation box asks the engine to record the confirmation."""
        box = event.checkbox
        if self.view is None or not box.id:
            return
        if box.has_class("confirm") and box.value:
            witness = box.id.removeprefix("confirm-")
            try:
                self.session.confirm(witness, True)
            except BackendError as exc:
                box.value = False
                self.set_error(str(exc))
        elif box.has_class("ack") and box.has_class(f"step-{self.view.index}"):  # not a late
            # message from the last step's box; recorded when ticked (taken back when
            # unticked): a tick survives leaving the step for a sub-screen and coming back
            rid = box.id.removeprefix("ack-")
            view = self.view
            try:
                if box.value and rid not in view.acks:
                    self.session.acknowledge(rid)
                elif not box.value and rid in view.acks:
                    self.session.withdraw_ack(rid)
            except BackendError as exc:
                box.set_reactive(AckBox.value, rid in view.acks)
                box.refresh()
                self.set_error(str(exc))
            self.view = self.session.current() or view
        self.update_buttons()

    # ---------------------------------------------------------------- actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """The step action, Retry or Continue."""
        if event.button.id == "action":
            self.run_step_action()
        elif event.button.id == "retry":
            self.medium_state = None
            try:
                self.session.retry()
            except BackendError as exc:
                self.set_error(str(exc))
            self.show_step()
        elif event.button.id == "continue":
            self.next_step()

    def distribution_due(self) -> list[str]:
        """Custodians not handed their share yet at a distribute-shares step (empty elsewhere)."""
        progress = self.session.distribution()
        return [c for c in progress.order if progress.status(c).value == "due"] if progress is not None else []

    def run_step_action(self) -> None:
        """Do the current step's action (sub-screens for distribution and collection; workers for seal and export)."""
        view = self.view
        if view is None:
            return
        self.set_error("")
        kind = view.kind
        if kind == "distribute-shares":
            try:
                if not view.performed:
                    self.session.perform()
            except BackendError as exc:
                self.set_error(str(exc))
                self.refresh_view()
                return
            from kcm_tui.screens.distribution import DistributionScreen

            self.app.push_screen(DistributionScreen(), self.after_sub)
            return
        if kind in ("collect-shares", "check-shares"):
            choices = [] if view.results.get("set_id") or view.params.get("manifest") else self.session.manifest_choices()
            if len(choices) > 1:
                from kcm_tui.screens.common import ChoiceModal

                def chosen(name: str | None) -> None:
                    if name:
                        self.start_collection(name)

                self.app.push_screen(
                    ChoiceModal(
                        "Several share sets are active on this medium: which one?",
                        [(f, f"set {sid}  (made by {cid})  {f}") for f, sid, cid in choices],
                    ),
                    chosen,
                )
                return
            self.start_collection(None)
            return
        if kind in ("export", "byok") and self.needs_medium(view):
            self.set_error("Choose the export medium first (the list above; F5 lists it again).")
            return
        if kind == "byok":
            from kcm_tui.screens.byok import ByokScreen

            self.app.push_screen(ByokScreen(), self.after_sub)
            return
        if kind in ("seal", "export"):
            self.start_work(view)
            return
        try:
            self.session.perform()
        except BackendError as exc:
            self.set_error(str(exc))
        self.after_sub(True)

    def start_collection(self, manifest: str | None) -> None:
        """Start collect-/check-shares with ``manifest`` (None: the one active set) and open the collection."""
        try:
            if manifest:
                self.session.perform(manifest=manifest)
            else:
                self.session.perform()
        except BackendError as exc:
            self.set_error(str(exc))
            self.refresh_view()
            return
        from kcm_tui.screens.collection import CollectionScreen

        self.app.push_screen(CollectionScreen(), self.after_sub)

    def after_sub(self, _ok: bool | None = None) -> None:
        """Back from a sub-screen or a worker: show the step as the engine has it now."""
        self.view = self.session.current()
        if self.view is None:
            self.finished()
            return
        self.show_progress(self.view)
        self.fill_body(self.view)
        self.fill_acks(self.view)
        self.set_error(self.view.error)
        self.update_buttons()

    # ---------------------------------------------------------------- seal / export in a worker

    def start_work(self, view: StepView) -> None:
        """Seal / export in a worker thread: the screen stays responsive and shows progress;
        the result is handled once the worker has finished. An export write cannot be stopped
        half-way (the screen says so); leaving or aborting waits for it."""
        kind = view.kind
        self.busy = kind
        self.query_one("#action", Button).disabled = True
        self.query_one("#continue", Button).disabled = True
        if kind == "export":
            medium = self.session.export_medium()
            label = str(medium.get("label", "the export medium"))
            t = Text()
            t.append("writing... do not remove", style="bold white on dark_red")
            t.append(f" the medium {label}.", style="bold")
            t.append("\nThe write cannot be stopped half-way (Escape does not abort it); "
                     "wait for the verify and sync.", style="grey70")
            self.medium_state = (view.index, "writing", t)
            widgets: list[Any] = [
                ProgressBar(total=None, show_eta=False, id="work-progress"),
                Static("preparing the files...", id="work-label", classes="muted"),
                Static(t, id="medium-state", classes="medium-writing"),
            ]
            def progress(done: int, total: int, name: str) -> None:
                self.post_message(self.WriteProgress(done, total, name))  # thread-safe, no wait

            self.session.set_export_progress(progress)
        else:
            spinner = LoadingIndicator(id="work-spinner")
            spinner.styles.height = 1
            widgets = [
                Static("Sealing... working (this cannot be stopped half-way; please wait).", id="work-label"),
                spinner,
            ]
        replace_children(self.query_one("#step-body", Vertical), widgets)
        self.run_in_thread(self._work, lambda res: self._work_done(*res), group="step-work", name=f"step-{kind}")

    def _work(self) -> tuple[str, str, ExportVerdict | None]:
        """In the worker thread: the engine call (journal and keyholder are thread-safe)."""
        kind = self.busy
        error = ""
        verdict: ExportVerdict | None = None
        try:
            self.session.perform()
        except BackendError as exc:
            error = str(exc)
        finally:
            if kind == "export":
                self.session.set_export_progress(None)
        if kind == "export":
            verdict = self.session.export_verdict()  # the engine's, journaled
        return kind, error, verdict

    def on_runner_screen_write_progress(self, event: WriteProgress) -> None:
        """Show the bytes written so far."""
        for bar in self.query("#work-progress").results(ProgressBar):
            bar.update(total=max(event.total, 1), progress=event.done)
        for label in self.query("#work-label").results(Static):
            label.update(f"{event.done} of {event.total} bytes written ({event.name})")

    def _work_done(self, kind: str, error: str, verdict: ExportVerdict | None) -> None:
        self.busy = ""
        view = self.view
        if kind == "export" and view is not None:
            self.medium_state = (view.index, *self.medium_verdict(verdict, error))
        self.query_one("#action", Button).disabled = False
        self.after_sub(True)
        if error:
            self.set_error(error)

    def medium_verdict(self, verdict: ExportVerdict | None, error: str = "") -> tuple[str, Text]:
        """What the screen says about the medium after an export write: the engine's
        verdict, shown as it is (state ``failed``, ``safe`` or ``synced``, and the text)."""
        if verdict is None:  # no verdict reached the screen: say the least reassuring thing
            label = str(self.session.export_medium().get("label", "the export medium"))
            verdict = decide_medium_verdict(label, error=error or "no verdict on the medium")
        label = verdict.label
        t = Text()
        v = verdict.verdict
        if v is MediumVerdict.NOT_WRITTEN:
            t.append("NOT written", style="bold white on red")
            t.append(f" to {label}: the write failed and was cleaned up; do not rely on the medium.\n")
            t.append("Nothing is lost: the data stays in this ceremony. Fix the medium or insert another one, "
                     "then Retry writes it again.", style="bold")
            return "failed", t
        if v is MediumVerdict.NOTHING:
            t.append("Nothing was written now.", style="grey70")
            return "safe", t
        if v is MediumVerdict.UNCONFIRMED:
            t.append(f"written to {label}; the medium did not report the sync: do not remove it yet.", style="bold yellow")
            return "synced", t
        if v is MediumVerdict.FOLDER:
            t.append("written and verified; (demo folder, nothing to remove)", style="bold green")
            return "safe", t
        if v is MediumVerdict.SAFE_TO_REMOVE:
            t.append(f"SAFE TO REMOVE the medium {label}", style="bold black on green")
            t.append(" (written, read back, verified, synced and unmounted).")
            return "safe", t
        t.append(f"written, verified and synced to {label}, but it is still mounted: ", style="bold yellow")
        t.append("do not remove it until it is unmounted.")
        for note in verdict.notes:
            t.append(f"\n{note}", style="grey70")
        return "synced", t

    def next_step(self) -> None:
        """Continue: send ticks and presence, acknowledge, complete the step, show the next."""
        view = self.view
        if view is None:
            return
        if self.query_one("#continue", Button).has_class("-waiting"):
            self.query_one("#continue-needs", Static).add_class("-refused")
            self.app.bell()
            return
        try:
            if view.kind == "checklist":
                ticked = [int((b.id or "item-0").removeprefix("item-")) for b in self.query(".item").results(AckBox) if b.value]
                self.session.perform(checked=ticked)
            elif view.kind == "attendance" and not view.performed:
                present = [(b.id or "").removeprefix("present-") for b in self.query(".present").results(AckBox) if b.value]
                self.session.perform(present=present)
            for rid in view.acknowledge:
                if rid not in view.acks:
                    self.session.acknowledge(rid)
            self.session.complete()
        except BackendError as exc:
            self.refresh_view()
            self.set_error(str(exc))
            return
        self.show_step()

    def finished(self) -> None:
        """The ceremony is over: the summary."""
        from kcm_tui.screens.summary import SummaryScreen

        self.app.switch_screen(SummaryScreen())

    def busy_reason(self) -> str:
        """Sealing or an export write runs in a worker: it cannot be stopped half-way."""
        if not self.busy:
            return ""
        what = "writing to the medium" if self.busy == "export" else "sealing"
        return f"Please wait: {what} cannot be stopped half-way. Try again when it has finished."

