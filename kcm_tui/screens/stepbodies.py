"""Step panels that need no screen state: a fingerprint read aloud, the seal step's result
and the summary step (issue 15), and the panels of a MasterKey rotation's steps (issue 19).
Split out of :mod:`kcm_tui.screens.runner`. Public data only: names, sizes, fingerprints."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from core.media import human_size
from kcm_tui.backend import StepView
from kcm_tui.widgets.words import WordGrid

__all__ = ["rotation_body", "seal_body", "summary_body", "words_body"]


def _grouped(kcv: str) -> str:
    """``8ef11232ea21bf6a`` -> ``8ef1 1232 ea21 bf6a`` (as read aloud)."""
    return " ".join(kcv[i : i + 4] for i in range(0, len(kcv), 4))


def words_body(caption: str, kcv: str, hexfp: str, words: list[str]) -> list[Any]:
    """A fingerprint as read aloud: the caption, its KCV, the words and the hex."""
    line = Text()
    if kcv:
        line.append("KCV ", style="bold")
        line.append(kcv, style="bold cyan")
        line.append("   ")
    line.append(hexfp[:48], style="grey70")
    return [Static(caption, classes="muted"), Static(line), WordGrid(words, id="fp-words")]


def rotation_body(view: StepView) -> list[Any] | None:
    """The panels of a MasterKey rotation's steps (issue 19), else None."""
    r = view.results
    kind = view.kind
    if kind == "generate" and r.get("rotation"):
        old_kcv = str(r.get("old_kcv", ""))
        return [
            Static(
                Text.assemble(
                    ("NEW MasterKey generated ", "bold"),
                    "in the keyholder's second locked slot. The OLD key (KCV ",
                    (_grouped(old_kcv), "cyan"),
                    f", set {r.get('old_set_id', '?')}) stays beside it until the wipe.",
                )
            ),
            *words_body(
                "The NEW key's check value, to read aloud in the next step:",
                str(r.get("kcv", "")),
                str(r.get("fingerprint", "")),
                list(r.get("kcv_words") or []),
            ),
        ]
    if kind == "seal" and view.params.get("key") == "old":
        until = next((str(v.get("transition_expires_utc", "")) for v in r.values() if isinstance(v, dict)), "")
        files = ", ".join(str(v.get("file", "")) for v in r.values() if isinstance(v, dict))
        return [
            Static(Text.assemble(("OLD key sealed as a TRANSITIONAL envelope", "bold yellow"), f": {files}")),
            Static(
                f"Only the online system can open it, and only until {until}: it re-wraps its IVKs to "
                "the new key before then. After that the old key cannot be opened by anyone.",
                classes="muted",
            ),
        ]
    if kind == "continuity-statement":
        old, new = r.get("old") or {}, r.get("new") or {}
        window = r.get("transition_expires_utc")
        return [
            Static(
                Text.assemble(
                    ("Continuity statement written", "bold"),
                    f" ({r.get('file', '?')}), signed by the OLD key (set {old.get('set_id', '?')}, KCV ",
                    (_grouped(str(old.get("fingerprint", ""))[:16]), "cyan"),
                    f") and by the NEW key (set {new.get('set_id', '?')}, KCV ",
                    (_grouped(str(new.get("fingerprint", ""))[:16]), "cyan"),
                    ").",
                )
            ),
            Static(
                f"Transition window: until {window}." if window else "No transition window: the old key is retired now.",
                classes="muted",
            ),
            *words_body(
                "Its SHA-256, to copy into the paper log (first 8 bytes as words):",
                "",
                str(r.get("sha256", "")),
                list(r.get("sha256_words") or []),
            ),
        ]
    if kind == "mark-rotated-out":
        mark = r.get("rotated_out") or {}
        mark_until = mark.get("transition_expires_utc")
        return [
            Static(
                Text.assemble(
                    (f"Share set {r.get('set_id', '?')} is ROTATED OUT", "bold yellow"),
                    f": replaced by set {mark.get('new_set_id', '?')}. Its manifest is signed again by the old key"
                    f" and written to {r.get('folder', '?')}.",
                )
            ),
            Static(
                (
                    f"Its shares are refused from now on; until {mark_until} only a transition ceremony "
                    "may open it, for the online re-wrap."
                )
                if mark_until
                else "Its shares are refused from now on.",
                classes="muted",
            ),
        ]
    if kind == "collect-shares" and r.get("transition"):
        t = r["transition"]
        return [
            Static(
                Text.assemble(
                    (f"TRANSITION: set {r.get('set_id', '?')} is ROTATED OUT", "bold yellow"),
                    f" (by ceremony {t.get('ceremony_id', '?')}, replaced by set {t.get('new_set_id', '?')}).",
                )
            ),
            Static(
                f"This ceremony opens it only to seal the old key for the online re-wrap, until "
                f"{t.get('transition_expires_utc', '?')}. The journal records it.",
                classes="muted",
            ),
        ]
    return None


def seal_body(view: StepView) -> list[Any]:
    """After sealing: each recipient, its key's fingerprint words, and the envelope made
    (file name and size; the export step writes it to the medium)."""
    r = view.results
    sealed: dict[str, Any] = dict(r.get("sealed") or {})
    t = Text()
    t.append(f"Sealed for {len(sealed)} recipient(s)", style="bold green")
    t.append(" (the next step writes the files to the medium):", style="bold")
    for rid, e in sealed.items():
        kind = str(e.get("kind", "")).upper()
        t.append(f"\n{e.get('recipient') or rid}", style="bold cyan")
        t.append(f" ({kind} {rid})" if kind else f" ({rid})", style="grey70")
        t.append("\n  key fingerprint: ", style="bold")
        t.append(" ".join(e.get("fingerprint_words") or []) or str(e.get("fingerprint", ""))[:32], style="bold cyan")
        t.append("\n  envelope: ", style="bold")
        t.append(f"{e.get('file', '?')}  {human_size(int(e.get('size', -1)))}")
    m = r.get("seal_manifest")
    if isinstance(m, dict):
        t.append("\nSigned list of envelopes: ", style="bold")
        t.append(f"{m.get('file', '?')}  {human_size(int(m.get('size', -1)))}")
    return [Static(t, id="seal-result")]


def summary_body(view: StepView) -> list[Any]:
    """The summary step, before the witness acknowledges: the share set, the key's check
    value and words, the files written (name, size) and the journal rows so far. Everything
    the step's instruction asks the witness to copy is here."""
    r = view.results
    head = Text()
    set_id = str(r.get("set_id", ""))
    head.append("Share set ", style="bold")
    head.append(set_id or "none (this ceremony used no share set)", style="bold cyan" if set_id else "grey70")
    kcv = str(r.get("kcv", ""))
    if kcv:
        head.append("   KCV ", style="bold")
        head.append(_grouped(kcv), style="bold cyan")
    words = [str(w) for w in r.get("kcv_words") or []]
    if words:
        head.append("\nKCV words: ", style="bold")
        head.append(" ".join(words), style="bold cyan")
    files = [f for f in r.get("files") or [] if isinstance(f, dict)]
    body = Text()
    body.append(f"Files written: {len(files)}", style="bold")
    by_folder: dict[str, list[str]] = {}
    for f in files:
        folder, _, name = str(f.get("name", "?")).rpartition("/")
        by_folder.setdefault(folder, []).append(f"{name} ({human_size(int(f.get('size', -1)))})")
    for folder, names in by_folder.items():
        body.append(f"\n  {folder + '/' if folder else ''}", style="bold")
        body.append(", ".join(names))
    tail = Text()
    tail.append(f"Journal: {r.get('journal_rows', '?')} rows so far.", style="bold")
    tail.append(" Continue closes it; the next screen shows its final hash words.", style="grey70")
    return [Static(head, id="summary-head"), Static(body, id="summary-files"), Static(tail, id="summary-journal")]
