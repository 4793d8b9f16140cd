"""p2p: the mesh-pull P2P overlay (random and local selection) against unicast and CoreCast over gamma.

j client ASes (default 3) each hold gamma peers/clients (one host per AS serving all its
EIDs); per point the same audience is streamed by the baselines (``baselines``, through
the per-client path) and by the P2P overlay once per policy and upload capacity. P2P rows
carry the overlay's metrics (docs/p2p.md) and ``links_self_mismatches``: links whose
counters differ from what the peers and the source say they sent across ASes plus
encapsulation (must be 0). A continuity index below 1 is a result, not a failure; a chunk
played with the wrong digest, or a self-consistency mismatch, fails the run.
The overlay's timers default to a short stream (60 chunks at about 9.5 chunks/s):
``buffer_s=2``, ``bm_period_s=0.2``, ``sched_period_s=0.1``, ``request_timeout_s=1`` (slack for a loaded
machine: every peer of an AS shares one process).
"""

from __future__ import annotations

from typing import Any

from experiments.common import check_common, check_rows, format_table, parse_list, reject_swept
from testbed.modes.p2p import P2PMode
from testbed.nodeutil import ConfigError
from testbed.p2p.params import POLICIES, P2PParams

DESCRIPTION = "P2P mesh-pull (random, local) against unicast and CoreCast over gamma: bytes per chunk, continuity"
KNOBS = ("buffer_s", "bm_period_s", "sched_period_s", "request_timeout_s", "partners", "fanout", "view_size")
DEFAULTS: dict[str, Any] = {
    "ases": 3, "gammas": "2,5,10", "chunks": 60, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 0.1,
    "content": "file", "client_hosts": "per-as", "policies": "random,local", "uploads": "2",
    "baselines": "unicast,corecast", "buffer_s": 2.0, "bm_period_s": 0.2, "sched_period_s": 0.1,
    "request_timeout_s": 1.0, "partners": 4, "fanout": 4, "view_size": 20, "streams": "all",
}
"""``streams``: ``all`` (every policy at every upload) or a list ``POLICY:UPLOAD,...`` (e.g. ``random:2,local:2``)."""


def check_p2p(params: dict[str, Any]) -> None:
    """Policies, uploads, baselines and the overlay knobs; one-line ConfigError."""
    check_common(params)
    pols = [p.strip() for p in str(params["policies"]).split(",") if p.strip()]
    if not pols or any(p not in POLICIES for p in pols) or len(set(pols)) != len(pols):
        raise ConfigError(f"policies must list {' and/or '.join(POLICIES)} once each, got '{params['policies']}'")
    params["policies"] = pols
    params["uploads"] = parse_list(params["uploads"], "uploads", float, 0.01, 1000.0)
    base = str(params.get("baselines"))
    params["baselines"] = [] if base in ("", "none", "None") else [b.strip() for b in base.split(",") if b.strip()]
    if any(b not in ("unicast", "corecast") for b in params["baselines"]):
        raise ConfigError(f"baselines must be none or a list of unicast, corecast, got '{base}'")
    params["streams"] = parse_streams(params.get("streams", "all"), pols, params["uploads"])
    for k in KNOBS:
        v = params[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{k} must be a number, got '{v}'")
    try:
        overlay(params, pols[0], params["uploads"][0])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_streams(value: Any, policies: list[str], uploads: list[float]) -> list[tuple[str, float]]:
    """``all`` -> every (policy, upload); else ``POLICY:UPLOAD,...``; one-line ConfigError."""
    if str(value) == "all":
        return [(p, u) for p in policies for u in uploads]
    out = []
    for item in str(value).split(","):
        pol, _, up = item.strip().partition(":")
        try:
            upload = float(up)
        except ValueError:
            upload = -1.0
        if pol not in POLICIES or not 0.01 <= upload <= 1000:
            raise ConfigError(f"streams must be 'all' or POLICY:UPLOAD,... (policy random or local, upload "
                              f"0.01..1000), got '{value}'")
        out.append((pol, upload))
    return out


def overlay(params: dict[str, Any], policy: str, upload: float) -> P2PParams:
    """The overlay's parameters for one stream."""
    kw = {k: params[k] for k in KNOBS}
    for k in ("partners", "fanout", "view_size"):
        if kw[k] != int(kw[k]):
            raise ValueError(f"{k} must be a whole number, got {kw[k]}")
        kw[k] = int(kw[k])
    kw["max_partners"] = max(2 * kw["partners"], kw["partners"])
    return P2PParams(policy=policy, upload=float(upload), **{k: (float(v) if k.endswith("_s") else v)
                                                            for k, v in kw.items()})


def validate(params: dict[str, Any]) -> None:
    """Gammas (each >= 1) and the P2P parameters."""
    reject_swept(params, DEFAULTS, ("clients", "total", "distribution"), "choose the points with gammas=2,5,...")
    params["gammas"] = parse_list(params["gammas"], "gammas", float, 1.0, 1000.0)
    if len(set(params["gammas"])) != len(params["gammas"]):
        raise ConfigError("gammas lists a value twice")
    check_p2p(params)


def stream_point(ctx: Any, label: str, topo: dict[str, Any], extra: dict[str, Any],
                 streams: list[tuple[str, float]], baselines: list[str], churn: Any = None) -> list[dict[str, Any]]:
    """One network: the baselines, then one P2P stream per (policy, upload); rows recorded as they come."""
    rows = []
    with ctx.network(label, **topo) as net:
        for mode in baselines:
            row = net.stream(ctx.spec(mode))
            row.update(extra)
            ctx.record(row)
            rows.append(row)
        mode = P2PMode(net)
        for policy, upload in streams:
            row = mode.stream(ctx.spec(P2PMode), overlay(ctx.params, policy, upload),
                              churn(net) if churn else None)
            row.update(extra)
            ctx.record(row)
            rows.append(row)
    return rows


def p2p_report(ctx: Any, rows: list[dict[str, Any]], problems: list[str]) -> int:
    """Print the table; fail on baseline problems, corrupt P2P chunks or self-consistency mismatches."""
    base = [r for r in rows if r["mode"] != "p2p"]
    p2p = [r for r in rows if r["mode"] == "p2p"]
    problems = list(problems) + check_rows(base)
    for r in p2p:
        where = f"{r['point']} p2p {r['policy']} {r['upload']:g}x"
        if r["corrupt_chunks"]:
            problems.append(f"{where}: {r['corrupt_chunks']} chunks played with a digest the source never sent")
        if r["links_self_mismatches"]:
            problems.append(f"{where}: {r['links_self_mismatches']} links differ from the peers' own counters")
    if base:
        print(format_table(base))
    for r in p2p:
        print(f"{r['point']:>6} p2p {r['policy']:>6} upload {r['upload']:>4g}x: continuity {r['continuity']:.4f} "
              f"(min {r['min_continuity']:.4f}), startup {r['median_startup_s']} s, "
              f"interdomain {r['interdomain_bytes'] / max(1, r['chunks']):.0f} B/chunk, "
              f"source uplink {r['core_bytes'] / max(1, r['chunks']):.0f} B/chunk")
    for p in problems:
        print(f"CHECK FAILED: {p}")
    ctx.run.update(summary={"rows": len(rows), "problems": problems})
    return 1 if problems else 0


def run(ctx: Any) -> int:
    """Sweep gamma: per point the baselines and every (policy, upload) P2P stream."""
    p = ctx.params
    j = int(p["ases"])
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    streams = p["streams"]
    for g in ctx.points(sorted(p["gammas"])):
        k = max(j, round(g * j))
        topo = {"ases": j, "distribution": "uniform", "total": k, "client_hosts": "per-as"}
        try:
            rows += stream_point(ctx, f"g{g:g}", topo, {}, streams, p["baselines"])
        except Exception as exc:  # one broken point must not lose the others
            msg = f"g{g:g}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"POINT FAILED: {msg}", flush=True)
            problems.append(msg)
    return p2p_report(ctx, rows, problems)
