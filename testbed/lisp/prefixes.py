"""IPv4 prefixes: parsing, masks, and a longest-prefix-match table on pytricia.

Addresses and prefixes are plain ``int`` (host order of the 32-bit value) so the
fast path never builds ``ipaddress`` objects. :class:`PrefixTable` keeps the
values in a pytricia Patricia trie (a C extension: one call per lookup, about
9x the lookups per second of the pure-Python binary trie it replaced; see
docs/benchmarks.md, "Longest-prefix match", and bench/bench_lpm.py) and a sorted
list of its keys for address-ordered iteration and for :meth:`PrefixTable.hole`.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left, insort
from typing import Generic, Iterator, TypeVar

import pytricia

V = TypeVar("V")


def parse_prefix(text: str) -> tuple[int, int]:
    """Return (network int, prefix length) of ``"a.b.c.d/n"``; raise ValueError if malformed."""
    net = ipaddress.IPv4Network(text, strict=True)
    return int(net.network_address), net.prefixlen


def format_prefix(prefix: int, plen: int) -> str:
    """Return ``"a.b.c.d/n"``."""
    return f"{ipaddress.IPv4Address(prefix)}/{plen}"


def mask(plen: int) -> int:
    """Return the 32-bit netmask of a prefix length."""
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0


class PrefixTable(Generic[V]):
    """IPv4 prefixes mapped to values, with longest-prefix match (pytricia).

    ``insert``/``remove``/``get`` take (network int, prefix length); a network
    with bits set past its length is a ValueError. Lookups take an address int.
    """

    __slots__ = ("_pyt", "_keys", "_values")

    def __init__(self) -> None:
        self._pyt = pytricia.PyTricia(32)
        self._keys: list[tuple[int, int]] = []  # sorted (network, length): address order
        self._values: dict[tuple[int, int], V] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def insert(self, prefix: int, plen: int, value: V) -> None:
        """Add or replace the value of ``prefix/plen``."""
        if not 0 <= plen <= 32 or not 0 <= prefix <= 0xFFFFFFFF or prefix & ~mask(plen) & 0xFFFFFFFF:
            raise ValueError(f"bad prefix {prefix:#x}/{plen}")
        key = (prefix, plen)
        if key not in self._values:
            insort(self._keys, key)
        self._values[key] = value
        self._pyt.insert(prefix, plen, (prefix, plen, value))

    def remove(self, prefix: int, plen: int) -> bool:
        """Remove ``prefix/plen``; return whether it was present."""
        key = (prefix, plen)
        if key not in self._values:
            return False
        del self._values[key]
        del self._keys[bisect_left(self._keys, key)]
        self._pyt.delete(format_prefix(prefix, plen))
        return True

    def get(self, prefix: int, plen: int) -> V | None:
        """Return the value stored at exactly ``prefix/plen``, or None."""
        return self._values.get((prefix, plen))

    def longest_match(self, addr: int) -> tuple[int, int, V] | None:
        """Return (prefix, plen, value) of the longest prefix covering ``addr``, or None."""
        return self._pyt.get(addr)

    def hole(self, addr: int) -> tuple[int, int]:
        """The largest prefix around ``addr`` that holds no entry more specific than the ones covering it.

        That is the answer of a negative Map-Reply (RFC 9301 section 8.2): with
        ``d`` the longest length at which ``addr/d`` still contains an entry of
        length >= d, the hole is ``addr/(d + 1)`` (``/32`` at most, ``/1`` in an
        empty table). Found by bisection over d, each step a bisection in the
        sorted keys: an entry of length >= d lies in ``addr/d`` exactly when its
        key is in ``[(addr/d, d), (last address of addr/d, 32)]``.
        """
        keys = self._keys
        lo, hi = 0, 32  # invariant: the answer d is in [lo, hi]; d = 0 if nothing matches at all
        while lo < hi:
            d = (lo + hi + 1) // 2
            net = addr & mask(d)
            i = bisect_left(keys, (net, d))
            if i < len(keys) and keys[i] <= (net | (~mask(d) & 0xFFFFFFFF), 32):
                lo = d
            else:
                hi = d - 1
        plen = min(lo + 1, 32)
        return addr & mask(plen), plen

    def items(self) -> Iterator[tuple[int, int, V]]:
        """Yield every (prefix, plen, value), in address order (a prefix before its more-specifics)."""
        values = self._values
        for key in list(self._keys):
            if key in values:
                yield key[0], key[1], values[key]
