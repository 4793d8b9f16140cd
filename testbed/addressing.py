"""The addressing plan: disjoint EID and RLOC spaces, node names, interfaces.

* EID block 10.0.0.0/8: AS ``i`` (0 = source AS, 1..j = client ASes) owns
  10.i.0.0/16. Its border router (xTR) is 10.i.0.1 on the AS LAN; host-per-client
  clients are 10.i.1.1, 10.i.1.2, ... (250 per /24); a many-clients host sits at
  10.i.0.2 and holds the client EIDs 10.i.128.1, ... (10.i.128.0/17 routed to it).
  The source ``src`` is 10.0.0.10; the ITR's CoreCast service address is 10.0.255.254.
* RLOC block 172.16.0.0/12: the link of AS i's xTR to the core router is
  172.16.i.0/24 (core .1, xTR .2); the mapping host's link is 172.17.0.0/24
  (core .1, map-server .2). The core routes RLOC space only.
* Attackers (only with ``make_plan(..., attackers=True)``, for ``corecast run attack``):
  an ``outsider`` host on the core at 172.17.1.2 (core .1), a host of the Internet
  that can reach every RLOC; and a ``rogue`` host on the LAN of the last client AS
  at 10.j.0.66 (not a client of the stream).
* Tree core (``core=tree``, ``transit=N``): the core router becomes the root of a
  two-level hierarchy; transit router ``t<k>`` (k = 1..N) joins it on 172.18.k.0/24
  (root .1, transit .2; interfaces ``core-t<k>`` and ``t<k>-core``). The source AS
  and the mapping host stay on the root; client AS i hangs off its transit router
  (round-robin, or seeded random with ``attach=random``) on 172.16.i.0/24 (transit
  .1, interface ``t<k>-x<i>``). FRR's OSPF routes the RLOC block between them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from testbed.params import TopoParams

EID_BLOCK = "10.0.0.0/8"
RLOC_BLOCK = "172.16.0.0/12"
CLIENT_BLOCK_OFFSET = 128  # third octet where many-clients EIDs start
PER_SUBNET = 250


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

    def to_dict(self) -> dict:
        """The plan as JSON-friendly data (written to the run directory)."""
        def as_row(a: AsPlan) -> dict:
            return {"as": a.number, "eid_prefix": a.eid_prefix, "xtr": a.xtr, "xtr_lan_ip": a.xtr_lan_ip,
                    "rloc": a.rloc, "core_ip": a.core_ip, "switch": a.switch, "capable": a.capable,
                    "lan_if": a.lan_if, "core_if": a.core_if, "many_host": a.many_host,
                    "many_host_ip": a.many_host_ip, "many_block": a.many_block, "upstream": a.upstream,
                    "clients": [{"host": h, "eid": e} for h, e in a.clients]}
        out = {"params": self.params.as_dict(), "eid_block": self.eid_block, "rloc_block": self.rloc_block,
               "source": {"host": self.source_host, "eid": self.source_eid, "service_addr": self.service_addr},
               "core": self.core, "ms": {"host": self.ms, "rloc": self.ms_ip, "core_ip": self.ms_core_ip},
               "ases": [as_row(a) for a in self.all_ases]}
        if self.outsider or self.rogue:
            out["attackers"] = {"outsider": {"host": self.outsider, "ip": self.outsider_ip,
                                             "core_ip": self.outsider_core_ip},
                                "rogue": {"host": self.rogue, "ip": self.rogue_ip, "as": self.rogue_as}}
        if self.transit:
            out["transit"] = [{"name": t.name, "ip": t.ip, "root_ip": t.root_ip, "root_if": t.root_if}
                              for t in self.transit]
        return out


def _nth(base: str, third: int, n: int) -> str:
    """The n-th (0-based) address of a run of /24s starting at base's third octet ``third``."""
    net = ipaddress.IPv4Address(base)
    o = net.packed
    return str(ipaddress.IPv4Address(bytes([o[0], o[1], third + n // PER_SUBNET, 1 + n % PER_SUBNET])))


def make_plan(params: TopoParams, attackers: bool = False) -> AddressPlan:
    """Compute the addressing plan of the paper topology for ``params``.

    ``attackers`` adds the ``outsider`` host on the core and the ``rogue`` host in the
    last client AS (see the module docstring); without it the plan is unchanged.
    """
    def as_plan(i: int, capable: bool) -> AsPlan:
        return AsPlan(number=i, eid_prefix=f"10.{i}.0.0/16", xtr=f"x{i}", xtr_lan_ip=f"10.{i}.0.1",
                      rloc=f"172.16.{i}.2", core_ip=f"172.16.{i}.1", switch=f"cc{i}", capable=capable)

    source = as_plan(0, True)
    ases = []
    for i, (n, capable) in enumerate(zip(params.clients_per_as, params.capable), start=1):
        a = as_plan(i, capable)
        if params.client_hosts == "per-client":
            a.clients = [(f"h{i}x{c + 1}", _nth(f"10.{i}.0.0", 1, c)) for c in range(n)]
        else:
            a.many_host, a.many_host_ip = f"m{i}", f"10.{i}.0.2"
            a.many_block = f"10.{i}.{CLIENT_BLOCK_OFFSET}.0/17"
            a.clients = [(a.many_host, _nth(f"10.{i}.0.0", CLIENT_BLOCK_OFFSET, c)) for c in range(n)]
        ases.append(a)
    plan = AddressPlan(params=params, source_as=source, client_ases=ases)
    if params.core == "tree":
        attach_transit(plan)
    if attackers:
        last = ases[-1].number
        plan.outsider, plan.rogue, plan.rogue_ip, plan.rogue_as = "outsider", "rogue", f"10.{last}.0.66", last
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


def attach_transit(plan: AddressPlan) -> None:
    """Add ``params.transit`` transit routers and hang each client AS off one (round-robin or seeded random)."""
    import random
    p = plan.params
    plan.transit = [TransitPlan(k, f"t{k}", f"172.18.{k}.2", f"172.18.{k}.1") for k in range(1, p.transit + 1)]
    rng = random.Random(p.seed)
    for n, a in enumerate(plan.client_ases):
        k = n % p.transit if p.attach == "round-robin" else rng.randrange(p.transit)
        a.upstream = plan.transit[k].name
