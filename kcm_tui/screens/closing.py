"""Ending a ceremony early: F10's reason (:class:`AbortModal`), and closing the journal
of a ceremony a crash left unfinished (:class:`InterruptedModal`). Public text only: both
reasons go into the journal."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from kcm_tui.backend_recovery import UnfinishedView
from kcm_tui.widgets.ack import AckBox

MAX_REASON = 400


class AbortModal(ModalScreen["str | None"]):
    """F10: abort the ceremony, saying why (journaled with the administrator's role).
    Esc keeps going; an empty reason is refused with a message and nothing happens."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Keep going")]

    def compose(self) -> ComposeResult:
        """The warning, the reason field and the two buttons."""
        with Vertical(classes="modal modal-danger", id="abort"):
            yield Static("Abort the ceremony?", classes="title")
            yield Static(
                "The keyholder wipes every secret it holds; the journal records who aborted and"
                " why, and is closed. A share set made in this ceremony is marked aborted: no"
                " later ceremony uses it. This cannot be undone.",
            )
            yield Static("Why? (public text for the journal; never a share word)", classes="muted")
            yield Input(placeholder="e.g. custodian 3 did not come", id="abort-reason", max_length=MAX_REASON)
            yield Static("", id="abort-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Keep going", id="no")
                yield Button("Abort", id="yes", variant="error")

    def on_mount(self) -> None:
        """Focus the reason."""
        self.query_one("#abort-reason", Input).focus()

    def _submit(self) -> None:
        reason = " ".join(self.query_one("#abort-reason", Input).value.split())
        if not reason:
            self.query_one("#abort-error", Static).update("Say why the ceremony is aborted: the journal records it.")
            self.query_one("#abort-reason", Input).focus()
            return
        self.dismiss(reason)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the reason: abort (when a reason is given)."""
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Abort or keep going."""
        if event.button.id == "yes":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Esc: keep going."""
        self.dismiss(None)


class InterruptedModal(ModalScreen["tuple[str, str] | None"]):
    """Close an unfinished ceremony's journal as interrupted: what happened, the reason,
    and a witness's acknowledgement. Answers ``(reason, witness role id)``; Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, view: UnfinishedView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        """The facts, the reason, the witnesses' boxes and the buttons."""
        with Vertical(classes="modal", id="interrupted"):
            yield Static("Close an unfinished ceremony as interrupted", classes="title")
            with VerticalScroll(id="interrupted-facts"):
                yield Static(self.view.text)
            yield Static("What happened? (public text for the journal)", classes="muted")
            yield Input(placeholder="e.g. power cut during the share hand-out", id="interrupted-reason",
                        max_length=MAX_REASON)
            for rid, name in self.view.witnesses:
                yield AckBox(f"{name or rid} (witness) saw these facts and agrees", id=f"witness-{rid}")
            if not self.view.witnesses:
                yield AckBox("The witness saw these facts and agrees", id="witness-")
            yield Static("", id="interrupted-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Close journal", id="close", variant="primary")

    def on_mount(self) -> None:
        """Focus the reason."""
        self.query_one("#interrupted-reason", Input).focus()

    def _error(self, text: str) -> None:
        self.query_one("#interrupted-error", Static).update(text)

    def _submit(self) -> None:
        reason = " ".join(self.query_one("#interrupted-reason", Input).value.split())
        if not reason:
            self._error("Say what happened: the journal records it.")
            self.query_one("#interrupted-reason", Input).focus()
            return
        ticked = [b.id.removeprefix("witness-") for b in self.query(AckBox) if b.value and b.id]
        if not ticked:
            self._error("A witness must tick the box: they saw these facts and agree.")
            return
        self.dismiss((reason, ticked[0] or "witness"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the reason: move to the witness's box."""
        event.stop()
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Close the journal, or cancel."""
        if event.button.id == "close":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Esc: nothing is written."""
        self.dismiss(None)
