"""demo: the default topology (4 ASes, 10 clients each), unicast then CoreCast, 30 s of a 1 Mb/s live channel."""

from __future__ import annotations

from typing import Any

from experiments.common import report, run_modes

DESCRIPTION = "4 ASes x 10 clients, both modes, 30 s of a live 1 Mb/s channel: the core-traffic table"
DEFAULTS: dict[str, Any] = {
    "ases": 4, "clients": 10, "seconds": 30.0, "bitrate": 1_000_000, "chunk_bytes": 1316, "speed": 1.0,
    "player": True,
    "content": "ffmpeg",
}


def validate(params: dict[str, Any]) -> None:
    """Derive the chunk count from the stream length."""
    params["chunks"] = max(1, round(params["seconds"] * params["bitrate"] / (8 * params["chunk_bytes"])))


def run(ctx: Any) -> int:
    """Stream in both modes over one topology and print the comparison."""
    rows = run_modes(ctx, "demo")
    return report(ctx, rows)
