"""The smart-card carrier: token picker + the PIN typed on the keyholder's own screen,
shared by distribution, collection and share checks.

:class:`CardPanel` lists the cards in the readers (``Session.list_cards``: label, serial,
manufacturer, PIN state), rescans on F5 (``Session.rescan_cards``: the keyholder
re-initialises its PKCS#11 module), and owns a :class:`KeyholderPinPrompt`. This process
never holds the PIN (issue 14, the trusted path): Enter posts :class:`CardPanel.Ready`,
the owner screen calls :meth:`CardPanel.start_on_keyholder` with the engine call (asking
the keyholder for ``pin_from_terminal``), the app is suspended (its terminal driver reads
nothing) and the keyholder asks for the PIN on its own screen, masked, uses it for the card
operation and wipes it. A carrier error (wrong PIN with the tries the card reports, PIN
locked, PIN entry cancelled, wrong card, removed, no token...) is shown in the panel and
the panel stays for another try.

Under a driver that cannot suspend (tests), the call runs in a thread and the keyholder
uses the terminal the test gave it. The result is handled on the UI thread once the worker
has finished (:mod:`kcm_tui.workers`); Escape is refused while the card is written (a
write cannot be stopped half-way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option

from kcm_tui.backend import BackendError, CarrierRefused, carrier_message
from kcm_tui.context import AppContext, CeremonySession, context_of
from kcm_tui.screens.entry import on_keyholder_terminal
from kcm_tui.widgets.pin_prompt import KeyholderPinPrompt
from kcm_tui.workers import ThreadWork

T = TypeVar("T")

PIN_STATE = {
    "ok": ("PIN ok", "green"),
    "count-low": ("PIN: a wrong try was made", "bold yellow"),
    "final-try": ("PIN: FINAL TRY", "bold red"),
    "locked": ("PIN LOCKED", "bold white on red"),
}


def token_label(t: dict[str, Any]) -> Text:
    """One line per card: label, serial, manufacturer, PIN state flags."""
    out = Text()
    out.append(f"{t.get('label', '?')}", style="bold")
    out.append(f"  serial {t.get('serial', '?')}")
    if t.get("manufacturer"):
        out.append(f"  {t['manufacturer']}", style="grey70")
    text, style = PIN_STATE.get(str(t.get("pin_state", "ok")), (f"PIN {t.get('pin_state')}", "yellow"))
    out.append(f"  [{text}]", style=style)
    if t.get("pin_pad"):
        out.append("  [PIN pad]", style="cyan")
    if t.get("pin_to_be_changed"):
        out.append("  [PIN must be changed]", style="yellow")
    if t.get("initialized") is False:
        out.append("  [not initialised]", style="yellow")
    return out


class CardPanel(ThreadWork, Vertical):
    """Pick the card; Enter: the keyholder asks for its PIN on its own screen. Errors stay
    on the panel."""

    DEFAULT_CSS = """
    CardPanel { height: auto; }
    CardPanel #card-tokens { max-height: 6; }
    CardPanel #card-status { height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "rescan", "Rescan cards"),
    ]

    class Ready(Message):
        """Enter on the PIN line: the owner calls :meth:`CardPanel.start_on_keyholder`."""

        def __init__(self, panel: CardPanel, serial: str | None) -> None:
            super().__init__()
            self.panel = panel
            self.serial = serial

    def __init__(self, session: CeremonySession, *, expected_serial: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.expected_serial = expected_serial
        self.tokens: list[dict[str, Any]] = []
        self.error = ""
        self.error_code = ""
        self.busy = False  # a card operation is pending: further Enters are ignored

    @property
    def capp(self) -> AppContext:
        """The ceremony application (:class:`kcm_tui.context.AppContext`)."""
        return context_of(self.app)

    def compose(self) -> ComposeResult:
        """The card list, the PIN line (Enter: the keyholder asks for it) and the status line."""
        yield Static("Cards in the readers (Up/Down to choose, F5 rescan):", classes="muted")
        yield OptionList(id="card-tokens")
        yield KeyholderPinPrompt(id="pin")
        yield Static("", id="card-status")

    def on_mount(self) -> None:
        """List the cards in the readers."""
        self.load(self.session.list_cards)
        self.call_after_refresh(self.pin.focus)

    @property
    def pin(self) -> KeyholderPinPrompt:
        """The PIN line (it holds nothing: the keyholder reads the PIN)."""
        return self.query_one(KeyholderPinPrompt)

    # ---------------------------------------------------------------- tokens

    def load(self, fn: Callable[[], list[dict[str, Any]]]) -> None:
        """List the cards with ``fn`` (list or rescan) and show them; a carrier error is shown with what to do."""
        ol = self.query_one("#card-tokens", OptionList)
        ol.clear_options()
        try:
            # by label, then serial: the same order on every screen and every run (a
            # module lists its slots in its own order; SoftHSM2's changes between workspaces)
            self.tokens = sorted(fn(), key=lambda t: (str(t.get("label", "")), str(t.get("serial", ""))))
        except CarrierRefused as exc:
            self.tokens = []
            self.show_error(carrier_message(exc), exc.code)
        except BackendError as exc:
            self.tokens = []
            self.show_error(str(exc))
        if not self.tokens:
            ol.add_option(Option("no card found: insert the card, then F5", disabled=True))
            return
        for t in self.tokens:
            ol.add_option(Option(token_label(t)))
        pick = 0
        if self.expected_serial:
            pick = next((i for i, t in enumerate(self.tokens) if str(t.get("serial")) == self.expected_serial), 0)
        ol.highlighted = pick

    def action_rescan(self) -> None:
        """F5: the keyholder looks for cards again (the card list is refreshed)."""
        self.show_error("")
        self.load(self.session.rescan_cards)
        if self.tokens:
            self.status(f"{len(self.tokens)} card(s) found.", "muted")

    @property
    def serial(self) -> str | None:
        """The chosen card's serial (None: the only card, the engine picks it)."""
        if not self.tokens:
            return None
        i = self.query_one("#card-tokens", OptionList).highlighted
        if i is None or not 0 <= i < len(self.tokens):
            return None
        return str(self.tokens[i].get("serial")) or None

    # ---------------------------------------------------------------- status

    def status(self, text: str | Text, style: str = "muted") -> None:
        """Show ``text`` on the status line (``style``: muted, error, ok, warn or a Rich style)."""
        t = text if isinstance(text, Text) else Text(text, style={"muted": "grey70", "error": "bold red", "ok": "bold green", "warn": "bold yellow"}.get(style, style))
        self.query_one("#card-status", Static).update(t)

    def show_error(self, text: str, code: str = "") -> None:
        """Show a card error (the engine's message, then what to do for its ``code``)."""
        self.error = text
        self.error_code = code
        self.status(text, "error")

    # ---------------------------------------------------------------- PIN

    def on_key(self, event: Any) -> None:
        """Up/Down choose the card while the PIN field has the focus."""
        if event.key in ("up", "down") and self.pin.has_focus and self.tokens:
            ol = self.query_one("#card-tokens", OptionList)
            (ol.action_cursor_up if event.key == "up" else ol.action_cursor_down)()
            event.prevent_default()
            event.stop()

    def on_keyholder_pin_prompt_submitted(self, event: KeyholderPinPrompt.Submitted) -> None:
        """Enter on the PIN line: tell the screen the card is chosen (once)."""
        event.stop()
        if self.busy:
            return
        self.busy = True
        self.post_message(self.Ready(self, self.serial))

    def start_on_keyholder(
        self,
        fn: Callable[[], T],
        done: Callable[[T | None, Exception | None], None],
        working: str,
    ) -> None:
        """Run the card call ``fn`` (which asks the keyholder for ``pin_from_terminal``)
        with the app off the terminal: the keyholder asks for the PIN on its own screen,
        then works with the card. ``done(result, error)`` is called on the UI thread. A
        carrier error is shown here (``done(None, None)``): nothing is lost, the panel
        stays for another try."""
        self.show_error("")
        self.busy = True
        self.pin.in_use = True
        self.pin.refresh()
        self.status(Text.assemble(
            ("The keyholder has the keyboard: type the PIN on its screen, then Enter (Esc there cancels).\n",
             "bold yellow"),
            (working, "bold yellow"),
            ("\nDo not remove the card. This cannot be stopped half-way (Escape waits).", "grey70")))
        spinner = LoadingIndicator(id="card-working")
        spinner.styles.height = 1
        self.mount(spinner)

        async def work() -> tuple[T | None, Exception | None]:
            try:
                return await on_keyholder_terminal(self.app, fn), None
            except Exception as exc:  # handed to the UI thread
                return None, exc

        self.run_async(work(), lambda out: self._finished(out[0], out[1], done),
                       group="card", name="card-operation")

    def _finished(self, result: T | None, error: Exception | None, done: Callable[[T | None, Exception | None], None]) -> None:
        self.busy = False
        self.pin.in_use = False
        self.pin.note = ""
        self.pin.refresh()
        for w in self.query("#card-working"):
            w.remove()
        self.status("")
        if isinstance(error, CarrierRefused):
            self.show_error(carrier_message(error), error.code)
            if error.code in ("card-pin-incorrect", "card-pin-locked", "card-removed", "card-no-token"):
                self.load(self.session.list_cards)  # fresh PIN state / presence
                self.show_error(carrier_message(error), error.code)
            self.pin.focus()
            done(None, None)
            return
        done(result, error)
