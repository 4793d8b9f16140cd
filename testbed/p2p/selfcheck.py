"""What every inter-domain link must carry during a P2P stream, from the nodes' own counters (star and tree cores).

The captures-versus-peers self-consistency check of issue 14: each datagram a node sends to
another AS is counted by its sender (``xas_by_as``: destination AS -> [UDP payload bytes,
datagrams]; the source's ``tracker.to_as``) and crosses, LISP-encapsulated, every inter-domain
link on the path between the two border routers, adding :data:`WIRE` bytes to its payload
(IPv4 + UDP 28, LISP encapsulation 36). Paths (RLOC routing, testbed/addressing.py):

* star core: up ``x<a>-core``, down ``x<b>-core``;
* tree core: up ``x<a>-<t_a>``; if the two ASes hang off different routers, up ``<t_a>-core``
  (unless ``t_a`` is the root) and down ``<t_b>-core``; down ``x<b>-<t_b>``. Two ASes under
  the same transit router meet there and never reach the root.

Input ``flows``: {(from AS, to AS): [bytes, datagrams]}; output: bytes per (link, direction),
the names of :func:`testbed.net.links.interdomain_links`. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any, Iterable

from testbed.modemodels import DOWN, UP, LinkKey
from testbed.wire.constants import ENCAP_OVERHEAD, IPV4_HEADER, UDP_HEADER

WIRE = ENCAP_OVERHEAD + IPV4_HEADER + UDP_HEADER
"""Bytes a LISP-encapsulated UDP datagram adds to its payload on an inter-domain link (64)."""

Flows = dict[tuple[int, int], list[int]]


def add_flows(flows: Flows, src_as: int, by_as: dict[Any, Iterable[int]]) -> None:
    """Add one node's ``xas_by_as`` (destination AS, as str or int -> [bytes, datagrams]) to ``flows``."""
    for dst, (b, n) in by_as.items():
        row = flows.setdefault((src_as, int(dst)), [0, 0])
        row[0] += int(b)
        row[1] += int(n)


def path(plan: Any, src_as: int, dst_as: int) -> list[LinkKey]:
    """The (link, direction) hops from AS ``src_as``'s border router to AS ``dst_as``'s; KeyError for an unknown AS."""
    by_number = {a.number: a for a in plan.all_ases}
    a, b = by_number[src_as], by_number[dst_as]

    def chain(x: Any) -> list[str]:
        links = [f"{x.xtr}-{x.upstream}"]
        if x.upstream != plan.core:
            links.append(f"{x.upstream}-{plan.core}")
        return links

    up, down = chain(a), chain(b)
    if a.upstream == b.upstream:  # they meet at their common router
        up, down = up[:1], down[:1]
    return [(name, UP) for name in up] + [(name, DOWN) for name in reversed(down)]


def expected_links(plan: Any, flows: Flows, keys: Iterable[LinkKey]) -> tuple[dict[LinkKey, int], int]:
    """(bytes each (link, direction) of ``keys`` must carry, bytes of flows no path covers (unknown AS))."""
    out = {key: 0 for key in keys}
    unplaced = 0
    for (src, dst), (b, n) in sorted(flows.items()):
        wire = b + WIRE * n
        try:
            hops = path(plan, src, dst) if src != dst else None
        except KeyError:
            hops = None
        if not hops or any(h not in out for h in hops):
            unplaced += wire
            continue
        for hop in hops:
            out[hop] += wire
    return out, unplaced
