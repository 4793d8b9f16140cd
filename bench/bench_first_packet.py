"""First packet to a new EID: delivered after the Map-Request round trip (queued at the ITR), not dropped.

Brings up the paper topology (2 client ASes, 1 client each) with LISP, then from
``src`` pings a client EID that the ITR has never resolved: 5 echo requests,
0.2 s apart. The first one waits in the ITR's per-EID queue for the Map-Reply;
the others find the map-cache warm. Repeated for several fresh EIDs (a new
topology each time, so every map-cache starts cold). Prints and writes JSON.
Run as root: ``.venv/bin/python bench/bench_first_packet.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import args as bench_args  # noqa: E402
import common  # noqa: E402
from testbed.addressing import make_plan  # noqa: E402
from testbed.net.network import Testbed  # noqa: E402
from testbed.params import topo_params  # noqa: E402
from testbed.session import start_lisp  # noqa: E402

RUNS = 5


def one_run() -> dict:
    """One cold topology: RTTs of 5 pings to a never-resolved EID."""
    values = {"ases": 2, "clients": 1}
    plan = make_plan(topo_params(values))
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as rundir:
        with Testbed(plan, rundir) as tb:
            start_lisp(tb, plan, rundir, values)
            target = plan.client_ases[1].clients[0][1]
            out = tb.node(plan.source_host).cmd(f"ping -n -c 5 -i 0.2 -W 3 {target}")
    rtts = [float(x) for x in re.findall(r"icmp_seq=\d+ ttl=\d+ time=([\d.]+) ms", out)]
    return {"target": target, "rtts_ms": rtts, "received": len(rtts)}


def main() -> int:
    """Run, print, write docs/bench-results/first_packet.json (not when no ping was answered)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=bench_args.count(1, 100), default=RUNS, help=f"fresh topologies (1..100; {RUNS})")
    args = ap.parse_args()
    os.environ.setdefault("CORECAST_LOCK_WAIT", "1800")
    runs = [one_run() for _ in range(args.runs)]
    first = [r["rtts_ms"][0] for r in runs if r["received"] == 5]
    rest = [x for r in runs if r["received"] == 5 for x in r["rtts_ms"][1:]]
    result = {"bench": "first_packet", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "runs": runs, "all_delivered": all(r["received"] == 5 for r in runs),
              "first_rtt_ms_median": statistics.median(first) if first else None,
              "warm_rtt_ms_median": statistics.median(rest) if rest else None}
    print(f"first packet to a new EID delivered in {sum(r['received'] == 5 for r in runs)}/{args.runs} runs; "
          f"median RTT first {result['first_rtt_ms_median']} ms (includes the Map-Request round trip), "
          f"then {result['warm_rtt_ms_median']} ms with a warm map-cache")
    print("written:", common.save_result("first_packet", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
