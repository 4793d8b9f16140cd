"""Longest-prefix match over IPv4 prefixes: a binary trie.

Addresses and prefixes are plain ``int`` (host order of the 32-bit value) so the
fast path never builds ``ipaddress`` objects.
"""

from __future__ import annotations

import ipaddress
from typing import Generic, Iterator, TypeVar

V = TypeVar("V")
_EMPTY = object()


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


class PrefixTrie(Generic[V]):
    """A binary trie mapping IPv4 prefixes to values, with longest-prefix match.

    Each node is a list ``[child0, child1, value]``; lookups walk at most 32 levels.
    """

    __slots__ = ("_root", "_count")

    def __init__(self) -> None:
        self._root: list = [None, None, _EMPTY]
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def insert(self, prefix: int, plen: int, value: V) -> None:
        """Add or replace the value of ``prefix/plen``."""
        if not 0 <= plen <= 32 or prefix & ~mask(plen) & 0xFFFFFFFF:
            raise ValueError(f"bad prefix {prefix:#x}/{plen}")
        node = self._root
        for depth in range(plen):
            bit = (prefix >> (31 - depth)) & 1
            child = node[bit]
            if child is None:
                child = node[bit] = [None, None, _EMPTY]
            node = child
        if node[2] is _EMPTY:
            self._count += 1
        node[2] = value

    def remove(self, prefix: int, plen: int) -> bool:
        """Remove ``prefix/plen``; return whether it was present (empty branches are pruned)."""
        path = []
        node = self._root
        for depth in range(plen):
            bit = (prefix >> (31 - depth)) & 1
            child = node[bit]
            if child is None:
                return False
            path.append((node, bit))
            node = child
        if node[2] is _EMPTY:
            return False
        node[2] = _EMPTY
        self._count -= 1
        while path and node[0] is None and node[1] is None and node[2] is _EMPTY:
            parent, bit = path.pop()
            parent[bit] = None
            node = parent
        return True

    def get(self, prefix: int, plen: int) -> V | None:
        """Return the value stored at exactly ``prefix/plen``, or None."""
        node = self._root
        for depth in range(plen):
            node = node[(prefix >> (31 - depth)) & 1]
            if node is None:
                return None
        return None if node[2] is _EMPTY else node[2]

    def longest_match(self, addr: int) -> tuple[int, int, V] | None:
        """Return (prefix, plen, value) of the longest prefix covering ``addr``, or None."""
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

    def hole(self, addr: int) -> tuple[int, int]:
        """For an address no prefix covers, return the largest prefix around it that holds no entry.

        That is the answer of a negative Map-Reply (RFC 9301 section 8.2): the
        address's bits down to one past the depth where the trie's path ends.
        """
        node = self._root
        depth = 0
        while depth < 32:
            nxt = node[(addr >> (31 - depth)) & 1]
            if nxt is None:
                break
            node = nxt
            depth += 1
        plen = min(depth + 1, 32)
        return addr & mask(plen), plen

    def items(self) -> Iterator[tuple[int, int, V]]:
        """Yield every (prefix, plen, value), in address order."""
        stack = [(self._root, 0, 0)]
        while stack:
            node, prefix, depth = stack.pop()
            if node[2] is not _EMPTY:
                yield prefix, depth, node[2]
            for bit in (1, 0):
                child = node[bit]
                if child is not None:
                    stack.append((child, prefix | (bit << (31 - depth)), depth + 1))
