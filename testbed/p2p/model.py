"""A model of P2P inter-domain traffic under ``random`` and ``local`` selection (docs/p2p.md, "Model").

Per chunk, ``fanout`` copies come from the source (all across ASes: the source AS has no
peers) and the other N - fanout peers pull one copy each. Under ``random`` a peer's
partners are a uniform sample of the other N - 1 peers, so a pulled copy comes from
outside the puller's AS with probability 1 - (n_a - 1)/(N - 1). Under ``local`` a chunk
enters each AS about once from outside (through the ``external`` partners or a source
push) and then spreads inside: one external copy per AS with peers. Duplicates and
control traffic are left out (measured apart). Every copy is a CHUNK message of 24 + P
bytes, 88 + P on an inter-domain link once LISP-encapsulated; on a star core it crosses
two inter-domain links.
"""

from __future__ import annotations

from typing import Sequence

from testbed.wire.p2p import CHUNK_HEADER

WIRE = 64


def external_share(clients_per_as: Sequence[int], policy: str, fanout: int = 4) -> float:
    """Share of the N copies of a chunk that cross an AS boundary (0..1)."""
    counts = [n for n in clients_per_as if n > 0]
    total = sum(counts)
    if total == 0:
        return 0.0
    push = min(fanout, total)
    pulls = total - push
    if policy == "local":
        external_pulls = max(0, len(counts) - push)
    else:
        if total == 1:
            return 1.0
        external_pulls = pulls * sum(n * (1 - (n - 1) / (total - 1)) for n in counts) / total
    return (push + external_pulls) / total


def interdomain_bytes_per_chunk(clients_per_as: Sequence[int], policy: str, chunk_bytes: int, fanout: int = 4,
                                links_per_copy: int = 2) -> float:
    """Chunk bytes on all inter-domain links per chunk (star core: each external copy crosses 2 links)."""
    copies = external_share(clients_per_as, policy, fanout) * sum(n for n in clients_per_as if n > 0)
    return copies * (CHUNK_HEADER + chunk_bytes + WIRE) * links_per_copy


def source_uplink_bytes_per_chunk(clients_per_as: Sequence[int], chunk_bytes: int, fanout: int = 4) -> float:
    """Bytes per chunk on the source AS's uplink: the pushes only (the tracker's replies are control)."""
    return min(fanout, sum(clients_per_as)) * (CHUNK_HEADER + chunk_bytes + WIRE)
