"""Benchmark: refusing an oversized key file (issue 12) against reading it.

A stick can carry a 64 MiB "public key". Before issue 12 the engine read it whole and
parsed it (3.0 s and 176 MB here; the issue measured 5.4 s and 117 MB). Now every key-file
read is capped (core.safeio.MAX_KEY_FILE) and the size is checked with fstat before a
byte is read. Prints the time to refuse it through the engine's recipient loader and the
recipients-file reader, next to the time that reading the file whole and parsing it with
``cryptography`` (what the code did before) takes, and the time to read and parse a genuine
RSA-3072 public key (ratios). ``openssl pkey`` was tried as the reference tool and dropped:
on this malformed 64 MiB PEM it ran for minutes.

Target: refused in under 50 ms.

Run: ``.venv/bin/python benchmarks/bench_key_file_cap.py`` (``make bench``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.ceremony.engine import StepFailedError, WorkspaceRecipients  # noqa: E402
from core.ceremony.script import load_script  # noqa: E402
from core.seal import recipients as R  # noqa: E402

SIZE = 64 << 20
RUNS = 20


def _median_ms(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            pass
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        (ws / "recipients").mkdir(parents=True)
        big = ws / "recipients" / "kms-openkcm-boot.pem"
        with open(big, "wb") as fh:
            chunk = b"-----BEGIN PUBLIC KEY-----\n" + b"A" * (1 << 20)
            for _ in range(SIZE // len(chunk) + 1):
                fh.write(chunk)
        good = Path(tmp) / "good.pem"
        good.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=3072)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        src = WorkspaceRecipients(ws, load_script(ROOT / "ceremony_scripts" / "genesis.toml"))
        try:
            src.load("kms")
            raise SystemExit("the 64 MiB key file was accepted")
        except StepFailedError as exc:
            print(f"refusal: {exc}")
        engine_ms = _median_ms(lambda: src.load("kms"))
        reader_ms = _median_ms(lambda: R.read_key_file(big))
        parse_ms = _median_ms(lambda: R.read_key_file(good))
        print(f"64 MiB key file refused: engine {engine_ms:.3f} ms, reader {reader_ms:.3f} ms "
              f"(median of {RUNS}); target < 50 ms: {'met' if max(engine_ms, reader_ms) < 50 else 'MISSED'}")
        print(f"a genuine RSA-3072 PEM read and parsed: {parse_ms:.3f} ms "
              f"(refusal / genuine parse = {engine_ms / parse_ms:.2f}x)")
        def read_and_parse_uncapped() -> None:  # what the code did before the cap
            serialization.load_pem_public_key(big.read_bytes())

        ref_ms = _median_ms(read_and_parse_uncapped, runs=3)
        print(f"reading it whole and parsing it with cryptography (the old path): {ref_ms:.0f} ms "
              f"(the refusal is {ref_ms / engine_ms:.0f}x faster: it never reads the file)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
