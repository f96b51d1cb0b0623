"""Typed share entry (0x0111-0x0115, 0x0119): words typed into the keyholder.

Split out of :mod:`core.keyholder.ops_shares` (the opcodes and fields are listed there).
``entry_begin`` / ``entry_word`` / ``entry_finish`` take words one by one from the UI
(the UI's own entry); ``entry_terminal`` reads the keyholder's own terminal in raw mode
and draws the masked entry (:mod:`core.keyholder.termentry`), so the words never pass
through the UI. A finished, checked entry stays held in the shares area for
``add_share`` / ``verify_share``; ``entry_clear`` wipes it.
"""

from __future__ import annotations

import os
from typing import Any

from core.keyholder.errors import MalformedRequest, Refused
from core.keyholder.ops import KeyholderState, Request, op
from core.keyholder.ops_shares import (
    ENTRY_BEGIN,
    ENTRY_CLEAR,
    ENTRY_FINISH,
    ENTRY_TERMINAL,
    ENTRY_WORD,
    _area,
    _Entry,
    _entry,
    _err,
)
from core.shamir import slip39, typo
from core.shamir.errors import Slip39Error
from core.shamir.wordlist import lookup_typed, nearest_words

__all__ = ["MAX_TYPED"]

MAX_TYPED = 16  # characters accepted for one typed word


@op(ENTRY_BEGIN, "entry_begin")
def op_entry_begin(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Start typing a share of ``words`` words (33 for 256-bit, 20 for 128-bit)."""
    area = _area(state)
    words = req.integer("words", 33)
    if words not in (20, 33):
        raise MalformedRequest("a share has 20 or 33 words")
    if area.entry is not None:
        area.entry.close()
    area.entry = _Entry(words, state.alloc(2 * words), [False] * words)
    return {"words": words}


@op(ENTRY_WORD, "entry_word")
def op_entry_word(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Accept one typed word (or its unique 4-letter prefix) at a position."""
    area = _area(state)
    entry = _entry(area)
    pos = req.integer("position")
    if not 1 <= pos <= entry.words:
        raise MalformedRequest(f"position must be 1..{entry.words}")
    chars = req.secret("chars")
    if len(chars) > MAX_TYPED:
        return {"status": "unknown", "position": pos, "filled": sum(entry.filled), "nearest": []}
    res = lookup_typed(chars)
    entry.checked = False
    out: dict[str, Any] = {"status": res.status, "position": pos}
    if res.status == "accepted":
        with entry.buf.view() as mv:
            # the trie hands out the index object it already holds: hi/lo are <= 255
            mv[2 * pos - 2] = res.index >> 8
            mv[2 * pos - 1] = res.index & 0xFF
        entry.filled[pos - 1] = True
    else:
        if entry.filled[pos - 1]:
            with entry.buf.view() as mv:
                mv[2 * pos - 2] = 0
                mv[2 * pos - 1] = 0
            entry.filled[pos - 1] = False
        if res.status == "unknown":
            # residue accepted: suggestions for the typing custodian only
            out["nearest"] = nearest_words(chars)
    out["filled"] = sum(entry.filled)
    return out


@op(ENTRY_FINISH, "entry_finish")
def op_entry_finish(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Check the entered share's checksum; on failure locate the wrong word."""
    area = _area(state)
    entry = _entry(area)
    missing = [i + 1 for i, f in enumerate(entry.filled) if not f]
    if missing:
        return {"status": "incomplete", "missing": missing}
    with entry.buf.view() as mv:
        try:
            share = slip39.decode_share(mv)
        except Slip39Error as exc:
            if exc.code != "checksum":
                raise _err(exc) from None
            cands = typo.locate_wrong_word(mv)
            # positions only: the suggested word (very likely the true share word) never
            # leaves the keyholder; entry_terminal draws it on request ('?')
            return {
                "status": "checksum",
                "message": exc.message,
                "candidates": [{"position": c.position + 1} for c in cands],
            }
    params = share.params
    share.close()
    entry.checked = True
    return {
        "status": "ok",
        "set": params.identifier,
        "group": params.group_index + 1,
        "member": params.member_index + 1,
    }


def _check_indices(mv: memoryview) -> tuple[str, Any]:
    """The checksum verdict of a complete entry (public facts, or typo candidates)."""
    try:
        share = slip39.decode_share(mv)
    except Slip39Error as exc:
        if exc.code != "checksum":
            return "error", exc.message
        cands = typo.locate_wrong_word(mv)
        # residue accepted: candidate words reach the custodian's terminal only ('?')
        return "checksum", [(c.position + 1, tuple(c.words)) for c in cands]
    params = share.params
    share.close()
    return "ok", {
        "set": params.identifier,
        "group": params.group_index + 1,
        "member": params.member_index + 1,
    }


@op(ENTRY_TERMINAL, "entry_terminal")
def op_entry_terminal(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Typed (or scanned) share entry on the keyholder's own terminal."""
    from core.carriers.errors import CarrierError
    from core.carriers.qr import payload_to_indices
    from core.keyholder import termentry

    area = _area(state)
    words = req.integer("words", 33)
    if words not in (20, 33):
        raise MalformedRequest("a share has 20 or 33 words")
    term = termentry.entry_terminal(req)
    path = term.path
    # the title comes from the UI: printable ASCII only, one line (an escape sequence or a
    # line break would let the UI draw on the keyholder's trusted terminal)
    raw = req.text("title", "Share entry")
    title = "".join(ch if " " <= ch <= "~" else "?" for ch in raw)[:78].encode("ascii")
    if state.practice:
        title = b"PRACTICE - " + title
    if term.notice:
        title = term.notice.encode("ascii", "replace") + b"\n" + title
    if area.entry is not None:
        area.entry.close()
    area.entry = ent = _Entry(words, state.alloc(2 * words), [False] * words)
    machine = termentry.KeyEntry(words, ent.buf, ent.filled, allow_unlocked=state.allow_unlocked)

    def scan(digits: memoryview) -> tuple[str, Any]:
        try:
            idx = payload_to_indices(digits, alloc=state.alloc)
        except (CarrierError, Slip39Error) as exc:
            return "error", f"the scan is not a share QR: {exc.message} Scan it again."
        try:
            if idx.size != 2 * words:
                return "error", (
                    f"the scanned share has {idx.size // 2} words, this entry expects {words}: "
                    "it is not a share of this set"
                )
            with idx.view() as src, ent.buf.view() as dst:
                dst[:] = src
            for i in range(words):
                ent.filled[i] = True
        finally:
            idx.close()
        with ent.buf.view() as mv:
            verdict = _check_indices(mv)
        if verdict[0] != "ok":
            machine.wipe_all()
            if verdict[0] == "checksum":
                return "error", "the scanned QR does not hold a valid share (checksum): scan it again"
        return verdict

    try:
        fd = os.dup(term.fd)
        try:
            result = termentry.run_on_terminal(
                fd,
                machine,
                _check_indices,
                title=title,
                scan=scan if req.flag("scanner", True) else None,
                idle_warn=float(req.integer("idle_warn", int(termentry.IDLE_WARN_S))),
                idle_wipe=float(req.integer("idle_wipe", int(termentry.IDLE_WIPE_S))),
            )
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:
        ent.close()
        area.entry = None
        raise Refused(f"cannot use the terminal {path} for share entry: {exc}") from None
    finally:
        machine.close()
    if result.get("status") == "ok":
        ent.checked = True
    else:
        ent.close()
        area.entry = None
    return result


@op(ENTRY_CLEAR, "entry_clear")
def op_entry_clear(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Wipe the share being entered."""
    area = _area(state)
    if area.entry is not None:
        area.entry.close()
    area.entry = None
    return {"cleared": True}
