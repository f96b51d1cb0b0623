"""Share entry handed to the keyholder, shared by collection, checks and re-entry.

The trusted path (issue 14, docs/threat-model.md): while a custodian types a share or scans
its QR, this process reads nothing from the terminal. :class:`EntryPanel` suspends the
app's terminal driver (Textual's ``App.suspend``: the input thread is joined, the terminal
restored and its input queue flushed) and asks the keyholder to run the entry on its own
terminal (``ops_shares`` ENTRY_TERMINAL); the keyholder reads the keys in raw mode into
locked memory, draws the masked entry, the word counter and its messages, refuses pastes
and accepts a wedge-scanner burst, flushes the input queue when it is done, and answers
with public facts only. Then the app resumes.

Under a test driver that cannot suspend (headless), the keyholder call runs in a thread
and the keyholder uses the terminal the test gave it (a pty the test types into).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from kcm_tui.backend import BackendError, EntryResult, KeyholderGone
from kcm_tui.context import AppContext, CeremonySession, context_of


async def on_keyholder_terminal(app: Any, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (a blocking keyholder call that owns the terminal) with this process off
    the terminal: the driver suspended (its input thread joined, nothing read) for the
    whole call. The event loop is blocked on purpose: nothing may draw meanwhile. A driver
    that cannot suspend (tests) leaves the terminal alone anyway; then ``fn`` runs in a
    thread so the test can play the custodian."""
    driver = getattr(app, "_driver", None)
    if driver is not None and getattr(driver, "can_suspend", False) and not getattr(driver, "is_headless", False):
        # Textual's suspend() resumes the driver only when its body returns normally:
        # an error (the keyholder died) is carried out of the block, then raised
        outcome: Any = None
        error: BaseException | None = None
        with app.suspend():
            try:
                outcome = fn()
            except Exception as exc:
                error = exc
        if error is not None:
            raise error
        return outcome
    return await asyncio.to_thread(fn)


class EntryPanel(Vertical, can_focus=True):
    """A typed (or scanned) entry run by the keyholder on its own terminal."""

    DEFAULT_CSS = "EntryPanel { height: auto; border: solid grey; } EntryPanel:focus { border: heavy yellow; }"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "start", "hand the keyboard to the keyholder", show=False),
    ]

    class Done(Message):
        """The keyholder accepted the share's checksum (public facts only)."""

        def __init__(self, result: EntryResult, via: str = "typed") -> None:
            super().__init__()
            self.result = result
            self.via = via

    class Lost(Message):
        """The keyholder died during the entry."""

        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(
        self,
        session: CeremonySession,
        *,
        purpose: str,
        member: int = -1,
        scanner: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.session = session
        self.purpose = purpose
        self.member = member
        self.scanner = scanner
        self.running = False
        self.started = False  # kept for callers that ask whether an entry is open
        self.lost = False
        self.last: dict[str, Any] = {}
        self.on_idle_wipe: Callable[[], None] | None = None

    @property
    def capp(self) -> AppContext:
        """The ceremony application (:class:`kcm_tui.context.AppContext`)."""
        return context_of(self.app)

    def compose(self) -> ComposeResult:
        yield Static(self._intro(), id="entry-intro")
        yield Static("", id="entry-hint")

    def _intro(self) -> str:
        what = "scans the share QR (or types the words)" if self.scanner else "types the share"
        return (
            f"The keyholder takes the keyboard and the screen while the custodian {what}: "
            "this program reads nothing meanwhile. On the keyholder's screen: 4 letters a "
            "word (it completes itself), Backspace, Ctrl+W drops the last word, Enter checks "
            "the share, ? shows the suggestion for a flagged word, Esc Esc comes back here."
        )

    def on_mount(self) -> None:
        self.focus()
        self.call_after_refresh(self.action_start)

    def hint(self, text: str, kind: str = "muted") -> None:
        self.query_one("#entry-hint", Static).update(text)
        self.query_one("#entry-hint", Static).set_classes(kind)

    def action_start(self) -> None:
        """Hand the keyboard to the keyholder until the entry ends (in a worker, so this
        widget's message queue stays free; under a real terminal the worker blocks the
        event loop on purpose while the app is suspended)."""
        if self.running or self.lost:
            return
        self.running = self.started = True
        self.run_worker(self._run_entry(), group="keyholder-entry", exclusive=True)

    async def _run_entry(self) -> None:
        self.hint("The keyholder has the keyboard (its screen shows the entry).", "muted")
        capp = self.capp
        try:
            result = await on_keyholder_terminal(
                self.app,
                lambda: self.session.entry_terminal(
                    self.purpose,
                    scanner=self.scanner,
                    idle_warn=capp.idle_warn,
                    idle_wipe=capp.idle_wipe,
                ),
            )
        except KeyholderGone as exc:
            self.running = self.started = False
            self.lost = True
            self.query_one("#entry-intro", Static).update("ENTRY STOPPED: the keyholder is gone.")
            self.hint(str(exc), "error")
            self.post_message(self.Lost(str(exc)))
            return
        except BackendError as exc:
            self.running = self.started = False
            self.hint(f"{exc} Press Enter to try again, Esc to go back.", "error")
            return
        self.running = self.started = False
        self.last = dict(result)
        self.handle(result)

    def handle(self, r: dict[str, Any]) -> None:
        status = str(r.get("status", ""))
        refused = int(r.get("pastes_refused", 0) or 0)
        note = f" ({refused} paste(s) refused; nothing of them was kept.)" if refused else ""
        if status == "ok":
            share = {"set": r.get("set"), "group": r.get("group"), "member": r.get("member")}
            via = str(r.get("via", "typed"))
            self.hint(f"Checksum correct ({'scanned' if via == 'scanner' else 'typed'}, "
                      f"{r.get('keystrokes', 0)} keys).{note}", "ok")
            msg = f"share {r.get('member')} of {self.session.group_label(r.get('group'))}, set {r.get('set')}"
            self.post_message(self.Done(EntryResult(True, msg, share=share), via))
        elif status == "idle":
            self.hint("The entry was wiped after the idle timeout. Press Enter to start again, "
                      f"Esc to go back.{note}", "error")
            if self.on_idle_wipe is not None:
                self.on_idle_wipe()
        elif status == "hangup":
            self.hint("The keyholder's terminal hung up; nothing was kept. Press Enter to try "
                      "again, Esc to go back.", "error")
        else:
            self.hint(f"Entry left; nothing typed was kept. Press Enter to type again, Esc to "
                      f"go back.{note}", "warn")

    def cancel(self) -> None:
        """The keyholder's entry ends on the keyholder's own terminal; nothing is held
        here. Wipe a finished, unused entry in the keyholder."""
        if not self.running:
            self.session.entry_cancel()
