"""Nothing secret enters the journal or any exported file.

Runs full ceremonies and searches the journal database, its side files (-journal, -wal,
-shm), the JSON Lines, the transcript, the manifests and every exported file for every
encoding of the key and of each share (raw, hex both cases, base64 standard and URL-safe,
with and without padding, and the share's own text).

* with the KeyholderDouble TEST DOUBLE (whose share payloads even carry the key in hex):
  proves the engine never writes what passes through it (share payloads) or what the
  keyholder holds;
* with the real keyholder: full genesis (shares shown on a pty "custodian terminal") and
  unseal-and-seal (three shares typed); the key is rebuilt in the test with the reference
  ``shamir-mnemonic`` package from three other shares and checked against the manifest's
  fingerprint before searching for it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from pathlib import Path

from shamir_mnemonic import combine_mnemonics
from shamir_mnemonic.share import Share

from core.ceremony.engine import Ceremony, CeremonyState, ClientKeyholder
from core.crypto.fingerprint import derive_fingerprint
from core.keyholder.client import KeyholderClient
from core.words import wordlist
from tests.support.custodian import CustodianTerminal, typed
from tests.support.engine import SCRIPTS, drive, ok_preflight, start
from tests.support.keyholder_double import KeyholderDouble
from tests.support.keyholders import run_genesis


def encodings(secret: bytes) -> list[bytes]:
    """Every encoding of a secret we search for."""
    out = [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]
    return out


def files_to_search(ws: Path) -> list[Path]:
    found = [p for p in ws.rglob("*") if p.is_file() and "recipients" not in p.parts]
    assert any(p.name == "journal.db" for p in found)
    return found


def search(files: Iterable[Path], needles: Iterable[bytes]) -> list[str]:
    hits = []
    needles = list(needles)
    for f in files:
        data = f.read_bytes()
        for n in needles:
            if n and n in data:
                hits.append(f"{f.name} contains {n[:12]!r}...")
    return hits


def test_no_secret_in_journal_or_exports_double(workspace: Path) -> None:
    kh = KeyholderDouble()
    g = start("genesis", workspace, kh)
    drive(g)
    key = bytes.fromhex(kh.issued[g.manifest["set_id"]][0]["key"])  # type: ignore[index]
    tokens = kh.issued[g.manifest["set_id"]]  # type: ignore[index]

    u = start("unseal-and-seal", workspace, KeyholderDouble())
    drive(u, shares=[tokens[1], tokens[3], tokens[4]])

    files = files_to_search(workspace)
    assert any(p.suffix == ".jsonl" for p in files) and any(p.suffix == ".md" for p in files)
    needles = encodings(key) + [json.dumps(t, sort_keys=True).encode() for t in tokens]
    assert search(files, needles) == []


def share_encodings(mnemonic: str) -> list[bytes]:
    """A share as text (several separators), as word indices, and as its share value."""
    words = mnemonic.split()
    wl = wordlist()
    indices = b"".join(wl.index(w).to_bytes(2, "big") for w in words)
    value = Share.from_mnemonic(mnemonic).value
    out = [sep.join(words).encode() for sep in (" ", "\n", ",", ", ", "-")]
    out += [" ".join(w[:4] for w in words).encode()]  # 4-letter prefixes
    out += encodings(indices) + encodings(value)
    return out


def test_no_secret_in_journal_or_exports_real_keyholder(
    workspace: Path,
    terminal: CustodianTerminal,
) -> None:
    g = run_genesis(workspace, terminal)
    shares = list(terminal.shares)
    assert len(shares) == 5
    with KeyholderClient.start(allow_unlocked=os.geteuid() != 0) as kc:
        u = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", workspace, ClientKeyholder(kc), preflight=ok_preflight
        )
        drive(u, shares=[typed(shares[i]) for i in (1, 3, 4)])
    assert u.state is CeremonyState.COMPLETED

    # the key, rebuilt here with the reference implementation from three shares
    key = combine_mnemonics([shares[0], shares[2], shares[3]])
    assert len(key) == 32
    fp = derive_fingerprint(memoryview(bytearray(key)))
    assert fp.hex == g.manifest["fingerprint"]  # type: ignore[index]

    files = files_to_search(workspace)
    names = {p.name for p in files}
    assert {"journal.db", "journal.jsonl", "transcript.md", "masterkey-kms.sealed.json"} <= names
    needles = encodings(key)
    for m in shares:
        needles += share_encodings(m)
    assert search(files, needles) == []


def test_search_finds_a_planted_secret(tmp_path: Path) -> None:
    key = bytes(range(32))
    f = tmp_path / "journal.db"
    f.write_bytes(b"header" + base64.urlsafe_b64encode(key).rstrip(b"=") + b"trailer")
    assert search([f], encodings(key))
    assert not search([f], encodings(bytes(32)))
