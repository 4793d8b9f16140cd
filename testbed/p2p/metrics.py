"""Counters and metrics of one peer, and their sum over a swarm (docs/p2p.md, "Metrics").

Bytes are UDP payload bytes of the overlay's messages; ``xas_*`` count what a peer sent to
an address in another AS (the tracker included), so the inter-domain bytes a capture sees
for them are ``xas_bytes + xas_packets * (28 + 36)`` on each inter-domain link crossed
(IPv4+UDP headers, then LISP encapsulation). Times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any


@dataclass
class PeerCounters:
    """What one peer did; ``drops`` counts bad or unwanted input by reason."""

    join_time: float | None = None
    play_start: float | None = None
    leave_time: float | None = None
    packets_sent: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    chunk_bytes_sent: int = 0
    control_bytes: int = 0
    xas_packets: int = 0
    xas_bytes: int = 0
    xas_chunks: int = 0
    """CHUNK messages among ``xas_packets`` (the rest is control: buffer maps, requests, JOIN/LEAVE)."""
    xas_chunk_bytes: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    chunks_received: int = 0
    duplicates: int = 0
    late: int = 0
    played: int = 0
    missed: int = 0
    requests: int = 0
    timeouts: int = 0
    partners_lost: int = 0
    skipped: int = 0
    """Chunks at the start position that nobody held when buffering (see PeerCore._skip_lost_start)."""
    drops: dict[str, int] = field(default_factory=dict)
    xas_by_as: dict[int, list[int]] = field(default_factory=dict)
    """Destination AS -> [bytes, datagrams] of what was sent across ASes (its sum is ``xas_*``)."""

    def sent(self, nbytes: int, chunk: bool, cross_as: bool, dst_asn: int | None = None) -> None:
        """Count one datagram sent (``chunk``: a CHUNK message, else control) to AS ``dst_asn``."""
        self.packets_sent += 1
        self.bytes_sent += nbytes
        if chunk:
            self.chunks_sent += 1
            self.chunk_bytes_sent += nbytes
        else:
            self.control_bytes += nbytes
        if cross_as:
            self.xas_packets += 1
            self.xas_bytes += nbytes
            if chunk:
                self.xas_chunks += 1
                self.xas_chunk_bytes += nbytes
            row = self.xas_by_as.setdefault(-1 if dst_asn is None else dst_asn, [0, 0])
            row[0] += nbytes
            row[1] += 1

    def received(self, nbytes: int) -> None:
        """Count one datagram received."""
        self.packets_received += 1
        self.bytes_received += nbytes

    def drop(self, reason: str) -> None:
        """Count one datagram dropped for ``reason``."""
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def as_dict(self, lags: list[float], queue: Any = None) -> dict[str, Any]:
        """Plain JSON-able metrics: the counters plus startup delay, continuity index and mean lag."""
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
        d["xas_by_as"] = {str(k): list(v) for k, v in self.xas_by_as.items()}
        due = self.played + self.missed
        d["continuity"] = self.played / due if due else 0.0
        d["startup_delay_s"] = (self.play_start - self.join_time
                                if self.play_start is not None and self.join_time is not None else None)
        d["lag_s"] = mean(lags) if lags else None
        if queue is not None:
            d["upload_overflow"] = queue.overflow
            d["upload_expired"] = queue.expired
        return d


def swarm_summary(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums and means over peers' :meth:`PeerCounters.as_dict` outputs (continuity over all due chunks)."""
    keys = ("packets_sent", "bytes_sent", "chunks_sent", "chunk_bytes_sent", "control_bytes", "xas_packets",
            "xas_bytes", "xas_chunks", "xas_chunk_bytes", "duplicates", "late", "played", "missed", "requests", "timeouts")
    out: dict[str, Any] = {k: sum(s.get(k, 0) for s in stats) for k in keys}
    due = out["played"] + out["missed"]
    out["peers"] = len(stats)
    out["continuity"] = out["played"] / due if due else 0.0
    out["min_continuity"] = min((s["continuity"] for s in stats), default=0.0)
    delays = [s["startup_delay_s"] for s in stats if s["startup_delay_s"] is not None]
    lags = [s["lag_s"] for s in stats if s["lag_s"] is not None]
    out["started"] = len(delays)
    out["startup_delay_s"] = mean(delays) if delays else None
    out["lag_s"] = mean(lags) if lags else None
    return out
