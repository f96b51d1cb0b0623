"""A card PIN entry: keystrokes into a locked buffer, never into a ``str``.

Like the word entry (docs/tui.md, "Typed entry"):

* each key goes into a :class:`core.secmem.SecretBuffer` owned by this widget (at most
  :data:`MAX_PIN` characters); Textual hands us each key as a one-character ``str``
  (CPython's cached single-character strings), nothing longer is ever built;
* the screen shows one ``*`` per character typed, nothing else; there is no
  ``Input.value``;
* copy, cut and paste are refused, a bracketed paste is dropped unread;
* the owner gets the PIN only as a memoryview of the locked buffer, valid during one call
  (:meth:`PinEntry.use`), and the buffer is wiped right after, whatever happened;
* after the idle timeout the typed PIN is wiped; it is wiped on unmount too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

MAX_PIN = 32
T = TypeVar("T")


class PinEntry(Widget, can_focus=True):
    """Masked PIN entry. Enter posts :class:`PinEntry.Submitted` (no characters in it)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c,ctrl+x,ctrl+v,super+c,super+x,super+v,shift+insert,ctrl+insert",
                "refuse_clipboard", "copy/paste disabled", show=False, priority=True),
    ]

    DEFAULT_CSS = """
    PinEntry { height: 3; border: solid white; padding: 0 1; width: 100%; max-width: 78; }
    PinEntry:focus { border: heavy yellow; }
    """

    typed: reactive[int] = reactive(0)

    class Submitted(Message):
        """Enter with at least one character typed. Counts only: never the PIN."""

        def __init__(self, entry: PinEntry, length: int) -> None:
            super().__init__()
            self.entry = entry
            self.length = length

    class Wiped(Message):
        """The typed PIN was wiped after the idle timeout."""

        def __init__(self, entry: PinEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, allow_unlocked: bool = False, idle_wipe: float = 180.0, id: str | None = None) -> None:
        super().__init__(id=id)
        from core.secmem import SecretBuffer

        self._buf = SecretBuffer(64, allow_unlocked=allow_unlocked)
        self.idle_wipe = idle_wipe
        self.last_activity = time.monotonic()
        self.refused_clipboard = 0
        self.note = ""
        #: a worker thread is using the PIN (card write/read): no idle wipe, no typing
        self.in_use = False

    def on_mount(self) -> None:
        """Start the idle timer."""
        self.set_interval(1.0, self._idle_tick)

    def on_unmount(self) -> None:
        """Wipe and free the PIN buffer."""
        self._buf.close()

    # ---------------------------------------------------------------- state

    def wipe(self) -> None:
        """Wipe the typed PIN."""
        self._buf.wipe()
        self.typed = 0
        self.refresh()

    def use(self, fn: Callable[[memoryview | None], T]) -> T:
        """Call ``fn`` with a view of the typed PIN (None when nothing was typed: the
        reader's PIN pad), valid only during the call; the PIN is wiped afterwards."""
        n = self.typed
        try:
            if not n:
                return fn(None)
            with self._buf.view(0, n) as mv:
                return fn(mv)
        finally:
            self.wipe()

    def use_in_worker(self, fn: Callable[[memoryview | None], T]) -> T:
        """:meth:`use` for a worker thread: the caller set :attr:`in_use` on the UI thread
        first. The locked buffer is wiped in ``finally`` in the worker, as soon as ``fn``
        returns or raises; :meth:`finish_use` (UI thread) then clears the count."""
        n = self.typed
        try:
            if not n:
                return fn(None)
            with self._buf.view(0, n) as mv:
                return fn(mv)
        finally:
            self._buf.wipe()

    def finish_use(self) -> None:
        """On the UI thread after :meth:`use_in_worker`: the PIN is gone, typing resumes."""
        self.in_use = False
        self.wipe()

    def _idle_tick(self) -> None:
        if self.in_use:
            return
        if self.typed and time.monotonic() - self.last_activity >= self.idle_wipe:
            self.wipe()
            self.note = "The PIN was wiped after the idle timeout: type it again."
            self.post_message(self.Wiped(self))
            self.refresh()

    # ---------------------------------------------------------------- keys

    def action_refuse_clipboard(self) -> None:
        """Nothing is pasted into a PIN."""
        self.refused_clipboard += 1
        self.note = "Copy, cut and paste are disabled for the PIN."
        self.refresh()

    def on_paste(self, event: events.Paste) -> None:
        """Refuse a paste."""
        event.prevent_default()
        event.stop()
        self.action_refuse_clipboard()

    def on_key(self, event: events.Key) -> None:
        """Digits go into the locked buffer; Backspace, Enter, Esc."""
        ch = event.character
        key = event.key
        if self.in_use:  # the PIN is being used by a card operation: keys do nothing here
            if key != "escape":
                event.prevent_default()
                event.stop()
            return
        self.last_activity = time.monotonic()
        handled = True
        if ch is not None and len(ch) == 1 and "!" <= ch <= "~":
            if self.typed >= MAX_PIN:
                self.note = f"A PIN has at most {MAX_PIN} characters."
            else:
                with self._buf.view(self.typed, self.typed + 1) as mv:
                    mv[0] = ord(ch)
                self.typed += 1
                self.note = ""
        elif key == "backspace":
            if self.typed:
                with self._buf.view(self.typed - 1, self.typed) as mv:
                    mv[0] = 0
                self.typed -= 1
        elif key == "enter":
            self.post_message(self.Submitted(self, self.typed))
        elif key == "escape" and self.typed:
            self.wipe()
        else:
            handled = False
        if handled:
            event.prevent_default()
            event.stop()
            self.refresh()

    # ---------------------------------------------------------------- render

    def render(self) -> Text:
        """One mask character per digit."""
        out = Text()
        out.append("PIN: ", style="bold")
        out.append("*" * self.typed, style="bold yellow")
        if self.note:
            out.append(f"  {self.note}", style="bold yellow")
        elif not self.typed:
            out.append("(type the PIN, Enter)", style="grey70")
        return out

    def __repr__(self) -> str:  # never the contents
        return f"PinEntry(typed={self.typed})"

    def debug_state(self) -> dict[str, Any]:
        """Public state (for tests): counts only."""
        return {"typed": self.typed, "refused_clipboard": self.refused_clipboard}
