"""Share QR rendering: terminal text (scannable from the screen), PNG, console font."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pytest
import shamir_mnemonic
from PIL import Image

from core.carriers import imagedecode, qr
from core.secmem import SecretBuffer
from core.shamir.wordlist import indices_from_mnemonic


def share(secret_len: int = 32, seed: int = 3) -> SecretBuffer:
    rnd = random.Random(seed)
    m = shamir_mnemonic.generate_mnemonics(
        1, [(2, 3)], rnd.randbytes(secret_len), iteration_exponent=0
    )[0][0]
    return indices_from_mnemonic(m)


def same(a: SecretBuffer, b: SecretBuffer) -> bool:
    with a.view() as x, b.view() as y:
        return bytes(x) == bytes(y)


def terminal_text(mat: qr.QRMatrix, **kw: object) -> str:
    buf = qr.render_terminal(mat, **kw)  # type: ignore[arg-type]
    n = qr.text_length(buf)
    with buf.view() as mv:
        return bytes(mv[:n]).decode()


@pytest.mark.parametrize(("secret_len", "cols", "rows"), [(32, 37, 19), (16, 33, 17)])
def test_terminal_fits_80x24_and_uses_console_glyphs(secret_len: int, cols: int, rows: int) -> None:
    with qr.make_matrix(share(secret_len)) as mat:
        text = terminal_text(mat)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == rows and {len(x) for x in lines} == {cols}
    assert rows <= 24 and cols <= 80
    assert {ord(c) for c in text} - {0x20, 0x0A} <= qr.QR_GLYPHS


@pytest.mark.parametrize("seed", range(8))
def test_terminal_rendering_is_scannable_from_the_screen(seed: int) -> None:
    """Draw the terminal text as the Linux console shows it (8x16 cells) and decode it."""
    s = share(32, seed)
    with qr.make_matrix(s) as mat:
        text = terminal_text(mat)
    img = qr.console_image(text)
    out = imagedecode.decode_image(img)
    assert same(out.indices, s)


def test_terminal_dark_on_light() -> None:
    s = share()
    with qr.make_matrix(s) as mat:
        text = terminal_text(mat, light_on_dark=False)
    img = qr.console_image(text, fg=0, bg=255)
    assert same(imagedecode.decode_image(img).indices, s)


def test_png_for_share_cards() -> None:
    s = share()
    with qr.make_matrix(s) as mat:
        png = qr.png_bytes(mat)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width == (33 + 8) * 8
    assert same(imagedecode.decode_image(img).indices, s)


def test_console_image_rejects_other_glyphs() -> None:
    with pytest.raises(ValueError, match="unexpected glyph"):
        qr.console_image("\u2590")


FONTS = Path("/usr/share/consolefonts")


@pytest.mark.skipif(not FONTS.exists(), reason="console-setup-linux fonts not installed")
def test_console_font_has_the_qr_glyphs() -> None:
    """The recommended ISO font has the half blocks; Debian's default Lat15 font does not."""
    good = qr.psf_unicode_table(gzip.decompress((FONTS / "Vietnamese-Terminus16.psf.gz").read_bytes()))
    assert qr.QR_GLYPHS <= good
    lat15 = qr.psf_unicode_table(gzip.decompress((FONTS / "Lat15-Fixed16.psf.gz").read_bytes()))
    assert 0x2588 in lat15 and not qr.QR_GLYPHS <= lat15


def test_psf_rejects_other_files() -> None:
    with pytest.raises(ValueError, match="not a PSF"):
        qr.psf_unicode_table(b"hello")


def test_show_qr_refuses_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only on a terminal device"):
        qr.show_qr_on_tty(str(tmp_path / "x.txt"), share(), title="t")
