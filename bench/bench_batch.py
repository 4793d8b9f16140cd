"""ITR CPU time per chunk: per-client REFs (corecast) against the source's REF-LISTs (corecast-src), one run.

``python bench/bench_batch.py [--clients 1000] [--ases 10] [--chunks 200] [--rounds 5]``

The sans-I/O CoreCast ITR (testbed/lisp/corecast_itr.py) with a warm map-cache
of ``ases`` capable sites handles, per chunk, what the source sends it:

* ``corecast``: one DATA and one REF per client (a map-cache lookup and a send each);
* ``corecast-batch``: the same REFs with flag B, batched into one REF-LIST per ETR;
* ``corecast-src``: one DATA and one REF-LIST per ETR naming it (no lookup), as a REF-MAP when shorter.

The modes alternate within each round (same process, same load), CPU time by
``time.process_time``; the best round per mode is kept. Prints a table and writes
docs/bench-results/batch.json. Target (issue 15): corecast-src >= 5x lower than
corecast at k = 1,000.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
from common import machine_info, save_result  # noqa: E402

from testbed.lisp.corecast_itr import CoreCastItr  # noqa: E402
from testbed.lisp.mapcache import MapCache, MapEntry  # noqa: E402
from testbed.lisp.prefixes import parse_prefix  # noqa: E402
from testbed.wire import corecast as cc  # noqa: E402

SRC = socket.inet_aton("10.0.0.10")


def make_itr(ases: int) -> CoreCastItr:
    cache = MapCache()
    for a in range(1, ases + 1):
        cache.install(MapEntry(*parse_prefix(f"10.{a}.0.0/16"), [(f"172.16.{a}.2", 1, 100, True)], 1e12))
    return CoreCastItr("172.16.0.2", cache, ["10.0.0.0/24"], batch_delay=0.005)


def messages(mode: str, seq: int, chunk: bytes, clients: list[tuple[int, bytes]], ases: int) -> list[bytes]:
    """What the source sends its ITR for one chunk in ``mode``."""
    digest = cc.chunk_hash(chunk)
    out = [cc.encode_data(1, seq, chunk)]
    if mode == "corecast-src":
        for a in range(1, ases + 1):
            entries = [(raw, 6000) for aa, raw in clients if aa == a]
            out += cc.encode_ref_messages(1, seq, digest, socket.inet_aton(f"172.16.{a}.2"), SRC, 5000, entries,
                                          cc.ref_list_capacity(), cc.FLAG_DATA_FIRST)  # REF-MAPs when shorter
        return out
    flags = cc.FLAG_BATCH if mode == "corecast-batch" else 0
    out += [cc.encode_ref(1, seq, digest, SRC, raw, 5000, 6000, flags) for _a, raw in clients]
    return out


def run_mode(mode: str, chunks: list[list[bytes]], ases: int) -> tuple[float, int, int]:
    """CPU seconds for every chunk's messages through a fresh ITR; (seconds, packets out, bytes out)."""
    itr = make_itr(ases)
    on = itr.on_service_message
    pkts = nbytes = 0
    t0 = time.process_time()
    for i, msgs in enumerate(chunks):
        now = float(i)
        for m in msgs:
            for act in on(m, SRC, now):
                pkts += 1
                nbytes += len(act[2])
    for act in itr.flush():
        pkts += 1
        nbytes += len(act[2])
    return time.process_time() - t0, pkts, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=bench_args.count(1, 100_000), default=1000, help="client EIDs (1..100000)")
    ap.add_argument("--ases", type=bench_args.count(1, 250), default=10, help="client ASes (1..250)")
    ap.add_argument("--chunks", type=bench_args.count(), default=200, help="chunks per round (>= 1)")
    ap.add_argument("--rounds", type=bench_args.count(), default=5, help="rounds, best of (>= 1)")
    args = ap.parse_args(argv)
    info = machine_info()
    clients = [(1 + i % args.ases, socket.inet_aton(f"10.{1 + i % args.ases}.{i // 250}.{i % 250 + 1}"))
               for i in range(args.clients)]
    modes = ("corecast", "corecast-batch", "corecast-src")
    chunk_sets = {m: [messages(m, s, bytes([s & 0xFF]) * 1316, clients, args.ases) for s in range(args.chunks)]
                  for m in modes}
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.rounds):
        for m in modes:
            got = run_mode(m, chunk_sets[m], args.ases)
            if m not in best or got[0] < best[m][0]:
                best[m] = got
    rows = {}
    base = best["corecast"][0] / args.chunks
    print(f"ITR CPU per chunk, k = {args.clients}, j = {args.ases}, {args.chunks} chunks, best of {args.rounds}")
    print(f"{'mode':16} {'us/chunk':>10} {'x lower':>8} {'pkts/chunk':>11} {'bytes/chunk':>12}")
    for m in modes:
        sec, pkts, nbytes = best[m]
        per = sec / args.chunks
        rows[m] = {"cpu_us_per_chunk": round(per * 1e6, 1), "speedup_vs_corecast": round(base / per, 2),
                   "packets_per_chunk": pkts / args.chunks, "bytes_per_chunk": nbytes / args.chunks}
        print(f"{m:16} {per * 1e6:10.1f} {base / per:8.2f} {pkts / args.chunks:11.1f} {nbytes / args.chunks:12.1f}")
    path = save_result("batch", {**info, "clients": args.clients, "ases": args.ases, "chunks": args.chunks,
                                 "rounds": args.rounds, "modes": rows})
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
