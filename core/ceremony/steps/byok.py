"""The ``byok`` step: the MasterKey wrapped for a cloud KMS or Vault import (issue 16).

Three moves, each journaled, none with a secret in it:

1. ``perform()`` (first call) reads the provider's wrapping public key (and AWS's import
   token) from the medium through the workspace's descriptors (size cap, no link followed),
   checks it (RSA, at least 3072 bits, e 65537, the size the method needs), and shows its
   fingerprint: the SHA-256 of its SubjectPublicKeyInfo, as hex and as the 26 words read
   aloud. For AWS and GCP the room also gives when the import parameters / the import job
   were obtained (``window_start_utc``): the import window is shown before anything is
   wrapped, and an expired window is refused.
2. ``confirm(witness, ...)``: the named witness compares the words with the provider's copy
   (the console, ``aws kms get-parameters-for-import``, ``gcloud kms import-jobs
   describe``...). What the witness confirmed (their typed copy, or the words shown) goes
   with the request: the **keyholder** recomputes the fingerprint from the key it is asked
   to wrap to, and refuses a mismatch (``core.keyholder.ops_seal``).
3. ``perform()`` (again) asks the keyholder to wrap the MasterKey; the import file(s) and
   ``<provider>-import.json`` are written to the export medium (never overwriting, read
   back, verified) in the step's folder, and the journal records every file's SHA-256, the
   method, the destination, the wrapping key's fingerprint and the validity window.

The key bytes read in move 1 are the ones wrapped to in move 3 (kept in memory, not read
again), so a medium swapped in between changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from core.ceremony.errors import EngineError, StepFailedError
from core.ceremony.facts import sha256_hex
from core.ceremony.rules import byok_methods
from core.ceremony.state import StepRun
from core.ceremony.steps.base import CeremonyBase
from core.safeio import MAX_KEY_FILE, SafeIOError
from core.seal import byok as _byok
from core.words import to_words

__all__ = ["BYOK_TOKEN_LIMIT", "WINDOWED", "byok_inputs", "do_byok"]

#: Largest import token read from the medium (AWS's is about 1.5 KiB).
BYOK_TOKEN_LIMIT = 64 * 1024
#: Providers whose import window starts when the parameters / import job were obtained.
WINDOWED = ("aws", "gcp")
#: How far in the future a given window start may be (clock skew between the online
#: workstation that downloaded the parameters and this one).
_SKEW = timedelta(minutes=10)


def _read(c: CeremonyBase, rel: str, limit: int, what: str) -> bytes:
    try:
        return c.ws.read(rel, limit=limit)
    except SafeIOError as exc:
        raise StepFailedError(f"{what} {rel}: {exc.message}") from None
    except FileNotFoundError:
        raise StepFailedError(
            f"{what} {rel} is not on the medium: copy it there from the provider (see the runbook)"
        ) from None
    except OSError as exc:
        raise StepFailedError(f"cannot read {what} {rel}: {exc.strerror}") from None


def _parse_utc(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise EngineError(
            "give the time the import parameters were obtained in UTC, like 2026-01-31T12:00:00Z"
        ) from None


def byok_inputs(run: StepRun) -> dict[str, Any]:
    """What a ``byok`` step asks for before it shows the fingerprint: ``window_start_utc``
    for AWS (when GetParametersForImport ran) and GCP (when the import job was created)."""
    provider = str(run.step.params["provider"])
    return {"window_start_utc": provider in WINDOWED}


def _show(c: CeremonyBase, run: StepRun, window_start_utc: str) -> dict[str, Any]:
    params = run.step.params
    provider = str(params["provider"])
    method = str(params.get("method") or byok_methods(provider)[0])
    start = ""
    until = ""
    if provider in WINDOWED:
        if not window_start_utc:
            raise EngineError(
                "when were the import parameters obtained (AWS GetParametersForImport) or the "
                "import job created (GCP)? Give window_start_utc in UTC"
            )
        t = _parse_utc(window_start_utc)
        now = datetime.now(UTC)
        if t > now + _SKEW:
            raise EngineError(
                f"{window_start_utc} is in the future: check the time the parameters were "
                "obtained (UTC) and this workstation's clock"
            )
        start = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        until = _byok.validity_until(provider, t)
        if datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= now:
            raise StepFailedError(
                f"the {provider} import window ended at {until}: get new import parameters "
                "from the provider, copy them to the medium and retry this step"
            )
    key_bytes = _read(c, str(params["wrapping_key_file"]), MAX_KEY_FILE, "the wrapping key")
    try:
        key = _byok.load_wrapping_key(key_bytes)
    except _byok.ByokError as exc:
        raise StepFailedError(f"{params['wrapping_key_file']}: {exc.message}") from None
    need = {"vault": _byok.VAULT_WRAPPING_BITS}.get(provider)
    if provider == "gcp":
        need = int(_byok.GCP_METHODS[method][2])
    if need and key.key_size != need:
        raise StepFailedError(
            f"{params['wrapping_key_file']} is RSA-{key.key_size} but {provider} {method} needs "
            f"RSA-{need}: wrong wrapping key file, or the script names the wrong method"
        )
    token = b""
    if provider == "aws":
        token = _read(c, str(params["import_token_file"]), BYOK_TOKEN_LIMIT, "the import token")
        if not token:
            raise StepFailedError(f"{params['import_token_file']} is empty: copy the ImportToken")
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fp = sha256_hex(spki)
    c.byok_pending[run.step_id] = {"wrapping_key": key_bytes, "import_token": token}
    run.display = {
        "subject": f"byok:{provider}",
        "provider": provider,
        "method": method,
        "fingerprint": fp,
        "words": to_words(bytes.fromhex(fp)),
        "bits": key.key_size,
        "destination": _destination(run),
        "window_start_utc": start,
        "valid_until_utc": until,
    }
    results = {
        "provider": provider,
        "method": method,
        "wrapping_key_file": str(params["wrapping_key_file"]),
        "wrapping_key_sha256": fp,
        "wrapping_key_bits": key.key_size,
        "file_sha256": sha256_hex(key_bytes),
        **({"import_token_sha256": sha256_hex(token)} if token else {}),
        "window_start_utc": start,
        "valid_until_utc": until,
        "stage": "shown: waiting for the witness",
    }
    return c._result(run, results, performed=False)


def _destination(run: StepRun) -> dict[str, str]:
    p = run.step.params
    keys = ("key_id", "import_job", "key_name", "kek_kid", "file_name")
    return {k: str(p[k]) for k in keys if k in p}


def do_byok(c: CeremonyBase, run: StepRun, window_start_utc: str = "") -> dict[str, Any]:
    """Handler of the ``byok`` step (see the module docstring for its three moves)."""
    if c.key_facts is None:
        raise StepFailedError("no key is held: generate or recover it first")
    c._require_verified_key("export it for BYOK")
    if run.performed:
        return dict(run.results)
    if not run.confirmed_by or run.step_id not in c.byok_pending:
        return _show(c, run, window_start_utc)
    return _wrap(c, run)


def _wrap(c: CeremonyBase, run: StepRun) -> dict[str, Any]:
    params = run.step.params
    provider = str(run.display["provider"])
    method = str(run.display["method"])
    pending = c.byok_pending[run.step_id]
    conf = c.byok_confirmations[run.step_id]
    fields: dict[str, Any]
    if provider == "aws":
        fields = {
            "import_token": pending["import_token"],
            "wrapping_algorithm": method,
            "key_id": str(params["key_id"]),
            "parameters_obtained_utc": str(run.display["window_start_utc"]),
        }
    elif provider == "gcp":
        fields = {
            "import_method": method,
            "import_job": str(params["import_job"]),
            "key_name": str(params["key_name"]),
            "job_created_utc": str(run.display["window_start_utc"]),
        }
    elif provider == "azure":
        fields = {"kek_kid": str(params["kek_kid"])}
        if "file_name" in params:
            fields["file_name"] = str(params["file_name"])
    else:
        fields = {"key_name": str(params["key_name"]), "hash_function": method}
    export = getattr(c.keyholder, "byok_export", None)
    if not callable(export):
        raise StepFailedError("this keyholder cannot export for BYOK")
    reply: dict[str, Any] = export(
        provider,
        wrapping_key=pending["wrapping_key"],
        witness=str(conf["witness"]),
        confirmed_fingerprint=str(conf["fingerprint"]),
        fields=fields,
    )
    files: dict[str, bytes] = {str(k): bytes(v) for k, v in reply["files"].items()}
    prefix = "PRACTICE-" if c.practice else ""
    folder = str(params.get("folder") or f"byok-{provider}")
    if c.practice and not folder.startswith(prefix):
        folder = prefix + folder
    if folder in c.written:
        raise StepFailedError(
            f"the export folder {folder} was already written in this ceremony: give each byok "
            "step its own folder"
        )
    written = c.exporter.write(folder, files, ceremony_id=c.ceremony_id)
    c.written[folder] = written
    c.byok_exports[run.step_id] = files
    del c.byok_pending[run.step_id]
    record = reply.get("record") or {}
    medium = getattr(c, "_medium_verdict", None)
    if callable(medium):
        medium(run)
    return c._result(
        run,
        {
            "provider": provider,
            "method": str(reply.get("method", method)),
            "folder": folder,
            "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in written},
            "metadata": f"{provider}-import.json",
            "valid_until_utc": str(reply.get("valid_until_utc", "")),
            "wrapping_key_sha256": str((record.get("wrapping_key") or {}).get("sha256", "")),
            "masterkey_fingerprint": str(
                (record.get("target") or {}).get("masterkey_fingerprint", "")
            ),
            "confirmed_by": str(conf["witness"]),
            "stage": "wrapped and written",
        },
    )
