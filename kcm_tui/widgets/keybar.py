"""A light footer: the current screen's key bindings on one line.

Textual's ``Footer`` builds one widget per binding and recomposes on every focus change;
this draws the same information as one line of text (cheaper at start, and no glyphs the
console font lacks).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class KeyBar(Widget):
    """``F1 Help  F2 Exception  F10 Abort`` for the active bindings of the screen."""

    DEFAULT_CSS = """
    KeyBar { height: 1; dock: bottom; background: #202020; color: white; }
    """

    def on_mount(self) -> None:
        """Follow the screen's bindings."""
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def render(self) -> Text:
        """The keys of the screen and what they do."""
        out = Text(" ")
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            b = active.binding
            if not b.show or not b.description or b.description in seen:
                continue
            seen.add(b.description)
            key = self.app.get_key_display(b).upper()
            out.append(f" {key} ", style="bold black on white")
            out.append(f" {b.description}  ")
        return out
