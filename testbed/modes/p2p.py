"""Mode ``p2p``: the mesh-pull P2P overlay (docs/p2p.md) as a delivery mode.

The network carries whatever the peers exchange; the source pushes each chunk to
``fanout`` peers and hosts the tracker. A P2P stream needs its own receivers (peer
daemons: one per client host, serving every EID of the host) and its own checks, so the
mode runs its own stream (:meth:`P2PMode.run_stream`, the hook
:meth:`testbed.measure.Network.stream` calls first): every experiment accepts
``--set modes=p2p`` like any other mode. The experiments ``p2p``, ``p2p-upload`` and
``channel-change`` call :meth:`P2PMode.stream` with their own overlay parameters and churn.

Pace in the other experiments: they stream at up to 10 Mb/s (about 950 chunks/s), far
beyond what a host of Python peers pulls; the overlay runs at most :data:`GENERIC_RATE`
chunks per second (the same number of chunks, the same content) with the timers of
:data:`GENERIC_PARAMS` (those of the ``p2p`` experiment), unless the spec's
``extra["p2p"]`` gives a :class:`~testbed.p2p.params.P2PParams` (or a dict of its knobs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from testbed.modes.base import Mode
from testbed.nodeutil import ConfigError
from testbed.p2p import model as p2p_model
from testbed.p2p.params import P2PParams

GENERIC_RATE = 10.0
"""Chunks per second at most for a P2P stream in an experiment that is not a P2P one."""
GENERIC_PARAMS = P2PParams(buffer_s=2.0, bm_period_s=0.2, sched_period_s=0.1, request_timeout_s=1.0)
"""The overlay's parameters there: DONet's design with its timers scaled to a stream of about 10 chunks/s."""


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
    layer = "application"
    """Not a network-layer mode: ``compare`` leaves it out unless asked (``--set modes=...,p2p``)."""

    def run_stream(self, spec: Any, during: Any = None) -> dict[str, Any]:
        """The hook of :meth:`testbed.measure.Network.stream`: one P2P stream, paced and tuned as the docstring says.

        ConfigError (one line) for a stream that needs the source's control socket (``during``: joins
        through the source); P2P joins are measured by ``channel-change``.
        """
        if during is not None:
            raise ConfigError("mode p2p has no joins through the source; its join delay is measured by "
                              "corecast run channel-change")
        rate = spec.bitrate * spec.speed / (8 * spec.chunk_bytes)
        if rate > GENERIC_RATE:
            spec = dataclasses.replace(spec, mode=self.name, speed=GENERIC_RATE * 8 * spec.chunk_bytes / spec.bitrate)
        given = spec.extra.get("p2p")
        if isinstance(given, dict):
            params = dataclasses.replace(GENERIC_PARAMS, **given)
        else:
            params = given if isinstance(given, P2PParams) else GENERIC_PARAMS
        return self.stream(spec, params)

    def stream(self, spec: Any, params: P2PParams | None = None,
               churn: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """One P2P stream of ``spec`` on this mode's network; the measured row (testbed.p2p.run)."""
        from testbed.p2p.run import stream_p2p
        return stream_p2p(self.network, spec, params or P2PParams(), churn)

    def row(self) -> dict[str, Any]:
        """Rows are labelled by mode (the policy and upload columns come with the row)."""
        return {"mode": self.name}
