"""Shares area (0x01xx): genesis split, share display, typed entry, recovery, KCV check.

Everything secret stays in this process: the MasterKey, share values and the word
indices of shares (SecretBuffers, 2 bytes per word). Replies carry only public facts:
set identifier, group/member numbers, progress, commitments, fingerprints.

Two accepted residues, both going only to the custodian who is typing (documented here
because they are the only secret-derived strings this module returns):

* ``entry_word`` on an *unknown* word returns the nearest list words. They are derived
  from a wrong word; the custodian sees them to correct the typo.
* ``entry_terminal`` draws, when the custodian asks with ``?`` after a checksum failure,
  the word that would make the checksum valid, on the keyholder's own terminal. That word
  is (very likely) the correct share word: it never leaves this process (``entry_finish``
  replies with positions only), is never corrected silently, and never logged.

A share leaves the keyholder in plaintext only to the terminal of its custodian
(``show_share`` writes to a tty device the keyholder opens itself) or to a carrier module
in this process (card/QR, through :func:`share_for_carrier`); never to a file, never to
the parent.

Opcodes and fields (1-based group and member numbers in every public field):

* 0x0101 ``genesis_split``: ``policy`` JSON ``{group_threshold, groups: [[m, n], ...],
  extendable, iteration_exponent}``, optional secret ``passphrase``, optional bool
  ``generate`` (draw a MasterKey if none is held), ``key`` in a rotation (``new`` only:
  the old key is not split again) -> ``identifier``, ``policy``, ``shares`` [{group,
  member, words}], ``commitments`` (manifest entries), ``selftest``, ``fingerprint``,
  ``kcv``, ``kcv_words`` (of the key split), ``key`` in a rotation. In a rotation the new
  set never takes the old set's identifier (split again on the 1-in-32768 collision), and
  a failed split wipes the new key only.
* 0x0102 ``show_share``: ``group``, ``member``, [``tty``] (ignored unless it names another terminal: refused), ``custodian``
  -> ``shown``.
* 0x0103 ``shares_status`` -> ``identifier``, ``shares`` [{group, member, words, handed_to}].
* 0x0104 ``genesis_finish``: optional ``force`` -> wipes the share words.
* 0x0110 ``recovery_begin``: optional ``identifier``, ``commitments`` (manifest entries),
  ``fingerprint`` (expected, hex) -> ``progress``.
* 0x0111 ``entry_begin``: optional ``words`` (20 or 33, default 33) -> ``words``.
* 0x0112 ``entry_word``: ``position`` (1-based), secret ``chars`` -> ``status``
  (accepted | ambiguous | unknown), ``position``, ``filled``, ``nearest`` (unknown only).
* 0x0113 ``entry_finish`` -> ``status`` ok + ``set``/``group``/``member``, or ``checksum``
  + ``candidates`` [{position}] (positions only), or ``incomplete`` + ``missing`` positions.
* 0x0114 ``add_share``: (the finished entry) -> ``progress``; errors carry the recovery
  code (other-set, duplicate, conflict, mismatch, extendable-mix, commitment). A share of
  another set is refused before the commitment check ("belongs to set N", other-set).
* 0x0115 ``entry_clear`` -> wipes the entry.
* 0x0116 ``recover``: optional secret ``passphrase`` -> fingerprint fields and
  ``verified`` (True/False against the expected fingerprint, None if none was given).
* 0x0117 ``recovery_status`` -> ``progress``.
* 0x0119 ``entry_terminal``: ``tty`` (until the launcher fixes the keyholder's terminal),
  optional ``words`` (20 or 33), ``title``, ``idle_warn`` / ``idle_wipe`` (seconds), bool
  ``scanner`` (a wedge-scanner burst is accepted) -> ``status`` (ok | cancelled | idle |
  hangup), ``via`` (typed | scanner), ``set``/``group``/``member`` when ok, ``keystrokes``,
  ``pastes_refused``. The keyholder reads the terminal itself in raw mode and draws the
  masked entry (:mod:`core.keyholder.termentry`); the UI reads nothing meanwhile. An ok
  entry stays held, checked, for ``add_share`` / ``verify_share`` as after ``entry_finish``.
* 0x0118 ``verify_share``: ``commitments`` (manifest entries) -> ``set``, ``group``,
  ``member``, ``matches`` for the finished entry, checked against the manifest alone
  (:func:`verify_share_indices`, also used by the carriers' verify-only reads).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core import secmem
from core.crypto.fingerprint import derive_fingerprint
from core.custodian_tty import REVEAL_IDLE_S
from core.errors import wire_error
from core.keyholder import terminal as _terminal
from core.keyholder.errors import KeyholderError, MalformedRequest, Refused
from core.keyholder.ops import KEY_NEW, KEY_OLD, KeyholderState, Request, op
from core.keyholder.ops_core import MASTER_KEY_BYTES
from core.keyholder.shares_check import parse_commitments, verify_share_indices
from core.keyholder.shares_client import (
    ADD_SHARE,
    ENTRY_BEGIN,
    ENTRY_CLEAR,
    ENTRY_FINISH,
    ENTRY_WORD,
    GENESIS_FINISH,
    GENESIS_SPLIT,
    RECOVER,
    RECOVERY_BEGIN,
    RECOVERY_STATUS,
    SHARES_STATUS,
    SHOW_SHARE,
    VERIFY_SHARE,
    client_add_share,
    client_entry_begin,
    client_entry_finish,
    client_entry_word,
    client_genesis_split,
    client_recover,
    client_recovery_begin,
    client_show_share,
)
from core.shamir import _mem
from core.shamir.commitments import (
    ShareCommitment,
    share_metadata,
)
from core.shamir.display import share_title, show_share
from core.shamir.errors import Slip39Error
from core.shamir.genesis import (
    GenesisPolicy,
    GenesisResult,
    GenesisSelfTestError,
    genesis_split,
)
from core.shamir.recovery import RecoveryState

__all__ = [
    "ADD_SHARE",
    "ENTRY_BEGIN",
    "ENTRY_CLEAR",
    "ENTRY_FINISH",
    "ENTRY_TERMINAL",
    "ENTRY_WORD",
    "GENESIS_FINISH",
    "GENESIS_SPLIT",
    "RECOVER",
    "RECOVERY_BEGIN",
    "RECOVERY_STATUS",
    "SHARES_STATUS",
    "SHOW_SHARE",
    "VERIFY_SHARE",
    "SharesError",
    "add_share_indices",
    "client_add_share",
    "client_entry_begin",
    "client_entry_finish",
    "client_entry_word",
    "client_genesis_split",
    "client_recover",
    "client_recovery_begin",
    "client_show_share",
    "parse_commitments",
    "share_for_carrier",
    "verify_share_indices",
]

ENTRY_TERMINAL = 0x0119


@wire_error
class SharesError(KeyholderError):
    """A share operation failed; ``code`` is the SLIP-39/recovery code (other-set, ...)."""

    code = "shares"




def _err(exc: Slip39Error) -> SharesError:
    return SharesError(exc.message, code=exc.code, set_id=exc.set_id)


@dataclass
class _Entry:
    words: int
    buf: secmem.SecretBuffer
    filled: list[bool]
    checked: bool = False

    def close(self) -> None:
        self.buf.close()


@dataclass
class _Area:
    genesis: GenesisResult | None = None
    handed_to: dict[tuple[int, int], str] = field(default_factory=dict)
    #: showings of each share on its custodian's screen (a share may be shown again
    #: until its type-back check passes, then never)
    showings: dict[tuple[int, int], int] = field(default_factory=dict)
    typed_back: set[tuple[int, int]] = field(default_factory=set)
    recovery: RecoveryState | None = None
    expected_fingerprint: bytes | None = None
    entry: _Entry | None = None

    def wipe(self) -> None:
        if self.genesis is not None:
            self.genesis.close()
        self.genesis = None
        self.handed_to.clear()
        self.showings.clear()
        self.typed_back.clear()
        if self.recovery is not None:
            self.recovery.wipe()
        self.recovery = None
        self.expected_fingerprint = None
        if self.entry is not None:
            self.entry.close()
        self.entry = None


def _reset(state: KeyholderState) -> None:
    area = state.ext.get("shares")
    if isinstance(area, _Area):
        area.wipe()


def _area(state: KeyholderState) -> _Area:
    _mem.set_allow_unlocked(state.allow_unlocked)
    area = state.ext.get("shares")
    if not isinstance(area, _Area):
        area = _Area()
        state.ext["shares"] = area
        # shard envelopes (ops_seal) take genesis shares through this resolver
        state.ext["seal_share_source"] = _seal_share_source
        state.ext["seal_share_sealed"] = _seal_share_sealed
        if _reset not in state.resets:
            state.resets.append(_reset)
    return area


def _fp_fields(master: memoryview) -> dict[str, Any]:
    fp = derive_fingerprint(master)
    return {"fingerprint": fp.hex, "kcv": fp.kcv, "kcv_words": fp.words}


def _passphrase(req: Request) -> memoryview | None:
    return req.secret("passphrase") if req.has("passphrase") else None


# --------------------------------------------------------------------------- genesis


def _policy(raw: Any) -> GenesisPolicy:
    try:
        groups = tuple((int(m), int(n)) for m, n in raw["groups"])
        return GenesisPolicy(
            group_threshold=int(raw["group_threshold"]),
            groups=groups,
            extendable=bool(raw.get("extendable", True)),
            iteration_exponent=int(raw.get("iteration_exponent", 1)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedRequest(
            "policy must be {group_threshold, groups: [[m, n], ...], extendable, "
            "iteration_exponent}"
        ) from exc


@op(GENESIS_SPLIT, "genesis_split")
def op_genesis_split(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Split the held MasterKey (or a fresh one) into SLIP-39 shares, then self-test."""
    area = _area(state)
    if area.genesis is not None:
        raise Refused(
            f"shares of set {area.genesis.identifier} are still held: finish that genesis "
            "(or wipe) before splitting again"
        )
    if area.recovery is not None:
        raise Refused("a recovery is in progress in this keyholder; wipe it first")
    policy = _policy(req.json("policy"))
    try:
        policy.validate()
    except Slip39Error as exc:
        raise _err(exc) from None
    key = state.requested_key(req)
    if key == KEY_OLD:
        raise Refused(
            "the old MasterKey is not split again in a rotation (its share set is being "
            "rotated out): split the new key (key='new')"
        )
    if key == KEY_NEW:
        return _split_new(state, area, req, policy)
    generated = False
    if state.master is None or state.master.closed:
        if not req.flag("generate", False):
            state.require_master()
        buf = state.alloc(MASTER_KEY_BYTES)
        buf.fill_random()
        state.set_master(buf, "practice" if state.practice else "generated")
        generated = True
    master = state.require_verified_master("split the MasterKey into a new share set")
    try:
        with master.view() as mv:
            result = genesis_split(mv, policy, _passphrase(req))
            try:
                fp = _fp_fields(mv)
            except BaseException:
                # The shares exist but cannot be reported: wipe them now (try/finally
                # discipline), not whenever the garbage collector gets to them.
                result.close()
                raise
    except GenesisSelfTestError as exc:
        # The shares do not give the key back: abort genesis. The MasterKey goes too (no
        # share of it exists, and a key that cannot be recovered must not be sealed).
        state.wipe()
        raise _err(exc) from None
    except Slip39Error as exc:
        if generated:
            state.wipe()
        raise _err(exc) from None
    except BaseException:
        # Any other failure (locked memory, ...): a key generated for this split has no
        # shares and must not stay held, as for the SLIP-39 errors above.
        if generated:
            state.wipe()
        raise
    area.genesis = result
    return {
        "identifier": result.identifier,
        "policy": policy.to_dict(),
        "generated": generated,
        "shares": [
            {
                "group": s.params.group_index + 1,
                "member": s.params.member_index + 1,
                "words": len(s.indices) // 2,
            }
            for s in result.shares
        ],
        "commitments": [c.to_dict() for c in result.commitments],
        "selftest": result.selftest.to_dict(),
        **fp,
    }


def _split_new(
    state: KeyholderState, area: _Area, req: Request, policy: GenesisPolicy
) -> dict[str, Any]:
    """``genesis_split`` of the rotation's new key (generated here with ``generate``)."""
    generated = False
    if state.new_master is None or state.new_master.closed:
        if not req.flag("generate", False):
            state.key_buffer(KEY_NEW)  # raises NoMasterKey with the message
        buf = state.alloc(MASTER_KEY_BYTES)
        buf.fill_random()
        state.install_new(buf, "practice" if state.practice else "generated")
        generated = True
    master = state.key_buffer(KEY_NEW)
    old_set = state.key_sets.get(KEY_OLD, {}).get("set_id")
    try:
        with master.view() as mv:
            for _attempt in range(4):
                result = genesis_split(mv, policy, _passphrase(req))
                if result.identifier != old_set:
                    break
                # a new set with the old set's id would make "share of set N" ambiguous
                result.close()
            else:  # pragma: no cover - four collisions in a row: 1 in 2^60
                raise Refused("could not draw a set identifier different from the old set's")
    except GenesisSelfTestError as exc:
        # no share of the new key exists: it goes; the old key and the rotation stay
        state.drop_new()
        raise _err(exc) from None
    except Slip39Error as exc:
        if generated:
            state.drop_new()
        raise _err(exc) from None
    except BaseException:
        if generated:
            state.drop_new()
        raise
    area.genesis = result
    state.key_sets[KEY_NEW] = {
        "set_id": result.identifier,
        "policy": {"group_threshold": policy.group_threshold, "groups": [list(g) for g in policy.groups]},
    }
    return {
        "identifier": result.identifier,
        "policy": policy.to_dict(),
        "generated": generated,
        "shares": [
            {
                "group": s.params.group_index + 1,
                "member": s.params.member_index + 1,
                "words": len(s.indices) // 2,
            }
            for s in result.shares
        ],
        "commitments": [c.to_dict() for c in result.commitments],
        "selftest": result.selftest.to_dict(),
        **state.key_fields(KEY_NEW),
    }


def _find_share(area: _Area, group: int, member: int) -> secmem.SecretBuffer:
    if area.genesis is None:
        raise Refused("no share set is held: run the genesis split first")
    for s in area.genesis.shares:
        if (s.params.group_index + 1, s.params.member_index + 1) == (group, member):
            return s.indices
    raise MalformedRequest(f"set {area.genesis.identifier} has no share {member} in group {group}")


def _seal_share_source(
    state: KeyholderState, index: int
) -> tuple[secmem.SecretBuffer, str, dict[str, int]]:
    """Resolver for shard envelopes: genesis share number ``index`` (1-based, in the
    order the split returned them) as its word indices (``slip39-indices-u16be``).

    Sealing is the share's carrier: a share already handed to another carrier is refused.
    The share is recorded as handed out only once its envelope exists
    (:func:`_seal_share_sealed`, called by ops_seal after a successful seal), so a failed
    seal never makes ``genesis_finish`` wipe an undelivered share.
    """
    area = _area(state)
    if area.genesis is None:
        raise Refused("no share set is held: run the genesis split first")
    if not 1 <= index <= len(area.genesis.shares):
        raise MalformedRequest(f"set {area.genesis.identifier} has no share number {index}")
    share = area.genesis.shares[index - 1]
    p = share.params
    key = (p.group_index + 1, p.member_index + 1)
    holder = area.handed_to.get(key)
    if holder is not None and holder != "sealed envelope":
        raise Refused(f"group {key[0]} share {key[1]} was already handed to {holder}")
    meta = {
        "index": index,
        "set_id": p.identifier,
        "group_index": p.group_index + 1,
        "group_threshold": p.group_threshold,
        "member_index": p.member_index + 1,
        "threshold": p.member_threshold,
    }
    return share.indices, "slip39-indices-u16be", meta


def _seal_share_sealed(state: KeyholderState, index: int) -> None:
    """Record genesis share number ``index`` as delivered in a sealed envelope."""
    area = _area(state)
    if area.genesis is not None and 1 <= index <= len(area.genesis.shares):
        p = area.genesis.shares[index - 1].params
        area.handed_to[(p.group_index + 1, p.member_index + 1)] = "sealed envelope"


@contextmanager
def share_for_carrier(
    state: KeyholderState, group: int, member: int, carrier: str, *, reshow: bool = False
) -> Iterator[memoryview]:
    """Lend a genesis share's word indices to a carrier in this process (card, QR).

    The view is valid inside the ``with`` block only; the share is recorded as handed to
    ``carrier`` and cannot be handed out a second time. ``reshow``: a display (words or QR
    on the custodian's screen) may show the share again, on the same display, until the
    custodian's type-back check has passed (:func:`op_verify_share`); never after.
    """
    area = _area(state)
    buf = _find_share(area, group, member)
    key = (group, member)
    if key in area.typed_back:
        raise Refused(
            f"group {group} share {member} was typed back and checked: it is not shown again "
            "(the custodian's sheet is the share now)"
        )
    if key in area.handed_to and not (reshow and area.handed_to[key] == carrier):
        raise Refused(f"group {group} share {member} was already handed to {area.handed_to[key]}")
    with buf.view() as mv:
        yield mv
    area.handed_to[key] = carrier


@op(SHOW_SHARE, "show_share")
def op_show_share(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Write one share to its custodian's terminal, wait for a key, erase it."""
    area = _area(state)
    group, member = req.integer("group"), req.integer("member")
    custodian = req.text("custodian", "")
    group_name = req.text("group_name", "")
    idle = float(req.integer("idle_hide", int(REVEAL_IDLE_S)))
    if not 1 <= idle <= 3600:
        raise MalformedRequest("idle_hide must be 1..3600 seconds")
    key = (group, member)
    fixed = _terminal.current()
    where = fixed.path if fixed is not None else "no terminal"
    with share_for_carrier(
        state, group, member, f"display {where} ({custodian})", reshow=True
    ) as mv:
        # inside: a share already handed to another carrier is refused first, and a
        # refusal here leaves the share unhanded
        term = _terminal.display_terminal("shares", req.text("tty", ""))
        ident = area.genesis.identifier if area.genesis else 0
        showing = area.showings.get(key, 0) + 1
        title = share_title(ident, group, member, custodian=custodian, group_name=group_name) + (
            f" (showing {showing})" if showing > 1 else ""
        )
        if state.rotation:
            title = "NEW MasterKey - " + title  # a rotation's shares are the new key's
        if state.practice:
            title = "PRACTICE (throwaway key) - " + title
        if term.notice:
            title = f"{term.notice}\n{title}"  # its own line: the title is not cut
        fd = os.dup(term.fd)
        try:
            ended = show_share(fd, mv, title=title, idle=idle)
        except (OSError, ValueError) as exc:
            raise Refused(f"cannot show the share on {term.path}: {exc}") from None
        finally:
            os.close(fd)
        area.showings[key] = showing
    # public facts for the journal: every showing is recorded with how it ended
    return {
        "shown": True,
        "group": group,
        "member": member,
        "showing": showing,
        "ended": {"custodian": "enter-confirmed", "idle": "hidden-idle"}.get(ended, ended),
    }


@op(SHARES_STATUS, "shares_status")
def op_shares_status(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Which shares of the current set exist and to whom they were handed."""
    area = _area(state)
    if area.genesis is None:
        return {"identifier": None, "shares": []}
    return {
        "identifier": area.genesis.identifier,
        "shares": [
            {
                "group": s.params.group_index + 1,
                "member": s.params.member_index + 1,
                "words": len(s.indices) // 2,
                "handed_to": area.handed_to.get(
                    (s.params.group_index + 1, s.params.member_index + 1), ""
                ),
            }
            for s in area.genesis.shares
        ],
    }


@op(GENESIS_FINISH, "genesis_finish")
def op_genesis_finish(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Wipe the share words once every share has been handed out (or ``force``)."""
    area = _area(state)
    if area.genesis is None:
        return {"finished": True, "not_handed_out": []}
    missing = [
        {"group": s.params.group_index + 1, "member": s.params.member_index + 1}
        for s in area.genesis.shares
        if (s.params.group_index + 1, s.params.member_index + 1) not in area.handed_to
    ]
    if missing and not req.flag("force", False):
        raise Refused(f"{len(missing)} share(s) have not been handed out yet")
    area.genesis.close()
    area.genesis = None
    area.handed_to.clear()
    return {"finished": True, "not_handed_out": missing}


# --------------------------------------------------------------------------- recovery


def _recovery(state: KeyholderState, area: _Area) -> RecoveryState:
    state.refuse_if_master("accept shares")
    if area.recovery is None:
        area.recovery = RecoveryState()
    return area.recovery


@op(RECOVERY_BEGIN, "recovery_begin")
def op_recovery_begin(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Start a recovery (ADR-201: refused while a MasterKey is held)."""
    state.refuse_if_master("recover a MasterKey")
    area = _area(state)
    if area.recovery is not None:
        area.recovery.wipe()
    commitments = [ShareCommitment.from_dict(d) for d in req.json("commitments", [])]
    ident = req.integer("identifier") if req.has("identifier") else None
    if ident is None and commitments:
        ident = commitments[0].identifier
    area.recovery = RecoveryState(expected_identifier=ident, commitments=commitments)
    area.expected_fingerprint = (
        bytes.fromhex(req.text("fingerprint")) if req.has("fingerprint") else None
    )
    return {"progress": area.recovery.progress().to_dict()}


def _entry(area: _Area) -> _Entry:
    if area.entry is None:
        raise Refused("no share is being entered: begin an entry first")
    return area.entry


def add_share_indices(state: KeyholderState, indices: memoryview) -> dict[str, Any]:
    """Add a share given as word indices (2 bytes each) to the recovery in progress.

    For carrier operations in this process (card, QR) as well as typed entry.

    Returns:
        ``{"progress": ...}`` (public).

    Raises:
        SharesError: with the recovery code (other-set, duplicate, conflict, mismatch,
            extendable-mix, commitment, checksum, share-format).
    """
    area = _area(state)
    rec = _recovery(state, area)
    set_, group, member = share_metadata(indices)
    words = len(indices) // 2
    if words != MASTER_SHARE_WORDS:
        # a SLIP-39 share's length follows its secret's: 20 words for 128 bits
        raise SharesError(
            f"this share has {words} words: it is a share of a {_secret_bits(words)}-bit "
            f"secret, not of a MasterKey ({MASTER_KEY_BYTES * 8} bits, "
            f"{MASTER_SHARE_WORDS}-word shares); it is refused",
            code="wrong-size",
        )
    expected = rec.params.identifier if rec.params is not None else rec.expected_identifier
    if expected is not None and set_ != expected:
        # before the commitment check, so the refusal names the share's set
        raise SharesError(
            f"this share belongs to set {set_}; this recovery expects set {expected}",
            code="other-set",
            set_id=str(set_),
        )
    try:
        progress = rec.add_indices(indices)
    except Slip39Error as exc:
        raise _err(exc) from None
    return {
        "share": {"set": set_, "group": group + 1, "member": member + 1},
        "progress": progress.to_dict(),
    }


@op(ADD_SHARE, "add_share")
def op_add_share(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Add the finished typed share to the recovery; the entry is wiped either way."""
    area = _area(state)
    entry = _entry(area)
    if not entry.checked:
        raise Refused("finish the entry (checksum) before adding the share")
    try:
        with entry.buf.view() as mv:
            return add_share_indices(state, mv)
    finally:
        entry.close()
        area.entry = None


@op(RECOVERY_STATUS, "recovery_status")
def op_recovery_status(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Progress of the recovery in progress."""
    area = _area(state)
    rec = area.recovery or RecoveryState()
    return {"progress": rec.progress().to_dict()}


@op(RECOVER, "recover")
def op_recover(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Rebuild the MasterKey from the collected shares; check the expected fingerprint."""
    area = _area(state)
    rec = _recovery(state, area)
    try:
        master = rec.recover(_passphrase(req))
    except Slip39Error as exc:
        raise _err(exc) from None
    if master.size != MASTER_KEY_BYTES:
        size = master.size
        master.close()
        raise SharesError(
            f"the shares rebuild a {size}-byte ({size * 8}-bit) secret; a MasterKey is "
            f"{MASTER_KEY_BYTES} bytes ({MASTER_KEY_BYTES * 8} bits). Nothing was kept: these "
            "are not shares of a MasterKey.",
            code="wrong-size",
        )
    try:
        with master.view() as mv:
            fp = derive_fingerprint(mv)
    except BaseException:
        # The rebuilt key is not installed yet: wipe it on every error path rather than
        # leaving it to the garbage collector (and to an exception's traceback frames).
        master.close()
        raise
    verified: bool | None = None
    if area.expected_fingerprint is not None:
        verified = secmem.ct_equal(fp.public_key, area.expected_fingerprint)
        if not verified:
            master.close()
            raise SharesError(
                "the rebuilt key does not have the fingerprint recorded at genesis: wrong "
                "passphrase or a share of another key. Nothing was kept.",
                code="kcv-mismatch",
            )
    prog = rec.progress()
    rec.wipe()
    area.recovery = None
    state.set_master(master, "recovered", verified=verified is True)
    # public facts of the set the key was rebuilt from (checked by rotation_begin)
    state.key_sets[KEY_OLD] = {
        "set_id": prog.identifier,
        "group_threshold": prog.group_threshold,
        "group_count": prog.group_count,
        "member_thresholds": {
            g.group_index + 1: g.member_threshold for g in prog.groups if g.member_threshold
        },
    }
    return {
        "origin": "recovered",
        "verified": verified,
        "verification": (
            "matches the fingerprint recorded at genesis"
            if verified
            else "NOT VERIFIED against any manifest: a witness must compare the KCV words "
            "with the genesis record before anything is sealed or split (kcv_confirm)"
        ),
        "fingerprint": fp.hex,
        "kcv": fp.kcv,
        "kcv_words": fp.words,
    }


#: Words in a share of a 256-bit secret (SLIP-39: 20 words for 128 bits, 33 for 256).
MASTER_SHARE_WORDS = 33


def _secret_bits(words: int) -> int:
    """The secret size a SLIP-39 share of ``words`` words carries (10 bits a word, minus
    the 70 bits of metadata and checksum, rounded down to 16-bit steps)."""
    return max(0, (words * 10 - 70) // 16 * 16)


@op(VERIFY_SHARE, "verify_share")
def op_verify_share(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Check the finished typed share against the manifest's commitments alone."""
    area = _area(state)
    entry = _entry(area)
    if not entry.checked:
        raise Refused("finish the entry (checksum) before verifying the share")
    commitments = parse_commitments(req.json("commitments", []))
    with entry.buf.view() as mv:
        out = verify_share_indices(mv, commitments)
        if area.genesis is not None and out["matches"]:
            # the type-back check of a share this keyholder handed out: it is not shown again
            for s in area.genesis.shares:
                p = s.params
                if (p.group_index + 1, p.member_index + 1) != (out["group"], out["member"]):
                    continue
                with s.indices.view() as held:
                    if len(held) == len(mv) and secmem.ct_equal(held, mv):
                        area.typed_back.add((out["group"], out["member"]))
                        out["typed_back"] = True
    return out


# the typed-entry operations (entry_begin/word/finish/terminal/clear) live in ops_entry;
# importing them here registers them wherever the shares area is loaded
from core.keyholder import ops_entry as _ops_entry  # noqa: E402,F401
