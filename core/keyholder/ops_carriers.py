"""Carrier operations (0x03xx): smart cards (PKCS#11) and QR codes, run in the keyholder.

Every PKCS#11 call that touches plaintext, every QR decode and every scanner keystroke is
handled here, so a share read from a card or a QR goes straight into locked memory of the
keyholder and never reaches the parent. Replies carry public facts only.

| opcode | name              | request fields | reply fields |
|--------|-------------------|----------------|--------------|
| 0x0301 | card_list         | module | tokens (JSON list of TokenInfo) |
| 0x0302 | card_provision    | module, serial, [pin] (SECRET) or [pin_from_terminal] (true: the keyholder reads it on its own terminal; neither: reader PIN pad), [bits] (3072), [key_id] (hex), [generate] (true) | key (JSON CardKey) |
| 0x0303 | card_write_share  | module, serial, [pin] or [pin_from_terminal], group, member (1-based), key (JSON CardKey) or provision (JSON {bits}: make the key first, same PIN), [meta] (JSON), [store_on_card] (true), [commitment] (JSON manifest entry) | sealed (bytes: the sealed share file for media), result (JSON), key (JSON CardKey) |
| 0x0304 | card_read_share   | module, [serial], [pin] or [pin_from_terminal], [expected_serials] (JSON list), [sealed] (bytes), [set_id], [purpose], [commitments] | share (JSON facts), card (JSON), [matches] |
| 0x0305 | card_rescan       | module | rescanned, tokens (JSON list of TokenInfo) |
| 0x0310 | qr_show           | group, member (1-based), [custodian], [idle_hide] (s, default 180) (on the terminal fixed at spawn; a tty naming another is refused) | shown, ended (enter-confirmed, hidden-idle, hangup) |
| 0x0311 | qr_decode_file    | path, [purpose], [commitments] | share, decoder, variant, sandbox, [matches] |
| 0x0312 | qr_scan_camera    | [device] (/dev/video0), [timeout_s], [max_frames], [purpose], [commitments] | share, decoder, variant, sandbox, [matches] |
| 0x0313 | qr_scan_replay    | paths (JSON list of image files), [purpose], [commitments] | share, decoder, variant, sandbox, [matches] |
| 0x0320 | scanner_key       | key (SECRET, 1 byte), t_us (monotonic microseconds) | status, count, [share], [matches] |
| 0x0321 | scanner_reset     | [purpose], [commitments] (for the next bursts) | reset, purpose |

``purpose`` (reads of a share): ``recover`` (default) gives the share to the recovery in
progress; ``verify`` (with ``commitments``, the manifest's entries) only checks it against
its salted commitment, wipes it at once and replies ``purpose: "verify"``, ``share``
``{set, group, member, words, source}`` and ``matches`` (False too for a share of another
set): nothing enters the recovery, and no recovery needs to be in progress. The scanner
takes its purpose from ``scanner_reset`` (it applies to the bursts that follow, until the
next reset).

Where shares come from and go to: the shares area (:mod:`core.keyholder.ops_shares`) in
this same process. At genesis a card write borrows the share with
:func:`~core.keyholder.ops_shares.share_for_carrier` (the share is then recorded as handed
to that card); at recovery a share read from a card, a QR image, the camera or the wedge
scanner is given to :func:`~core.keyholder.ops_shares.add_share_indices` (the recovery in
progress checks set, duplicates and the manifest commitments) and our buffer is wiped.
``share`` in the replies is ``{set, group, member, words, source}`` plus the recovery
``progress``. A share of another set is refused with code ``other-set`` and a message
naming its set ("... belongs to set N ..."), before any commitment check.

``card_rescan`` finalizes and re-initialises the PKCS#11 module (SoftHSM2 and some modules
see only the tokens present at C_Initialize); refused while a card session is open.

Images (a QR file, replayed frames, camera frames) are never decoded here: each read
starts a sandboxed helper process (:mod:`core.carriers.sandbox`), which sends back only the
payload digits, read straight into locked memory. A crash, time-out or sandbox kill of
the helper is the error ``qr-decoder-failed``; an unreadable image is ``qr-unreadable``.
Replies of these reads also carry ``sandbox``: how the helper was confined (public).

Residues: see :mod:`core.carriers.pkcs11` (PIN ``str``, data key ``bytes``) and
:mod:`core.carriers.camera` (camera frames as ``bytes``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from core.carriers.errors import CardModuleRefused, CarrierError
from core.carriers.scanner import WedgeBurst
from core.custodian_tty import REVEAL_IDLE_S
from core.keyholder import terminal as _terminal
from core.keyholder.errors import MalformedRequest
from core.keyholder.ops import KeyholderState, Request, op
from core.keyholder.ops_shares import (
    SharesError,
    add_share_indices,
    parse_commitments,
    share_for_carrier,
    verify_share_indices,
)
from core.keyholder.protocol import Secret
from core.secmem import SecretBuffer
from core.shamir.commitments import ShareCommitment, share_metadata, verify_commitment
from core.shamir.display import share_title


class _LazyModule:
    """Import on first use: numpy, PIL, OpenBLAS, zxing and the PKCS#11 module load only
    when a ceremony actually uses a card or a QR code, so the keyholder stays small
    (fewer pages to lock, fewer threads, less to scan) for typed-word ceremonies."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


if TYPE_CHECKING:
    from core.carriers import camera, qr, sandbox
    from core.carriers import pkcs11 as cards
else:
    camera = _LazyModule("core.carriers.camera")
    sandbox = _LazyModule("core.carriers.sandbox")
    qr = _LazyModule("core.carriers.qr")
    cards = _LazyModule("core.carriers.pkcs11")

__all__ = [
    "CARD_LIST",
    "CARD_PROVISION",
    "CARD_READ_SHARE",
    "CARD_RESCAN",
    "CARD_WRITE_SHARE",
    "QR_DECODE_FILE",
    "QR_SCAN_CAMERA",
    "QR_SCAN_REPLAY",
    "QR_SHOW",
    "SCANNER_KEY",
    "SCANNER_RESET",
    "CarrierClient",
]

CARD_LIST = 0x0301
CARD_PROVISION = 0x0302
CARD_WRITE_SHARE = 0x0303
CARD_READ_SHARE = 0x0304
CARD_RESCAN = 0x0305
QR_SHOW = 0x0310
QR_DECODE_FILE = 0x0311
QR_SCAN_CAMERA = 0x0312
QR_SCAN_REPLAY = 0x0313
SCANNER_KEY = 0x0320
SCANNER_RESET = 0x0321

_EXT = "carriers"


class _CarrierState:
    """What this area keeps between calls (reset by ``state.wipe()``)."""

    def __init__(self) -> None:
        self.scanner: WedgeBurst | None = None
        #: commitments of the manifest when scanner bursts are verify-only, else None
        self.scanner_verify: list[ShareCommitment] | None = None

    def wipe(self) -> None:
        if self.scanner is not None:
            self.scanner.close()
            self.scanner = None
        self.scanner_verify = None


def _area(state: KeyholderState) -> _CarrierState:
    area = state.ext.get(_EXT)
    if area is None:
        area = _CarrierState()
        state.ext[_EXT] = area

        def reset(s: KeyholderState) -> None:
            a = s.ext.get(_EXT)
            if isinstance(a, _CarrierState):
                a.wipe()

        state.resets.append(reset)
    assert isinstance(area, _CarrierState)
    return area


def _verify_mode(req: Request) -> list[ShareCommitment] | None:
    """``purpose``: None for ``recover`` (default); the manifest commitments for ``verify``."""
    purpose = req.text("purpose", "recover")
    if purpose == "recover":
        return None
    if purpose != "verify":
        raise MalformedRequest("purpose must be 'recover' or 'verify'")
    if not req.has("commitments"):
        raise MalformedRequest("a verify-only read needs the manifest's commitments")
    commitments = parse_commitments(req.json("commitments"))
    if not commitments:
        raise MalformedRequest("the manifest has no commitments to check the share against")
    return commitments


def _take(
    state: KeyholderState,
    indices: SecretBuffer,
    source: str,
    verify: list[ShareCommitment] | None = None,
) -> dict[str, Any]:
    """Give a share to the recovery in progress (shares area), or with ``verify`` only
    check it against the manifest commitments; wipe our copy either way; public facts."""
    try:
        with indices.view() as mv:
            if verify is not None:
                verdict = verify_share_indices(mv, verify)
            else:
                reply = add_share_indices(state, mv)
    finally:
        words = indices.size // 2
        indices.close()
    if verify is not None:
        matches = bool(verdict.pop("matches"))
        return {
            "purpose": "verify",
            "share": {**verdict, "words": words, "source": source},
            "matches": matches,
        }
    share = dict(reply.get("share", {}))
    share.update(words=words, source=source)
    return {"share": share, "progress": reply.get("progress")}


def _pin(state: KeyholderState, req: Request, what: str) -> AbstractContextManager[memoryview | None]:
    """The PIN for one card call, valid inside the ``with`` block: the request's ``pin``
    (a view of the locked receive buffer), or with ``pin_from_terminal`` read on the
    keyholder's own terminal into locked memory and wiped after (:mod:`core.keyholder.termpin`)."""
    from core.keyholder.termpin import pin_for

    return pin_for(state, req, what)


def _module(state: KeyholderState, req: Request) -> str:
    """The path of the PKCS#11 module the request names, if this keyholder was started
    with it (``--pkcs11-module NAME=PATH``). A request names a module (``opensc``); a
    path is accepted only if it is exactly one of those the keyholder was started with.
    Anything else is refused before any file is opened: a library loaded here would run
    next to the MasterKey."""
    asked = req.text("module")
    allowed = state.pkcs11_modules
    if asked in allowed:
        return allowed[asked]
    for path in allowed.values():
        if asked == path:
            return path
    names = ", ".join(sorted(allowed)) or "none"
    raise CardModuleRefused(
        f"PKCS#11 module {asked!r} is not one this keyholder was started with ({names}); "
        "modules are named (opensc, ykcs11, softhsm2 for the demo), never given as a path"
    )


@op(CARD_LIST, "card_list")
def card_list(state: KeyholderState, req: Request) -> dict[str, Any]:
    """List the cards in the readers of a PKCS#11 module."""
    return {"tokens": [t.public() for t in cards.list_tokens(_module(state, req))]}


@op(CARD_PROVISION, "card_provision")
def card_provision(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Generate (or choose) the card key a share will be encrypted to."""
    key_id = req.text("key_id", "")
    try:
        kid = bytes.fromhex(key_id) if key_id else None
    except ValueError:
        raise MalformedRequest("key_id must be hex") from None
    module = _module(state, req)
    with _pin(state, req, "make the card key") as pin:
        key = cards.provision_key(
            module,
            req.text("serial"),
            pin,
            bits=req.integer("bits", 3072),
            key_id=kid,
            generate=req.flag("generate", True),
        )
    return {"key": key.public()}


def _card_key(d: Any) -> cards.CardKey:
    try:
        return cards.CardKey(
            serial=str(d["serial"]),
            key_id=str(d["key_id"]),
            fingerprint=str(d["fingerprint"]),
            bits=int(d["bits"]),
            oaep_hash=str(d["oaep_hash"]),
            notes=tuple(str(n) for n in d.get("notes", [])),
        )
    except (KeyError, TypeError, ValueError):
        raise MalformedRequest("key must be the JSON of card_provision's key") from None


@op(CARD_WRITE_SHARE, "card_write_share")
def card_write_share(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Write genesis share (group, member) to a card; read it back and check it."""
    module = _module(state, req)
    group, member = req.integer("group"), req.integer("member")
    serial = req.text("serial")
    check: Callable[[memoryview], bool] | None = None
    if req.has("commitment"):
        try:
            commitment = ShareCommitment.from_dict(req.json("commitment"))
        except (KeyError, TypeError, ValueError):
            raise MalformedRequest("commitment must be a manifest commitment entry") from None

        def check(mv: memoryview) -> bool:
            return verify_commitment(commitment, mv)

    provision = req.has("provision")
    if not provision:
        key = _card_key(req.json("key"))
    with _pin(state, req, "write the share to the card") as pin:
        if provision:
            # one PIN for both: the card key is made, then the share written to it
            key = cards.provision_key(module, serial, pin, bits=int(req.json("provision").get("bits", 3072)))
        with share_for_carrier(state, group, member, f"card {serial}") as share:
            res = cards.write_share(
                module,
                serial,
                pin,
                share,
                key,
                meta={"group": group, "member": member, **req.json("meta", {})},
                store_on_card=req.flag("store_on_card", True),
                check=check,
                alloc=state.alloc,
            )
    return {"sealed": res.sealed, "result": res.public(), "key": key.public()}


@op(CARD_READ_SHARE, "card_read_share")
def card_read_share(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Read a share from a card (PIN login, decrypt on the card) into the keyholder.

    ``purpose`` ``verify``: check it against ``commitments`` only (see the module doc).
    """
    verify = _verify_mode(req)
    expected = req.json("expected_serials", [])
    set_id = req.integer("set_id", -1)
    serial = req.text("serial", "") or None

    def match(meta: dict[str, Any]) -> bool:
        return set_id < 0 or meta.get("set") in (None, set_id)

    module = _module(state, req)
    with _pin(state, req, "check the share on the card" if verify is not None else "read the share on the card") as pin:
        res = cards.read_share(
            module,
            serial,
            pin,
            expected_serials=set(expected) if expected else None,
            sealed=req.blob("sealed") if req.has("sealed") else None,
            match=match,
            require_match=False,  # a share of another set is read, to say which set it is
            alloc=state.alloc,
        )
    try:
        with res.indices.view() as mv:
            got, _g, _m = share_metadata(mv)
    except BaseException:
        # e.g. a (crafted) sealed share too short to be a share: wipe what was decrypted
        res.indices.close()
        raise
    if verify is None and set_id >= 0 and got != set_id:
        res.indices.close()
        raise SharesError(
            f"the share on card {res.serial} belongs to set {got}; this ceremony "
            f"expects set {set_id}",
            code="other-set",
            set_id=str(got),
        )
    taken = _take(state, res.indices, "card", verify)
    return {
        **taken,
        "card": {
            "serial": res.serial,
            "key_fingerprint": res.key_fingerprint,
            "source": res.source,
        },
    }


@op(CARD_RESCAN, "card_rescan")
def card_rescan(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Finalize and re-initialise the PKCS#11 module so it sees cards added since it was
    loaded (SoftHSM2); refused while a card session is open. Returns the cards now seen."""
    module = _module(state, req)
    cards.rescan(module)
    return {"rescanned": True, "tokens": [t.public() for t in cards.list_tokens(module)]}


def _decoded(
    state: KeyholderState,
    out: sandbox.Decoded,
    source: str,
    verify: list[ShareCommitment] | None,
) -> dict[str, Any]:
    return {
        **_take(state, out.indices, source, verify),
        "decoder": out.decoder,
        "variant": out.variant,
        "sandbox": out.sandbox,
    }


def _sandboxed(state: KeyholderState) -> dict[str, Any]:
    """Options of a sandboxed decode: results in our locked memory; the seccomp filter is
    required unless the keyholder runs in demo mode."""
    return {"alloc": state.alloc, "require_seccomp": not state.allow_unlocked}


@op(QR_SHOW, "qr_show")
def qr_show(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Show a genesis share as a QR on its custodian's terminal, wait for a key, erase it."""
    group, member = req.integer("group"), req.integer("member")
    custodian = req.text("custodian", "")
    idle = float(req.integer("idle_hide", int(REVEAL_IDLE_S)))
    if not 1 <= idle <= 3600:
        raise MalformedRequest("idle_hide must be 1..3600 seconds")
    title = "Share QR - " + share_title(
        None, group, member, custodian=custodian, group_name=req.text("group_name", "")
    )
    if state.rotation:
        title = "NEW MasterKey - " + title  # a rotation's shares are the new key's
    if state.practice:
        title = "PRACTICE (throwaway key) - " + title
    fixed = _terminal.current()
    where = fixed.path if fixed is not None else "no terminal"
    with share_for_carrier(
        state, group, member, f"QR on {where} ({custodian})", reshow=True
    ) as mv:
        # inside: a share already handed to another carrier is refused first, and a
        # refusal here leaves the share unhanded
        term = _terminal.display_terminal("share QRs", req.text("tty", ""))
        if term.notice:
            title = f"{term.notice} - {title}"
        fd = os.dup(term.fd)
        try:
            ended = qr.show_qr(fd, mv, title=title, idle=idle)
        except (OSError, ValueError) as exc:
            raise CarrierError(f"cannot show the share QR on {term.path}: {exc}") from None
        finally:
            os.close(fd)
    # public facts for the journal: how the showing ended (as show_share reports it)
    return {
        "shown": True,
        "group": group,
        "member": member,
        "ended": {"custodian": "enter-confirmed", "idle": "hidden-idle"}.get(ended, ended),
    }


@op(QR_DECODE_FILE, "qr_decode_file")
def qr_decode_file(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Decode a share QR from an image file on media."""
    verify = _verify_mode(req)
    out = sandbox.decode_file(req.text("path"), **_sandboxed(state))
    return _decoded(state, out, "qr-file", verify)


@op(QR_SCAN_CAMERA, "qr_scan_camera")
def qr_scan_camera(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Read frames from a V4L2 camera until a share QR is decoded."""
    verify = _verify_mode(req)
    cam = camera.V4L2Capture(req.text("device", "/dev/video0"))
    try:
        out = sandbox.scan_frames(
            cam.raw_frames(),
            timeout_s=float(req.integer("timeout_s", 30)),
            max_frames=req.integer("max_frames", 300),
            **_sandboxed(state),
        )
    finally:
        cam.close()
    return _decoded(state, out, "qr-camera", verify)


@op(QR_SCAN_REPLAY, "qr_scan_replay")
def qr_scan_replay(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Replay image files as camera frames (same pipeline as the camera)."""
    verify = _verify_mode(req)
    paths = req.json("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise MalformedRequest("paths must be a JSON list of file names")
    frames = [sandbox.FileFrame(p) for p in paths]
    out = sandbox.scan_frames(frames, **_sandboxed(state))
    return _decoded(state, out, "qr-replay", verify)


@op(SCANNER_KEY, "scanner_key")
def scanner_key(state: KeyholderState, req: Request) -> dict[str, Any]:
    """One key press of a keyboard-wedge scanner (the character arrives as a secret)."""
    key = req.secret("key")
    if len(key) != 1:
        raise MalformedRequest("key must be exactly one byte")
    area = _area(state)
    if area.scanner is None:
        area.scanner = WedgeBurst(alloc=state.alloc)
    res = area.scanner.feed(key[0], req.integer("t_us") / 1e6)
    reply: dict[str, Any] = {"status": res.status, "count": res.count}
    if res.indices is not None:
        reply.update(_take(state, res.indices, "qr-scanner", area.scanner_verify))
    return reply


@op(SCANNER_RESET, "scanner_reset")
def scanner_reset(state: KeyholderState, req: Request) -> dict[str, Any]:
    """Discard a partial scanner burst; ``purpose``/``commitments`` set the mode of the
    bursts that follow (default ``recover``)."""
    verify = _verify_mode(req)
    area = _area(state)
    if area.scanner is not None:
        area.scanner.reset()
    area.scanner_verify = verify
    return {"reset": True, "purpose": "recover" if verify is None else "verify"}


class CarrierClient:
    """Typed parent-side helpers for this area over a running keyholder client.

    Args:
        client: a :class:`core.keyholder.client.KeyholderClient` (anything with ``call``).
    """

    def __init__(self, client: Any) -> None:
        self._c = client

    def list_cards(self, module: str) -> list[dict[str, Any]]:
        """Cards in the readers (public TokenInfo dicts)."""
        return list(self._c.call(CARD_LIST, module=module)["tokens"])

    def rescan(self, module: str) -> list[dict[str, Any]]:
        """Re-initialise the module in the keyholder (sees cards added since); the cards."""
        return list(self._c.call(CARD_RESCAN, module=module)["tokens"])

    def provision(
        self, module: str, serial: str, pin: memoryview | None, *, bits: int = 3072, **extra: Any
    ) -> dict[str, Any]:
        """Generate the card key; ``pin`` is a view of the parent's locked PIN buffer, or
        None with ``pin_from_terminal=True`` (the keyholder reads it on its terminal)."""
        fields: dict[str, Any] = {"module": module, "serial": serial, "bits": bits, **extra}
        if pin is not None:
            fields["pin"] = Secret(pin)
        return dict(self._c.call(CARD_PROVISION, **fields)["key"])

    def write_share(
        self,
        module: str,
        serial: str,
        pin: memoryview | None,
        group: int,
        member: int,
        key: dict[str, Any] | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write a held share to a card; returns ``sealed`` (bytes) and ``result``.
        ``key`` None with ``provision={"bits": N}``: the card key is made in the same
        call (one PIN); ``pin`` None with ``pin_from_terminal=True``: the keyholder reads
        the PIN on its own terminal."""
        fields: dict[str, Any] = {
            "module": module,
            "serial": serial,
            "group": group,
            "member": member,
            **extra,
        }
        if key is not None:
            fields["key"] = key
        if pin is not None:
            fields["pin"] = Secret(pin)
        return self._c.call(CARD_WRITE_SHARE, **fields)  # type: ignore[no-any-return]

    def read_share(
        self, module: str, serial: str | None, pin: memoryview | None, **extra: Any
    ) -> dict[str, Any]:
        """Read a share from a card into the keyholder; returns public facts."""
        fields: dict[str, Any] = {"module": module, **extra}
        if serial:
            fields["serial"] = serial
        if pin is not None:
            fields["pin"] = Secret(pin)
        return self._c.call(CARD_READ_SHARE, **fields)  # type: ignore[no-any-return]

    def decode_file(self, path: str, **extra: Any) -> dict[str, Any]:
        """Decode a share QR from an image file, in a sandboxed helper of the keyholder
        (``extra``: ``purpose``, ``commitments`` for a verify-only read)."""
        return self._c.call(QR_DECODE_FILE, path=path, **extra)  # type: ignore[no-any-return]

    def scan_replay(self, paths: list[str], **extra: Any) -> dict[str, Any]:
        """Replay image files as camera frames, in a sandboxed helper of the keyholder."""
        return self._c.call(QR_SCAN_REPLAY, paths=paths, **extra)  # type: ignore[no-any-return]

    def scan_camera(
        self, device: str = "/dev/video0", timeout_s: int = 30, **extra: Any
    ) -> dict[str, Any]:
        """Scan a share QR with a V4L2 camera (captured by the keyholder, decoded in a
        sandboxed helper)."""
        return self._c.call(  # type: ignore[no-any-return]
            QR_SCAN_CAMERA, device=device, timeout_s=timeout_s, **extra
        )

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """Forward one key press of a wedge scanner (``key``: a 1-byte locked view)."""
        return self._c.call(SCANNER_KEY, key=Secret(key), t_us=t_us)  # type: ignore[no-any-return]

    def scanner_reset(self, **extra: Any) -> None:
        """Discard a partial scanner burst (``extra``: ``purpose``, ``commitments`` for the
        bursts that follow)."""
        self._c.call(SCANNER_RESET, **extra)
