"""An in-process swarm on a fake clock and a fake network, for tests, the model and benches (no sockets).

```python
result = simulate(peers=30, ases=3, chunks=60, chunk_rate=10.0, params=P2PParams(upload=2.0, buffer_s=1.0))
result.summary["continuity"], result.peers[0].played, result.source_digests
```
The network delivers every datagram after ``delay_s`` (``inter_delay_s`` between ASes),
with no loss and no bandwidth limit: only the peers' token buckets limit upload. AS 0
holds the source and the tracker; peers are spread round-robin over ASes 1..``ases``.
Events run in time order (a heap); everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from dataclasses import dataclass, field

from testbed.p2p.metrics import swarm_summary
from testbed.p2p.params import P2PParams
from testbed.p2p.peer import PeerCore
from testbed.p2p.tracker import SourcePush, TrackerCore
from testbed.wire.corecast import chunk_hash

SOURCE: tuple[str, int] = ("10.0.0.10", 4350)
TRACKER: tuple[str, int] = ("10.0.0.10", 4351)


@dataclass
class SimResult:
    """The peers, the source's chunk digests by seq, and the swarm summary."""

    peers: list[PeerCore]
    source_digests: dict[int, bytes]
    summary: dict
    source_bytes: int = 0
    stats: list[dict] = field(default_factory=list)


def peer_addr(i: int, ases: int) -> tuple[tuple[str, int], int]:
    """Address and AS of peer ``i`` (round-robin over ASes 1..ases)."""
    asn = 1 + i % ases
    return (f"10.{asn}.{i // 250}.{10 + i % 250}", 4350), asn


def simulate(*, peers: int, ases: int, chunks: int, chunk_rate: float = 10.0, chunk_bytes: int = 1316,
             params: P2PParams | None = None, delay_s: float = 0.002, inter_delay_s: float = 0.010,
             join_at: list[float] | None = None, leave_at: dict[int, float] | None = None,
             stream_start: float = 1.0, drain_s: float | None = None, seed: int = 1) -> SimResult:
    """Run one swarm until every due chunk has passed its deadline; see the module docstring."""
    p = params or P2PParams()
    tracker = TrackerCore(asn=0, view_size=p.view_size, seed=seed)
    push = SourcePush(tracker, fanout=p.fanout, policy=p.policy, seed=seed)
    cores: dict[tuple[str, int], PeerCore] = {}
    order: list[PeerCore] = []
    for i in range(peers):
        addr, asn = peer_addr(i, ases)
        core = PeerCore(addr, asn=asn, tracker=TRACKER, tracker_asn=0, chunk_rate=chunk_rate,
                        chunk_bytes=chunk_bytes, params=p, seed=seed * 100_003 + i)
        cores[addr] = core
        order.append(core)
    asn_of = {a: c.asn for a, c in cores.items()}
    asn_of[TRACKER] = asn_of[SOURCE] = 0
    heap: list = []
    counter = itertools.count()
    wake: dict[int, float] = {}

    def push_event(t: float, kind: str, *args) -> None:
        heapq.heappush(heap, (t, next(counter), kind, args))

    def send(now: float, src: tuple[str, int], out: list) -> None:
        for payload, dst in out:
            d = delay_s if asn_of.get(src) == asn_of.get(dst) else inter_delay_s
            push_event(now + d, "deliver", payload, src, dst)

    def rearm(i: int, core: PeerCore) -> None:
        t = core.next_wakeup()
        if t < wake.get(i, float("inf")) or wake.get(i) is None or wake[i] < 0:
            wake[i] = t
            if t != float("inf"):
                push_event(t, "tick", i)

    joins = join_at or [0.0] * peers
    for i, t in enumerate(joins):
        push_event(t, "join", i)
    for i, t in (leave_at or {}).items():
        push_event(t, "leave", i)
    digests: dict[int, bytes] = {}
    for s in range(chunks):
        push_event(stream_start + s / chunk_rate, "chunk", s)
    end = stream_start + chunks / chunk_rate + (drain_s if drain_s is not None else p.buffer_s + 10 * p.bm_period_s)
    source_bytes = 0
    while heap:
        now, _, kind, args = heapq.heappop(heap)
        if now > end:
            break
        if kind == "deliver":
            payload, src, dst = args
            if dst == TRACKER:
                send(now, TRACKER, tracker.receive(payload, src))
                continue
            core = cores.get(dst)
            if core is None:
                continue
            send(now, dst, core.receive(now, payload, src))
            i = order.index(core) if len(order) < 64 else _index(order, core)
            rearm(i, core)
        elif kind == "tick":
            (i,) = args
            if wake.get(i) != now:
                continue
            wake[i] = -1.0
            core = order[i]
            send(now, core.me, core.tick(now))
            rearm(i, core)
        elif kind == "chunk":
            (s,) = args
            chunk = hashlib.sha256(f"chunk {s}".encode()).digest() * (chunk_bytes // 32 + 1)
            chunk = chunk[:chunk_bytes]
            digests[s] = chunk_hash(chunk)
            out = push.datagrams(s, chunk, int(now * 1e6))
            source_bytes += sum(len(m) for m, _ in out)
            send(now, SOURCE, out)
        elif kind in ("join", "leave"):
            (i,) = args
            core = order[i]
            send(now, core.me, core.start(now) if kind == "join" else core.leave(now))
            wake[i] = -1.0
            rearm(i, core)
    stats = [c.stats() for c in order]
    return SimResult(order, digests, swarm_summary(stats), source_bytes, stats)


def _index(order: list[PeerCore], core: PeerCore) -> int:
    return core._sim_index if hasattr(core, "_sim_index") else order.index(core)
