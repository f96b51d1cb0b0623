"""The smart-card carrier: token picker + locked PIN entry, shared by distribution,
collection and share checks.

:class:`CardPanel` lists the cards in the readers (``Session.list_cards``: label, serial,
manufacturer, PIN state), rescans on F5 (``Session.rescan_cards``: the keyholder
re-initialises its PKCS#11 module), and owns a :class:`PinEntry`. When the PIN is entered
the owner screen gets :class:`CardPanel.Ready` and calls :meth:`CardPanel.with_pin` with
the engine call; a carrier error (wrong PIN, PIN locked, wrong card, removed, no token...)
is shown in the panel, the PIN is wiped and the panel stays for another try.

:meth:`CardPanel.start_with_pin` runs the card call in a worker thread (on-card key
generation takes seconds): the panel shows a loading indicator and "do not remove the
card", keys stay live (Escape is refused while the card is written: a write cannot be
stopped half-way), the PIN's locked buffer is wiped in the worker's ``finally`` and the
result is handled on the UI thread once the worker has finished (:mod:`kcm_tui.workers`).
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
from kcm_tui.widgets.pin_entry import PinEntry
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
    """Pick the card, type its PIN (masked). Errors stay on the panel."""

    DEFAULT_CSS = """
    CardPanel { height: auto; }
    CardPanel #card-tokens { max-height: 6; }
    CardPanel #card-status { height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "rescan", "Rescan cards"),
    ]

    class Ready(Message):
        """The PIN was entered (Enter): the owner calls :meth:`CardPanel.with_pin`."""

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
        """The card list, the masked PIN field and the status line."""
        yield Static("Cards in the readers (Up/Down to choose, F5 rescan):", classes="muted")
        yield OptionList(id="card-tokens")
        yield PinEntry(allow_unlocked=self.capp.backend.demo, idle_wipe=self.capp.idle_wipe, id="pin")
        yield Static("", id="card-status")

    def on_mount(self) -> None:
        """List the cards in the readers."""
        self.load(self.session.list_cards)
        self.call_after_refresh(self.pin.focus)

    @property
    def pin(self) -> PinEntry:
        """The PIN field (its buffer is locked memory)."""
        return self.query_one(PinEntry)

    # ---------------------------------------------------------------- tokens

    def load(self, fn: Callable[[], list[dict[str, Any]]]) -> None:
        """List the cards with ``fn`` (list or rescan) and show them; a carrier error is shown with what to do."""
        ol = self.query_one("#card-tokens", OptionList)
        ol.clear_options()
        try:
            self.tokens = list(fn())
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

    def on_pin_entry_submitted(self, event: PinEntry.Submitted) -> None:
        """Enter in the PIN field: tell the screen the card and PIN are ready (once)."""
        event.stop()
        if self.busy:
            return
        self.busy = True
        self.post_message(self.Ready(self, self.serial))

    def start_with_pin(
        self,
        fn: Callable[[memoryview | None], T],
        done: Callable[[T | None, Exception | None], None],
        working: str,
    ) -> None:
        """Run ``fn`` with a view of the locked PIN in a worker thread; ``done(result,
        error)`` is called on the UI thread. A carrier error is shown here (``done(None,
        None)``): nothing is lost, the panel stays for another try."""
        self.show_error("")
        self.busy = True
        self.pin.in_use = True
        self.status(Text.assemble((working, "bold yellow"),
                                  ("\nDo not remove the card. This cannot be stopped half-way (Escape waits).", "grey70")))
        spinner = LoadingIndicator(id="card-working")
        spinner.styles.height = 1
        self.mount(spinner)

        def work() -> tuple[T | None, Exception | None]:
            try:
                return self.pin.use_in_worker(fn), None  # PIN wiped in its finally
            except Exception as exc:  # handed to the UI thread
                return None, exc

        self.run_in_thread(work, lambda out: self._finished(out[0], out[1], done),
                           group="card", name="card-operation")

    def _finished(self, result: T | None, error: Exception | None, done: Callable[[T | None, Exception | None], None]) -> None:
        self.busy = False
        self.pin.finish_use()
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

    def with_pin(self, fn: Callable[[memoryview | None], T]) -> T | None:
        """Run ``fn`` with a view of the locked PIN (wiped afterwards). A carrier error is
        shown here (None returned): nothing is lost, the panel stays for another try."""
        self.show_error("")
        try:
            return self.pin.use(fn)
        except CarrierRefused as exc:
            self.show_error(carrier_message(exc), exc.code)
            if exc.code in ("card-pin-incorrect", "card-pin-locked", "card-removed", "card-no-token"):
                self.load(self.session.list_cards)  # fresh PIN state / presence
                self.show_error(carrier_message(exc), exc.code)
            self.pin.focus()
            return None
        finally:
            self.busy = False
