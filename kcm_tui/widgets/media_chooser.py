"""The removable-medium chooser shared by the export step (:mod:`kcm_tui.screens.runner`)
and the start screen (the ceremony medium): one line per medium (label, device, size), and
the start screen's chooser window. Public data only: labels, devices, sizes, mount points."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from core.media import human_size
from kcm_tui.backend_media import read_only_reason

#: What the administrator does to have the ceremony stick listed.
GUIDANCE = "Insert the ceremony stick; it is listed here with its label and size. F5 refreshes."


def same_medium(a: Any, b: Any) -> bool:
    """The same medium: the same mount point, or the same device (a removable device chosen
    while unmounted is listed at its mount point once the media helper has mounted it)."""
    return bool(a.path == b.path or (a.device and a.device == b.device))


def medium_line(m: Any) -> Text:
    """A medium in a chooser: its label, device, file system and size; a read-only one with
    the reason, indented under it (the continuation lines keep the indent)."""
    t = Text()
    t.append(f"{m.label}", style="bold")
    kind = "demo folder" if m.demo else (m.device or "removable")
    if getattr(m, "mounted", True):
        t.append(f"  {kind}  {m.fs}  size {human_size(m.size)}  free {human_size(m.free)}")
    else:  # a removable device on the ceremony image: writable only once chosen
        t.append(f"  {kind}  {m.fs}  size {human_size(m.size)}  (made writable when chosen)")
    reason = read_only_reason(m)
    if reason:  # broken by hand so that every line keeps the indent at 80 columns
        lines = textwrap.wrap(f"READ-ONLY, cannot be chosen: {reason}", 62, break_on_hyphens=False)
        t.append("".join(f"\n  {line}" for line in lines), style="bold yellow")
    return t


def ceremony_value(m: Any) -> str:
    """What the start screen's media field holds for medium ``m``: its mount point, or its
    device when it is not mounted (the media helper mounts it when the ceremony opens)."""
    return str(m.path) if getattr(m, "mounted", True) else str(m.device)


class MediumModal(ModalScreen["str | None"]):
    """Choose the ceremony medium among the removable media (F5 lists them again); answers
    with what goes into the media field, or None (Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("f5", "refresh", "Refresh"),
    ]

    def __init__(self, backend: Any, current: str = "") -> None:
        super().__init__()
        self.backend = backend
        self.current = current
        self.media: list[Any] = []

    def compose(self) -> ComposeResult:
        """Guidance, the media, what Enter and Esc do."""
        with Vertical(classes="modal", id="medium-modal"):
            yield Static("Ceremony medium: the journal and the exports go here", classes="title")
            yield Static(GUIDANCE, id="medium-guidance")
            yield OptionList(id="media-list")
            yield Static("", id="media-caption", classes="muted")
            yield Static("Enter chooses; Esc keeps the field as it is (a folder may be typed there "
                         "for a demo or practice).", classes="muted")

    def on_mount(self) -> None:
        """List the media and focus the list."""
        self.action_refresh()
        self.query_one("#media-list", OptionList).focus()

    def list_media(self) -> list[Any]:
        """The removable media (and the demo folder in demo mode), read-only ones included."""
        demo_folder = None
        if getattr(self.backend, "demo", False) and getattr(self.backend, "media", None):
            demo_folder = Path(self.backend.media) if Path(self.backend.media).is_dir() else None
        try:
            return list(self.backend.media_chooser.choices(demo_folder))
        except OSError:
            return []

    def action_refresh(self) -> None:
        """F5: list the media again."""
        self.media = self.list_media()
        listing = self.query_one("#media-list", OptionList)
        listing.clear_options()
        listing.add_options(
            [Option(medium_line(m), id=f"medium-{i}", disabled=bool(m.read_only)) for i, m in enumerate(self.media)]
        )
        listing.display = bool(self.media)
        usable = [i for i, m in enumerate(self.media) if not m.read_only]
        current = [i for i in usable if ceremony_value(self.media[i]) == self.current]
        if current or usable:
            listing.highlighted = (current or usable)[0]
        self.query_one("#media-caption", Static).update(
            f"{len(self.media)} medium(s) listed." if self.media
            else "No removable medium found: insert the stick, wait a moment, then press F5."
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on a medium: it is the ceremony medium."""
        event.stop()
        if event.option.id:
            m = self.media[int(event.option.id.removeprefix("medium-"))]
            if not m.read_only:
                self.dismiss(ceremony_value(m))

    def action_cancel(self) -> None:
        """Esc: the field stays as it was."""
        self.dismiss(None)
