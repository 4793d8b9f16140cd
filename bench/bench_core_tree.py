"""Time to bring the paper topology up and down with a tree core routed by FRR, beside the star core.

For each number of client ASes (default 50, 5 clients each, one Mininet host per
client), one run with the star core and one with ``core=tree`` (``transit`` =
ASes / 10 transit routers, at least 2), ``--runs`` runs each (median reported).
Phases, in the order a run goes through them:

* ``net_up``: ``Testbed.start()`` (Mininet: nodes, links, bridges, static routes);
* ``routing_up``: ``testbed.net.frr.start_routing`` (tree only: zebra and ospfd on
  every core router started and ready, then every OSPF adjacency Full and every
  RLOC subnet in every core router's kernel table; 0 for the star);
* ``lisp_up``: ``testbed.session.start_lisp`` minus ``routing_up`` (map-server and
  an xTR per AS ready: every xTR's first Map-Register acknowledged, which needs the
  core to route);
* ``down``: ``Testbed.stop()`` (every daemon, FRR included, then Mininet).

Timings start after the machine-wide testbed lock is ours. Run as root::

    .venv/bin/python bench/bench_core_tree.py [--ases 50] [--clients 5] [--runs 1]

Writes docs/bench-results/core_tree.json; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
import common  # noqa: E402


def one_run(ases: int, clients: int, core: str) -> dict[str, Any]:
    """Up (network, routing, LISP) and down once; seconds per phase."""
    from testbed.addressing import make_plan
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    from testbed.session import start_lisp

    values: dict[str, Any] = {"ases": ases, "clients": clients, "client_hosts": "per-client", "core": core}
    if core == "tree":
        values["transit"] = max(2, ases // 10)
    plan = make_plan(topo_params(values))
    rundir = common.scratch_rundir(f"core-{core}-{ases}")
    waited = common.take_lock()
    tb = Testbed(plan, rundir)
    out: dict[str, Any] = {"core": core, "transit": plan.params.transit, "lock_wait_s": round(waited, 1),
                           "load_before": common.loadavg()}
    try:
        t0 = time.monotonic()
        tb.start()
        t1 = time.monotonic()
        out["nodes"] = len(tb.net.hosts)
        start_lisp(tb, plan, rundir, {})
        t2 = time.monotonic()
        frr_state = os.path.join(rundir, "state", "frr.json")
        routing = 0.0
        if os.path.exists(frr_state):
            with open(frr_state) as fh:
                info = json.load(fh)
            routing = float(info.get("converged_s", 0.0))
            out["ospf_converged_s"] = routing
    finally:
        t3 = time.monotonic()
        tb.stop()
        t4 = time.monotonic()
    out.update(net_up=round(t1 - t0, 2), routing_and_lisp_up=round(t2 - t1, 2), down=round(t4 - t3, 2))
    return out


def main() -> int:
    """Time star and tree for each size; print a table and write the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ases", type=bench_args.count_list(1, 4000), default="50",
                    help="comma-separated numbers of client ASes (each 1..4000)")
    ap.add_argument("--clients", type=bench_args.count(1, 100_000), default=5, help="clients per AS (one host each)")
    ap.add_argument("--runs", type=bench_args.count(1, 100), default=1,
                    help="runs per size and core (the median is reported; 1..100)")
    args = ap.parse_args()
    if not common.need_root():
        return 2
    result: dict[str, Any] = {"bench": "core_tree", **common.machine_info(), "clients_per_as": args.clients,
                              "runs": []}
    print(f"{'ases':>5} {'core':<5} {'transit':>7} {'nodes':>6} {'net up':>8} {'routing+LISP up':>16} "
          f"{'OSPF converged':>15} {'down':>7}")
    for ases in args.ases:
        for core in ("star", "tree"):
            runs = [one_run(ases, args.clients, core) for _ in range(args.runs)]
            med = {k: common.median([r[k] for r in runs]) for k in ("net_up", "routing_and_lisp_up", "down")}
            ospf = common.median([r.get("ospf_converged_s", 0.0) for r in runs])
            row = {"ases": ases, "core": core, "transit": runs[0]["transit"], "nodes": runs[0]["nodes"], **med,
                   "ospf_converged_s": ospf, "every_run": runs}
            result["runs"].append(row)
            print(f"{ases:>5} {core:<5} {row['transit']:>7} {row['nodes']:>6} {med['net_up']:>7.2f}s "
                  f"{med['routing_and_lisp_up']:>15.2f}s {ospf:>14.2f}s {med['down']:>6.2f}s", flush=True)
    result["load_after"] = common.loadavg()
    print(f"written {common.save_result('core_tree', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
