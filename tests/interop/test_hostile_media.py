"""Issue 12: a prepared USB stick (export medium or ceremony workspace) cannot redirect a
write, fake a verification or make the ceremony read something else.

Every test runs against a real mounted filesystem (a loop-mounted ext4 image, or a tmpfs
where loop devices are missing: tests/support/stick.py), as root, like the media fault
tests. Each attack below worked against the code before issue 12:

* a symbolic link planted at the export folder's name sent the sealed files to the live
  system's RAM disk, and the read-back followed the link and said "verified, safe to
  remove" (core/media.py reused an existing target);
* all 32,768 ``manifests/set-N.json.tmp`` names planted as links made the manifest rewrite
  overwrite any file as root (``_replace_file`` opened ``NAME.tmp`` with ``O_TRUNC`` and
  no ``O_NOFOLLOW``);
* a link at a recipient key or at ``ceremonies/`` was followed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from core import media as M
from core.ceremony.engine import (
    CardAccess,
    Ceremony,
    FolderExporter,
    StepFailedError,
    StepState,
)
from core.ceremony.model import StepKind
from core.ceremony.script import check_script
from tests.support.engine import SCRIPTS, ok_preflight, practice_pem, step_once
from tests.support.keyholder_double import KeyholderDouble
from tests.support.stick import Stick, mounted_stick, needs_root

pytestmark = [needs_root, pytest.mark.root]

FILES = {
    "masterkey-kms.sealed.json": b'{"format":"openkcm-envelope"}\n' * 40,
    "manifest-set-1234.json": b'{"set_id":"1234"}\n',
}
PRECIOUS = b"precious system file\n"


def _medium(stick: Stick) -> M.Medium:
    return M.Medium(stick.path, "KCM-USB", 1 << 26, 1 << 25, stick.fs, False, True, stick.device)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ---------------------------------------------------------------------- the export medium


def test_planted_export_folder_link_is_refused_not_followed(tmp_path: Path) -> None:
    live = tmp_path / "live-ram-disk"  # stands for the live system's own tmpfs
    live.mkdir()
    with mounted_stick(tmp_path) as stick:
        os.symlink(live, stick.path / "openkcm-genesis-1")
        refused: M.MediaError | None = None
        try:
            res = M.write_export(_medium(stick), FILES, ceremony_id="genesis-1")
        except M.MediaError as exc:
            refused = exc
        else:  # the old code: "verified, safe to remove", the files on the RAM disk
            assert not res.safe_to_remove, "said safe to remove"
        assert list(live.iterdir()) == [], "the export was redirected off the stick"
        assert type(refused).__name__ == "HostileMedium"
        assert re.search(r"openkcm-genesis-1 .*symbolic link", refused.message)
        assert "choose another" in refused.message.lower()
        assert os.path.islink(stick.path / "openkcm-genesis-1")  # named, left alone
        # another folder name on the same stick works, and lands on the stick's device
        res = M.write_export(_medium(stick), FILES, ceremony_id="genesis-1", directory="export-2")
        assert res.safe_to_remove
        dev = os.stat(stick.path).st_dev
        for name in FILES:
            assert os.stat(stick.path / "export-2" / name).st_dev == dev


def test_planted_link_below_the_export_folder_is_never_written_through(tmp_path: Path) -> None:
    """The folder exists already with links at the file and temporary names: it is not
    reused (a clash), nothing is written through the links."""
    victim = tmp_path / "victim"
    victim.write_bytes(PRECIOUS)
    with mounted_stick(tmp_path) as stick:
        d = stick.path / "openkcm-c"
        d.mkdir()
        for name in [*FILES, M.MANIFEST_NAME]:
            os.symlink(victim, d / name)
            os.symlink(victim, d / f".{name}.partial")
        with pytest.raises(M.NameClash, match="nothing is overwritten"):
            M.write_export(_medium(stick), FILES, ceremony_id="c")
    assert victim.read_bytes() == PRECIOUS


def test_verify_refuses_a_linked_file(tmp_path: Path) -> None:
    """Read-back through the export folder's descriptor: a file replaced by a link to an
    identical copy elsewhere is refused, not followed."""
    elsewhere = tmp_path / "copy"
    with mounted_stick(tmp_path) as stick:
        res = M.write_export(_medium(stick), FILES, ceremony_id="c")
        name = "masterkey-kms.sealed.json"
        elsewhere.write_bytes((res.directory / name).read_bytes())
        (res.directory / name).unlink()
        os.symlink(elsewhere, res.directory / name)
        with pytest.raises(M.VerifyFailed, match="symbolic link"):  # the old code followed it
            M.verify_export(res.directory, FILES)


def test_engine_export_to_a_stick_with_a_planted_link_fails_the_step(tmp_path: Path) -> None:
    """The whole path: the practice genesis exports to a chosen stick whose export folder
    name is a planted link. The step fails naming it; the screen never gets "safe to
    remove"; a retry on a clean stick works."""
    live = tmp_path / "live-ram-disk"
    live.mkdir()
    ws = tmp_path / "ws"
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "PRACTICE-kms.pem").write_bytes(practice_pem())
    with mounted_stick(tmp_path) as stick:
        os.symlink(live, stick.path / "PRACTICE-genesis-export")
        exporter = FolderExporter(tmp_path / "unused")
        exporter.use(_medium(stick))
        exporter.unmount = False
        c = Ceremony.load(
            SCRIPTS / "practice-genesis.toml", ws, KeyholderDouble(), exporter=exporter,
            preflight=ok_preflight,
        )  # fmt: skip
        while (run := c.current_step) is not None and run.kind is not StepKind.EXPORT:
            step_once(c)
        with pytest.raises(StepFailedError, match="PRACTICE-genesis-export on KCM-USB is a symbolic link"):
            c.perform()
        assert run is not None and run.state is StepState.FAILED
        assert exporter.last is None  # nothing says "safe to remove"
        assert list(live.iterdir()) == []
        os.unlink(stick.path / "PRACTICE-genesis-export")
        c.retry()
        c.perform()
        assert exporter.last is not None and exporter.last.safe_to_remove
        out = stick.path / "PRACTICE-genesis-export"
        assert out.is_dir() and not out.is_symlink()
        assert M.verify_export(out) == exporter.last.files


# ---------------------------------------------------------------------- the workspace


class CardDouble(KeyholderDouble):
    """The engine-logic double plus the card port: a card that keeps no data object, so
    the engine writes the sealed share file to ``card-shares/`` and rewrites the manifest
    (the two ``_replace_file`` calls of the old code)."""

    def write_card(
        self,
        member: int,
        card: CardAccess,
        *,
        commitment: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        bits: int,
        store_on_card: bool,
    ) -> dict[str, Any]:
        self.calls.append("write_card")
        fp = hashlib.sha256(f"card-key-{card.serial}".encode()).hexdigest()
        return {
            "card": {
                "serial": card.serial or "CARD-1",
                "key_fingerprint": fp,
                "key_id": "01",
                "bits": bits,
                "oaep_hash": "sha1",
                "stored_on_card": False,
                "verified": True,
            },
            "sealed": b'{"format":"openkcm-card-share/1","public":true}\n',
        }

    def list_cards(self, module: str) -> list[dict[str, Any]]:
        return [{"serial": "CARD-1", "label": "c1"}]

    def scanner_key(self, key: memoryview, t_us: int) -> dict[str, Any]:
        raise NotImplementedError


def _card_genesis_script(tmp_path: Path) -> Path:
    text = (SCRIPTS / "genesis.toml").read_text()
    text = text.replace('"DEMO-0001"', '"CARD-1"')
    text = text.replace(
        'display = ["screen", "qr", "card"]\n',
        'display = ["screen", "qr", "card"]\ncarriers = { c1 = "card" }\n'
        'card_module = "opensc"\ncard_data_object = false\n',
    )
    path = tmp_path / "genesis-card.toml"
    path.write_text(text)
    assert check_script(path) == []
    return path


def _workspace_on(stick: Stick, kms_pem: bytes) -> Path:
    ws = stick.path / "ws"
    (ws / "recipients").mkdir(parents=True)
    (ws / "recipients" / "kms-openkcm-boot.pem").write_bytes(kms_pem)
    return ws


@pytest.fixture(scope="module")
def kms_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_32768_planted_tmp_links_cannot_overwrite_a_file(tmp_path: Path, kms_pem: bytes) -> None:
    """The PoC: the set id has 15 bits, so a stick can carry a link for every possible
    ``manifests/set-N.json.tmp`` (and ``card-shares/...json.tmp``). A genesis whose card
    keeps no data object rewrites the manifest and writes the sealed share file: neither
    write may follow a planted link."""
    victim = tmp_path / "etc-shadow"
    victim.write_bytes(PRECIOUS)
    script = _card_genesis_script(tmp_path)
    with mounted_stick(tmp_path, inodes=70000) as stick:
        ws = _workspace_on(stick, kms_pem)
        (ws / "manifests").mkdir()
        (ws / "card-shares").mkdir()
        # short relative targets (like "/etc/shadow"): they fit in the inode
        target = os.path.relpath(victim, ws / "manifests")
        t0 = time.monotonic()
        for n in range(1 << 15):
            os.symlink(target, ws / "manifests" / f"set-{n}.json.tmp")
            os.symlink(target, ws / "card-shares" / f"card-share-set-{n}-CARD-1.sealed.json.tmp")
        planted = time.monotonic() - t0
        kh = CardDouble()
        c = Ceremony.load(script, ws, kh, preflight=ok_preflight)
        while (run := c.current_step) is not None:
            if run.kind is StepKind.DISTRIBUTE_SHARES:
                c.perform()
                for cu in c.script.policy.custodians:  # type: ignore[union-attr]
                    c.show_share(cu, card=CardAccess(serial="CARD-1")) if cu == "c1" else c.show_share(cu)
                    c.acknowledge(cu)
                for r in run.required_roles:
                    if r not in run.acks:
                        c.acknowledge(r)
                c.complete_step()
            else:
                step_once(c)
        assert "write_card" in kh.calls
        assert victim.read_bytes() == PRECIOUS, "a planted .tmp link redirected a write"
        assert c.manifest is not None
        set_id = c.manifest["set_id"]
        saved = ws / "manifests" / f"set-{set_id}.json"
        assert not saved.is_symlink()
        assert json.loads(saved.read_bytes()) == c.manifest  # the rewritten manifest
        sealed = ws / "card-shares" / f"card-share-set-{set_id}-CARD-1.sealed.json"
        assert not sealed.is_symlink() and sealed.read_bytes().startswith(b'{"format"')
        # every planted link is still there, untouched
        assert os.readlink(ws / "manifests" / f"set-{set_id}.json.tmp") == target
        assert sum(1 for _ in os.scandir(ws / "manifests")) == (1 << 15) + 1
        dev = os.stat(stick.path).st_dev
        assert os.stat(saved).st_dev == os.stat(sealed).st_dev == dev
    print(f"\nplanted {2 << 15} links in {planted:.2f} s; genesis wrote past all of them")


def test_links_in_the_workspace_are_refused_and_named(tmp_path: Path, kms_pem: bytes) -> None:
    """A link at a recipient key (to /dev/zero: the old read never ended), at
    ``ceremonies/`` (the journal would be created elsewhere) or a FIFO as a key file."""
    with mounted_stick(tmp_path) as stick:
        ws = _workspace_on(stick, kms_pem)
        key = ws / "recipients" / "kms-openkcm-boot.pem"
        key.unlink()
        os.symlink("/dev/zero", key)
        c = Ceremony.load(SCRIPTS / "genesis.toml", ws, KeyholderDouble(), preflight=ok_preflight)
        while (run := c.current_step) is not None and run.kind is not StepKind.VERIFY_FINGERPRINT:
            step_once(c)
        with pytest.raises(StepFailedError, match=r"kms-openkcm-boot.pem is a symbolic link"):
            c.perform()
        key.unlink()
        os.mkfifo(key)
        c.retry()
        t0 = time.monotonic()
        with pytest.raises(StepFailedError, match="a FIFO, not a plain file"):
            c.perform()
        assert time.monotonic() - t0 < 30  # did not block on the FIFO (generous bound)
        c.abort("test", "admin")

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        shutil.rmtree(ws / "ceremonies")
        os.symlink(elsewhere, ws / "ceremonies")
        from core.safeio import SymlinkRefused

        with pytest.raises(SymlinkRefused, match="ceremonies is a symbolic link"):
            Ceremony.load(SCRIPTS / "genesis.toml", ws, KeyholderDouble(), preflight=ok_preflight)
        assert list(elsewhere.iterdir()) == []


def test_manifest_link_is_not_read(tmp_path: Path, kms_pem: bytes) -> None:
    """A manifest planted as a link (to a file outside the stick) is no manifest."""
    outside = tmp_path / "manifest.json"
    outside.write_text('{"set_id": "4242", "fingerprint": "00"}')
    with mounted_stick(tmp_path) as stick:
        ws = _workspace_on(stick, kms_pem)
        (ws / "manifests").mkdir()
        os.symlink(outside, ws / "manifests" / "set-4242.json")
        c = Ceremony.load(
            SCRIPTS / "unseal-and-seal.toml", ws, KeyholderDouble(), preflight=ok_preflight
        )
        assert c.manifest_choices() == []


# ---------------------------------------------------------------------- overlayfs (live ISO, containers)


def test_overlay_workspace_is_one_filesystem(tmp_path: Path) -> None:
    """On overlayfs (the live ISO's root, a container's) a file's st_dev is its layer's,
    not its folder's: the "same filesystem" checks use mount ids, so a workspace there
    works, while a mount point inside it is still refused."""
    import subprocess

    from core import safeio

    lower, upperfs, merged = tmp_path / "lower", tmp_path / "upperfs", tmp_path / "merged"
    for d in (lower, upperfs, merged):
        d.mkdir()
    mounted: list[Path] = []
    try:
        for d in (lower, upperfs):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
            mounted.append(d)
        (lower / "ws" / "recipients").mkdir(parents=True)
        (lower / "ws" / "recipients" / "kms.pem").write_bytes(b"lower layer")
        (upperfs / "upper").mkdir()
        (upperfs / "work").mkdir()
        r = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={upperfs}/upper,workdir={upperfs}/work", str(merged)],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"overlayfs not available here: {r.stderr.strip()}")
        mounted.append(merged)
        ws = merged / "ws"
        assert os.stat(ws / "recipients" / "kms.pem").st_dev != os.stat(ws).st_dev  # the trap
        # what the PKCS#11 module check relies on: same mount although st_dev differs
        fa = os.open(ws / "recipients" / "kms.pem", os.O_PATH)
        fb = os.open(merged, os.O_PATH)
        try:
            assert safeio.same_filesystem(fa, fb)
        finally:
            os.close(fa)
            os.close(fb)
        with safeio.Dir.open_root(ws) as root:
            assert root.read_path("recipients/kms.pem", limit=100) == b"lower layer"
            with root.sub("manifests", create=True) as m:
                m.write_new("set-1.json", b"{}")
                m.replace("set-1.json", b'{"a": 1}')
                assert m.read("set-1.json", limit=100) == b'{"a": 1}'
        # a filesystem mounted inside the workspace is not the workspace's
        (ws / "ceremonies").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(ws / "ceremonies")], check=True)
        mounted.append(ws / "ceremonies")
        with safeio.Dir.open_root(ws) as root:
            with pytest.raises(safeio.WrongDevice, match="ceremonies is on another filesystem"):
                root.sub("ceremonies")
    finally:
        for d in reversed(mounted):
            subprocess.run(["umount", "-l", str(d)], capture_output=True)
