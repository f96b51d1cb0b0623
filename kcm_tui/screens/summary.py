"""Summary: the outcome, the journal's final hash as words and as a QR, wipe and exit."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Static

from kcm_tui.backend import NotAvailable, qr_text
from kcm_tui.context import CeremonySession
from kcm_tui.screens.common import BaseScreen, MessageModal, QrModal
from kcm_tui.widgets.pathtext import fold_path
from kcm_tui.widgets.words import WordGrid


class SummaryScreen(BaseScreen[None]):
    """The end of a ceremony (completed or aborted)."""

    TITLE_TEXT = "Summary"
    #: times V re-verified the journal (0: only the check on arrival)
    rechecks = 0
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Q", "show the journal's final hash as a QR code"),
        ("V", "verify the journal again"),
        ("Enter", "on the button: wipe and exit (or power off on the ceremony ISO)"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "qr", "QR code"),
        Binding("v", "verify", "Verify journal"),
        Binding("ctrl+q", "exit", "Wipe and exit", priority=True),
    ]

    @property
    def session(self) -> CeremonySession:
        """The ceremony that just ended."""
        s = self.capp.backend.session
        assert s is not None
        return s

    def compose(self) -> ComposeResult:
        """The outcome, the final hash as words, the files written and the buttons."""
        s = self.session
        yield from self.compose_banners()
        completed = s.state == "completed"
        head = Text()
        if completed:
            head.append("CEREMONY COMPLETED", style="bold black on green")
        else:
            head.append("CEREMONY ABORTED", style="bold white on red")
            head.append("  the keyholder wiped every secret; the journal records why.")
        yield Static(head)
        yield Static(f"Ceremony {s.ceremony_id}", classes="subtitle")
        yield Static("Journal final hash: the witness copies these words into the paper log.", classes="muted")
        h = s.final_hash
        yield Static(" ".join(h[i : i + 8] for i in range(0, len(h), 8)), id="final-hex", classes="big")
        yield WordGrid(s.final_words, id="final-words")
        yield Static("", id="verify-line")
        files = s.exports()
        yield Static(
            fold_path(f"Written: {len(files)} file(s) in", str(s.folder)) if files else fold_path("Journal:", str(s.journal_path)),
            classes="muted",
            id="written",
        )
        label = "Wipe and power off" if self.capp.poweroff else "Wipe and exit"
        with Horizontal(classes="buttons"):
            yield Button(label, id="exit", variant="primary")
            yield Button("QR code (Q)", id="qr")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        """Verify the journal."""
        self.rechecks = 0
        self.show_verify()
        self.query_one("#exit", Button).focus()

    def action_verify(self) -> None:
        """V: re-read the closed journal and say again whether it verifies (the line says
        it was checked again, and a notice pops up: the same words alone would look like
        nothing happened)."""
        self.rechecks += 1
        ok = self.show_verify()
        self.notify(
            "Journal verified again: " + ("OK" if ok else "it DOES NOT verify"),
            severity="information" if ok else "error",
            timeout=4,
        )

    def show_verify(self) -> bool:
        """Re-read the closed journal and show whether it verifies; returns whether it does."""
        ok, msg = self.session.verify_journal()
        line = Text()
        if self.rechecks:
            line.append(f"Checked again (V, {self.rechecks}x): ", style="bold")
        if ok and msg.startswith("UNSIGNED"):
            line.append("Journal intact, ", style="bold yellow")
            line.append(msg + ". The final hash above is its only anchor: copy it.")
        elif ok:
            line.append("Journal verified: ", style="bold green")
            line.append(msg or "the hash chain is intact")
        else:
            line.append("JOURNAL DOES NOT VERIFY: ", style="bold white on red")
            line.append(msg)
        self.query_one("#verify-line", Static).update(line)
        return ok

    def action_qr(self) -> None:
        """Show the final hash as a QR code."""
        try:
            qr = qr_text(self.session.final_hash)
        except NotAvailable as exc:
            self.app.push_screen(MessageModal("QR not available", str(exc), error=True))
            return
        self.app.push_screen(QrModal("Journal final hash", qr))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Exit or QR."""
        if event.button.id == "exit":
            self.action_exit()
        elif event.button.id == "qr":
            self.action_qr()

    def action_exit(self) -> None:
        """Wipe and exit (or power off on the ceremony image)."""
        self.capp.wipe_and_exit()
