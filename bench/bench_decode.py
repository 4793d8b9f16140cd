"""Time count_capture (and `corecast decode --totals-only`) on a generated 1,000,000-packet capture.

Run: python bench/bench_decode.py [--packets N] [--lines]. The capture (Ethernet,
a CoreCast-like mix: per chunk one DATA and several REFs, some unicast-encapsulated
chunks, service traffic, control and other packets) is written to a temporary
directory and removed afterwards. Target: totals for 1,000,000 packets in < 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import args as bench_args  # noqa: E402
from testbed.decode import count_capture, decode_command, write_pcap  # noqa: E402
from testbed.wire import corecast as cc  # noqa: E402
from testbed.wire import lispctrl as lc  # noqa: E402
from testbed.wire.ipv4 import build_ipv4_udp  # noqa: E402
from testbed.wire.lispdata import encode_lisp_header  # noqa: E402

A = socket.inet_aton
ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"


def templates() -> list[bytes]:
    """One cycle of frames: 1 DATA, 8 REFs, 2 unicast chunks, 2 service messages, control, other."""
    chunk = os.urandom(1200)
    digest = cc.chunk_hash(chunk)
    itr, etr = A("192.0.2.1"), A("198.51.100.1")
    out = lambda dport, payload: ETH + build_ipv4_udp(itr, etr, 50000, dport, payload)  # noqa: E731
    lisp_c = encode_lisp_header(0x84, 1)
    frames = [out(4341, lisp_c + cc.encode_data(1, 7, chunk))]
    frames += [out(4341, lisp_c + cc.encode_ref(1, 7, digest, A("10.0.0.1"), A(f"10.1.0.{i}"), 5000, 6000))
               for i in range(8)]
    inner = build_ipv4_udp(A("10.0.0.1"), A("10.2.0.9"), 5000, 6000, chunk)
    frames += [out(4341, encode_lisp_header(0x80, 1) + inner)] * 2
    frames += [ETH + build_ipv4_udp(A("10.0.0.1"), A("10.0.255.254"), 5000, 4340, cc.encode_data(1, 7, chunk)),
               ETH + build_ipv4_udp(A("10.0.0.1"), A("10.0.255.254"), 5000, 4340,
                                    cc.encode_ref(1, 7, digest, A("10.0.0.1"), A("10.1.0.1"), 5000, 6000))]
    frames += [out(4342, lc.MapRequest(1, ["10.1.0.1/32"], ["192.0.2.1"]).encode()), ETH + inner]
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=bench_args.count(1, 100_000_000), default=1_000_000, help="1..100000000")
    parser.add_argument("--lines", action="store_true", help="also time the per-packet lines (to a null sink)")
    args = parser.parse_args()
    cycle = templates()
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} cpus={os.cpu_count()} python={platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        path = os.path.join(tmp, "big.pcap")
        t0 = time.perf_counter()
        n = write_pcap(path, (cycle[i % len(cycle)] for i in range(args.packets)))
        print(f"wrote {n:,} packets, {os.path.getsize(path) / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        totals = count_capture(path)
        dt = time.perf_counter() - t0
        assert totals.total_packets == n and totals.packets["malformed"] == 0, totals.packets
        print(f"count_capture: {dt:.2f} s, {n / dt:,.0f} packets/s")
        for kind, count in totals.packets.items():
            print(f"  {kind:<18} {count:>9,} packets {totals.bytes[kind]:>14,} bytes")
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            decode_command(path, totals_only=True)
        print(f"corecast decode --totals-only: {time.perf_counter() - t0:.2f} s")
        if args.lines:
            t0 = time.perf_counter()
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                decode_command(path)
            print(f"corecast decode (lines + totals): {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
