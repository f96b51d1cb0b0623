"""The :class:`~core.ceremony.ports.RecipientSource` port: recipients' public keys from the
workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.ceremony.errors import StepFailedError
from core.ceremony.model import Script
from core.ceremony.workspace import Workspace
from core.safeio import MAX_KEY_FILE, SafeIOError

__all__ = ["WorkspaceRecipients"]


class WorkspaceRecipients:
    """The :class:`RecipientSource` port: public keys from ``workspace/<public_key_file>``."""

    def __init__(self, workspace: Path, script: Script) -> None:
        self.workspace = workspace
        self.script = script

    def load(self, recipient_id: str) -> tuple[dict[str, Any], Any]:
        """Parse and check the recipient's public key (core.seal.recipients)."""
        from core.seal import recipients as rc

        spec = self.script.recipients[recipient_id]
        try:
            data = Workspace(self.workspace).read(spec.public_key_file, limit=MAX_KEY_FILE)
        except SafeIOError as exc:
            raise StepFailedError(f"recipient {recipient_id}: {exc.message}") from None
        except OSError as exc:
            raise StepFailedError(f"cannot read {spec.public_key_file}: {exc.strerror}") from None
        key = rc.parse_public_key(data)
        kind = spec.kind  # validated against RecipientKind names
        name, key_id = recipient_id, spec.description or recipient_id
        if self.script.practice:
            # the envelope header has no practice field: its recipient name and key id
            # say PRACTICE (with the PRACTICE- ceremony id and the practice cluster id)
            name = f"PRACTICE-{recipient_id}"
            if not key_id.upper().startswith("PRACTICE"):
                key_id = f"PRACTICE {key_id}"
        rec = rc.recipient_from_key(key, name=name, kind=kind, key_id=key_id)
        return {
            "fingerprint": rec.fingerprint_hex,
            "kind": spec.kind,
            "description": spec.description,
        }, rec
