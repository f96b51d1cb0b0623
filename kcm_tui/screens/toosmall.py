"""Below 80x24: a screen that asks for a larger terminal, over whatever screen was shown.

The app pushes it when the terminal shrinks below :data:`MIN_SIZE` and removes it when the
terminal is large enough again: the screen underneath comes back as it was (focus, typed
text). While it is shown it takes every key (it is modal and has no input), so nothing is
typed into a field of the screen below; it shows no data of the ceremony.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Static

#: The smallest terminal every screen is laid out for (columns, rows).
MIN_SIZE = (80, 24)


def too_small(width: int, height: int) -> bool:
    """True when a ``width`` x ``height`` terminal is below :data:`MIN_SIZE`."""
    return width < MIN_SIZE[0] or height < MIN_SIZE[1]


def enlarge_text(width: int, height: int) -> str:
    """What the screen says for a ``width`` x ``height`` terminal."""
    return (
        f"This terminal is {width}x{height}.\n"
        f"Enlarge it to at least {MIN_SIZE[0]}x{MIN_SIZE[1]} to continue.\n\n"
        "The screen underneath comes back as it was;\n"
        "keys typed meanwhile are ignored."
    )


class TooSmallScreen(ModalScreen[None]):
    """"Enlarge the terminal": shown while the terminal is below 80x24."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "ignore", show=False)]

    def compose(self) -> ComposeResult:
        """The sentence and nothing else (no input, no button)."""
        with Vertical(id="too-small"):
            yield Static(enlarge_text(*self.app.size), id="too-small-text")

    def on_resize(self) -> None:
        """Say the new size."""
        for text in self.query("#too-small-text").results(Static):
            text.update(enlarge_text(*self.app.size))

    def on_key(self, event: Key) -> None:
        """Every key stops here: none reaches the screen underneath."""
        event.stop()
        event.prevent_default()

    def action_ignore(self) -> None:
        """Esc does not remove the screen: only a larger terminal does."""
