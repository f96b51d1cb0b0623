"""A check box drawn with ASCII ``[x]``/``[ ]`` (the stock one uses half-block glyphs the
Linux console font lacks, and shows on/off by colour only)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class AckBox(Checkbox):
    """``[x] label`` / ``[ ] label``; space or enter toggles."""

    DEFAULT_CSS = """
    AckBox { border: none; height: 1; padding: 0 1 0 0; background: black; width: auto; }
    AckBox:focus { border: none; background: black; text-style: bold reverse; }
    AckBox > .toggle--button { background: black; color: white; }
    AckBox.-on > .toggle--button { background: black; color: lime; }
    """

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.styled("[x]" if self.value else "[ ]", style)
