"""Schema of the P2P peer host's config (``python -m nodes.peer``) and of the source's ``p2p`` block; docs/p2p.md.

One process hosts many peers, each bound to its own EID (a host to which a block of EIDs
is routed as local, as for the many-clients host). Times: ``join_at``/``leave_at`` are
wall-clock seconds (``time.time()``); ``chunk_rate`` chunks/s; ``params`` are the overlay
knobs of :class:`testbed.p2p.params.P2PParams` (units and defaults there).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from testbed.schemas import IPv4, Name, NodeBase, OutPath, Port, Strict
from testbed.wire.p2p import P2P_PORT, TRACKER_PORT

AsNumber = int


class OverlayParams(Strict):
    """The knobs of :class:`testbed.p2p.params.P2PParams` (every one optional: its default applies)."""

    view_size: int = Field(20, ge=1, le=1024)
    partners: int = Field(4, ge=1, le=256)
    max_partners: int = Field(8, ge=1, le=1024)
    external: int = Field(1, ge=0, le=256)
    bm_period_s: float = Field(1.0, gt=0, le=600)
    sched_period_s: float = Field(0.25, gt=0, le=600)
    buffer_s: float = Field(10.0, ge=0, le=3600)
    window_s: float = Field(120.0, gt=0, le=86400)
    request_timeout_s: float = Field(2.0, gt=0, le=600)
    upload: float = Field(2.0, gt=0, le=1000)
    burst_chunks: int = Field(4, ge=1, le=10_000)
    fanout: int = Field(4, ge=1, le=1024)
    policy: Literal["random", "local"] = "random"

    @model_validator(mode="after")
    def _partners(self) -> "OverlayParams":
        if self.max_partners < self.partners:
            raise ValueError("max_partners must be >= partners")
        return self


class Tracker(Strict):
    """Where the tracker listens (inside the source) and its AS."""

    addr: IPv4
    port: Port = TRACKER_PORT
    asn: int = Field(0, ge=0, le=0xFFFF)


class PeerEntry(Strict):
    """One hosted peer: its EID (bound), port, and optional join and leave times (wall clock, s)."""

    eid: IPv4
    port: Port = P2P_PORT
    join_at: float | None = Field(None, ge=0)
    leave_at: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _times(self) -> "PeerEntry":
        if self.join_at is not None and self.leave_at is not None and self.leave_at <= self.join_at:
            raise ValueError("leave_at must be after join_at")
        return self


class PeerSchema(NodeBase):
    """Every key of the peer host config."""

    name: Name
    asn: int = Field(ge=0, le=0xFFFF)
    tracker: Tracker
    stream_id: int = Field(1, ge=0, le=0xFFFFFFFF)
    chunk_rate: float = Field(gt=0, le=1_000_000)
    chunk_bytes: int = Field(1316, ge=1, le=65_000)
    peers: list[PeerEntry] = Field(min_length=1, max_length=10_000)
    params: OverlayParams = OverlayParams()
    seed: int = Field(1, ge=0, le=2**63 - 1)
    result_file: OutPath | None = None
    stop_at: float | None = Field(None, ge=0)
    """Wall clock (s) after which the peers send nothing more (they still read and discard), so that
    link counters read before SIGTERM see exactly what the peers' own counters say."""
    rcvbuf: int = Field(1 << 20, ge=4096, le=1 << 30)

    @model_validator(mode="after")
    def _unique(self) -> "PeerSchema":
        addrs = [(p.eid, p.port) for p in self.peers]
        if len(set(addrs)) != len(addrs):
            raise ValueError("peers lists an EID and port twice")
        return self


class SourceP2P(Strict):
    """The source's ``p2p`` block: its AS, the tracker's port and the overlay knobs it uses (fanout, policy)."""

    asn: int = Field(0, ge=0, le=0xFFFF)
    tracker_port: Port = TRACKER_PORT
    params: OverlayParams = OverlayParams()
    seed: int = Field(1, ge=0, le=2**63 - 1)
    linger_until: float | None = Field(None, ge=0)
    """Unix time until which the source keeps its sockets open after its last chunk (the peers still send it
    buffer maps until they stop; a closed port would answer each with an ICMP port unreachable that crosses
    the inter-domain links but no sender counts). None: exit after the last chunk."""
