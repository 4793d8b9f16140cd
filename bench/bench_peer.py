"""P2P peers: how many peers one process hosts, and how many chunks per second one peer process handles.

Two measurements, no namespaces (loopback: 127.0.0.0/8 is local, so each peer binds its own
127.a.b.c address as it binds its own EID in the testbed):

* **peers per host**: one ``nodes.peer`` process hosting N peers (N = 25, 50, 100, 200 ...)
  and a ``nodes.source`` in mode ``p2p`` streaming at the testbed's default 1 Mb/s
  (95 chunks/s of 1,316 bytes) for ``--seconds``; printed per N: the swarm's continuity
  index, the host process's CPU share, and the chunks it received plus sent per second.
  The largest N with continuity 1 is the answer for one core.
* **core rate**: the sans-I/O cores alone (testbed.p2p.sim, fake clock and network): chunk
  messages handled per CPU second, i.e. the ceiling of one peer process without sockets.

``--json`` writes docs/bench-results/peer.json.

    python bench/bench_peer.py [--peers 25,50,100,200] [--seconds 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import args as bench_args  # noqa: E402
from bench.common import machine_info, save_result  # noqa: E402

RATE_BPS = 1_000_000
P = 1316
PARAMS = {"buffer_s": 2.0, "bm_period_s": 0.5, "sched_period_s": 0.1, "request_timeout_s": 1.0, "upload": 2.0}


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def host_run(n: int, seconds: float, port: int) -> dict:
    """One peer host with ``n`` peers and a p2p source for ``seconds``; the host's numbers."""
    tmp = tempfile.mkdtemp(prefix="bench-peer-")
    content = os.path.join(tmp, "c.bin")
    rate = RATE_BPS / (8 * P)
    chunks = int(seconds * rate)
    with open(content, "wb") as fh:
        fh.write(os.urandom(P * chunks))
    peers = [{"eid": f"127.1.{i // 200}.{10 + i % 200}", "port": port} for i in range(n)]
    cfg = {"name": "bench", "asn": 1, "tracker": {"addr": "127.0.0.10", "port": port + 1}, "chunk_rate": rate,
           "chunk_bytes": P, "params": PARAMS, "peers": peers, "ready_file": os.path.join(tmp, "p.ready"),
           "result_file": os.path.join(tmp, "p.json")}
    with open(os.path.join(tmp, "p.cfg"), "w") as fh:
        json.dump(cfg, fh)
    host = subprocess.Popen([sys.executable, "-m", "nodes.peer", "--config", os.path.join(tmp, "p.cfg")], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(cfg["ready_file"]) and time.time() < deadline:
        time.sleep(0.05)
    src_cfg = {"name": "src", "mode": "p2p", "eid": "127.0.0.10", "src_port": port, "bitrate": RATE_BPS,
               "chunks": chunks, "content": f"file:{content}", "start_at": time.time() + 2.0,
               "p2p": {"tracker_port": port + 1, "params": PARAMS}}
    with open(os.path.join(tmp, "s.cfg"), "w") as fh:
        json.dump(src_cfg, fh)
    src = subprocess.Popen([sys.executable, "-m", "nodes.source", "--config", os.path.join(tmp, "s.cfg")], cwd=ROOT,
                           stderr=subprocess.DEVNULL)
    cpu0, t0 = _cpu(host.pid), time.time()
    try:
        src.wait(seconds * 3 + 60)
        time.sleep(PARAMS["buffer_s"] + 2.0)
        cpu1, t1 = _cpu(host.pid), time.time()
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        if src.poll() is None:
            src.kill()
    with open(cfg["result_file"]) as fh:
        res = json.load(fh)["peers"]
    played = sum(s["played"] for s in res.values())
    missed = sum(s["missed"] for s in res.values())
    handled = sum(s["chunks_received"] + s["chunks_sent"] for s in res.values())
    return {"peers": n, "continuity": round(played / (played + missed), 4) if played + missed else 0.0,
            "cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3), "chunks_per_s": round(handled / (t1 - t0), 1),
            "started": sum(1 for s in res.values() if s["play_start"] is not None)}


def core_rate() -> dict:
    """Chunk messages the cores handle per CPU second, in-process (no sockets)."""
    from testbed.p2p.params import P2PParams
    from testbed.p2p.sim import simulate
    t0 = time.process_time()
    r = simulate(peers=100, ases=5, chunks=300, chunk_rate=95.0,
                 params=P2PParams(buffer_s=2.0, bm_period_s=0.5, sched_period_s=0.1, request_timeout_s=1.0))
    cpu = time.process_time() - t0
    handled = sum(c.c.chunks_received + c.c.chunks_sent for c in r.peers)
    return {"peers": 100, "chunks": 300, "continuity": round(r.summary["continuity"], 4),
            "chunk_messages_per_cpu_s": round(handled / cpu, 1), "cpu_s": round(cpu, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=bench_args.count_list(1, 10_000), default="25,50,100,200",
                    help="peers in one process, comma-separated (each 1..10000)")
    ap.add_argument("--seconds", type=bench_args.seconds(600), default=8.0, help="length of one run (0 < s <= 600)")
    ap.add_argument("--json", action="store_true", help="write docs/bench-results/peer.json")
    args = ap.parse_args()
    info = machine_info()
    core = core_rate()
    print(f"cores in-process: {core['chunk_messages_per_cpu_s']:.0f} chunk messages per CPU second "
          f"(100 peers, continuity {core['continuity']})")
    rows = []
    for i, n in enumerate(args.peers):
        row = host_run(n, args.seconds, 27350 + 10 * i)
        rows.append(row)
        print(f"{n:5d} peers in one process at 1 Mb/s: continuity {row['continuity']:.4f}, "
              f"CPU {100 * row['cpu_share']:.0f} %, {row['chunks_per_s']:.0f} chunks/s in+out", flush=True)
    ok = [r["peers"] for r in rows if r["continuity"] == 1.0]
    print(f"peers per host with continuity 1: {max(ok) if ok else 0} (of {','.join(map(str, args.peers))})")
    if args.json:
        print(save_result("peer", {**info, "core": core, "hosts": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
