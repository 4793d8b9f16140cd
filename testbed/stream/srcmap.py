"""The source's own view of the LISP mapping system (mode ``corecast-src``, issue 15).

The paper's last paragraph: "S could have read access to the LISP mapping system".
In ``corecast-src`` the source resolves its clients' EIDs itself, groups them by
ETR RLOC and capability, and sends its ITR one DATA plus one REF-LIST per ETR
naming that ETR (docs/protocol.md); clients of non-capable sites get full unicast
from the source; clients not resolved (yet) get REFs with flag B, which the ITR
resolves and batches as in ``corecast-batch``.

:class:`SourceMapper` is sans-I/O: the resolution state machine is
:class:`testbed.lisp.xtrcontrol.XtrControl` (ECM Map-Requests to the
Map-Resolver with the source EID as ITR-RLOC and UDP 4342 as the inner ports,
its own random nonces, retries with doubling timeouts, given up after
``request_tries``), never started, so it never registers anything; replies fill
a :class:`testbed.lisp.mapcache.MapCache` (record TTL, negative replies held
``negative_ttl``). A cached entry whose TTL ends within ``refresh_s`` is
re-requested while it is still used, so a change in the mapping (an ETR that
moved, a site that became capable) reaches the source at most one record TTL
after it was registered, plus a round trip; an expired entry not refreshed
sends its clients the REF fallback until the reply.

:class:`MapperSocket` is the thin I/O: a UDP socket on (source EID, 4342) for the
replies, drained without blocking; :meth:`MapperSocket.warm` resolves the first
clients before the stream starts (bounded by a deadline).
"""

from __future__ import annotations

import select
import socket
import time
from typing import Iterable

from testbed.lisp.mapcache import MapCache
from testbed.lisp.xtrcontrol import XtrControl
from testbed.wire.constants import LISP_CONTROL_PORT

Send = tuple[bytes, str, int]
Grouping = tuple[dict[str, list[tuple[bytes, int]]], list[tuple[str, int]], list[tuple[str, int]]]
"""({ETR RLOC: [(EID as 4 bytes, port)]} of capable sites, [(EID, port)] of non-capable sites, [(EID, port)] unresolved)."""


class SourceMapper:
    """Resolve and group the source's destinations (see the module docstring).

    ``src_eid``: the source's EID (ITR-RLOC of its Map-Requests; the Map-Reply comes back to it,
    port 4342). ``flow_hash``: what the ITR hashes to choose among an ETR's locators
    (``hash((source EID as int, stream id)) & 0x7FFFFFFF``). Raises ValueError on bad addresses/timers.
    """

    def __init__(self, src_eid: str, map_resolver: str, stream_id: int, *, request_timeout: float = 1.0,
                 request_tries: int = 3, refresh_s: float = 5.0) -> None:
        self.cache = MapCache()
        self.ctl = XtrControl(rloc=src_eid, eid_prefixes=[f"{src_eid}/32"], map_server=map_resolver,
                              map_resolver=map_resolver, key=b"-", map_cache=self.cache,
                              request_timeout=request_timeout, request_tries=request_tries)
        self.refresh_s = float(refresh_s)
        self.flow_hash = hash((int.from_bytes(socket.inet_aton(src_eid), "big"), stream_id)) & 0x7FFFFFFF
        self._raw: dict[str, tuple[int, bytes]] = {}
        self.counters = {"grouped": 0, "unresolved": 0, "refresh": 0}

    def group(self, destinations: Iterable[tuple[str, int]], now: float) -> tuple[Grouping, list[Send]]:
        """Group ``destinations`` by the map-cache; return the grouping and the Map-Requests to send."""
        lists: dict[str, list[tuple[bytes, int]]] = {}
        unicast: list[tuple[str, int]] = []
        unresolved: list[tuple[str, int]] = []
        sends: list[Send] = []
        raw_of = self._raw
        lookup = self.cache.lookup
        for eid, port in destinations:
            got = raw_of.get(eid)
            if got is None:
                raw = socket.inet_aton(eid)
                got = raw_of[eid] = (int.from_bytes(raw, "big"), raw)
            num, raw = got
            entry = lookup(num, now)
            if entry is None:
                unresolved.append((eid, port))
                sends += self.ctl.request(num, now)
                continue
            if entry.expires - now < self.refresh_s:  # XtrControl sends one request per EID at a time
                self.counters["refresh"] += 1
                sends += self.ctl.request(num, now)
            rloc = None if entry.negative else entry.choose(self.flow_hash)
            if rloc is None:
                unresolved.append((eid, port))  # the ITR decides (and counts) what to do with it
            elif entry.corecast:
                lists.setdefault(rloc, []).append((raw, port))
            else:
                unicast.append((eid, port))
        self.counters["grouped"] += 1
        self.counters["unresolved"] += len(unresolved)
        return (lists, unicast, unresolved), sends

    def on_reply(self, buf: bytes, src: str, sport: int, now: float) -> list[Send]:
        """Handle one datagram from the control socket (a Map-Reply fills the cache)."""
        sends, _done = self.ctl.on_control(buf, src, sport, now)
        return sends

    def on_timer(self, now: float) -> list[Send]:
        """Retry or give up outstanding Map-Requests."""
        sends, _failed = self.ctl.on_timer(now)
        return sends

    def next_deadline(self) -> float:
        """When :meth:`on_timer` has work (monotonic seconds)."""
        return self.ctl.next_deadline()

    @property
    def outstanding(self) -> int:
        """Map-Requests waiting for a reply."""
        return len(self.ctl.pending)


class MapperSocket:
    """The I/O of a :class:`SourceMapper`: one UDP socket on (source EID, 4342)."""

    def __init__(self, mapper: SourceMapper, src_eid: str) -> None:
        self.mapper = mapper
        self.src_eid = src_eid
        self.sock: socket.socket | None = None

    def open(self) -> None:
        """Bind the reply socket; OSError if the address is unusable."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((self.src_eid, LISP_CONTROL_PORT))

    def send(self, sends: list[Send]) -> None:
        """Send control messages (errors are ignored: the retry timer covers a lost request)."""
        for payload, addr, port in sends:
            try:
                self.sock.sendto(payload, (addr, port))
            except OSError:
                pass

    def pump(self) -> None:
        """Drain the replies that arrived and run the retry timer (never blocks)."""
        now = time.monotonic()
        while True:
            try:
                buf, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            self.send(self.mapper.on_reply(buf, addr[0], addr[1], now))
        if now >= self.mapper.next_deadline():
            self.send(self.mapper.on_timer(now))

    def group(self, destinations: Iterable[tuple[str, int]]) -> Grouping:
        """Pump, then group ``destinations`` (sending the Map-Requests it needs)."""
        self.pump()
        grouping, sends = self.mapper.group(destinations, time.monotonic())
        self.send(sends)
        return grouping

    def warm(self, destinations: list[tuple[str, int]], timeout: float) -> int:
        """Resolve ``destinations`` before the stream starts, for at most ``timeout`` s; return how many are not."""
        deadline = time.monotonic() + timeout
        while True:
            (_lists, _uni, unresolved), sends = self.mapper.group(destinations, time.monotonic())
            self.send(sends)
            if not unresolved or time.monotonic() >= deadline or (not sends and not self.mapper.outstanding):
                return len(unresolved)
            select.select([self.sock], [], [], min(0.05, max(0.0, deadline - time.monotonic())))
            self.pump()

    def close(self) -> None:
        """Close the socket."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
