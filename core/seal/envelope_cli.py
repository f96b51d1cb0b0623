"""``kcm-ceremony envelope inspect FILE``: a sealed envelope's header and checks, as text
(:mod:`core.seal.envelope` reads and verifies it)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

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


def _time(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a UTC time like 2026-01-31T12:00:00Z"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kcm-ceremony envelope",
        description="Sealed envelopes (docs/formats.md): show and check them.",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="inspect")
    pi = sub.add_parser(
        "inspect",
        help="show a sealed envelope's header and check it",
        description="Show each envelope's public header (kind, cluster, ceremony, KCV, "
        "recipient, fingerprint) and check it: every reader rule of docs/formats.md and the "
        "MasterKey's Ed25519 signature. Exit status 0 when every file is valid and signed, 1 "
        "otherwise (the reason on stderr), 2 on usage errors.",
    )
    pi.add_argument("files", nargs="+", metavar="FILE", help="sealed envelope file(s)")
    pi.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="show an envelope that has no signature (marked NONE); never excuses an invalid one",
    )
    pi.add_argument(
        "--at",
        type=_time,
        metavar="YYYY-MM-DDTHH:MM:SSZ",
        help="judge a transitional envelope's window at this UTC time instead of now",
    )
    return p


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
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2
    files: list[str] = args.files
    allow_unsigned: bool = args.allow_unsigned
    at: datetime | None = args.at
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
