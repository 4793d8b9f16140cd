"""clients: core traffic against the number of clients k at a fixed number of client ASes j.

Unicast grows by 64+P bytes per client and chunk, CoreCast by a 68-byte REF
(plus one DATA per AS): linear against nearly flat. Both modes at each k.
"""

from __future__ import annotations

from typing import Any

from experiments.common import Point, check_common, parse_list, reject_swept, report, run_sweep, stream_speed
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS_PER_AS

DESCRIPTION = ("core traffic against k = 5..1,000 clients in j = 5 ASes, "
               "unicast and CoreCast (or --set modes=) (linear vs nearly flat)")
DEFAULTS: dict[str, Any] = {
    "ases": 5, "ks": "5,10,25,50,100,250,500,1000", "chunks": 100, "chunk_bytes": 1316,
    "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000, "content": "file", "client_hosts": "per-as",
}


def validate(params: dict[str, Any]) -> None:
    """Check the k list: whole numbers, at least one client per AS, at most 10,000 per AS."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution"), "choose the points with ks=10,100,...")
    j = params["ases"]
    params["ks"] = parse_list(params["ks"], "ks", int, j, j * MAX_CLIENTS_PER_AS)
    if len(set(params["ks"])) != len(params["ks"]):
        raise ConfigError("ks lists a value twice")


def points(params: dict[str, Any]) -> list[Point]:
    """One point per k: k clients spread evenly over the j ASes (so j stays fixed)."""
    j = params["ases"]
    return [Point(label=f"k{k}", speed=stream_speed(params, k + 1),
                  topo={"ases": j, "distribution": "uniform", "total": k})
            for k in sorted(params["ks"])]


def run(ctx: Any) -> int:
    """Sweep k, both modes per point; check delivery and measured == model."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    return report(ctx, rows, extra_problems=problems)
