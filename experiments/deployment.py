"""deployment: core bytes against the fraction of CoreCast-capable client ASes (incremental deployment).

j ASes of gamma clients each; the first round(f j) ASes advertise CoreCast
capability, the others get plain LISP unicast from the ITR. Unicast does not
depend on f; CoreCast's savings grow linearly with it.
"""

from __future__ import annotations

from typing import Any

from experiments.common import Point, check_common, parse_list, reject_swept, report, run_sweep, stream_speed
from testbed.nodeutil import ConfigError

DESCRIPTION = ("core bytes against the share of CoreCast-capable ASes 0..100 % (10 ASes x 10 clients), "
               "unicast and CoreCast (or --set modes=)")
DEFAULTS: dict[str, Any] = {
    "ases": 10, "clients": 10, "fractions": "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", "chunks": 200,
    "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000, "content": "file",
    "client_hosts": "per-as",
}


def validate(params: dict[str, Any]) -> None:
    """Check the fractions (0..1) and that they give distinct numbers of capable ASes."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("capable",), "choose the points with fractions=0,0.5,1")
    params["fractions"] = parse_list(params["fractions"], "fractions", float, 0.0, 1.0)
    counts = [round(f * params["ases"]) for f in params["fractions"]]
    if len(set(counts)) != len(counts):
        raise ConfigError(f"fractions give the same number of capable ASes twice with {params['ases']} ASes")


def points(params: dict[str, Any]) -> list[Point]:
    """One point per fraction: the first round(f j) client ASes are CoreCast-capable."""
    from testbed.params import topo_params
    k = topo_params({"ases": params["ases"], "clients": params["clients"]}).total_clients
    out = []
    for f in sorted(params["fractions"]):
        n = round(f * params["ases"])
        out.append(Point(label=f"cap{n}", speed=stream_speed(params, k + 1),
                         topo={"ases": params["ases"], "clients": params["clients"], "capable": float(f)},
                         row={"capable_fraction": n / params["ases"]}))
    return out


def run(ctx: Any) -> int:
    """Sweep the capable share, both modes per point; check delivery and measured == model."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    return report(ctx, rows, extra_problems=problems)
