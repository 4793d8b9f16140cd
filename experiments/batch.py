"""batch: CoreCast with REF-LISTs (issue 15) against gamma: bytes per chunk on the source AS's uplink for
unicast, corecast (a REF per client), corecast-batch (the ITR batches) and corecast-src (the source reads the
mapping system), on the model's lines, with the floor j(48+P), one copy per receiving ETR, marked.

j client ASes (default 2, all capable) hold gamma clients each; every point streams every mode of the
``modes`` parameter (default the four) over one topology; delivery is checked chunk by chunk per client and
the measured core bytes must equal the model to the byte. ``corecast-src`` needs core=star.
"""

from __future__ import annotations

from typing import Any

from experiments.common import (Point, check_common, parse_list, reject_swept, report, run_sweep,
                                stream_speed)
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS_PER_AS

DESCRIPTION = "REF-LISTs against gamma: unicast, corecast, corecast-batch, corecast-src, and the floor j(48+P)"
DEFAULTS: dict[str, Any] = {
    "ases": 2, "gammas": "1,10,100", "chunks": 20, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 10.0,
    "max_pps": 15000, "content": "file", "client_hosts": "per-as",
}
MODES = "unicast,corecast,corecast-batch,corecast-src"
"""The modes streamed when ``modes`` is not set."""


def validate(params: dict[str, Any]) -> None:
    """Check the gamma list (each >= 1, distinct) and the stream parameters."""
    check_common(params)
    params.setdefault("modes", MODES)
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution"), "choose the points with gammas=1,10,...")
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
    """Sweep gamma, every mode per point; check delivery and measured == model; print the floor ratios."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    code = report(ctx, rows, extra_problems=problems)
    for r in rows:
        floor = r["active_ases"] * (48 + r["chunk_bytes"]) if "active_ases" in r else None
        if floor and r["chunks"]:
            print(f"gamma {r['gamma']:>7.2f} {r['mode']:>15}: {r['core_bytes'] / r['chunks']:>10.0f} B/chunk, "
                  f"{r['core_bytes'] / r['chunks'] / floor:6.3f} x the floor j(48+P)")
    return code
