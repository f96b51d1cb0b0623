"""Share collection (and checking): carrier choice, progress per group, clear refusals."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, LoadingIndicator, Static

from core.ceremony.model import QR_CARRIERS
from core.ceremony.model import expand_carriers as model_expand_carriers
from kcm_tui.backend import (
    FINISHED_ENTRY,
    BackendError,
    CarrierRefused,
    ShareRefused,
    carrier_message,
)
from kcm_tui.screens.card import CardPanel
from kcm_tui.screens.common import CeremonyScreen, ConfirmModal, replace_children
from kcm_tui.screens.entry import EntryPanel

CARRIER_LABEL = {
    "typed": "Typed (T)",
    "card": "Card (C)",
    "qr-file": "QR file (Q)",
    "qr-camera": "Camera (K)",
    "scanner": "Scanner (S)",
}
CARRIER_KEY = {"t": "typed", "c": "card", "q": "qr-file", "k": "qr-camera", "s": "scanner"}
#: A script's ``qr`` allows every QR way in (the engine's vocabulary).
QR_WAYS = tuple(c.value for c in QR_CARRIERS)
CAMERA_DEVICE = "/dev/video0"
CAMERA_TIMEOUT_S = 30


def expand_carriers(wanted: list[str]) -> list[str]:
    """The script's carriers as the UI offers them (``qr`` -> image file, camera, scanner)."""
    return [c.value for c in model_expand_carriers(wanted)]


class CollectionScreen(CeremonyScreen):
    """Collect shares until the policy is met (collect-shares), or check them one by one."""

    TITLE_TEXT = "Share collection"
    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("T / C / Q / K / S", "how the next share comes in: typed, smart card, QR image file, camera, scanner"),
        ("Enter", "card: the keyholder asks for the card PIN on its own screen (masked; Esc there cancels); F5 rescans the readers"),
        ("a-z", "on the keyholder's screen: 4 letters a word (it completes itself; masked)"),
        ("Backspace", "correct the current word"),
        ("Ctrl+W", "drop the last accepted word"),
        ("Enter", "on an empty word: check the share (checksum, typo position)"),
        ("?", "after a checksum error: the suggested word, on the keyholder's screen"),
        ("Esc", "leave the entry (the partial entry is wiped)"),
        ("F2", "record an exception"),
        ("F10", "abort the ceremony (asks first)"),
    ]
    BUSY_TIMEOUT: ClassVar[float] = 4
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.carriers: list[str] = ["typed"]
        self.missing: list[str] = []
        self.mode = "choose"
        self.last_refusal = ""
        self.scanning = False  # the camera scan runs in a worker thread
        self.check_mode = False

    def compose(self) -> ComposeResult:
        """Title, progress, the carrier area and the error line."""
        yield from self.compose_banners()
        yield Static("", id="coll-title", classes="title")
        yield Static("", id="coll-progress")
        yield Vertical(id="coll-body")
        yield Static("", id="coll-error", classes="error")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        """Offer the step's carriers this build can drive; show the progress and the choice."""
        view = self.session.current()
        if view is not None:
            wanted = expand_carriers(list(view.params.get("carriers") or ["typed"]))
            supported = self.session.SUPPORTED_CARRIERS
            self.carriers = [c for c in wanted if c in supported] or ["typed"]
            self.missing = [c for c in wanted if c not in supported]
            self.check_mode = view.kind == "check-shares"
            set_id = view.results.get("set_id", "?")
            verb = "Check the shares" if self.check_mode else "Collect the shares"
            self.query_one("#coll-title", Static).update(f"{verb} of set {set_id}")
        self.update_progress()
        self.show_choice()

    # ---------------------------------------------------------------- progress

    def update_progress(self, last: dict[str, Any] | None = None) -> None:
        """Show the last share's message and the engine's tally per group."""
        view = self.session.current()
        t = Text()
        entries = list((view.display.get("checked") if self.check_mode else view.display.get("accepted")) or []) if view else []
        if last is None and entries:
            last = entries[-1]
        if last:
            msg = str(last.get("message") or last.get("progress") or "")
            if msg:
                t.append(msg, style="bold cyan")
        if not t.plain:
            t.append("No share entered yet.", style="grey70")
        # the engine's tally per group, by the script's names (issue 18); a policy without
        # groups is one group, which the message above already says
        progress = self.session.collection()
        if progress is not None and len(progress.groups) > 1:
            for g in progress.groups:
                done = "  complete" if g.complete else ""
                of = f" of {g.members}" if g.members else ""
                t.append(f"\n  {g.name[:16]:<16} {g.threshold}{of} needed   received {g.have}{done}",
                         style="bold green" if done else "")
        self.query_one("#coll-progress", Static).update(t)

    def set_error(self, text: str) -> None:
        """Show a refusal or an error (kept for the next screen update)."""
        self.last_refusal = text
        self.query_one("#coll-error", Static).update(text)

    def body(self, *widgets: Any, focus: str = "") -> None:
        """Swap the carrier area for ``widgets`` (then focus ``focus``)."""
        then = (lambda: self.focus_selector(focus)) if focus else None
        replace_children(self.query_one("#coll-body", Vertical), list(widgets), then=then)

    # ---------------------------------------------------------------- carriers

    def show_choice(self) -> None:
        """Ask how the next share comes in."""
        self.mode = "choose"
        buttons = [Button(CARRIER_LABEL.get(c, c), id=f"carrier-{c}") for c in self.carriers]
        note = ", ".join({"card": "smart card", "qr-file": "QR image", "qr-camera": "camera", "scanner": "scanner"}.get(c, c) for c in self.missing)
        self.body(
            Static("How does the next share come in?", classes="subtitle"),
            Horizontal(*buttons, classes="buttons"),
            Static(f"({note}: not available yet in this build)" if note else "", classes="muted"),
            focus="#coll-body Button",
        )

    def choose(self, carrier: str) -> None:
        """Show the input of ``carrier`` (typed words, QR file, card, camera, scanner)."""
        if carrier not in self.carriers:
            return
        self.set_error("")
        self.mode = carrier
        if carrier == "typed":
            panel = EntryPanel(self.session, purpose="check" if self.check_mode else "collect", id="entry")
            self.body(Static("The custodian types their share; the words are masked.", classes="muted"), panel)
        elif carrier == "qr-file":
            self.body(
                Static("Path of the photographed or scanned share QR image (on the medium):", classes="muted"),
                Input(placeholder="/media/.../share.png", id="qr-path"),
                focus="#qr-path",
            )
        elif carrier == "card":
            self.body(
                Static("The custodian inserts their card, chooses it and presses Enter: the keyholder"
                       " asks for the PIN on its own screen (masked).", classes="muted"),
                CardPanel(self.session, id="card-panel"),
                focus="#pin",
            )
        elif carrier == "qr-camera":
            self.body(
                Static(f"Hold the share QR in front of the camera ({CAMERA_DEVICE}), then press Scan."
                       " The keyholder reads the frames; nothing is stored.", classes="muted"),
                Horizontal(Button("Scan with the camera", id="camera-scan", variant="primary"), classes="buttons"),
                focus="#camera-scan",
            )
        elif carrier == "scanner":
            panel = EntryPanel(self.session, purpose="check" if self.check_mode else "collect", scanner=True,
                               id="entry")
            self.body(Static("Scan the share QR with the handheld scanner: the keyholder reads the scan on its"
                             " own screen (a paste is refused). Esc: back.", classes="muted"), panel)

    # ---------------------------------------------------------------- carriers in

    def on_card_panel_ready(self, event: CardPanel.Ready) -> None:
        """Read the card in a worker thread; the screen stays live."""
        event.stop()
        panel = event.panel
        serial = event.serial
        panel.start_on_keyholder(
            lambda: self.session.add_card(serial, None, pin_from_terminal=True),
            lambda out, exc: self._card_read(panel, out, exc),
            "Reading the card...",
        )

    def _card_read(self, panel: CardPanel, out: dict[str, Any] | None, exc: Exception | None) -> None:
        if isinstance(exc, ShareRefused):
            panel.show_error(f"Share refused: {exc}")
            self.set_error(f"Share refused: {exc}")
            return
        if isinstance(exc, BackendError):
            panel.show_error(str(exc))
            return
        if exc is not None:
            raise exc
        if out is None:
            return  # carrier error shown in the panel; the PIN can be typed again
        self.accepted(out)

    def busy_reason(self) -> str:
        """A card or the camera is in use in a worker thread."""
        if self.scanning or any(p.busy for p in self.query(CardPanel).results(CardPanel)):
            what = "the camera is scanning" if self.scanning else "the card is being read"
            return f"Please wait: {what}."
        return ""

    def camera(self) -> None:
        """Scan with the camera (up to 30 s) in a worker thread: the screen stays live and
        shows a loading indicator; the result is handled once the worker has finished."""
        if self.scanning:
            return
        self.set_error("")
        self.scanning = True
        for b in self.query("#camera-scan").results(Button):
            b.disabled = True
            b.label = "Scanning..."
        body = self.query_one("#coll-body", Vertical)
        body.mount(Static(f"Scanning with the camera (up to {CAMERA_TIMEOUT_S} s): hold the QR steady.",
                          id="camera-label", classes="muted"))
        spinner = LoadingIndicator(id="camera-working")
        spinner.styles.height = 1
        body.mount(spinner)

        def work() -> tuple[dict[str, Any] | None, BackendError | None]:
            try:
                return self.session.add_camera(CAMERA_DEVICE, CAMERA_TIMEOUT_S), None
            except BackendError as exc:
                return None, exc

        self.run_in_thread(work, lambda res: self._camera_done(*res), group="camera", name="camera-scan")

    def _camera_done(self, out: dict[str, Any] | None, error: BackendError | None) -> None:
        self.scanning = False
        for w in self.query("#camera-working, #camera-label"):
            w.remove()
        if error is not None or out is None:
            self.refused(error or BackendError("the camera returned nothing"))
            return
        self.accepted(out)

    def refused(self, exc: BaseException, *, back: bool = True) -> None:
        """Show why a share was refused (carrier errors with what to do); back to the choice."""
        if isinstance(exc, CarrierRefused):
            self.set_error(carrier_message(exc))
        elif isinstance(exc, ShareRefused):
            self.set_error(f"Share refused: {exc}")
        else:
            self.set_error(str(exc))
        if back:
            self.show_choice()

    def feed(self, carrier: str, payload: Any) -> None:
        """Give one share to the engine by ``carrier``; show the answer."""
        try:
            if carrier == "qr-file":
                out = self.session.add_qr_file(str(payload))
            else:
                out = self.session.add_share(carrier, payload)
        except BackendError as exc:
            self.refused(exc)
            return
        self.accepted(out)

    def accepted(self, out: dict[str, Any]) -> None:
        """A share was accepted (or checked): progress, and back to the step when done."""
        self.set_error("")
        self.update_progress(out)
        self.notify("Share accepted." if not self.check_mode else "Share checked: it matches.", timeout=3)
        if out.get("complete") or self.check_mode:
            view = self.session.current()
            if view is not None and (view.performed or out.get("complete")):
                if self.check_mode:
                    self.show_choice()
                    self.body(
                        Static("Share matches the manifest. Check another, or finish.", classes="ok"),
                        Horizontal(
                            *[Button(CARRIER_LABEL.get(c, c), id=f"carrier-{c}") for c in self.carriers],
                            classes="buttons",
                        ),
                        Horizontal(Button("Finish checking", id="finish", variant="primary"), classes="buttons"),
                    )
                    return
                self.dismiss(True)
                return
        self.show_choice()

    # ---------------------------------------------------------------- events

    def on_entry_panel_done(self, event: EntryPanel.Done) -> None:
        """The typed share is complete and checked: collect it."""
        event.stop()
        self.feed("scanner" if event.via == "scanner" else "typed", FINISHED_ENTRY)
        if self.check_mode:
            self.session.entry_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter on the QR file path: read the share in that image."""
        if event.input.id == "qr-path":
            path = event.value.strip()
            if path:
                self.feed("qr-file", path)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A carrier button or the camera scan."""
        bid = event.button.id or ""
        if bid.startswith("carrier-"):
            self.choose(bid.removeprefix("carrier-"))
        elif bid == "camera-scan":
            self.camera()
        elif bid == "finish":
            self.dismiss(True)

    def on_key(self, event: Any) -> None:
        """T, C, Q, K, S choose the carrier."""
        if self.mode == "choose" and event.key in CARRIER_KEY:
            self.choose(CARRIER_KEY[event.key])
            event.prevent_default()
            event.stop()

    def action_leave(self) -> None:
        """Esc: back to the carrier choice, or (asks first) out of the collection."""
        if self.refuse_while_busy():
            return
        if self.mode in ("typed", "scanner"):
            for panel in self.query(EntryPanel).results(EntryPanel):
                panel.cancel()
            self.show_choice()
            return
        if self.mode == "card":
            for pin in self.query("#pin"):
                pin.wipe()  # type: ignore[attr-defined]
        if self.mode != "choose":
            self.show_choice()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.dismiss(False)

        self.app.push_screen(ConfirmModal("Leave share collection? Shares accepted so far are kept."), answer)
