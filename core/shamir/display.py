"""Show one share to its custodian on a terminal, then erase it.

The keyholder writes the share straight to the custodian's terminal (a tty path it
opens itself), so the parent process never receives it. The screen text is assembled in a
locked buffer from the word list's public ``bytes`` objects (looked up through the
two-level ``WORDS_HL[hi][lo]`` table: no ``str`` and no int above 255 is made from the
share), written with ``os.write`` from a memoryview, and the buffer is wiped. What remains
is outside Python: the terminal's own buffers, which the final ESC[2J ESC[3J ESC[H
(clear screen, clear scrollback, home) empties on terminals that honour it.

Layout: a numbered grid in 3 columns (11 rows for 33 words, 7 for 20), under 60 columns
and 20 rows, so it fits 80x24 with the title and the prompt.
"""

from __future__ import annotations

from typing import Final

from core.custodian_tty import (
    CLEAR,
    CONFIRM_PROMPT,
    HOLD_PROMPT,
    REVEAL_IDLE_S,
    custodian_tty,
    hold_until_confirmed,
    terminal_size,
    tty_write,
)
from core.shamir._mem import alloc
from core.shamir.wordlist import WORDS_HL

__all__ = ["CLEAR", "render_grid", "show_share", "show_share_on_tty"]

COLUMNS: Final = 3
CELL: Final = 18  # "NN. wordxxxx" padded
PROMPT: Final = b"\r\n" + HOLD_PROMPT


def _put(mv: memoryview, pos: int, data: bytes) -> int:
    mv[pos : pos + len(data)] = data
    return pos + len(data)


def share_title(
    ident: int | None, group: int, member: int, *, custodian: str = "", group_name: str = ""
) -> str:
    """The public heading of a share screen: ``Set 1187 - group eu, share 3 - for Ann``
    (without ``Set ...`` when ``ident`` is None).

    ``custodian`` and ``group_name`` come in requests (from a script): only printable
    ASCII is kept (a control character would be a terminal escape on the custodian's
    screen), and each is cut to 40 characters.
    """

    def printable(text: str) -> str:
        return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:40].strip()

    g = printable(group_name) or str(group)
    who = printable(custodian)
    head = f"group {g}, share {member}" + (f" - for {who}" if who else "")
    return head if ident is None else f"Set {ident} - {head}"


def render_grid(mv: memoryview, indices: memoryview | bytearray, title: str) -> int:
    """Write the screen (clear, title, numbered word grid, prompt) into ``mv``.

    Returns:
        The number of bytes written.
    """
    words = len(indices) // 2
    rows = -(-words // COLUMNS)
    pos = _put(mv, 0, CLEAR)
    # the title may be two lines (a DEMO notice first): each is cut to the screen width
    for line in title.encode("ascii", "replace").split(b"\n"):
        pos = _put(mv, pos, line[:78] + b"\r\n")
    pos = _put(mv, pos, b"\r\n")
    for r in range(rows):
        pos = _put(mv, pos, b"  ")
        for c in range(COLUMNS):
            k = c * rows + r  # numbered down the columns, like a paper form
            if k >= words:
                continue
            label = f"{k + 1:2d}. ".encode()  # public position
            word = WORDS_HL[indices[2 * k]][indices[2 * k + 1]]
            pos = _put(mv, pos, label)
            pos = _put(mv, pos, word)
            pad = CELL - len(label) - len(word)
            mv[pos : pos + pad] = b" " * pad
            pos += pad
        pos = _put(mv, pos, b"\r\n")
    pos = _put(mv, pos, PROMPT)
    return pos


def needed_size(words: int, title: str) -> tuple[int, int]:
    """Columns and lines the share screen takes (title, blank line, grid, blank line, prompt)."""
    heads = title.encode("ascii", "replace").split(b"\n")
    cols = max(2 + COLUMNS * CELL, len(HOLD_PROMPT), len(CONFIRM_PROMPT), *(min(78, len(h)) for h in heads))
    return cols, len(heads) + 1 + -(-words // COLUMNS) + 2


def check_terminal_size(fd: int, words: int, title: str) -> None:
    """Refuse a terminal too small for the whole share screen, before anything is drawn: on
    a small one the words would wrap and scroll out of reach of the final clear (issue 15).

    Raises:
        ValueError: the terminal's size and the size needed (nothing of the share was shown).
    """
    have_cols, have_lines = terminal_size(fd)  # 80x24 (enough) when it reports no size
    cols, lines = needed_size(words, title)
    if have_cols < cols or have_lines < lines:
        raise ValueError(
            f"the terminal is {have_cols}x{have_lines} and the share needs {cols}x{lines}: "
            "enlarge it (80x24 is enough), then show the share again (nothing of it was shown)"
        )


def _write_all(fd: int, mv: memoryview) -> None:
    tty_write(fd, mv)


def show_share(
    fd: int,
    indices: memoryview | bytearray,
    *,
    title: str,
    wait: bool = True,
    idle: float = REVEAL_IDLE_S,
) -> str:
    """Render a share on ``fd``, keep it until Enter + Enter (or ``idle`` seconds without a
    key: hidden), then clear. Returns how it ended: ``custodian``, ``idle`` or ``hangup``
    (:func:`core.custodian_tty.hold_until_confirmed`).

    Args:
        fd: a terminal opened read-write (or any fd in tests; then no key is awaited).
        indices: the share's word indices (2 bytes each), in locked memory.
        title: public heading (set, group, member, custodian name).
        wait: wait for the custodian before erasing.
        idle: seconds without a key before the share is hidden.
    """
    check_terminal_size(fd, len(indices) // 2, title)
    with alloc(4096) as buf, buf.view() as mv:
        n = render_grid(mv, indices, title)
        _write_all(fd, mv[:n])
    if not wait:
        tty_write(fd, CLEAR)
        return "custodian"
    return hold_until_confirmed(fd, idle=idle)


def show_share_on_tty(
    path: str, indices: memoryview | bytearray, *, title: str, idle: float = REVEAL_IDLE_S
) -> str:
    """Open the custodian's terminal ``path`` (e.g. /dev/tty2) and show the share there."""
    with custodian_tty(path, "shares") as fd:
        return show_share(fd, indices, title=title, idle=idle)
