"""In-process packet rates of the xTR cores (no sockets): ITR encapsulation, ETR decapsulation,
CoreCast ITR REF processing and CoreCast ETR REF processing, for 1316-byte chunks.

Run: ``.venv/bin/python bench/bench_xtr_core.py [--seconds 2] [--clients 1000] [--profile NAME]``.
Each rate is the best of three timed rounds; results go to stdout (a Markdown table).
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import socket
import time
from typing import Callable

import args as bench_args
from testbed.lisp.corecast_etr import CoreCastEtr
from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import Etr, Itr
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire import corecast as cc
from testbed.wire.ipv4 import build_ipv4_udp

CHUNK = bytes(range(256)) * 5 + bytes(36)  # 1316 bytes
ITR_RLOC, ETR_RLOC = "192.0.2.1", "192.0.2.2"
SRC = socket.inet_aton("10.1.0.10")


def _eid(i: int) -> bytes:
    """Return the 4-byte address of client ``i`` in 10.2.0.0/16."""
    return bytes((10, 2, (i >> 8) & 0xFF, i & 0xFF))


def _cache(capable: bool) -> MapCache:
    """A map-cache with the client site 10.2.0.0/16 behind ETR_RLOC."""
    cache = MapCache()
    cache.install(MapEntry(0x0A020000, 16, [(ETR_RLOC, 1, 100, capable)], expires=1e12))
    return cache


def _rate(fn: Callable[[int], None], per_call: int, seconds: float) -> float:
    """Return the best of three rounds of ``fn(i)`` calls, in packets per second."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for i in range(1000):
                fn(i)
            n += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n * per_call / (now - start))
    return best


def benches(clients: int) -> dict[str, tuple[Callable[[int], None], int]]:
    """Return name -> (one-call function, packets per call)."""
    itr = Itr(ITR_RLOC, _cache(False))
    pkts = [build_ipv4_udp(SRC, _eid(i), 5000, 6000, CHUNK) for i in range(clients)]

    def itr_encap(i: int) -> None:
        itr.on_tun_packet(pkts[i % clients], 1.0)

    vouching = MapCache()  # the source site 10.1.0.0/16 with ITR_RLOC as its CoreCast ITR (the ETR's defence)
    vouching.install(MapEntry(0x0A010000, 16, [(ITR_RLOC, 1, 100, True)], expires=1e12))
    etr = Etr(["10.2.0.0/16"], corecast=CoreCastEtr(["10.2.0.0/16"], vouching))
    lisp = [a[2][28:] for p in pkts for a in itr.on_tun_packet(p, 1.0)]

    def etr_decap(i: int) -> None:
        etr.on_lisp_packet(lisp[i % clients], ITR_RLOC, 1.0)

    cci = CoreCastItr(ITR_RLOC, _cache(True), ["10.1.0.0/16"])
    cci.on_service_message(cc.encode_data(1, 1, CHUNK), SRC, 1.0)
    digest = cc.chunk_hash(CHUNK)
    refs = [cc.encode_ref(1, 1, digest, SRC, _eid(i), 5000, 6000) for i in range(clients)]

    def cc_itr_ref(i: int) -> None:
        cci.on_service_message(refs[i % clients], SRC, 1.0)

    to_etr = [a[2][28:] for r in refs for a in cci.on_service_message(r, SRC, 1.0)]
    data_pkt, ref_pkts = to_etr[0], to_etr[1:]
    etr.on_lisp_packet(data_pkt, ITR_RLOC, 1.0)

    def cc_etr_ref(i: int) -> None:
        etr.on_lisp_packet(ref_pkts[i % clients], ITR_RLOC, 1.0)

    cci_n = CoreCastItr(ITR_RLOC, _cache(False), ["10.1.0.0/16"])
    cci_n.on_service_message(cc.encode_data(1, 1, CHUNK), SRC, 1.0)

    def cc_itr_ref_unicast(i: int) -> None:
        cci_n.on_service_message(refs[i % clients], SRC, 1.0)

    cci_d = CoreCastItr(ITR_RLOC, _cache(True), ["10.1.0.0/16"])
    datas = [cc.encode_data(1, i, CHUNK[:-4] + i.to_bytes(4, "big")) for i in range(1000)]

    def cc_itr_data(i: int) -> None:
        cci_d.on_service_message(datas[i], SRC, 1.0)

    return {
        "ITR encapsulation (Itr.on_tun_packet)": (itr_encap, 1),
        "ETR decapsulation (Etr.on_lisp_packet)": (etr_decap, 1),
        "CoreCast ITR REF, capable site (CoreCastItr.on_service_message)": (cc_itr_ref, 1),
        "CoreCast ITR REF, non-capable site (unicast fallback)": (cc_itr_ref_unicast, 1),
        "CoreCast ITR DATA (hash + cache)": (cc_itr_data, 1),
        "CoreCast ETR REF (Etr.on_lisp_packet -> CoreCastEtr)": (cc_etr_ref, 1),
    }


def main() -> None:
    """Run every bench (or profile one) and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=bench_args.seconds(600), default=3.0,
                        help="time per bench (three rounds; 0 < s <= 600)")
    parser.add_argument("--clients", type=bench_args.count(1, 100_000), default=1000,
                        help="distinct client EIDs cycled through (1..100000)")
    parser.add_argument("--profile", help="profile the bench whose name contains this text")
    args = parser.parse_args()
    table = benches(args.clients)
    if args.profile is not None:
        name = next((n for n in table if args.profile.strip() and args.profile.lower() in n.lower()), None)
        if name is None:
            parser.error(f"--profile {args.profile!r} names no bench; one of: {', '.join(table)}")
        fn, _ = table[name]
        prof = cProfile.Profile()
        prof.runcall(lambda: [fn(i % 1000) for i in range(200_000)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        return
    print(f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.processor() or platform.machine()},"
          f" {args.clients} clients, chunk {len(CHUNK)} bytes\n")
    print("| path | packets/s |\n| --- | ---: |")
    for name, (fn, per_call) in table.items():
        print(f"| {name} | {_rate(fn, per_call, args.seconds):,.0f} |")


if __name__ == "__main__":
    main()
