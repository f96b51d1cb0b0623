"""The continuity statement of a MasterKey rotation (docs/formats.md section 10).

``independent_check`` below is written from the document alone (sections 10.2 to 10.4):
Python's ``json``, ``base64`` and ``cryptography``'s Ed25519, nothing of the project. It
must accept the worked example and a statement made by the real keyholder, and refuse the
statement when either signature or any field is changed (every leaf, every member added
or removed). The project's own reader (``core.continuity.verify``) and the command
``kcm-ceremony rotation verify`` must agree with it on every case.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core import continuity
from kcm_tui import cli
from tests.support import rotation as rs
from tests.support.continuity_check import Rejected, independent_check

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "rotation-v1"
OLD_FP = "30bf8618fc99fe8e0e80e8328f0681e3ab18c4a227e695420298139457f10af3"
NEW_FP = "8ef11232ea21bf6a5145fbe4b19b9b2e92fc19995e44230fdce1bc4e0f530481"


# ----------------------------------------------------------------------------- mutations


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    else:
        yield path, obj


def _changed(value: Any, path: tuple[Any, ...]) -> list[Any]:
    """Plausible other values for a leaf (still well-formed where possible)."""
    if value is None:
        return ["2026-02-01T12:00:00Z"]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1] if value > 1 else [value + 1]
    assert isinstance(value, str)
    if path[-1] == "value":  # a signature: another valid base64 of 64 bytes
        raw = bytearray(base64.b64decode(value))
        raw[0] ^= 1
        other = bytearray(raw)
        other[63] ^= 0x80
        return [base64.b64encode(bytes(raw)).decode(), base64.b64encode(bytes(other)).decode()]
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value):
        return [value[:-3] + f"{(int(value[-3:-1]) + 1) % 60:02d}Z"]
    if re.fullmatch(r"[0-9a-f]+", value):
        return [value[:-1] + ("0" if value[-1] != "0" else "1")]
    return [value + "x", value[:-1]]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return out


def _dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode("ascii")


def mutations(doc: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Every leaf changed, every member removed, a member added at every level."""
    for path, value in _leaves(doc):
        for other in _changed(value, path):
            yield f"{'.'.join(map(str, path))}={other!r}", _dump(_set(doc, path, other))
    objects = [((), doc)] + [(p, v) for p, v in _walk_objects(doc)]
    for path, obj in objects:
        for k in obj:
            smaller = copy.deepcopy(doc)
            t: Any = smaller
            for p in path:
                t = t[p]
            del t[k]
            yield f"without {'.'.join(map(str, (*path, k)))}", _dump(smaller)
        bigger = copy.deepcopy(doc)
        t = bigger
        for p in path:
            t = t[p]
        t["comment"] = "added"
        yield f"{'.'.join(map(str, path)) or 'top'} + comment", _dump(bigger)
    yield "practice added", _dump({**doc, "practice": True})
    yield (
        "groups reordered",
        _dump(
            _set(doc, ("new", "policy", "groups"), [[1, 3], *doc["new"]["policy"]["groups"][1:]])
        ),
    )
    yield (
        "signatures swapped",
        _dump(
            _set(
                doc,
                ("signatures",),
                {"old": doc["signatures"]["new"], "new": doc["signatures"]["old"]},
            )
        ),
    )
    yield "duplicate member", _dump(doc).replace(b'"version": 1', b'"version": 1,\n  "version": 1')
    yield "version 1.0", _dump(doc).replace(b'"version": 1', b'"version": 1.0')


def _walk_objects(
    obj: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                yield (*path, k), v
            yield from _walk_objects(v, (*path, k))


# ----------------------------------------------------------------------------- the worked example


def test_worked_example_passes_the_independent_check_and_ours() -> None:
    data = (EXAMPLE / "statement.json").read_bytes()
    expected = json.loads((EXAMPLE / "expected.json").read_text())
    doc = independent_check(data, OLD_FP)
    assert doc["new"]["fingerprint"] == NEW_FP == expected["new_fingerprint_hex"]
    independent_check(data, OLD_FP[:16])  # the KCV from the paper log is enough
    st = continuity.verify(data, old_fingerprint=OLD_FP, new_fingerprint=NEW_FP)
    assert st.new.fingerprint == NEW_FP and st.old.set_id == 4821 and st.new.set_id == 1187
    body = {k: v for k, v in doc.items() if k != "signatures"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert message.decode() == expected["message_utf8"]
    assert hashlib.sha256(message).hexdigest() == expected["message_sha256"]
    assert hashlib.sha256(data).hexdigest() == expected["statement_sha256"]
    sig_old = base64.b64decode(doc["signatures"]["old"]["value"]).hex()
    assert sig_old == expected["signature_old_hex"]
    # the doc's table quotes these values: it must not drift from the files
    formats = (ROOT / "docs" / "formats.md").read_text()
    for key in ("old_fingerprint_hex", "new_fingerprint_hex", "message_sha256", "signature_old_hex",
                "signature_new_hex", "signed_bytes_old_sha256", "signed_bytes_new_sha256",
                "statement_sha256", "old_kcv_words", "new_kcv_words", "message_utf8"):  # fmt: skip
        assert expected[key] in formats, f"docs/formats.md 10.5 lacks {key}"


def test_worked_example_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "mkrot", ROOT / "docs/examples/make_rotation_example.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path)
    mod.main()
    assert (tmp_path / "statement.json").read_bytes() == (EXAMPLE / "statement.json").read_bytes()
    assert (tmp_path / "expected.json").read_bytes() == (EXAMPLE / "expected.json").read_bytes()


def test_the_doc_snippet_runs_on_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    formats = (ROOT / "docs" / "formats.md").read_text()
    section = formats[formats.index("### 10.5") : formats.index("### 10.6")]
    snippet = section[section.index("```python") + len("```python") :]
    snippet = snippet[: snippet.index("```")]
    monkeypatch.chdir(EXAMPLE)
    exec(compile(snippet, "formats.md#10.5", "exec"), {})  # raises if the snippet is wrong
    tampered = (
        (EXAMPLE / "statement.json").read_bytes().replace(b'"set_id": 1187', b'"set_id": 1188')
    )
    with pytest.raises(InvalidSignature):
        exec(compile(snippet.replace('open("statement.json")', "__import__('io').BytesIO(DATA)"),
                     "formats.md#10.5", "exec"), {"DATA": tampered})  # fmt: skip


def test_every_change_to_the_example_is_refused_by_both_readers() -> None:
    data = (EXAMPLE / "statement.json").read_bytes()
    doc = json.loads(data)
    seen = 0
    for what, bad in mutations(doc):
        seen += 1
        with pytest.raises(Rejected):
            independent_check(bad, OLD_FP)
            pytest.fail(f"independent check accepted: {what}")
        with pytest.raises(continuity.StatementError):
            continuity.verify(bad, old_fingerprint=OLD_FP)
            pytest.fail(f"core.continuity accepted: {what}")
    assert seen > 60
    # a valid statement over another old key: signatures fine, anchor wrong
    with pytest.raises(Rejected, match="not the one I know"):
        independent_check(data, NEW_FP)
    with pytest.raises(continuity.StatementError, match="not the one given"):
        continuity.verify(data, old_fingerprint=NEW_FP)


def test_padding_bits_of_a_signature_are_refused() -> None:
    doc = json.loads((EXAMPLE / "statement.json").read_bytes())
    v = doc["signatures"]["new"]["value"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    c = v[-3]
    # the char before "==" carries 2 data bits and 4 padding bits: set a padding bit
    other = (
        alphabet[alphabet.index(c) | 1]
        if alphabet.index(c) % 2 == 0
        else alphabet[alphabet.index(c) & ~1]
    )
    bad = _dump(_set(doc, ("signatures", "new", "value"), v[:-3] + other + "=="))
    assert base64.b64decode(v) == base64.b64decode(v[:-3] + other + "==")  # same bytes
    with pytest.raises(Rejected, match="canonical"):
        independent_check(bad, OLD_FP)
    with pytest.raises(continuity.StatementError):
        continuity.verify(bad, old_fingerprint=OLD_FP)


def test_a_statement_signed_by_a_stranger_is_refused() -> None:
    """An attacker with a key of their own writes a statement naming the victim's old
    fingerprint: both readers refuse it (the old signature is not the old key's)."""
    doc = json.loads((EXAMPLE / "statement.json").read_bytes())
    body = {k: v for k, v in doc.items() if k != "signatures"}
    attacker = Ed25519PrivateKey.generate()
    raw = attacker.public_key().public_bytes_raw().hex()
    body["new"] = {**body["new"], "fingerprint": raw, "kcv": raw[:16]}
    msg = continuity.message(body)
    forged = continuity.assemble(
        body,
        attacker.sign(b"openkcm-ceremony/v1/sign:rotation-old\x00" + msg),
        attacker.sign(b"openkcm-ceremony/v1/sign:rotation-new\x00" + msg),
    )
    data = continuity.serialise(forged)
    with pytest.raises(Rejected, match="old signature"):
        independent_check(data, OLD_FP)
    with pytest.raises(continuity.StatementError, match="old key's signature"):
        continuity.verify(data, old_fingerprint=OLD_FP)


# ----------------------------------------------------------------------------- the command


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["rotation", "verify", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_rotation_verify_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(EXAMPLE / "statement.json")
    expected = json.loads((EXAMPLE / "expected.json").read_text())
    code, text = _run(capsys, path, "--old-fingerprint", OLD_FP)
    assert code == 0 and ": OK:" in text and "8ef1 1232 ea21 bf6a" in text
    code, text = _run(capsys, path, "--old-fingerprint", expected["old_kcv_words"],
                      "--new-fingerprint", NEW_FP[:16])  # fmt: skip
    assert code == 0, text
    code, text = _run(capsys, path)
    assert code == 4 and "UNANCHORED" in text
    code, text = _run(capsys, path, "--old-fingerprint", NEW_FP)
    assert code == 1 and "FAILED" in text and "not the one given" in text
    code, text = _run(capsys, path, "--old-fingerprint", OLD_FP, "--new-fingerprint", OLD_FP)
    assert code == 1 and "new MasterKey" in text
    code, text = _run(capsys, path, "--old-fingerprint", "not a fingerprint")
    assert code == 2
    code, text = _run(capsys, str(tmp_path / "missing.json"), "--old-fingerprint", OLD_FP)
    assert code == 2 and "cannot read" in text
    bad = tmp_path / "bad.json"
    bad.write_bytes(
        (EXAMPLE / "statement.json").read_bytes().replace(b"eu-central-1", b"eu-central-2")
    )
    code, text = _run(capsys, str(bad), "--old-fingerprint", OLD_FP)
    assert code == 1 and "does not verify" in text


# ----------------------------------------------------------------------------- the real keyholder


@pytest.fixture(scope="module")
def made_by_keyholder() -> Iterator[tuple[bytes, rs.Rotation, dict[str, Any]]]:
    kh = rs.start()
    try:
        r = rs.begin_rotation(kh)
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = rs.rot.client_rotation_statement(
            kh, ceremony_id="rotate-test-0001", cluster_id="c1", region_id="r1",
            transition_expires_utc=expires,
        )  # fmt: skip
        yield bytes(out["statement"]), r, out
    finally:
        kh.close()


def test_a_statement_made_by_the_keyholder_passes_the_independent_check(
    made_by_keyholder: tuple[bytes, rs.Rotation, dict[str, Any]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    data, r, out = made_by_keyholder
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    doc = independent_check(data, r.old_fp)
    assert doc["new"]["fingerprint"] == r.new_fp
    assert doc["new"]["policy"] == {"group_threshold": 2, "groups": [[2, 3], [2, 3], [2, 3]]}
    assert doc["old"]["set_id"] == r.old_split["identifier"]
    assert r.new_split is not None and doc["new"]["set_id"] == r.new_split["identifier"]
    assert ("practice" in doc) is False
    seen = 0
    for what, bad in mutations(json.loads(data)):
        seen += 1
        with pytest.raises(Rejected):
            independent_check(bad, r.old_fp)
            pytest.fail(f"independent check accepted: {what}")
    assert seen > 60
    f = tmp_path / "rotation-statement.json"
    f.write_bytes(data)
    code, text = _run(
        capsys, str(f), "--old-fingerprint", r.old_fp[:16], "--new-fingerprint", r.new_fp
    )
    assert code == 0, text


def test_a_statement_without_a_transition_window() -> None:
    """No transition window: ``null``, and still signed over it."""
    kh = rs.start()
    try:
        r = rs.begin_rotation(kh)
        out = rs.rot.client_rotation_statement(
            kh, ceremony_id="rotate-test-0002", cluster_id="c1", region_id="r1"
        )
        data = bytes(out["statement"])
        doc = independent_check(data, r.old_fp)
        assert doc["transition_expires_utc"] is None
        bad = _dump(
            _set(json.loads(data), ("transition_expires_utc",), doc["created_utc"][:-3] + "01Z")
        )
        with pytest.raises(Rejected):
            independent_check(bad, r.old_fp)
    finally:
        kh.close()
