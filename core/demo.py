"""Demo workspace: everything a new user needs to try a ceremony on an ordinary machine.

``kcm-ceremony demo init DIR`` creates::

    DIR/workspace.json            what is where (read by the TUI: --workspace DIR)
    DIR/README-DEMO.txt           what this is, the demo PINs, how to start
    DIR/media/                    stands in for the removable ceremony medium
    DIR/media/recipients/*.pem    DEMO recipient public keys (RSA-3072, generated here),
                                  among them PRACTICE-kms.pem for the practice scripts
    DIR/demo-keys/*.pem           their private keys, so the demo can prove decryption;
                                  labelled DEMO: a real KMS key never leaves the cloud
    DIR/scripts/*.toml            the ceremony scripts; the rehearsal is
                                  practice-genesis.toml (preselected), then
                                  practice-unseal-and-seal.toml (preselected once a
                                  PRACTICE share set is on the medium)
    DIR/softhsm/softhsm2.conf     when softhsm2-util exists: SoftHSM2 tokens for the demo
    DIR/softhsm/tokens/           custodians (SOFTHSM2_CONF points here, never at ~)

Nothing in a demo workspace is secret or for production: every key and token is marked
DEMO, and the practice script makes PRACTICE keys.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import KcmError

__all__ = ["DEMO_PIN", "DEMO_SO_PIN", "Workspace", "cli_main", "init_workspace", "load_workspace"]

FORMAT = 1
DEMO_PIN = "123456"  # demo tokens only; printed in README-DEMO.txt on purpose
DEMO_SO_PIN = "12345678"
PRACTICE_SCRIPT = "practice-genesis.toml"
#: The rehearsal after the practice genesis: 3 of its shares rebuild the key, sealed again.
NEXT_PRACTICE_SCRIPT = "practice-unseal-and-seal.toml"
SOFTHSM_MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class Workspace:
    """Paths of a demo workspace."""

    root: Path
    media: Path
    scripts: Path
    recipients: Path
    demo_keys: Path
    preselect: str
    softhsm2_conf: Path | None
    tokens: tuple[str, ...]
    next_script: str = ""

    def as_json(self) -> dict[str, Any]:
        """The workspace.json content (paths relative to the root)."""
        return {
            "format": FORMAT,
            "demo": True,
            "media": self.media.name,
            "scripts": self.scripts.name,
            "recipients": str(self.recipients.relative_to(self.root)),
            "demo_keys": self.demo_keys.name,
            "preselect": self.preselect,
            "softhsm2_conf": str(self.softhsm2_conf.relative_to(self.root)) if self.softhsm2_conf else None,
            "tokens": list(self.tokens),
            "next_script": self.next_script,
        }


class DemoError(KcmError):
    """The workspace cannot be created or read; the message says what to do."""

    code = "demo-workspace"


def _repo_scripts() -> Path:
    return Path(__file__).resolve().parent.parent / "ceremony_scripts"


def _practice_variant(text: str) -> str:
    """A genesis script turned into a practice rehearsal (``practice = true``), marked the
    way validation wants it (docs/scripts.md): the cluster id begins with ``practice``, and
    envelope files, the recipient key file and export folders begin with ``PRACTICE-``."""
    flags = re.MULTILINE
    if re.search(r"^\s*practice\s*=", text, flags):
        text = re.sub(r"^(\s*practice\s*=\s*)\w+", r"\1true", text, count=1, flags=flags)
    else:
        text = re.sub(r"^\[ceremony\]\s*$", "[ceremony]\npractice = true", text, count=1, flags=flags)
    text = re.sub(r'^(\s*name\s*=\s*")(?!practice)', r"\1practice-", text, count=1, flags=flags)
    text = re.sub(r'^(\s*cluster_id\s*=\s*)"[^"]*"', r'\1"practice"', text, count=1, flags=flags)
    text = re.sub(r'^(\s*(?:file|folder)\s*=\s*")(?!PRACTICE-)', r"\1PRACTICE-", text, flags=flags)
    text = re.sub(r'^(\s*public_key_file\s*=\s*"(?:[^"]*/)?)(?!PRACTICE-)', r"\1PRACTICE-", text, flags=flags)
    header = "# DEMO: practice variant made by 'kcm-ceremony demo init' (keys are marked PRACTICE)\n"
    return header + text


def _recipient_files(scripts: Path) -> list[str]:
    """Every recipients' public_key_file named by the scripts (relative to the medium)."""
    import tomllib

    out: list[str] = []
    for p in sorted(scripts.glob("*.toml")):
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        recs = data.get("recipients", {})
        if isinstance(recs, dict):
            for r in recs.values():
                f = r.get("public_key_file") if isinstance(r, dict) else None
                if isinstance(f, str) and f not in out:
                    out.append(f)
    return out


def _make_demo_key(public_path: Path, private_path: Path) -> None:
    """An RSA-3072 key pair generated here; both files say DEMO."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(pub)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"# DEMO KEY generated locally by kcm-ceremony demo init: NOT a KMS key\n")
        fh.write(priv)


def _custodian_labels(scripts: Path) -> list[str]:
    """Token labels for the custodians of the practice script (card serial, else role id)."""
    import tomllib

    path = scripts / PRACTICE_SCRIPT
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text("utf-8"))
    labels: list[str] = []
    for rid, role in (data.get("roles") or {}).items():
        if isinstance(role, dict) and role.get("kind") == "custodian":
            serial = role.get("card_serial")
            labels.append(str(serial) if serial else f"DEMO-{rid}")
    return labels


def _softhsm(root: Path, labels: list[str]) -> tuple[Path | None, tuple[str, ...]]:
    import shutil
    import subprocess

    tool = shutil.which("softhsm2-util")
    if tool is None:
        return None, ()
    folder = root / "softhsm"
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        "# DEMO SoftHSM2 configuration (kcm-ceremony demo init)\n"
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n",
        "utf-8",
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    made: list[str] = []
    for label in labels:
        res = subprocess.run(  # fixed tool, arguments from the demo script
            [tool, "--init-token", "--free", "--label", label, "--so-pin", DEMO_SO_PIN, "--pin", DEMO_PIN],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise DemoError(f"softhsm2-util could not create token {label}: {res.stderr.strip() or res.stdout.strip()}")
        made.append(label)
    return conf, tuple(made)


def _token_serials(conf: Path) -> dict[str, str]:
    """Label -> serial number of every initialised token (``softhsm2-util --show-slots``)."""
    import re
    import shutil
    import subprocess

    tool = shutil.which("softhsm2-util")
    if tool is None:
        return {}
    res = subprocess.run(
        [tool, "--show-slots"],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        check=False,
    )
    serials: dict[str, str] = {}
    serial = ""
    for line in res.stdout.splitlines():
        m = re.match(r"\s*Serial number:\s*(\S*)", line)
        if m:
            serial = m.group(1)
            continue
        m = re.match(r"\s*Label:\s*(\S.*?)\s*$", line)
        if m and serial:
            serials[m.group(1)] = serial
    return serials


def _bind_card_serials(scripts: Path, serials: dict[str, str]) -> None:
    """Point the workspace's copies of the scripts at the demo tokens.

    A script names a custodian's card by its *serial number* (what the engine checks; a
    label is not an identity). SoftHSM2 assigns serials itself, so the shipped practice
    scripts carry the token *labels* (``card_serial = "DEMO-0001"``) and the demo rewrites
    them to the serials the tokens actually got.
    """
    for path in sorted(scripts.glob("*.toml")):
        text = path.read_text("utf-8")
        new = text
        for label, serial in serials.items():
            new = new.replace(f'card_serial = "{label}"', f'card_serial = "{serial}"  # demo token {label}')
        if new != text:
            path.write_text(new, "utf-8")


README = """\
OpenKCM Ceremony: DEMO WORKSPACE (not for production)

  media/        stands in for the removable ceremony medium (journal, manifests, exports)
  media/recipients/   DEMO recipient public keys, generated on this machine
  demo-keys/    their private keys (a real KMS key never leaves the cloud)
  scripts/      ceremony scripts: rehearse with practice-genesis.toml (preselected), then
                practice-unseal-and-seal.toml (preselected once a PRACTICE share set exists)
  softhsm/      SoftHSM2 tokens standing in for custodians' cards (if softhsm2 is installed)
                user PIN {pin}, SO PIN {so_pin} (DEMO ONLY)

Start:   make run        (or: kcm-ceremony --demo --workspace {root})
"""


def init_workspace(directory: str | os.PathLike[str], *, scripts_from: Path | None = None) -> Workspace:
    """Create a demo workspace in ``directory`` (which must be empty or absent).

    Args:
        directory: where to create it.
        scripts_from: folder of ceremony scripts to copy (default: the repository's).

    Returns:
        The workspace paths.

    Raises:
        DemoError: the folder is not empty, or a tool failed.
    """
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise DemoError(f"{root} exists and is not empty; choose a new folder or delete it first")
    source = scripts_from or _repo_scripts()
    if not source.is_dir():
        raise DemoError(f"no ceremony scripts at {source}")
    root.mkdir(parents=True, exist_ok=True)
    media = root / "media"
    scripts = root / "scripts"
    demo_keys = root / "demo-keys"
    for d in (media, scripts, demo_keys):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(demo_keys, 0o700)
    for p in sorted(source.glob("*.toml")):
        (scripts / p.name).write_text(p.read_text("utf-8"), "utf-8")
    genesis = source / "genesis.toml"
    if not (scripts / PRACTICE_SCRIPT).exists() and genesis.exists():
        (scripts / PRACTICE_SCRIPT).write_text(_practice_variant(genesis.read_text("utf-8")), "utf-8")
    for rel in _recipient_files(scripts):
        pub = media / rel
        if not pub.exists():
            _make_demo_key(pub, demo_keys / (Path(rel).stem + ".DEMO-PRIVATE.pem"))
    conf, tokens = _softhsm(root, _custodian_labels(scripts))
    if conf is not None:
        _bind_card_serials(scripts, _token_serials(conf))
    preselect = PRACTICE_SCRIPT if (scripts / PRACTICE_SCRIPT).exists() else ""
    follow = NEXT_PRACTICE_SCRIPT if (scripts / NEXT_PRACTICE_SCRIPT).exists() else ""
    ws = Workspace(root, media, scripts, media / "recipients", demo_keys, preselect, conf, tokens, follow)
    (root / "workspace.json").write_text(json.dumps(ws.as_json(), indent=2) + "\n", "utf-8")
    (root / "README-DEMO.txt").write_text(README.format(pin=DEMO_PIN, so_pin=DEMO_SO_PIN, root=root), "utf-8")
    return ws


def load_workspace(directory: str | os.PathLike[str]) -> Workspace:
    """Read ``DIR/workspace.json``.

    ``preselect`` is the practice genesis until a PRACTICE share set is on the medium
    (``media/manifests/PRACTICE-set-*.json``, written by the practice genesis); from then
    on it is ``next_script``, the practice unseal-and-seal, so that ``make run`` offers the
    next rehearsal.

    Raises:
        DemoError: not a demo workspace.
    """
    root = Path(directory).resolve()
    try:
        data = json.loads((root / "workspace.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoError(f"{root} is not a demo workspace (run: kcm-ceremony demo init {root})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DemoError(f"{root}/workspace.json has an unknown format")
    conf = data.get("softhsm2_conf")
    media = root / str(data.get("media", "media"))
    preselect = str(data.get("preselect", ""))
    follow = str(data.get("next_script", "") or "")
    scripts = root / str(data.get("scripts", "scripts"))
    if follow and (scripts / follow).exists() and any((media / "manifests").glob("PRACTICE-set-*.json")):
        preselect = follow
    return Workspace(
        root=root,
        media=media,
        scripts=scripts,
        recipients=root / str(data.get("recipients", "media/recipients")),
        demo_keys=root / str(data.get("demo_keys", "demo-keys")),
        preselect=preselect,
        softhsm2_conf=(root / str(conf)) if conf else None,
        tokens=tuple(str(t) for t in data.get("tokens", [])),
        next_script=follow,
    )


def cli_main(argv: list[str]) -> int:
    """``kcm-ceremony demo init DIR`` (``--if-missing``: keep an existing workspace)."""
    import argparse

    p = argparse.ArgumentParser(prog="kcm-ceremony demo", description="Demo workspace.")
    sub = p.add_subparsers(dest="cmd", required=True)
    init = sub.add_parser("init", help="create a demo workspace")
    init.add_argument("dir", type=Path)
    init.add_argument("--if-missing", action="store_true", help="do nothing if DIR is a workspace already")
    args = p.parse_args(argv)
    if args.cmd == "init":
        if args.if_missing and (args.dir / "workspace.json").exists():
            print(f"demo workspace {args.dir} exists; keeping it")
            return 0
        try:
            ws = init_workspace(args.dir)
        except DemoError as exc:
            print(f"kcm-ceremony demo: {exc}", file=sys.stderr)
            return 1
        print(f"DEMO workspace created in {ws.root}")
        print(f"  medium:     {ws.media}")
        print(f"  scripts:    {ws.scripts} (preselected: {ws.preselect or 'none'}; then {ws.next_script or 'none'})")
        print(f"  tokens:     {', '.join(ws.tokens) if ws.tokens else 'none (softhsm2-util not installed)'}")
        print(f"  start with: kcm-ceremony --demo --workspace {ws.root}")
        return 0
    return 2
