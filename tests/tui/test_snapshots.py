"""SVG snapshots of every screen and state worth seeing, at 80x24 and 160x50.

Generate with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and review
``snapshot_report.html`` first. The app fixture (tests/tui/snapshot_app.py) feeds the real
screens fixed public data; the cursor blink is frozen and no clock is shown anywhere.
Each snapshot is also checked for glyphs the Linux console font cannot draw.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core import media
from core.ceremony.state import HandoverState
from core.words import to_words
from kcm_tui.backend import KeyholderGone
from kcm_tui.screens.byok import ByokScreen
from kcm_tui.screens.collection import CollectionScreen
from kcm_tui.screens.distribution import DistributionScreen
from kcm_tui.screens.runner import RunnerScreen
from kcm_tui.screens.summary import SummaryScreen
from tests.tui.helpers import screen_text, settle, start_ready, wait_until
from tests.tui.snapshot_app import (
    CARD_ERRORS,
    CRASHED,
    FP_WORDS,
    BackendError,
    ExportSession,
    FailingChecks,
    FakeBackend,
    FakeSession,
    SnapApp,
    step,
)

SIZES = [(80, 24), (160, 50)]
#: Rounded, "tall"/"wide"/half-block border glyphs and other glyphs the console font lacks.
FORBIDDEN = set("╭╮╰╯▔▁▂▃▅▆▇▏▕▐▌▀▄▊▎▍▋▉╸╺╹╻") | {"\u2b58"}

Run = Callable[[Any], Awaitable[None]]


def runner_app(view: Any, **kw: Any) -> SnapApp:
    session = FakeSession(view, **kw)
    return SnapApp(FakeBackend(session=session), RunnerScreen)


async def noop(pilot: Any) -> None:
    await pilot.pause()


def keys(*k: str) -> Run:
    async def run(pilot: Any) -> None:
        await pilot.pause()
        await pilot.press(*k)
        await settle(pilot)  # card / camera calls run in workers: their results handled

    return run


def _start() -> SnapApp:
    return SnapApp(FakeBackend())


def _start_crashed() -> SnapApp:
    backend = FakeBackend()
    backend.unfinished_views = [CRASHED]
    return SnapApp(backend)


def _start_fail() -> SnapApp:
    return SnapApp(FakeBackend(demo=False, checks=FailingChecks))


def _start_kind_mismatch() -> SnapApp:
    """Begin on a real unseal over a medium with PRACTICE sets only: the engine's refusal,
    in full, before the first step."""
    backend = FakeBackend()

    def refuse(script: Any, media: Path) -> Any:
        raise BackendError("only PRACTICE share sets are here; run the practice-unseal-and-seal script to "
                           "rehearse (found: PRACTICE-set-4821.json)", code="share-set-kind")

    backend.open = refuse  # type: ignore[method-assign]
    return SnapApp(backend)


def _start_real_demo_values() -> SnapApp:
    """A real ceremony (no --demo): the shipped genesis template still has demo values."""
    from dataclasses import replace as _replace

    from kcm_tui.scriptlist import script_info

    root = Path(__file__).resolve().parents[2] / "ceremony_scripts"
    infos = [_replace(script_info(root / n), path=Path(n)) for n in ("practice-genesis.toml", "genesis.toml")]
    return SnapApp(FakeBackend(demo=False, scripts=infos))


def _distribution(carriers: dict[str, str] | None = None, card_errors: tuple[str, ...] = (),
                  terminal: list[Any] | None = None, groups: bool = False) -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        params: dict[str, Any] = {"display": ["screen", "qr", "card"] if carriers else ["screen", "qr"]}
        if carriers:
            params["carriers"] = carriers
        v = step("distribute-shares", 6, act_title="Act 3: Split and hand out the shares", params=params,
                 acknowledge=("admin", "witness", "c1", "c2", "c3", "c4", "c5"), performed=True, results={"set_id": "4821"})
        s = FakeSession(v)
        s.carriers = dict(carriers or {})
        s.card_errors = [CARD_ERRORS[e] for e in card_errors]
        if groups:  # c1 (eu) and c5 (vault) have their shares, checked and acknowledged
            s.groups = True
            for c in ("c1", "c5"):
                s._handover(c).state = HandoverState.CHECKED
            s.acks = ["c1", "c5"]
        s.terminal_answers = list(terminal or [])
        return SnapApp(FakeBackend(session=s), DistributionScreen)

    return make


def _collection(refusal: str = "", card_errors: tuple[str, ...] = (), kind: str = "collect-shares",
                terminal: list[Any] | None = None, groups: bool = False) -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        s0 = FakeSession(None)
        if groups:  # a share of eu and one of vault: the engine's named message and tally
            s0.groups, s0.view, s0.collected = True, step(kind, 4), [1, 3]
            progress = s0.collection()
            assert progress is not None
            first = {"message": progress.message}
        else:
            first = {"message": "1 of 3 shares, 2 more needed from group Frankfurt"}
        v = step(kind, 4, act_title="Act 2: Rebuild the key", params={"carriers": ["typed", "qr", "card"]},
                 results={"set_id": "4821"}, display={"accepted": [first]})
        s = FakeSession(v, practice=False)
        s.groups, s.collected = s0.groups, s0.collected
        s.refusal = refusal
        s.card_errors = [CARD_ERRORS[e] for e in card_errors]
        s.terminal_answers = list(terminal or [])
        return SnapApp(FakeBackend(session=s), CollectionScreen)

    return make


PIN = ("1", "2", "3", "4", "5", "6")
LEFT = {"status": "cancelled", "keystrokes": 12, "pastes_refused": 0}
GONE = KeyholderGone(
    "The keyholder process stopped. Every secret it held is gone: the words typed so far, every share "
    "collected in this step, and any key rebuilt from them. Shares to enter again: group 1 share 2, and "
    "the share being typed. What to do: the custodians keep their sheets; press F10 to abort this "
    "ceremony (the journal records it), then start it again from the start screen and collect the "
    "shares again."
)


def _summary(state: str = "completed", journal_ok: bool = True, message: str = "") -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        s = FakeSession(None, state=state)
        s.journal_ok = journal_ok
        if message:
            s.journal_message = message
        return SnapApp(FakeBackend(session=s), SummaryScreen)

    return make


def _export(gate: bool, status: dict[str, Any] | None = None) -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        session = ExportSession(gate=threading.Event() if gate else None, status=status)
        return SnapApp(FakeBackend(session=session), RunnerScreen)

    return make


CHOICES = [
    media.Medium(Path("/media/KCM-EXPORT-1"), "KCM-EXPORT-1", 8 << 30, 7 << 30, "vfat", False, True, "/dev/sdb1"),
    media.Medium(Path("/media/OLD-STICK"), "OLD-STICK", 2 << 30, 1 << 29, "exfat", True, True, "/dev/sdc1"),
]


def _export_choose(demo: bool) -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        listed = list(CHOICES)
        if demo:
            listed.insert(0, media.Medium(Path("/demo/exports"), "demo", 64 << 30, 40 << 30, "ext4", False, False, demo=True))
        session = ExportSession(choices=lambda: listed)
        return SnapApp(FakeBackend(demo=demo, session=session), RunnerScreen)

    return make


def _start_media() -> SnapApp:
    """The start screen in a real ceremony, the medium chooser listing two sticks."""
    backend = FakeBackend(demo=False)
    backend.media_chooser = SimpleNamespace(choices=lambda demo_folder=None: list(CHOICES))
    return SnapApp(backend)


def resize(width: int, height: int, *then: str) -> Run:
    """Resize the terminal (below 80x24: the "enlarge the terminal" screen), then keys."""

    async def run(pilot: Any) -> None:
        await pilot.pause()
        await pilot.resize_terminal(width, height)
        await settle(pilot)
        await pilot.press(*then)
        await settle(pilot)

    return run


async def export_writing(pilot: Any) -> None:
    """Press the action; the canned write reports 4096 of 10240 bytes, then waits."""
    await pilot.pause()
    await pilot.press("enter")
    await wait_until(pilot, lambda: "4096 of 10240" in screen_text(pilot.app))


fp_display = {"subject": "recipient:kms", "fingerprint": "9c1e" * 16, "words": FP_WORDS}
BYOK_AWS = {
    "provider": "aws", "witness": "witness", "method": "RSAES_OAEP_SHA_256",
    "wrapping_key_file": "byok/PRACTICE-aws-wrapping-key.der", "import_token_file": "byok/PRACTICE-aws-import-token.bin",
    "key_id": "arn:aws:kms:eu-central-1:111122223333:key/PRACTICE-0000-0000-0000-000000000000",
}
BYOK_SHOWN = {
    "subject": "byok:aws", "provider": "aws", "method": "RSAES_OAEP_SHA_256", "fingerprint": "4d7c" * 16,
    "words": to_words(bytes.fromhex("4d7c" * 16)), "bits": 3072, "window_start_utc": "2027-01-15T09:30:00Z",
    "valid_until_utc": "2027-01-16T09:30:00Z",
}
BYOK_DONE = {
    "provider": "aws", "method": "RSAES_OAEP_SHA_256", "folder": "PRACTICE-byok-aws", "valid_until_utc": "2027-01-16T09:30:00Z",
    "files": {"EncryptedKeyMaterial.bin": {}, "ImportToken.bin": {}, "aws-import.json": {}}, "confirmed_by": "Internal Witness",
}


async def continue_refused(pilot: Any) -> None:
    """Tick a box, then Tab (from the box past the other box and the action) to the Continue
    that is not ready yet, Enter: refused, the line in red."""
    await settle(pilot)
    pilot.app.screen.query_one("#ack-witness").focus()
    await pilot.press("space", "tab", "tab")
    assert pilot.app.focused is not None and pilot.app.focused.id == "continue"
    await pilot.press("enter")
    await settle(pilot)


def _byok(**kw: Any) -> Callable[[], SnapApp]:
    def make() -> SnapApp:
        v = step("byok", 5, act_title="Act 3: Wrap the PRACTICE key for the providers", title="AWS KMS: EncryptedKeyMaterial.bin",
                 params=kw.pop("params", BYOK_AWS), **kw)
        return SnapApp(FakeBackend(session=FakeSession(v)), ByokScreen)

    return make

def _progress(kind: str) -> Callable[[], SnapApp]:
    """Issue 15: the custodian table on the step runner (the act outline from 120 columns,
    the breadcrumb below). Distribution: checked, QR copied, shown, skipped, not yet;
    collection: groups eu 2 of 2, us 1 of 2, vault none."""
    def make() -> SnapApp:
        if kind == "distribute-shares":
            v = step(kind, 6, act_title="Act 3: Split and hand out the shares", title="Give each custodian their share",
                     params={"display": ["screen", "qr"]}, acknowledge=("admin", "c1", "c2", "c3", "c4", "c5"),
                     performed=True, results={"set_id": "4821"})
            s = FakeSession(v)
            s.carriers = {"c2": "qr"}
            for c, state in (("c1", HandoverState.CHECKED), ("c2", HandoverState.WRITTEN),
                             ("c3", HandoverState.SHOWN), ("c4", HandoverState.SKIPPED)):
                s._handover(c).state = state
            s.acks = ["c1", "c2", "c4"]
        else:
            v = step(kind, 4, act_title="Act 2: Rebuild the key", title="Custodians enter their shares", acknowledge=("admin", "witness"),
                     performed=False, results={"set_id": "4821"})
            s = FakeSession(v)
            s.groups = True
            s.collected = [1, 1, 2]
        return SnapApp(FakeBackend(session=s), RunnerScreen)

    return make



SEAL_DONE = {
    "sealed": {"kms": {"recipient": "PRACTICE KMS key (demo)", "kind": "kms", "fingerprint": "5b2d" * 16,
                       "fingerprint_words": FP_WORDS[:7], "file": "PRACTICE-masterkey-kms.sealed.json",
                       "sha256": "ab" * 32, "size": 1538}},
    "seal_manifest": {"file": "PRACTICE-seal-manifest.json", "sha256": "cd" * 32, "size": 923},
}
SUMMARY_STEP = {
    "set_id": "4821", "kcv": "5b2d81c3a9e04f17", "fingerprint": "5b2d" * 16, "kcv_words": FP_WORDS[:7],
    "files": [{"name": "manifests/PRACTICE-set-4821.json", "size": 2210},
              {"name": "PRACTICE-genesis-export/PRACTICE-masterkey-kms.sealed.json", "size": 1538},
              {"name": "PRACTICE-genesis-export/PRACTICE-seal-manifest.json", "size": 923},
              {"name": "PRACTICE-genesis-export/PRACTICE-manifest-set-4821.json", "size": 2210}],
    "journal_rows": 79,
}

SCENARIOS: dict[str, tuple[Callable[[], SnapApp], Run]] = {
    "start": (_start, noop),
    "start_help": (_start, keys("f1")),
    "start_fail_refused": (_start_fail, keys("tab", "tab", "enter")),
    "start_invalid_script": (_start, keys("down", "down", "down", "tab", "enter")),
    "start_demo_values": (_start_real_demo_values, keys("down")),
    "start_kind_mismatch": (_start_kind_mismatch, keys("down", "down", "tab", "enter")),
    "start_demo_values_refused": (_start_real_demo_values, keys("down", "tab", "enter")),
    # issue 15: after a crash, the unfinished ceremony and closing it as interrupted
    "start_unfinished": (_start_crashed, keys()),
    # issue 15: the ceremony medium chooser, and the terminal below 80x24
    "start_medium_chooser": (_start_media, keys("f4")),
    "start_medium_chosen": (_start_media, keys("f4", "enter")),
    "too_small": (_start_crashed, resize(60, 20, "a", "b")),
    "start_interrupted_modal": (_start_crashed, keys("f6", *"power", "space", *"cut", "enter", "space")),
    "start_interrupted_closed": (_start_crashed, keys("f6", *"power", "space", *"cut", "enter", "space", "tab", "tab", "enter")),
    "attendance": (lambda: runner_app(step("attendance", 0, act_title="Act 1: Open the ceremony", acknowledge=("admin", "witness"))), noop),
    "checklist": (lambda: runner_app(step("checklist", 2, params={"items": ["Media bag number matches the log", "Share sheets counted", "Printed fingerprint present"]})), noop),
    "verify_fingerprint": (lambda: runner_app(step("verify-fingerprint", 3, params={"witness": "witness", "subject": "recipient:kms"}, performed=True, display=fp_display)), noop),
    "generate_ready": (lambda: runner_app(step("generate", 4)), noop),
    "generate_done": (lambda: runner_app(step("generate", 4, performed=True, results={"fingerprint": "5b2d" * 16, "kcv": "5b2d81", "kcv_words": FP_WORDS})), noop),
    # issue 12: a key rebuilt with no manifest fingerprint, and the witness step after it
    "recover_not_verified": (lambda: runner_app(step("recover", 5, performed=True, results={
        "fingerprint": "5b2d" * 16, "kcv": "5b2d81", "kcv_words": FP_WORDS, "verified": False})), noop),
    "verify_kcv_not_verified": (lambda: runner_app(step("verify-kcv", 6, params={"witness": "witness"}, performed=True, display={
        "fingerprint": "5b2d" * 16, "kcv": "5b2d81", "words": FP_WORDS, "expected": "", "not_verified": True})), noop),
    "step_failed": (lambda: runner_app(step("seal", 8, state="failed", error="recipient kms's fingerprint has not been confirmed by a witness in this ceremony")), noop),
    "not_available": (lambda: runner_app(step("seal", 8, state="failed", error="not available yet: core.keyholder.ops_seal.seal_envelope")), noop),
    "abort_confirm": (lambda: runner_app(step("generate", 4)), keys("f10")),
    "abort_reason_missing": (lambda: runner_app(step("generate", 4)), keys("f10", "enter")),
    "exception_modal": (lambda: runner_app(step("generate", 4)), keys("f2", *list("late start"))),
    "runner_help": (lambda: runner_app(step("generate", 4)), keys("f1")),
    "collect_choose_set": (lambda: runner_app(step("collect-shares", 4, act_title="Act 2: Rebuild the key")), keys("enter")),
    "dist_call": (_distribution(), noop),
    "dist_written": (_distribution(), keys("r")),
    "dist_not_written": (_distribution(), keys("r", "n")),
    "dist_reentry": (_distribution(terminal=[LEFT]), keys("r", "y")),
    "collect_choice": (_collection(), noop),
    "collect_typed": (_collection(terminal=[LEFT]), keys("t")),
    "collect_entry_idle": (_collection(terminal=[{"status": "idle", "keystrokes": 9}]), keys("t")),
    "collect_pastes_refused": (_collection(terminal=[{**LEFT, "pastes_refused": 2}]), keys("t")),
    "collect_keyholder_gone": (_collection(terminal=[GONE]), keys("t")),
    "collect_refused_other_set": (_collection(refusal="share 3 belongs to set 1187, this ceremony expects set 4821"), keys("t")),
    "collect_refused_superseded": (_collection(refusal="this share belongs to set 1187, superseded by set 4821 (ceremony reshare-2026); it is refused"),
                                   keys("t")),
    "collect_progress": (_collection(), keys("t")),
    "dist_card_pin": (_distribution(carriers={"c1": "card"}), noop),
    # issue 14: the PIN is typed on the keyholder's screen; digits typed here are dropped, with a hint
    "dist_card_digits_here": (_distribution(carriers={"c1": "card"}), keys(*PIN)),
    "dist_card_written": (_distribution(carriers={"c1": "card"}), keys("enter")),
    "dist_card_wrong_pin": (_distribution(carriers={"c1": "card"}, card_errors=("wrong_pin",)), keys("enter")),
    "dist_qr_call": (_distribution(carriers={"c1": "qr"}), noop),
    "dist_qr_captured": (_distribution(carriers={"c1": "qr"}), keys("r")),
    # issue 18: groups by name, one line per group
    "dist_groups": (_distribution(groups=True), noop),
    "collect_groups": (_collection(groups=True), noop),
    "dist_groups_card": (_distribution(carriers={"c2": "card"}, groups=True), noop),
    "collect_card_picker": (_collection(), keys("c", "down")),
    "collect_card_wrong_pin": (_collection(card_errors=("wrong_pin",)), keys("c", "enter")),
    "collect_card_pin_locked": (_collection(card_errors=("pin_locked",)), keys("c", "down", "enter")),
    "collect_card_wrong_card": (_collection(card_errors=("wrong_card",)), keys("c", "down", "down", "enter")),
    "collect_card_removed": (_collection(card_errors=("removed",)), keys("c", "enter")),
    "collect_camera_missing": (_collection(), keys("k", "enter")),
    "collect_scanner": (_collection(terminal=[LEFT]), keys("s")),
    "check_choice": (_collection(kind="check-shares"), noop),
    "export_ready": (_export(False), noop),
    "export_writing": (_export(True), export_writing),
    "export_choose_ceremony": (_export_choose(False), noop),
    "export_choose_demo": (_export_choose(True), noop),
    "export_chosen": (_export_choose(False), keys("enter")),
    "export_safe_to_remove": (_export(False, {"safe_to_remove": True, "unmounted": True, "notes": []}), keys("enter")),
    # MasterKey rotation (issue 19)
    "rotate_generate_done": (lambda: runner_app(step("generate", 5, act_title="Act 3: Make the NEW MasterKey", performed=True, results={
        "fingerprint": "8ef1" * 16, "kcv": "8ef11232ea21bf6a", "kcv_words": FP_WORDS, "rotation": True,
        "old_set_id": "4821", "old_fingerprint": "30bf" * 16, "old_kcv": "30bf8618fc99fe8e"})), noop),
    "rotate_verify_kcv_new": (lambda: runner_app(step("verify-kcv", 6, act_title="Act 3: Make the NEW MasterKey",
        params={"witness": "witness", "key": "new"}, performed=True,
        display={"fingerprint": "8ef1" * 16, "kcv": "8ef11232ea21bf6a", "words": FP_WORDS, "expected": "8ef1" * 16})), noop),
    "rotate_seal_old": (lambda: runner_app(step("seal", 7, act_title="Act 4: Seal, prove and export", params={"key": "old", "transition_days": 30,
        "recipients": ["kms"]}, performed=True, results={"kms": {"file": "transitional-masterkey-kms.sealed.json", "sha256": "ab" * 32,
        "transition_expires_utc": "2027-02-14T11:02:00Z"}})), noop),
    "rotate_statement": (lambda: runner_app(step("continuity-statement", 8, act_title="Act 4: Seal, prove and export", performed=True, results={
        "file": "rotation-statement.json", "sha256": "6d02a0f6" * 8, "sha256_words": FP_WORDS[:7],
        "old": {"fingerprint": "30bf" * 16, "set_id": 4821}, "new": {"fingerprint": "8ef1" * 16, "set_id": 1187},
        "transition_expires_utc": "2027-02-14T11:02:00Z"})), noop),
    "rotate_mark": (lambda: runner_app(step("mark-rotated-out", 9, act_title="Act 4: Seal, prove and export", performed=True, results={
        "set_id": "4821", "folder": "rotate-export-rotated-out", "rotated_out": {"new_set_id": 1187,
        "transition_expires_utc": "2027-02-14T11:02:00Z"}})), noop),
    "rotate_transition_collected": (lambda: runner_app(step("collect-shares", 4, act_title="Act 2: Rebuild the ROTATED-OUT MasterKey",
        performed=True, results={"set_id": "4821", "transition": {"ceremony_id": "rotate-20270115T100000Z-cd34", "new_set_id": 1187,
        "transition_expires_utc": "2027-02-14T11:02:00Z"}})), noop),
    "collect_refused_rotated_out": (_collection(refusal="this share belongs to set 4821: share set 4821 was rotated out by ceremony "
        "rotate-20270115T100000Z-cd34 on 2027-01-15T11:02:00Z: its MasterKey was replaced by the key of set 1187 (KCV 8ef1 1232 ea21 bf6a); "
        "it is refused"), keys("t")),
    # BYOK as a ceremony step (issue 16)
    "byok_step": (lambda: runner_app(step("byok", 5, act_title="Act 3: Wrap the PRACTICE key for the providers", params=BYOK_AWS)), noop),
    "byok_when": (_byok(), noop),
    "byok_compare": (_byok(display=BYOK_SHOWN), noop),
    "byok_confirmed": (_byok(display=BYOK_SHOWN, confirmed_by="Internal Witness"), noop),
    "byok_done": (_byok(display=BYOK_SHOWN, confirmed_by="Internal Witness", performed=True, results=BYOK_DONE), noop),
    "byok_failed": (_byok(display=BYOK_SHOWN, state="failed",
                          error="the fingerprint Internal Witness confirmed does not match this wrapping key; export refused"), noop),
    "byok_step_done": (lambda: runner_app(step("byok", 5, act_title="Act 3: Wrap the PRACTICE key for the providers", params=BYOK_AWS,
                                               performed=True, confirmed_by="Internal Witness", results=BYOK_DONE)), noop),
    # issue 15: the seal step's result, the summary step before the witness acknowledges,
    # Continue reached by Tab naming what it needs (and refusing), V verifying again
    "seal_done": (lambda: runner_app(step("seal", 7, act_title="Act 4: Seal and export", title="Seal the MasterKey",
        params={"recipients": ["kms"]}, performed=True, results=SEAL_DONE)), noop),
    "summary_step": (lambda: runner_app(step("summary", 10, act_title="Act 5: Close", title="Summary and paper log",
        instruction="The witness copies what this screen shows (share set, KCV words, files written) into the paper log;"
        " everyone signs.", performed=True, results=SUMMARY_STEP)), noop),
    "continue_refused": (lambda: runner_app(step("seal", 7, act_title="Act 4: Seal and export", title="Seal the MasterKey",
        params={"recipients": ["kms"]})), continue_refused),
    "summary_reverified": (_summary(), keys("v")),
    "summary_completed": (_summary(), noop),
    "summary_aborted": (_summary("aborted"), noop),
    "summary_journal_bad": (_summary(journal_ok=False), noop),
    "summary_unsigned": (_summary("aborted", message="UNSIGNED (no MasterKey was held in this ceremony): 12 rows verified, closed"), noop),
    "summary_qr": (_summary(), keys("q")),
    "progress_distribution": (_progress("distribute-shares"), noop),
    "progress_collection": (_progress("collect-shares"), noop),
    "progress_help": (_progress("distribute-shares"), keys("f1")),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_snapshot(name: str, size: tuple[int, int], snap_compare: Any) -> None:
    factory, run = SCENARIOS[name]
    app = factory()
    seen: dict[str, str] = {}

    async def run_before(pilot: Any) -> None:
        await start_ready(pilot)
        await run(pilot)
        seen["text"] = screen_text(pilot.app)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    bad = sorted({ch for ch in seen["text"] if ch in FORBIDDEN})
    if name != "summary_qr":  # the QR itself is drawn with full and half blocks (docs/tui.md)
        assert not bad, f"glyphs the console font lacks: {bad}"
    # issue 15: nothing is cut at 80x24 (Textual ends a cut label with an ellipsis, as in
    # "Ceremony Administrat…"); a list that holds more says so in words ("↓ 6 more lines")
    if size == (80, 24):
        assert "\u2026" not in seen["text"], f"text cut at 80x24:\n{seen['text']}"


def test_every_screen_has_a_snapshot() -> None:
    kinds = {name.split("_")[0] for name in SCENARIOS}
    assert {"too"} <= kinds
    assert {"export", "start", "attendance", "checklist", "verify", "generate", "dist", "collect", "summary", "abort", "exception",
            "rotate", "byok", "progress", "seal", "continue"} <= kinds
    assert replace  # dataclasses.replace is used by the fixture module
