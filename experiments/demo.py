"""demo: the default topology (4 ASes, 10 clients each), every network-layer mode, 12 s of a 1 Mb/s live channel each.

The modes are every registered network-layer mode (:func:`experiments.compare.network_modes`:
unicast, CoreCast and its extensions, the multicast baselines as they are registered),
or ``--set modes=...``. A mode that fails is reported (and fails the run) without
hiding the others' rows.
"""

from __future__ import annotations

from typing import Any

from experiments.common import Point, report
from experiments.compare import modes_of, run_point

DESCRIPTION = "4 ASes x 10 clients, every network-layer mode, 12 s of a live 1 Mb/s channel each: the core-traffic table"
DEFAULTS: dict[str, Any] = {
    "ases": 4, "clients": 10, "seconds": 12.0, "bitrate": 1_000_000, "chunk_bytes": 1316, "speed": 1.0,
    "player": True,
    "content": "ffmpeg",
}


def validate(params: dict[str, Any]) -> None:
    """Derive the chunk count from the stream length."""
    params["chunks"] = max(1, round(params["seconds"] * params["bitrate"] / (8 * params["chunk_bytes"])))


def run(ctx: Any) -> int:
    """Stream every mode over one topology and print the comparison."""
    point = Point(label="demo", topo={}, speed=float(ctx.params["speed"]), modes=modes_of(ctx.params))
    rows, problems, _skipped = run_point(ctx, point)
    return report(ctx, rows, extra_problems=problems)
