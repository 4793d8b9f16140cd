"""The analytical model: bytes and packets per stream chunk, per delivery mode and per inter-domain link.

Everything here is a pure function of the header sizes of DESIGN section 3
(imported from :mod:`testbed.wire.constants`), the chunk size ``P``, the way the
``k`` clients are spread over the ``j`` client ASes, and the shape of the core
(:class:`CoreShape`: which inter-domain links a packet from the source AS to a
client AS crosses). Sizes are IPv4 total lengths of LISP data packets (UDP 4341),
what the captures and the per-link counters add up; control traffic (UDP 4342)
is counted apart and never modelled.

Per chunk of ``P`` bytes:

====================================  ============  ==========
packet                                where         bytes
====================================  ============  ==========
unicast chunk, LISP-encapsulated      core          64 + P
CoreCast DATA, LISP-encapsulated      core          48 + P
CoreCast REF, LISP-encapsulated       core          68
unicast chunk                         source AS     28 + P
CoreCast DATA / REF, S to its ITR     source AS     40 + P / 60
====================================  ============  ==========

Source uplink (``core_bytes``), per chunk:  unicast ``k (64+P)``;
CoreCast ``j_c (48+P) + k_c 68 + k_n (64+P)`` where ``j_c`` counts capable ASes
with at least one client, ``k_c`` their clients and ``k_n`` the clients of
non-capable ASes (which get plain LISP unicast from the ITR).

Every inter-domain link (:func:`link_bytes_per_chunk`): both modes send from the
source's ITR straight to each ETR, so what is bound for client AS ``i`` crosses
every link of the path from the source AS to AS ``i`` once. On the star core
(one core router) that is the source uplink and AS ``i``'s downlink, so the sum
over inter-domain links is twice the source uplink, and the busiest link is
the source uplink.

Source AS, per chunk: unicast ``k (28+P)``; CoreCast ``(40+P) + 60 k`` (S sends
one DATA and one REF per client whatever the client's AS; the ITR decides).

With every AS capable and ``gamma = k / j`` clients in each, the savings are
``1 - ((48+P) + 68 gamma) / (gamma (64+P))``; they are zero at
``gamma* = (P+48) / (P-4)`` (1.04 for P = 1316) and tend to ``1 - 68/(64+P)``.
See docs/model.md for the derivation and worked numbers.

Loss on core links (per client and correlated per AS): :func:`loss_prediction`
(:mod:`testbed.lossmodel`).

Each mode's formulas live in one :class:`ModeModel` subclass registered in
:data:`MODELS`; the functions taking a ``mode`` name look it up there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from testbed.lossmodel import LOSS_MESSAGES, LossPrediction  # noqa: F401  (re-exported: loss on core links)
from testbed.lossmodel import predict as loss_prediction  # noqa: F401
from testbed.modemodels import (  # noqa: F401  (re-exported: the model's public names)
    DATA_CORE_OVERHEAD,
    DATA_SOURCE_OVERHEAD,
    DOWN,
    MODELS,
    MODES,
    REF_CORE_BYTES,
    REF_SOURCE_BYTES,
    UDP_IP,
    UNICAST_CORE_OVERHEAD,
    UNICAST_EDGE_OVERHEAD,
    UP,
    CoreCastModel,
    CoreShape,
    LinkKey,
    ModeModel,
    IpmcModel,
    UnicastModel,
    mode_model,
)


@dataclass(frozen=True)
class GroupCounts:
    """How the clients fall on the ASes: the quantities every formula uses."""

    k: int
    """All clients."""
    j: int
    """Client ASes with at least one client."""
    ases: int
    """Client ASes in the topology (with or without clients)."""
    capable_ases: int
    """Client ASes that advertise CoreCast capability (with or without clients)."""
    j_c: int
    """Capable ASes with at least one client (each gets one DATA per chunk)."""
    k_c: int
    """Clients in capable ASes (each gets one REF per chunk)."""
    k_n: int
    """Clients in non-capable ASes (each gets LISP unicast)."""

    @property
    def gamma(self) -> float:
        """Grouping coefficient k / j (0.0 without clients)."""
        return self.k / self.j if self.j else 0.0



def _check_chunk(chunk_bytes: int) -> None:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")


def _capable_list(clients_per_as: Sequence[int], capable: Sequence[bool] | None) -> list[bool]:
    if capable is None or len(capable) == 0 and len(clients_per_as):
        return [True] * len(clients_per_as)
    if len(capable) != len(clients_per_as):
        raise ValueError(f"{len(clients_per_as)} client counts but {len(capable)} capability flags")
    return [bool(c) for c in capable]


def group_counts(clients_per_as: Sequence[int], capable: Sequence[bool] | None = None) -> GroupCounts:
    """Count k, j, j_c, k_c, k_n from clients per AS and capability per AS.

    ``capable=None`` means every AS is capable. Raises ValueError on lists of
    different lengths or a negative or non-integer client count.
    """
    if capable is None:
        capable = [True] * len(clients_per_as)
    if len(capable) != len(clients_per_as):
        raise ValueError(f"{len(clients_per_as)} client counts but {len(capable)} capability flags")
    k = j = j_c = k_c = k_n = 0
    for n, cap in zip(clients_per_as, capable):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"client counts must be non-negative ints, got {n!r}")
        k += n
        if n:
            j += 1
        if cap:
            k_c += n
            j_c += 1 if n else 0
        else:
            k_n += n
    return GroupCounts(k=k, j=j, ases=len(clients_per_as), capable_ases=sum(bool(c) for c in capable),
                       j_c=j_c, k_c=k_c, k_n=k_n)


def core_packets_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None = None) -> int:
    """LISP data packets per chunk on the source uplink: unicast ``k``; CoreCast ``j_c + k_c + k_n``."""
    m = mode_model(mode)
    group_counts(clients_per_as, capable)  # validates
    return m.uplink_packets(clients_per_as, _capable_list(clients_per_as, capable))


def core_bytes_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None,
                         chunk_bytes: int) -> int:
    """Bytes (IP total lengths) per chunk leaving the source AS towards the core (the source uplink).

    unicast: ``k (64+P)``; corecast: ``j_c (48+P) + 68 k_c + k_n (64+P)``; ipmc: ``28 + P`` (if k > 0).
    """
    m = mode_model(mode)
    _check_chunk(chunk_bytes)
    group_counts(clients_per_as, capable)
    return m.uplink_bytes(clients_per_as, _capable_list(clients_per_as, capable), chunk_bytes)


def source_as_packets_per_chunk(mode: str, clients_per_as: Sequence[int],
                                capable: Sequence[bool] | None = None) -> int:
    """Packets per chunk from S to its ITR: unicast ``k``; CoreCast ``1 + k`` (one DATA, k REFs)."""
    m = mode_model(mode)
    counts = group_counts(clients_per_as, capable)
    split = getattr(m, "source_as_packets_split", None)  # modes whose S-to-ITR traffic depends on the grouping
    if split is not None:
        return split(clients_per_as, _capable_list(clients_per_as, capable))
    return m.source_as_packets(counts.k)


def source_as_bytes_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None,
                              chunk_bytes: int) -> int:
    """Bytes per chunk from S to its ITR inside the source AS.

    unicast: ``k (28+P)``; corecast: ``(40+P) + 60 k`` (S sends the DATA even to
    zero clients, and a REF for every client, capable AS or not).
    """
    m = mode_model(mode)
    _check_chunk(chunk_bytes)
    counts = group_counts(clients_per_as, capable)
    split = getattr(m, "source_as_bytes_split", None)  # modes whose S-to-ITR traffic depends on the grouping
    if split is not None:
        return split(clients_per_as, _capable_list(clients_per_as, capable), chunk_bytes)
    return m.source_as_bytes(counts.k, chunk_bytes)


def link_bytes_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None,
                         chunk_bytes: int, core: CoreShape | None = None) -> dict[LinkKey, int]:
    """Bytes per chunk on every inter-domain (link, direction); ``core`` defaults to the star core."""
    m = mode_model(mode)
    _check_chunk(chunk_bytes)
    group_counts(clients_per_as, capable)
    core = core or CoreShape.star(len(clients_per_as))
    return m.link_bytes(list(clients_per_as), _capable_list(clients_per_as, capable), chunk_bytes, core)


def link_packets_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None = None,
                           core: CoreShape | None = None) -> dict[LinkKey, int]:
    """LISP data packets per chunk on every inter-domain (link, direction)."""
    m = mode_model(mode)
    group_counts(clients_per_as, capable)
    core = core or CoreShape.star(len(clients_per_as))
    return m.link_packets(list(clients_per_as), _capable_list(clients_per_as, capable), core)


def link_totals(mode: str, segments: Iterable[tuple[int, Sequence[int]]], capable: Sequence[bool] | None,
                chunk_bytes: int, core: CoreShape | None = None) -> dict[LinkKey, int]:
    """Bytes per (link, direction) over a stream whose audience changes: ``segments`` of (chunks, clients per AS)."""
    out: dict[LinkKey, int] = {}
    for chunks, counts in segments:
        for key, value in link_bytes_per_chunk(mode, counts, capable, chunk_bytes, core).items():
            out[key] = out.get(key, 0) + chunks * value
    return out


def interdomain_bytes(links: dict[LinkKey, int]) -> int:
    """Sum over every inter-domain link and direction (a packet counts once per link it crosses)."""
    return sum(links.values())


def max_link_bytes(links: dict[LinkKey, int]) -> int:
    """Bytes on the busiest (link, direction); 0 without links."""
    return max(links.values(), default=0)


def savings(clients_per_as: Sequence[int], capable: Sequence[bool] | None, chunk_bytes: int) -> float:
    """Core savings of CoreCast over unicast: ``1 - corecast / unicast`` (negative = CoreCast costs more).

    0.0 without clients (both send nothing).
    """
    uni = core_bytes_per_chunk("unicast", clients_per_as, capable, chunk_bytes)
    if uni == 0:
        return 0.0
    return 1.0 - core_bytes_per_chunk("corecast", clients_per_as, capable, chunk_bytes) / uni


def core_bytes_per_chunk_uniform(mode: str, gamma: float, chunk_bytes: int, ases: float = 1.0,
                                 capable_fraction: float = 1.0) -> float:
    """Closed form of the source-uplink bytes per chunk for ``ases`` ASes of ``gamma`` clients each.

    unicast: ``j gamma (64+P)``; corecast:
    ``j [f ((48+P) + 68 gamma) + (1-f) gamma (64+P)]`` with ``f`` the fraction of
    capable ASes. ``gamma`` may be fractional (an average), so this is a float.
    """
    m = mode_model(mode)
    _check_chunk(chunk_bytes)
    if gamma < 0 or ases < 0 or not 0.0 <= capable_fraction <= 1.0:
        raise ValueError("need gamma >= 0, ases >= 0 and 0 <= capable_fraction <= 1")
    return m.uniform_uplink_bytes(gamma, chunk_bytes, ases, capable_fraction)


def savings_uniform(gamma: float, chunk_bytes: int, capable_fraction: float = 1.0) -> float:
    """Savings for uniform groups of ``gamma`` clients per AS (``gamma >= 1`` in practice).

    ``f (1 - ((48+P) + 68 gamma) / (gamma (64+P)))``: with every AS capable
    (``f = 1``) this is negative for ``gamma < gamma*`` and tends to
    ``1 - 68/(64+P)``. A fraction ``f`` of capable ASes scales the savings by ``f``.
    """
    if gamma <= 0:
        raise ValueError("gamma must be > 0")
    uni = core_bytes_per_chunk_uniform("unicast", gamma, chunk_bytes)
    cc = core_bytes_per_chunk_uniform("corecast", gamma, chunk_bytes, capable_fraction=capable_fraction)
    return 1.0 - cc / uni


def break_even_gamma(chunk_bytes: int) -> float:
    """The gamma at which CoreCast and unicast cost the same on the core: ``(P+48) / (P-4)``.

    From ``gamma (64+P) = (48+P) + 68 gamma``. Above it CoreCast saves bytes.
    """
    _check_chunk(chunk_bytes)
    denom = UNICAST_CORE_OVERHEAD + chunk_bytes - REF_CORE_BYTES
    if denom <= 0:
        return float("inf")  # a REF is as large as a unicast chunk: CoreCast never pays
    return (DATA_CORE_OVERHEAD + chunk_bytes) / denom


def asymptotic_savings(chunk_bytes: int) -> float:
    """The limit of the savings for gamma -> infinity: ``1 - 68 / (64+P)``."""
    _check_chunk(chunk_bytes)
    return 1.0 - REF_CORE_BYTES / (UNICAST_CORE_OVERHEAD + chunk_bytes)


@dataclass(frozen=True)
class ModelPoint:
    """One measured point's model prediction: a mode, the client spread and the stream size.

    ``capable`` empty means every AS is capable. The properties give totals over
    ``chunks`` chunks; :meth:`row` gives the model's CSV columns.
    """

    mode: str
    clients_per_as: tuple[int, ...]
    capable: tuple[bool, ...] = ()
    chunk_bytes: int = 1316
    chunks: int = 1
    core: CoreShape | None = None
    """The inter-domain links (None: the star core for these ASes)."""
    counts: GroupCounts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mode_model(self.mode)
        _check_chunk(self.chunk_bytes)
        if isinstance(self.chunks, bool) or not isinstance(self.chunks, int) or self.chunks < 0:
            raise ValueError(f"chunks must be a non-negative int, got {self.chunks!r}")
        object.__setattr__(self, "clients_per_as", tuple(self.clients_per_as))
        cap = tuple(bool(c) for c in self.capable) if self.capable else (True,) * len(self.clients_per_as)
        object.__setattr__(self, "capable", cap)
        object.__setattr__(self, "counts", group_counts(self.clients_per_as, self.capable))
        if self.core is None:
            object.__setattr__(self, "core", CoreShape.star(len(self.clients_per_as)))

    @property
    def gamma(self) -> float:
        """k / j."""
        return self.counts.gamma

    @property
    def core_bytes(self) -> int:
        """Core bytes over all chunks."""
        return self.chunks * core_bytes_per_chunk(self.mode, self.clients_per_as, self.capable, self.chunk_bytes)

    @property
    def core_packets(self) -> int:
        """Core LISP data packets over all chunks."""
        return self.chunks * core_packets_per_chunk(self.mode, self.clients_per_as, self.capable)

    @property
    def source_as_bytes(self) -> int:
        """Bytes from S to its ITR over all chunks."""
        return self.chunks * source_as_bytes_per_chunk(self.mode, self.clients_per_as, self.capable,
                                                       self.chunk_bytes)

    @property
    def link_bytes(self) -> dict[LinkKey, int]:
        """Bytes per inter-domain (link, direction) over all chunks."""
        per = link_bytes_per_chunk(self.mode, self.clients_per_as, self.capable, self.chunk_bytes, self.core)
        return {key: self.chunks * value for key, value in per.items()}

    @property
    def interdomain_bytes(self) -> int:
        """Bytes summed over every inter-domain link and direction, over all chunks."""
        return interdomain_bytes(self.link_bytes)

    @property
    def max_link_bytes(self) -> int:
        """Bytes on the busiest inter-domain (link, direction), over all chunks."""
        return max_link_bytes(self.link_bytes)

    @property
    def savings(self) -> float:
        """Savings of CoreCast over unicast for this client spread (whatever ``mode`` is)."""
        return savings(self.clients_per_as, self.capable, self.chunk_bytes)

    def row(self) -> dict:
        """The model's part of a measurements.csv row (DESIGN section 4 column names)."""
        c = self.counts
        return {
            "mode": self.mode,
            "ases": c.ases,
            "capable_ases": c.capable_ases,
            "clients": c.k,
            "gamma": c.gamma,
            "chunk_bytes": self.chunk_bytes,
            "chunks": self.chunks,
            "model_core_bytes": self.core_bytes,
            "model_core_packets": self.core_packets,
            "model_source_as_bytes": self.source_as_bytes,
            "model_interdomain_bytes": self.interdomain_bytes,
            "model_max_link_bytes": self.max_link_bytes,
            "expected_chunks": self.chunks * c.k,
        }
