"""A real keyholder in a MasterKey rotation, for tests (unit, interop, schemas).

Everything goes through the real client and process: a genesis split of the OLD key, its
shares read the way a custodian reads them (shown on a pseudo-terminal we own and parsed
back), the key wiped, then rebuilt by typing a quorum of those shares, verified against
the genesis fingerprint, and the rotation entered with ``rotation_begin``. No test mode:
the old key is a recovered key, exactly as in a ceremony.
"""

from __future__ import annotations

import os
import pty
import re
import select
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from core.keyholder import ops_rotation as rot
from core.keyholder import ops_shares as sh
from core.keyholder.client import KeyholderClient

#: 2-of-3, iteration exponent 0: quick to split and to recover.
OLD_POLICY = {"group_threshold": 1, "groups": [[2, 3]], "extendable": True, "iteration_exponent": 0}
#: the new key: 2 of 3 groups, each 2-of-3 (the issue's "2-of-3 groups policy")
NEW_POLICY = {
    "group_threshold": 2,
    "groups": [[2, 3], [2, 3], [2, 3]],
    "extendable": True,
    "iteration_exponent": 0,
}


def read_share(
    kh: KeyholderClient, group: int, member: int, screen: bytearray | None = None
) -> list[str]:
    """Show a share on the keyholder's terminal (a pty of ours, fixed when :func:`start`
    spawned it) and read the words the custodian sees."""
    master_fd = _MASTERS[id(kh)]
    out = bytearray()
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            if not select.select([master_fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(master_fd, 4096)
            except OSError:
                return
            out.extend(chunk)
            if b"Press Enter when done" in out:
                os.write(master_fd, b"\r\r")  # the custodian: Enter, Enter to confirm
                done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        reply = sh.client_show_share(kh, group, member, "", "custodian")
        assert reply["shown"] is True
    finally:
        done.set()
        t.join(2)
    words = dict((int(n), w) for n, w in re.findall(rb"\s(\d+)\. ([a-z]+)", bytes(out)))
    if screen is not None:
        screen.extend(out)
    assert len(words) == 33, f"read {len(words)} words from the custodian screen"
    return [words[k].decode() for k in sorted(words)]


def type_share(kh: KeyholderClient, words: list[str]) -> dict[str, Any]:
    """Type a share as a custodian does (4-letter prefixes) and add it to the recovery."""
    sh.client_entry_begin(kh, len(words))
    for pos, w in enumerate(words, 1):
        chars = bytearray(w[:4].encode())
        try:
            assert sh.client_entry_word(kh, pos, memoryview(chars))["status"] == "accepted"
        finally:
            chars[:] = bytes(len(chars))
    assert sh.client_entry_finish(kh)["status"] == "ok"
    return sh.client_add_share(kh)


def split_and_read(
    kh: KeyholderClient, policy: dict[str, Any], **kw: Any
) -> tuple[dict[str, Any], dict[tuple[int, int], list[str]]]:
    """``genesis_split`` then every share read from its custodian screen."""
    split = sh.client_genesis_split(kh, policy, **kw)
    words = {
        (s["group"], s["member"]): read_share(kh, s["group"], s["member"]) for s in split["shares"]
    }
    return split, words


def recover(
    kh: KeyholderClient,
    split: dict[str, Any],
    shares: list[list[str]],
    *,
    with_fingerprint: bool = True,
) -> dict[str, Any]:
    """Rebuild a key from typed shares, checked against the split's commitments (and
    fingerprint, unless ``with_fingerprint`` is False: a NOT VERIFIED key)."""
    sh.client_recovery_begin(
        kh,
        commitments=split["commitments"],
        fingerprint=split["fingerprint"] if with_fingerprint else None,
    )
    for words in shares:
        type_share(kh, words)
    return sh.client_recover(kh)


@dataclass
class Rotation:
    """A keyholder in a rotation and what the test knows about its two keys."""

    kh: KeyholderClient
    old_split: dict[str, Any]
    old_words: dict[tuple[int, int], list[str]]
    begin: dict[str, Any]
    new_split: dict[str, Any] | None = None
    new_words: dict[tuple[int, int], list[str]] = field(default_factory=dict)

    @property
    def old_fp(self) -> str:
        return str(self.old_split["fingerprint"])

    @property
    def new_fp(self) -> str:
        assert self.new_split is not None
        return str(self.new_split["fingerprint"])


#: The master side of each keyholder's display terminal (a pty fixed when it is spawned).
_MASTERS: dict[int, int] = {}


def start(*, practice: bool = False, **kw: Any) -> KeyholderClient:
    """A keyholder whose display terminal is a fresh pty of ours (demo mode: a pty is
    refused otherwise); :func:`read_share` reads it."""
    master_fd, slave_fd = pty.openpty()
    try:
        client = KeyholderClient.start(
            allow_unlocked=os.geteuid() != 0, practice=practice, terminal=slave_fd, demo=True, **kw
        )
    except BaseException:
        os.close(master_fd)
        raise
    finally:
        os.close(slave_fd)
    _MASTERS[id(client)] = master_fd
    weakref.finalize(client, _forget, id(client), master_fd)
    return client


def _forget(key: int, master_fd: int) -> None:
    if _MASTERS.get(key) == master_fd:
        del _MASTERS[key]
    os.close(master_fd)


def recovered_old_key(
    kh: KeyholderClient,
) -> tuple[dict[str, Any], dict[tuple[int, int], list[str]]]:
    """Genesis of the old key, its shares read out, wiped, rebuilt from 2 typed shares."""
    split, words = split_and_read(kh, OLD_POLICY, generate=True)
    kh.call(sh.GENESIS_FINISH)
    kh.wipe()
    rec = recover(kh, split, [words[(1, 1)], words[(1, 3)]])
    assert rec["verified"] is True and rec["fingerprint"] == split["fingerprint"]
    return split, words


def begin_rotation(kh: KeyholderClient, *, split_new: bool = True) -> Rotation:
    """An old key rebuilt from its shares, the rotation entered, and (``split_new``) the
    new key generated in its slot, split under :data:`NEW_POLICY` and its shares read."""
    split, words = recovered_old_key(kh)
    begin = rot.client_rotation_begin(
        kh, old_set_id=split["identifier"], old_policy=split["policy"]
    )
    r = Rotation(kh, split, words, begin)
    if split_new:
        r.new_split, r.new_words = split_and_read(kh, NEW_POLICY, generate=True, key="new")
        kh.call(sh.GENESIS_FINISH)
    return r


@dataclass
class Records:
    """What a rotation writes, made by the real writers: the old set's genesis manifest
    (the engine's keyholder port, signed by the old key), the continuity statement (the
    keyholder's ``rotation_statement``), the old manifest marked rotated out
    (``records.mark_rotated_out``, signed by the old key), the new set's manifest
    (``supersedes`` = the old set, signed by the new key) and a transitional envelope."""

    rotation: Rotation
    old_manifest: dict[str, Any]
    new_manifest: dict[str, Any]
    statement: bytes
    marked: dict[str, Any]
    transitional: bytes
    expires: str
    old_shares: list[list[str]] = field(default_factory=list)


COMMON: dict[str, Any] = {"cluster_id": "cluster-eu-1", "region_id": "eu10", "ceremony_id": "rotate-test"}


def rotation_records(
    kh: KeyholderClient,
    old_manifest: dict[str, Any],
    old_shares: list[list[str]],
    recipient: Any,
    *,
    expires: str,
) -> Records:
    """A whole rotation's records over the real keyholder (see :class:`Records`).

    ``old_manifest`` is a genesis manifest written by the engine (a real genesis
    ceremony) and ``old_shares`` a quorum of its shares as the custodians read them;
    ``recipient`` is a confirmed online recipient for the transitional envelope. The new
    set's manifest is the old one with the new set's facts put in (the engine's rotation
    flow writes the real one)."""
    from core import signatures as sig
    from core.ceremony import records
    from core.keyholder import ops_seal

    old_manifest = {k: v for k, v in old_manifest.items() if not k.startswith("_")}
    rec = recover(kh, old_manifest, old_shares)
    assert rec["verified"] is True and rec["fingerprint"] == old_manifest["fingerprint"]
    begin = rot.client_rotation_begin(
        kh, old_set_id=old_manifest["set_id"], old_policy=old_manifest["policy"]["slip39"]
    )
    split_view = {"fingerprint": old_manifest["fingerprint"], "identifier": old_manifest["set_id"],
                  "policy": old_manifest["policy"]["slip39"], "commitments": old_manifest["commitments"]}  # fmt: skip
    r = Rotation(kh, split_view, {}, begin)
    r.new_split, r.new_words = split_and_read(kh, NEW_POLICY, generate=True, key="new")
    kh.call(sh.GENESIS_FINISH)
    transitional = ops_seal.seal_envelope(
        kh, recipient, kind="masterkey", key="old", transition_expires_utc=expires, **COMMON
    )["envelope"]
    out = rot.client_rotation_statement(kh, transition_expires_utc=expires, **COMMON)
    statement = bytes(out["statement"])
    marked = records.mark_rotated_out(
        lambda p, m: kh.sign_reply(p, m, key="old"), old_manifest, statement
    )
    new_manifest = {k: v for k, v in old_manifest.items() if k != "signature"} | {
        "set_id": r.new_split["identifier"],
        "commitments": r.new_split["commitments"],
        "selftest": r.new_split.get("selftest"),
        "fingerprint": r.new_fp,
        "kcv": r.new_fp[:16],
        "supersedes": old_manifest["set_id"],
    }
    new_manifest["policy"] = {**old_manifest["policy"], "slip39": r.new_split["policy"]}
    block = kh.sign_reply("genesis-manifest", sig.manifest_message(new_manifest), key="new")
    new_manifest["signature"] = sig.make_block(
        "genesis-manifest", str(block["fingerprint"]), bytes(block["signature"])
    )
    return Records(
        r, old_manifest, new_manifest, statement, marked, bytes(transitional), expires, old_shares
    )
