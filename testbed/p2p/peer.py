"""One peer of the mesh-pull overlay as a sans-I/O core: datagrams and times in, datagrams out.

```python
core = PeerCore(("10.1.0.10", 4350), asn=1, tracker=("10.0.0.10", 4351), tracker_asn=0,
                chunk_rate=10.0, chunk_bytes=1316, params=P2PParams())
out = core.start(now)                 # [(payload, (eid, port)), ...]: the JOIN
out = core.receive(now, data, src)    # any bytes from anyone: never raises, bad input is a counted drop
out = core.tick(now)                  # at or after core.next_wakeup()
core.stats(now)                       # the metrics (docs/p2p.md)
```
Life of a peer (after DONet, docs/p2p.md): JOIN to the tracker, which answers a random
partial view and the source's newest chunk; partners chosen from the view by the policy
(``random``, or ``local``: same AS first, ``external`` outside); buffer maps sent to every
partner each ``bm_period_s``; every ``sched_period_s`` the scheduler requests the missing
chunks still due, rarest first (fewest partners holding them), ties to the earliest
deadline, each from the holder we have asked least (same-AS holders first under
``local``); a request not answered in ``request_timeout_s`` is asked again. Playback
starts once ``buffer_s`` seconds of contiguous chunks from the start position are held;
chunk s is then due at ``play_start + (s - start) / chunk_rate`` and counted played or
missed at that time. Chunks uploaded go through the token bucket (:mod:`testbed.p2p.bucket`).
Times are seconds on any one clock shared with the source (``time.time()`` in the nodes).
"""

from __future__ import annotations

import random

from testbed.p2p.bucket import TokenBucket, UploadQueue
from testbed.p2p.metrics import PeerCounters
from testbed.p2p.params import P2PParams
from testbed.wire import p2p as w
from testbed.wire.corecast import chunk_hash
from testbed.wire.errors import DecodeError

Addr = tuple[str, int]
Out = list[tuple[bytes, Addr]]


class PeerCore:
    """The state machine of one peer (see the module docstring); all times in seconds."""

    def __init__(self, me: Addr, *, asn: int, tracker: Addr, tracker_asn: int, chunk_rate: float, chunk_bytes: int,
                 params: P2PParams | None = None, stream_id: int = 1, seed: int | None = None) -> None:
        if not chunk_rate > 0 or chunk_bytes < 1:
            raise ValueError("chunk_rate and chunk_bytes must be > 0")
        self.me, self.asn, self.tracker, self.tracker_asn = me, asn, tracker, tracker_asn
        self.p = p = params or P2PParams()
        self.stream_id = stream_id
        self.rate = float(chunk_rate)
        self.rng = random.Random(seed if seed is not None else hash(me))
        self.buffer_chunks = max(1, round(p.buffer_s * self.rate))
        self.window = max(self.buffer_chunks, min(w.MAX_BITS, round(p.window_s * self.rate)))
        msg = w.CHUNK_HEADER + chunk_bytes
        self.bucket = TokenBucket(p.upload * self.rate * msg, p.burst_chunks * msg)
        self.queue = UploadQueue()
        self.c = PeerCounters()
        self.state = "new"
        self.view: dict[Addr, int] = {}          # address -> AS, from the tracker
        self.asn_of: dict[Addr, int] = {}        # every sender's AS (from the common header)
        self.partners: dict[Addr, float] = {}    # partner -> last buffer map received (or added)
        self.maps: dict[Addr, tuple[int, int, int]] = {}  # partner -> (base, bits, bitmap as int)
        self.held: dict[int, bytes] = {}
        self.gen_us: dict[int, int] = {}
        self.pending: dict[int, tuple[Addr, float]] = {}
        self.newest = -1
        self.newest_known = -1
        self.first_seen: float | None = None
        self.start_seq: int | None = None
        self.play_pos = 0
        self.play_start: float | None = None
        self.played: list[tuple[int, bytes]] = []
        self.lags: list[float] = []
        self.next_bm = self.next_sched = self.next_join = float("inf")

    # -- sending ------------------------------------------------------------------------------
    def _emit(self, out: Out, payload: bytes, dst: Addr, dst_asn: int | None, chunk: bool = False) -> None:
        out.append((payload, dst))
        self.c.sent(len(payload), chunk, dst_asn is not None and dst_asn != self.asn, dst_asn)

    def _peer_asn(self, addr: Addr) -> int | None:
        return self.asn_of.get(addr, self.view.get(addr))

    def start(self, now: float) -> Out:
        """Join: send JOIN to the tracker (retried every ``request_timeout_s`` until PEERS arrives)."""
        if self.state == "new":
            self.state = "joining"
            self.c.join_time = now
        out: Out = []
        self._emit(out, w.encode_join(self.asn, self.stream_id, *self.me), self.tracker, self.tracker_asn)
        self.next_join = now + self.p.request_timeout_s
        return out

    def leave(self, now: float) -> Out:
        """Leave the swarm: LEAVE to the tracker and every partner; the core then ignores everything."""
        out: Out = []
        if self.state in ("left", "new"):
            return out
        bye = w.encode_join(self.asn, self.stream_id, *self.me, leave=True)
        for dst in [self.tracker, *self.partners]:
            self._emit(out, bye, dst, self.tracker_asn if dst == self.tracker else self._peer_asn(dst))
        self.state = "left"
        self.c.leave_time = now
        self.partners.clear()
        self.queue.items.clear()
        return out

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, now: float, data: bytes, src: Addr) -> Out:
        """Handle one datagram from ``src``; never raises: bad input is counted in ``drops``."""
        out: Out = []
        if self.state == "left":
            return out
        self.c.received(len(data))
        try:
            msg = w.decode(data)
        except DecodeError as exc:
            self.c.drop(exc.reason)
            return out
        if msg.stream_id != self.stream_id:
            self.c.drop("other-stream")
            return out
        kind = msg.mtype
        if kind == w.PEERS:
            if src != self.tracker:
                self.c.drop("not-tracker")
                return out
            self._on_peers(now, msg.body, out)
            return out
        if src == self.me:
            self.c.drop("from-self")
            return out
        self.asn_of[src] = msg.asn
        if kind == w.CHUNK:
            self._on_chunk(now, *msg.body)
        elif kind == w.BUFFERMAP:
            self._on_map(now, src, msg.body, out)
        elif kind == w.REQUEST:
            for seq in msg.body[: 4 * self.p.burst_chunks + self.window]:
                if seq in self.held:
                    self.queue.push(now, src, seq)
            self._serve(now, out)
        elif kind == w.LEAVE:
            self._drop_partner(src)
            self.view.pop(src, None)
        else:
            self.c.drop("unexpected-type")
        self._play(now)
        return out

    def _on_peers(self, now: float, body: tuple, out: Out) -> None:
        newest, entries = body
        self.next_join = float("inf")
        for eid, port, asn in entries:
            if (eid, port) != self.me:
                self.view[(eid, port)] = asn
        if self.start_seq is None:
            self.start_seq = 0 if newest == w.NO_SEQ else max(0, newest - self.buffer_chunks + 1)
            self.play_pos = self.start_seq
            self.state = "buffering"
            self.next_bm = self.next_sched = now
        self._fill_partners(now, out)

    def _fill_partners(self, now: float, out: Out) -> None:
        """Pick partners from the view up to ``partners`` (by the policy) and greet them with a buffer map."""
        want = self.p.partners - len(self.partners)
        if want <= 0:
            return
        cands = [a for a in self.view if a not in self.partners]
        self.rng.shuffle(cands)
        if self.p.policy == "local":
            other = [a for a in cands if self.view[a] != self.asn]
            n_ext = sum(1 for a in self.partners if self._peer_asn(a) != self.asn)
            ext_first = other[: max(0, self.p.external - n_ext)]
            rest = [a for a in cands if a not in ext_first]
            rest.sort(key=lambda a: self.view[a] != self.asn)
            cands = ext_first + rest
        bm = self._buffermap()
        for addr in cands[:want]:
            self.partners[addr] = now
            self._emit(out, bm, addr, self.view.get(addr))
        if len(self.partners) < self.p.partners and self.next_join == float("inf"):
            self.next_join = now + self.p.bm_period_s * 5  # ask the tracker for a fresh view later

    def _on_chunk(self, now: float, seq: int, time_us: int, chunk: bytes) -> None:
        self.pending.pop(seq, None)
        if seq in self.held:
            self.c.duplicates += 1
            return
        if self.play_start is not None and seq < self.play_pos:
            self.c.late += 1
            return
        if seq < self.newest - self.window:
            self.c.drop("too-old")
            return
        self.held[seq] = chunk
        self.gen_us[seq] = time_us
        if self.first_seen is None:
            self.first_seen = now
        self.c.chunks_received += 1
        if seq > self.newest:
            self.newest = seq
            cutoff = seq - self.window
            if len(self.held) > self.window + 16:
                for old in [s for s in self.held if s < cutoff]:
                    del self.held[old]
                    self.gen_us.pop(old, None)

    def _on_map(self, now: float, src: Addr, body: tuple, out: Out) -> None:
        base, bits, bitmap = body
        if src not in self.partners:
            if len(self.partners) >= self.p.max_partners or self.state == "joining":
                self.c.drop("partners-full")
                return
            self.partners[src] = now
            self._emit(out, self._buffermap(), src, self._peer_asn(src))
        self.partners[src] = now
        value = int.from_bytes(bitmap, "big") >> (len(bitmap) * 8 - bits) if bits else 0
        self.maps[src] = (base, bits, value)
        if bits and value:
            top = base + bits - 1 - ((value & -value).bit_length() - 1)
            if top > self.newest_known:
                self.newest_known = top
            if self.first_seen is None:
                self.first_seen = now

    def _drop_partner(self, addr: Addr) -> None:
        self.partners.pop(addr, None)
        self.maps.pop(addr, None)

    # -- periodic work ---------------------------------------------------------------------------
    def _buffermap(self) -> bytes:
        if self.newest < 0:
            return w.encode_buffermap(self.asn, self.stream_id, 0, 0, b"")
        base = max(0, self.newest - self.window + 1)
        bits = self.newest - base + 1
        return w.encode_buffermap(self.asn, self.stream_id, base, bits, w.bitmap_of(self.held, base, bits))

    def tick(self, now: float) -> Out:
        """Do whatever is due at ``now``: joins, buffer maps, scheduling, uploads, playback."""
        out: Out = []
        if self.state in ("left", "new"):
            return out
        if now >= self.next_join:
            out += self.start(now)
        if now >= self.next_bm:
            self.next_bm = now + self.p.bm_period_s
            stale = now - 3 * self.p.bm_period_s
            for addr in [a for a, t in self.partners.items() if t < stale]:
                self._drop_partner(addr)
                self.view.pop(addr, None)
                self.c.partners_lost += 1
            self._fill_partners(now, out)
            bm = self._buffermap()
            for addr in self.partners:
                self._emit(out, bm, addr, self._peer_asn(addr))
        if now >= self.next_sched:
            self.next_sched = now + self.p.sched_period_s
            self._schedule(now, out)
        self._serve(now, out)
        self._play(now)
        return out

    def _due(self, seq: int) -> float:
        """Playout deadline of ``seq`` (inf before playback starts)."""
        if self.play_start is None:
            return float("inf")
        return self.play_start + (seq - self.start_seq) / self.rate

    def _schedule(self, now: float, out: Out) -> None:
        if self.start_seq is None or not self.maps:
            return
        lo = self.play_pos
        hi = min(max(self.newest_known, self.newest), lo + self.window - 1)
        timeout = self.p.request_timeout_s
        cands = []
        for seq in range(lo, hi + 1):
            if seq in self.held:
                continue
            pend = self.pending.get(seq)
            if pend is not None and now - pend[1] < timeout:
                continue
            if pend is not None:
                self.c.timeouts += 1
                del self.pending[seq]
            holders = [a for a, (b, n, v) in self.maps.items() if 0 <= seq - b < n and (v >> (n - 1 - seq + b)) & 1]
            if holders:
                cands.append((len(holders), seq, holders, pend[0] if pend else None))
        cands.sort(key=lambda c: (c[0], c[1]))
        load: dict[Addr, int] = {}
        for _, _, addr in [(s, t, a) for s, (a, t) in self.pending.items()]:
            load[addr] = load.get(addr, 0) + 1
        cap = max(2, int(self.p.upload * self.rate * timeout / 2))
        asks: dict[Addr, list[int]] = {}
        local = self.p.policy == "local"
        for _, seq, holders, previous in cands:
            if previous is not None and len(holders) > 1 and previous in holders:
                holders = [h for h in holders if h != previous]
            self.rng.shuffle(holders)
            holders.sort(key=lambda a: ((local and self._peer_asn(a) != self.asn), load.get(a, 0)))
            best = holders[0]
            if load.get(best, 0) >= cap:
                continue
            load[best] = load.get(best, 0) + 1
            asks.setdefault(best, []).append(seq)
            self.pending[seq] = (best, now)
        for addr, seqs in asks.items():
            for i in range(0, len(seqs), w.MAX_REQUEST):
                self._emit(out, w.encode_request(self.asn, self.stream_id, seqs[i:i + w.MAX_REQUEST]), addr,
                           self._peer_asn(addr))
                self.c.requests += 1

    def _serve(self, now: float, out: Out) -> None:
        """Send queued chunks while the token bucket allows."""
        q = self.queue
        q.drop_older(now - self.p.request_timeout_s)
        while q.items:
            _, dst, seq = q.items[0]
            chunk = self.held.get(seq)
            if chunk is None:
                q.items.popleft()
                continue
            size = w.CHUNK_HEADER + len(chunk)
            if not self.bucket.take(size, now):
                break
            q.items.popleft()
            msg = w.encode_chunk(self.asn, self.stream_id, seq, self.gen_us.get(seq, 0), chunk)
            self._emit(out, msg, dst, self._peer_asn(dst), chunk=True)

    def _play(self, now: float) -> None:
        if self.start_seq is None:
            return
        if self.play_start is None:
            self._skip_lost_start(now)
            s0 = self.start_seq
            if all(s in self.held for s in range(s0, s0 + self.buffer_chunks)):
                self.play_start = now
                self.state = "playing"
                self.c.play_start = now
            else:
                return
        limit = max(self.newest_known, self.newest)
        while self.play_pos <= limit and self._due(self.play_pos) <= now:
            seq = self.play_pos
            chunk = self.held.get(seq)
            if chunk is not None:
                self.c.played += 1
                self.played.append((seq, chunk_hash(chunk)))
                gen = self.gen_us.get(seq, 0)
                if gen:
                    self.lags.append(self._due(seq) - gen / 1e6)
            else:
                self.c.missed += 1
            self.pending.pop(seq, None)
            self.play_pos += 1

    def _advertised(self, seq: int) -> bool:
        return seq in self.held or any(0 <= seq - b < n and (v >> (n - 1 - seq + b)) & 1
                                       for b, n, v in self.maps.values())

    def _skip_lost_start(self, now: float) -> None:
        """While buffering, move the start past chunks nobody has (e.g. pushed before this peer joined).

        Only once chunks have been seen for ``buffer_s + 4 x (request_timeout_s + bm_period_s)`` (time for
        the chunk to reach a partner and be advertised even on a slow swarm) and only past chunks no
        partner advertises.
        """
        grace = self.p.buffer_s + 4 * (self.p.request_timeout_s + self.p.bm_period_s)
        if self.first_seen is None or now - self.first_seen < grace:
            return
        top = max(self.newest_known, self.newest)
        s0 = self.start_seq
        while s0 < top and s0 not in self.pending and not self._advertised(s0):
            s0 += 1
            self.c.skipped += 1
        self.start_seq = self.play_pos = s0

    def next_wakeup(self) -> float:
        """The earliest time at which :meth:`tick` has something to do (inf: nothing until a datagram)."""
        if self.state in ("left", "new"):
            return float("inf")
        t = min(self.next_bm, self.next_sched, self.next_join)
        if self.play_start is not None and self.play_pos <= max(self.newest_known, self.newest):
            t = min(t, self._due(self.play_pos))
        if self.queue.items:
            _, _, seq = self.queue.items[0]
            chunk = self.held.get(seq)
            size = w.CHUNK_HEADER + (len(chunk) if chunk is not None else 0)
            t = min(t, self.bucket.ready_at(size, self.bucket.last))
        return t

    def stats(self) -> dict:
        """Per-peer metrics (docs/p2p.md): counters, startup delay, continuity, mean playback lag."""
        return self.c.as_dict(self.lags, self.queue)
