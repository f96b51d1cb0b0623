"""Script validation of the rotate and transition purposes (docs/scripts.md, "Rotation").

Each broken variant of the shipped rotate.toml (and of a transition script) is refused
with a message a script author can act on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ceremony.script import check_script

ROOT = Path(__file__).resolve().parents[2]
ROTATE = (ROOT / "ceremony_scripts" / "rotate.toml").read_text()


def _problems(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return [pr.message for pr in check_script(p)]


def _without_step(text: str, step_id: str) -> str:
    start = text.index(f'id = "{step_id}"')
    block_start = text.rindex("[[acts.steps]]", 0, start)
    block_end = text.find("[[acts", start)
    return text[:block_start] + text[block_end:]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: _without_step(t, "statement"), "needs a continuity-statement step"),
        (lambda t: _without_step(t, "retire"), "needs a mark-rotated-out step"),
        (lambda t: _without_step(t, "kcv-new"), 'verify-kcv with key = "new"'),
        (lambda t: _without_step(t, "kcv-old"), "checks the old key's KCV"),
        (lambda t: t.replace("transition_days = 30", "transition_days = 91"), "1 to 90 days"),
        (lambda t: t.replace("transition_days = 30\n", ""), "needs transition_days"),
        (lambda t: t.replace('kind = "aws-kms"', 'kind = "custodian-rsa"'), "never to a custodian"),
        (lambda t: t.replace("supersedes_collected = true\n", ""), "must set supersedes_collected"),
        (lambda t: t.replace('key = "new"', 'key = "other"'), "'old' or 'new'"),
        (
            lambda t: t.replace('kind = "mark-rotated-out"', 'kind = "wipe"').replace(
                'id = "wipe"\nkind = "wipe"', 'id = "wipe"\nkind = "mark-rotated-out"'
            ),
            "then marks the old set rotated out, then wipes",
        ),
        (
            lambda t: t.replace('purpose = "rotate"', 'purpose = "unseal-and-seal"'),
            "continuity-statement is a step of a rotate ceremony only",
        ),
    ],
)
def test_broken_rotation_scripts_are_refused(tmp_path: Path, change: object, message: str) -> None:
    assert _problems(tmp_path, ROTATE) == []
    msgs = _problems(tmp_path, change(ROTATE))  # type: ignore[operator]
    assert msgs, "a broken rotate script was accepted"
    assert any(message in m for m in msgs), msgs


TRANSITION = (ROOT / "ceremony_scripts" / "transition.toml").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('key = "old"\n', ""), 'seals only the old key: key = "old"'),
        (lambda t: t.replace('key = "old"\n', 'key = "old"\ntransition_days = 10\n'), "cannot set the window"),
        (lambda t: t.replace('kind = "aws-kms"', 'kind = "custodian-age"'), "never to a custodian"),
        (
            lambda t: t.replace('id = "recover"\nkind = "recover"', 'id = "recover"\nkind = "generate"'),
            "must not generate",
        ),
        (lambda t: t.replace('purpose = "transition"', 'purpose = "unseal-and-seal"'), "only in a rotate ceremony"),
    ],
)
def test_broken_transition_scripts_are_refused(tmp_path: Path, change: object, message: str) -> None:
    assert _problems(tmp_path, TRANSITION) == []
    msgs = _problems(tmp_path, change(TRANSITION))  # type: ignore[operator]
    assert any(message in m for m in msgs), msgs
