"""Replication rate of the lispmc ITR (RFC 8378 head-end replication) beside the CoreCast ITR's REF rate.

In process, the sans-I/O cores only (no sockets), interleaved rounds in one run:

* lispmc ITR: :meth:`MulticastItr.on_lan_packet` on a 1,344-byte (S,G) packet
  (P = 1316) with a replication list of J ETRs: packets out per second = calls x J;
* CoreCast ITR: one REF per call through :class:`CoreCastItr` (checks on), one
  LISP packet out per REF (``bench_corecast.core_rates``).

``python bench/bench_lispmc.py [--etrs 4,40,400] [--rounds 10] [--seconds 0.1]``;
writes docs/bench-results/lispmc.json (numbers, machine, load).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
from common import CHUNK_BYTES, machine_info, save_result  # noqa: E402

from bench_corecast import core_rates  # noqa: E402
from testbed.lisp.dataplane import Encapsulator  # noqa: E402
from testbed.lisp.multicast_itr import MulticastItr  # noqa: E402
from testbed.wire import lispctrl as lc  # noqa: E402
from testbed.wire.ipv4 import build_ipv4_udp  # noqa: E402
from testbed.wire.lispctrl.lcaf import rle_text, sg_prefix  # noqa: E402

S, G = "10.0.0.10", "232.1.1.1"


def lispmc_rate(etrs: int, seconds: float, rounds: int) -> float:
    """Best packets out per second of the lispmc ITR core for a list of ``etrs`` RLOCs."""
    itr = MulticastItr(rloc="174.16.0.2", map_resolver="174.16.255.1", encap=Encapsulator("174.16.0.2"))
    pkt = build_ipv4_udp(socket.inet_aton(S), socket.inet_aton(G), 5000, 6000, bytes(CHUNK_BYTES))
    itr.on_lan_packet(pkt, 0.0)
    (payload, _, _), = itr.on_timer(0.0)
    nonce = lc.decode_control(lc.decode_control(payload).payload).nonce
    rlocs = [f"174.16.{i >> 8}.{i & 255}" for i in range(1, etrs + 1)]
    itr.on_reply(lc.MapReply(nonce, [lc.EidRecord(sg_prefix(S, G), 1, locators=[lc.Locator(rle_text(rlocs))])]),
                 0.0)
    assert len(itr.on_lan_packet(pkt, 0.1)) == etrs
    best, fn = 0.0, itr.on_lan_packet
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(200):
                fn(pkt, 0.1)
            n += 200
            now = time.perf_counter()
            if now - start >= seconds:
                break
        best = max(best, n * etrs / (now - start))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--etrs", type=bench_args.count_list(1, 10_000), default="4,40,400",
                    help="replication list sizes (comma-separated, each 1..10000)")
    ap.add_argument("--rounds", type=bench_args.count(1, 10_000), default=10, help="rounds, best of (>= 1)")
    ap.add_argument("--seconds", type=bench_args.seconds(60), default=0.1, help="length of one round (0 < s <= 60)")
    args = ap.parse_args()
    result = {"machine": machine_info(), "chunk_bytes": CHUNK_BYTES}
    sizes = args.etrs
    result["lispmc_itr_pkts_per_s"] = {str(j): round(lispmc_rate(j, args.seconds, args.rounds)) for j in sizes}
    result["corecast_itr_refs_per_s"] = core_rates(100, args.seconds, args.rounds)["itr"]["on"]
    for j, rate in result["lispmc_itr_pkts_per_s"].items():
        print(f"lispmc ITR, list of {j:>4} ETRs: {rate:>10,} packets/s out")
    print(f"CoreCast ITR (checks on):     {result['corecast_itr_refs_per_s']:>10,} REF/s (one packet out each)")
    print("written:", save_result("lispmc", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
