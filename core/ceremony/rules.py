"""The rules a ceremony script is checked against: its vocabulary and limits, and the
checker that collects every problem with its line (:mod:`core.ceremony.validate` runs the
checks; the step kinds, carriers and displays themselves are in :mod:`core.ceremony.model`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from core.ceremony.model import Carrier, Display, Problem, StepKind
from core.ceremony.source import PathItem, SourceMap

__all__ = [
    "CARD_KEY_BITS",
    "CARD_MODULES",
    "CARRIERS",
    "DISPLAYS",
    "EXPORT_CONTENTS",
    "MAX_ESTIMATE_MINUTES",
    "MAX_TRANSITION_DAYS",
    "ONLINE_RECIPIENT_KINDS",
    "PRACTICE_CLUSTER_PREFIX",
    "PRACTICE_PREFIX",
    "PURPOSES",
    "RECIPIENT_KINDS",
    "STEP_PARAMS",
    "Checker",
    "byok_methods",
    "is_safe_filename",
]

PURPOSES: Final = ("genesis", "unseal-and-seal", "reshare", "verify-shares", "rotate", "transition")
#: Recipients of the online system: the only ones the old key of a rotation is sealed to
#: (a transitional envelope, docs/formats.md 1.9).
ONLINE_RECIPIENT_KINDS: Final = ("aws-kms", "gcp-kms", "azure-kv", "vault-transit", "pkcs11-hsm")
#: The longest transition window a rotation may give the old key (days).
MAX_TRANSITION_DAYS: Final = 90
# the same names as core.seal.recipients.RecipientKind
RECIPIENT_KINDS: Final = (
    "aws-kms",
    "gcp-kms",
    "azure-kv",
    "vault-transit",
    "pkcs11-hsm",
    "custodian-rsa",
    "custodian-age",
)
#: Ways a share comes back at collection; ``qr`` stands for every QR way in (a photo or
#: scan of the QR as an image file, the camera, a keyboard-wedge handheld scanner).
CARRIERS: Final = tuple(c.value for c in Carrier)
#: Ways a share is handed over at distribution (``screen``: words on the custodian terminal,
#: typed later or written on paper; ``qr``: a QR on that terminal; ``card``: a smart card).
DISPLAYS: Final = tuple(d.value for d in Display)
#: PKCS#11 modules a script may name (core.carriers.modules.MODULES). Never a path: a
#: module is a library that runs inside the keyholder, next to the MasterKey.
CARD_MODULES: Final = ("opensc", "ykcs11", "softhsm2")
CARD_KEY_BITS: Final = (2048, 3072, 4096)
EXPORT_CONTENTS: Final = (
    "manifest",
    "envelopes",
    "journal",
    "transcript",
    "card-shares",
    "statement",
)
#: What a practice script's names begin with (and a real script's never do).
PRACTICE_PREFIX: Final = "PRACTICE-"
#: What a practice script's cluster_id begins with (and a real script's never does).
PRACTICE_CLUSTER_PREFIX: Final = "practice"

#: Longest time estimate an act may give (a ceremony day).
MAX_ESTIMATE_MINUTES: Final = 720

_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_CLUSTER_ID: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SCRIPT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HEX: Final = re.compile(r"^[0-9a-fA-F:]{16,}$")
#: A provider's resource name in a byok step (ARN, GCP resource path, transit key name).
_DESTINATION: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:/._-]{0,255}$")
_RESERVED: Final = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])$", re.IGNORECASE)

_COMMON_STEP_KEYS: Final = ("id", "kind", "title", "instruction", "acknowledge")

#: Parameters each step kind accepts (besides id, kind, title, instruction, acknowledge).
STEP_PARAMS: Final[dict[StepKind, tuple[str, ...]]] = {
    StepKind.INSTRUCTION: (),
    StepKind.CHECKLIST: ("items",),
    StepKind.ATTENDANCE: ("roles",),
    StepKind.PREFLIGHT: ("require_hardened",),
    StepKind.VERIFY_FINGERPRINT: ("subject", "witness"),
    StepKind.GENERATE: (),
    StepKind.DISTRIBUTE_SHARES: (
        "display",
        "supersedes_collected",
        "carriers",
        "card_module",
        "card_key_bits",
        "card_data_object",
    ),
    StepKind.COLLECT_SHARES: ("carriers", "manifest", "card_module"),
    StepKind.CHECK_SHARES: ("carriers", "manifest", "card_module"),
    StepKind.RECOVER: ("dry_run",),
    StepKind.VERIFY_KCV: ("witness", "key"),
    StepKind.SEAL: ("recipients", "key", "transition_days"),
    StepKind.EXPORT: ("files", "folder"),
    StepKind.SUMMARY: (),
    StepKind.WIPE: (),
    StepKind.CONTINUITY_STATEMENT: (),
    StepKind.MARK_ROTATED_OUT: ("folder",),
    StepKind.BYOK: (
        "provider",
        "witness",
        "wrapping_key_file",
        "import_token_file",
        "method",
        "key_id",
        "import_job",
        "key_name",
        "kek_kid",
        "file_name",
        "folder",
    ),
}

_KEY_SOURCES: Final = (StepKind.GENERATE, StepKind.RECOVER)
_NEEDS_KEY: Final = (
    StepKind.DISTRIBUTE_SHARES,
    StepKind.SEAL,
    StepKind.BYOK,
    StepKind.VERIFY_KCV,
    StepKind.CONTINUITY_STATEMENT,
    StepKind.MARK_ROTATED_OUT,
)


def byok_methods(provider: str) -> tuple[str, ...]:
    """The wrapping methods a ``byok`` step may name for ``provider``: only what that
    provider accepts for a 256-bit symmetric key (core.seal.byok; sources in
    docs/formats.md section 3). The first is the default."""
    from core.seal import byok

    if provider == "aws":
        return tuple(byok.AWS_ALGORITHMS)
    if provider == "gcp":
        # Google's recommendation first
        first = "RSA_OAEP_3072_SHA256_AES_256"
        return (first, *(m for m in byok.GCP_METHODS if m != first))
    if provider == "vault":
        return tuple(byok.VAULT_HASHES)
    if provider == "azure":
        return ("CKM_RSA_AES_KEY_WRAP",)
    return ()


#: Per provider: the parameters a ``byok`` step requires, and those it may add.
BYOK_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "aws": ("import_token_file", "key_id"),
    "gcp": ("import_job", "key_name"),
    "azure": ("kek_kid",),
    "vault": ("key_name",),
}
BYOK_OPTIONAL: Final[dict[str, tuple[str, ...]]] = {
    "aws": ("method",),
    "gcp": ("method",),
    "azure": ("file_name",),
    "vault": ("method",),
}


def is_safe_filename(name: object) -> bool:
    """A file name safe on vfat/exFAT/ext4 and in a shell: no path, no dot-dot, no device."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        return False
    if name.endswith(".") or _RESERVED.match(name.split(".")[0]):
        return False
    return True


class Checker:
    """Collects the problems of one script, each with its file, line and data path."""

    def __init__(self, data: dict[str, Any], smap: SourceMap, fname: str) -> None:
        self.data = data
        self.smap = smap
        self.fname = fname
        self.problems: list[Problem] = []
        self._once: set[str] = set()

    def add_once(self, key: str, path: Sequence[PathItem], message: str) -> None:
        """Report a problem the first time ``key`` is seen only: one root cause (a role
        that is not defined) is one message, not one per step that names it."""
        if key not in self._once:
            self._once.add(key)
            self.add(path, message)

    def add(self, path: Sequence[PathItem], message: str) -> None:
        dotted = ""
        for item in path:
            dotted += f"[{item}]" if isinstance(item, int) else (f".{item}" if dotted else item)
        self.problems.append(Problem(self.fname, self.smap.line_of(path), message, dotted))

    def table(self, path: Sequence[PathItem], value: Any, required: bool = True) -> dict[str, Any]:
        if value is None:
            if required:
                self.add(path, f"missing table [{'.'.join(str(p) for p in path)}]")
            return {}
        if not isinstance(value, dict):
            self.add(path, "must be a table")
            return {}
        return value

    def unknown(
        self, path: Sequence[PathItem], table: dict[str, Any], allowed: Sequence[str]
    ) -> None:
        for key in table:
            if key not in allowed:
                self.add(
                    (*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                )

    def string(
        self,
        path: Sequence[PathItem],
        table: dict[str, Any],
        key: str,
        *,
        required: bool = True,
        check: Callable[[str], bool] | None = None,
        what: str = "",
    ) -> str | None:
        if key not in table:
            if required:
                self.add((*path, key), f"missing {key!r}")
            return None
        val = table[key]
        if not isinstance(val, str) or not val.strip():
            self.add((*path, key), f"{key!r} must be a non-empty string")
            return None
        if check is not None and not check(val):
            self.add((*path, key), f"{key!r} = {val!r} is not {what}")
            return None
        return val

    def integer(self, path: Sequence[PathItem], table: dict[str, Any], key: str) -> int | None:
        if key not in table:
            self.add((*path, key), f"missing {key!r}")
            return None
        val = table[key]
        if isinstance(val, bool) or not isinstance(val, int):
            self.add((*path, key), f"{key!r} must be an integer")
            return None
        return val

    def boolean(self, path: Sequence[PathItem], table: dict[str, Any], key: str) -> bool:
        val = table.get(key, False)
        if not isinstance(val, bool):
            self.add((*path, key), f"{key!r} must be true or false")
            return False
        return val

    def str_list(
        self, path: Sequence[PathItem], table: dict[str, Any], key: str, *, required: bool = False
    ) -> list[str]:
        if key not in table:
            if required:
                self.add((*path, key), f"missing {key!r}")
            return []
        val = table[key]
        if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
            self.add((*path, key), f"{key!r} must be a list of strings")
            return []
        if required and not val:
            self.add((*path, key), f"{key!r} must not be empty")
        return list(val)


