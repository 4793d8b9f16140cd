"""Join and leave delays of lispmc (RFC 8378) on a live network: cold and warm joins, the last leave.

Topology: 2 client ASes x 2 hosts. Receiver A (AS 1) joins (S,G) before the source
starts; the source sends a 1,000-byte datagram every 20 ms to 232.1.1.1. Then:

* cold join: B (AS 2, whose ETR has no receiver yet) joins; its ETR registers (S,G),
  the ITR picks the new list up at its next re-resolution. Delay = B's join call to
  B's first datagram.
* warm join: C (AS 2, its ETR already receiving) joins: the ETR only has to learn it
  from the IGMP report. Delay = C's join to C's first datagram.
* leave: B and C leave; delay = the last leave to the ITR's list change (its status,
  ``itr_changes``, CLOCK_MONOTONIC like this process): from then on no copy goes to AS 2.

All clocks are the machine's (namespaces share CLOCK_MONOTONIC and the wall clock).
``python bench/bench_lispmc_join.py [--rounds 3]``: writes docs/bench-results/lispmc-join.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
from common import machine_info, save_result  # noqa: E402
from nethelpers import lisp_testbed, status, wait_for  # noqa: E402

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5000))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 64)
end = time.time() + float(sys.argv[2])
seq = 0
while time.time() < end:
    s.sendto(seq.to_bytes(4, "big") + bytes(996), ("232.1.1.1", 6000)); seq += 1
    time.sleep(0.02)
"""
RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6000))
t_join = time.monotonic()
s.setsockopt(socket.IPPROTO_IP, 39, socket.inet_aton("232.1.1.1") + socket.inet_aton(sys.argv[1])
             + socket.inet_aton(sys.argv[2]))
s.settimeout(0.1)
first = None
end = t_join + float(sys.argv[3])
while time.monotonic() < end:
    try:
        s.recv(2000)
    except socket.timeout:
        continue
    if first is None:
        first = time.monotonic()
s.close()
print(t_join, first, time.monotonic())
"""


def one_round(tmp: str) -> dict:
    rundir = os.path.join(tmp, "run")
    os.makedirs(rundir, exist_ok=True)
    for name, code in (("send.py", SENDER), ("recv.py", RECEIVER)):
        with open(os.path.join(tmp, name), "w") as fh:
            fh.write(code)
    py = sys.executable
    with lisp_testbed(rundir, ases=2, clients=2, client_hosts="per-client") as (tb, plan):
        clients = [(h, e) for _a, h, e in plan.clients()]
        (ha, ea), _, (hb, eb), (hc, ec) = clients
        recv = lambda h, e, secs: tb.node(h).popen([py, os.path.join(tmp, "recv.py"), e, plan.source_eid,  # noqa: E731
                                                    str(secs)], stdout=-1, text=True)
        ra = recv(ha, ea, 12)
        wait_for(lambda: "10.0.0.10,232.1.1.1" in status(rundir, "ms").get("multicast", {}), 10)
        src = tb.node(plan.source_host).popen([py, os.path.join(tmp, "send.py"), plan.source_eid, "11"])
        time.sleep(2.0)
        rb = recv(hb, eb, 5)
        time.sleep(2.0)
        rc = recv(hc, ec, 3)
        outs = [r.communicate(timeout=30)[0].split() for r in (rb, rc)]
        (jb, fb, lb), (jc, fc, lc_) = [[float(x) if x != "None" else None for x in o] for o in outs]
        last_leave = max(lb, lc_)
        time.sleep(2.0)
        x0 = status(rundir, "x0")["lispmc"]
        src.wait(timeout=30)
        ra.communicate(timeout=30)
    shrink = [t for t, _s, _g, size in x0["itr_changes"] if t > last_leave]
    return {"cold_join_s": fb - jb, "warm_join_s": fc - jc,
            "leave_to_itr_list_s": (shrink[0] - last_leave) if shrink else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=bench_args.count(1, 100), default=3, help="join rounds (1..100)")
    args = ap.parse_args()
    result = {"machine": machine_info(), "rounds": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="lmcjoin-") as tmp:
            result["rounds"].append(one_round(tmp))
            print(result["rounds"][-1])
    for key in ("cold_join_s", "warm_join_s", "leave_to_itr_list_s"):
        vals = [r[key] for r in result["rounds"] if r[key] is not None]
        result[key + "_median"] = round(statistics.median(vals), 3) if vals else None
    print({k: v for k, v in result.items() if k.endswith("median")})
    print("written:", save_result("lispmc-join", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
