"""distribution: clients spread over the ASes uniformly versus Zipf (popular events concentrate viewers).

k clients over j ASes, uniform (k/j each) or Zipf (the AS of rank r draws a
client with probability ~ 1/r^s; seeded). With every AS capable, the model says
only k and j matter (j DATA + k REF per chunk), so both spreads save the same; with
partial deployment (the first ASes capable, as early adopters), a Zipf spread puts
most viewers behind capable ASes and saves more. Each group is one point, both modes.
"""

from __future__ import annotations

from typing import Any

from experiments.common import Point, check_common, parse_list, reject_swept, report, run_sweep, stream_speed
from testbed.nodeutil import ConfigError
from testbed.params import topo_params

DESCRIPTION = ("uniform vs Zipf spread of k = 200 clients over j = 10 ASes, full and 50 % deployment, "
               "unicast and CoreCast (or --set modes=)")
DEFAULTS: dict[str, Any] = {
    "ases": 10, "total": 200, "distributions": "uniform,zipf", "zipf_s": 1.0, "seed": 1,
    "capable_fractions": "1,0.5", "chunks": 200, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 10.0,
    "max_pps": 15000, "content": "file", "client_hosts": "per-as",
}


def validate(params: dict[str, Any]) -> None:
    """Check the spreads (uniform, zipf), the capable fractions, and that every AS gets a client."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("clients", "distribution", "capable"),
                 "choose with distributions=uniform,zipf and capable_fractions=1,0.5")
    if isinstance(params["total"], bool) or not isinstance(params["total"], int) or params["total"] < 1:
        raise ConfigError(f"total (k) must be a positive whole number, got '{params['total']}'")
    dists = [d.strip() for d in str(params["distributions"]).split(",") if d.strip()]
    bad = [d for d in dists if d not in ("uniform", "zipf")]
    if bad or not dists:
        raise ConfigError(f"distributions must list uniform and/or zipf, got '{params['distributions']}'")
    if len(set(dists)) != len(dists):
        raise ConfigError("distributions lists a spread twice")
    params["distributions"] = dists
    params["capable_fractions"] = parse_list(params["capable_fractions"], "capable_fractions", float, 0.0, 1.0)
    for d in dists:
        counts = topo_params(_topo(params, d, 1.0)).clients_per_as
        if 0 in counts:
            raise ConfigError(f"the {d} spread leaves {counts.count(0)} of {params['ases']} ASes without clients "
                              f"(j would differ): raise total or lower zipf_s")


def _topo(params: dict[str, Any], dist: str, fraction: float) -> dict[str, Any]:
    return {"ases": params["ases"], "distribution": dist, "total": params["total"], "zipf_s": params["zipf_s"],
            "seed": params["seed"], "capable": float(fraction)}


def group_name(dist: str, fraction: float, zipf_s: float) -> str:
    """The figure's group label, e.g. ``zipf s=1``, ``uniform (50 % capable)``."""
    name = f"zipf s={zipf_s:g}" if dist == "zipf" else dist
    return name if fraction >= 1.0 else f"{name} ({100 * fraction:g} % capable)"


def points(params: dict[str, Any]) -> list[Point]:
    """One point per (capable fraction, spread), full deployment first."""
    out = []
    for f in sorted(params["capable_fractions"], reverse=True):
        for d in params["distributions"]:
            topo = _topo(params, d, f)
            counts = topo_params(topo).clients_per_as
            out.append(Point(label=f"{d}{'' if f >= 1 else f'-cap{round(100 * f)}'}",
                             speed=stream_speed(params, params["total"] + 1), topo=topo,
                             row={"distribution": group_name(d, f, params["zipf_s"]), "spread": d,
                                  "capable_fraction": f, "max_clients_per_as": max(counts)}))
    return out


def run(ctx: Any) -> int:
    """Each spread and deployment level, both modes; check delivery and measured == model."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    return report(ctx, rows, extra_problems=problems)
