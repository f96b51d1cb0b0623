"""Where a card PIN is asked for: the keyholder reads it, this process never does.

A card PIN is a secret crossing the terminal, so the keyholder owns the terminal for it
(issue 14; docs/threat-model.md, "Trusted path"). This widget holds no buffer and reads no
character: Enter posts :class:`KeyholderPinPrompt.Submitted`, the card panel suspends the
app (its terminal driver reads nothing) and the keyholder asks for the PIN on its own
screen (:mod:`core.keyholder.termpin`), masked, then uses it for the card operation and
wipes it. Digits typed here (out of habit) are dropped unread.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget


class KeyholderPinPrompt(Widget, can_focus=True):
    """The PIN line of the card panel. Enter: hand the keyboard to the keyholder."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "type the PIN on the keyholder's screen", show=False),
    ]

    DEFAULT_CSS = """
    KeyholderPinPrompt { height: 3; border: solid white; padding: 0 1; width: 100%; max-width: 78; }
    KeyholderPinPrompt:focus { border: heavy yellow; }
    """

    class Submitted(Message):
        """Enter: the owner runs the card call with the PIN read by the keyholder."""

        def __init__(self, prompt: KeyholderPinPrompt) -> None:
            super().__init__()
            self.prompt = prompt

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: a card call is running (the keyholder has or had the keyboard): Enter is ignored
        self.in_use = False
        self.note = ""

    def action_submit(self) -> None:
        """Enter: the keyholder takes the keyboard and asks for the PIN."""
        if not self.in_use:
            self.post_message(self.Submitted(self))

    def on_paste(self, event: events.Paste) -> None:
        """A paste here is dropped (a PIN is typed on the keyholder's screen only)."""
        event.prevent_default()
        event.stop()
        self.note = "Nothing is typed or pasted here: press Enter, then type the PIN on the keyholder's screen."
        self.refresh()

    def on_key(self, event: events.Key) -> None:
        """Printable keys typed here (a PIN out of habit) are dropped, with a hint."""
        ch = event.character
        if ch is not None and len(ch) == 1 and "!" <= ch <= "~":
            event.prevent_default()
            event.stop()
            self.note = "Not here: press Enter, then type the PIN on the keyholder's screen."
            self.refresh()

    def render(self) -> Text:
        out = Text()
        out.append("PIN: ", style="bold")
        if self.in_use:
            out.append("on the keyholder's screen", style="bold yellow")
        elif self.note:
            out.append(self.note, style="bold yellow")
        else:
            out.append("Enter, then type it on the keyholder's screen (masked)", style="grey70")
        return out
