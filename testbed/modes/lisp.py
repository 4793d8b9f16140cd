"""The LISP delivery modes: ``unicast`` (the baseline), ``corecast`` (the paper), and issue 15's
``corecast-batch`` (REF-LISTs made by the ITR) and ``corecast-src`` (REF-LISTs made by the source)."""

from __future__ import annotations

from typing import Any

from testbed.modemodels import MODELS
from testbed.modes.base import Mode
from testbed.nodeutil import ConfigError


class UnicastMode(Mode):
    """One LISP-encapsulated copy of each chunk per client, from the source's ITR."""

    name = "unicast"
    description = "one LISP-encapsulated copy per client (the baseline)"
    model = MODELS["unicast"]
    source_mode = "unicast"


class CoreCastMode(Mode):
    """CoreCast: one DATA per capable ETR with clients and one REF per client; unicast to non-capable ASes."""

    name = "corecast"
    description = "one DATA per capable ETR + one REF per client (the paper)"
    model = MODELS["corecast"]
    source_mode = "corecast"


class CoreCastBatchMode(Mode):
    """CoreCast with the ITR batching one chunk's REFs into one REF-LIST per ETR (REFs with flag B)."""

    name = "corecast-batch"
    description = "corecast, the ITR sends one REF-LIST per ETR instead of a REF per client"
    model = MODELS["corecast-batch"]
    source_mode = "corecast-batch"


class CoreCastSrcMode(Mode):
    """CoreCast with the source reading the mapping system: one DATA and one REF-LIST per ETR, named by S.

    The source's Map-Requests travel natively to the Map-Resolver and the replies back
    to its EID: :meth:`start` routes the source EID (a /32) from the core router to the
    source AS's border router, what "S has read access to the mapping system" needs in
    this addressing plan (star core only). Control traffic (UDP 4342) is counted apart
    from LISP data on every link, as the xTRs' is.
    """

    name = "corecast-src"
    description = "the source resolves its clients and sends one DATA + one REF-LIST per ETR"
    model = MODELS["corecast-src"]
    source_mode = "corecast-src"

    def source_config(self) -> dict[str, Any]:
        """The mode and the Map-Resolver the source asks."""
        out: dict[str, Any] = {"mode": self.source_mode}
        if self.network is not None:
            out["map_resolver"] = self.network.plan.ms_ip
        return out

    def start(self) -> None:
        """Route the source EID from the core router to the source AS's border router (star core)."""
        if self.network is None:
            return
        plan = self.network.plan
        if plan.transit:
            raise ConfigError("mode corecast-src needs core=star (the source's route to the Map-Resolver)")
        node = self.network.tb.node(plan.core)
        node.cmd(f"ip route replace {plan.source_eid}/32 via {plan.source_as.rloc}")
