"""Packets per second through one LISP xTR pair (ITR x0 -> ETR x1), beside plain kernel forwarding.

Paper topology with one client AS and one client host (``ases=1 clients=1``): a
paced UDP sender in ``src`` (10.0.0.10) sends 1316-byte datagrams to ``h1x1``
(10.1.1.1), where a receiver drains and counts them. A datagram counts as
delivered once it reaches h1x1's UDP layer (``InDatagrams + RcvbufErrors`` of
h1x1's namespace), so a Python receiver slower than the kernel path does not
hide the network's rate; the receiver's own count and drops are recorded beside.
Two phases on the same network, same namespaces, same sender and receiver:

1. **kernel**: no LISP daemons; static routes for 10.1.0.0/16 and 10.0.0.0/16 on
   x0, core and x1, so src -> h1x1 is plain IP forwarding through three routers
   (two sender processes: one Python sender is slower than the kernel path);
2. **lisp**: the static routes removed, the map-server and the xTRs started
   (TUN on the EID side, UDP 4341 on the RLOC side), the map-cache warmed.

In each phase :func:`common.search_max_rate` looks for the highest offered rate
at which every datagram arrives (zero loss), over ``--seconds`` long trials.
Each trial records where packets were lost (the ITR's TUN queue, the ETR's UDP
4341 socket buffer), the CPU share of each xTR and its counters.

Run as root from the repository root (about 1 to 1.5 minutes)::

    .venv/bin/python bench/bench_xtr.py [--seconds 3] [--max-trials 8] [--profile]

``--profile`` also samples both xTRs with py-spy (``.venv/bin/python -m pip
install py-spy``; not a project dependency) during one more trial at the found
rate and prints where their time goes. Writes docs/bench-results/xtr.json;
docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
import common  # noqa: E402
import traffic  # noqa: E402
from common import CHUNK_BYTES  # noqa: E402

TARGET_PPS = 50_000
DST = "10.1.1.1"
STATIC_ROUTES = {  # node -> routes making src <-> h1x1 plain IP forwarding (kernel phase)
    "x0": [("10.1.0.0/16", "172.16.0.1")],
    "core": [("10.1.0.0/16", "172.16.1.2"), ("10.0.0.0/16", "172.16.0.2")],
    "x1": [("10.0.0.0/16", "172.16.1.1")],
}
XTR_KEYS = {"x0": [("io", "tun-read"), ("itr", "encapsulated"), ("io", "raw-sent"), ("io", "raw-send-error")],
            "x1": [("io", "lisp-in"), ("etr", "decapsulated"), ("io", "tun-write"), ("io", "tun-write-error")]}


def set_routes(tb: Any, add: bool) -> None:
    """Add (or delete) the static EID routes of the kernel phase."""
    for node, routes in STATIC_ROUTES.items():
        for prefix, via in routes:
            out = tb.node(node).cmd(f"ip route {'replace' if add else 'del'} {prefix} via {via}")
            if add and out.strip():
                raise RuntimeError(f"{node}: ip route {prefix} via {via}: {out.strip()}")


def main() -> int:
    """Run both phases and write the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=bench_args.seconds(), default=3.0, help="length of one trial (0 < s <= 3600)")
    ap.add_argument("--max-trials", type=bench_args.count(1, 1000), default=8,
                    help="trials per phase, the unpaced one included (>= 1)")
    ap.add_argument("--kernel-senders", type=bench_args.count(1, 64), default=2,
                    help="parallel sender processes in the kernel phase (1..64)")
    ap.add_argument("--profile", action="store_true", help="sample the xTRs with py-spy at the found rate")
    args = ap.parse_args()
    if not common.need_root():
        return 2
    common.lock_env()
    from testbed.addressing import make_plan
    from testbed.net.check import ping_many
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    from testbed.session import start_lisp

    result: dict[str, Any] = {"bench": "xtr", **common.machine_info(), "payload_bytes": CHUNK_BYTES,
                              "trial_seconds": args.seconds, "topology": "paper ases=1 clients=1 per-client",
                              "target_pps": TARGET_PPS}
    plan = make_plan(topo_params({"ases": 1, "clients": 1, "client_hosts": "per-client"}))
    rundir = common.scratch_rundir("xtr")
    result["lock_wait_seconds"] = round(common.take_lock(), 1)
    t_start = time.monotonic()
    with Testbed(plan, rundir) as tb:
        src = tb.node("src")
        rx = traffic.Receiver(tb.node("h1x1"), rundir, "h1x1")
        try:
            print("kernel forwarding (no LISP): static EID routes on x0, core, x1", flush=True)
            set_routes(tb, True)
            if not ping_many(src, [DST], wait=2.0).get(DST):
                raise RuntimeError("kernel phase: src cannot reach h1x1 over the static routes")
            kernel = common.TrialRunner("kernel", tb, rx, "h1x1", traffic.udp_sender(src, DST, args.kernel_senders),
                                        args.seconds, 1, unpaced_rate=400_000, udp_watch=("x1",))
            result["kernel"] = kernel.search(TARGET_PPS, args.max_trials)
            set_routes(tb, False)
            print("LISP: map-server and xTRs started, map-cache warmed", flush=True)
            daemons = start_lisp(tb, plan, rundir, {})
            xtrs = {d.name: d for d in daemons if d.name in ("x0", "x1")}
            if not ping_many(src, [DST], wait=2.0, count=2).get(DST):
                raise RuntimeError("LISP phase: src cannot reach h1x1 through the xTRs")
            lisp = common.TrialRunner("lisp", tb, rx, "h1x1", traffic.udp_sender(src, DST), args.seconds, 101,
                                      udp_watch=("x1",), tun_watch=(("x0", "x0-tun"),), xtrs=xtrs, rundir=rundir,
                                      status_keys=XTR_KEYS,
                                      drop_keys=frozenset({"io.raw-send-error", "io.tun-write-error"}))
            result["lisp"] = lisp.search(TARGET_PPS, args.max_trials)
            result["lisp"]["overload"] = common.overload_rates(result["lisp"]["trials"][0], "itr.encapsulated",
                                                               "etr.decapsulated")
            if args.profile and result["lisp"]["rate"]:
                result["profile"] = common.profile(xtrs, lisp, result["lisp"]["rate"], rundir)
        finally:
            rx.stop()
    k_pps, l_pps = result["kernel"]["rate"], result["lisp"]["rate"]
    result["ratio_lisp_to_kernel"] = round(l_pps / k_pps, 3) if k_pps else None
    result["target_met"] = common.meets(result["lisp"]["best"], TARGET_PPS)
    result["wall_seconds"] = round(time.monotonic() - t_start, 1)
    path = common.save_result("xtr", result)
    limited = " (sender-limited: nothing lost at the senders' top speed)"
    print(f"\nzero-loss rate, {CHUNK_BYTES}-byte UDP payloads, src -> h1x1:")
    print(f"  kernel forwarding : {k_pps:>9,} pps{limited if result['kernel']['sender_limited'] else ''}")
    print(f"  LISP xTR pair     : {l_pps:>9,} pps{limited if result['lisp']['sender_limited'] else ''}")
    if result["lisp"]["overload"]:
        print("  overloaded (unpaced sender), per second: "
              + ", ".join(f"{k} {v:,}" for k, v in result["lisp"]["overload"].items()))
    if result["ratio_lisp_to_kernel"] is not None:
        print(f"  ratio LISP/kernel : {result['ratio_lisp_to_kernel']:.3f}")
    print(f"target >= {TARGET_PPS:,} pps through one xTR pair: {'MET' if result['target_met'] else 'MISSED'}")
    print(f"wall time {result['wall_seconds']} s; written {os.path.relpath(path, common.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
