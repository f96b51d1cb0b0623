"""Typed share entry: word by word, into a locked buffer, never into a ``str``.

Design (docs/tui.md, "Typed entry"):

* Each letter goes into a :class:`core.secmem.SecretBuffer` owned by this widget (one
  word at a time, at most 8 letters: the longest SLIP-39 word). Textual hands us each key
  as a one-character ``str`` (CPython's cached single-character strings); nothing longer
  is ever built from the letters. The key events are stopped here.
* The screen shows only masks: ``####`` for a completed word (fixed width, so the length
  of the word is not shown), ``*`` per letter typed in the current word, a position counter
  and the keyholder's public answers.
* The current word is sent to the keyholder when the user presses space or enter, as a
  ``Secret(memoryview)`` of the buffer (``writev``, no copy); the buffer is wiped right
  after. The keyholder completes a unique prefix (SLIP-39 words are unique after 4 letters),
  flags an unknown word at once with the nearest words, and reports the checksum and the
  probable typo position when the share is complete. Live prefix checking between letters
  is not done: it would need one keyholder call per letter and shows nothing an observer
  could not learn from the answer at space.
* Copy, cut and paste are bound to a refusal; a bracketed paste is dropped unread.
* No message posted by this widget carries a character: :class:`WordEntry.Changed`
  carries counts only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

MAX_LETTERS = 8
MASK_DONE = "####"

Submit = Callable[[memoryview], None]


class WordEntry(Widget, can_focus=True):
    """A word-by-word secret entry. The owner supplies ``submit`` (called with a view of
    the locked word buffer, valid only during the call) and updates the status lines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c,ctrl+x,ctrl+v,super+c,super+x,super+v,shift+insert,ctrl+insert",
                "refuse_clipboard", "copy/paste disabled", show=False, priority=True),
    ]

    DEFAULT_CSS = """
    WordEntry { height: auto; }
    """

    count: reactive[int] = reactive(0)  # words accepted so far
    typed: reactive[int] = reactive(0)  # letters typed in the current word

    class Changed(Message):
        """Counts only: never the letters."""

        def __init__(self, entry: WordEntry, count: int, typed: int) -> None:
            super().__init__()
            self.entry = entry
            self.count = count
            self.typed = typed

    class Submitted(Message):
        """Enter on an empty word: the owner should ask the keyholder to check the share."""

        def __init__(self, entry: WordEntry) -> None:
            super().__init__()
            self.entry = entry

    class Undo(Message):
        """Ctrl+W on an empty word: the owner should drop the last accepted word."""

        def __init__(self, entry: WordEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(
        self,
        submit: Submit,
        *,
        expected: int = 33,
        allow_unlocked: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        from core.secmem import SecretBuffer

        self._submit = submit
        self._buf = SecretBuffer(64, allow_unlocked=allow_unlocked)
        self.expected = expected
        self.status_line = ""
        self.status_kind = "muted"
        self.marked: int = 0  # a position flagged as probably wrong (1-based), 0 if none
        self.replacing: int = 0  # position being re-typed (typo fix), 0 if none
        self.last_activity = time.monotonic()
        self.refused_clipboard = 0

    # ---------------------------------------------------------------- state

    def wipe(self) -> None:
        """Wipe the current word (the keyholder's partial entry is the owner's business)."""
        self._buf.wipe()
        self.typed = 0

    def reset(self, count: int = 0) -> None:
        """Wipe and set the accepted-word count."""
        self.wipe()
        self.count = count
        self.marked = 0
        self.replacing = 0
        self.refresh(layout=True)

    def set_status(self, text: str, kind: str = "muted") -> None:
        """A public status line under the grid (keyholder answers, hints)."""
        self.status_line = text
        self.status_kind = kind
        self.refresh(layout=True)

    def on_unmount(self) -> None:
        """Wipe and free the word buffer."""
        self._buf.close()

    # ---------------------------------------------------------------- keys

    def action_refuse_clipboard(self) -> None:
        """Nothing is pasted into a share."""
        self.refused_clipboard += 1
        self.set_status("Copy, cut and paste are disabled during share entry.", "warn")

    def on_paste(self, event: events.Paste) -> None:
        # The pasted text is dropped without being looked at or stored.
        """Refuse a paste."""
        event.prevent_default()
        event.stop()
        self.action_refuse_clipboard()

    def on_key(self, event: events.Key) -> None:
        """Letters go into the locked buffer; Space, Backspace, Enter, Ctrl+W."""
        key = event.key
        ch = event.character
        handled = True
        self.last_activity = time.monotonic()
        if ch is not None and len(ch) == 1 and ("a" <= ch <= "z" or "A" <= ch <= "Z"):
            if self.typed >= MAX_LETTERS:
                self.set_status(f"A word has at most {MAX_LETTERS} letters: press space.", "warn")
            else:
                code = ord(ch) | 0x20  # lower case without building a new str
                with self._buf.view(self.typed, self.typed + 1) as mv:
                    mv[0] = code
                self.typed += 1
        elif key == "backspace":
            if self.typed:
                with self._buf.view(self.typed - 1, self.typed) as mv:
                    mv[0] = 0
                self.typed -= 1
        elif key in ("space", "enter", "tab") and self.typed:
            self._send_word()
        elif key == "enter":
            self.post_message(self.Submitted(self))
        elif key == "ctrl+w" and not self.typed:
            self.post_message(self.Undo(self))
        elif key == "escape" and self.typed:
            self.wipe()
        else:
            handled = key in ("space",)  # a stray space is swallowed
        if handled:
            event.prevent_default()
            event.stop()
            self.post_message(self.Changed(self, self.count, self.typed))
            self.refresh(layout=True)

    def _send_word(self) -> None:
        n = self.typed
        try:
            with self._buf.view(0, n) as mv:
                self._submit(mv)
        finally:
            self.wipe()

    # ---------------------------------------------------------------- render

    def render(self) -> Text:
        """Which word is being typed and the masked entry (never the letters)."""
        out = Text()
        pos = self.replacing or (self.count + 1)
        head = f"Word {min(pos, self.expected)} of {self.expected}" if self.expected else f"Word {pos}"
        if self.replacing:
            head += "  (re-typing the flagged word)"
        out.append(head + "\n", style="bold yellow")
        cols = 6
        total = self.expected if self.expected else self.count + 1
        rows = -(-total // cols)
        for r in range(rows):
            for c in range(cols):
                i = r + c * rows + 1  # column-major: read down like a written list
                if i > total:
                    continue
                if i == pos:
                    cell = "*" * self.typed + "_" * (MAX_LETTERS - self.typed)
                    style = "bold black on yellow"
                elif i == self.marked:
                    cell, style = "?" * 4 + " " * 4, "bold white on red"
                elif i <= self.count:
                    cell, style = MASK_DONE + " " * 4, "green"
                else:
                    cell, style = "." * 4 + " " * 4, "grey50"
                out.append(f"{i:02d} ", style="bold")
                out.append(cell, style=style)
                out.append("  " if c < cols - 1 else "")
            out.append("\n")
        if self.status_line:
            out.append(self.status_line, style={"muted": "grey70", "warn": "bold yellow", "error": "bold red", "ok": "bold green"}.get(self.status_kind, ""))
        else:
            out.append("Type a word, then space. Backspace corrects; Ctrl+W drops the last word;"
                       " Enter on an empty word checks the share.", style="grey70")
        return out
