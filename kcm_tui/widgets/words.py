"""Public words in a numbered grid (fingerprints, KCVs, journal hashes): to read aloud."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static


def word_grid(words: Sequence[str], columns: int = 4) -> Text:
    """Numbered words, column-major (read down), each cell 16 wide: fits 80 columns."""
    out = Text()
    rows = -(-len(words) // columns) if words else 0
    for r in range(rows):
        for c in range(columns):
            i = r + c * rows
            if i >= len(words):
                continue
            out.append(f"{i + 1:2d} ", style="bold")
            out.append(f"{words[i]:<12}", style="bold cyan")
            if c < columns - 1:
                out.append("  ")
        if r < rows - 1:
            out.append("\n")
    return out


class WordGrid(Static):
    """A numbered grid of public words."""

    DEFAULT_CSS = "WordGrid { height: auto; }"

    def __init__(self, words: Sequence[str] = (), *, columns: int = 4, id: str | None = None) -> None:
        super().__init__(word_grid(words, columns), id=id)
        self.columns = columns
        self.words = tuple(words)

    def set_words(self, words: Sequence[str]) -> None:
        """Replace the words shown."""
        self.words = tuple(words)
        self.update(word_grid(self.words, self.columns))
