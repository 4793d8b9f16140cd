"""compare: every network-layer delivery mode against gamma, on the star and on a tree core.

j client ASes (default 10) hold gamma clients each (k = gamma j, up to 1,000 at
gamma = 100, one receiver host per AS). Per core shape and gamma one network
streams a short stream in every mode (default: every mode registered in
:data:`testbed.modes.MODES` apart from application-layer ones; a mode that does not run
on a core shape, e.g. ``corecast-src`` on a tree, says so in one line and is skipped
there). Rows carry the bytes on the source uplink (``core_bytes``), summed over
inter-domain links (``interdomain_bytes``), their model values and the router state
(``state_*``, :mod:`testbed.routerstate`). Then the join delay per mode, cold and
warm, as in the ``join`` experiment (:mod:`experiments.join`, reused): rows with
``part = join``.

Modes whose clients join by themselves (an (S,G) join with IGMPv3: ``lispmc``,
``ipmc``) are timed the same way with the join made by the client: each client host
(one per client here) joins (S,G) when the experiment drops a file named after its EID
in a join directory (client config ``ssm_join_dir``); the join time is the client's
own (``ssm_joined`` in its status, taken at ``IP_ADD_SOURCE_MEMBERSHIP``) and the
first chunk its first arrival. *Warm*: another host of AS 1, whose LAN already
carries the channel; *cold*: the first receiver of an AS, so the tree (PIM) or the
ITR's replication list (RFC 8378) must grow to it. Delivery and the model take each
such client's audience from its first chunk on (:func:`sg_audience`).
"""

from __future__ import annotations

import os
import time
from typing import Any

from experiments import join as join_exp
from experiments.common import Point, check_common, check_rows, format_table, parse_list, reject_swept, stream_speed
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS_PER_AS, MAX_TRANSIT

DESCRIPTION = "every network-layer mode against gamma on a star and a tree core: bytes, join delay, router state"
DEFAULTS: dict[str, Any] = {
    "ases": 10, "gammas": "1,10,100", "cores": "star,tree", "tree_transit": 3, "chunks": 20, "chunk_bytes": 1316,
    "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000, "content": "file", "client_hosts": "per-as",
    "join_reps": 3, "gap_s": 0.3, "lead_s": 0.5, "tail_s": 0.5, "join_speed": 1.0,
}
CORES = ("star", "tree")
SG_TAIL_S = 2.0
"""Seconds added to the stream's tail for modes whose clients join (S,G) themselves: a cold lispmc join waits
for the ITR's next re-resolution (0.5 s by default, docs/lispmc.md), and the last join is a cold one."""


def network_modes() -> tuple[str, ...]:
    """Every registered network-layer mode (a mode class may say ``layer = "application"`` to stay out)."""
    from testbed.modes import MODES
    return tuple(n for n, cls in MODES.items() if getattr(cls, "layer", "network") == "network")


def validate(params: dict[str, Any]) -> None:
    """Check gammas (>= 1), cores (star, tree), transit routers, the join repetitions and the stream parameters."""
    check_common(params)
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution", "core", "transit"),
                 "choose gammas=..., cores=star,tree and tree_transit=N")
    params["gammas"] = parse_list(params["gammas"], "gammas", float, 1.0, float(MAX_CLIENTS_PER_AS))
    cores = [c.strip() for c in str(params["cores"]).split(",") if c.strip()]
    if not cores or any(c not in CORES for c in cores) or len(set(cores)) != len(cores):
        raise ConfigError(f"cores must list star and/or tree once each, got '{params['cores']}'")
    params["cores"] = cores
    t = params["tree_transit"]
    if t == DEFAULTS["tree_transit"]:  # the default fits small runs too
        t = params["tree_transit"] = min(t, params["ases"])
    bad = isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= min(params["ases"], MAX_TRANSIT)
    if "tree" in cores and bad:
        raise ConfigError(f"tree_transit must be a whole number within 1..{min(params['ases'], MAX_TRANSIT)}, "
                          f"got '{t}'")
    if not 0 <= params["join_reps"] <= join_exp.MAX_REPS:
        raise ConfigError(f"join_reps must be within 0..{join_exp.MAX_REPS}, got {params['join_reps']}")
    if params["join_reps"] and params["gap_s"] * params["bitrate"] / (8.0 * params["chunk_bytes"]) \
            * params["join_speed"] < 2:
        raise ConfigError("gap_s is shorter than two chunk intervals at join_speed: joins would overlap")


def modes_of(params: dict[str, Any]) -> tuple[str, ...]:
    """The modes to compare: the ``modes`` parameter, else every network-layer mode."""
    from testbed.modes import selected_modes
    return selected_modes(params) if params.get("modes") else network_modes()


def points(params: dict[str, Any]) -> list[Point]:
    """One point per (core, gamma): k = round(gamma j) clients spread evenly over the j ASes."""
    j = params["ases"]
    out = []
    for core in params["cores"]:
        topo_core = {"core": core, **({"transit": params["tree_transit"]} if core == "tree" else {})}
        for g in sorted(params["gammas"]):
            k = max(j, round(g * j))
            out.append(Point(label=f"{core}-g{g:g}", speed=stream_speed(params, k + 1), modes=modes_of(params),
                             topo={"ases": j, "distribution": "uniform", "total": k, **topo_core},
                             row={"core": core, "part": "bytes"}))
    return out


def run_point(ctx: Any, point: Point) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Stream every mode on the point's network: (rows, problems, skipped modes with their one-line reason)."""
    rows, problems, skipped = [], [], []
    with ctx.network(point.label, **point.topo) as net:
        for mode in point.modes or ():
            try:
                row = net.stream(ctx.spec(mode, speed=point.speed))
            except ConfigError as exc:  # the mode does not run on this core shape
                skipped.append(f"{point.label} {mode}: {exc}")
                print(f"SKIPPED: {skipped[-1]}", flush=True)
                continue
            except Exception as exc:  # keep the other modes of the point
                problems.append(f"{point.label} {mode}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                print(f"MODE FAILED: {problems[-1]}", flush=True)
                continue
            row.update(point.row)
            ctx.record(row)
            rows.append(row)
    return rows, problems, skipped


def source_joined(mode: str) -> bool:
    """Whether the source decides the mode's audience (its ``join`` command), as the join procedure needs.

    Modes whose clients join by themselves (a ``client_config``, e.g. an (S,G) join with
    IGMPv3 in ``lispmc`` and ``ipmc``) are already receiving when the source hears of a join.
    """
    from testbed.modes import get_mode
    return not get_mode(mode)(None).client_config()


def join_points(params: dict[str, Any]) -> list[Point]:
    """One join network per mode on the star (join's topology, ``join_reps`` cold and warm joins); a mode whose
    clients join (S,G) themselves gets one host per client (each host's join is its own)."""
    from testbed.modes import get_mode
    if not params["join_reps"]:
        return []
    jp = dict(params, reps=params["join_reps"], speed=params["join_speed"])
    sg = dict(jp, tail_s=jp["tail_s"] + SG_TAIL_S)
    return [Point(label=f"join-{m}", speed=params["join_speed"], modes=(m,),
                  chunks=join_exp.stream_chunks(jp if source_joined(m) else sg),
                  topo={**join_exp.topology(jp), **({} if source_joined(m) else {"client_hosts": "per-client"})},
                  row={"core": "star", "part": "join"})
            for m in modes_of(params) if getattr(get_mode(m), "layer", "network") == "network"]  # p2p: channel-change


def sg_audience(src: Any, receipts: dict[str, Any], clients: list[Any]) -> Any:
    """The source record with a join event for every client that joined (S,G) by itself.

    Each event is dated by the client's own join (``ssm_joined`` in its status) and
    applies from the first chunk it received (the chunk whose digest arrived first,
    the last one sent before that arrival): what the tree carried to it. An initial
    client the source already lists keeps its own event. (testbed.measure's ``audience`` hook.)
    """
    import dataclasses

    import numpy as np

    from testbed.nodeutil import read_status
    from testbed.stream.destinations import Event
    known = {ev.eid for ev in src.events if ev.kind == "join"}
    events = list(src.events)
    for daemon in clients:
        joined = read_status(daemon.config["status_file"]).get("ssm_joined")
        for eid in daemon.config.get("eids", []):
            rec = receipts.get(eid)
            if joined is None or eid in known or rec is None or not len(rec.times):
                continue
            sent = np.nonzero((src.digests == rec.digests[0]) & (src.times <= rec.times[0]))[0]
            if len(sent):
                events.append(Event(float(joined), "join", eid, int(daemon.config["port"]),
                                    int(src.seqs[sent[-1]])))
    events.sort(key=lambda ev: ev.seq)
    return dataclasses.replace(src, events=events)


def _sg_joiner(params: dict[str, Any], jdir: str, schedule: list[tuple[str, str]]):
    """The stream helper: once the source streams, drop each joiner's file ``gap_s`` apart (warm, cold, ...)."""
    def during(source: Any) -> None:
        from testbed.nodeutil import read_status
        deadline = time.monotonic() + 30
        while read_status(source.config["status_file"]).get("state") != "streaming":
            if time.monotonic() > deadline:
                raise RuntimeError("the source did not start streaming within 30 s")
            time.sleep(0.05)
        time.sleep(params["lead_s"])
        for _cache, eid in schedule:
            open(os.path.join(jdir, eid), "w").close()
            time.sleep(params["gap_s"])
    return during


def check_sg_stream(row: dict[str, Any], joins: list[dict[str, Any]]) -> list[str]:
    """Problems of an (S,G) join stream: :func:`check_rows`, except that the inter-domain links may carry up
    to one copy per cold join more than the model fed with the clients' first chunks.

    Seen with ``ipmc``: at a cold join (a graft) the grafted AS's link sometimes carries one copy its
    client never receives (the first packet of the new (S,G) at that router); the excess is in the
    join rows as ``graft_extra_bytes``. Anything else off the model, or an excess above one copy per
    cold join, is a problem.
    """
    cold = sum(1 for j in joins if j["cache"] == "cold")
    extra = row["interdomain_bytes"] - row["model_interdomain_bytes"]
    for j in joins:
        j["graft_extra_bytes"] = extra
    problems = check_rows([{**row, "model_interdomain_bytes": row["interdomain_bytes"]}])
    if not 0 <= extra <= cold * (64 + row["chunk_bytes"]):
        problems.append(f"{row['point']} {row['mode']}: inter-domain bytes {row['interdomain_bytes']} vs model "
                        f"{row['model_interdomain_bytes']} (more than one copy per cold join, or fewer)")
    return problems


def sg_join_point(ctx: Any, point: Point) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One stream of a self-joining mode with timed (S,G) joins: (the stream's row, a row per join)."""
    from testbed.measure import CLIENT_PORT
    from testbed.modes import get_mode
    mode = point.modes[0]
    with ctx.network(point.label, warm_ases=[1], **point.topo) as net:
        plan = net.plan
        schedule = join_exp.join_schedule(plan, ctx.params["reps"])
        jdir = os.path.join(ctx.run.path, "state", f"{point.label}-joins")
        os.makedirs(jdir, exist_ok=True)
        initial = plan.client_ases[0].clients[0][1]
        open(os.path.join(jdir, initial), "w").close()  # the initial client joins as it starts
        instance = net.mode(get_mode(mode))
        if hasattr(instance, "members"):  # ipmc: wait for the tree to AS 1 only, the others join later
            instance.members = {plan.client_ases[0].number}
        spec = ctx.spec(mode, speed=point.speed, chunks=point.chunks,
                        extra={"source": {"clients": [[initial, CLIENT_PORT]]}, "client": {"ssm_join_dir": jdir},
                               "audience": sg_audience})
        row = net.stream(spec, during=_sg_joiner(ctx.params, jdir, schedule))
        report, src = net.last_report, net.last_source_record
    sent_at = dict(zip(src.seqs.tolist(), src.times.tolist()))
    first = {ev.eid: ev for ev in src.events if ev.kind == "join"}
    joins = []
    for n, (cache, eid) in enumerate(schedule):
        ev, d = first.get(eid), report.eids.get(eid)
        t_join, t_first = (d.join_delays[0] if d is not None and d.join_delays else (None, None))
        t_send = sent_at.get(ev.seq) if ev is not None else None
        joins.append({**row, "cache": cache, "join": n + 1, "eid": eid, "join_seq": ev.seq if ev else None,
                      "join_delay_s": round(t_first - t_join, 6) if t_first is not None else None,
                      "wait_s": round(t_send - t_join, 6) if t_send is not None else None,
                      "transit_s": round(t_first - t_send, 6) if t_first is not None and t_send is not None else None,
                      "eid_delivered": d.delivered if d else 0, "eid_expected": d.expected if d else 0})
    return row, joins


def run(ctx: Any) -> int:
    """The bytes sweep on each core, then the joins; check delivery and measured == model."""
    ctx.params.setdefault("reps", ctx.params["join_reps"])  # what experiments.join reads
    rows, problems, skipped = [], [], []
    bpoints, jpoints = points(ctx.params), join_points(ctx.params)
    for point in ctx.points(bpoints + jpoints):
        if point.row["part"] == "bytes":
            r, p, s = run_point(ctx, point)
            rows += r
            problems += p
            skipped += s
            continue
        try:
            one = join_exp._one if source_joined(point.modes[0]) else sg_join_point
            stream, joins = one(ctx, point)
        except Exception as exc:  # keep the other modes
            problems.append(f"{point.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"POINT FAILED: {problems[-1]}", flush=True)
            continue
        problems += check_rows([stream]) if source_joined(point.modes[0]) else check_sg_stream(stream, joins)
        for j in joins:
            j.update(point.row)
            ctx.record(j)
        missing = [j["eid"] for j in joins if j["join_delay_s"] is None]
        if missing:
            problems.append(f"{point.label}: {len(missing)} joined clients never got a chunk, e.g. {missing[0]}")
        print(join_exp._summary(point.modes[0], joins, stream), flush=True)
    print(format_table(rows))
    problems += check_rows(rows)
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print(f"all {len(rows)} streams and {len(jpoints)} join streams: every client received every chunk intact; "
              "measured bytes equal the model on the source uplink and summed over inter-domain links")
    print(format_state(rows))
    ctx.run.update(summary={"rows": len(rows), "problems": problems, "skipped": skipped})
    return 1 if problems else 0


def format_state(rows: list[dict[str, Any]]) -> str:
    """Bytes per chunk (source uplink, inter-domain) and router state per point and mode."""
    head = f"{'point':<12} {'mode':<15} {'uplink B/chunk':>15} {'interdom B/chunk':>17} {'map-cache':>9} " \
           f"{'cc chunks':>9} {'repl':>6} {'ms (S,G)':>8} {'mroutes':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        n = max(1, r["chunks"])
        lines.append(f"{r['point']:<12} {r['mode']:<15} {r['core_bytes'] / n:>15.0f} "
                     f"{r['interdomain_bytes'] / n:>17.0f} {r['state_map_cache']:>9} {r['state_cc_chunks']:>9} "
                     f"{r['state_repl_entries']:>6} {r['state_ms_sg']:>8} {r['state_mroutes']:>7}")
    return "\n".join(lines)
