"""The runbook for each kind of step, for F1 on the step runner.

Condensed from docs/runbook.md (what the room does at such a step, and what to do when it
goes wrong) and docs/scripts.md ("Step kinds"); the docs are not on the ceremony image, so
the text travels with the program. Keep them in step: a change to the runbook's procedure
for a step changes its text here (tests/tui/test_progress.py checks every step kind has
one).
"""

from __future__ import annotations

from rich.text import Text

from kcm_tui.views import StepView

__all__ = ["RUNBOOK", "runbook_for", "step_help"]

RUNBOOK: dict[str, str] = {
    "instruction": "Read the instruction aloud; each role named below acknowledges it aloud, then tick their box.",
    "checklist": (
        "Go through each item aloud; tick it only when it is true (bag numbers: the witness reads each "
        "aloud, the administrator compares it with the log). A bag number or seal that differs: record an "
        "exception (F2); the witness decides with the administrator whether the content can be trusted."
    ),
    "attendance": (
        "The administrator calls each role; the witness checks each person's ID and ticks the names present. "
        "Someone required is absent: the step fails naming them. Wait, or abort and reschedule; never "
        "substitute a person not in the script."
    ),
    "preflight": (
        "The workstation checks run by themselves. A FAIL: fix it (unplug the network, disable swap...) and "
        "Retry; if it cannot be fixed, abort (F10)."
    ),
    "verify-fingerprint": (
        "The administrator reads the fingerprint words on screen aloud; the witness compares them with the "
        "printed copy and ticks the confirmation. No match: the step fails. Do not seal; obtain a fresh "
        "printout out of band, Retry or abort."
    ),
    "generate": (
        "The keyholder draws the key in locked memory; nothing secret shows. The administrator then reads the "
        "KCV words aloud; the witness writes them in the paper log."
    ),
    "verify-kcv": (
        "The administrator reads the KCV words aloud; the witness compares them with the paper log (genesis) "
        "and confirms. NOT VERIFIED against any manifest: the witness's comparison is the only check. Words "
        "that differ: stop, record an exception, abort."
    ),
    "distribute-shares": (
        "For each custodian in turn: the others turn away; the share is shown on the keyholder's screen (words, "
        "QR, or written to their card). Words: Enter, then Enter again ends the reveal; N shows it again until "
        "typed back; they type it back on the keyholder's screen. QR: filled square by square on the grid card. "
        "Card: insert it, Enter, PIN on the keyholder's screen; the witness logs the card serial and key "
        "fingerprint words. Each custodian bags their sheet or card, says the bag number aloud and "
        "acknowledges. The table shows each custodian's share state."
    ),
    "collect-shares": (
        "Each custodian in turn enters their share alone (typed words, QR file, camera, scanner, or card and "
        "PIN; one card at a time). A refused share (another or a superseded set, a typo) keeps the shares "
        "already accepted: re-enter, or record it. When the threshold is met the key is rebuilt and checked "
        "against the manifest. The table shows the shares in per group."
    ),
    "check-shares": (
        "Each custodian in turn enters their share alone; it is checked against the manifest's salted "
        "commitment without rebuilding the key: matches or no match. A non-matching share is logged as an "
        "exception; plan a reshare."
    ),
    "recover": (
        "The key is rebuilt from the shares collected; its fingerprint must equal the manifest's (a mismatch "
        "fails the step: abort, the shares are not from this set)."
    ),
    "seal": (
        "The key is sealed to the recipients a witness confirmed in this ceremony. It cannot be stopped "
        "half-way: wait for it."
    ),
    "export": (
        "Insert the export medium, press F5 and choose it in the list. The files are written, read back and "
        "verified. Remove the medium only when the screen says it is safe, bag it, log the bag number. A "
        "failure keeps everything: insert another medium and Retry."
    ),
    "summary": (
        "Both acknowledge the summary; the journal is closed and its final hash is shown as words and QR. "
        "The witness copies the words into the paper log; everyone signs it."
    ),
    "wipe": "The keyholder wipes every secret it holds (in a rotation: both keys).",
    "continuity-statement": (
        "Rotation: the keyholder signs the continuity statement with the old and the new key; its SHA-256 "
        "words go into the paper log."
    ),
    "mark-rotated-out": (
        "Rotation: the old set's manifest is marked rotated out, signed again by the old key and written "
        "to the export medium."
    ),
    "byok": (
        "The administrator reads the wrapping key's fingerprint; the witness compares it with the provider's "
        "copy and confirms. The key is wrapped for the provider's import and written to the export medium; "
        "import it before the validity date shown."
    ),
}


def runbook_for(kind: str) -> str:
    """The runbook text for a step of ``kind`` ("" for an unknown kind)."""
    return RUNBOOK.get(kind, "")


def step_help(view: StepView | None, total: int) -> Text:
    """F1 on the step runner: the step (act, number, title), the script's instruction for
    it, and the runbook for its kind."""
    t = Text()
    if view is None:
        return t
    t.append(f"{view.act_title}, step {view.index + 1} of {total}: ", style="bold cyan")
    t.append(f"{view.title}\n", style="bold")
    if view.instruction:
        t.append("The script says: ", style="bold")
        t.append(view.instruction + "\n")
    book = runbook_for(view.kind)
    if book:
        t.append(f"Runbook ({view.kind}): ", style="bold")
        t.append(book)
    return t
