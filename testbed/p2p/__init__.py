"""The mesh-pull P2P live-streaming overlay (baseline mode ``p2p``) as sans-I/O cores; see docs/p2p.md.

* :mod:`testbed.p2p.params`: every knob and its default from the literature.
* :mod:`testbed.p2p.peer`: :class:`PeerCore`, one peer (buffer maps, scheduler, playback, upload limit).
* :mod:`testbed.p2p.tracker`: :class:`TrackerCore` (random partial views) and :class:`SourcePush`.
* :mod:`testbed.p2p.bucket`: the upload token bucket and queue; :mod:`testbed.p2p.metrics`: the metrics.
* :mod:`testbed.p2p.sim`: a whole swarm on a fake clock and network (tests, model, benches).
Wire format: :mod:`testbed.wire.p2p`; scapy layers: :mod:`testbed.layers.p2p`.
"""

from testbed.p2p.params import POLICIES, P2PParams
from testbed.p2p.peer import PeerCore
from testbed.p2p.tracker import SourcePush, TrackerCore

__all__ = ["POLICIES", "P2PParams", "PeerCore", "SourcePush", "TrackerCore"]
