"""load: what CoreCast costs the routers: ITR and ETR packet rates and CPU against k, memory against stream length.

Sweep ``k`` (fixed j, one chunk rate for every point so packet rates and CPU
compare): packets per second the source ITR sends to the core and the ETRs
deliver to clients, and the CPU seconds of the ITR and of all ETRs over the
stream (from /proc). Sweep ``length`` (one network, k fixed, streams of
increasing length): the ITR's and ETRs' resident memory after each stream, which
stays flat because a CoreCast router keeps one chunk per stream.
"""

from __future__ import annotations

from typing import Any

from experiments.common import (Point, chunk_rate, check_common, parse_list, reject_swept, report, run_sweep,
                                stream_speed)
from testbed.modes import get_mode, selected_modes
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS_PER_AS

DESCRIPTION = "router load: ITR/ETR packets/s and CPU against k (4 ASes, k 40..800), memory against stream length"
DEFAULTS: dict[str, Any] = {
    "ases": 4, "ks": "40,100,200,400,800", "seconds": 10.0, "length_clients": 100,
    "lengths": "250,1000,4000", "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000,
    "content": "file", "client_hosts": "per-as",
}


def validate(params: dict[str, Any]) -> None:
    """Check the k list, the stream lengths (chunks) and the stream time."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution"), "choose the points with ks=... and lengths=...")
    j = params["ases"]
    params["ks"] = parse_list(params["ks"], "ks", int, j, j * MAX_CLIENTS_PER_AS)
    params["lengths"] = parse_list(params["lengths"], "lengths", int, 1, 1_000_000)
    if params["seconds"] <= 0:
        raise ConfigError(f"seconds must be positive, got {params['seconds']}")
    if not j <= params["length_clients"] <= j * MAX_CLIENTS_PER_AS:
        raise ConfigError(f"length_clients must be within {j}..{j * MAX_CLIENTS_PER_AS}, got {params['length_clients']}")


def points(params: dict[str, Any]) -> list[Point]:
    """The k points (one chunk rate for all: the largest k's), then one point for the length sweep."""
    j = params["ases"]
    speed = stream_speed(params, max(params["ks"]) + 1)
    chunks = max(1, round(params["seconds"] * chunk_rate(params) * speed))
    out = [Point(label=f"k{k}", speed=speed, chunks=chunks, row={"sweep": "k"},
                 topo={"ases": j, "distribution": "uniform", "total": k})
           for k in sorted(params["ks"])]
    kl = params["length_clients"]
    out.append(Point(label="length", speed=stream_speed(params, kl + 1), row={"sweep": "length"},
                     topo={"ases": j, "distribution": "uniform", "total": kl}))
    return out


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    """Per-packet CPU cost columns (informational; the figure derives rates from stream_s)."""
    k, chunks = row["clients"], row["chunks"]
    from_source = chunks * get_mode(row["mode"]).model.source_as_packets(k)
    handled = from_source + row["core_packets"]
    return {"source_datagrams": from_source,
            "itr_cpu_us_per_packet": round(1e6 * row["itr_cpu_s"] / handled, 3) if handled else None,
            "etr_cpu_us_per_packet": round(1e6 * row["etr_cpu_s"] / (row["core_packets"] + row["delivered_chunks"]), 3)
            if row["core_packets"] else None}


def _one(ctx: Any, point: Point) -> list[dict[str, Any]]:
    if point.row.get("sweep") != "length":
        rows = []
        with ctx.network(point.label, **point.topo) as net:
            for mode in point.modes or selected_modes(ctx.params):
                row = net.stream(ctx.spec(mode, speed=point.speed, chunks=point.chunks))
                row.update(point.row, **_rates(row))
                ctx.record(row)
                rows.append(row)
        return rows
    rows = []
    with ctx.network(point.label, **point.topo) as net:
        for n in sorted(ctx.params["lengths"]):
            for mode in point.modes or selected_modes(ctx.params):
                row = net.stream(ctx.spec(mode, speed=point.speed, chunks=n))
                row.update(point.row, point=f"length{n}", stream_chunks=n, **_rates(row))
                ctx.record(row)
                rows.append(row)
    return rows


def run(ctx: Any) -> int:
    """Both sweeps; check delivery and measured == model; print rates, CPU and memory."""
    rows, problems = run_sweep(ctx, points(ctx.params), _one)
    code = report(ctx, rows, extra_problems=problems)
    print(f"{'point':<12} {'mode':<9} {'k':>5} {'s':>6} {'ITR->core pps':>13} {'ETR->client pps':>15} "
          f"{'ITR CPU %':>9} {'ETRs CPU %':>10} {'ITR RSS MiB':>11} {'ETR RSS MiB':>11}")
    for r in rows:
        s = r["stream_s"] or 1.0
        print(f"{r['point']:<12} {r['mode']:<9} {r['clients']:>5} {s:>6.1f} {r['core_packets'] / s:>13.0f} "
              f"{r['delivered_chunks'] / s:>15.0f} {100 * r['itr_cpu_s'] / s:>9.1f} {100 * r['etr_cpu_s'] / s:>10.1f} "
              f"{r['itr_rss_kib'] / 1024:>11.1f} {r['etr_rss_kib_max'] / 1024:>11.1f}")
    return code
