"""join: channel-change delay, from a client's join to its first chunk, with a cold and a warm map-cache.

One stream runs to one client in AS 1 (resolved at the source ITR before the
stream: warm). During the stream, clients join through the source's control
socket, alternating: a *warm* join (another client of AS 1) and a *cold* join (the
first client of an AS the ITR has never resolved, so its first packet waits for a
Map-Request/Map-Reply). The delay is the client's first arrival (kernel
timestamp) minus the join time the source recorded; part of it is the wait for the
next chunk on the pacer's grid (``wait_s``). Each mode runs in a fresh network
(a cold AS is cold only once). The paper cites 10-20 s for P2P systems.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Any

from experiments.common import Point, chunk_rate, check_common, check_rows, model_error
from testbed import model
from testbed.modes import selected_modes
from testbed.nodeutil import ConfigError

DESCRIPTION = ("channel-change delay (join to first chunk), cold vs warm map-cache, "
               "unicast and CoreCast (or --set modes=), 20 joins of each kind")
DEFAULTS: dict[str, Any] = {
    "reps": 20, "gap_s": 0.3, "lead_s": 1.0, "tail_s": 1.0, "chunk_bytes": 1316, "bitrate": 1_000_000,
    "speed": 1.0, "content": "file", "client_hosts": "per-as",
}
MAX_REPS = 100


def validate(params: dict[str, Any]) -> None:
    """Check the repetitions (1..100: one cold AS each), the gaps and the stream parameters."""
    check_common(params)
    for key in ("ases", "clients", "total", "distribution", "capable"):
        if key in params and key not in DEFAULTS:
            raise ConfigError(f"{key} is set by this experiment (one warm AS and one cold AS per repetition); "
                              "choose reps=N")
    if not 1 <= params["reps"] <= MAX_REPS:
        raise ConfigError(f"reps must be within 1..{MAX_REPS}, got {params['reps']}")
    for key in ("gap_s", "lead_s"):
        if params[key] <= 0:
            raise ConfigError(f"{key} must be positive, got {params[key]}")
    if params["gap_s"] * chunk_rate(params) * params["speed"] < 2:
        raise ConfigError("gap_s is shorter than two chunk intervals: joins would overlap")


def topology(params: dict[str, Any]) -> dict[str, Any]:
    """AS 1: the initial client plus ``reps`` warm joiners; ASes 2..reps+1: one cold joiner each."""
    reps = params["reps"]
    return {"ases": reps + 1, "clients": ",".join(map(str, [reps + 1] + [1] * reps))}


def stream_chunks(params: dict[str, Any]) -> int:
    """Chunks to cover the lead time, 2 x reps joins ``gap_s`` apart, and the tail."""
    seconds = params["lead_s"] + 2 * params["reps"] * params["gap_s"] + params["tail_s"]
    return math.ceil(seconds * chunk_rate(params) * params["speed"])


def points(params: dict[str, Any]) -> list[Point]:
    """One fresh network per mode (cold ASes become warm once used)."""
    return [Point(label=f"join-{m}", topo=topology(params), speed=params["speed"], modes=(m,),
                  chunks=stream_chunks(params)) for m in selected_modes(params)]


def join_schedule(plan: Any, reps: int) -> list[tuple[str, str]]:
    """The joins in order: (cache, EID), warm and cold alternating."""
    first_as = plan.client_ases[0]
    warm = [eid for _h, eid in first_as.clients[1:reps + 1]]
    cold = [a.clients[0][1] for a in plan.client_ases[1:reps + 1]]
    out = []
    for w, c in zip(warm, cold):
        out += [("warm", w), ("cold", c)]
    return out


def _control_path(ctx: Any, label: str) -> str:
    path = os.path.join(ctx.run.path, "state", f"{label}.ctl")
    if len(path) < 100:  # a Unix socket path must fit sun_path
        return path
    return os.path.join(tempfile.mkdtemp(prefix="corecast-join-"), "src.ctl")


def _joiner(params: dict[str, Any], path: str, schedule: list[tuple[str, str]], port: int, replies: list[str]):
    from testbed.stream.control import control_request

    def during(source: Any) -> None:
        deadline = time.monotonic() + 30
        while True:  # the pacer runs: joins get a real next chunk
            try:
                with open(source.config["status_file"]) as fh:
                    if json.load(fh).get("state") == "streaming":
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the source did not start streaming within 30 s")
            time.sleep(0.05)
        time.sleep(params["lead_s"])
        for _cache, eid in schedule:
            reply = control_request(path, [f"join {eid} {port}"])
            replies.extend(reply)
            if not reply or not reply[0].startswith("ok join"):
                raise RuntimeError(f"join {eid} refused: {reply}")
            time.sleep(params["gap_s"])
    return during


def join_model_bytes(mode: str, plan: Any, src_rec: Any, chunk_bytes: int) -> int:
    """Core bytes the model predicts for a stream whose audience grew by joins.

    Each chunk counts the clients that had joined by its sequence number (join events
    of the source record), AS by AS; computed per run of chunks between joins.
    """
    as_of = {eid: i for i, a in enumerate(plan.client_ases) for _h, eid in a.clients}
    capable = [a.capable for a in plan.client_ases]
    joins = sorted((ev.seq, as_of[ev.eid]) for ev in src_rec.events if ev.kind == "join" and ev.eid in as_of)
    seqs = src_rec.seqs
    counts = [0] * len(plan.client_ases)
    total, i = 0, 0
    bounds = sorted({s for s, _ in joins} | {int(seqs.max()) + 1 if len(seqs) else 0})
    lo = 0
    for b in bounds:
        n = int(((seqs >= lo) & (seqs < b)).sum())
        total += n * model.core_bytes_per_chunk(mode, counts, capable, chunk_bytes)
        while i < len(joins) and joins[i][0] == b:
            counts[joins[i][1]] += 1
            i += 1
        lo = b
    return total


def _one(ctx: Any, point: Point) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from testbed.measure import CLIENT_PORT
    mode = point.modes[0]
    with ctx.network(point.label, warm_ases=[1], **point.topo) as net:
        plan = net.plan
        schedule = join_schedule(plan, ctx.params["reps"])
        path = _control_path(ctx, point.label)
        replies: list[str] = []
        initial = plan.client_ases[0].clients[0][1]
        spec = ctx.spec(mode, speed=point.speed, chunks=point.chunks,
                        extra={"source": {"clients": [[initial, CLIENT_PORT]], "control_socket": path}})
        row = net.stream(spec, during=_joiner(ctx.params, path, schedule, CLIENT_PORT, replies))
        report, src = net.last_report, net.last_source_record
    row["model_core_bytes"] = join_model_bytes(mode, plan, src, spec.chunk_bytes)
    sent_at = dict(zip(src.seqs.tolist(), src.times.tolist()))
    seq_of = {ev.eid: ev.seq for ev in src.events if ev.kind == "join"}
    joins = []
    for n, (cache, eid) in enumerate(schedule):
        delays = report.eids[eid].join_delays if eid in report.eids else []
        t_join, t_first = delays[0] if delays else (None, None)
        seq = seq_of.get(eid)
        t_send = sent_at.get(seq)
        joins.append({**row, "cache": cache, "join": n + 1, "eid": eid, "join_seq": seq,
                      "join_delay_s": round(t_first - t_join, 6) if t_first is not None else None,
                      "wait_s": round(t_send - t_join, 6) if t_send is not None else None,
                      "transit_s": round(t_first - t_send, 6) if t_first is not None and t_send is not None else None,
                      "eid_delivered": report.eids[eid].delivered if eid in report.eids else 0,
                      "eid_expected": report.eids[eid].expected if eid in report.eids else 0})
    return row, joins


def run(ctx: Any) -> int:
    """Both modes, a fresh network each; a row per join; check delivery and the join-aware model."""
    streams, problems = [], []
    for point in ctx.points(points(ctx.params)):
        try:
            row, joins = _one(ctx, point)
        except Exception as exc:  # keep the other mode
            problems.append(f"{point.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"POINT FAILED: {problems[-1]}", flush=True)
            continue
        for j in joins:
            ctx.record(j)
        streams.append(row)
        missing = [j["eid"] for j in joins if j["join_delay_s"] is None]
        if missing:
            problems.append(f"{point.label}: {len(missing)} joined clients never got a chunk, e.g. {missing[0]}")
        print(_summary(point.modes[0], joins, row), flush=True)
    problems += check_rows(streams)
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print(f"{len(streams)} streams: every joined client received every chunk from its join on; "
              "core bytes equal the join-aware model within 0.1 %")
    ctx.run.update(summary={"streams": len(streams), "problems": problems,
                            "model_error": {r["mode"]: model_error(r) for r in streams}})
    return 1 if problems else 0


def _summary(mode: str, joins: list[dict[str, Any]], row: dict[str, Any]) -> str:
    lines = [f"{mode}: core {row['core_bytes']} B (model {row['model_core_bytes']}), "
             f"delivered {row['delivered_chunks']}/{row['expected_chunks']}"]
    for cache in ("warm", "cold"):
        d = sorted(1e3 * j["join_delay_s"] for j in joins if j["cache"] == cache and j["join_delay_s"] is not None)
        t = sorted(1e3 * j["transit_s"] for j in joins if j["cache"] == cache and j["transit_s"] is not None)
        if d:
            lines.append(f"  {cache}: join->first chunk median {d[len(d) // 2]:.2f} ms (min {d[0]:.2f}, "
                         f"max {d[-1]:.2f}); send->arrival median {t[len(t) // 2] if t else float('nan'):.2f} ms")
    return "\n".join(lines)
