"""``kcm-ceremony envelope inspect FILE``: a sealed envelope's header and checks, as text
(:mod:`core.seal.envelope` reads and verifies it)."""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from core.seal.envelope import (
    FORMAT,
    Envelope,
    EnvelopeError,
    parse,
    verify_signature,
)

__all__ = ["cli_main", "inspect_text"]


def inspect_text(env: Envelope, *, file_sha256: str = "", now: datetime | None = None) -> str:
    """Human-readable summary of an envelope's public parts and the signature verdict
    (and, for a transitional envelope, its window as of ``now``)."""
    h = env.header
    r = h["recipient"]
    lines = [
        f"format           {FORMAT} v{h['format_version']} (well-formed: every reader rule holds)",
        f"kind             {h['kind']}",
        f"cluster / region {h['cluster_id']} / {h['region_id']}",
        f"ceremony         {h['ceremony_id']}   created {h['created_utc']}",
        f"KCV              {' '.join(h['kcv'][i : i + 4] for i in range(0, 16, 4))}",
        f"MasterKey fp     {h['masterkey_fingerprint']}",
        f"payload          {h['payload_encoding']}, {h['payload_length']} bytes",
        f"recipient        {r['name']} ({r['kind']})",
        f"  key id         {r['key_id']}"
        + (f"  version {r['key_version']}" if r["key_version"] else ""),
        f"  wrap           {r['alg']}, {len(env.wrapped_key)}-byte wrapped data key",
        f"  fingerprint    {r['fingerprint']}",
    ]
    if h.get("shard"):
        lines.append(
            "shard            " + ", ".join(f"{k}={v}" for k, v in sorted(h["shard"].items()))
        )
    t = env.transition
    if t is not None:
        succ = t["successor_fingerprint"]
        lines += [
            "transition       TRANSITIONAL envelope of the OLD MasterKey (rotated out): "
            + (
                f"EXPIRED at {t['expires_utc']}, do not use it"
                if env.expired(now)
                else f"valid until {t['expires_utc']}"
            ),
            f"  successor KCV  {' '.join(succ[i : i + 4] for i in range(0, 16, 4))}",
            f"  successor fp   {succ}",
        ]
    if env.signature is None:
        lines.append(
            "signature        NONE (shown because of --allow-unsigned): nothing proves who "
            "sealed this envelope or that it is unaltered; do not use it"
        )
    else:
        ok = verify_signature(env)
        lines.append(
            "signature        Ed25519 by the MasterKey signing key: "
            + ("VALID" if ok else "INVALID (header or ciphertext altered, or another key)")
        )
    if file_sha256:
        lines.append(f"file SHA-256     {file_sha256}")
    return "\n".join(lines)


USAGE: Final = (
    "usage: kcm-ceremony envelope inspect [--allow-unsigned] [--at YYYY-MM-DDTHH:MM:SSZ] "
    "FILE [FILE...]"
)


def cli_main(argv: list[str]) -> int:
    """``kcm-ceremony envelope inspect [--allow-unsigned] FILE...``: check and show envelopes.

    Exit status 0 when every file follows every reader rule of docs/formats.md and its
    signature verifies; 1 otherwise (the reason on stderr); 2 on usage errors.
    ``--allow-unsigned`` shows the header of an envelope that has no signature (exit 0,
    marked NONE); it never excuses an invalid signature. A transitional envelope
    (version 2) whose window has ended is shown, marked EXPIRED, and exits 1: no reader
    may use it. ``--at TIME`` judges that window at another time than now (for planning:
    "will it still open on the day of the re-wrap?").
    """
    args = list(argv)
    if not args or args[0] != "inspect" or args[1:2] in (["-h"], ["--help"]):
        print(USAGE, file=sys.stderr)
        return 0 if args[1:2] in (["-h"], ["--help"]) else 2
    files = args[1:]
    allow_unsigned = "--allow-unsigned" in files
    files = [f for f in files if f != "--allow-unsigned"]
    at: datetime | None = None
    if "--at" in files:
        i = files.index("--at")
        value = files[i + 1] if i + 1 < len(files) else ""
        try:
            at = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            print("--at needs a time like 2026-01-31T12:00:00Z", file=sys.stderr)
            return 2
        del files[i : i + 2]
    unknown = [f for f in files if f.startswith("--")]
    if unknown or not files:
        print(f"unknown option {unknown[0]}" if unknown else USAGE, file=sys.stderr)
        return 2
    status = 0
    for name in files:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read ({exc.strerror})", file=sys.stderr)
            status = 1
            continue
        try:
            env = parse(data, allow_unsigned=allow_unsigned, now=at, allow_expired=True)
        except EnvelopeError as exc:
            print(f"{name}: NOT a valid envelope: {exc}", file=sys.stderr)
            status = 1
            continue
        if len(files) > 1:
            print(f"== {name}")
        print(inspect_text(env, file_sha256=hashlib.sha256(data).hexdigest(), now=at))
        if env.expired(at):
            assert env.transition is not None
            print(
                f"{name}: EXPIRED: this transitional envelope of the old MasterKey could be "
                f"used until {env.transition['expires_utc']} only; do not use it",
                file=sys.stderr,
            )
            status = 1
        if env.signature is not None and not verify_signature(env):
            print(
                f"{name}: the signature does not verify: the envelope was altered or was not "
                "sealed by the holder of this MasterKey; do not use it",
                file=sys.stderr,
            )
            status = 1
    return status
