"""gamma: CoreCast's savings against the grouping coefficient gamma = k / j, from 1 to 100 and more.

j client ASes (default 10) each hold gamma clients (k = gamma j, up to 1,000 at
gamma = 100, one receiver process per AS serving many EIDs). Every point streams
in both modes; the figure puts the measured core bytes per chunk on the model's
curves and shows that gamma = 1 costs more than unicast.
"""

from __future__ import annotations

from typing import Any

from experiments.common import (Point, check_common, parse_list, reject_swept, report, run_sweep,
                                stream_speed)
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS_PER_AS

DESCRIPTION = ("savings against gamma = k/j from 1 to 100 (k up to 1,000 in 10 ASes), "
               "unicast and CoreCast (or --set modes=), on the model curve")
DEFAULTS: dict[str, Any] = {
    "ases": 10, "gammas": "1,1.5,2,3,5,10,20,50,100", "chunks": 100, "chunk_bytes": 1316,
    "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000, "content": "file", "client_hosts": "per-as",
}


def validate(params: dict[str, Any]) -> None:
    """Check the gamma list (each >= 1, at most 10,000 clients per AS) and the stream parameters."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution"), "choose the points with gammas=1,2,5,...")
    params["gammas"] = parse_list(params["gammas"], "gammas", float, 1.0, float(MAX_CLIENTS_PER_AS))
    if len(set(params["gammas"])) != len(params["gammas"]):
        raise ConfigError("gammas lists a value twice")


def points(params: dict[str, Any]) -> list[Point]:
    """One point per gamma: k = round(gamma j) clients spread evenly over the j ASes."""
    j = params["ases"]
    out = []
    for g in sorted(params["gammas"]):
        k = max(j, round(g * j))
        out.append(Point(label=f"g{g:g}", speed=stream_speed(params, k + 1),
                         topo={"ases": j, "distribution": "uniform", "total": k}))
    return out


def run(ctx: Any) -> int:
    """Sweep gamma, both modes per point; check delivery and measured == model."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    code = report(ctx, rows, extra_problems=problems)
    _print_savings(rows)
    return code


def _print_savings(rows: list[dict[str, Any]]) -> None:
    from testbed import model
    uni = {r["point"]: r for r in rows if r["mode"] == "unicast"}
    for r in rows:
        u = uni.get(r["point"])
        if r["mode"] == "corecast" and u and u["core_bytes"]:
            measured = 1 - (r["core_bytes"] / r["chunks"]) / (u["core_bytes"] / u["chunks"])
            predicted = model.savings([int(n) for n in str(r["clients_per_as"]).split()], None, r["chunk_bytes"])
            print(f"gamma {r['gamma']:>7.2f}: savings {100 * measured:6.2f} % (model {100 * predicted:6.2f} %)")
