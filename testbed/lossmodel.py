"""The loss model: what random loss on core links costs each client, and how the losses correlate.

Each core router drops a forwarded datagram independently with probability p
(:mod:`testbed.net.loss`); a datagram crossing h core routers survives with
(1 - p)^h (h = 1 between two ASes of a star core). A client gets a chunk only if
every datagram it depends on survives. Per mode these are ``shared`` datagrams
(one per receiving AS, needed by every client behind that ETR) and ``own`` ones
(one per client):

=================  ======  ===  ===========================================================
mode               shared  own  what
=================  ======  ===  ===========================================================
unicast            0       1    the client's own LISP-encapsulated datagram
corecast           1       1    the ETR's DATA (shared) and the client's REF
corecast-batch     2       0    the ETR's DATA and its REF-LIST (one list up to 238 clients)
corecast-src       2       0    as corecast-batch (DATA and REF-LIST named by the source)
lispmc             1       0    one RFC 8378 copy per ETR, then IP multicast on the site LAN
ipmc               1       0    one PIM-SSM copy per AS link (star core: the copy to the AS)
=================  ======  ===  ===========================================================

With S = (1 - p)^(shared h) and O = (1 - p)^(own h), a client loses a chunk with
q = 1 - S O; two clients behind the same ETR both lose it with
b = 1 - 2 S O + S O^2; the per-chunk loss correlation (Pearson, over chunks) of two
clients of one AS is (b - q^2) / (q (1 - q)), of two clients of different ASes 0
(on a star their datagrams share no core router hop where they are dropped). So in
CoreCast a lost DATA costs every client behind that ETR the chunk: at small p the
within-AS correlation is about 1/2 (half a client's losses are its ETR's DATA); with
REF-LISTs and the multicast modes it is 1, with unicast 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LOSS_MESSAGES: dict[str, tuple[int, int]] = {
    "unicast": (0, 1), "corecast": (1, 1), "corecast-batch": (2, 0), "corecast-src": (2, 0),
    "lispmc": (1, 0), "ipmc": (1, 0),
}
"""Per mode: (shared datagrams per AS, own datagrams per client) a client needs for one chunk."""


@dataclass(frozen=True)
class LossPrediction:
    """What the loss model predicts for one mode at one loss rate (shares and correlations, 0..1)."""

    client_loss: float
    """Share of the chunks each client loses."""
    both_lost: float
    """Probability that two clients behind one ETR both lose a chunk."""
    corr_within: float
    """Per-chunk loss correlation of two clients of one AS (NaN at p = 0)."""
    corr_across: float
    """Per-chunk loss correlation of two clients of different ASes (0; NaN at p = 0)."""


def loss_messages(mode: str) -> tuple[int, int]:
    """(shared, own) for a mode; KeyError naming the known modes otherwise."""
    try:
        return LOSS_MESSAGES[mode]
    except KeyError:
        raise KeyError(f"no loss model for mode '{mode}' (known: {', '.join(LOSS_MESSAGES)})") from None


def predict(mode: str, p: float, hops: int = 1) -> LossPrediction:
    """The loss model for ``mode`` with drop probability ``p`` (0..1) per core router and ``hops`` routers.

    ValueError if p is outside 0..1 or hops < 1.
    """
    if not 0.0 <= p <= 1.0 or hops < 1:
        raise ValueError(f"loss needs 0 <= p <= 1 and hops >= 1, got p={p}, hops={hops}")
    shared, own = loss_messages(mode)
    s = (1.0 - p) ** (shared * hops)
    o = (1.0 - p) ** (own * hops)
    q = 1.0 - s * o
    both = 1.0 - 2.0 * s * o + s * o * o
    var = q * (1.0 - q)
    corr = (both - q * q) / var if var > 0 else math.nan
    return LossPrediction(client_loss=q, both_lost=both, corr_within=corr,
                          corr_across=0.0 if var > 0 else math.nan)
