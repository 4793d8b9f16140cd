"""Time to bring the paper topology up and down, with and without the LISP daemons.

For ``ases`` = 4, 20 and 50 client ASes of 5 clients each, one Mininet host per
client (``client_hosts=per-client``: 4 ASes = 28 nodes, 20 = 124, 50 = 304,
plus one bridge per AS), ``--runs`` runs each (median reported). One run is
one bring-up timed in phases, in the order :class:`testbed.net.network.Testbed`
does them:

* ``net_up``: ``Testbed.start()`` (Mininet builds and starts every node, link
  and bridge, routes configured);
* ``lisp_up``: ``testbed.session.start_lisp`` (the map-server and an xTR per AS
  started and ready, i.e. every xTR's first Map-Register acknowledged);
* ``lisp_down``: ``Testbed.stop_daemons()`` (SIGTERM, wait for exit);
* ``net_down``: ``Testbed.stop()`` (Mininet stops and deletes everything).

"Without LISP" is ``net_up`` / ``net_down``; "with LISP" is ``net_up + lisp_up``
and ``lisp_down + net_down``. Then ``corecast check --set ases=20 --set
clients=5`` (bring-up, LISP, reachability table incl. cross-AS pings and UDP,
core capture check, tear-down) is timed, once by default: in this process
(what the CLI verb calls), plus the CLI's start-up time.

Timings start after the machine-wide testbed lock is ours (waiting for another
agent's network is not counted). Run as root (about 3 to 4 minutes)::

    .venv/bin/python bench/bench_topology.py [--ases 4,20,50] [--clients 5] [--runs 3] [--check-runs 1]

Writes docs/bench-results/topology.json; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
import common  # noqa: E402

PHASES = ("net_up", "lisp_up", "lisp_down", "net_down")


def one_run(ases: int, clients: int) -> dict[str, Any]:
    """Bring the topology up, start LISP, stop LISP, tear down; return each phase's seconds."""
    from testbed.addressing import make_plan
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    from testbed.session import start_lisp

    plan = make_plan(topo_params({"ases": ases, "clients": clients, "client_hosts": "per-client"}))
    rundir = common.scratch_rundir(f"topology-{ases}")
    waited = common.take_lock()
    tb = Testbed(plan, rundir)
    out: dict[str, Any] = {"lock_wait_s": round(waited, 1)}
    try:
        t0 = time.monotonic()
        tb.start()
        t1 = time.monotonic()
        out["nodes"] = len(tb.net.hosts)
        out["switches"] = len(tb.net.switches)
        start_lisp(tb, plan, rundir, {})
        t2 = time.monotonic()
        tb.stop_daemons()
        t3 = time.monotonic()
    finally:
        t_stop = time.monotonic()
        tb.stop()
        t4 = time.monotonic()
    out.update(net_up=t1 - t0, lisp_up=t2 - t1, lisp_down=t3 - t2, net_down=t4 - t_stop)
    return out


def time_check(ases: int, clients: int) -> dict[str, Any]:
    """Wall time of ``corecast check --set ases=N --set clients=M`` and its verdict.

    The check runs in this process (``testbed.session.check_topology``, what the
    CLI verb calls) once the testbed lock is ours, so waiting for another agent's
    network is not counted; the CLI's own start-up (a fresh interpreter importing
    the CLI, the session and Mininet) is timed apart and added.
    """
    import contextlib
    import io
    from testbed.session import check_topology
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import testbed.cli, testbed.session, testbed.net.network"],
                   cwd=common.ROOT, capture_output=True, timeout=60)
    startup = time.monotonic() - t0
    out = io.StringIO()
    waited = common.take_lock()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = check_topology([f"ases={ases}", f"clients={clients}"], lisp=True,
                              out=common.scratch_rundir(f"check-{ases}"))
    wall = time.monotonic() - t0
    last = (out.getvalue().strip().splitlines() or [""])[-1]
    return {"command": f"corecast check --set ases={ases} --set clients={clients}",
            "wall_s": round(wall + startup, 2), "in_process_s": round(wall, 2), "cli_startup_s": round(startup, 2),
            "exit": code, "passed": code == 0, "last_line": last, "lock_wait_s": round(waited, 1)}


def main() -> int:
    """Time every size, then the check command; print a table and write the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ases", type=bench_args.count_list(1, 4000), default="4,20,50",
                    help="comma-separated numbers of client ASes (each 1..4000)")
    ap.add_argument("--clients", type=bench_args.count(1, 100_000), default=5, help="clients per AS (one host each)")
    ap.add_argument("--runs", type=bench_args.count(1, 100), default=3,
                    help="runs per size (the median is reported; 1..100)")
    ap.add_argument("--check-runs", type=bench_args.count(0, 100), default=1,
                    help="timed runs of 'corecast check' (0: skip)")
    ap.add_argument("--check-ases", type=bench_args.count(1, 4000), default=20,
                    help="client ASes of the timed 'corecast check' (1..4000)")
    args = ap.parse_args()
    if not common.need_root():
        return 2
    sizes = args.ases
    result: dict[str, Any] = {"bench": "topology", **common.machine_info(), "clients_per_as": args.clients,
                              "runs": args.runs, "sizes": []}
    t_start = time.monotonic()
    for ases in sizes:
        runs = []
        for i in range(args.runs):
            r = one_run(ases, args.clients)
            runs.append(r)
            print(f"  ases={ases:<3} run {i + 1}: {r['nodes']} nodes, " +
                  ", ".join(f"{p} {r[p]:.2f} s" for p in PHASES), flush=True)
        med = {p: round(common.median([r[p] for r in runs]), 2) for p in PHASES}
        row = {"ases": ases, "clients": ases * args.clients, "nodes": runs[0]["nodes"],
               "switches": runs[0]["switches"], "median": med,
               "up_without_lisp": med["net_up"], "down_without_lisp": med["net_down"],
               "up_with_lisp": round(common.median([r["net_up"] + r["lisp_up"] for r in runs]), 2),
               "down_with_lisp": round(common.median([r["lisp_down"] + r["net_down"] for r in runs]), 2),
               "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs]}
        result["sizes"].append(row)
    result["check"] = [time_check(args.check_ases, args.clients) for _ in range(args.check_runs)]
    for c in result["check"]:
        print(f"  {c['command']}: {c['wall_s']:.1f} s, exit {c['exit']} ({c['last_line'][:80]})", flush=True)
    result["wall_seconds"] = round(time.monotonic() - t_start, 1)
    result["lock_wait_seconds"] = round(sum(r["lock_wait_s"] for row in result["sizes"] for r in row["runs"])
                                        + sum(c["lock_wait_s"] for c in result["check"]), 1)
    path = common.save_result("topology", result)
    print(f"\nmedian of {args.runs} runs, {args.clients} clients per AS, one host per client:")
    print(f"{'ases':>5} {'nodes':>6} {'up':>8} {'down':>8} {'up+LISP':>9} {'LISP+down':>10}")
    for row in result["sizes"]:
        print(f"{row['ases']:>5} {row['nodes']:>6} {row['up_without_lisp']:>7.2f}s {row['down_without_lisp']:>7.2f}s "
              f"{row['up_with_lisp']:>8.2f}s {row['down_with_lisp']:>9.2f}s")
    failed = [c for c in result["check"] if not c["passed"]]
    if failed:
        print(f"corecast check FAILED (exit {failed[0]['exit']}): {failed[0]['last_line']}")
    print(f"wall time {result['wall_seconds']} s ({result['lock_wait_seconds']} s of it waiting for the testbed "
          f"lock); written {os.path.relpath(path, common.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
