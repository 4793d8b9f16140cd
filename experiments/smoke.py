"""smoke: a short end-to-end run for CI and containers: 2 ASes x 3 clients, both modes, a few seconds."""

from __future__ import annotations

from typing import Any

from experiments.common import report, run_modes

DESCRIPTION = ("CI smoke: 2 ASes x 3 clients, "
               "unicast and CoreCast (or --set modes=), 300 chunks at 10x speed; checks delivery and model")
DEFAULTS: dict[str, Any] = {
    "ases": 2, "clients": 3, "chunks": 300, "bitrate": 1_000_000, "chunk_bytes": 1316, "speed": 10.0,
    "player": False,
    "content": "file",
}


def run(ctx: Any) -> int:
    """Both modes over one small topology; fail unless delivery is complete and bytes match the model."""
    return report(ctx, run_modes(ctx, "smoke"))
