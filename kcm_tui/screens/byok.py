"""The BYOK export: the MasterKey wrapped for a cloud KMS or Vault import (issue 16).

One ``byok`` step, in the order the engine enforces (``core.ceremony.steps.byok``):

1. AWS and GCP: the administrator types when the import parameters were obtained
   (GetParametersForImport) or the import job was created, in UTC; the window it opens is
   shown before anything is wrapped, and an expired one is refused.
2. The provider's wrapping key, read from the medium, is shown as its fingerprint: 26 words
   and the hex. The administrator reads the words aloud; the witness compares them with the
   copy taken at the provider's console and answers Y (they match) or N (they differ: the
   step fails). The witness may instead type their copy (hex or words) and press Enter.
   The keyholder checks what the witness confirmed against the key it wraps to.
3. W wraps the MasterKey in the keyholder and writes the import file(s) and
   ``<provider>-import.json`` to the export medium; the files and the medium's state are
   shown. Esc goes back to the step (acknowledgments, Continue).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, LoadingIndicator, Static

from kcm_tui.backend import BackendError, StepView
from kcm_tui.screens.common import CeremonyScreen, replace_children
from kcm_tui.widgets.words import WordGrid

PROVIDER_NAMES = {
    "aws": "AWS KMS",
    "gcp": "GCP Cloud KMS",
    "azure": "Azure Managed HSM",
    "vault": "Vault transit",
}
WINDOWED = ("aws", "gcp")


def byok_summary(view: StepView) -> Text:
    """One block saying what the step exports, to what and from which file."""
    p = view.params
    provider = str(p.get("provider", "?"))
    t = Text()
    t.append(PROVIDER_NAMES.get(provider, provider), style="bold")
    t.append(f"  method {p.get('method') or 'the provider default'}\n")
    t.append("Wrapping key: ", style="bold")
    t.append(f"{p.get('wrapping_key_file', '?')} (on the medium)")
    if p.get("import_token_file"):
        t.append(f"\nImport token: {p['import_token_file']}")
    for key in ("key_id", "import_job", "key_name", "kek_kid"):
        if p.get(key):
            t.append(f"\n{key}: {p[key]}", style="grey70")
    return t


class ByokScreen(CeremonyScreen):
    """Shows the wrapping key's fingerprint, takes the witness's answer, wraps and writes."""

    TITLE_TEXT = "BYOK export"
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Enter", "AWS/GCP: the time typed; or the witness's typed copy of the fingerprint"),
        ("Y", "the witness: the words match my copy from the provider"),
        ("Tab", "to the copy field: the witness types their copy instead, Enter"),
        ("N", "the witness: the words DIFFER (the step fails; nothing is wrapped)"),
        ("W", "wrap the MasterKey and write the import files to the medium"),
        ("F2", "record an exception"),
        ("F10", "abort the ceremony (asks first)"),
        ("Esc", "back to the step"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back"),
        Binding("y", "match", "Words match", show=False),
        Binding("n", "differ", "Words differ", show=False),
        Binding("w", "wrap", "Wrap and write", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: StepView | None = None
        self.busy = ""
        self.phase = ""

    def compose(self) -> ComposeResult:
        """Title, what is exported, the phase's panel and the error line."""
        yield from self.compose_banners()
        yield Static("", id="byok-title", classes="title")
        yield Static("", id="byok-what")
        yield Vertical(id="byok-body")
        yield Static("", id="byok-error", classes="error")
        yield Static("", id="byok-keys", classes="muted")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        """Show the step; a provider with no import window shows the fingerprint at once."""
        self.refresh_phase(auto=True)

    # ---------------------------------------------------------------- rendering

    def set_error(self, text: str) -> None:
        """Show an error under the panel."""
        self.query_one("#byok-error", Static).update(text)

    def refresh_phase(self, *, auto: bool = False) -> None:
        """Re-read the step and show the panel of its phase."""
        view = self.session.current()
        if view is None or view.kind != "byok":
            self.dismiss(True)
            return
        self.view = view
        provider = str(view.params.get("provider", ""))
        d = view.display
        if view.state == "failed":
            self.phase = "failed"
        elif view.performed:
            self.phase = "done"
        elif view.confirmed_by:
            self.phase = "wrap"
        elif d.get("fingerprint"):
            self.phase = "compare"
        elif provider in WINDOWED:
            self.phase = "when"
        else:
            self.phase = "show"
        if self.phase == "show" and auto:
            self.show_fingerprint("")
            return
        title = f"BYOK for {PROVIDER_NAMES.get(provider, provider)}: {view.title}"
        self.query_one("#byok-title", Static).update(title)
        what = self.query_one("#byok-what", Static)
        what.update(byok_summary(view) if self.phase in ("when", "show") else "")
        what.display = self.phase in ("when", "show")
        self.set_error(view.error)
        replace_children(self.query_one("#byok-body", Vertical), self.body(view), then=self.focus_input)
        self.query_one("#byok-keys", Static).update(self.keys_line())

    def keys_line(self) -> str:
        """The keys that work in this phase."""
        return {
            "when": "Enter: show the wrapping key's fingerprint   Esc: back",
            "show": "Enter: show the wrapping key's fingerprint   Esc: back",
            "compare": "Y: the words match   N: they differ   Tab: type the copy   Esc: back",
            "wrap": "W: wrap the MasterKey and write the files   Esc: back",
            "done": "Esc: back to the step (acknowledge, Continue)",
            "failed": "Esc: back to the step (Retry there)",
        }.get(self.phase, "")

    def body(self, view: StepView) -> list[Any]:
        """The widgets of the current phase."""
        d = view.display
        if self.phase == "when":
            what = (
                "When did GetParametersForImport run? (UTC; the parameters are valid 24 hours)"
                if view.params.get("provider") == "aws"
                else "When was the import job created? (UTC; the job expires 3 days later)"
            )
            return [
                Static(what, classes="muted"),
                Input(placeholder="2026-01-31T12:00:00Z", id="byok-when", max_length=20),
            ]
        if self.phase == "show":
            return [Static("Enter reads the wrapping key from the medium and shows its fingerprint.", classes="muted")]
        if self.phase in ("compare", "wrap"):
            witness = self.session.role_name(str(view.params.get("witness", "")))
            head = Text()
            head.append(f"{d.get('method', '')}  RSA-{d.get('bits', '?')}", style="bold")
            if d.get("valid_until_utc"):
                head.append(f"   import window until {d['valid_until_utc']}", style="bold yellow")
            out: list[Any] = [
                Static(head),
                Static(
                    f"Wrapping key fingerprint (SHA-256 of the key): the administrator reads the words; "
                    f"{witness} compares them with the provider's copy.",
                    classes="muted",
                ),
                WordGrid(list(d.get("words", [])), columns=5, id="byok-words"),
                Static(Text(str(d.get("fingerprint", "")), style="grey70")),
            ]
            if self.phase == "compare":
                out.append(Input(placeholder="(Tab) or the witness types their copy here: hex or words, Enter", id="byok-copy"))
            else:
                out.append(Static(Text(f"Confirmed by {view.confirmed_by}. W wraps the MasterKey now.", style="bold green")))
            return out
        if self.phase == "done":
            r = view.results
            t = Text()
            t.append("Wrapped and written", style="bold green")
            t.append(f" to {r.get('folder', '?')}: {r.get('method', '')}\n")
            for name in r.get("files", {}):
                t.append(f"  {name}\n")
            if r.get("valid_until_utc"):
                t.append(f"Import before {r['valid_until_utc']}", style="bold yellow")
                t.append(" (the provider refuses it later).\n")
            verdict = self.session.export_verdict()
            if verdict is not None:
                t.append(
                    "Medium: safe to remove." if verdict.safe_to_remove else f"Medium: {verdict.verdict.value}: do not remove it yet.",
                    style="bold",
                )
            return [Static(t)]
        if self.phase == "failed":
            return [Static("The step failed (see below): nothing was wrapped. Go back and Retry.", classes="error")]
        return []

    def focus_input(self) -> None:
        """Focus the time field (the witness's copy field is reached with Tab, so Y and N
        work at once)."""
        for inp in self.query("#byok-when").results(Input):
            inp.focus()
            return
        self.set_focus(None)

    # ---------------------------------------------------------------- intents

    def show_fingerprint(self, when: str) -> None:
        """Read the wrapping key from the medium and show its fingerprint."""
        try:
            if when:
                self.session.perform(window_start_utc=when)
            else:
                self.session.perform()
        except BackendError as exc:
            self.refresh_phase()
            self.set_error(str(exc))
            return
        self.refresh_phase()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the time field, or on the witness's typed copy."""
        event.stop()
        if event.input.id == "byok-when":
            self.show_fingerprint(event.value.strip())
        elif event.input.id == "byok-copy" and event.value.strip():
            self.answer(True, event.value.strip())

    def answer(self, matches: bool, copy: str | None = None) -> None:
        """The witness's answer (their typed copy, if any)."""
        view = self.view
        if view is None or self.phase != "compare":
            return
        witness = str(view.params.get("witness", ""))
        try:
            self.session.confirm(witness, matches, out_of_band=copy)
        except BackendError as exc:
            self.set_error(str(exc))
            return
        self.refresh_phase()

    def action_match(self) -> None:
        """Y: the words match."""
        self.answer(True)

    def action_differ(self) -> None:
        """N: the words differ."""
        self.answer(False)

    def action_wrap(self) -> None:
        """W: wrap and write (in a worker: the write and its sync cannot be stopped half-way)."""
        if self.phase != "wrap" or self.busy:
            return
        self.busy = "byok"
        spinner = LoadingIndicator(id="work-spinner")
        spinner.styles.height = 1
        replace_children(
            self.query_one("#byok-body", Vertical),
            [Static("Wrapping and writing... (this cannot be stopped half-way; please wait)"), spinner],
        )
        self.run_in_thread(self._work, self._work_done, group="byok-work", name="byok")

    def _work(self) -> str:
        try:
            self.session.perform()
        except BackendError as exc:
            return str(exc)
        return ""

    def _work_done(self, error: str) -> None:
        self.busy = ""
        self.refresh_phase()
        if error:
            self.set_error(error)

    def busy_reason(self) -> str:
        """The wrap and its write run in a worker."""
        return "Please wait: the wrap and the write cannot be stopped half-way." if self.busy else ""
