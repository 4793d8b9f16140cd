"""The analytical model: bytes and packets per stream chunk, unicast versus CoreCast.

Everything here is a pure function of the header sizes of DESIGN section 3
(imported from :mod:`testbed.wire.constants`), the chunk size ``P`` and the way
the ``k`` clients are spread over the ``j`` client ASes. Sizes are IPv4 total
lengths (what a capture on the source AS's core-facing interface adds up).

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

Core, per chunk:  unicast ``k (64+P)``;
CoreCast ``j_c (48+P) + k_c 68 + k_n (64+P)`` where ``j_c`` counts capable ASes
with at least one client, ``k_c`` their clients and ``k_n`` the clients of
non-capable ASes (which get plain LISP unicast from the ITR).

Source AS, per chunk: unicast ``k (28+P)``; CoreCast ``(40+P) + 60 k`` (S sends
one DATA and one REF per client whatever the client's AS; the ITR decides).

With every AS capable and ``gamma = k / j`` clients in each, the savings are
``1 - ((48+P) + 68 gamma) / (gamma (64+P))``; they are zero at
``gamma* = (P+48) / (P-4)`` (1.04 for P = 1316) and tend to ``1 - 68/(64+P)``.
See docs/model.md for the derivation and worked numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from testbed.wire.constants import (
    CORECAST_HEADER,
    CORECAST_REF,
    ENCAP_OVERHEAD,
    IPV4_HEADER,
    UDP_HEADER,
)

MODES = ("unicast", "corecast")
"""The delivery modes the model knows."""

UDP_IP = IPV4_HEADER + UDP_HEADER  # 28
UNICAST_EDGE_OVERHEAD = UDP_IP  # 28: plain IPv4/UDP chunk inside an AS
UNICAST_CORE_OVERHEAD = ENCAP_OVERHEAD + UDP_IP  # 64: outer IP/UDP/LISP + inner IP/UDP
DATA_CORE_OVERHEAD = ENCAP_OVERHEAD + CORECAST_HEADER  # 48: outer IP/UDP/LISP + CoreCast header
REF_CORE_BYTES = ENCAP_OVERHEAD + CORECAST_REF  # 68
DATA_SOURCE_OVERHEAD = UDP_IP + CORECAST_HEADER  # 40: S -> ITR, IPv4/UDP + CoreCast header
REF_SOURCE_BYTES = UDP_IP + CORECAST_REF  # 60


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


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (expected one of {', '.join(MODES)})")


def _check_chunk(chunk_bytes: int) -> None:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")


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
    """LISP data packets per chunk on the core: unicast ``k``; CoreCast ``j_c + k_c + k_n``."""
    _check_mode(mode)
    g = group_counts(clients_per_as, capable)
    if mode == "unicast":
        return g.k
    return g.j_c + g.k_c + g.k_n


def core_bytes_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None,
                         chunk_bytes: int) -> int:
    """Bytes (IP total lengths) per chunk leaving the source AS towards the core.

    unicast: ``k (64+P)``; corecast: ``j_c (48+P) + 68 k_c + k_n (64+P)``.
    """
    _check_mode(mode)
    _check_chunk(chunk_bytes)
    g = group_counts(clients_per_as, capable)
    unicast_pkt = UNICAST_CORE_OVERHEAD + chunk_bytes
    if mode == "unicast":
        return g.k * unicast_pkt
    return g.j_c * (DATA_CORE_OVERHEAD + chunk_bytes) + g.k_c * REF_CORE_BYTES + g.k_n * unicast_pkt


def source_as_packets_per_chunk(mode: str, clients_per_as: Sequence[int],
                                capable: Sequence[bool] | None = None) -> int:
    """Packets per chunk from S to its ITR: unicast ``k``; CoreCast ``1 + k`` (one DATA, k REFs)."""
    _check_mode(mode)
    g = group_counts(clients_per_as, capable)
    return g.k if mode == "unicast" else 1 + g.k


def source_as_bytes_per_chunk(mode: str, clients_per_as: Sequence[int], capable: Sequence[bool] | None,
                              chunk_bytes: int) -> int:
    """Bytes per chunk from S to its ITR inside the source AS.

    unicast: ``k (28+P)``; corecast: ``(40+P) + 60 k`` (S sends the DATA even to
    zero clients, and a REF for every client, capable AS or not).
    """
    _check_mode(mode)
    _check_chunk(chunk_bytes)
    g = group_counts(clients_per_as, capable)
    if mode == "unicast":
        return g.k * (UNICAST_EDGE_OVERHEAD + chunk_bytes)
    return DATA_SOURCE_OVERHEAD + chunk_bytes + g.k * REF_SOURCE_BYTES


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
    """Closed form of the core bytes per chunk for ``ases`` ASes of ``gamma`` clients each.

    unicast: ``j gamma (64+P)``; corecast:
    ``j [f ((48+P) + 68 gamma) + (1-f) gamma (64+P)]`` with ``f`` the fraction of
    capable ASes. ``gamma`` may be fractional (an average), so this is a float.
    """
    _check_mode(mode)
    _check_chunk(chunk_bytes)
    if gamma < 0 or ases < 0 or not 0.0 <= capable_fraction <= 1.0:
        raise ValueError("need gamma >= 0, ases >= 0 and 0 <= capable_fraction <= 1")
    unicast_as = gamma * (UNICAST_CORE_OVERHEAD + chunk_bytes)
    if mode == "unicast":
        return ases * unicast_as
    corecast_as = DATA_CORE_OVERHEAD + chunk_bytes + REF_CORE_BYTES * gamma
    return ases * (capable_fraction * corecast_as + (1.0 - capable_fraction) * unicast_as)


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
    counts: GroupCounts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        _check_chunk(self.chunk_bytes)
        if isinstance(self.chunks, bool) or not isinstance(self.chunks, int) or self.chunks < 0:
            raise ValueError(f"chunks must be a non-negative int, got {self.chunks!r}")
        object.__setattr__(self, "clients_per_as", tuple(self.clients_per_as))
        cap = tuple(bool(c) for c in self.capable) if self.capable else (True,) * len(self.clients_per_as)
        object.__setattr__(self, "capable", cap)
        object.__setattr__(self, "counts", group_counts(self.clients_per_as, self.capable))

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
            "expected_chunks": self.chunks * c.k,
        }
