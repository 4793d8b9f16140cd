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
"""

from __future__ import annotations

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
    """One join network per source-joined mode on the star (join's topology, ``join_reps`` cold and warm joins)."""
    if not params["join_reps"]:
        return []
    jp = dict(params, reps=params["join_reps"], speed=params["join_speed"])
    return [Point(label=f"join-{m}", topo=join_exp.topology(jp), speed=params["join_speed"], modes=(m,),
                  chunks=join_exp.stream_chunks(jp), row={"core": "star", "part": "join"})
            for m in modes_of(params) if source_joined(m)]


def run(ctx: Any) -> int:
    """The bytes sweep on each core, then the joins; check delivery and measured == model."""
    ctx.params.setdefault("reps", ctx.params["join_reps"])  # what experiments.join reads
    rows, problems, skipped = [], [], []
    bpoints, jpoints = points(ctx.params), join_points(ctx.params)
    if ctx.params["join_reps"]:
        for m in modes_of(ctx.params):
            if not source_joined(m):
                skipped.append(f"join-{m}: its clients join (S,G) themselves (IGMPv3), not through the source: "
                               "the join procedure does not apply (lispmc: bench/bench_lispmc_join.py)")
                print(f"SKIPPED: {skipped[-1]}", flush=True)
    for point in ctx.points(bpoints + jpoints):
        if point.row["part"] == "bytes":
            r, p, s = run_point(ctx, point)
            rows += r
            problems += p
            skipped += s
            continue
        try:
            stream, joins = join_exp._one(ctx, point)
        except Exception as exc:  # keep the other modes
            problems.append(f"{point.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"POINT FAILED: {problems[-1]}", flush=True)
            continue
        for j in joins:
            j.update(point.row)
            ctx.record(j)
        missing = [j["eid"] for j in joins if j["join_delay_s"] is None]
        if missing:
            problems.append(f"{point.label}: {len(missing)} joined clients never got a chunk, e.g. {missing[0]}")
        problems += check_rows([stream])
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
