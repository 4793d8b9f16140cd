"""Parameters of the P2P overlay and their defaults, with where each default comes from (docs/p2p.md).

Units: seconds for ``*_s``, chunks for counts of chunks, multiples of the stream rate for
``upload``. The literature's "segment" is one second of video (CoolStreaming/DONet); our
chunk is one datagram of the stream (1,316 bytes by default), so durations are given in
seconds and turned into chunks with the stream's chunk rate.

References:
[DONet] X. Zhang, J. Liu, B. Li, T.-S. P. Yum, "CoolStreaming/DONet: A Data-Driven Overlay
  Network for Peer-to-Peer Live Media Streaming", IEEE INFOCOM 2005.
[Hei] X. Hei, C. Liang, J. Liang, Y. Liu, K. W. Ross, "A Measurement Study of a Large-Scale
  P2P IPTV System", IEEE Transactions on Multimedia 9(8), 2007 (PPLive).
[Bindal] R. Bindal, P. Cao, W. Chan, J. Medved, G. Suwala, T. Bates, A. Zhang, "Improving
  Traffic Locality in BitTorrent via Biased Neighbor Selection", IEEE ICDCS 2006.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

POLICIES = ("random", "local")


@dataclass(frozen=True)
class P2PParams:
    """Every knob of the overlay (peers, tracker and the source's push), with documented defaults."""

    view_size: int = 20
    """Peers the tracker returns to a join (a random partial view; DONet's mCache holds a partial view)."""
    partners: int = 4
    """Partners a peer picks from its view: DONet's M = 4, its measured best trade-off of overhead and continuity."""
    max_partners: int = 8
    """Partners a peer accepts in all (those it chose plus those that chose it): 2 M."""
    external: int = 1
    """Under ``local``, partners kept outside the peer's AS ([Bindal]: a few external neighbours keep the
    swarm connected while the rest are local)."""
    bm_period_s: float = 1.0
    """Buffer-map exchange period: DONet exchanges buffer maps and schedules once per second (tau = 1 s)."""
    sched_period_s: float = 0.25
    """How often a peer runs its chunk scheduler (ours: a quarter of the buffer-map period, so fresh buffer
    maps turn into requests quickly)."""
    buffer_s: float = 10.0
    """Playback buffer B: playback starts once B seconds of contiguous chunks are held ([Hei]: PPLive
    buffers 10-20 s before playing; DONet measured about 10 s start-up)."""
    window_s: float = 120.0
    """Chunks kept (and advertised) behind the newest: DONet's buffer map covers 120 segments of 1 s."""
    request_timeout_s: float = 2.0
    """A request not answered within this is asked again, from another partner if any (ours: two
    buffer-map periods)."""
    upload: float = 2.0
    """Each peer's upload capacity as a multiple of the stream rate (token bucket); 2x is the issue's
    comfortable case, [Hei] measured most PPLive peers above 1x."""
    burst_chunks: int = 4
    """Depth of the upload token bucket, in chunk messages."""
    fanout: int = 4
    """Peers the source pushes each chunk to (DONet's origin node has M = 4 partners)."""
    policy: str = "random"
    """Partner and supplier selection: ``random`` or ``local`` (prefer partners and suppliers in the same AS)."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "policy" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{f.name} must be a number, not {value!r}")
        for name in ("view_size", "partners", "max_partners", "burst_chunks", "fanout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.external < 0 or self.max_partners < self.partners:
            raise ValueError("need external >= 0 and max_partners >= partners")
        for name in ("bm_period_s", "sched_period_s", "request_timeout_s", "upload", "window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.buffer_s < 0:
            raise ValueError("buffer_s must be >= 0")
