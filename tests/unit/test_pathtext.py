"""Paths on an 80-column screen break after a '/', never inside a name (issue 15, item 4)."""

from __future__ import annotations

from kcm_tui.widgets.pathtext import fold_path

LONG = "/media/kcm-ceremony/ceremonies/PRACTICE-genesis-20260101T000000Z-abcd/PRACTICE-genesis-export/envelopes"


def test_a_short_path_stays_on_the_label_line() -> None:
    assert fold_path("Journal:", "/media/c/j.sqlite") == "Journal: /media/c/j.sqlite"


def test_a_long_path_breaks_before_a_slash_and_keeps_every_name_whole() -> None:
    text = fold_path("Written: 2 file(s) in", LONG)
    lines = text.split("\n")
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(line.startswith("  /") for line in lines[1:])
    assert "".join(line.strip() for line in lines) == f"Written: 2 file(s) in {LONG}"
    for name in LONG.strip("/").split("/"):
        assert any(f"/{name}" in line for line in lines), name  # no name cut in two


def test_a_name_longer_than_a_line_is_split_as_a_last_resort() -> None:
    name = "x" * 100
    lines = fold_path("In", f"/a/{name}", width=40).split("\n")
    assert all(len(line) <= 40 for line in lines)
    assert "".join(line.strip() for line in lines) == f"In /a/{name}"
