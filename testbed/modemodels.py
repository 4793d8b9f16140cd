"""Each delivery mode's formulas, per chunk: the :class:`ModeModel` classes, and the shape of the core.

The public API is :mod:`testbed.model` (which re-exports everything here); this
module holds the per-mode classes so that adding a mode means adding a class and
a :data:`MODELS` entry, nothing else. Sizes are IPv4 total lengths (DESIGN
section 3); see docs/model.md for the derivations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from testbed.addressing import PER_SUBNET
from testbed.wire.constants import (
    CORECAST_HEADER,
    CORECAST_REF,
    ENCAP_OVERHEAD,
    IPV4_HEADER,
    UDP_HEADER,
)

UDP_IP = IPV4_HEADER + UDP_HEADER  # 28
UNICAST_EDGE_OVERHEAD = UDP_IP  # 28: plain IPv4/UDP chunk inside an AS
UNICAST_CORE_OVERHEAD = ENCAP_OVERHEAD + UDP_IP  # 64: outer IP/UDP/LISP + inner IP/UDP
DATA_CORE_OVERHEAD = ENCAP_OVERHEAD + CORECAST_HEADER  # 48: outer IP/UDP/LISP + CoreCast header
REF_CORE_BYTES = ENCAP_OVERHEAD + CORECAST_REF  # 68
DATA_SOURCE_OVERHEAD = UDP_IP + CORECAST_HEADER  # 40: S -> ITR, IPv4/UDP + CoreCast header
REF_SOURCE_BYTES = UDP_IP + CORECAST_REF  # 60
LIST_CORE_BYTES = ENCAP_OVERHEAD + 32  # 68: a REF-LIST's outer headers and its own 32-byte header
LIST_SOURCE_BYTES = UDP_IP + 32  # 60: the same from S to its ITR (no LISP header)
LIST_ENTRY_BYTES = 6
LIST_CAPACITY = 238  # entries per REF-LIST for an outer MTU of 1,500 (testbed.wire.corecast.ref_list_capacity)
MAP_HEADER_BYTES = 40  # a REF-MAP's own header; then ceil(span / 8) bytes of bitmap (testbed.wire.corecast)

UP, DOWN = "up", "down"
"""Directions on an inter-domain link: ``up`` from its lower end (a border router) towards the core, ``down`` back."""

LinkKey = tuple[str, str]
"""(link name, direction) of an inter-domain link."""


@dataclass(frozen=True)
class CoreShape:
    """The inter-domain links and, per client AS, the links (and directions) from the source AS to it.

    ``links`` names every inter-domain link; ``paths[i]`` lists the (link, direction)
    hops from the source AS's border router to client AS ``i + 1``'s, in order.
    """

    links: tuple[str, ...]
    paths: tuple[tuple[LinkKey, ...], ...]

    @classmethod
    def star(cls, ases: int, border: str = "x", core: str = "core") -> "CoreShape":
        """One core router: link ``x<i>-core`` joins AS i's border router ``x<i>`` to it (AS 0 is the source AS)."""
        if isinstance(ases, bool) or not isinstance(ases, int) or ases < 0:
            raise ValueError(f"ases must be a non-negative int, got {ases!r}")
        names = tuple(f"{border}{i}-{core}" for i in range(ases + 1))
        return cls(links=names, paths=tuple(((names[0], UP), (names[i], DOWN)) for i in range(1, ases + 1)))

    @property
    def source_uplink(self) -> LinkKey:
        """The source AS's uplink, direction up (where ``core_bytes`` is measured)."""
        return (self.links[0], UP)

    def keys(self) -> list[LinkKey]:
        """Every (link, direction), links in order, up before down."""
        return [(name, d) for name in self.links for d in (UP, DOWN)]


class ModeModel:
    """What one delivery mode puts on the wire per chunk (one subclass per mode, registered in :data:`MODELS`).

    The base class is a point-to-point mode: whatever is bound for a client AS
    leaves the source's ITR once and crosses every link of its path.
    Subclasses give :meth:`as_bytes`, :meth:`as_packets`, :meth:`source_as_bytes`
    and :meth:`source_as_packets`; a mode that replicates inside the core
    overrides :meth:`link_bytes` and :meth:`link_packets`.
    """

    name = ""

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """Bytes per chunk from the source AS to one client AS with ``n`` clients (``n`` may be an average)."""
        raise NotImplementedError

    def as_packets(self, n: int, capable: bool) -> int:
        """LISP data packets per chunk from the source AS to one client AS with ``n`` clients."""
        raise NotImplementedError

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """Bytes per chunk from S to its ITR inside the source AS, for ``k`` clients."""
        raise NotImplementedError

    def source_as_packets(self, k: int) -> int:
        """Datagrams per chunk from S to its ITR, for ``k`` clients."""
        raise NotImplementedError

    def uplink_bytes(self, clients_per_as: Sequence[int], capable: Sequence[bool], chunk_bytes: int) -> int:
        """Bytes per chunk on the source uplink: the sum of :meth:`as_bytes` over the client ASes."""
        return sum(int(self.as_bytes(n, c, chunk_bytes)) for n, c in zip(clients_per_as, capable))

    def uplink_packets(self, clients_per_as: Sequence[int], capable: Sequence[bool]) -> int:
        """Packets per chunk on the source uplink: the sum of :meth:`as_packets`."""
        return sum(self.as_packets(n, c) for n, c in zip(clients_per_as, capable))

    def uniform_uplink_bytes(self, gamma: float, chunk_bytes: int, ases: float, capable_fraction: float) -> float:
        """Source-uplink bytes per chunk for ``ases`` ASes of ``gamma`` clients, a fraction of them capable."""
        f = capable_fraction
        return ases * (f * self.as_bytes(gamma, True, chunk_bytes)
                       + (1.0 - f) * self.as_bytes(gamma, False, chunk_bytes))

    def _per_link(self, per_as: list[int], core: CoreShape) -> dict[LinkKey, int]:
        out = dict.fromkeys(core.keys(), 0)
        if len(per_as) != len(core.paths):
            raise ValueError(f"{len(per_as)} client ASes but the core shape has paths to {len(core.paths)}")
        for value, path in zip(per_as, core.paths):
            for hop in path:
                out[hop] += value
        return out

    def link_bytes(self, clients_per_as: Sequence[int], capable: Sequence[bool], chunk_bytes: int,
                   core: CoreShape) -> dict[LinkKey, int]:
        """Bytes per chunk on every (link, direction) of ``core`` (zero where nothing flows)."""
        return self._per_link([int(self.as_bytes(n, c, chunk_bytes)) for n, c in zip(clients_per_as, capable)], core)

    def link_packets(self, clients_per_as: Sequence[int], capable: Sequence[bool],
                     core: CoreShape) -> dict[LinkKey, int]:
        """LISP data packets per chunk on every (link, direction) of ``core``."""
        return self._per_link([self.as_packets(n, c) for n, c in zip(clients_per_as, capable)], core)


class UnicastModel(ModeModel):
    """``unicast``: one LISP-encapsulated copy per client, ``64 + P`` bytes each."""

    name = "unicast"

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """``n (64+P)``."""
        return n * (UNICAST_CORE_OVERHEAD + chunk_bytes)

    def as_packets(self, n: int, capable: bool) -> int:
        """``n``."""
        return n

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """``k (28+P)``."""
        return k * (UNICAST_EDGE_OVERHEAD + chunk_bytes)

    def source_as_packets(self, k: int) -> int:
        """``k``."""
        return k


class CoreCastModel(ModeModel):
    """``corecast``: one DATA per capable ETR with clients and a REF per client; unicast to non-capable ASes."""

    name = "corecast"

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """``(48+P) + 68 n`` for a capable AS with clients, ``n (64+P)`` for a non-capable one, 0 without clients."""
        if not n:
            return 0
        if capable:
            return DATA_CORE_OVERHEAD + chunk_bytes + REF_CORE_BYTES * n
        return n * (UNICAST_CORE_OVERHEAD + chunk_bytes)

    def as_packets(self, n: int, capable: bool) -> int:
        """``1 + n`` for a capable AS with clients, else ``n``."""
        return (1 + n) if (capable and n) else n

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """``(40+P) + 60 k``: S sends the DATA even to zero clients, and a REF for every client."""
        return DATA_SOURCE_OVERHEAD + chunk_bytes + k * REF_SOURCE_BYTES

    def source_as_packets(self, k: int) -> int:
        """``1 + k``."""
        return 1 + k


def ref_lists(n: float) -> int:
    """REF-LISTs (or REF-MAPs) per chunk for ``n`` clients behind one ETR: ``ceil(n / 238)``."""
    return math.ceil(n / LIST_CAPACITY) if n > 0 else 0


def _eid_offset(i: int) -> int:
    """Address offset of an AS's ``i``-th client EID (0-based) from its first: the addressing plan puts
    ``PER_SUBNET`` (250) clients per /24, .1 to .250 (testbed.addressing)."""
    return (i // PER_SUBNET) * 256 + i % PER_SUBNET


def _part_bytes(first: int, c: int) -> int:
    """CoreCast bytes of the message naming clients ``first`` .. ``first + c - 1`` of an AS (one port):
    the shorter of the REF-LIST ``32 + 6 c`` and the REF-MAP ``40 + ceil(span / 8)``
    (:func:`testbed.wire.corecast.compact_ref_list`)."""
    listed = 32 + LIST_ENTRY_BYTES * c
    if c < 2:
        return listed
    span = _eid_offset(first + c - 1) - _eid_offset(first) + 1
    return min(listed, MAP_HEADER_BYTES + (span + 7) // 8)


@lru_cache(maxsize=4096)
def _list_bytes_int(n: int) -> int:
    out, first = 0, 0
    while first < n:
        c = min(LIST_CAPACITY, n - first)
        out += _part_bytes(first, c)
        first += c
    return out


def list_bytes(n: float) -> float:
    """CoreCast bytes (without outer headers) of the REF-LISTs/REF-MAPs of one chunk for ``n`` clients of one AS.

    Exact for an integer ``n`` when the destinations are the AS's first ``n`` clients of the addressing
    plan, in order, all on one port (every experiment's audience): split at 238, each part the
    shorter form. A fractional ``n`` (an average) interpolates between its neighbours.
    """
    if n <= 0:
        return 0
    lo = math.floor(n)
    if lo == n:
        return _list_bytes_int(int(n))
    return _list_bytes_int(lo) + (n - lo) * (_list_bytes_int(lo + 1) - _list_bytes_int(lo))


def _lists_total(n: float, overhead: int) -> float:
    """Bytes on the wire of one AS's lists per chunk: ``overhead`` (36 core, 28 S to ITR) per message + bodies."""
    total = overhead * ref_lists(n) + list_bytes(n)
    return int(total) if total == int(total) else total


class CoreCastBatchModel(CoreCastModel):
    """``corecast-batch``: S sends REFs as in corecast; its ITR sends one DATA and ``ceil(n/238)`` REF-LISTs per ETR,
    each as a REF-MAP when that is shorter (:func:`list_bytes`)."""

    name = "corecast-batch"

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """``(48+P) + 36 ceil(n/238) + list_bytes(n)`` for a capable AS with clients (REF-LISTs only:
        ``(48+P) + 68 ceil(n/238) + 6 n``), ``n (64+P)`` for a non-capable one."""
        if not n:
            return 0
        if capable:
            return DATA_CORE_OVERHEAD + chunk_bytes + _lists_total(n, ENCAP_OVERHEAD)
        return n * (UNICAST_CORE_OVERHEAD + chunk_bytes)

    def as_packets(self, n: int, capable: bool) -> int:
        """``1 + ceil(n/238)`` for a capable AS with clients, else ``n``."""
        return (1 + ref_lists(n)) if (capable and n) else n


class CoreCastSrcModel(CoreCastBatchModel):
    """``corecast-src``: S resolves its clients and sends its ITR one DATA and, per capable ETR, its REF-LISTs;
    the clients of non-capable ASes get unicast from S. On the core: as corecast-batch."""

    name = "corecast-src"

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """With every client behind one capable ETR: ``(40+P) + 28 ceil(k/238) + list_bytes(k)``
        (see :meth:`source_as_bytes_split`)."""
        return DATA_SOURCE_OVERHEAD + chunk_bytes + _lists_total(k, UDP_IP)

    def source_as_packets(self, k: int) -> int:
        """With every client behind one capable ETR: ``1 + ceil(k/238)``."""
        return 1 + ref_lists(k)

    def source_as_bytes_split(self, clients_per_as: Sequence[int], capable: Sequence[bool], chunk_bytes: int) -> int:
        """``(40+P) + sum over capable ASes (28 ceil(n/238) + list_bytes(n)) + k_n (28+P)``."""
        out = DATA_SOURCE_OVERHEAD + chunk_bytes
        for n, c in zip(clients_per_as, capable):
            if n:
                out += (_lists_total(n, UDP_IP) if c
                        else n * (UNICAST_EDGE_OVERHEAD + chunk_bytes))
        return out

    def source_as_packets_split(self, clients_per_as: Sequence[int], capable: Sequence[bool]) -> int:
        """``1 + sum over capable ASes ceil(n/238) + k_n``."""
        return 1 + sum((ref_lists(n) if c else n) for n, c in zip(clients_per_as, capable) if n)


class LispMcModel(ModeModel):
    """``lispmc``: signal-free LISP multicast (RFC 8378): the source's ITR sends one LISP-encapsulated copy of the
    multicast packet, ``64 + P`` bytes, to each ETR with receivers (head-end replication), whatever the number
    of receivers behind it and whether the AS is CoreCast-capable; S sends each chunk once (``28 + P``)."""

    name = "lispmc"

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """``64 + P`` for an AS with receivers, 0 without."""
        return UNICAST_CORE_OVERHEAD + chunk_bytes if n else 0

    def as_packets(self, n: int, capable: bool) -> int:
        """One copy per AS with receivers."""
        return 1 if n else 0

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """``28 + P``: S sends each chunk once to the group."""
        return UNICAST_EDGE_OVERHEAD + chunk_bytes

    def source_as_packets(self, k: int) -> int:
        """One datagram per chunk."""
        return 1


class IpmcModel(ModeModel):
    """``ipmc``: native IP multicast (PIM-SSM): one plain ``28 + P`` copy per link of the distribution tree.

    No LISP: the chunk crosses each link on a path to an AS with at least one client
    once, whatever the number of clients behind it (RFC 4607 source-specific
    multicast; the tree is the union of the paths of :class:`CoreShape`). Model only:
    no Mode runs it on the network yet.
    """

    name = "ipmc"

    def as_bytes(self, n: float, capable: bool, chunk_bytes: int) -> float:
        """What a lone client AS would cost on its own path: one copy if it has clients."""
        return UDP_IP + chunk_bytes if n else 0

    def as_packets(self, n: int, capable: bool) -> int:
        """One packet if the AS has clients."""
        return 1 if n else 0

    def source_as_bytes(self, k: int, chunk_bytes: int) -> int:
        """``28 + P``: S sends each chunk once to the group (even with no receiver)."""
        return UDP_IP + chunk_bytes

    def source_as_packets(self, k: int) -> int:
        """One datagram per chunk."""
        return 1

    def uplink_bytes(self, clients_per_as: Sequence[int], capable: Sequence[bool], chunk_bytes: int) -> int:
        """``28 + P`` if any AS has clients, else 0."""
        return UDP_IP + chunk_bytes if any(clients_per_as) else 0

    def uplink_packets(self, clients_per_as: Sequence[int], capable: Sequence[bool]) -> int:
        """One if any AS has clients."""
        return 1 if any(clients_per_as) else 0

    def uniform_uplink_bytes(self, gamma: float, chunk_bytes: int, ases: float, capable_fraction: float) -> float:
        """``28 + P`` whatever gamma and j (0 without clients)."""
        return float(UDP_IP + chunk_bytes) if gamma > 0 and ases > 0 else 0.0

    def _tree(self, clients_per_as: Sequence[int], core: CoreShape, value: int) -> dict[LinkKey, int]:
        if len(clients_per_as) != len(core.paths):
            raise ValueError(f"{len(clients_per_as)} client ASes but the core shape has paths to {len(core.paths)}")
        out = dict.fromkeys(core.keys(), 0)
        for n, path in zip(clients_per_as, core.paths):
            if n:
                for hop in path:
                    out[hop] = value
        return out

    def link_bytes(self, clients_per_as: Sequence[int], capable: Sequence[bool], chunk_bytes: int,
                   core: CoreShape) -> dict[LinkKey, int]:
        """``28 + P`` on every (link, direction) of the distribution tree, 0 elsewhere."""
        return self._tree(clients_per_as, core, UDP_IP + chunk_bytes)

    def link_packets(self, clients_per_as: Sequence[int], capable: Sequence[bool],
                     core: CoreShape) -> dict[LinkKey, int]:
        """One packet per chunk on every (link, direction) of the distribution tree."""
        return self._tree(clients_per_as, core, 1)


MODELS: dict[str, ModeModel] = {m.name: m for m in (UnicastModel(), CoreCastModel(), CoreCastBatchModel(),
                                                    CoreCastSrcModel(), LispMcModel(), IpmcModel())}
"""The model of each delivery mode, by name (:mod:`testbed.modes` ties each to its Mode class)."""

MODES = tuple(MODELS)
"""The delivery modes the model knows."""


def mode_model(mode: str) -> ModeModel:
    """The model of ``mode``; ValueError naming the known modes otherwise."""
    try:
        return MODELS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mode {mode!r} (expected one of {', '.join(MODELS)})") from None


