"""Longest-prefix match: the pure-Python binary trie beside pytricia (issue 17: keep the faster).

Three tables hold the same EID prefixes (a /16 per AS, as the paper topology
has, plus a /24 more-specific in every tenth) and are looked up with the same
random IPv4 addresses given as ``int`` (what the daemons' fast paths hold):

* ``trie``: the binary trie the testbed used before (``testbed/lisp/lpm.py``,
  kept here, insert and lookup only, as the baseline);
* ``pytricia``: pytricia's ``get`` called directly;
* ``PrefixTable``: :class:`testbed.lisp.prefixes.PrefixTable`, what the
  map-cache and the Map-Server use now (pytricia behind one method call).

All three must give the same answer for every address. Printed: build time and
lookups per second of each; ``--json`` also writes docs/bench-results/lpm.json.

    python bench/bench_lpm.py [--prefixes 1000] [--lookups 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import args as bench_args  # noqa: E402
from testbed.lisp.prefixes import PrefixTable, mask  # noqa: E402

_EMPTY = object()


class BinaryTrie:
    """The pure-Python binary trie of testbed/lisp/lpm.py (until issue 17): nodes ``[child0, child1, value]``."""

    def __init__(self) -> None:
        self._root: list = [None, None, _EMPTY]

    def insert(self, prefix: int, plen: int, value) -> None:
        node = self._root
        for depth in range(plen):
            bit = (prefix >> (31 - depth)) & 1
            child = node[bit]
            if child is None:
                child = node[bit] = [None, None, _EMPTY]
            node = child
        node[2] = value

    def longest_match(self, addr: int):
        node = self._root
        best = None
        depth = 0
        while True:
            if node[2] is not _EMPTY:
                best = (depth, node[2])
            if depth == 32:
                break
            node = node[(addr >> (31 - depth)) & 1]
            if node is None:
                break
            depth += 1
        if best is None:
            return None
        plen, value = best
        return addr & mask(plen), plen, value


def make_prefixes(n: int) -> list[tuple[int, int, int]]:
    """``n`` /16s from 10.0.0.0 on (one per AS) and a /24 inside every tenth: (prefix, plen, value)."""
    out = []
    for i in range(n):
        net = ((10 << 24) + (i << 16)) & 0xFFFFFFFF
        out.append((net, 16, i))
        if i % 10 == 0:
            out.append((net | (7 << 8), 24, 100_000 + i))
    return out


def make_addresses(count: int, n: int, seed: int = 2) -> list[int]:
    """Random addresses: 95 % in the ASes' span (a few percent past its end: holes), 5 % anywhere."""
    rng = random.Random(seed)
    span = int(n * 1.05) << 16
    return [((10 << 24) + rng.randrange(span)) & 0xFFFFFFFF if rng.random() < 0.95 else rng.getrandbits(32)
            for _ in range(count)]


def bench_table(prefixes, addrs) -> tuple[float, float, list]:
    t0 = time.perf_counter()
    table: PrefixTable = PrefixTable()
    for net, plen, value in prefixes:
        table.insert(net, plen, value)
    build = time.perf_counter() - t0
    lookup = table.longest_match
    t0 = time.perf_counter()
    answers = [lookup(a) for a in addrs]
    return build, time.perf_counter() - t0, answers


def bench_trie(prefixes, addrs) -> tuple[float, float, list]:
    t0 = time.perf_counter()
    trie = BinaryTrie()
    for net, plen, value in prefixes:
        trie.insert(net, plen, value)
    build = time.perf_counter() - t0
    lookup = trie.longest_match
    t0 = time.perf_counter()
    answers = [lookup(a) for a in addrs]
    return build, time.perf_counter() - t0, answers


def bench_pytricia(prefixes, addrs) -> tuple[float, float, list]:
    import pytricia
    t0 = time.perf_counter()
    pyt = pytricia.PyTricia(32)
    for net, plen, value in prefixes:
        pyt.insert(net, plen, (net, plen, value))  # the value carries the prefix: one call per lookup
    build = time.perf_counter() - t0
    get = pyt.get
    t0 = time.perf_counter()
    answers = [get(a) for a in addrs]
    return build, time.perf_counter() - t0, answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=bench_args.count(1, 65_536), default=1000, help="client ASes' /16s (1..65536)")
    ap.add_argument("--lookups", type=bench_args.count(1, 100_000_000), default=200_000, help="addresses looked up")
    ap.add_argument("--repeat", type=bench_args.count(1, 1000), default=3, help="best of N timings (N >= 1)")
    ap.add_argument("--json", action="store_true", help="write docs/bench-results/lpm.json")
    args = ap.parse_args(argv)
    prefixes = make_prefixes(args.prefixes)
    addrs = make_addresses(args.lookups, args.prefixes)
    results = {}
    for name, fn in (("trie", bench_trie), ("pytricia", bench_pytricia), ("PrefixTable", bench_table)):
        runs = [fn(prefixes, addrs) for _ in range(args.repeat)]
        build = min(r[0] for r in runs)
        look = min(r[1] for r in runs)
        results[name] = {"build_s": build, "lookup_s": look, "lookups_per_s": len(addrs) / look,
                         "ns_per_lookup": look / len(addrs) * 1e9, "answers": runs[0][2]}
    assert results["trie"]["answers"] == results["pytricia"]["answers"] == results["PrefixTable"]["answers"], \
        "the LPMs disagree"
    hits = sum(a is not None for a in results["trie"]["answers"])
    load = os.getloadavg()[0]
    print(f"{len(prefixes)} prefixes, {len(addrs)} lookups ({hits} covered), load {load:.2f}")
    for name, r in results.items():
        print(f"{name:11} build {r['build_s'] * 1e3:8.2f} ms   lookup {r['ns_per_lookup']:7.0f} ns"
              f"   {r['lookups_per_s'] / 1e6:6.2f} M lookups/s")
    for name in ("pytricia", "PrefixTable"):
        ratio = results["trie"]["ns_per_lookup"] / results[name]["ns_per_lookup"]
        print(f"{name} does {ratio:.1f}x the trie's lookups per second")
    if args.json:
        out = {"prefixes": len(prefixes), "lookups": len(addrs), "loadavg_1m": load, "date": time.strftime("%Y-%m-%d"),
               "python": sys.version.split()[0],
               **{f"{n}_{k}": round(v, 9) for n, r in results.items() for k, v in r.items() if k != "answers"}}
        path = os.path.join(ROOT, "docs", "bench-results", "lpm.json")
        with open(path, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
