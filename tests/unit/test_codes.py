"""One error root and one code registry (issue 13, item 4).

* every exception class the project defines derives from :class:`core.errors.KcmError`,
  and its code is listed in :mod:`core.codes` with a meaning and an action;
* every code written in the source (``code="..."``, ``code = "..."``, ``{"code": "..."}``)
  is listed, and every listed code is used somewhere (no stale entry);
* errors cross the keyholder pipe by code, with the share's set id as a field (no message
  parsing), and a foreign exception's text never crosses it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import core
import kcm_tui
from core import codes
from core.errors import KcmError, crosses_wire, wire_class

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"core.keyholder.__main__"}


def _modules(pkg: object) -> Iterator[str]:
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):  # type: ignore[attr-defined]
        if info.name not in SKIP:
            yield info.name


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    out: set[type[BaseException]] = set()
    todo = [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out:
                out.add(sub)
                todo.append(sub)
    return out


def _project_exceptions() -> list[type[BaseException]]:
    for name in [*_modules(core), *_modules(kcm_tui)]:
        importlib.import_module(name)
    return sorted(
        (c for c in _subclasses(Exception) if c.__module__.split(".")[0] in ("core", "kcm_tui")),
        key=lambda c: f"{c.__module__}.{c.__qualname__}",
    )


def _source_codes() -> dict[str, list[str]]:
    """Code literals written in core/ and kcm_tui/ (where they are)."""
    found: dict[str, list[str]] = {}
    files = [*sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "kcm_tui").rglob("*.py"))]
    for path in files:
        if path.name == "codes.py" and path.parent.name == "core":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "code":
                values.append(node.value)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "code" for t in node.targets
            ):
                values.append(node.value)
            elif isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "code"
                ]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    found.setdefault(v.value, []).append(f"{path.relative_to(ROOT)}:{v.lineno}")
    return found


def test_every_project_exception_has_the_one_root_and_a_listed_code() -> None:
    exceptions = _project_exceptions()
    assert len(exceptions) > 40  # the families were found
    private = {"_Answered"}  # the sandbox's internal control flow, never raised out
    stray = [
        f"{c.__module__}.{c.__qualname__}"
        for c in exceptions
        if not issubclass(c, KcmError) and c.__name__ not in private
    ]
    assert not stray, f"exceptions outside the KcmError root: {stray}"
    unlisted = [
        f"{c.__module__}.{c.__qualname__} ({c.code})"
        for c in exceptions
        if issubclass(c, KcmError) and c.code not in codes.CODES
    ]
    assert not unlisted, f"codes missing from core.codes: {unlisted}"


def test_every_code_in_the_source_is_listed_and_every_listed_code_is_used() -> None:
    found = _source_codes()
    missing = {c: where for c, where in found.items() if c not in codes.CODES}
    assert not missing, f"codes used but not listed in core.codes: {missing}"
    everything = "\n".join(
        p.read_text()
        for base in ("core", "kcm_tui")
        for p in (ROOT / base).rglob("*.py")
        if p != ROOT / "core" / "codes.py"
    )
    stale = [c for c in codes.CODES if f'"{c}"' not in everything and c != "error"]
    assert not stale, f"listed in core.codes but used nowhere: {stale}"


def test_entries_say_what_it_means_and_what_to_do() -> None:
    for entry in codes.CODES.values():
        assert entry.meaning.strip() and entry.action.strip(), entry.code
        assert entry.action.rstrip()[-1] in ".!)", entry.code
        assert entry.code == entry.code.lower() and " " not in entry.code


def test_family_and_action_lookup() -> None:
    assert codes.family("card-pin-incorrect") is codes.Family.CARRIER
    assert codes.family("other-set") is codes.Family.SHARE
    assert codes.family("intent-refused") is codes.Family.INTENT
    assert codes.family("no-such-code") is codes.Family.SYSTEM  # the root's entry
    assert codes.message_with_action("wrong PIN: 2 tries left", "card-pin-incorrect") == (
        "wrong PIN: 2 tries left. Press Enter and type the PIN again on the keyholder's screen (the card counts the wrong tries)."
    )
    # a code whose action repeats the message adds nothing to it
    assert codes.message_with_action("no camera", "carrier") == "no camera"


def test_carriers_and_keyholder_share_the_root_not_each_other() -> None:
    from core.carriers import errors as carrier_errors
    from core.keyholder import errors as keyholder_errors

    assert not issubclass(carrier_errors.CarrierError, keyholder_errors.KeyholderError)
    assert issubclass(carrier_errors.CarrierError, KcmError)
    # both cross the keyholder pipe and come back as the same class, by code
    assert wire_class("card-pin-incorrect") is carrier_errors.CardPinIncorrect
    assert keyholder_errors.error_class("no-key") is keyholder_errors.NoMasterKey
    # a code no class registered comes back as a KeyholderError carrying that code
    assert keyholder_errors.error_class("other-set") is keyholder_errors.KeyholderError


def test_error_reply_sends_code_message_and_set_but_never_a_foreign_text() -> None:
    from core.carriers.errors import WrongCard
    from core.keyholder.ops_shares import SharesError
    from core.keyholder.server import error_reply
    from core.seal.envelope import EnvelopeError

    assert error_reply(SharesError("belongs to set 7", code="other-set", set_id="7")) == {
        "code": "other-set",
        "message": "belongs to set 7",
        "set_id": "7",
    }
    assert error_reply(WrongCard("card 1 is not of this set")) == {
        "code": "card-wrong-card",
        "message": "card 1 is not of this set",
    }
    for foreign in (ValueError("zebra words here"), EnvelopeError("header quotes data")):
        reply = error_reply(foreign)
        assert reply["code"] == "internal"
        assert "zebra" not in reply["message"] and "quotes" not in reply["message"]
    assert not crosses_wire(EnvelopeError("x"))


@pytest.mark.parametrize("code", ["other-set", "duplicate"])
def test_a_refused_share_crosses_the_real_pipe_with_its_set_id(code: str) -> None:
    """The set a refused share belongs to arrives as a field: nobody parses the message."""
    import os

    from core.keyholder import ops_shares
    from core.keyholder.client import KeyholderClient
    from core.keyholder.errors import KeyholderError
    from tests.support.slip39 import reference_shares

    first, second = reference_shares(2)
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kh:
        ops_shares.client_recovery_begin(kh, identifier=first.identifier)
        share = first.mnemonics[0] if code == "duplicate" else second.mnemonics[0]
        if code == "duplicate":
            _type_and_add(kh, first.mnemonics[0])
        with pytest.raises(KeyholderError) as info:
            _type_and_add(kh, share)
    assert info.value.code == code
    expected = first.identifier if code == "duplicate" else second.identifier
    assert info.value.set_id == str(expected)


def _type_and_add(kh: object, mnemonic: str) -> None:
    from core.keyholder import ops_shares

    words = mnemonic.split()
    ops_shares.client_entry_begin(kh, len(words))
    for pos, w in enumerate(words, 1):
        ops_shares.client_entry_word(kh, pos, memoryview(bytearray(w.encode())))
    fin = ops_shares.client_entry_finish(kh)
    assert fin["status"] == "ok", fin
    ops_shares.client_add_share(kh)
