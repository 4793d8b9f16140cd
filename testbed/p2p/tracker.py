"""The tracker and the source's push, as sans-I/O cores (docs/p2p.md).

:class:`TrackerCore` keeps the swarm's members (address and AS) and answers each JOIN with
a PEERS message: a uniformly random partial view of at most ``view_size`` other members
and the newest chunk the source has sent (so a peer joining mid-stream knows where to
start). LEAVE removes a member. :class:`SourcePush` decides which members receive each new
chunk from the source: ``fanout`` of them, uniformly at random (``random``) or spread over
as many ASes as possible, one peer per AS in turn (``local``). Bad input is a counted drop.
"""

from __future__ import annotations

import random

from testbed.wire import p2p as w
from testbed.wire.errors import DecodeError

Addr = tuple[str, int]


class TrackerCore:
    """Swarm membership; ``receive`` returns the replies [(payload, dst)]."""

    def __init__(self, *, asn: int, stream_id: int = 1, view_size: int = 20, seed: int = 0,
                 max_members: int = 1_000_000) -> None:
        self.asn, self.stream_id, self.view_size = asn, stream_id, view_size
        self.rng = random.Random(seed)
        self.members: list[Addr] = []
        self.index: dict[Addr, int] = {}
        self.asn_of: dict[Addr, int] = {}
        self.max_members = max_members
        self.newest = w.NO_SEQ
        self.joins = self.leaves = self.bytes_sent = self.packets_sent = 0
        self.drops: dict[str, int] = {}

    def _drop(self, reason: str) -> list:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        return []

    def add(self, addr: Addr, asn: int) -> None:
        """Add (or refresh) a member."""
        if addr not in self.index:
            self.index[addr] = len(self.members)
            self.members.append(addr)
        self.asn_of[addr] = asn

    def remove(self, addr: Addr) -> None:
        """Remove a member (O(1): the last member takes its slot)."""
        i = self.index.pop(addr, None)
        if i is None:
            return
        last = self.members.pop()
        if last != addr:
            self.members[i] = last
            self.index[last] = i
        self.asn_of.pop(addr, None)

    def receive(self, data: bytes, src: Addr) -> list[tuple[bytes, Addr]]:
        """Handle a datagram from ``src``; the peer's address is the one it names (its EID and port)."""
        try:
            msg = w.decode(data)
        except DecodeError as exc:
            return self._drop(exc.reason)
        if msg.stream_id != self.stream_id:
            return self._drop("other-stream")
        if msg.mtype == w.LEAVE:
            self.leaves += 1
            self.remove(msg.body)
            return []
        if msg.mtype != w.JOIN:
            return self._drop("unexpected-type")
        addr = msg.body
        if addr != src:
            return self._drop("addr-mismatch")
        if addr not in self.index and len(self.members) >= self.max_members:
            return self._drop("full")
        self.joins += 1
        others = [m for m in self.rng.sample(self.members, min(len(self.members), self.view_size + 1))
                  if m != addr][: self.view_size]
        self.add(addr, msg.asn)
        reply = w.encode_peers(self.asn, self.stream_id, self.newest,
                               [(e, p, self.asn_of[(e, p)]) for e, p in others])
        self.packets_sent += 1
        self.bytes_sent += len(reply)
        return [(reply, addr)]


class SourcePush:
    """Which members get each chunk from the source (``fanout`` of them) and the CHUNK message."""

    def __init__(self, tracker: TrackerCore, *, fanout: int = 4, policy: str = "random", seed: int = 0) -> None:
        self.tracker, self.fanout, self.policy = tracker, fanout, policy
        self.rng = random.Random(seed)
        self._turn = 0

    def targets(self) -> list[Addr]:
        """The members to push the next chunk to."""
        t = self.tracker
        members = t.members
        if len(members) <= self.fanout:
            return list(members)
        if self.policy != "local":
            return self.rng.sample(members, self.fanout)
        by_as: dict[int, list[Addr]] = {}
        for m in members:
            by_as.setdefault(t.asn_of[m], []).append(m)
        ases = sorted(by_as)
        out: list[Addr] = []
        for _ in range(4 * self.fanout * len(ases)):
            group = by_as[ases[self._turn % len(ases)]]
            self._turn += 1
            pick = self.rng.choice(group)
            if pick not in out:
                out.append(pick)
                if len(out) == self.fanout:
                    return out
        rest = [m for m in members if m not in out]
        return out + self.rng.sample(rest, self.fanout - len(out))

    def datagrams(self, seq: int, chunk: bytes, time_us: int) -> list[tuple[bytes, Addr]]:
        """The CHUNK messages of chunk ``seq`` (sent at ``time_us`` microseconds), and note it as the newest."""
        self.tracker.newest = seq & 0xFFFFFFFF
        msg = w.encode_chunk(self.tracker.asn, self.tracker.stream_id, seq, time_us, chunk)
        return [(msg, dst) for dst in self.targets()]
