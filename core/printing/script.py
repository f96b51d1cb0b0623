"""The ceremony script as a printed, tickable checklist (``kcm-ceremony script print``).

What an IANA-style ceremony script on paper carries, built from a validated script:

* the script's identity: name, version, purpose, PRACTICE mark, cluster and region, file
  name, and its SHA-256 as hex and as words (:mod:`core.words`): the witness compares the
  words with the start screen of the program before the ceremony begins;
* the roles (with card serials), the share policy, the recipients (with fingerprints);
* every act with its time estimate (``estimate_minutes``) and start/end times to write in,
  every step with a box to tick, its instruction, what the step asks for (attendance,
  checklist items, words to write down, one line per custodian at a hand-out), and a box
  with an initials line for each role that must acknowledge it;
* a page for exceptions and a signature block for every named role.

Every page carries the script name, the first 16 hex digits of its SHA-256, and
"page N of M".
"""

from __future__ import annotations

from typing import Final

from core.ceremony.model import Role, RoleKind, Script, Step, StepKind
from core.printing.pdf import Doc, new_doc
from core.words import to_words

__all__ = ["script_pdf"]

_KIND_TEXT: Final = {
    RoleKind.ADMINISTRATOR: "ceremony administrator",
    RoleKind.WITNESS: "internal witness",
    RoleKind.CUSTODIAN: "custodian",
    RoleKind.OBSERVER: "observer",
}
_LINE: Final = 4.4
_BOX: Final = 3.6


class _Writer:
    """Lays the checklist out top to bottom, starting new pages as needed."""

    def __init__(self, doc: Doc, script: Script, total: int) -> None:
        self.doc = doc
        self.s = script
        self.total = total
        self.left = doc.margin
        self.right = doc.paper.width - doc.margin
        self.width = self.right - self.left
        self.bottom = doc.paper.height - doc.margin - 8
        self.y = 0.0
        self.page()

    def page(self) -> None:
        d = self.doc
        d.add_page()
        d.font(7.5)
        d.pdf.set_text_color(90)
        mark = "PRACTICE - " if self.s.practice else ""
        d.text(
            self.left,
            d.margin - 4,
            f"{mark}{self.s.name} {self.s.version} - ceremony checklist - script "
            f"{self.s.source.name} SHA-256 {self.s.sha256[:16]}...",
        )
        label = f"page {d.pages} of {self.total or '?'}"
        d.text(self.right - d.width(label), d.paper.height - d.margin + 2, label)
        d.pdf.set_text_color(0)
        self.y = d.margin + 2

    def need(self, height: float) -> None:
        if self.y + height > self.bottom:
            self.page()

    def heading(self, text: str, size: float = 12, after: float = 2) -> None:
        self.need(size * 0.6 + 12)
        self.doc.font(size, "B")
        self.y += size * 0.42
        self.doc.text(self.left, self.y, text)
        self.y += after + 1.5

    def para(self, text: str, *, size: float = 9, indent: float = 0, style: str = "") -> None:
        if not text:
            return
        self.doc.font(size, style)
        line = size * 0.45
        h = self.doc.para_height(self.width - indent, text, line)
        self.need(h)
        self.y = self.doc.para(self.left + indent, self.y, self.width - indent, text, line)

    def gap(self, mm: float) -> None:
        self.y += mm

    def rule(self) -> None:
        self.need(3)
        self.doc.hline(self.left, self.right, self.y + 1, grey=170, width=0.2)
        self.y += 3

    def tick_line(self, text: str, *, indent: float = 6, initials: bool = False) -> None:
        """A box to tick, a label, optionally an initials line at the right."""
        self.doc.font(9)
        h = self.doc.para_height(self.width - indent - 6 - (40 if initials else 0), text, _LINE)
        self.need(h + 1)
        self.doc.box(self.left + indent, self.y + 0.5, _BOX)
        self.doc.para(self.left + indent + 5.5, self.y, self.width - indent - 5.5 - (40 if initials else 0), text, _LINE)
        if initials:
            self.doc.font(7.5)
            self.doc.text(self.right - 38, self.y + 3.3, "initials")
            self.doc.hline(self.right - 27, self.right, self.y + 3.8)
        self.y += h + 1

    def write_lines(self, label: str, lines: int = 1, *, indent: float = 6) -> None:
        """A label and ruled lines to write on."""
        self.need(6 * lines + 1)
        self.doc.font(8.5)
        self.doc.text(self.left + indent, self.y + 3.5, label)
        start = self.left + indent + self.doc.width(label) + 2
        for i in range(lines):
            x0 = start if i == 0 else self.left + indent
            self.doc.hline(x0, self.right, self.y + 4 + 6 * i)
        self.y += 6 * lines + 1


def _role(script: Script, rid: str) -> Role | None:
    return script.roles.get(rid)


def _role_name(script: Script, rid: str) -> str:
    r = _role(script, rid)
    return r.name if r is not None else rid


def _expand(script: Script, names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        ids = [r.id for r in script.custodians()] if n == "custodians" else [n]
        out += [i for i in ids if i not in out]
    return out


def _identity(w: _Writer) -> None:
    s = w.s
    d = w.doc
    title = f"Ceremony script: {s.name} (version {s.version})"
    if s.practice:
        w.need(12)
        d.pdf.set_fill_color(255, 221, 0)
        d.pdf.rect(w.left, w.y, w.width, 8, style="F")
        d.font(11, "B")
        d.text(w.left + 2, w.y + 5.6, "PRACTICE - a rehearsal with a throwaway key, never a real ceremony")
        w.y += 10
    w.heading(title, 15, after=1)
    w.para(f"Purpose: {s.purpose}.  Cluster: {s.cluster_id}, region {s.region_id}.  "
           f"Script file: {s.source.name}.")
    w.para(" ".join(s.description.split()), size=9)
    total = sum(a.estimate_minutes or 0 for a in s.acts)
    missing = [a.title for a in s.acts if a.estimate_minutes is None]
    if total:
        note = f"Time estimate: about {total} minutes in all"
        if missing:
            note += f" (no estimate for: {', '.join(missing)})"
        w.para(note + ".", style="B")
    w.gap(2)
    w.heading("The script's SHA-256", 11)
    w.para("Before the ceremony begins, the witness compares these words with the words the "
           "program shows next to the chosen script on its start screen. Any difference: stop, "
           "the script on the workstation is not the one printed here.")
    d.font(9, mono=True)
    hexd = s.sha256
    w.need(6)
    d.text(w.left + 6, w.y + 3.5, "  ".join(hexd[i : i + 16] for i in range(0, 64, 16)))
    w.y += 6
    words = to_words(bytes.fromhex(hexd))
    per = 7
    d.font(9.5)
    col = (w.width - 6) / per
    for i in range(0, len(words), per):
        w.need(5.5)
        for j, word in enumerate(words[i : i + per]):
            d.font(7, mono=True)
            d.text(w.left + 6 + j * col, w.y + 3.6, f"{i + j + 1:2d}")
            d.font(9.5, "B")
            d.text(w.left + 6 + j * col + 4.2, w.y + 3.6, word)
        w.y += 5.5
    w.gap(1)
    w.tick_line("Internal witness: the words on the start screen match the words above", initials=True)


def _roles(w: _Writer) -> None:
    s = w.s
    w.heading("Roles", 11)
    d = w.doc
    for r in s.roles.values():
        extra = f", card {r.card_serial}" if r.card_serial else ""
        if r.key_fingerprint:
            extra += f", key {r.key_fingerprint[:16]}..."
        w.need(6)
        d.font(9, "B")
        d.text(w.left + 6, w.y + 3.5, r.name)
        d.font(8.5)
        d.text(w.left + 62, w.y + 3.5, f"{_KIND_TEXT[r.kind]} ({r.id}{extra})")
        d.font(7.5)
        d.text(w.right - 58, w.y + 3.5, "name / ID checked")
        d.hline(w.right - 33, w.right, w.y + 4)
        w.y += 6
    p = s.policy
    if p is not None:
        w.gap(1)
        if p.groups:
            groups = "; ".join(
                f"{g.name}: {g.threshold} of {len(g.members)} "
                f"({', '.join(_role_name(s, m) for m in g.members)})"
                for g in p.groups
            )
            w.para(f"Share policy: {p.group_threshold} of {len(p.groups)} groups - {groups}.")
        else:
            names = ", ".join(_role_name(s, c) for c in p.custodians)
            w.para(f"Share policy: {p.threshold} of {p.shares} shares, to {names}.")
    if s.recipients:
        w.gap(1)
        w.heading("Recipients of sealed envelopes", 11)
        for rc in s.recipients.values():
            fp = f"; fingerprint {rc.fingerprint}" if rc.fingerprint else ""
            desc = f" - {rc.description}" if rc.description else ""
            w.para(f"{rc.id} ({rc.kind}){desc}; key file {rc.public_key_file}; "
                   f"envelope {rc.file}{fp}", indent=6)


def _step_body(w: _Writer, step: Step) -> None:
    s = w.s
    p = step.params
    k = step.kind
    if k is StepKind.ATTENDANCE:
        who = _expand(s, list(p.get("roles") or [r for r in s.roles]))
        for rid in who:
            w.tick_line(f"present: {_role_name(s, rid)}", indent=12)
    elif k is StepKind.CHECKLIST:
        for item in p.get("items", []):
            w.tick_line(str(item), indent=12)
    elif k is StepKind.VERIFY_FINGERPRINT:
        subject = str(p.get("subject", ""))
        witness = _role_name(s, str(p.get("witness", "")))
        w.write_lines(f"fingerprint words of {subject} (as read aloud):", 2, indent=12)
        w.tick_line(f"{witness}: the words match the independent copy", indent=12)
    elif k in (StepKind.GENERATE, StepKind.RECOVER):
        w.write_lines("key check value (KCV) words:", 2, indent=12)
    elif k is StepKind.VERIFY_KCV:
        witness = _role_name(s, str(p.get("witness", "")))
        w.tick_line(f"{witness}: the KCV words were read aloud and written in the paper log", indent=12)
    elif k is StepKind.DISTRIBUTE_SHARES:
        custodians = list(s.policy.custodians) if s.policy is not None else []
        carriers = p.get("carriers") or {}
        w.para("Tick per custodian: share shown, written down or copied onto the card, "
               "checked (typed back) - or the reason it was not checked.", size=8.5, indent=12)
        for cid in custodians:
            carrier = carriers.get(cid, "screen") if isinstance(carriers, dict) else "screen"
            how = {"screen": "words", "qr": "QR grid card", "card": "smart card"}.get(carrier, carrier)
            w.tick_line(f"{_role_name(s, cid)} ({how}):  [ ] shown   [ ] written   [ ] checked   "
                        "set ______", indent=12, initials=True)
    elif k in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES):
        rows = max(3, len(s.custodians()))
        verb = "accepted" if k is StepKind.COLLECT_SHARES else "matches the manifest"
        for _ in range(rows):
            w.write_lines(f"custodian / carrier:                                   [ ] {verb}", 1, indent=12)
    elif k is StepKind.SEAL:
        rec = ", ".join(str(r) for r in p.get("recipients", []))
        w.write_lines(f"sealed for {rec}: envelope file and KCV words", 1, indent=12)
    elif k is StepKind.EXPORT:
        files = ", ".join(str(f) for f in p.get("files", []))
        w.para(f"Writes {files} to the folder {p.get('folder', '')} on the export medium.", size=8.5, indent=12)
        w.write_lines("export medium bag number:", 1, indent=12)
    elif k is StepKind.BYOK:
        witness = _role_name(s, str(p.get("witness", "")))
        w.write_lines(f"{p.get('provider', '')} wrapping key fingerprint words (as read aloud):", 2, indent=12)
        w.tick_line(f"{witness}: the words match the provider's copy", indent=12)
        w.write_lines(f"import files written to {p.get('folder') or 'byok-' + str(p.get('provider', ''))};"
                      " import before (UTC):", 1, indent=12)
    elif k is StepKind.SUMMARY:
        w.write_lines("journal final hash (words):", 3, indent=12)


def _step_height(w: _Writer, step: Step) -> float:
    """About how tall a step's block is (to keep a step on one page)."""
    s = w.s
    p = step.params
    w.doc.font(8.5)
    h = 12.0 + w.doc.para_height(w.width - 6, " ".join(step.instruction.split()), 8.5 * 0.45)
    k = step.kind
    if k is StepKind.ATTENDANCE:
        h += 5.5 * len(_expand(s, list(p.get("roles") or list(s.roles))))
    elif k is StepKind.CHECKLIST:
        h += 5.5 * len(p.get("items", []))
    elif k is StepKind.DISTRIBUTE_SHARES:
        h += 10 + 5.5 * (len(s.policy.custodians) if s.policy is not None else 0)
    elif k in (StepKind.COLLECT_SHARES, StepKind.CHECK_SHARES):
        h += 7 * max(3, len(s.custodians()))
    elif k in (StepKind.VERIFY_FINGERPRINT, StepKind.SUMMARY, StepKind.BYOK):
        h += 20
    else:
        h += 8
    if step.acknowledge:
        h += 5 + 5.5 * len(step.acknowledge)
    return h


def _acts(w: _Writer) -> None:
    s = w.s
    for ai, act in enumerate(s.acts, 1):
        w.gap(2)
        est = f"(about {act.estimate_minutes} min)" if act.estimate_minutes else "(no time estimate)"
        opt = "   [optional: may be skipped with a recorded reason]" if act.optional else ""
        w.need(34)
        w.doc.pdf.set_fill_color(235)
        w.doc.pdf.rect(w.left, w.y, w.width, 12, style="F")
        w.doc.font(11.5, "B")
        w.doc.text(w.left + 2, w.y + 5.2, act.title)
        w.doc.font(8.5)
        w.doc.text(w.left + 2, w.y + 10, f"{est}      start ____:____      end ____:____")
        w.y += 14
        if opt:
            w.para(opt.strip(), size=8.5)
        for si, step in enumerate(act.steps, 1):
            w.need(min(_step_height(w, step), w.bottom - w.doc.margin - 10))
            d = w.doc
            d.box(w.left, w.y + 0.6, 4.2)
            d.font(10, "B")
            d.text(w.left + 6, w.y + 4, f"{ai}.{si}  {step.title}")
            d.font(7.5)
            d.text(w.right - 24, w.y + 4, "time ____:____")
            d.pdf.set_text_color(100)
            d.text(w.left + 6, w.y + 7.6, f"step {step.id}, {step.kind.value}")
            d.pdf.set_text_color(0)
            w.y += 9
            w.para(" ".join(step.instruction.split()), size=8.5, indent=6)
            _step_body(w, step)
            if step.acknowledge:
                w.para("Acknowledged by:", size=8.5, indent=6, style="B")
                for rid in step.acknowledge:
                    w.tick_line(_role_name(s, rid), indent=12, initials=True)
            w.rule()


def _closing(w: _Writer) -> None:
    s = w.s
    w.gap(4)
    w.need(90)
    w.heading("Exceptions", 12)
    w.para("Anything that did not go as this script says: the step, what happened, what was "
           "decided and by whom. The program records its own exceptions in the journal too.")
    w.gap(2)
    for _ in range(10):
        w.need(7)
        w.doc.hline(w.left, w.right, w.y + 6)
        w.y += 7
    w.gap(6)
    w.need(30 + 13 * len(s.roles))  # the signatures stay on one page
    w.heading("Signatures", 12)
    w.para("By signing, each person confirms that the ceremony ran as recorded in this "
           "checklist, the exceptions above and the paper log.")
    w.gap(2)
    for r in s.roles.values():
        w.need(13)
        d = w.doc
        d.font(9, "B")
        d.text(w.left, w.y + 6, r.name)
        d.font(7.5)
        d.text(w.left, w.y + 9.5, _KIND_TEXT[r.kind])
        x = w.left + 58
        for label, width in (("printed name", 48), ("signature", 48), ("date and time", 30)):
            d.hline(x, x + width - 3, w.y + 7)
            d.font(7)
            d.text(x, w.y + 10, label)
            x += width
        w.y += 13


def script_pdf(script: Script, *, paper: str = "a4") -> bytes:
    """The checklist of a validated ``script`` as PDF bytes on ``paper`` ("a4" or "letter")."""
    total = 0
    for _ in range(2):  # the first pass counts the pages for "page N of M"
        doc = new_doc(paper, f"Ceremony checklist: {script.name} {script.version}")
        w = _Writer(doc, script, total)
        _identity(w)
        _roles(w)
        _acts(w)
        _closing(w)
        total = doc.pages
    return doc.finish()
