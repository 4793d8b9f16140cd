"""p2p-upload: continuity index and startup delay of the P2P overlay against the peers' upload capacity.

One network (j = 3 ASes x gamma = 10 peers by default) and one P2P stream per upload
capacity (0.8, 1.0, 1.5 and 3 times the stream rate) and policy. Below 1x the swarm cannot
carry the stream (30 peers need 30 copies per chunk; they upload 0.8 x 30 = 24 and the
source 4): the continuity index drops below 1, which is the result, not a failure.
"""

from __future__ import annotations

from typing import Any

from experiments.p2p import DEFAULTS as P2P_DEFAULTS
from experiments.p2p import check_p2p, p2p_report, stream_point
from testbed.nodeutil import ConfigError

DESCRIPTION = "P2P continuity index and startup delay against upload capacity (0.8, 1, 1.5, 3 x the stream rate)"
DEFAULTS: dict[str, Any] = {**{k: v for k, v in P2P_DEFAULTS.items() if k != "gammas"},
                            "gamma": 10, "uploads": "0.8,1,1.5,3", "policies": "random", "baselines": "none"}


def validate(params: dict[str, Any]) -> None:
    """gamma >= 1 and the P2P parameters."""
    g = params["gamma"]
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 1 <= g <= 1000:
        raise ConfigError(f"gamma must be a number within 1..1000, got '{g}'")
    check_p2p(params)


def run(ctx: Any) -> int:
    """One network, one P2P stream per (policy, upload)."""
    p = ctx.params
    j = int(p["ases"])
    k = max(j, round(p["gamma"] * j))
    topo = {"ases": j, "distribution": "uniform", "total": k, "client_hosts": "per-as"}
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        rows = stream_point(ctx, f"g{p['gamma']:g}", topo, {}, p["streams"], p["baselines"])
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        print(f"POINT FAILED: {problems[-1]}", flush=True)
    return p2p_report(ctx, rows, problems)
