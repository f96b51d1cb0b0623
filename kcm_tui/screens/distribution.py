"""Genesis distribution: one share per screen, for its custodian only.

Per custodian: call them to the screen (others look away) -> the custodian reveals the
share: the app suspends itself and the KEYHOLDER writes the numbered word grid on the
terminal, waits for a key, clears the screen and the scrollback -> "have you written it
down?" -> the share is checked by re-entry (typed, word by word, masked) -> the custodian
acknowledges. The plaintext share never passes through this process.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kcm_tui.backend import BackendError, ShareRefused
from kcm_tui.screens.card import CardPanel
from kcm_tui.screens.common import CeremonyScreen, ConfirmModal, ExceptionModal, replace_children
from kcm_tui.screens.entry import EntryPanel


class DistributionScreen(CeremonyScreen):
    """Hands out the shares of a new set, one custodian at a time."""

    TITLE_TEXT = "Share distribution"
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("R", "reveal the share (custodian only; the others look away)"),
        ("Q", "show the share as a QR code (custodian only)"),
        ("Up / Down", "card: choose the custodian's card"),
        ("Enter", "card: the keyholder asks for the card PIN on its own screen (masked), then writes the share"),
        ("F5", "card: rescan the card readers"),
        ("Enter, Enter", "on the keyholder's screen: end the reveal (other keys do nothing)"),
        ("Y / N", "the custodian has / has not written the share down (N: shown again, until typed back)"),
        ("a-z", "on the keyholder's screen: type the share back, 4 letters a word (masked)"),
        ("Enter", "on an empty word: check the re-entered share; Esc Esc: back here"),
        ("F2", "record an exception"),
        ("F10", "abort the ceremony (asks first)"),
        ("Esc", "back to the step (the distribution can be resumed)"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.phase = "call"  # call -> written -> verify -> (next custodian)
        self.custodian = ""
        self.shown_count = 0
        self.displays: list[str] = ["screen"]
        self.missing: list[str] = []
        self.carriers: dict[str, str] = {}
        self.card_result: dict[str, Any] = {}
        self.last_display = "screen"  # how the share was last revealed (N reveals it again)

    def compose(self) -> ComposeResult:
        """Title, progress, the custodian area and the error line."""
        yield from self.compose_banners()
        yield Static("Act: hand out the shares", classes="title", id="dist-title")
        yield Static("", id="dist-progress", classes="subtitle")
        yield Static("", id="dist-last")  # the last custodian done: "Share verified: ..."
        yield Vertical(id="dist-body")
        yield Static("", id="dist-error", classes="error")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        """Read the step's displays and carriers, then call the first custodian still due."""
        view = self.session.current()
        if view is not None:
            wanted = list(view.params.get("display") or ["screen"])
            self.displays, self.missing = self.usable(wanted)
        try:
            self.carriers = self.session.share_carriers()
        except BackendError as exc:
            self.set_error(str(exc))
        self.next_custodian()

    # ---------------------------------------------------------------- flow

    def usable(self, wanted: list[str]) -> tuple[list[str], list[str]]:
        """The step's displays this build can drive, and those it cannot."""
        supported = self.session.SUPPORTED_DISPLAYS
        offered, missing = [w for w in wanted if w in supported], [w for w in wanted if w not in supported]
        return offered or ["screen"], missing

    def remaining(self) -> list[str]:
        """Custodians still due their share (the engine's record), in policy order."""
        progress = self.session.distribution()
        return progress.due() if progress is not None else []

    def set_error(self, text: str) -> None:
        """Show an error under the custodian area."""
        self.query_one("#dist-error", Static).update(text)

    def progress_line(self) -> None:
        """Show how many custodians are done and, with groups, one line per group."""
        progress = self.session.distribution()
        total = progress.total if progress is not None else len(self.session.split_custodians())
        done = progress.done if progress is not None else 0
        t = Text(f"Shares handed out: {done} of {total}")
        if progress is not None and len(progress.groups) > 1:  # by the script's names (issue 18)
            for g in progress.groups:
                t.append(f"\n  {g.name[:16]:<16} {g.threshold} of {g.members} to recover   "
                         f"handed out {g.have} of {g.members}")
        self.query_one("#dist-progress", Static).update(t)

    def next_custodian(self) -> None:
        """Go on with the next custodian the engine says is due (where their share is), or close when none is."""
        self.progress_line()
        left = self.remaining()
        if not left:
            self.dismiss(True)
            return
        self.custodian = left[0]
        # resumed after Esc: go on where the engine's record says this custodian is
        progress = self.session.distribution()
        status = progress.status(self.custodian).value if progress is not None else "due"
        handover = progress.handovers.get(self.custodian) if progress is not None else None
        display = handover.display if handover is not None else ""
        if status == "shown" and display in ("screen", "qr"):
            self.show_qr_kept() if display == "qr" else self.show_written()
        elif status == "written" and display == "screen":
            self.show_verify()
        elif status in ("checked", "skipped", "written"):
            self.finish_custodian(checked=status == "checked")
        else:
            self.show_call()

    def body(self, *widgets: Any, focus: str = "") -> None:
        """Swap the custodian area for ``widgets`` (then focus ``focus``)."""
        then = (lambda: self.focus_selector(focus)) if focus else None
        replace_children(self.query_one("#dist-body", Vertical), list(widgets), then=then)

    def carrier(self) -> str:
        """How this custodian gets the share: the script's carriers table, else screen."""
        return self.carriers.get(self.custodian, "screen")

    def custodian_label(self) -> str:
        """``Custodian 2 (eu)``: the role's name, and its group's name when there are groups."""
        name = self.session.role_name(self.custodian)
        group_of = getattr(self.session, "group_of", None)
        group = (group_of() if callable(group_of) else {}).get(self.custodian)
        return f"{name} ({group})" if group else name

    def show_call(self) -> None:
        """Call the custodian to the screen alone, with Reveal (and QR where allowed)."""
        self.phase = "call"
        carrier = self.carrier()
        if carrier == "card":
            self.show_card_call()
            return
        name = self.custodian_label()
        t = Text()
        t.append(f"{name}", style="bold yellow")
        t.append(" comes to the screen alone.\n")
        t.append("Everyone else: look away from the screen now.", style="bold white on red")
        if carrier == "qr":
            t.append("\n\nThe script hands this share over as a QR code. When only the custodian can see"
                     " the screen, they press Reveal: the keyholder draws the QR full screen.")
        else:
            t.append("\n\nWhen only the custodian can see the screen, they press Reveal. The share is"
                     " shown full screen by the keyholder until they press Enter twice (after 3"
                     " minutes without a key it is hidden; it can be shown again).")
        if self.missing:
            names = " or ".join({"qr": "a QR code", "card": "writing it to a card"}.get(m, m) for m in self.missing)
            t.append(f"\n(The share by {names}: not available yet in this build.)", style="grey70")
        if carrier == "qr":
            buttons = [Button("Reveal the QR code (R)", id="reveal-qr", variant="primary")]
            focus = "#reveal-qr"
        else:
            buttons = [Button("Reveal (R)", id="reveal", variant="primary")]
            focus = "#reveal"
            if "qr" in self.displays and self.custodian not in self.carriers_declared():
                buttons.append(Button("QR code (Q)", id="reveal-qr"))
        self.body(Static(t, classes="notice"), Horizontal(*buttons, classes="buttons"), focus=focus)

    def carriers_declared(self) -> set[str]:
        """Custodians the script names in the step's carriers table (another way needs a reason)."""
        view = self.session.current()
        return set((view.params.get("carriers") or {}) if view else {})

    # ---------------------------------------------------------------- card

    def expected_serial(self) -> str | None:
        """The card serial the script names for this custodian (None if none)."""
        return self.session.card_serial_of(self.custodian)

    def show_card_call(self) -> None:
        """Ask the custodian for their card and PIN (the share goes to the card)."""
        self.phase = "card"
        name = self.custodian_label()
        t = Text()
        t.append(f"{name}", style="bold yellow")
        t.append(": the script writes your share to your smart card. Insert it in the reader,"
                 " choose it below and press Enter: the keyholder takes the keyboard and asks for the"
                 " PIN on its own screen (masked). A key is made on the card, the share is written,"
                 " read back and checked.")
        self.body(
            Static(t, classes="notice"),
            CardPanel(self.session, expected_serial=self.expected_serial(), id="card-panel"),
            focus="#pin",
        )

    def on_card_panel_ready(self, event: CardPanel.Ready) -> None:
        """Write the share to the card in a worker thread (key generation on the card takes
        seconds); the screen stays live and says not to remove the card."""
        event.stop()
        panel = event.panel
        custodian = self.custodian
        serial = event.serial
        panel.start_on_keyholder(
            lambda: self.session.write_card(custodian, serial, None, pin_from_terminal=True),
            lambda res, exc: self._card_written(panel, res, exc),
            "Writing the share to the card (a key is generated on the card: this can take a while)...",
        )

    def busy_reason(self) -> str:
        """A card is being written: it cannot be stopped half-way."""
        if any(p.busy for p in self.query(CardPanel).results(CardPanel)):
            return "Please wait: the card is being written; this cannot be stopped half-way."
        return ""

    def _card_written(self, panel: CardPanel, res: dict[str, Any] | None, exc: Exception | None) -> None:
        if isinstance(exc, ShareRefused):
            panel.show_error(str(exc))
            return
        if isinstance(exc, BackendError):
            self.set_error(str(exc))
            return
        if exc is not None:
            raise exc
        if res is None:
            return  # carrier error shown in the panel; try again
        self.card_result = res
        self.show_card_written(res)

    def show_card_written(self, res: dict[str, Any]) -> None:
        """The card was written: its serial, the read-back check and the key fingerprint words."""
        self.phase = "card-written"
        name = self.session.role_name(self.custodian)
        t = Text()
        t.append(f"{name}: ", style="bold yellow")
        t.append("share written to card ")
        t.append(str(res.get("card_serial", "?")), style="bold")
        t.append(".\n")
        if res.get("verified"):
            t.append("Read back and checked against the manifest: OK", style="bold green")
        else:
            t.append("Read-back check: NOT VERIFIED - do not accept this card", style="bold white on red")
        t.append("\n")
        t.append("stored on the card" if res.get("stored_on_card") else f"sealed share file: {res.get('sealed_file', '?')}",
                 style="grey70")
        t.append("\n\nCard key fingerprint (read aloud; the custodian writes it on the card's sleeve):\n", style="bold")
        words = list(res.get("key_fingerprint_words") or [])
        for i in range(0, len(words), 4):
            t.append("  " + "  ".join(f"{i + j + 1:2d} {w:<9}" for j, w in enumerate(words[i:i + 4])) + "\n")
        fp = str(res.get("key_fingerprint", ""))
        if fp:
            t.append(f"  {fp[:32]}\n  {fp[32:64]}", style="grey70")
        buttons = [Button("Continue (Enter)", id="card-done", variant="primary", disabled=not res.get("verified"))]
        self.body(Static(t, classes="notice"), Horizontal(*buttons, classes="buttons"), focus="#card-done")

    def reveal(self, display: str = "screen") -> None:
        """The keyholder shows the share on the terminal (the app is suspended meanwhile)."""
        self.set_error("")
        self.last_display = display
        from textual.app import SuspendNotSupported

        try:
            try:
                # the error (a refused reveal) leaves the block before it is raised:
                # Textual resumes the driver only when the body returns normally
                error: BackendError | None = None
                with self.app.suspend():
                    try:
                        self.session.show_share(self.custodian, display)
                    except BackendError as exc:
                        error = exc
                if error is not None:
                    raise error
            except SuspendNotSupported:
                # headless (tests): the keyholder writes to the injected display target
                self.session.show_share(self.custodian, display)
        except BackendError as exc:
            self.set_error(str(exc))
            return
        self.refresh(layout=True)
        if display == "qr":
            self.show_qr_kept()
        else:
            self.show_written()

    def show_qr_kept(self) -> None:
        """Ask whether the QR was copied onto the grid card."""
        self.phase = "written"
        name = self.session.role_name(self.custodian)
        self.body(
            Static(
                Text.assemble(
                    (f"{name}: ", "bold yellow"),
                    "has the QR code been copied onto your QR grid card, square by square, and every"
                    " row checked against the screen?",
                ),
                classes="notice",
            ),
            Horizontal(
                Button("Yes, copied (Y)", id="qr-kept", variant="primary"),
                Button("No (N)", id="again"),
                classes="buttons",
            ),
            focus="#qr-kept",
        )

    def show_written(self) -> None:
        """Ask whether every word was written down."""
        self.phase = "written"
        name = self.session.role_name(self.custodian)
        self.body(
            Static(
                Text.assemble(
                    (f"{name}: ", "bold yellow"),
                    "have you written down every word of your share, in order, and checked the numbers?",
                ),
                classes="notice",
            ),
            Horizontal(
                Button("Yes, written down (Y)", id="written", variant="primary"),
                Button("No (N)", id="again"),
                classes="buttons",
            ),
            focus="#written",
        )

    def show_verify(self) -> None:
        """The custodian types the share back (masked) so the engine can check it."""
        self.phase = "verify"
        name = self.session.role_name(self.custodian)
        member = self.session.split_custodians().index(self.custodian)
        panel = EntryPanel(self.session, purpose="verify", member=member, id="entry")
        self.body(
            Static(f"{name}: type your share back from your sheet on the keyholder's screen. Words are masked.",
                   classes="subtitle"),
            panel,
            Horizontal(Button("Skip the check (record why)", id="skip-check"), classes="buttons"),
        )

    def on_entry_panel_done(self, event: EntryPanel.Done) -> None:
        """The typed-back share is complete: the engine checks it (and journals the check)."""
        event.stop()
        panel = event.control if isinstance(event.control, EntryPanel) else self.query_one(EntryPanel)
        try:
            # the engine decides and journals; its message says what was compared
            message = self.session.check_typed_share(self.custodian)
        except BackendError as exc:
            panel.cancel()  # wipe the typed share in the keyholder either way
            self.set_error(str(exc))
            panel.hint(f"{exc} Press Enter to type the share back again.", "error")
            return
        panel.cancel()
        panel.remove()  # its "type the share" text is over
        self.set_error("")  # an earlier refusal no longer applies
        self.finish_custodian(checked=True, note=message)

    def finish_custodian(self, *, checked: bool, note: str = "") -> None:
        """The custodian acknowledges; the line under the progress says what was done for
        them (``note``: the engine's verdict on a typed-back share); on to the next custodian."""
        view = self.session.current()
        try:
            if view is not None and self.custodian in view.acknowledge:
                self.session.acknowledge(self.custodian)
        except BackendError as exc:
            self.set_error(str(exc))
            return
        name = self.custodian_label()
        line = Text()
        if checked and note:
            line.append("Share verified", style="bold black on green")
            line.append(f" {name}: {note}.", style="bold")
        elif checked:
            line.append("Share checked", style="bold black on green")
            line.append(f" {name}: handed out and checked.", style="bold")
        else:
            line.append(f"{name}: share handed out.", style="bold")
        last = self.query_one("#dist-last", Static)
        last.update(line)
        last.display = True
        self.notify(line.plain, timeout=3)  # also seen on the step if this was the last custodian
        self.next_custodian()

    # ---------------------------------------------------------------- input

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Reveal, QR, written down, copied, card done, not written, skip the check."""
        bid = event.button.id
        if bid == "reveal":
            self.reveal("screen")
        elif bid == "reveal-qr":
            self.reveal("qr")
        elif bid == "written":
            self.written_down(then_check=True)
        elif bid == "qr-kept":
            self.written_down(then_check=False)
        elif bid == "card-done":
            self.finish_custodian(checked=True)
        elif bid == "again":
            self.not_written()
        elif bid == "skip-check":
            self.skip_check()

    def on_key(self, event: events.Key) -> None:
        """R, Q, Y and N as the buttons say."""
        key = event.key
        qr_only = self.carrier() == "qr"
        if self.phase == "call" and key == "r":
            self.reveal("qr" if qr_only else "screen")
        elif self.phase == "call" and key == "q" and (qr_only or ("qr" in self.displays and self.custodian not in self.carriers_declared())):
            self.reveal("qr")
        elif self.phase == "written" and key == "y":
            self.written_down(then_check=not self.query("#qr-kept"))
        elif self.phase == "written" and key == "n":
            self.not_written()
        else:
            return
        # handled: no binding may act on this key (a modal just opened binds Y/N too)
        event.prevent_default()
        event.stop()

    def written_down(self, *, then_check: bool) -> None:
        """The custodian says the share is written down (or the QR copied): the engine
        records it; words are then typed back to check them, a QR is done."""
        try:
            self.session.share_written(self.custodian)
        except BackendError as exc:
            self.set_error(str(exc))
            return
        if then_check:
            self.show_verify()
        else:
            self.finish_custodian(checked=False)

    def not_written(self) -> None:
        """Not written down completely: the keyholder shows the share again (it may, until
        the custodian's type-back check has passed); the showing is journaled."""
        self.reveal(self.last_display)

    def skip_check(self) -> None:
        """Skip the typed-back check with a reason (the engine journals it)."""
        def record(text: str | None) -> None:
            if not text:
                return
            try:
                self.session.skip_share_check(self.custodian, text)
            except BackendError as exc:
                self.set_error(str(exc))
                return
            for panel in self.query(EntryPanel).results(EntryPanel):
                panel.cancel()
            self.finish_custodian(checked=False)

        self.app.push_screen(ExceptionModal(), record)

    def action_leave(self) -> None:
        """Esc: leave the distribution (asks first; it can be resumed from the step)."""
        if self.refuse_while_busy():
            return

        def answer(yes: bool | None) -> None:
            if yes:
                for panel in self.query(EntryPanel).results(EntryPanel):
                    panel.cancel()
                self.dismiss(False)

        self.app.push_screen(ConfirmModal("Leave the distribution? It can be resumed from the step."), answer)
