"""Mode ``lispmc``: signal-free LISP multicast (RFC 8378; docs/lispmc.md).

The source sends each chunk once, as UDP to the SSM group :data:`GROUP` (port: the
clients' port); its ITR catches it on the LAN and replicates it, LISP-encapsulated,
to every ETR of the (S,G) replication list it resolves through the mapping system;
each ETR with receivers puts one copy on its LAN as IP multicast. The clients join
(S,G) (IP_ADD_SOURCE_MEMBERSHIP: their kernels send the IGMPv3 reports the ETRs
register from). The xTRs run the multicast cores all the time (``lispmc`` in the
xTR config, idle without SSM traffic), so the mode starts nothing.
"""

from __future__ import annotations

from typing import Any

from testbed.modemodels import MODELS
from testbed.modes.base import Mode

GROUP = "232.1.1.1"
"""The SSM group (RFC 4607 range 232/8) every lispmc stream is sent to."""
PORT = 6000
"""The group's UDP port: the clients' port (testbed.measure.CLIENT_PORT)."""


class LispMcMode(Mode):
    """RFC 8378: one LISP-encapsulated copy per ETR with receivers, replicated by the source's ITR."""

    name = "lispmc"
    description = "one LISP-encapsulated multicast copy per ETR with receivers (RFC 8378, signal-free)"
    model = MODELS["lispmc"]
    source_mode = "lispmc"

    def source_config(self) -> dict[str, Any]:
        """Mode lispmc, sending to the group (the source config's ``service``)."""
        return {"mode": self.source_mode, "service": {"addr": GROUP, "port": PORT}}

    def client_config(self) -> dict[str, Any]:
        """Every client host joins (S, G)."""
        source = self.network.plan.source_eid if self.network is not None else "0.0.0.0"
        return {"ssm": {"source": source, "group": GROUP}}
