"""Mode ``ipmc``: native IP multicast (PIM-SSM, RFC 4607 / RFC 7761), the floor (docs/model.md).

No LISP data plane for the stream: the source sends each chunk once, as plain UDP to
the SSM group :data:`testbed.net.pim.GROUP` (source mode ``ipmc``: the same datagram as
lispmc's, TTL 64); FRR's pimd on every router (:mod:`testbed.net.pim`) builds
the (S, G) tree from the clients' IGMPv3 joins (``IP_ADD_SOURCE_MEMBERSHIP``, client
config ``ssm``), so one ``28 + P`` copy crosses each link of the distribution tree.
:meth:`IpmcMode.start` routes the source EID natively and starts pimd; before each
stream :meth:`IpmcMode.source_config` waits until FRR says every router of the tree
has joined (S, G), so no chunk is sent before the tree exists. The links' counters
count the stream as data through :attr:`IpmcMode.link_data` (counters, captures and capture counts alike).
"""

from __future__ import annotations

from typing import Any

from testbed.datamatch import DataMatch
from testbed.modemodels import MODELS
from testbed.modes.base import Mode
from testbed.net.pim import GROUP, PORT, start_pim, wait_joined


class IpmcMode(Mode):
    """PIM-SSM: one native copy per link of the distribution tree."""

    name = "ipmc"
    description = "native IP multicast (PIM-SSM by FRR's pimd): one copy per link of the tree (the floor)"
    model = MODELS["ipmc"]
    source_mode = "ipmc"
    """One datagram per chunk to the group (as lispmc's source sends; here no ITR replicates it)."""
    link_data = DataMatch(GROUP, PORT)
    """This mode's data on the links (counted by their nft counters, captures and capture counts)."""

    def __init__(self, network: Any = None) -> None:
        super().__init__(network)
        self.sockdirs: dict[str, str] = {}
        """Each router's FRR socket directory (``vtysh --vty_socket DIR``), once started."""
        self.members: set[int] | None = None
        """Client AS numbers whose receivers join before the stream (None: every AS with clients); the others
        join during it (the compare experiment's timed joins), so the tree is not waited for there."""

    def _rundir(self) -> str:
        net = self.network
        return getattr(net, "rundir", None) or net.ctx.run.path

    def start(self) -> None:
        """Route the source EID natively, start pimd on every router (PIM neighbors up), count the group as data."""
        if self.network is None:
            return
        net = self.network
        self.claim_link_data()
        self.sockdirs = start_pim(net.tb, net.plan, self._rundir())

    def source_config(self) -> dict[str, Any]:
        """Send to the group; called once the clients have joined, it first waits for FRR's (S, G) tree."""
        if self.network is not None and self.sockdirs:
            wait_joined(self.network.plan, self.sockdirs, members=self.members)
        return {"mode": self.source_mode, "service": {"addr": GROUP, "port": PORT}}

    def client_config(self) -> dict[str, Any]:
        """Every client host joins (S, G) (its kernel sends IGMPv3 reports)."""
        source = self.network.plan.source_eid if self.network is not None else "0.0.0.0"
        return {"ssm": {"source": source, "group": GROUP}}
