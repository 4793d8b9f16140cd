"""channel-change: join-to-playback delay of P2P peers with churn, beside unicast and CoreCast joins.

P2P: j = 3 ASes x gamma = 10 peers; the first ``initial`` peers of each AS join before the
stream, the others join one by one every 1/``join_rate`` s from ``join_after_s`` on, and
``leaves`` of the initial peers leave at ``leave_rate`` per second meanwhile (churn). Each
joiner's startup delay (JOIN to playback start, with the overlay's ``buffer_s``, by
default the literature's 10 s) is a row. Unicast and CoreCast: the ``join`` experiment's
joins (``reps`` warm and cold joins, join to first chunk) on their own networks. The
figure is the CDF of all three.
"""

from __future__ import annotations

import math
from typing import Any

from experiments import join as join_exp
from experiments.p2p import DEFAULTS as P2P_DEFAULTS
from experiments.p2p import check_p2p
from testbed.modes.p2p import P2PMode
from testbed.nodeutil import ConfigError

DESCRIPTION = "channel-change delay CDF: P2P joins under churn (B = 10 s) against unicast and CoreCast joins"
DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in P2P_DEFAULTS.items() if k not in ("gammas", "chunks")},
    "gamma": 10, "uploads": "2", "policies": "random", "buffer_s": 10.0, "request_timeout_s": 1.0,
    "initial": 6, "join_after_s": 3.0, "join_rate": 1.0, "leaves": 3, "leave_rate": 0.5,
    "baselines": "unicast,corecast", "reps": 5, "gap_s": 0.3, "lead_s": 1.0, "tail_s": 1.0,
}


def validate(params: dict[str, Any]) -> None:
    """The churn schedule, the P2P parameters and the join experiment's (reps, gaps)."""
    for key in ("gamma", "initial", "join_after_s", "join_rate", "leaves", "leave_rate", "reps", "gap_s",
                "lead_s", "tail_s"):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"{key} must be a non-negative number, got '{v}'")
    if not 1 <= params["gamma"] <= 1000 or params["initial"] < 1 or params["initial"] > params["gamma"]:
        raise ConfigError("need 1 <= initial <= gamma <= 1000")
    if params["leaves"] > params["initial"] - 1:
        raise ConfigError("leaves must leave at least one initial peer per AS")
    if params["join_rate"] <= 0 or params["leave_rate"] <= 0:
        raise ConfigError("join_rate and leave_rate must be > 0")
    if not 1 <= params["reps"] <= join_exp.MAX_REPS:
        raise ConfigError(f"reps must be within 1..{join_exp.MAX_REPS}")
    check_p2p(params)


def churn_schedule(plan: Any, params: dict[str, Any]) -> tuple[dict[str, tuple[float | None, float | None]], float]:
    """Peer EID -> (join, leave) offsets from the stream's start (None: at once / never), and the stream
    length (s) the last joiner needs to fill its buffer and play a little."""
    churn: dict[str, tuple[float | None, float | None]] = {}
    joins = leaves = 0
    last = 0.0
    for a in plan.client_ases:
        eids = [e for _h, e in a.clients]
        initial = int(params["initial"])
        for eid in eids[initial:]:
            t = params["join_after_s"] + joins / params["join_rate"]
            churn[eid] = (t, None)
            last = max(last, t)
            joins += 1
        for eid in eids[:int(params["leaves"])]:
            churn[eid] = (None, params["join_after_s"] + leaves / params["leave_rate"])
            leaves += 1
    return churn, last + params["buffer_s"] + 4 * params["request_timeout_s"] + 2.0


def run(ctx: Any) -> int:
    """The P2P churn stream, then the join experiment's unicast and CoreCast points."""
    p = ctx.params
    j = int(p["ases"])
    k = max(j, round(p["gamma"] * j))
    rows, problems = [], []
    policy, upload = p["streams"][0]
    try:
        topo = {"ases": j, "distribution": "uniform", "total": k, "client_hosts": "per-as"}
        with ctx.network("churn", **topo) as net:
            churn, seconds = churn_schedule(net.plan, p)
            rate = p["bitrate"] * p["speed"] / (8 * p["chunk_bytes"])
            spec = ctx.spec(P2PMode, chunks=math.ceil(seconds * rate))
            from experiments.p2p import overlay
            row = P2PMode(net).stream(spec, overlay(p, policy, upload), churn)
        import json
        import os
        with open(os.path.join(ctx.run.path, "records", "churn-p2p", "startup.json")) as fh:
            every = json.load(fh)
        delays = {e: d for e, d in every.items() if churn.get(e, (None, None))[0] is not None and d is not None}
        for eid, d in delays.items():
            ctx.record({**row, "row_kind": "join", "eid": eid, "join_delay_s": d})
        rows.append(row)
        print(f"p2p: {len(delays)} joins under churn, median startup {sorted(delays.values())[len(delays) // 2]:.2f} s,"
              f" continuity {row['continuity']:.4f}", flush=True)
    except Exception as exc:
        problems.append(f"p2p churn: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        print(f"POINT FAILED: {problems[-1]}", flush=True)
    points = join_exp.points({**p, "modes": ",".join(p["baselines"])}) if p["baselines"] else []
    for point in points:
        try:
            stream_row, joins = join_exp._one(ctx, point)
        except Exception as exc:
            problems.append(f"{point.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"POINT FAILED: {problems[-1]}", flush=True)
            continue
        for jr in joins:
            ctx.record({**jr, "row_kind": "join"})
        print(join_exp._summary(point.modes[0], joins, stream_row), flush=True)
    for r in rows:
        if r["corrupt_chunks"] or r["links_self_mismatches"]:
            problems.append(f"p2p churn: {r['corrupt_chunks']} corrupt chunks, {r['links_self_mismatches']} "
                            "links differ from the peers' counters")
    for pr in problems:
        print(f"CHECK FAILED: {pr}")
    ctx.run.update(summary={"rows": len(rows), "problems": problems})
    return 1 if problems else 0
