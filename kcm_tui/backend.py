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

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.ceremony.ports import FINISHED_ENTRY
from core.errors import KcmError
from kcm_tui.backend_media import (
    LazyMediaChooser,
    _media_chooser,
    default_media_helper,
    export_media_choices,
    read_only_reason,
)
from kcm_tui.backend_recovery import RecoveryServices
from kcm_tui.errors import (
    BackendError,
    CarrierRefused,
    KeyholderGone,
    NotAvailable,
    ShareRefused,
    carrier_message,
)
from kcm_tui.views import (
    Check,
    EntryResult,
    ModelEnumValues,
    ScriptInfo,
    ShareDisplay,
    StepView,
    WordStatus,
)

if TYPE_CHECKING:
    from core.ceremony.engine import Ceremony
    from core.ceremony.state import CollectionProgress, DistributionProgress, ExportVerdict
    from core.keyholder.client import KeyholderClient
    from kcm_tui.views import ActLine

__all__ = [
    "FINISHED_ENTRY",
    "Backend",
    "BackendError",
    "CarrierRefused",
    "Check",
    "EntryResult",
    "KeyholderGone",
    "NotAvailable",
    "ScriptInfo",
    "Session",
    "ShareDisplay",
    "ShareRefused",
    "StepView",
    "WordStatus",
    "carrier_message",
    "default_media_helper",
    "export_media_choices",
    "read_only_reason",
]

T = TypeVar("T")


def _message(exc: BaseException) -> str:
    """A person-readable message for a core exception (core messages never hold secrets)."""
    msg = getattr(exc, "message", None) or str(exc)
    return msg.splitlines()[0] if msg else type(exc).__name__


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


class Backend(RecoveryServices, LazyMediaChooser):
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
        # the export-medium chooser is built on first use (core.removable is ~10 ms of the
        # first screen's start-up, and the first screen lists no medium)
        self._media_helper = media_helper
        self._media_chooser: Any = None
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
        from core import preflight as pf

        results = pf.run_all("/", mode=self.mode, env=self.env, term_size=self.term_size)
        return [Check(r.name, r.status, r.reason, r.action) for r in results]

    def scripts(self) -> list[ScriptInfo]:
        """Every ceremony script in the script folders, practice scripts first in demo."""
        from kcm_tui.scriptlist import read_scripts

        return read_scripts(self.scripts_dirs, demo=self.demo)

    def preflight_port(self) -> dict[str, Any]:
        """The engine's preflight port (:func:`core.ceremony.adapters.preflight.core_preflight`),
        run in this backend's mode, environment and terminal size."""
        from core.ceremony.adapters.preflight import core_preflight

        return core_preflight(self.mode, env=self.env, term_size=self.term_size)

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
            raise BackendError(f"the ceremony medium {media}: {exc}", code=exc.code) from None

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

    def demo_values_problem(self, script: ScriptInfo) -> str:
        """Why this real ceremony cannot run ``script`` ('' when it can): it still carries
        demo values (:func:`kcm_tui.scriptlist.demo_values_problem`)."""
        from kcm_tui.scriptlist import demo_values_problem

        return demo_values_problem(script, demo=self.demo)

    def open(self, script: ScriptInfo, media: Path) -> Session:
        """Open a ceremony: load the script, create the journal on the media, start the keyholder."""
        problem = self.media_problem(media)
        if problem:
            raise BackendError(problem, code="media-not-chosen")
        if not script.valid:
            raise BackendError(f"{script.path.name} has {len(script.problems)} problem(s); fix the script")
        problem = self.demo_values_problem(script)
        if problem:
            raise BackendError(problem, code="script-demo-values")
        media = self.ceremony_medium(media)
        problem = self.media_problem(media)
        if problem:
            raise BackendError(problem, code="media-not-chosen")
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


class Session:
    """One open ceremony: a :class:`core.ceremony.engine.Ceremony` over a fresh keyholder.

    Every method returns public data or raises :class:`BackendError` with the engine's
    message (a :class:`ShareRefused` for a refused share).
    """

    def __init__(self, backend: Backend, ceremony: Ceremony, client: KeyholderClient, media: Path) -> None:
        self.backend = backend
        self.c = ceremony
        self.client = client
        self.media = media
        self._lock = threading.RLock()

    @classmethod
    def open(cls, backend: Backend, info: ScriptInfo, media: Path) -> Session:
        """Start a keyholder and load the script into a new ceremony on ``media``."""
        from core.ceremony.engine import Ceremony, ClientKeyholder, FolderExporter
        from core.keyholder import launcher

        try:
            # started the way launcher.plan says (the ISO: the launcher service, as
            # kcm-keyholder), with its display terminal fixed now, never by a request
            client = launcher.open_keyholder(
                allow_unlocked=backend.demo,
                practice=info.practice,
                terminal=backend.share_display.tty_path,
            )
        except Exception as exc:
            raise BackendError(f"the keyholder did not start: {_message(exc)}", code="keyholder-start") from None
        port = ClientKeyholder(client, tty=backend.share_display.tty_path)
        # the folder medium is the demo's scratch folder, or the ceremony medium itself
        exporter = FolderExporter(media / "exports", scratch=backend.demo, label="" if backend.demo else str(media))
        try:
            ceremony = Ceremony.load(
                info.path,
                media,
                port,
                exporter=exporter,
                preflight=backend.preflight_port,
                clock=backend.clock,
            )
        except (KcmError, OSError) as exc:
            client.close()
            raise BackendError(_message(exc), code=str(getattr(exc, "code", "") or "error")) from None
        return cls(backend, ceremony, client, media)

    # ---------------------------------------------------------------- calls

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one engine call under the session lock; engine errors become the TUI's
        errors by class and code (:mod:`kcm_tui.errors`)."""
        from core.ceremony.errors import NOT_AVAILABLE, CarrierRefusedError, ShareRefusedError

        try:
            with self._lock:
                return fn()
        except NotImplementedError as exc:
            raise NotAvailable(_message(exc)) from None
        except CarrierRefusedError as exc:
            raise CarrierRefused(_message(exc), code=exc.code, carrier=exc.carrier) from None
        except ShareRefusedError as exc:
            raise ShareRefused(_message(exc), code=exc.code) from None
        except KcmError as exc:
            if exc.code == NOT_AVAILABLE:
                raise NotAvailable(_message(exc).removeprefix("not available yet: ")) from None
            raise BackendError(_message(exc), code=exc.code) from None

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

    def act_outline(self) -> list[ActLine]:
        """The script's acts in order: done, current or to do, steps done (done or skipped)."""
        from kcm_tui.backend_outline import act_outline

        return act_outline(self.c)

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
        """Role ids an attendance step lists (``custodians`` expanded; the engine's list)."""
        return self.c.attendance_roles(self.c.steps[step.index])

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
    SUPPORTED_CARRIERS = ModelEnumValues("Carrier")
    SUPPORTED_DISPLAYS = ModelEnumValues("Display")

    def manifest_choices(self) -> list[tuple[str, str, str]]:
        """Active share-set manifests this ceremony may collect: (file, set id, ceremony id).

        The engine's list: superseded sets, and sets of the other kind (practice or real),
        are left out (the engine refuses them too).
        """
        return [(str(m["file"]), str(m["set_id"]), str(m["ceremony_id"])) for m in self._call(self.c.manifest_choices)]

    # ---------------------------------------------------------------- intents

    def perform(self, **inputs: Any) -> dict[str, Any]:
        return dict(self._call(lambda: self.c.perform(**inputs)))

    def acknowledge(self, role: str) -> None:
        self._call(lambda: self.c.acknowledge(role))

    def withdraw_ack(self, role: str) -> None:
        self._call(lambda: self.c.withdraw_ack(role))

    def confirm(self, witness: str, matches: bool, *, out_of_band: str | None = None) -> None:
        self._call(lambda: self.c.confirm(witness, matches=matches, out_of_band=out_of_band))

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

    def write_card(
        self, custodian: str, serial: str | None, pin: memoryview | None = None, *, pin_from_terminal: bool = False
    ) -> dict[str, Any]:
        """Genesis: write ``custodian``'s share to their card (key generated on the card,
        share written, read back and checked). ``pin_from_terminal`` (the product's path,
        issue 14): the keyholder asks for the PIN on its own terminal, so the caller must not
        read the terminal during the call (the app is suspended). ``pin`` (API callers): a
        view of a locked buffer, valid only during the call. Returns serial, key
        fingerprint (hex and words), verified, stored_on_card."""
        from core.ceremony.ports import CardAccess

        access = CardAccess(serial=serial or None, pin=pin, pin_from_terminal=pin_from_terminal)
        return dict(self._call(lambda: self.c.show_share(custodian, "card", card=access)))

    def list_cards(self) -> list[dict[str, Any]]:
        """The cards in the readers (label, serial, manufacturer, PIN state flags)."""
        return [dict(t) for t in self._call(self.c.list_cards)]

    def rescan_cards(self) -> list[dict[str, Any]]:
        """The keyholder re-initialises its PKCS#11 module, then lists the cards."""
        return [dict(t) for t in self._call(self.c.rescan_cards)]

    def add_share(self, carrier: str, payload: Any) -> dict[str, Any]:
        return dict(self._call(lambda: self.c.add_share(carrier, payload)))

    def add_card(
        self, serial: str | None, pin: memoryview | None = None, *, pin_from_terminal: bool = False
    ) -> dict[str, Any]:
        """Collect or check the share on a card. ``pin_from_terminal``: the keyholder asks
        for the PIN on its own terminal (the app is suspended meanwhile); ``pin`` (API
        callers): a view of a locked PIN buffer."""
        from core.ceremony.ports import CardAccess

        access = CardAccess(serial=serial or None, pin=pin, pin_from_terminal=pin_from_terminal)
        return self.add_share("card", access)

    def add_qr_file(self, path: str) -> dict[str, Any]:
        """Collect or check the share in a QR image file (decoded by the keyholder)."""
        return self.add_share("qr-file", path)

    def add_camera(self, device: str = "/dev/video0", timeout_s: int = 30) -> dict[str, Any]:
        """Collect or check the share shown to a camera (decoded by the keyholder)."""
        from core.ceremony.ports import QRCamera

        cam = QRCamera(device=device, timeout_s=timeout_s)
        return self.add_share("qr-camera", cam)

    # ---------------------------------------------------------------- typed entry (keyholder)

    def share_words(self) -> int:
        """Words in a share of the current set (33 for a 256-bit MasterKey)."""
        m = self.c.manifest or {}
        return int(m.get("words") or 33)  # 33 words for the 256-bit MasterKey

    def group_label(self, number: Any) -> str:
        """``group eu`` (the script's name for a share's group number), ``group 1``
        without groups or when unknown."""
        from core.ceremony import groups

        policy = (self.c.manifest or {}).get("policy")
        if isinstance(policy, dict) and policy.get("groups"):
            return f"group {groups.group_name(policy, number)}"
        return f"group {number}"

    # ---------------------------------------------------------------- distribution (engine state)

    def distribution(self) -> DistributionProgress | None:
        """The engine's read-only view of the distribute-shares step (None elsewhere)."""
        return self._call(self.c.distribution_progress)

    def share_written(self, custodian: str) -> None:
        """The custodian has written their share down (or copied the QR); journaled."""
        self._call(lambda: self.c.share_written(custodian))

    def check_typed_share(self, custodian: str) -> str:
        """The engine checks the share typed back against the one handed out (journaled);
        returns its message. Raises :class:`ShareRefused` when it is not the same share."""
        return str(self._call(lambda: self.c.check_typed_share(custodian))["message"])

    def skip_share_check(self, custodian: str, reason: str) -> None:
        """Skip the typed-back check, with the reason (journaled, and an exception)."""
        self._call(lambda: self.c.skip_share_check(custodian, reason, self.administrator()))

    def collection(self) -> CollectionProgress | None:
        """The engine's read-only view of the collect-/check-shares step (None elsewhere)."""
        return self._call(self.c.collection_progress)

    def export_verdict(self) -> ExportVerdict | None:
        """The engine's verdict on the export medium after the last write (None before)."""
        return self.c.export_verdict

    def entry_terminal(
        self,
        purpose: str = "collect",
        *,
        scanner: bool = False,
        idle_warn: float = 120.0,
        idle_wipe: float = 180.0,
    ) -> dict[str, Any]:
        """Share entry on the keyholder's own terminal (the trusted path, issue 14).

        Blocks until the custodian is done: the keyholder reads the terminal in raw mode
        and draws the masked entry; the caller must not read the terminal meanwhile (the
        app suspends its driver). Returns public facts: ``status`` (ok, cancelled, idle,
        hangup), ``via`` (typed, scanner), ``set``/``group``/``member`` when ok,
        ``keystrokes``, ``pastes_refused``.

        Raises:
            KeyholderGone: the keyholder ended during the entry (every secret is gone).
            BackendError: the keyholder refused (no terminal, ...).
        """
        from core.keyholder import ops_shares as osh
        from core.keyholder.errors import KeyholderDied, KeyholderError

        what = {"collect": "collect a share", "check": "check a share", "verify": "type the share back"}
        view = self.current()
        title = f"{view.title if view is not None else 'Share entry'} - " + (
            "scan the share QR (or type the words)" if scanner else what.get(purpose, "share entry")
        )
        try:
            with self._lock:
                r = self.client.call(
                    osh.ENTRY_TERMINAL,
                    tty=self.backend.share_display.tty_path,
                    words=self.share_words(),
                    title=title,
                    scanner=True,
                    idle_warn=int(idle_warn),
                    idle_wipe=int(idle_wipe),
                )
        except KeyholderDied:
            try:
                self.client.proc.poll()  # reap it
            except Exception:
                pass
            raise KeyholderGone(self.keyholder_gone_message(), code="died") from None
        except KeyholderError as exc:
            raise BackendError(exc.message, code=exc.code) from None
        return dict(r)

    def keyholder_gone_message(self) -> str:
        """What the room must know when the keyholder died: every secret is gone, which
        shares must be entered again, what to do."""
        view = self.current()
        accepted = list((view.display if view is not None else {}).get("accepted", []) or [])
        done = [
            f"group {a.get('group', '?')} share {a.get('index', a.get('member', '?'))}"
            for a in accepted
            if isinstance(a, dict)
        ]
        again = (
            "Shares to enter again: " + ", ".join(done) + ", and the share being typed."
            if done
            else "Shares to enter again: the share being typed (no other share was collected yet)."
        )
        return (
            "The keyholder process stopped. Every secret it held is gone: the words typed so "
            "far, every share collected in this step, and any key rebuilt from them. "
            + again
            + " What to do: the custodians keep their sheets; press F10 to abort this "
            "ceremony (the journal records it), then start it again from the start screen and "
            "collect the shares again."
        )

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
    """A public value (the journal hash) as a QR drawn with half blocks
    (:func:`core.carriers.qr.public_text`)."""
    from core.carriers.qr import public_text

    return public_text(data)
