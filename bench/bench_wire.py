"""Encode/decode rates of CoreCast REF and DATA: fast codec vs scapy layers, in the same run.

Run: python bench/bench_wire.py [--seconds S] [--rounds N]. Prints one line per case and the
fast/scapy ratios; targets: >= 2,000,000 REF decodes/s with the fast codec (issue 16; 500,000
before) and >= 20x scapy. The previous REF decode (``peek_type``, ``unpack_ref``, the frozen
dataclass's own ``__init__``: what ``decode`` did before its REF fast path) runs beside it in the
same process, ``--rounds`` times (default 3), and the medians and their ratio are printed.
Results go to docs/bench-wire.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import time
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from scapy.packet import Raw  # noqa: E402

import args as bench_args  # noqa: E402
from testbed.layers import CoreCast, CoreCastRef  # noqa: E402
from testbed.wire import corecast as cc  # noqa: E402

CHUNK = bytes(range(256)) * 4 + bytes(176)  # 1200 bytes
DIGEST = cc.chunk_hash(CHUNK)
SRC, DST = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.1.0.5")
REF = cc.encode_ref(7, 41, DIGEST, SRC, DST, 5000, 6000)
DATA = cc.encode_data(7, 41, CHUNK)


def rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` (timeit: best of 5 repeats of about ``seconds`` / 5 each)."""
    timer = timeit.Timer(fn)
    number, taken = timer.autorange()
    number = max(1, int(number * (seconds / 5) / taken))
    return number / min(timer.repeat(repeat=5, number=number))


def fast_ref_decode() -> None:
    cc.decode(REF)


def previous_ref_decode() -> None:  # decode() before its REF fast path (issue 16)
    cc.peek_type(REF)
    flags, sid, seq, digest, src, dst, sport, dport = cc.unpack_ref(REF)
    cc.CoreCastRef(sid, seq, digest, src, dst, sport, dport, flags)


def fast_ref_unpack() -> None:  # what the ETR's hot path does
    if cc.peek_type(REF) == cc.TYPE_REF:
        cc.unpack_ref(REF)


def fast_ref_encode() -> None:
    cc.encode_ref(7, 41, DIGEST, SRC, DST, 5000, 6000)


_BUF = bytearray(68)


def fast_ref_pack_into() -> None:
    cc.pack_ref_into(_BUF, 36, 7, 41, DIGEST, SRC, DST, 5000, 6000)


def fast_data_decode() -> None:
    cc.decode(DATA)


def fast_data_encode() -> None:
    cc.encode_data(7, 41, CHUNK)


_HASH = int.from_bytes(DIGEST, "big")


def scapy_ref_decode() -> None:
    pkt = CoreCast(REF)
    pkt[CoreCastRef].dst_eid  # noqa: B018  (touch a field)


def scapy_ref_encode() -> None:
    bytes(CoreCast(type=2, stream_id=7, seq=41) / CoreCastRef(chunk_hash=_HASH, src_eid="10.0.0.1",
                                                              dst_eid="10.1.0.5", sport=5000, dport=6000))


def scapy_data_decode() -> None:
    pkt = CoreCast(DATA)
    pkt[Raw].load  # noqa: B018


def scapy_data_encode() -> None:
    bytes(CoreCast(type=1, stream_id=7, seq=41) / Raw(CHUNK))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=bench_args.seconds(600), default=3.0,
                        help="time per case (default 3; 0 < s <= 600)")
    parser.add_argument("--rounds", type=bench_args.count(1, 1000), default=3,
                        help="alternating rounds of REF decode, new vs previous (>= 1)")
    args = parser.parse_args()
    assert bytes(CoreCast(REF)) == REF and bytes(CoreCast(DATA)) == DATA
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor() or platform.machine()} "
          f"cpus={os.cpu_count()} python={platform.python_version()}")
    cases = [
        ("REF decode", fast_ref_decode, scapy_ref_decode),
        ("REF encode", fast_ref_encode, scapy_ref_encode),
        ("DATA decode", fast_data_decode, scapy_data_decode),
        ("DATA encode", fast_data_encode, scapy_data_encode),
    ]
    print(f"{'case':<14} {'fast/s':>12} {'scapy/s':>10} {'ratio':>7}")
    for name, fast, slow in cases:
        f, s = rate(fast, args.seconds), rate(slow, args.seconds)
        print(f"{name:<14} {f:>12,.0f} {s:>10,.0f} {f / s:>6.0f}x")
    for name, fn in (("REF peek+unpack (ETR path)", fast_ref_unpack), ("REF pack_into (ITR path)", fast_ref_pack_into)):
        print(f"{name:<28} {rate(fn, args.seconds):>12,.0f}/s")
    assert cc.decode(REF) == cc.CoreCastRef(7, 41, DIGEST, SRC, DST, 5000, 6000)
    new, old = [], []
    for _ in range(args.rounds):
        new.append(rate(fast_ref_decode, args.seconds))
        old.append(rate(previous_ref_decode, args.seconds))
    med_new, med_old = sorted(new)[len(new) // 2], sorted(old)[len(old) // 2]
    print(f"REF decode, median of {args.rounds}: {med_new:,.0f}/s now, {med_old:,.0f}/s previous "
          f"({med_new / med_old:.2f}x); target 2,000,000/s {'MET' if med_new >= 2e6 else 'MISSED'}"
          f"; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
