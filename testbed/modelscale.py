"""The model at Internet scale: every mode's bytes per chunk for up to 70,000 ASes and 10,000,000 clients.

Vectorized evaluation of :mod:`testbed.model` for ``corecast model`` (no
packets). A client spread is an array of clients per AS (``numpy`` int64, one
entry per client AS, zeros allowed) and a capability flag per AS. What a mode
sends towards one client AS depends only on (clients in it, capable), so the
spread is reduced to its distinct (count, capable) pairs with their
multiplicities (at most a few thousand even for a Zipf spread of 10,000,000
clients) and each registered :class:`~testbed.modemodels.ModeModel` is
evaluated on a star core with one AS per distinct pair; multiplicities then
weigh the per-AS links. Results equal :func:`testbed.model.link_bytes_per_chunk`
and friends on the full spread (tests/test_model_cli.py checks every mode).

Core shape: the star (one core router), as in the paper topology. Sizes are
IPv4 total lengths of LISP data packets per chunk of ``chunk_bytes`` (DESIGN
section 3; RFC 9300 section 5 encapsulation).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from testbed.modemodels import DOWN, MODELS, UP, CoreShape, ModeModel

MAX_ASES = 70_000
"""Client ASes a spread may have (the order of the Internet's ASes with end users)."""
MAX_CLIENTS = 10_000_000
"""Clients in all a spread may have."""


@dataclass(frozen=True)
class Spread:
    """Clients per AS (``counts``, int64, >= 0) and capability per AS (``capable``, bool, same length)."""

    counts: np.ndarray
    capable: np.ndarray

    @property
    def ases(self) -> int:
        """Client ASes in the topology (with or without clients)."""
        return int(self.counts.size)

    @property
    def clients(self) -> int:
        """k, all clients."""
        return int(self.counts.sum())

    @property
    def active_ases(self) -> int:
        """j, client ASes with at least one client."""
        return int(np.count_nonzero(self.counts))

    @property
    def capable_ases(self) -> int:
        """Client ASes that advertise CoreCast capability."""
        return int(np.count_nonzero(self.capable))

    @property
    def gamma(self) -> float:
        """k / j (0.0 without clients)."""
        j = self.active_ases
        return self.clients / j if j else 0.0


@dataclass(frozen=True)
class ModeResult:
    """One mode's traffic per chunk on the star core (bytes are IPv4 total lengths)."""

    mode: str
    uplink_bytes: int
    """On the source AS's uplink towards the core (``core_bytes`` of a run, per chunk)."""
    uplink_packets: int
    interdomain_bytes: int
    """Summed over every inter-domain link and direction."""
    max_link_bytes: int
    """On the busiest inter-domain (link, direction)."""


def uniform_spread(total: int, ases: int) -> np.ndarray:
    """``total`` clients as evenly as possible over ``ases`` ASes (the first ones get the remainder).

    Same numbers as :func:`testbed.params.uniform_counts`.
    """
    base, extra = divmod(total, ases)
    out = np.full(ases, base, dtype=np.int64)
    out[:extra] += 1
    return out


def zipf_spread(total: int, ases: int, exponent: float, seed: int) -> np.ndarray:
    """``total`` clients drawn over ``ases`` ASes, rank r with probability ~ 1/r^exponent (seeded).

    The very draw of :func:`testbed.params.zipf_counts` (what ``distribution=zipf``
    gives an experiment), vectorized: the same Mersenne Twister state, the same
    53-bit doubles and the same bisection of the cumulative weights as
    ``random.Random(seed).choices``. 10,000,000 clients take about a second.
    """
    weights = [1.0 / (rank ** exponent) for rank in range(1, ases + 1)]
    cum = np.fromiter(accumulate(weights), dtype=np.float64, count=ases)
    state = random.Random(seed).getstate()[1]
    gen = np.random.RandomState()
    gen.set_state(("MT19937", np.array(state[:-1], dtype=np.uint32), state[-1]))
    idx = np.searchsorted(cum, gen.random_sample(total) * (cum[-1] + 0.0), side="right")
    np.minimum(idx, ases - 1, out=idx)
    return np.bincount(idx, minlength=ases).astype(np.int64)


def capable_flags(ases: int, fraction: float) -> np.ndarray:
    """The first ``round(fraction * ases)`` ASes capable (as ``--set capable=0.5`` for an experiment)."""
    out = np.zeros(ases, dtype=bool)
    out[:round(fraction * ases)] = True
    return out


def point_to_point(m: ModeModel) -> bool:
    """True if the mode sends each client AS its own copies from the source's ITR (no replication in the core)."""
    cls = type(m)
    return cls.link_bytes is ModeModel.link_bytes and cls.uplink_bytes is ModeModel.uplink_bytes


def evaluate(spread: Spread, chunk_bytes: int, modes: tuple[str, ...] | None = None) -> list[ModeResult]:
    """Every mode's :class:`ModeResult` for ``spread`` on the star core, in :data:`MODELS` order.

    ``modes`` picks some (ValueError on an unknown name). Point-to-point modes
    (the ModeModel base behaviour) put the sum over client ASes on the source
    uplink; a mode that replicates in the core (``ipmc``) is what its own
    ``link_bytes`` says on the reduced star: one copy on the uplink whatever
    the multiplicities.
    """
    names = tuple(MODELS) if modes is None else modes
    for name in names:
        if name not in MODELS:
            raise ValueError(f"unknown mode {name!r} (expected one of {', '.join(MODELS)})")
    vals: list[int] = []
    caps: list[bool] = []
    mult: list[int] = []
    for cap in (True, False):
        u, c = np.unique(spread.counts[spread.capable == cap], return_counts=True)
        vals += [int(v) for v in u]
        caps += [cap] * len(u)
        mult += [int(x) for x in c]
    weights = np.array(mult, dtype=np.int64)
    star = CoreShape.star(len(vals))
    src = star.links[0]
    out = []
    for name in names:
        m = MODELS[name]
        lb = m.link_bytes(vals, caps, chunk_bytes, star)
        lp = m.link_packets(vals, caps, star)
        down = np.array([lb[(star.links[i + 1], DOWN)] for i in range(len(vals))], dtype=np.int64)
        up = np.array([lb[(star.links[i + 1], UP)] for i in range(len(vals))], dtype=np.int64)
        if point_to_point(m):
            uplink = int((weights * down).sum())
            packets = int(sum(w * lp[(star.links[i + 1], DOWN)] for i, w in enumerate(mult)))
        else:
            uplink = lb[(src, UP)]
            packets = lp[(src, UP)]
        inter = uplink + lb[(src, DOWN)] + int((weights * (down + up)).sum())
        busiest = max(uplink, lb[(src, DOWN)], int(down.max(initial=0)), int(up.max(initial=0)))
        out.append(ModeResult(name, uplink, packets, inter, busiest))
    return out
