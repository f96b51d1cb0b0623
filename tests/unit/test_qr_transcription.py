"""The QR transcription display on the custodian terminal (issue 18, item 2).

The keyholder shows a share QR module for module, in parts that fit an 80x24 terminal, with
row and column numbers, so that the custodian copies it square by square onto a grid card.
Checked here: the layout at 80x24 and larger, every square shown equals the QR matrix,
paging with keys on a real pty (forward, back, done, then erased), a terminal emulator
(pyte) showing each part at 80x24 without wrapping or scrolling, committed text snapshots,
the console fonts having the glyphs, and every locked page buffer closed.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import pty
import random
import re
import select
import struct
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pyte
import pytest

from benchmarks import gridcard_corpus as gridcards
from core.carriers import qr
from core.carriers.qrgrid import DATA, FIXED_DARK, fixed_map
from core.custodian_tty import CLEAR
from core.secmem import SecretBuffer

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "qr_transcription"
TITLE = "PRACTICE (throwaway key) - Share QR - group 1, share 2 - for Custodian 3"


def share(words: int, seed: int = 7) -> SecretBuffer:
    return gridcards.share_for(random.Random(seed), words)


def matrix(s: SecretBuffer) -> np.ndarray:
    return gridcards.matrix_of(s)


def shown(s: SecretBuffer, **kw: object) -> bytes:
    r, w = os.pipe()
    out = bytearray()

    def reader() -> None:
        while chunk := os.read(r, 65536):
            out.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    try:
        qr.show_qr(w, s, title=TITLE, wait=False, **kw)  # type: ignore[arg-type]
    finally:
        os.close(w)
        t.join()
        os.close(r)
    return bytes(out)


@pytest.mark.parametrize(("size", "parts"), [(33, ((0, 16), (16, 32))), (29, ((0, 14), (14, 28)))])
def test_layout_at_80x24_is_two_halves_sharing_a_row(size: int, parts: tuple[tuple[int, int], ...]) -> None:
    lay = qr.transcription_layout(size, 80, 24)
    assert lay.parts == parts
    assert lay.width <= 80 and lay.height <= 24
    covered = {r for a, b in lay.parts for r in range(a, b + 1)}
    assert covered == set(range(size))


def test_layout_adapts_to_the_terminal() -> None:
    assert len(qr.transcription_layout(33, 160, 50).parts) == 1
    assert len(qr.transcription_layout(33, 80, 39).parts) == 1
    assert len(qr.transcription_layout(33, 80, 38).parts) == 2
    lay = qr.transcription_layout(33, 80, 14)  # 8 rows a part: still readable, more parts
    assert len(lay.parts) == 5 and all(b - a + 1 <= 8 for a, b in lay.parts)
    with pytest.raises(ValueError, match="enlarge it"):
        qr.transcription_layout(33, 71, 24)
    with pytest.raises(ValueError, match="enlarge it"):
        qr.transcription_layout(33, 80, 13)


@pytest.mark.parametrize("words", [33, 20])
def test_every_square_shown_is_the_matrix(words: int) -> None:
    s = share(words)
    raw = shown(s)
    assert raw.startswith(CLEAR) and raw.endswith(CLEAR)
    m = matrix(s)
    assert np.array_equal(gridcards.read_screen(raw), m)
    # printed squares are marked as printed, the others as the code says
    n = m.shape[0]
    fixed = fixed_map((n - 17) // 4)
    text = raw.decode()
    assert text.count("\u2592\u2592") >= sum(1 for v in fixed if v == FIXED_DARK)
    glyphs = {ord(c) for c in text if ord(c) > 0x7E}
    assert glyphs <= qr.TRANSCRIBE_GLYPHS
    data_dark = sum(int(m.flat[i]) for i in range(n * n) if fixed[i] == DATA)
    assert data_dark > 0


def _screens(raw: bytes, cols: int = 80, lines: int = 24) -> list[list[str]]:
    """Each part as an 80x24 terminal emulator (pyte) displays it."""
    out = []
    for page in raw.split(CLEAR):
        if not page.strip():
            continue
        screen = pyte.Screen(cols, lines)
        stream = pyte.ByteStream(screen)
        stream.feed(page)
        out.append([line.rstrip() for line in screen.display])
    return out


@pytest.mark.parametrize("words", [33, 20])
def test_each_part_fits_80x24_in_a_terminal_emulator(words: int) -> None:
    s = share(words)
    screens = _screens(shown(s))
    assert len(screens) == 2
    n = 33 if words == 33 else 29
    seen: dict[int, str] = {}
    for k, lines in enumerate(screens):
        assert lines[0] == TITLE  # nothing scrolled off the top
        assert f"part {k + 1} of 2" in lines[1]
        assert re.match(r"^\s+1\s+3\s+5", lines[2]) and re.match(r"^\s+2\s+4\s+6", lines[3])
        rows = [ln for ln in lines if re.match(r"^\s?\d+ [\u2588\u2592\u00b7]", ln)]
        for ln in rows:
            r = int(ln[:3])
            assert ln.rstrip().endswith(str(r))  # the row number on both sides
            seen[r] = ln[3 : 3 + 2 * n]
        assert "fill the square" in "\n".join(lines)
    assert sorted(seen) == list(range(1, n + 1))


@pytest.mark.parametrize("words", [33, 20])
def test_snapshot_of_the_parts(words: int) -> None:
    """The screens as committed (set KCM_UPDATE_SNAPSHOTS=1 to rewrite them, then review)."""
    screens = _screens(shown(share(words, seed=11)))
    for k, lines in enumerate(screens):
        got = "\n".join(lines).rstrip() + "\n"
        path = SNAPSHOTS / f"qr_{words}_words_part{k + 1}.txt"
        if os.environ.get("KCM_UPDATE_SNAPSHOTS"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got)
        assert path.read_text() == got, f"{path.name} changed"


def _set_size(fd: int, cols: int, lines: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, cols, 0, 0))


def _drive(keys: list[bytes], cols: int, lines: int, *, idle: float = 30.0,
           finish: bool = True) -> tuple[list[str], bytes, str]:
    """Show a share on a pty of ``cols`` x ``lines``; answer each prompt (a page drawn, or
    the last part's prompt redrawn) with the next key of ``keys``; when they run out,
    end the reveal with Enter, then Enter again (``finish``; else press nothing more).
    Returns the parts drawn, everything
    written and how the reveal ended."""
    master, slave = pty.openpty()
    _set_size(slave, cols, lines)
    s = share(33, seed=5)
    errors: list[BaseException] = []
    ended: list[str] = []

    def run() -> None:
        try:
            ended.append(qr.show_qr(slave, s, title=TITLE, wait=True, idle=idle))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    raw = bytearray()
    parts: list[str] = []
    pending = list(keys)
    buf = bytearray()
    try:
        while t.is_alive():
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(master, 65536)
            raw += chunk
            buf += chunk
            prompt = (b"Any key: part" in buf or qr.QR_DONE_PROMPT in buf
                      or qr.QR_CONFIRM_PROMPT in buf)
            if not prompt:
                continue
            m = re.findall(rb"part (\d) of (\d): rows", bytes(buf))
            if m:
                parts.append(m[-1][0].decode())
            buf.clear()
            if pending:
                os.write(master, pending.pop(0))
            elif not finish:
                pass
            elif qr.QR_DONE_PROMPT in raw[-200:] or qr.QR_CONFIRM_PROMPT in raw[-200:]:
                os.write(master, b"\r\r")
            else:
                os.write(master, b" ")
        while select.select([master], [], [], 0.3)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            raw += chunk
    finally:
        t.join(10)
        os.close(slave)
        os.close(master)
    assert not errors, errors
    return parts, bytes(raw), ended[0] if ended else ""


def test_paging_on_a_pty_forward_back_and_done() -> None:
    parts, raw, ended = _drive([b" ", b"b", b"\r"], 80, 24)
    assert parts == ["1", "2", "1", "2"]
    assert raw.endswith(CLEAR) and ended == "custodian"


def test_a_stray_key_on_the_last_part_does_not_end_the_reveal() -> None:
    """Issue 14: only Enter, then Enter again, ends the QR reveal. Stray keys on the last
    part (a letter, Space, Esc, an arrow) do nothing; Enter then another key disarms;
    B still goes back."""
    keys = [b" ", b"x", b" ", b"\x1b", b"\x1b[A", b"\r", b"q", b"B", b" ", b"\r", b"\r"]
    parts, raw, ended = _drive(keys, 80, 24)
    assert ended == "custodian"
    # part 1, part 2 (then x, Space, Esc, an arrow, Enter, q: nothing but the prompt
    # redrawn), B back to part 1, Space to part 2, Enter + Enter
    assert parts == ["1", "2", "1", "2"]
    last = raw.rindex(qr.QR_DONE_PROMPT)
    assert raw.count(qr.QR_CONFIRM_PROMPT) == 2  # after the first Enter, and the final one
    assert raw.count(CLEAR) == 5, raw.count(CLEAR)  # 4 pages drawn, erased once at the end
    assert raw.endswith(CLEAR) and last < raw.rindex(CLEAR)


def test_an_idle_qr_reveal_is_hidden() -> None:
    """No key for the idle time: the code is erased and ``idle`` returned (the engine can
    show it again)."""
    t0 = time.monotonic()
    parts, raw, ended = _drive([b" "], 80, 24, idle=1.5, finish=False)
    took = time.monotonic() - t0
    assert ended == "idle"
    assert parts == ["1", "2"]
    assert raw.endswith(CLEAR) and 1.5 <= took < 10


def test_a_large_terminal_shows_the_code_whole() -> None:
    parts, raw, ended = _drive([], 100, 45)
    assert parts == ["1"]
    assert b"part 1 of 1" in raw and raw.endswith(CLEAR) and ended == "custodian"


def test_a_terminal_too_small_shows_nothing_of_the_share() -> None:
    master, slave = pty.openpty()
    _set_size(slave, 60, 20)
    try:
        with pytest.raises(ValueError, match="60x20"):
            qr.show_qr(slave, share(33), title=TITLE, wait=True)
        os.set_blocking(master, False)
        raw = os.read(master, 65536)
    finally:
        os.close(slave)
        os.close(master)
    assert "\u2588".encode() not in raw and raw.endswith(CLEAR)


def test_every_locked_page_buffer_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = share(33)
    made: list[SecretBuffer] = []
    init = SecretBuffer.__init__

    def tracked(self: SecretBuffer, *a: object, **kw: object) -> None:
        init(self, *a, **kw)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(SecretBuffer, "__init__", tracked)
    shown(s)
    assert len(made) >= 4  # payload, matrix, two pages
    assert all(b.closed for b in made)


FONTS = Path("/usr/share/consolefonts")


@pytest.mark.parametrize("font", ["Uni2-Terminus16", "Lat15-Fixed16", "Uni2-Fixed16", "Vietnamese-Terminus16"])
def test_console_fonts_have_the_transcription_glyphs(font: str) -> None:
    """The ISO's Terminus font (and Debian's default Lat15) draw the view; they lack the
    half blocks of the old scannable rendering."""
    path = FONTS / f"{font}.psf.gz"
    if not path.exists():
        pytest.skip(f"{path} not installed (console-setup fonts)")
    table = qr.psf_unicode_table(gzip.decompress(path.read_bytes()))
    assert qr.TRANSCRIBE_GLYPHS <= table
