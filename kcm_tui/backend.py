"""The only module of the TUI that touches ``core``.

Every screen talks to a :class:`Backend` (workstation, scripts, media) and, once a ceremony
is open, to a :class:`Session` (the engine, the journal, the keyholder). Integration with
the parts of ``core`` being built in parallel happens here and nowhere else: when a core
API is missing, the call raises :class:`NotAvailable` with the name of the missing piece,
and the screen shows that message as it is (no invented result).

Nothing here holds a secret. Typed share words go from the entry widget's own locked
buffer (``core.secmem.SecretBuffer``) to the keyholder as ``Secret(memoryview)`` fields;
shares are shown by the keyholder itself on a terminal (:class:`ShareDisplay`), never
through this process.

Threads: long calls (card writes and reads, camera scans, sealing, exports) run in Textual
worker threads. Every engine/keyholder call goes through :meth:`Session._call`, which holds
one re-entrant lock, so a call from the UI thread never interleaves with a worker's call on
the keyholder socket or the engine state; the journal itself is thread-safe
(``core.journal``). A worker must not wait for the UI thread while inside a call (progress
is posted as a message, never with the blocking ``call_from_thread``).

Heavy modules (cryptography backends, pkcs11, zxing, PIL, qrcode, sqlite-utils) are
imported inside the functions that need them, so the first screen appears quickly
(``make bench``).
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Backend",
    "BackendError",
    "Check",
    "EntryResult",
    "NotAvailable",
    "ScriptInfo",
    "Session",
    "ShareDisplay",
    "StepView",
    "WordStatus",
]


class BackendError(Exception):
    """A core operation refused or failed; the message is for the people in the room."""


class NotAvailable(BackendError):
    """A core API the TUI needs does not exist (yet) in this build."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not available yet: {what} (this build of the core lacks it)")
        self.what = what


def _optional(module: str) -> Any | None:
    """Import a core module that another part of the project may not have written yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def _message(exc: BaseException) -> str:
    """A person-readable message for a core exception (core messages never hold secrets)."""
    msg = getattr(exc, "message", None) or str(exc)
    return msg.splitlines()[0] if msg else type(exc).__name__


# ------------------------------------------------------------------------ public data views


@dataclass(frozen=True)
class Check:
    """One preflight result."""

    name: str
    status: str
    reason: str
    action: str


@dataclass(frozen=True)
class ScriptInfo:
    """A ceremony script found on disk, valid or not."""

    path: Path
    name: str
    purpose: str
    practice: bool
    description: str
    problems: tuple[str, ...] = ()
    sha256: str = ""

    @property
    def hash_words(self) -> list[str]:
        """The script's SHA-256 as words (core.words), as on the printed checklist."""
        if len(self.sha256) != 64:
            return []
        from core.words import to_words

        return to_words(bytes.fromhex(self.sha256))

    @property
    def valid(self) -> bool:
        """True when the script can be run."""
        return not self.problems


@dataclass(frozen=True)
class StepView:
    """A step as the UI shows it."""

    index: int
    act_id: str
    act_title: str
    id: str
    kind: str
    title: str
    instruction: str
    acknowledge: tuple[str, ...]
    params: Mapping[str, Any]
    state: str = "active"
    error: str = ""
    performed: bool = False
    acks: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    confirmed_by: str = ""
    display: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WordStatus:
    """The keyholder's public answer to one typed word."""

    status: str  # "accepted" | "unknown" | "ambiguous"
    position: int  # 1-based position of the word just handled
    count: int  # words accepted so far
    expected: int  # words in a full share (20 or 33), 0 while unknown
    suggestions: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class EntryResult:
    """The keyholder's public verdict on a complete typed share."""

    ok: bool
    message: str
    typo_position: int = 0
    typo_candidates: tuple[str, ...] = ()
    share: Mapping[str, Any] = field(default_factory=dict)  # set id, index, group (public)


# ------------------------------------------------------------------------ share display


class ShareDisplay:
    """Where the keyholder writes a share for its custodian: a terminal device path,
    opened and handed to the keyholder when it is spawned (never named later: see
    :mod:`core.keyholder.terminal`). On the ceremony ISO the keyholder launcher's policy
    fixes the terminal instead (``/dev/tty1``).

    The real ceremony uses the controlling terminal (``/dev/tty``) while the app is
    suspended; tests inject the slave side of a pty they read.
    """

    def __init__(self, tty_path: str = "/dev/tty") -> None:
        self.tty_path = tty_path

    def __repr__(self) -> str:
        return f"ShareDisplay({self.tty_path!r})"


# ------------------------------------------------------------------------ backend


#: Variables that make Textual write screens or messages somewhere (refused outside demo).
LEAKY_VARIABLES = ("TEXTUAL_LOG", "TEXTUAL_SCREENSHOT", "TEXTUAL_SCREENSHOT_LOCATION")


def environment_leaks(env: Mapping[str, str]) -> list[str]:
    """Names of set variables that would leak the screen or messages."""
    found = [v for v in LEAKY_VARIABLES if env.get(v)]
    features = {f.strip().lower() for f in env.get("TEXTUAL", "").split(",") if f.strip()}
    if features & {"devtools", "debug"}:
        found.append("TEXTUAL=" + ",".join(sorted(features & {"devtools", "debug"})))
    return found


def export_media_choices(root: str | Path = "/", demo_folder: Path | None = None) -> list[Any]:
    """Where an export may go (``core.media.Medium`` objects): the demo workspace's folder
    first (demo mode only), then every mounted removable medium under ``root``
    (``core.media.list_removable``; the live system's own disks are never listed).
    Read-only media are listed too: the screen shows them with the reason, not selectable.
    (Without a media helper; a :class:`Backend` lists through its ``media_chooser``, which on
    the ceremony image adds the unmounted removable devices, ``core.removable``.)"""
    from core import removable

    return list(removable.ExportMediaChooser(None, root).choices(demo_folder))


def _media_chooser(backend: Any) -> Any:
    """The backend's export-media chooser (one per backend: it remembers the medium made
    writable), or a stateless one without a helper."""
    chooser = getattr(backend, "media_chooser", None)
    if chooser is None:
        from core import removable

        chooser = removable.ExportMediaChooser(None, getattr(backend, "media_root", "/"))
    return chooser


def default_media_helper(demo: bool) -> Any:
    """The media helper of the ceremony image (``kcm-media``), if this machine has it; never
    in demo mode (the demo writes to a folder)."""
    if demo:
        return None
    from core import removable

    service = removable.MediaHelper.via_service()  # the ISO: the UI is not root
    if service.available():
        return service
    helper = removable.MediaHelper()
    return helper if helper.available() and os.geteuid() == 0 else None


def read_only_reason(medium: Any) -> str:
    """Why a medium cannot be chosen ('' when it can)."""
    if medium.read_only:
        return "write-protected or mounted read-only; slide the lock switch off, re-insert it, press F5"
    return ""


class Backend:
    """Workstation-level services: preflight, scripts, media, opening a ceremony.

    Args:
        demo: demo mode (warnings instead of failures, DEMO banner, unlocked memory allowed).
        workspace: the demo workspace (``core.demo``), if any.
        media: folder standing for the removable medium.
        media_root: filesystem root the export-medium chooser lists removable media under
            (``core.media.list_removable``; tests pass a fake tree).
        media_helper: makes the chosen removable device writable and mounts it
            (``core.removable.MediaHelper``); default: ``kcm-media`` where it exists (the
            ceremony image), none in demo mode.
        scripts_dirs: folders searched for ``*.toml`` ceremony scripts.
        share_display: where the keyholder shows shares (injectable for tests).
        env: environment for the preflight (default ``os.environ``).
        term_size: terminal size for the preflight (default: the real one).
        clock: journal clock (tests freeze it).
    """

    def __init__(
        self,
        *,
        demo: bool = False,
        workspace: Path | None = None,
        media: Path | None = None,
        media_root: Path | None = None,
        media_helper: Any = None,
        scripts_dirs: Sequence[Path] = (),
        share_display: ShareDisplay | None = None,
        env: Mapping[str, str] | None = None,
        term_size: tuple[int, int] | None = None,
        clock: Callable[[], str] | None = None,
    ) -> None:
        self.demo = demo
        self.workspace = workspace
        self.media = media
        self.media_root = media_root or Path("/")
        from core import removable

        self.media_chooser = removable.ExportMediaChooser(
            media_helper if media_helper is not None else default_media_helper(demo),
            self.media_root,
        )
        self.scripts_dirs = list(scripts_dirs)
        self.share_display = share_display or ShareDisplay()
        self.env = env
        self.term_size = term_size
        self.clock = clock
        self.session: Session | None = None

    @property
    def mode(self) -> str:
        """Preflight mode: ``demo`` or ``ceremony``."""
        return "demo" if self.demo else "ceremony"

    def preflight(self) -> list[Check]:
        """Run every workstation check (core.preflight)."""
        pf = _optional("core.preflight")
        if pf is None:
            raise NotAvailable("core.preflight")
        results = pf.run_all("/", mode=self.mode, env=self.env, term_size=self.term_size)
        return [Check(r.name, r.status, r.reason, r.action) for r in results]

    def scripts(self) -> list[ScriptInfo]:
        """Every ceremony script in the script folders, practice scripts first in demo."""
        script_mod = _optional("core.ceremony.script")
        if script_mod is None:
            raise NotAvailable("core.ceremony.script")
        found: list[ScriptInfo] = []
        seen: set[str] = set()
        for folder in self.scripts_dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.toml")):
                if path.name in seen:
                    continue
                seen.add(path.name)
                found.append(self._script_info(script_mod, path))
        if self.demo:
            found.sort(key=lambda s: (not s.practice, not s.valid))
        return found

    @staticmethod
    def _script_info(script_mod: Any, path: Path) -> ScriptInfo:
        try:
            s = script_mod.load_script(path)
        except script_mod.ScriptError as exc:
            probs = tuple(str(p) for p in exc.problems)
            return ScriptInfo(path, path.stem, "?", False, "", probs or ("invalid script",))
        except (OSError, ValueError) as exc:
            return ScriptInfo(path, path.stem, "?", False, "", (_message(exc),))
        desc = " ".join(s.description.split())
        return ScriptInfo(path, s.name, s.purpose, s.practice, desc, sha256=s.sha256)

    def preflight_port(self) -> dict[str, Any]:
        """The engine's preflight port, run in this backend's mode."""
        checks = self.preflight()
        failed = [c.name for c in checks if c.status == "FAIL"]
        return {"ok": not failed, "mode": self.mode, "failed": failed, "checks": {c.name: c.status for c in checks}}

    def ceremony_medium(self, media: Path) -> Path:
        """The folder for the journal: ``media`` itself, or, when ``media`` names a
        removable device (``/dev/sdb1``) and this machine has the media helper (the ceremony
        ISO, where every removable medium is read-only and unmounted), that device made
        writable and mounted for this user by the helper.

        Raises:
            BackendError: the helper refused (the message says why and what to do).
        """
        helper = self.media_chooser.helper
        if not str(media).startswith("/dev/") or helper is None:
            return media
        from core.media import MediaError

        try:
            return Path(helper.ceremony(str(media)))
        except MediaError as exc:
            raise BackendError(f"the ceremony medium {media}: {exc}") from None

    def media_problem(self, media: Path | None) -> str:
        """Why a media folder cannot be used ('' when it can)."""
        if media is None or not str(media):
            return "choose the export media (a folder on the removable medium)"
        if str(media).startswith("/dev/") and self.media_chooser.helper is not None:
            return ""  # a device: the helper mounts it when the ceremony opens
        if not media.is_dir():
            return f"{media} does not exist or is not a folder: insert and mount the medium"
        if not os.access(media, os.W_OK):
            return f"{media} is not writable: check the medium's write-protect switch"
        return ""

    def open(self, script: ScriptInfo, media: Path) -> Session:
        """Open a ceremony: load the script, create the journal on the media, start the keyholder."""
        problem = self.media_problem(media)
        if problem:
            raise BackendError(problem)
        if not script.valid:
            raise BackendError(f"{script.path.name} has {len(script.problems)} problem(s); fix the script")
        media = self.ceremony_medium(media)
        problem = self.media_problem(media)
        if problem:
            raise BackendError(problem)
        self.session = Session.open(self, script, media)
        return self.session

    def emergency_wipe(self, reason: str) -> list[str]:
        """After an unexpected error: tell the keyholder to wipe, journal the abort.

        Returns what was done, as lines for the crash message. Never raises.
        """
        if self.session is None:
            return ["no ceremony was open: nothing secret was held"]
        return self.session.emergency_wipe(reason)

    def close(self) -> None:
        """Stop the keyholder (it wipes) and close the journal connection."""
        if self.session is not None:
            self.session.close()


# ------------------------------------------------------------------------ session


#: Payload of a typed share already entered and checked in the keyholder (see _keyholder_port).
FINISHED_ENTRY = "finished-typed-entry"


class ShareRefused(BackendError):
    """A share was refused (other set, duplicate, superseded set, bad checksum)."""


class CarrierRefused(ShareRefused):
    """A share carrier failed (wrong PIN, PIN locked, wrong card, card removed, no token,
    unreadable QR, no camera...). Nothing collected or handed out so far is lost.

    ``code`` is the carrier error code (``card-pin-incorrect``, ``card-pin-locked``,
    ``card-wrong-card``, ``card-removed``, ``card-no-token``, ``qr-not-found``...; see
    ``core.carriers.errors``), ``carrier`` the carrier that failed.
    """

    def __init__(self, message: str, *, code: str = "", carrier: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.carrier = carrier


#: What the room is told to do after a carrier error, by code (the engine's message is
#: shown first, as it is).
CARRIER_HINT = {
    "card-pin-incorrect": "Type the PIN again (the card counts the wrong tries).",
    "card-pin-locked": "This card's PIN is locked: its owner must unblock it with the PUK"
    " (outside the ceremony) or the share comes in another way.",
    "card-wrong-card": "Take that card out and insert the custodian's own card, then F5 to rescan.",
    "card-removed": "The card was removed: insert it again, F5 to rescan, then retry.",
    "card-no-token": "Insert the custodian's card, F5 to rescan, then retry.",
    "card-no-reader": "Plug in the card reader, then F5 to rescan.",
    "qr-not-found": "No QR code was found: check the image or the camera, then try again.",
    "qr-unreadable": "Choose a PNG or JPEG photo of the share QR (under 40 MiB), or enter "
    "the share another way.",
}


def carrier_message(exc: CarrierRefused) -> str:
    """The engine's message plus what to do next."""
    hint = CARRIER_HINT.get(exc.code, "")
    msg = str(exc).rstrip()
    if hint and msg and msg[-1] not in ".!?:":
        msg += "."
    return msg + (f" {hint}" if hint else "")


def _keyholder_port(engine: Any, client: Any, display: ShareDisplay) -> Any:
    """The engine's keyholder port (``ClientKeyholder``) with the TUI's two additions.

    * The share display target is injected (``/dev/tty`` while the app is suspended; a
      pty in tests).
    * Typed shares are entered interactively, word by word, straight into the keyholder's
      entry (``ops_shares`` entry_begin / entry_word / entry_finish), so an unknown word is
      flagged at once and a checksum failure names the probable wrong word. The payload
      handed to the engine is then :data:`FINISHED_ENTRY`: "the entry the keyholder holds,
      already checked", and the engine's ``add_share``/``check_share`` use it as is.
    * QR images on the medium are decoded for the keyholder by a sandboxed helper process
      (``ops_carriers`` QR_DECODE_FILE, :mod:`core.carriers.sandbox`).
    """

    class _Port(engine.ClientKeyholder):  # type: ignore[misc,name-defined]
        def _enter_typed(self, carrier: str, payload: Any) -> dict[str, Any]:
            if carrier == "typed" and payload == FINISHED_ENTRY:
                from core.keyholder import ops_shares

                fin = dict(ops_shares.client_entry_finish(self.client))
                if fin.get("status") != "ok":
                    raise engine.ShareRefusedError("the typed share is not complete and checked yet")
                return fin
            return dict(super()._enter_typed(carrier, payload))

        def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
            if carrier != "qr":
                return dict(super().add_share(carrier, payload))
            from core.keyholder import ops_carriers
            from core.keyholder.errors import KeyholderError

            try:
                reply = dict(self.client.call(ops_carriers.QR_DECODE_FILE, path=str(payload["image"])))
            except KeyholderError as exc:
                m = re.search(r"set (\d+)", exc.message)
                raise engine.ShareRefusedError(exc.message, set_id=m.group(1) if m else None) from None
            progress = dict(reply.get("progress") or {})
            share = dict(reply.get("share") or {})
            return {
                "set_id": str(share.get("set", "")),
                "group": share.get("group"),
                "index": share.get("member"),
                "complete": bool(progress.get("complete")),
                "message": str(progress.get("message", "")),
            }

    return _Port(client, tty=display.tty_path)


class Session:
    """One open ceremony: a :class:`core.ceremony.engine.Ceremony` over a fresh keyholder.

    Every method returns public data or raises :class:`BackendError` with the engine's
    message (a :class:`ShareRefused` for a refused share).
    """

    def __init__(self, backend: Backend, ceremony: Any, client: Any, media: Path) -> None:
        self.backend = backend
        self.c = ceremony
        self.client = client
        self.media = media
        self.port: Any = None
        self._lock = threading.RLock()

    @classmethod
    def open(cls, backend: Backend, info: ScriptInfo, media: Path) -> Session:
        engine = _optional("core.ceremony.engine")
        if engine is None:
            raise NotAvailable("core.ceremony.engine")
        from core.ceremony.script import ScriptError
        from core.journal import JournalError
        from core.keyholder import launcher

        try:
            client = launcher.open_keyholder(
                allow_unlocked=backend.demo,
                practice=info.practice,
                terminal=backend.share_display.tty_path,
            )
        except Exception as exc:
            raise BackendError(f"the keyholder did not start: {_message(exc)}") from None
        port = _keyholder_port(engine, client, backend.share_display)
        try:
            ceremony = engine.Ceremony.load(
                info.path,
                media,
                port,
                preflight=backend.preflight_port,
                clock=backend.clock,
            )
        except ScriptError as exc:
            client.close()
            raise BackendError(_message(exc)) from None
        except (JournalError, OSError) as exc:
            client.close()
            raise BackendError(_message(exc)) from None
        port.ceremony = ceremony
        session = cls(backend, ceremony, client, media)
        session.port = port
        return session

    # ---------------------------------------------------------------- calls

    def _call(self, fn: Callable[[], Any]) -> Any:
        engine = _optional("core.ceremony.engine")
        from core.keyholder.errors import KeyholderError

        try:
            with self._lock:
                return fn()
        except NotImplementedError as exc:
            raise NotAvailable(_message(exc)) from None
        except engine.CarrierRefusedError as exc:  # type: ignore[union-attr]
            raise CarrierRefused(_message(exc), code=str(exc.code or ""), carrier=str(exc.carrier)) from None
        except engine.ShareRefusedError as exc:  # type: ignore[union-attr]
            raise ShareRefused(_message(exc)) from None
        except (engine.EngineError, engine.StepFailedError, KeyholderError) as exc:  # type: ignore[union-attr]
            msg = _message(exc)
            if msg.startswith("not available yet"):
                raise NotAvailable(msg.removeprefix("not available yet: ")) from None
            raise BackendError(msg) from None

    # ---------------------------------------------------------------- public facts

    @property
    def practice(self) -> bool:
        return bool(self.c.practice)

    @property
    def ceremony_id(self) -> str:
        return str(self.c.ceremony_id)

    @property
    def folder(self) -> Path:
        return Path(self.c.journal.path).parent

    @property
    def journal_path(self) -> Path:
        return Path(self.c.journal.path)

    @property
    def state(self) -> str:
        return str(self.c.state.value)

    def progress(self) -> tuple[int, int]:
        done, total = self.c.progress
        return int(done), int(total)

    def current(self) -> StepView | None:
        """The step to show now (None once the ceremony is over)."""
        run = self.c.current_step
        if run is None:
            return None
        index = self.c.steps.index(run)
        return StepView(
            index=index,
            act_id=run.act_id,
            act_title=run.act_title,
            id=run.step_id,
            kind=run.kind.value,
            title=run.title,
            instruction=" ".join(run.instruction.split()),
            acknowledge=tuple(run.required_roles),
            params=dict(run.step.params),
            state=run.state.value,
            error=run.error,
            performed=run.performed,
            acks=tuple(run.acks),
            shown=tuple(run.shown),
            confirmed_by=run.confirmed_by,
            display=dict(run.display),
            results=dict(run.results),
        )

    def total_steps(self) -> int:
        return len(self.c.steps)

    def role_name(self, role_id: str) -> str:
        role = self.c.script.roles.get(role_id)
        return str(role.name) if role is not None else role_id

    def card_serial_of(self, role_id: str) -> str | None:
        """The card serial the script names for a custodian (None if none)."""
        role = self.c.script.roles.get(role_id)
        serial = getattr(role, "card_serial", None)
        return str(serial) if serial else None

    def role_kind(self, role_id: str) -> str:
        role = self.c.script.roles.get(role_id)
        return str(role.kind.value) if role is not None else ""

    def attendance_roles(self, step: StepView) -> list[str]:
        """Role ids an attendance step lists (``custodians`` expanded)."""
        names = step.params.get("roles") or list(self.c.script.roles)
        out: list[str] = []
        for n in names:
            for r in [c.id for c in self.c.script.custodians()] if n == "custodians" else [n]:
                if r not in out:
                    out.append(r)
        return out

    def split_custodians(self) -> list[str]:
        """Custodians of the new share set, in policy order."""
        pol = self.c.script.policy
        return list(pol.custodians) if pol else []

    def group_of(self) -> dict[str, str]:
        """Custodian id -> group name (SLIP-39 groups), empty without groups."""
        pol = self.c.script.policy
        out: dict[str, str] = {}
        if pol:
            for g in pol.groups:
                for m in g.members:
                    out[m] = g.name
        return out

    def administrator(self) -> str:
        """The role id of the ceremony administrator (who records exceptions)."""
        for r in self.c.script.roles.values():
            if r.kind.value == "ceremony-administrator":
                return str(r.id)
        return "admin"

    def keyholder_warnings(self) -> list[str]:
        return [str(x) for x in self.client.info.get("insecure", [])]

    #: Carriers and share displays this build can drive end to end (the engine marks a step
    #: FAILED when asked for one it cannot do, so the UI offers only these). A script's
    #: ``qr`` carrier means the three QR ways in: image file, camera, handheld scanner.
    SUPPORTED_CARRIERS = ("typed", "qr", "qr-file", "qr-camera", "scanner", "card")
    SUPPORTED_DISPLAYS = ("screen", "qr", "card")

    def manifest_choices(self) -> list[tuple[str, str, str]]:
        """Active share-set manifests this ceremony may collect: (file, set id, ceremony id).

        Superseded sets, and practice sets in a real ceremony, are left out (the engine
        refuses them too).
        """
        out: list[tuple[str, str, str]] = []
        for m in self.c._manifests():
            if m.get("practice") and not self.practice:
                continue
            if self.c.superseded_by(str(m["set_id"])) is not None:
                continue
            out.append((str(m["_file"]), str(m["set_id"]), str(m.get("ceremony_id", "?"))))
        return out

    # ---------------------------------------------------------------- intents

    def perform(self, **inputs: Any) -> dict[str, Any]:
        return dict(self._call(lambda: self.c.perform(**inputs)))

    def acknowledge(self, role: str) -> None:
        self._call(lambda: self.c.acknowledge(role))

    def confirm(self, witness: str, matches: bool) -> None:
        self._call(lambda: self.c.confirm(witness, matches=matches))

    def complete(self) -> None:
        self._call(self.c.complete_step)

    def retry(self) -> None:
        self._call(self.c.retry)

    def record_exception(self, text: str, who: str = "") -> None:
        self._call(lambda: self.c.record_exception(text, who or self.administrator()))

    def abort(self, reason: str, who: str = "") -> None:
        self._call(lambda: self.c.abort(reason, who or self.administrator()))

    def show_share(self, custodian: str, display: str = "screen", *, override_reason: str | None = None) -> dict[str, Any]:
        """Show a share on the custodian terminal (``screen`` words or a ``qr`` code)."""
        return dict(self._call(lambda: self.c.show_share(custodian, display, override_reason=override_reason)))

    def share_carriers(self) -> dict[str, str]:
        """Custodian -> carrier the script declares for their share (``screen`` default)."""
        return {str(k): str(v) for k, v in self._call(self.c.share_carriers).items()}

    # ---------------------------------------------------------------- export media

    def export_medium(self) -> dict[str, Any]:
        """Where export steps write: ``label``, ``demo`` (the demo folder, nothing to remove),
        ``path``, ``describe`` (one line)."""
        exporter = self.c.exporter
        target = getattr(exporter, "target", None)
        medium = target() if callable(target) else None
        if medium is None:
            return {"label": "the export medium", "demo": False, "path": "", "describe": ""}
        # outside demo mode the folder medium is the ceremony medium the operator chose
        demo = bool(medium.demo) and self.backend.demo
        return {
            "label": str(medium.label) if demo or not medium.demo else str(self.media),
            "demo": demo,
            "path": str(medium.path),
            "describe": str(medium.describe()),
        }

    def export_media_choices(self) -> list[Any] | None:
        """Media the export step may write to (see :func:`export_media_choices`): the demo
        folder (demo mode only) and the mounted removable media. ``None`` when the exporter
        has a fixed medium (no chooser)."""
        exporter = self.c.exporter
        if not callable(getattr(exporter, "use", None)):
            return None
        demo_folder = getattr(exporter, "root", None) if self.backend.demo else None
        try:
            return list(_media_chooser(self.backend).choices(demo_folder))
        except OSError as exc:
            raise BackendError(f"cannot list the export media: {exc}") from None

    def set_export_medium(self, medium: Any | None) -> None:
        """Export steps write to ``medium`` from now on (a real removable medium is unmounted
        after the verify and sync); ``None`` forgets the choice. A read-only medium is refused.
        An unmounted removable device (the ceremony image) is made writable and mounted by the
        media helper first, and the medium chosen before is released (read-only again)."""
        if medium is not None and read_only_reason(medium):
            raise BackendError(f"{medium.label} cannot be used: {read_only_reason(medium)}")
        use = getattr(self.c.exporter, "use", None)
        if not callable(use):
            raise BackendError("this ceremony's exporter writes to a fixed medium")
        from core.media import MediaError

        try:
            target = _media_chooser(self.backend).choose(medium)
        except MediaError as exc:
            use(None)
            raise BackendError(f"{medium.label if medium is not None else 'the medium'}: {exc.message}") from None
        use(target)

    def set_export_progress(self, cb: Callable[[int, int, str], None] | None) -> None:
        """Progress callback for the next export write (called in the worker thread)."""
        if hasattr(self.c.exporter, "progress"):
            self.c.exporter.progress = cb

    def export_status(self) -> dict[str, Any] | None:
        """The medium state after the last export write: ``safe_to_remove`` (verified and
        synced), ``unmounted``, ``notes``. None when the exporter does not report it (then
        the screen never says it is safe to remove)."""
        res = getattr(self.c.exporter, "last", None)
        if res is None:
            return None
        return {
            "safe_to_remove": bool(res.safe_to_remove),
            "unmounted": bool(res.unmounted),
            "notes": [str(n) for n in res.notes],
            "directory": str(res.directory),
        }

    def _engine(self) -> Any:
        engine = _optional("core.ceremony.engine")
        if engine is None:
            raise NotAvailable("core.ceremony.engine")
        return engine

    def write_card(self, custodian: str, serial: str | None, pin: memoryview | None) -> dict[str, Any]:
        """Genesis: write ``custodian``'s share to their card (key generated on the card,
        share written, read back and checked). ``pin`` is a view of the PIN widget's locked
        buffer, valid only during the call. Returns serial, key fingerprint (hex and words),
        verified, stored_on_card."""
        access = self._engine().CardAccess(serial=serial or None, pin=pin)
        return dict(self._call(lambda: self.c.show_share(custodian, "card", card=access)))

    def list_cards(self) -> list[dict[str, Any]]:
        """The cards in the readers (label, serial, manufacturer, PIN state flags)."""
        return [dict(t) for t in self._call(self.c.list_cards)]

    def rescan_cards(self) -> list[dict[str, Any]]:
        """The keyholder re-initialises its PKCS#11 module, then lists the cards."""
        return [dict(t) for t in self._call(self.c.rescan_cards)]

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        return dict(self._call(lambda: self.c.add_share(carrier, payload)))

    def add_card(self, serial: str | None, pin: memoryview | None) -> dict[str, Any]:
        """Collect or check the share on a card (``pin``: view of the locked PIN buffer)."""
        access = self._engine().CardAccess(serial=serial or None, pin=pin)
        return self.add_share("card", access)

    def add_qr_file(self, path: str) -> dict[str, Any]:
        """Collect or check the share in a QR image file (decoded by the keyholder)."""
        return self.add_share("qr-file", path)

    def add_camera(self, device: str = "/dev/video0", timeout_s: int = 30) -> dict[str, Any]:
        """Collect or check the share shown to a camera (decoded by the keyholder)."""
        cam = self._engine().QRCamera(device=device, timeout_s=timeout_s)
        return self.add_share("qr-camera", cam)

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        """One key press of a handheld (keyboard-wedge) scanner, a view of a locked one-byte
        buffer; the keyholder detects the burst. ``status``: pending, not-scanner, complete."""
        return dict(self._call(lambda: self.c.scanner_key(key, t_us)))

    # ---------------------------------------------------------------- typed entry (keyholder)

    def _shares(self, name: str) -> Callable[..., Any]:
        mod = _optional("core.keyholder.ops_shares")
        fn = getattr(mod, name, None) if mod else None
        if fn is None:
            raise NotAvailable(f"core.keyholder.ops_shares.{name}")
        return fn  # type: ignore[no-any-return]

    def _kh(self, fn: Callable[[], Any]) -> Any:
        from core.keyholder.errors import KeyholderError

        try:
            with self._lock:
                return fn()
        except KeyholderError as exc:
            raise BackendError(exc.message) from None

    def share_words(self) -> int:
        """Words in a share of the current set (33 for a 256-bit MasterKey)."""
        m = self.c.manifest or {}
        return int(m.get("words") or 33)  # 33 words for the 256-bit MasterKey

    def entry_begin(self, purpose: str = "collect", member: int = -1) -> dict[str, Any]:
        """Start a typed entry in the keyholder (``purpose`` collect, check or verify)."""
        fn = self._shares("client_entry_begin")
        r = dict(self._kh(lambda: fn(self.client, words=self.share_words())))
        return {"expected": int(r.get("words", 33))}

    def entry_word(self, view: memoryview, position: int) -> WordStatus:
        """Send one typed word (a view of the entry widget's locked buffer) for ``position``."""
        fn = self._shares("client_entry_word")
        r = self._kh(lambda: fn(self.client, position, view))
        return WordStatus(
            str(r.get("status", "")),
            int(r.get("position", position)),
            int(r.get("filled", 0)),
            0,
            tuple(r.get("nearest", ()) or ()),
            str(r.get("message", "")),
        )

    def entry_finish(self) -> EntryResult:
        """Checksum and (if wrong) the probable typo position and candidates."""
        fn = self._shares("client_entry_finish")
        r = self._kh(lambda: fn(self.client))
        status = str(r.get("status", ""))
        if status == "ok":
            share = {"set": r.get("set"), "group": r.get("group"), "member": r.get("member")}
            return EntryResult(True, f"share {r.get('member')} of group {r.get('group')}, set {r.get('set')}", share=share)
        if status == "incomplete":
            missing = list(r.get("missing", []))
            shown = ", ".join(str(m) for m in missing[:6]) + (" ..." if len(missing) > 6 else "")
            return EntryResult(False, f"{len(missing)} word(s) missing: {shown}")
        cands = list(r.get("candidates", []))
        if cands:
            first = cands[0]
            others = [int(c["position"]) for c in cands[1:4]]
            msg = str(r.get("message", "checksum wrong"))
            if others:
                msg += f" (or word {', '.join(str(o) for o in others)})"
            return EntryResult(False, msg, int(first["position"]), tuple(first.get("words", ())))
        return EntryResult(False, str(r.get("message") or "checksum wrong: check every word with the custodian"))

    def verify_entry_for(self, custodian: str) -> tuple[bool, str]:
        """After re-entry at distribution: is the typed share the one this custodian got?"""
        from core.keyholder import ops_shares as osh

        m = self.c.manifest or {}
        r = self._kh(lambda: self.client.call(osh.VERIFY_SHARE, commitments=list(m.get("commitments", []))))
        want = next((x for x in m.get("holders", []) if x.get("custodian") == custodian), None)
        same = want is not None and (int(want["group"]), int(want["member"])) == (int(r["group"]), int(r["member"]))
        if r.get("matches") and same:
            return True, "the share typed back is exactly the share handed out"
        if r.get("matches"):
            return False, f"that is share {r['member']} of group {r['group']}, not this custodian's share"
        return False, "the share typed back does NOT match the share handed out: check the sheet"

    def entry_cancel(self) -> None:
        """Wipe the partial entry in the keyholder. Never raises (used on timeouts)."""
        try:
            from core.keyholder import ops_shares as osh

            self.client.call(osh.ENTRY_CLEAR)
        except Exception:
            pass

    # ---------------------------------------------------------------- end

    @property
    def final_hash(self) -> str:
        return str(self.c.final_hash)

    @property
    def final_words(self) -> tuple[str, ...]:
        return tuple(self.c.final_words)

    def exports(self) -> list[str]:
        out = [str(p) for p in self.c.exports.values()]
        for files in self.c.written.values():
            out += [f.path for f in files]
        return out

    def verify_journal(self) -> tuple[bool, str]:
        """Re-read the closed journal: its chain, and its signature against this
        ceremony's MasterKey fingerprint (known here from the keyholder, not read from the
        journal). An unsigned journal (no key was held) is intact but says UNSIGNED."""
        from core import journal as jmod

        fp = str(getattr(self.c, "signing_fp", "") or "")
        try:
            result = jmod.verify(self.journal_path, fingerprint=fp or None)
        except Exception as exc:
            return False, _message(exc)
        message = str(getattr(result, "message", ""))
        if result.ok and not getattr(result, "signed", False):
            message = "UNSIGNED (no MasterKey was held in this ceremony): " + message
        error = str(getattr(self.c, "signature_error", "") or "")
        if error:
            message = f"{message}; {error}"
        return bool(result.ok), message

    def emergency_wipe(self, reason: str) -> list[str]:
        done: list[str] = []
        try:
            self.client.wipe()
            done.append("the keyholder was told to wipe every secret it held")
        except Exception:
            try:
                self.client.kill()
                done.append("the keyholder was stopped (its memory is gone)")
            except Exception:
                done.append("the keyholder could not be reached: power the machine off")
        try:
            if self.c.state.value == "running":
                self.c.abort(reason, self.administrator())
            done.append(f"the journal recorded the abort ({self.journal_path})")
        except Exception as exc:
            done.append(f"the journal could not record the abort ({type(exc).__name__})")
        return done

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
        try:  # a medium made writable and not yet released: read-only again
            _media_chooser(self.backend).release()
        except Exception:
            pass



def qr_text(data: str) -> str:
    """A public value (the journal hash) as a QR drawn with full and half blocks."""
    try:
        import qrcode
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise NotAvailable("qrcode") from exc
    q = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_M)
    q.add_data(data.upper())
    q.make(fit=True)
    m = q.get_matrix()
    rows = []
    for y in range(0, len(m), 2):
        top, bottom = m[y], m[y + 1] if y + 1 < len(m) else [False] * len(m[y])
        rows.append(
            "".join(
                " " if not t and not b else "\u2580" if t and not b else "\u2584" if b and not t else "\u2588"
                for t, b in zip(top, bottom, strict=True)
            )
        )
    return "\n".join(rows)
