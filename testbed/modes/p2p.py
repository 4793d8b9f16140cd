"""Mode ``p2p``: the mesh-pull P2P overlay (docs/p2p.md) as a delivery mode.

The network carries whatever the peers exchange; the source pushes each chunk to
``fanout`` peers and hosts the tracker. A P2P stream needs its own receivers (peer hosts,
one per AS) and its own checks, so it runs through :meth:`P2PMode.stream`
(:func:`testbed.p2p.run.stream_p2p`), which the experiments ``p2p``, ``p2p-upload`` and
``channel-change`` call. The measurement code's per-client stream
(:meth:`testbed.measure.Network.stream`) has no per-mode stream hook yet, so
:meth:`P2PMode.start` refuses to be run there with one line instead of streaming to
nobody.
"""

from __future__ import annotations

from typing import Any

from testbed.modes.base import Mode
from testbed.nodeutil import ConfigError
from testbed.p2p import model as p2p_model
from testbed.p2p.params import P2PParams


class P2PModel:
    """The P2P model (testbed.p2p.model): inter-domain bytes per chunk by policy; not a per-AS tree model."""

    name = "p2p"
    external_share = staticmethod(p2p_model.external_share)
    interdomain_bytes_per_chunk = staticmethod(p2p_model.interdomain_bytes_per_chunk)
    source_uplink_bytes_per_chunk = staticmethod(p2p_model.source_uplink_bytes_per_chunk)

    def source_as_packets(self, k: int) -> int:
        """Datagrams the source sends per chunk: ``fanout`` pushes (the default 4), at most one per peer."""
        return min(P2PParams().fanout, k)


class P2PMode(Mode):
    """Mesh-pull P2P live streaming: peers pull chunks from each other; the source pushes to a few."""

    name = "p2p"
    description = "mesh-pull P2P overlay: the source pushes to a few peers, peers pull from each other (baseline)"
    model = P2PModel()  # type: ignore[assignment]
    source_mode = "p2p"

    def start(self) -> None:
        """Refuse the per-client stream of testbed.measure (see the module docstring)."""
        if self.network is not None and not getattr(self, "_own_stream", False):
            raise ConfigError("mode p2p runs in the experiments p2p, p2p-upload and channel-change "
                              "(corecast run p2p --set ...), not in this experiment")

    def stream(self, spec: Any, params: P2PParams | None = None,
               churn: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """One P2P stream of ``spec`` on this mode's network; the measured row (testbed.p2p.run)."""
        from testbed.p2p.run import stream_p2p
        return stream_p2p(self.network, spec, params or P2PParams(), churn)

    def row(self) -> dict[str, Any]:
        """Rows are labelled by mode (the policy and upload columns come with the row)."""
        return {"mode": self.name}
