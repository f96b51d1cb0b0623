"""Handheld (keyboard-wedge) QR scanner input: each key press goes to the keyholder.

A wedge scanner "types" the QR's content as a fast burst of key presses ending with Enter.
This widget takes each key as Textual delivers it (a one-character ``str``), puts its byte
into a one-byte locked :class:`core.secmem.SecretBuffer`, and forwards a view of it with
the arrival time (monotonic microseconds) to ``forward``; the buffer is wiped after each
key. The keyholder tells bursts (a scanner) from typing (a person) and assembles the share;
nothing is assembled here. The screen shows only how many keys of the burst arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widget import Widget

Forward = Callable[[memoryview, int], Any]


class ScannerSink(Widget, can_focus=True):
    """Focus target while waiting for a scan."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c,ctrl+x,ctrl+v,super+c,super+x,super+v,shift+insert,ctrl+insert",
                "refuse_clipboard", "copy/paste disabled", show=False, priority=True),
    ]

    DEFAULT_CSS = """
    ScannerSink { height: 3; border: solid white; padding: 0 1; }
    ScannerSink:focus { border: heavy yellow; }
    """

    def __init__(self, forward: Forward, *, allow_unlocked: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        from core.secmem import SecretBuffer

        self._forward = forward
        self._buf = SecretBuffer(1, allow_unlocked=allow_unlocked)
        self.count = 0
        self.note = ""

    def on_unmount(self) -> None:
        """Wipe and free the key buffer."""
        self._buf.close()

    def action_refuse_clipboard(self) -> None:
        """Nothing is pasted as scanner input."""
        self.note = "Copy, cut and paste are disabled: scan the QR."
        self.refresh()

    def on_paste(self, event: events.Paste) -> None:
        """Refuse a paste."""
        event.prevent_default()
        event.stop()
        self.action_refuse_clipboard()

    def on_key(self, event: events.Key) -> None:
        """Each key press goes to the keyholder (through a locked one-byte buffer) with its time."""
        if event.key == "escape":
            return  # the screen leaves the scanner
        ch = event.character
        if event.key == "enter":
            code = 0x0D
        elif ch is not None and len(ch) == 1 and " " <= ch <= "~":
            code = ord(ch)
        else:
            return
        event.prevent_default()
        event.stop()
        t_us = time.monotonic_ns() // 1000
        try:
            with self._buf.view(0, 1) as mv:
                mv[0] = code
                self._forward(mv, t_us)
        finally:
            self._buf.wipe()

    def render(self) -> Text:
        """How many keys arrived, never which."""
        out = Text()
        out.append("Scanner: ", style="bold")
        if self.count:
            out.append(f"{self.count} key(s) of the scan received", style="bold yellow")
        else:
            out.append("waiting for the scan (point the scanner at the share QR)", style="grey70")
        if self.note:
            out.append(f"  {self.note}", style="bold yellow")
        return out
