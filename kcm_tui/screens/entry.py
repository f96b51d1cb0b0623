"""Typed share entry wired to the keyholder, shared by collection, checks and re-entry.

:class:`EntryPanel` owns a :class:`WordEntry`; it sends each word to the keyholder, shows
the public answers (unknown word and nearest words, checksum, probable typo position),
and handles the idle timeout (warning, then the partial entry is wiped, here and in the
keyholder).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from kcm_tui.backend import BackendError, EntryResult
from kcm_tui.context import AppContext, CeremonySession, context_of
from kcm_tui.widgets.word_entry import WordEntry


class EntryPanel(Vertical):
    """A typed entry session in the keyholder, shown as masks and public answers."""

    DEFAULT_CSS = "EntryPanel { height: auto; }"

    class Done(Message):
        """The keyholder accepted the share's checksum (public facts only)."""

        def __init__(self, result: EntryResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, session: CeremonySession, *, purpose: str, member: int = -1, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.purpose = purpose
        self.member = member
        self.warned = False
        self.started = False
        self.on_idle_wipe: Callable[[], None] | None = None

    @property
    def capp(self) -> AppContext:
        """The ceremony application (:class:`kcm_tui.context.AppContext`)."""
        return context_of(self.app)

    def compose(self) -> ComposeResult:
        """The masked word entry and its hint line."""
        yield WordEntry(self.submit_word, allow_unlocked=self.capp.backend.demo, id="word-entry")
        yield Static("", id="entry-hint")

    def on_mount(self) -> None:
        """Start the entry in the keyholder and the idle timer."""
        self.begin()
        self.set_interval(0.5, self.idle_tick)

    @property
    def entry(self) -> WordEntry:
        """The word entry widget (its buffer is locked memory)."""
        return self.query_one(WordEntry)

    def hint(self, text: str, kind: str = "muted") -> None:
        """Show ``text`` under the entry (``kind``: muted, error, ok, warn)."""
        self.entry.set_status(text, kind)

    def begin(self) -> None:
        """Start (again) an empty entry in the keyholder."""
        self.entry.reset()
        try:
            info = self.session.entry_begin(self.purpose, self.member)
        except BackendError as exc:
            self.started = False
            self.hint(str(exc), "error")
            return
        self.started = True
        expected = int(info.get("expected", 0) or 0)
        if expected:
            self.entry.expected = expected
        self.entry.focus()

    # ---------------------------------------------------------------- words

    def submit_word(self, view: memoryview) -> None:
        """Called by the widget with a view of its locked buffer (valid during the call)."""
        if not self.started:
            self.hint("The keyholder has no entry open: press Esc and start again.", "error")
            return
        entry = self.entry
        position = entry.replacing or entry.count + 1
        if position > entry.expected:
            self.hint(f"All {entry.expected} words are in: press Enter to check the share.", "warn")
            return
        try:
            st = self.session.entry_word(view, position)
        except BackendError as exc:
            self.hint(str(exc), "error")
            return
        if st.status == "accepted":
            if entry.replacing:
                entry.replacing = 0
                entry.marked = 0
                self.hint(f"Word {position} replaced: press Enter to check the share again.", "ok")
                return
            entry.count = position
            if st.count >= entry.expected:
                self.hint("All words entered: press Enter to check the share.", "ok")
            else:
                self.hint(f"Word {position} accepted ({st.count} of {entry.expected}).", "ok")
        elif st.status == "unknown":
            near = ", ".join(st.suggestions[:4])
            self.hint(f"Word {st.position} is not in the word list." + (f" Nearest: {near}." if near else "") + " Type it again.", "error")
        elif st.status == "ambiguous":
            self.hint(f"Word {st.position}: type more letters (could be {', '.join(st.suggestions[:4])}).", "warn")
        else:
            self.hint(st.message or f"Word {st.position}: {st.status}", "warn")

    def on_word_entry_undo(self, event: WordEntry.Undo) -> None:
        """Ctrl+W: drop the last accepted word."""
        event.stop()
        if self.entry.count:
            self.entry.count -= 1
            self.hint(f"Type word {self.entry.count + 1} again (it replaces the one entered).", "muted")

    def on_word_entry_submitted(self, event: WordEntry.Submitted) -> None:
        """A word (or, on an empty word, the whole share) goes to the keyholder."""
        event.stop()
        try:
            result = self.session.entry_finish()
        except BackendError as exc:
            self.hint(str(exc), "error")
            return
        if result.ok:
            self.hint("Checksum correct.", "ok")
            self.post_message(self.Done(result))
            return
        if result.typo_position:
            cands = ", ".join(result.typo_candidates[:4])
            text = f"Checksum wrong. Word {result.typo_position} is probably wrong"
            text += f": did you mean {cands}?" if cands else "."
            text += f" Re-type word {result.typo_position} now."
            self.entry.marked = result.typo_position
            self.entry.replacing = result.typo_position
            self.hint(text, "error")
        else:
            self.hint(result.message or "Checksum wrong: check the words with the custodian's sheet.", "error")

    def on_word_entry_changed(self, event: WordEntry.Changed) -> None:
        """Typing again: the idle warning starts over."""
        event.stop()
        self.warned = False

    # ---------------------------------------------------------------- idle

    def idle_tick(self) -> None:
        """After a while without typing: warn, then wipe the partial entry."""
        if not self.started:
            return
        idle = time.monotonic() - self.entry.last_activity
        if idle >= self.capp.idle_wipe:
            self.wipe_partial()
        elif idle >= self.capp.idle_warn and not self.warned:
            self.warned = True
            left = int(self.capp.idle_wipe - idle)
            self.hint(f"No key pressed for a while: the entry is wiped in {left} s unless you continue.", "warn")

    def wipe_partial(self) -> None:
        """Wipe the partial entry here and in the keyholder, then start a fresh one."""
        self.entry.wipe()
        self.session.entry_cancel()
        self.started = False
        self.entry.reset()
        self.entry.last_activity = time.monotonic()
        self.hint("The partial entry was wiped after the idle timeout. Press Esc, then start again.", "error")
        if self.on_idle_wipe is not None:
            self.on_idle_wipe()

    def cancel(self) -> None:
        """Wipe the partial entry in the keyholder and in the widget."""
        self.entry.wipe()
        if self.started:
            self.session.entry_cancel()
        self.started = False
