"""The addressing plan: disjoint EID and RLOC spaces, node names, interfaces.

One algorithm for every size, from 1 to :data:`MAX_PLAN_ASES` ASes and up to
100,000 clients; ``n`` below is the number of ASes including the source AS
(``ases + 1``), AS ``i`` is 0 for the source AS and 1..j for the client ASes.

* **EID block 10.0.0.0/8.** The block is cut into ``n`` equal *slots* of
  prefix length ``L = max(16, 8 + ceil(log2 n))`` (/16 up to 256 ASes, /18 up to
  1,024, /20 up to 4,096); AS ``i`` owns slot ``i``, ``10.0.0.0 + i * 2^(32-L)``.
  An AS whose clients do not fit its slot (a Zipf audience can put 13,000 of
  100,000 clients in one AS) gets instead the smallest power-of-two block that
  holds them, allocated from the top of 10.0.0.0/8 downwards, largest first
  (so each is aligned); its slot stays unused. A plan that does not fit is a
  :class:`~testbed.nodeutil.ConfigError` (one line, exit 2), raised by
  :func:`check_fits` from :func:`testbed.params.topo_params`.
  Inside an AS block ``B`` (first address ``b``, last ``e``):
  the border router (xTR) is ``b+1`` on the AS LAN; a many-clients host
  (``client_hosts=per-as``) sits at ``b+2`` and holds the client EIDs of the
  upper half of ``B`` (routed to it), 250 per /24 (.1 to .250); host-per-client
  clients are .1 to .250 of the second /24 of ``B`` onwards. In the source AS,
  ``src`` is ``b+10`` and the ITR's CoreCast service address is ``e-1``. Up to
  256 ASes with at most 32,000 clients each (per-as) this is exactly
  10.i.0.0/16, xTR 10.i.0.1, host ``m<i>`` 10.i.0.2 with 10.i.128.0/17,
  clients 10.i.1.1..., ``src`` 10.0.0.10 and service 10.0.255.254.
* **RLOC block 172.16.0.0/12.** The links of the xTRs to the core are slots of
  172.16.0.0/16 of prefix length ``max(24, 16 + ceil(log2 n))`` (at most /30):
  AS ``i``'s link is slot ``i``, core (or transit router) ``+1``, xTR ``+2``;
  up to 256 ASes that is 172.16.i.0/24. The mapping host's link is
  172.17.0.0/24 (core .1, map-server .2). The core routes RLOC space only.
* **Attackers** (only with ``make_plan(..., attackers=True)``, for ``corecast run attack``):
  an ``outsider`` host on the core on 172.17.1.0/24 (core .1, outsider .2), a host
  of the Internet that can reach every RLOC; and a ``rogue`` host on the LAN of the
  last client AS at ``b+66`` of its block (10.j.0.66 in small plans).
* **Tree core** (``core=tree``, ``transit=N``): the core router becomes the root of a
  two-level hierarchy; transit router ``t<k>`` (k = 1..N) joins it on 172.18.k.0/24
  (root .1, transit .2; interfaces ``core-t<k>`` and ``t<k>-core``). The source AS
  and the mapping host stay on the root; client AS i hangs off its transit router
  (round-robin, or seeded random with ``attach=random``) on its RLOC slot (transit
  ``+1``, interface ``t<k>-x<i>``). FRR's OSPF routes the RLOC block between them.
* **Names**: xTR ``x<i>``, LAN bridge ``cc<i>``, many-clients host ``m<i>``,
  per-client host ``h<i>x<c>``; a node name has at most 9 characters and an
  interface name at most 15 (Linux IFNAMSIZ - 1), checked by :func:`check_fits`.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from testbed.nodeutil import ConfigError

if TYPE_CHECKING:  # addressing is imported by testbed.params (check_fits): no import at run time
    from testbed.params import TopoParams

EID_BLOCK = "10.0.0.0/8"
RLOC_BLOCK = "172.16.0.0/12"
AS_LINKS = "172.16.0.0/16"
"""The part of the RLOC block cut into the xTRs' links (the rest: mapping host, attackers, transit)."""
PER_SUBNET = 250
"""Client EIDs per /24 (.1 to .250)."""
MAX_PLAN_ASES = 4000
"""Client ASes the plan accepts (n = 4,001 slots of /20 fill 10.0.0.0/8 but for 95 /20s)."""
MAX_NAME, MAX_IFNAME = 9, 15

_EID_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
_LINK_BASE = int(ipaddress.IPv4Address("172.16.0.0"))


def _ip(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


def eid_slot_len(n: int) -> int:
    """Prefix length of an AS's EID slot for ``n`` ASes (source AS included): max(16, 8 + ceil(log2 n))."""
    return max(16, 8 + math.ceil(math.log2(max(n, 1))))


def link_len(n: int) -> int:
    """Prefix length of an AS's RLOC link for ``n`` ASes: max(24, 16 + ceil(log2 n)); ConfigError beyond /30."""
    length = max(24, 16 + math.ceil(math.log2(max(n, 1))))
    if length > 30:
        raise ConfigError(f"{n - 1} client ASes do not fit the RLOC links of {AS_LINKS} (at most 16,383)")
    return length


def needed_len(clients: int, per_client: bool) -> int:
    """The longest prefix that holds an AS with ``clients`` clients (LAN /24 + client /24s, per-as in the upper half)."""
    subnets = math.ceil(clients / PER_SUBNET)
    need = 1 + subnets if per_client else 2 * max(1, subnets)
    return 24 - max(0, math.ceil(math.log2(max(need, 1))))


def eid_blocks(counts: list[int], per_client: bool) -> list[tuple[int, int]]:
    """(first address as int, prefix length) of every AS's EID block: source AS first, then ``counts``' ASes.

    ConfigError (one line) when the blocks do not fit 10.0.0.0/8 (see the module docstring).
    """
    n = len(counts) + 1
    if len(counts) > MAX_PLAN_ASES:
        raise ConfigError(f"ases must be within 1..{MAX_PLAN_ASES}, got {len(counts)}")
    base = eid_slot_len(n)
    slot = 1 << (32 - base)
    out = [(_EID_BASE + i * slot, base) for i in range(n)]
    big = sorted(((needed_len(c, per_client), i + 1) for i, c in enumerate(counts)
                  if needed_len(c, per_client) < base), key=lambda t: (t[0], t[1]))
    top = _EID_BASE + (1 << 24)
    floor = _EID_BASE + n * slot
    for length, i in big:  # largest first: each block starts on a multiple of its size
        top -= 1 << (32 - length)
        if top < floor or length < 8:
            raise ConfigError(f"the clients of {len(counts)} ASes do not fit the EID block {EID_BLOCK} "
                              f"(AS {i} needs a /{length}; a slot is a /{base})")
        out[i] = (top, length)
    return out


def check_fits(params: "TopoParams") -> None:
    """ConfigError (one line) unless the plan of ``params`` fits its address blocks and name lengths."""
    eid_blocks(params.clients_per_as, params.client_hosts == "per-client")
    link_len(params.ases + 1)
    i = params.ases
    names = [f"x{i}", f"cc{i}", f"m{i}", f"t{params.transit}"]
    ifnames = [f"x{i}-eth1", f"x{i}-tun", f"t{params.transit}-x{i}", f"core-eth{i + 2}"]
    if params.client_hosts == "per-client":
        for a, c in enumerate(params.clients_per_as, start=1):
            if c:
                names.append(f"h{a}x{c}")
                ifnames.append(f"cc{a}-eth{c + 1}")
    for name in names:
        if len(name) > MAX_NAME:
            raise ConfigError(f"node name {name} is longer than {MAX_NAME} characters: "
                              f"too many clients for one host per client (use client_hosts=per-as)")
    for name in ifnames:
        if len(name) > MAX_IFNAME:
            raise ConfigError(f"interface name {name} is longer than {MAX_IFNAME} characters")


@dataclass
class AsPlan:
    """One AS of the plan."""

    number: int
    eid_prefix: str
    xtr: str
    xtr_lan_ip: str
    rloc: str
    core_ip: str
    switch: str
    capable: bool
    clients: list[tuple[str, str]] = field(default_factory=list)  # (host name, client EID)
    many_host: str | None = None  # name of the many-clients host, if any
    many_host_ip: str | None = None
    many_block: str | None = None
    upstream: str = "core"
    """The core router the xTR's core-facing link goes to (the root, or a transit router)."""
    link_prefix: str = ""
    """The RLOC subnet of the link between the xTR and its upstream router (e.g. 172.16.3.0/24)."""
    up_if: str = ""
    """The upstream router's interface on that link (``core-eth<n>`` or ``t<k>-x<i>``)."""

    @property
    def eid_len(self) -> int:
        """Prefix length of the AS's EID block (its LAN's netmask)."""
        return int(self.eid_prefix.rsplit("/", 1)[1])

    @property
    def link_len(self) -> int:
        """Prefix length of the xTR's RLOC link."""
        return int(self.link_prefix.rsplit("/", 1)[1])

    @property
    def lan_if(self) -> str:
        """The xTR's EID-side interface."""
        return f"{self.xtr}-eth0"

    @property
    def core_if(self) -> str:
        """The xTR's core-facing (RLOC) interface."""
        return f"{self.xtr}-eth1"


@dataclass
class AddressPlan:
    """Everything the topology, the daemons and the checks need to know about addresses."""

    params: TopoParams
    source_as: AsPlan
    client_ases: list[AsPlan]
    source_host: str = "src"
    source_eid: str = "10.0.0.10"
    service_addr: str = "10.0.255.254"
    core: str = "core"
    ms: str = "ms"
    ms_ip: str = "172.17.0.2"
    ms_core_ip: str = "172.17.0.1"
    ms_link: str = "172.17.0.0/24"
    eid_block: str = EID_BLOCK
    rloc_block: str = RLOC_BLOCK
    outsider: str | None = None
    """Name of the attacker host on the core (None: no attackers in this plan)."""
    outsider_ip: str = "172.17.1.2"
    outsider_core_ip: str = "172.17.1.1"
    rogue: str | None = None
    """Name of the attacker host on the LAN of client AS ``rogue_as`` (None: none)."""
    rogue_ip: str | None = None
    rogue_as: int | None = None

    transit: list["TransitPlan"] = field(default_factory=list)
    """Transit routers of a tree core (empty for a star)."""

    @property
    def all_ases(self) -> list[AsPlan]:
        """The source AS, then the client ASes."""
        return [self.source_as, *self.client_ases]

    def clients(self) -> list[tuple[int, str, str]]:
        """Every client as (AS number, host name, EID)."""
        return [(a.number, host, eid) for a in self.client_ases for host, eid in a.clients]

    def xtr_of(self, number: int) -> AsPlan:
        """AS ``number`` (0 = the source AS); KeyError if the plan has none."""
        ases = self.all_ases
        if 0 <= number < len(ases) and ases[number].number == number:
            return ases[number]
        raise KeyError(number)

    def to_dict(self) -> dict:
        """The plan as JSON-friendly data (written to the run directory)."""
        def as_row(a: AsPlan) -> dict:
            return {"as": a.number, "eid_prefix": a.eid_prefix, "xtr": a.xtr, "xtr_lan_ip": a.xtr_lan_ip,
                    "rloc": a.rloc, "core_ip": a.core_ip, "link_prefix": a.link_prefix, "up_if": a.up_if,
                    "switch": a.switch, "capable": a.capable,
                    "lan_if": a.lan_if, "core_if": a.core_if, "many_host": a.many_host,
                    "many_host_ip": a.many_host_ip, "many_block": a.many_block, "upstream": a.upstream,
                    "clients": [{"host": h, "eid": e} for h, e in a.clients]}
        out = {"params": self.params.as_dict(), "eid_block": self.eid_block, "rloc_block": self.rloc_block,
               "source": {"host": self.source_host, "eid": self.source_eid, "service_addr": self.service_addr},
               "core": self.core, "ms": {"host": self.ms, "rloc": self.ms_ip, "core_ip": self.ms_core_ip,
                                         "link": self.ms_link},
               "ases": [as_row(a) for a in self.all_ases]}
        if self.outsider or self.rogue:
            out["attackers"] = {"outsider": {"host": self.outsider, "ip": self.outsider_ip,
                                             "core_ip": self.outsider_core_ip},
                                "rogue": {"host": self.rogue, "ip": self.rogue_ip, "as": self.rogue_as}}
        if self.transit:
            out["transit"] = [{"name": t.name, "ip": t.ip, "root_ip": t.root_ip, "root_if": t.root_if}
                              for t in self.transit]
        return out


def _eids(first: int, n: int) -> list[str]:
    """``n`` client EIDs from the /24 at ``first``: .1 to .250 of each /24 in turn."""
    return [_ip(first + ((c // PER_SUBNET) << 8) + 1 + c % PER_SUBNET) for c in range(n)]


def make_plan(params: TopoParams, attackers: bool = False) -> AddressPlan:
    """Compute the addressing plan of the paper topology for ``params`` (the algorithm: module docstring).

    ``attackers`` adds the ``outsider`` host on the core and the ``rogue`` host in the
    last client AS (see the module docstring); without it the plan is unchanged.
    ConfigError (one line) if ``params`` do not fit (:func:`check_fits`).
    """
    check_fits(params)
    per_client = params.client_hosts == "per-client"
    blocks = eid_blocks(params.clients_per_as, per_client)
    llen = link_len(len(blocks))

    def as_plan(i: int, capable: bool) -> AsPlan:
        first, length = blocks[i]
        link = _LINK_BASE + (i << (32 - llen))
        return AsPlan(number=i, eid_prefix=f"{_ip(first)}/{length}", xtr=f"x{i}", xtr_lan_ip=_ip(first + 1),
                      rloc=_ip(link + 2), core_ip=_ip(link + 1), switch=f"cc{i}", capable=capable,
                      link_prefix=f"{_ip(link)}/{llen}", up_if=f"core-eth{i + 1}")

    source = as_plan(0, True)
    ases = []
    for i, (n, capable) in enumerate(zip(params.clients_per_as, params.capable), start=1):
        a = as_plan(i, capable)
        first, length = blocks[i]
        if per_client:
            a.clients = list(zip((f"h{i}x{c + 1}" for c in range(n)), _eids(first + 256, n)))
        else:
            half = first + (1 << (31 - length))
            a.many_host, a.many_host_ip = f"m{i}", _ip(first + 2)
            a.many_block = f"{_ip(half)}/{length + 1}"
            a.clients = [(a.many_host, e) for e in _eids(half, n)]
        ases.append(a)
    first0, len0 = blocks[0]
    plan = AddressPlan(params=params, source_as=source, client_ases=ases, source_eid=_ip(first0 + 10),
                       service_addr=_ip(first0 + (1 << (32 - len0)) - 2))
    if params.core == "tree":
        attach_transit(plan)
    if attackers:
        last = ases[-1].number
        plan.outsider, plan.rogue, plan.rogue_as = "outsider", "rogue", last
        plan.rogue_ip = _ip(blocks[last][0] + 66)
    return plan


@dataclass
class TransitPlan:
    """A transit router of a tree core: its link to the root router."""

    number: int
    name: str
    ip: str
    """Its address on the link to the root (172.18.k.2)."""
    root_ip: str
    """The root's address on that link (172.18.k.1)."""

    @property
    def root_if(self) -> str:
        """Its interface towards the root."""
        return f"{self.name}-core"

    @property
    def link_prefix(self) -> str:
        """The RLOC subnet of its link to the root (172.18.k.0/24)."""
        return f"{self.ip.rsplit('.', 1)[0]}.0/24"


def attach_transit(plan: AddressPlan) -> None:
    """Add ``params.transit`` transit routers and hang each client AS off one (round-robin or seeded random)."""
    import random
    p = plan.params
    plan.transit = [TransitPlan(k, f"t{k}", f"172.18.{k}.2", f"172.18.{k}.1") for k in range(1, p.transit + 1)]
    rng = random.Random(p.seed)
    for n, a in enumerate(plan.client_ases):
        k = n % p.transit if p.attach == "round-robin" else rng.randrange(p.transit)
        a.upstream = plan.transit[k].name
        a.up_if = f"{a.upstream}-{a.xtr}"
