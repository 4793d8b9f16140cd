"""Map-Requests answered per second by the Map-Server with 10,000 registered prefixes.

Two measurements:

1. in-process: :meth:`MapServer.on_message` on pre-encoded ECM Map-Requests
   (no sockets), for the cost of the protocol core alone;
2. from another host: ``nodes/mapserver.py`` runs in network namespace
   ``ccb-ms`` (192.0.2.1 on veth ``ccbv0``), a load generator in ``ccb-cl``
   (192.0.2.2 on ``ccbv1``) first registers the 10,000 prefixes over UDP
   (one Map-Register each, HMAC-SHA-256, waiting for the Map-Notifies), then
   sends a bounded number of ECM Map-Requests keeping ``--window`` outstanding,
   and counts answered requests per second. Needs root; the namespaces are
   created here and deleted in a ``finally``.

Side by side with the previous implementation (issue 16): ``--baseline COMMIT``
(default ``4fc52c5``, before the fast path and the batched system calls) is
exported with ``git archive`` into a temporary directory (the working tree and
the index are not touched) and both measurements run on it too, alternating
with the current code, ``--rounds`` times (default 3); the summary has each
side's runs, medians and the ratio. The load generator is the same for both:
it sends and receives with sendmmsg/recvmmsg (testbed/net/mmsg.py), so that it
is not what limits the rate.

Usage (as root, from the repository root)::

    .venv/bin/python bench/bench_mapserver.py [--requests 200000] [--window 256] [--prefixes 10000] [--rounds 3]
        [--baseline COMMIT | --baseline none]

Prints a JSON summary and writes docs/bench-results/mapserver.json;
docs/bench-control.md and docs/benchmarks.md record the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = os.environ.get("CCB_CODE", ROOT)  # the code under test: this tree, or an exported baseline
sys.path.insert(0, CODE)

import args as bench_args  # noqa: E402
from testbed.lisp.mapserver import MapServer, Site  # noqa: E402
from testbed.wire import lispctrl as lc  # noqa: E402

NS_MS, NS_CL = "ccb-ms", "ccb-cl"
VETH_MS, VETH_CL = "ccbv0", "ccbv1"
ADDR_MS, ADDR_CL = "192.0.2.1", "192.0.2.2"
KEY = "bench-key-%d"
_NONCE = struct.Struct("!Q")


def prefix_of(i: int) -> str:
    """The i-th registered prefix: 10.x.y.0/24 (10,000 of them fit in 10.0.0.0/10)."""
    return f"10.{i // 256}.{i % 256}.0/24"


def sites(n: int) -> list[dict]:
    """Config-file sites: one per prefix, each with its own key."""
    return [{"name": f"s{i}", "key": KEY % i, "algorithms": ["sha256"], "prefixes": [prefix_of(i)]}
            for i in range(n)]


def register_msg(i: int, rloc: str) -> bytes:
    """A Map-Register of prefix i (nonce i + 1)."""
    rec = lc.EidRecord(prefix_of(i), locators=[lc.Locator(rloc, corecast=i % 2 == 0)])
    return lc.MapRegister(i + 1, [rec], proxy_reply=True).encode((KEY % i).encode())


def request_msgs(n: int, prefixes: int, itr: str, sport: int, seed: int = 1) -> list[bytes]:
    """``n`` ECM Map-Requests with nonces 1..n; 90 % for registered EIDs, 10 % outside."""
    rng = random.Random(seed)
    out = []
    for k in range(1, n + 1):
        if k % 10:
            i = rng.randrange(prefixes)
            eid = f"10.{i // 256}.{i % 256}.{rng.randrange(1, 255)}"
        else:
            eid = f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        req = lc.MapRequest(k, [eid + "/32"], [itr]).encode()
        out.append(lc.Ecm(itr, eid, sport, 4342, req).encode())
    return out


def in_process(prefixes: int, requests: int) -> dict:
    """Rate of MapServer.on_message on ECM Map-Requests, no sockets."""
    ms = MapServer([Site(f"s{i}", (KEY % i).encode(), [prefix_of(i)]) for i in range(prefixes)])
    t0 = time.perf_counter()
    for i in range(prefixes):
        ms.on_message(register_msg(i, "198.51.100.1"), "198.51.100.1", 4342, 0.0)
    reg_rate = prefixes / (time.perf_counter() - t0)
    msgs = request_msgs(requests, prefixes, "192.0.2.9", 4342)
    t0 = time.perf_counter()
    for m in msgs:
        ms.on_message(m, "192.0.2.9", 4342, 1.0)
    elapsed = time.perf_counter() - t0
    return {"registered": len(ms), "registers_per_s": round(reg_rate), "requests": requests,
            "requests_per_s": round(requests / elapsed),
            "positive": ms.counters.get("request-positive", 0), "negative": ms.counters.get("request-negative", 0)}


# ---------------------------------------------------------------- load generator (runs in ccb-cl)


def loadgen(server: str, port: int, prefixes: int, requests: int, window: int, timeout: float) -> dict:
    """Register ``prefixes`` prefixes, then fire ``requests`` Map-Requests with ``window`` outstanding."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("0.0.0.0", 0))
    sock.setblocking(False)
    me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    me.connect((server, port))
    itr = me.getsockname()[0]
    me.close()
    sport = sock.getsockname()[1]
    regs = [register_msg(i, itr) for i in range(prefixes)]
    reg_stats = _windowed(sock, server, port, regs, 32, timeout, notify=True)
    msgs = request_msgs(requests, prefixes, itr, sport)
    stats = _windowed(sock, server, port, msgs, window, timeout, notify=False)
    sock.close()
    return {"register": reg_stats, "request": stats}


def _windowed(sock: socket.socket, server: str, port: int, msgs: list[bytes], window: int, timeout: float,
              notify: bool) -> dict:
    """Send ``msgs`` (nonce k at index k-1) with at most ``window`` unanswered; match answers by nonce.

    Batched system calls (this tree's testbed/net/mmsg.py, whatever code the server runs).
    """
    sys.path.insert(0, ROOT)
    from testbed.net.mmsg import BatchReceiver, BatchSender
    tx, rx = BatchSender(sock, 64, 2048, port=port), BatchReceiver(sock, 64, 2048)
    want_type = 4 if notify else 2
    outstanding: dict[int, float] = {}
    nxt, answered, lost, stray = 0, 0, 0, 0
    rtts = []
    t0 = time.perf_counter()
    while nxt < len(msgs) or outstanding:
        now = time.perf_counter()
        while nxt < len(msgs) and len(outstanding) < window:
            tx.add(msgs[nxt], server)
            outstanding[nxt + 1] = now
            nxt += 1
        tx.flush()
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            for _ in range(max(1, window // 64)):
                got = rx.recv()
                pop, unpack = outstanding.pop, _NONCE.unpack_from
                for data, _src, _port in got:  # inline: the load generator must cost less than the server
                    if len(data) < 12 or data[0] >> 4 != want_type:
                        stray += 1
                        continue
                    sent = pop(unpack(data, 4)[0], None)
                    if sent is None:
                        stray += 1
                        continue
                    answered += 1
                    if answered % 97 == 0:
                        rtts.append(time.perf_counter() - sent)
                if len(got) < 64:
                    break
        now = time.perf_counter()
        for nonce in [n for n, t in outstanding.items() if now - t > timeout]:
            del outstanding[nonce]
            lost += 1
    elapsed = time.perf_counter() - t0
    rtts.sort()
    return {"sent": len(msgs), "answered": answered, "lost": lost, "stray": stray, "seconds": round(elapsed, 3),
            "per_s": round(answered / elapsed), "window": window, "send_errors": tx.counters["send-error"],
            "rtt_ms_median": round(rtts[len(rtts) // 2] * 1000, 3) if rtts else None,
            "rtt_ms_p99": round(rtts[int(len(rtts) * 0.99)] * 1000, 3) if rtts else None}


# ---------------------------------------------------------------- namespaces


def sh(*cmd: str) -> None:
    """Run a command, raising with its stderr on failure."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")


def setup_netns() -> None:
    """Create ccb-ms and ccb-cl joined by the veth pair ccbv0/ccbv1."""
    sh("ip", "netns", "add", NS_MS)
    sh("ip", "netns", "add", NS_CL)
    sh("ip", "link", "add", VETH_MS, "netns", NS_MS, "type", "veth", "peer", "name", VETH_CL, "netns", NS_CL)
    for ns, dev, addr in ((NS_MS, VETH_MS, ADDR_MS), (NS_CL, VETH_CL, ADDR_CL)):
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def teardown_netns() -> None:
    """Delete our two namespaces (the veth pair goes with them); ignore what is already gone."""
    for ns in (NS_MS, NS_CL):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def export_baseline(commit: str) -> str:
    """``git archive`` the code of ``commit`` (nodes/, testbed/) into a temporary directory; return it."""
    out = tempfile.mkdtemp(prefix="ccb-baseline-")
    arch = subprocess.run(["git", "-C", ROOT, "archive", commit, "nodes", "testbed"], capture_output=True)
    if arch.returncode:
        raise RuntimeError(f"git archive {commit}: {arch.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", out], input=arch.stdout, check=True)
    return out


def in_process_of(code: str, prefixes: int, requests: int) -> dict:
    """:func:`in_process` run on the code in ``code`` (a fresh interpreter)."""
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--in-process-only", "--prefixes",
                          str(prefixes), "--requests", str(requests)], env=dict(os.environ, CCB_CODE=code),
                         capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise RuntimeError(f"in-process run failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def namespaces(prefixes: int, requests: int, window: int, code: str = ROOT) -> dict:
    """Run the node (the code in ``code``) in ccb-ms and the load generator in ccb-cl; return both sides' numbers."""
    tmp = tempfile.mkdtemp(prefix="ccb-bench-")
    cfg = {"name": "ms", "listen": ADDR_MS, "port": 4342, "expiry_s": 3600, "negative_ttl_min": 15,
           "sites": sites(prefixes), "ready_file": os.path.join(tmp, "ms.ready"),
           "status_file": os.path.join(tmp, "ms.status.json"), "table_file": os.path.join(tmp, "ms.table.json"),
           "log_level": "warning"}
    with open(os.path.join(tmp, "ms.json"), "w") as fh:
        json.dump(cfg, fh)
    env = dict(os.environ, PYTHONPATH=ROOT)
    server_env = dict(os.environ, PYTHONPATH=code)
    server = None
    try:
        setup_netns()
        with open(os.path.join(tmp, "ms.log"), "wb") as log:
            server = subprocess.Popen(["ip", "netns", "exec", NS_MS, sys.executable, "-m", "nodes.mapserver",
                                       "--config", os.path.join(tmp, "ms.json")], cwd=code, env=server_env,
                                      stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(cfg["ready_file"]):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("map-server did not start: " + open(os.path.join(tmp, "ms.log")).read()[-2000:])
            time.sleep(0.05)
        res = subprocess.run(["ip", "netns", "exec", NS_CL, sys.executable, os.path.abspath(__file__), "--loadgen",
                              "--server", ADDR_MS, "--prefixes", str(prefixes), "--requests", str(requests),
                              "--window", str(window)], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        if res.returncode:
            raise RuntimeError(f"load generator failed: {res.stderr[-2000:]}")
        result = json.loads(res.stdout)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        with open(cfg["status_file"]) as fh:
            result["server_counters"] = json.load(fh)["counters"]
        return result
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        teardown_netns()


def main() -> int:
    """Parse arguments; run the load generator alone (``--loadgen``) or the whole benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=bench_args.count(1, 1_000_000), default=10000, help="registered EID-prefixes")
    ap.add_argument("--requests", type=bench_args.count(1, 100_000_000), default=200000, help="Map-Requests sent")
    ap.add_argument("--window", type=bench_args.count(1, 65_536), default=256, help="requests in flight (1..65536)")
    ap.add_argument("--rounds", type=bench_args.count(1, 100), default=3,
                    help="alternating runs of each side (medians reported; 1..100)")
    ap.add_argument("--baseline", default="4fc52c5", help="commit of the previous implementation, or none")
    ap.add_argument("--in-process-only", action="store_true", help="internal: print in_process() and exit")
    ap.add_argument("--loadgen", action="store_true", help="internal: be the load generator")
    ap.add_argument("--server", type=bench_args.ipv4, default=ADDR_MS)
    ap.add_argument("--port", type=bench_args.count(1, 65_535), default=4342)
    ap.add_argument("--timeout", type=bench_args.seconds(60), default=1.0,
                    help="seconds before an unanswered request is lost (0 < s <= 60)")
    ap.add_argument("--skip-netns", action="store_true", help="in-process measurement only")
    args = ap.parse_args()
    if args.loadgen:
        print(json.dumps(loadgen(args.server, args.port, args.prefixes, args.requests, args.window, args.timeout)))
        return 0
    if args.in_process_only:
        print(json.dumps(in_process(args.prefixes, args.requests)))
        return 0
    if not args.skip_netns and os.geteuid() != 0:
        print("namespaces need root; use --skip-netns for the in-process number", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import common
    codes = {"current": ROOT}
    if args.baseline != "none":
        codes["baseline"] = export_baseline(args.baseline)
    result: dict = {"bench": "mapserver", **common.machine_info(), "prefixes": args.prefixes,
                    "requests": args.requests, "window": args.window, "baseline_commit": args.baseline,
                    "runs": {label: {"in_process": [], "netns": []} for label in codes}}
    for _ in range(args.rounds):
        for label, code in codes.items():
            runs = result["runs"][label]
            runs["in_process"].append(in_process_of(code, args.prefixes, min(args.requests, 100000)))
            print(f"{label}: in-process {runs['in_process'][-1]['requests_per_s']:,}/s", flush=True)
            if not args.skip_netns:
                runs["netns"].append(namespaces(args.prefixes, args.requests, args.window, code))
                req = runs["netns"][-1]["request"]
                print(f"{label}: over UDP {req['per_s']:,}/s, lost {req['lost']}", flush=True)
    medians = result["medians"] = {}
    for label, runs in result["runs"].items():
        medians[label] = {"in_process": round(common.median([r["requests_per_s"] for r in runs["in_process"]]))}
        if runs["netns"]:
            medians[label]["netns"] = round(common.median([r["request"]["per_s"] for r in runs["netns"]]))
            medians[label]["netns_lost"] = sum(r["request"]["lost"] for r in runs["netns"])
    if "baseline" in medians:
        result["ratio_to_baseline"] = {k: round(medians["current"][k] / max(1, medians["baseline"][k]), 2)
                                       for k in ("in_process", "netns") if k in medians["current"]}
    result["target_met"] = medians["current"].get("netns", 0) >= 100_000
    if "baseline" in codes:
        shutil.rmtree(codes["baseline"], ignore_errors=True)
    common.save_result("mapserver", result)
    print(json.dumps({k: result[k] for k in ("medians", "ratio_to_baseline", "target_met") if k in result},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
