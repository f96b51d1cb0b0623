"""Demo values left in a real ceremony script (issue 15).

The shipped real scripts are templates: ``genesis.toml`` names the demo cluster
(``cluster_id = "openkcm-demo"``) and the demo workspace's SoftHSM2 tokens
(``card_serial = "DEMO-0001"``) so that the demo can run them. Before a real ceremony the
administrator edits them. :func:`demo_values` finds what is still a demo value, with file
and line; ``kcm-ceremony script check`` reports them, the start screen marks the script,
and a real ceremony (neither a practice script nor ``--demo``) refuses to begin until the
script is edited.

A practice script is for rehearsal and may carry demo values: it is never checked.
"""

from __future__ import annotations

import os
from typing import Any, Final

from core.ceremony.model import Problem
from core.ceremony.source import parse_script

__all__ = ["DEMO_CLUSTER_IDS", "DEMO_SERIAL_PREFIX", "demo_values"]

#: Cluster ids of the demo (the shipped templates' value).
DEMO_CLUSTER_IDS: Final = frozenset({"openkcm-demo"})
#: What the card serials of the demo's SoftHSM2 tokens begin with (their labels).
DEMO_SERIAL_PREFIX: Final = "DEMO-"


def demo_values(path: str | os.PathLike[str]) -> list[Problem]:
    """The demo values of a real script, each with its line and what to do (empty: none, a
    practice script, or a script that cannot be parsed: ``script check`` reports that)."""
    data, smap, _problems, _raw = parse_script(path)
    if not isinstance(data, dict):
        return []
    meta = data.get("ceremony")
    if isinstance(meta, dict) and meta.get("practice") is True:
        return []
    fname = str(path)
    found: list[Problem] = []
    cluster: Any = data.get("cluster")
    if isinstance(cluster, dict) and cluster.get("cluster_id") in DEMO_CLUSTER_IDS:
        found.append(
            Problem(
                fname,
                smap.line_of(("cluster", "cluster_id")),
                f"demo value: cluster_id = {cluster['cluster_id']!r} is the demo cluster; set "
                "the id of the cluster this ceremony is for",
                "cluster.cluster_id",
            )
        )
    roles: Any = data.get("roles")
    for rid, role in (roles or {}).items() if isinstance(roles, dict) else ():
        serial = role.get("card_serial") if isinstance(role, dict) else None
        if isinstance(serial, str) and serial.upper().startswith(DEMO_SERIAL_PREFIX):
            found.append(
                Problem(
                    fname,
                    smap.line_of(("roles", rid, "card_serial")),
                    f"demo value: card_serial = {serial!r} is a demo token; set the serial "
                    f"number of {rid}'s card, or remove the line if {rid} takes no card",
                    f"roles.{rid}.card_serial",
                )
            )
    return found
