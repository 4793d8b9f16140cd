"""A model of P2P inter-domain traffic under ``random`` and ``local`` selection (docs/p2p.md, "Model").

Per chunk, on a star core (every datagram between two ASes crosses two inter-domain links):

* **chunk copies**: ``fanout`` pushes from the source (all across ASes: the source AS holds no
  peers) and one pull for each of the other N - fanout peers, of which a share ``s`` comes from
  outside the puller's AS (:func:`external_share`). Each external copy is a CHUNK of 24 + P
  bytes, 88 + P on an inter-domain link (IPv4 + UDP 28, LISP 36).
* **control** (:func:`control_bytes_per_chunk`): the buffer maps every peer sends each partner
  every ``bm_period_s`` for as long as it is in the swarm, and one REQUEST per external pull,
  each with 64 bytes of headers on the link. A peer has about ``d = min(max_partners, N - 1,
  1.5 partners)`` partners (the ``partners`` it picks plus about half as many that pick it and
  find room), of which the share outside its AS is that of its partner choice.

Shares (``n_a`` peers in AS a, N in all, ``P`` = ``partners``, ``e`` = ``external``):

* ``random``: a partner is a uniform sample of the members that joined before the peer (the
  tracker's view); partnerships are symmetric, so a partner, and a pull, is outside the AS with
  the probability that a partnership crosses ASes (:func:`partner_share`). If every partner
  were a uniform sample of the whole swarm that would be ``(N - n_a) / (N - 1)`` (``join=
  "uniform"``); in the testbed the peers of an AS join together, AS after AS (``join="blocks"``),
  so the first AS's peers pick each other: 0.54 instead of 0.69 for 3 ASes of 10 peers.
* ``local``: a peer keeps ``max(e, P - (n_a - 1))`` of its P chosen partners outside its AS, the
  source pushes one peer per AS in turn (so with fanout >= j every AS gets each chunk first-hand),
  and the scheduler asks a same-AS holder first: a pull goes outside only when an external partner
  advertised the chunk before every local one, taken as half the external partners' share
  (``max(e, P - (n_a - 1)) / (2 P)``: 1/8 for the defaults when the AS holds more than P peers).
  In the simulator (testbed/p2p/sim.py) the share is 0.16 at 5 and 10 peers per AS and 0.18 at 2.
  With more ASes than ``fanout`` only ``fanout`` of them get a chunk first-hand; in the others
  the external partners hold it a hop before any local one, so the share there is taken as
  twice the external partners' share (1/2 with the defaults; 0.62 measured at 20 ASes).

Without ``rate`` the model counts chunk copies only (the lower line of the figure). Duplicates
(0 in every run so far) and the tracker's JOIN/PEERS (once per peer) are left out. What the
measured points show beyond the model is documented in docs/model.md ("P2P").
"""

from __future__ import annotations

import math
from typing import Sequence

from testbed.p2p.params import P2PParams
from testbed.wire.p2p import CHUNK_HEADER

WIRE = 64
"""Headers a peer's datagram carries on an inter-domain link: IPv4 + UDP 28, LISP encapsulation 36."""
BUFFERMAP_HEADER = 16
REQUEST_BYTES = 16
"""A REQUEST for one chunk (12 + 4 bytes)."""


def _counts(clients_per_as: Sequence[int]) -> list[int]:
    return [n for n in clients_per_as if n > 0]


def partner_share(clients_per_as: Sequence[int], policy: str, params: P2PParams | None = None,
                  join: str = "blocks") -> float:
    """Mean share of a peer's partners outside its AS (0..1), averaged over peers.

    ``join`` (``random`` only): ``blocks``, the testbed's order (one peer host per AS starts all its
    peers at once, so the swarm grows AS by AS and the first AS's peers see only each other in the
    tracker's views), or ``uniform`` (every partner a uniform sample of the whole swarm).
    """
    p = params or P2PParams()
    counts = _counts(clients_per_as)
    total = sum(counts)
    if total <= 1:
        return 0.0
    if policy == "local":
        return sum(n * min(1.0, max(p.external, p.partners - (n - 1)) / p.partners) for n in counts) / total
    if join == "uniform":
        return sum(n * (total - n) / (total - 1) for n in counts) / total
    # join == "blocks": the peers of one AS join together, AS after AS; a peer picks its partners from the
    # members that joined before it, and partnerships are symmetric, so the share of cross-AS partnerships is
    # that of the cross-AS choices (weighted by how many partners each peer could pick)
    cross = chosen = 0.0
    before = 0
    for n in counts:
        for k in range(n):
            m = before + k
            picks = min(p.partners, m)
            cross += picks * before / m if m else 0.0
            chosen += picks
        before += n
    return cross / chosen if chosen else 0.0


def pull_share(clients_per_as: Sequence[int], policy: str, params: P2PParams | None = None,
               fanout: int = 4) -> float:
    """Share of the pulled copies that come from outside the puller's AS (0..1)."""
    p = params or P2PParams()
    if policy != "local":
        return partner_share(clients_per_as, policy, p)
    counts = _counts(clients_per_as)
    total = sum(counts)
    if total <= 1:
        return 0.0
    pushed = min(1.0, fanout / len(counts))  # ASes that get each chunk first-hand (one push per AS in turn)
    out = 0.0
    for n in counts:
        ext = min(1.0, max(p.external, p.partners - (n - 1)) / p.partners)
        # same-AS holders are asked first; in an AS without a push the external partners hold it a hop earlier
        out += n * (pushed * ext / 2 + (1.0 - pushed) * min(1.0, 2 * ext))
    return out / total


def external_share(clients_per_as: Sequence[int], policy: str, fanout: int = 4,
                   params: P2PParams | None = None) -> float:
    """Share of the N copies of a chunk that cross an AS boundary (0..1): the pushes and the external pulls."""
    counts = _counts(clients_per_as)
    total = sum(counts)
    if total == 0:
        return 0.0
    push = min(fanout, total)
    return (push + (total - push) * pull_share(counts, policy, params, fanout)) / total


def partner_degree(total: int, params: P2PParams | None = None) -> float:
    """Partners a peer has on average: its own ``partners`` and about half as many more, at most
    ``max_partners`` and N - 1."""
    p = params or P2PParams()
    return float(min(p.max_partners, total - 1, 1.5 * p.partners))


def control_bytes_per_chunk(clients_per_as: Sequence[int], policy: str, rate: float, chunks: int,
                            peer_seconds: float, params: P2PParams | None = None, fanout: int = 4) -> float:
    """Control bytes per chunk on one inter-domain crossing (multiply by the links crossed).

    ``rate``: chunks per second; ``chunks``: the stream's length; ``peer_seconds``: how long each
    peer exchanges buffer maps (from its join to the playout end: the stream, the buffer B and
    the run's lead and tail).
    """
    p = params or P2PParams()
    counts = _counts(clients_per_as)
    total = sum(counts)
    if total <= 1 or chunks <= 0:
        return 0.0
    cross_partners = partner_degree(total, p) * partner_share(counts, policy, p)
    maps = total * cross_partners * peer_seconds / p.bm_period_s / chunks
    bits = min(chunks, max(1, int(p.window_s * rate))) / 2  # a map covers the chunks held so far (mean)
    map_bytes = BUFFERMAP_HEADER + math.ceil(bits / 8) + WIRE
    requests = (total - min(fanout, total)) * pull_share(counts, policy, p, fanout)
    return maps * map_bytes + requests * (REQUEST_BYTES + WIRE)


def interdomain_bytes_per_chunk(clients_per_as: Sequence[int], policy: str, chunk_bytes: int, fanout: int = 4,
                                links_per_copy: int = 2, params: P2PParams | None = None,
                                rate: float | None = None, chunks: int = 0, peer_seconds: float = 0.0) -> float:
    """Bytes on all inter-domain links per chunk (star core: every datagram crosses 2 links).

    Chunk copies only without ``rate``; with it, the control of :func:`control_bytes_per_chunk` too.
    """
    copies = external_share(clients_per_as, policy, fanout, params) * sum(_counts(clients_per_as))
    out = copies * (CHUNK_HEADER + chunk_bytes + WIRE)
    if rate:
        out += control_bytes_per_chunk(clients_per_as, policy, rate, chunks, peer_seconds, params, fanout)
    return out * links_per_copy


def source_uplink_bytes_per_chunk(clients_per_as: Sequence[int], chunk_bytes: int, fanout: int = 4) -> float:
    """Bytes per chunk on the source AS's uplink: the pushes only (the tracker's replies are control)."""
    return min(fanout, sum(clients_per_as)) * (CHUNK_HEADER + chunk_bytes + WIRE)
