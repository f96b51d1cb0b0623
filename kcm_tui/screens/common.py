"""Shared screen parts: the base screen with the global keys, typed modals, the banner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from kcm_tui.context import AppContext, CeremonySession, context_of
from kcm_tui.workers import ThreadWork

ResultT = TypeVar("ResultT")


class _Dyn(Vertical):
    """Wrapper of swapped-in content; runs ``then`` once its children are mounted."""

    def __init__(self, *children: Widget, classes: str, then: Callable[[], object] | None) -> None:
        super().__init__(*children, classes=classes)
        self._then = then

    def on_mount(self) -> None:
        if self._then is not None:
            self.call_after_refresh(self._then)


def replace_children(
    container: Widget, widgets: Sequence[Widget], classes: str = "dyn", then: Callable[[], object] | None = None
) -> None:
    """Swap a container's content. Removal is asynchronous: the new widgets go into a fresh
    wrapper so their ids never collide with the ones being removed; ``then`` (e.g. moving
    the focus) runs once the new widgets exist."""
    container.remove_children()
    container.mount(_Dyn(*widgets, classes=classes, then=then))


class Banner(Static):
    """PRACTICE / DEMO banner (shown on every screen when it applies)."""


def banners(app: AppContext) -> list[Static]:
    """The banners that apply to this run."""
    out: list[Static] = []
    session = app.backend.session
    if session is not None and session.practice:
        out.append(Static("PRACTICE CEREMONY - the key made here is not for production", classes="banner banner-practice"))
    if app.backend.demo:
        out.append(Static("DEMO MODE - demo workspace, demo keys, not a real ceremony", classes="banner banner-demo"))
    if session is not None and session.keyholder_warnings():
        out.append(Static("KEYHOLDER MEMORY NOT LOCKED (demo fallback) - never for a real key", classes="banner banner-insecure"))
    return out


class BaseScreen(ThreadWork, Screen[ResultT]):
    """A ceremony screen: banners on top, footer with the bindings at the bottom."""

    #: (key, what it does) lines for the help screen, beyond the footer bindings.
    KEY_HELP: ClassVar[list[tuple[str, str]]] = []
    TITLE_TEXT: ClassVar[str] = ""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "app.help", "Help"),
        Binding("ctrl+c", "app.refuse_copy", "", show=False, priority=True),
    ]

    @property
    def capp(self) -> AppContext:
        """The ceremony application (:class:`kcm_tui.context.AppContext`)."""
        return context_of(self.app)

    def help_about(self) -> str | Text:
        """What F1 says about the screen beyond its keys ("" for nothing)."""
        return ""

    def compose_banners(self) -> ComposeResult:
        """The PRACTICE, DEMO and unlocked-memory banners that apply."""
        yield from banners(self.capp)

    def compose_footer(self) -> ComposeResult:
        """The key bar at the bottom."""
        from kcm_tui.widgets.keybar import KeyBar

        yield KeyBar()

    def focus_selector(self, selector: str) -> None:
        """Focus the first widget matching ``selector`` if it (still) exists."""
        for widget in self.query(selector):
            if widget.focusable:
                widget.focus()
                return

    def action_abort(self) -> None:
        """Abort the ceremony (F10) after the reason is given, from any ceremony screen:
        the reason is journaled with the administrator's role."""
        session = self.capp.backend.session
        if session is None or session.state != "running":
            return

        def answer(reason: str | None) -> None:
            if not reason:
                return
            from kcm_tui.backend import BackendError

            for panel in self.query("EntryPanel"):
                cancel = getattr(panel, "cancel", None)
                if cancel is not None:
                    cancel()
            try:
                session.abort(reason)
            except BackendError as exc:
                self.notify(str(exc), severity="error", timeout=6)
                return
            from kcm_tui.screens.summary import SummaryScreen

            while len(self.app.screen_stack) > 1:  # down to the base (ceremony) screen
                self.app.pop_screen()
            self.app.switch_screen(SummaryScreen())

        from kcm_tui.screens.closing import AbortModal

        self.app.push_screen(AbortModal(), answer)

    def ask_exception(
        self, session: CeremonySession, on_error: Callable[[str], None], *, timeout: float = 3
    ) -> None:
        """Ask for an exception's text (F2) and record it in the journal through ``session``."""
        from kcm_tui.backend import BackendError

        def record(text: str | None) -> None:
            if text:
                try:
                    session.record_exception(text)
                    self.notify("Exception recorded in the journal.", timeout=timeout)
                except BackendError as exc:
                    on_error(str(exc))

        self.app.push_screen(ExceptionModal(), record)

    def action_copy_text(self) -> None:
        """Screen-level copy of selected text: refused (no clipboard writes anywhere)."""
        self.capp.action_refuse_copy()


class CeremonyScreen(BaseScreen[bool]):
    """A screen of the open ceremony: its :class:`~kcm_tui.backend.Session`, F2 (record an
    exception), F10 (abort, asks first) and the busy guard: while a worker runs something
    that cannot be stopped half-way (a card write, an export, a camera scan), F2, F10 and
    Esc are refused with the reason. Subclasses say why they are busy
    (:meth:`busy_reason`), show errors (:meth:`set_error`) and bind Esc to
    :meth:`action_leave` where leaving makes sense."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "exception", "Exception"),
        Binding("f10", "abort", "Abort"),
    ]
    #: Seconds the busy notice and the "exception recorded" notice stay.
    BUSY_TIMEOUT: ClassVar[float] = 5
    EXCEPTION_TIMEOUT: ClassVar[float] = 3

    @property
    def session(self) -> CeremonySession:
        """The open ceremony (a ceremony screen exists only while one is open)."""
        session = self.capp.backend.session
        assert session is not None
        return session

    def busy_reason(self) -> str:
        """Why F2, F10 and Esc must wait now ("" when they need not)."""
        return ""

    def refuse_while_busy(self) -> bool:
        """True (and says why) while the screen is busy (:meth:`busy_reason`)."""
        reason = self.busy_reason()
        if reason:
            self.notify(reason, severity="warning", timeout=self.BUSY_TIMEOUT)
        return bool(reason)

    def set_error(self, text: str) -> None:
        """Show an error line (subclasses place it)."""
        self.notify(text, severity="error", timeout=6)

    def action_abort(self) -> None:
        """F10: abort the ceremony (asks first), unless busy."""
        if self.refuse_while_busy():
            return
        super().action_abort()

    def action_exception(self) -> None:
        """F2: record an exception in the journal, unless busy."""
        if self.refuse_while_busy():
            return
        self.ask_exception(self.session, self.set_error, timeout=self.EXCEPTION_TIMEOUT)

    def action_leave(self) -> None:
        """Esc: back to the step (subclasses that bind Esc decide what leaving means)."""
        if self.refuse_while_busy():
            return
        self.dismiss(False)


class ConfirmModal(ModalScreen[bool]):
    """Yes/no question. Escape means no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "no", "No"),
        Binding("y", "yes", "Yes", show=False),
        Binding("n", "no", "No", show=False),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No", danger: bool = False) -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        """The question and the two buttons."""
        with Vertical(classes="modal modal-danger" if self.danger else "modal"):
            yield Static(self.question, classes="big")
            with Horizontal(classes="buttons"):
                yield Button(self.no_label, id="no")
                yield Button(self.yes_label, id="yes", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        """Focus the safe answer."""
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Yes or no."""
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        """Answer yes."""
        self.dismiss(True)

    def action_no(self) -> None:
        """Answer no (also Esc)."""
        self.dismiss(False)


class ExceptionModal(ModalScreen["str | None"]):
    """Record an exception (a deviation from the script) in the journal. Public text only."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        """The text field and the buttons."""
        with Vertical(classes="modal"):
            yield Static("Record an exception", classes="title")
            yield Static(
                "Describe what deviates from the script (public text: it goes into the journal;"
                " never type a share word here).",
                classes="muted",
            )
            yield Input(placeholder="what happened, who decided what", id="exception-text", max_length=400)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Record", id="record", variant="primary")

    def on_mount(self) -> None:
        """Focus the text field."""
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        self.dismiss(text or None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: record the text (an empty text records nothing)."""
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Record or cancel."""
        if event.button.id == "record":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Esc: nothing is recorded."""
        self.dismiss(None)


class MessageModal(ModalScreen[None]):
    """A message with one OK button (errors, refusals)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "OK")]

    def __init__(self, title: str, text: str, *, error: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.error = error

    def compose(self) -> ComposeResult:
        """The title, the message and OK."""
        with Vertical(classes="modal modal-danger" if self.error else "modal"):
            yield Static(self.title_text, classes="error" if self.error else "title")
            yield Static(self.text)
            with Horizontal(classes="buttons"):
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        """Focus OK."""
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """OK closes the message."""
        self.dismiss(None)

    def action_close(self) -> None:
        """Close the message."""
        self.dismiss(None)


class HelpModal(ModalScreen[None]):
    """F1: the keys of the screen underneath and what the screen is for (on the step runner:
    the current step's instruction and runbook, in a box that scrolls with the arrows and
    PgUp/PgDn when it is longer than the screen)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,enter,q", "close", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str]], about: str | Text = "") -> None:
        super().__init__()
        self.help_title = title
        self.keys = keys
        self.about = about

    def compose(self) -> ComposeResult:
        """The keys of the screen below and what they do."""
        lines = "\n".join(f"  {k:<14} {v}" for k, v in self.keys)
        with Vertical(classes="modal modal-help-about" if self.about else "modal", id="help"):
            yield Static(f"Help: {self.help_title}", classes="title")
            if self.about:
                with VerticalScroll(id="help-about", can_focus=True):
                    yield Static(self.about, classes="muted" if isinstance(self.about, str) else "")
            yield Static(lines, id="help-keys")
            yield Static(
                "Up/Down scroll the text; Esc or F1 closes this help." if self.about else "Esc or F1 closes this help.",
                classes="muted",
            )

    def on_mount(self) -> None:
        """The text box takes the arrows."""
        for box in self.query("#help-about"):
            box.focus()

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


class QrModal(ModalScreen[None]):
    """A PUBLIC value as a QR code (the journal's final hash)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, label: str, qr: str) -> None:
        super().__init__()
        self.label = label
        self.qr = qr

    def compose(self) -> ComposeResult:
        """The QR code and its caption."""
        with Vertical(classes="modal"):
            yield Static(self.label, classes="title")
            yield Static(self.qr, id="qr")
            yield Static("Esc closes.", classes="muted")

    def action_close(self) -> None:
        """Close the QR code."""
        self.dismiss(None)


class ChoiceModal(ModalScreen["str | None"]):
    """Choose one of a few public items (e.g. which share-set manifest). Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.choice_title = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        """The question and the choices."""
        from textual.widgets import OptionList
        from textual.widgets.option_list import Option

        with Vertical(classes="modal"):
            yield Static(self.choice_title, classes="title")
            yield OptionList(*[Option(label, id=key) for key, label in self.choices], id="choices")
            yield Static("Up/Down, Enter to choose; Esc cancels.", classes="muted")

    def on_mount(self) -> None:
        """Focus the choices."""
        self.query_one("#choices").focus()

    def on_option_list_option_selected(self, event: object) -> None:
        """Answer with the chosen item."""
        option = getattr(event, "option", None)
        self.dismiss(getattr(option, "id", None))

    def action_cancel(self) -> None:
        """Esc: no choice."""
        self.dismiss(None)
