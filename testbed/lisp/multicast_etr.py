"""The ETR half of signal-free LISP multicast (RFC 8378 sections 5 and 7), sans-I/O.

Receivers: the ETR reads the IGMP reports of its LAN (a raw IGMP socket in
``nodes/xtr.py``) and keeps, per (S,G), the set of LAN hosts that asked for it.
Only source-specific joins count (SSM, RFC 4607): INCLUDE-mode records of
IGMPv3 (IS_IN, TO_IN, ALLOW, BLOCK); EXCLUDE-mode records and IGMPv1/v2
(any-source joins) are counted and ignored (``igmp-asm-ignored``). A host leaves
(S,G) with a TO_IN or BLOCK record that no longer lists S (what Linux sends on
IP_DROP_SOURCE_MEMBERSHIP or close). There is no querier: state changes come from
the hosts' unsolicited state-change reports, and a host that goes silent stays
until it leaves (documented limit).

Registration (RFC 8378 section 5): when (S,G) gets its first receiver, the ETR
sends at once a Map-Register with its own EID-prefix record(s) (which name its
site to the Map-Server) and an (S,G) record whose locator is an RLE holding its
RLOC; when the last receiver leaves, the same with the (S,G) record's TTL 0.
Every ``refresh_s`` seconds it re-registers every (S,G) it has receivers for
(soft state at the Map-Server).

Delivery (RFC 8378 section 7): a decapsulated packet to G from S (handed over by
:class:`testbed.lisp.dataplane.Etr`) goes onto the LAN once, as IP multicast,
if the LAN has a receiver of (S,G): action ``(SEND_MCAST, packet)``; otherwise it
is dropped (``no-receivers``).
"""

from __future__ import annotations

import random
import socket

from testbed.lisp.prefixes import mask, parse_prefix
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.errors import DecodeError
from testbed.wire.igmp import ALLOW, BLOCK, IS_IN, TO_IN, parse_igmp_packet
from testbed.wire.lispctrl import EidRecord, Locator, MapRegister
from testbed.wire.lispctrl.lcaf import rle_text, sg_prefix

SEND_MCAST = 5
"""Action ``(SEND_MCAST, packet)``: send the IPv4 multicast packet (IP_HDRINCL) on the LAN."""
SSM_RANGE = "232.0.0.0/8"
Send = tuple[bytes, str, int]


class MulticastEtr:
    """Receivers per (S,G) from IGMP, (S,G) registration, one LAN copy per packet."""

    def __init__(self, *, rloc: str, eid_prefixes: list[str], map_server: str, key: bytes, alg_id: int = 2,
                 corecast: bool = False, register_ttl: int = 1440, refresh_s: float = 10.0,
                 ssm_range: str = SSM_RANGE, rng: random.Random | None = None) -> None:
        """Set up; ValueError on a malformed address, prefix or a non-positive refresh period."""
        socket.inet_aton(rloc)
        if refresh_s <= 0:
            raise ValueError("refresh_s must be > 0")
        self.rloc, self.eid_prefixes, self.map_server = rloc, list(eid_prefixes), map_server
        self._prefixes = [(net, mask(plen)) for net, plen in map(parse_prefix, eid_prefixes)]
        self.key, self.alg_id, self.corecast, self.register_ttl = key, alg_id, corecast, register_ttl
        self.refresh_s = float(refresh_s)
        net, plen = parse_prefix(ssm_range)
        self._ssm = (net, mask(plen))
        self.rng = rng or random.Random()
        self.members: dict[tuple[str, str], set[str]] = {}
        """(S, G) -> LAN hosts that joined it."""
        self._host: dict[tuple[str, str], set[str]] = {}   # (host, G) -> sources
        self._members_int: dict[tuple[int, int], int] = {}  # (S int, G int) -> receivers, for the fast path
        self._next_refresh = float("inf")
        self.counters: dict[str, int] = dict.fromkeys((
            "igmp-in", "igmp-bad", "igmp-asm-ignored", "igmp-not-ssm", "igmp-foreign-host", "join", "leave",
            "register-sent", "delivered", "no-receivers"), 0)
        self.events: list[tuple[float, str, str, str]] = []
        """(time, "join"|"leave", S, G) of the (S,G) registrations sent (join/leave delay measurement)."""

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def next_deadline(self) -> float:
        """When the next refresh of the (S,G) registrations is due (``inf`` with no receivers)."""
        return self._next_refresh

    # ------------------------------------------------------------ IGMP

    def on_igmp(self, pkt: bytes | memoryview, now: float) -> list[Send]:
        """Handle one IPv4 packet read from the raw IGMP socket; return the Map-Registers to send."""
        self._count("igmp-in")
        try:
            host, records = parse_igmp_packet(pkt)
        except DecodeError:
            self._count("igmp-bad")
            return []
        h = int.from_bytes(socket.inet_aton(host), "big")
        if not any(h & m == net for net, m in self._prefixes):
            self._count("igmp-foreign-host")
            return []
        joined: list[tuple[str, str]] = []
        left: list[tuple[str, str]] = []
        for rtype, group, sources in records:
            g = int.from_bytes(socket.inet_aton(group), "big")
            if g & self._ssm[1] != self._ssm[0]:
                self._count("igmp-not-ssm")
                continue
            if rtype not in (IS_IN, TO_IN, ALLOW, BLOCK):
                self._count("igmp-asm-ignored")
                continue
            old = self._host.get((host, group), set())
            if rtype in (IS_IN, TO_IN):
                new = set(sources)
            elif rtype == ALLOW:
                new = old | set(sources)
            else:
                new = old - set(sources)
            if new:
                self._host[(host, group)] = new
            else:
                self._host.pop((host, group), None)
            for src in new - old:
                hosts = self.members.setdefault((src, group), set())
                if not hosts:
                    joined.append((src, group))
                hosts.add(host)
            for src in old - new:
                hosts = self.members.get((src, group), set())
                hosts.discard(host)
                if not hosts:
                    self.members.pop((src, group), None)
                    left.append((src, group))
        self._members_int = {(int.from_bytes(socket.inet_aton(s), "big"), int.from_bytes(socket.inet_aton(g), "big")):
                             len(hs) for (s, g), hs in self.members.items()}
        if not joined and not left:
            return []
        for sg in joined:
            self._count("join")
            self.events.append((now, "join", *sg))
        for sg in left:
            self._count("leave")
            self.events.append((now, "leave", *sg))
        del self.events[:-1000]
        if self.members and self._next_refresh == float("inf"):
            self._next_refresh = now + self.refresh_s
        return self._registers([(sg, self.register_ttl) for sg in joined] + [(sg, 0) for sg in left])

    def on_timer(self, now: float) -> list[Send]:
        """Re-register every (S,G) with receivers when the refresh period is over."""
        if now < self._next_refresh:
            return []
        self._next_refresh = now + self.refresh_s if self.members else float("inf")
        return self._registers([(sg, self.register_ttl) for sg in sorted(self.members)])

    def _registers(self, items: list[tuple[tuple[str, str], int]]) -> list[Send]:
        """Map-Registers (merge bit set, no Map-Notify asked) with the own EID records and up to 200 (S,G)."""
        loc = Locator(self.rloc, 1, 100, local=True, reachable=True, corecast=self.corecast)
        own = [EidRecord(p, self.register_ttl, 0, True, 0, [loc]) for p in self.eid_prefixes]
        rle = [Locator(rle_text([self.rloc]))]
        out = []
        for i in range(0, len(items), 200):
            recs = own + [EidRecord(sg_prefix(*sg), ttl, locators=rle) for sg, ttl in items[i:i + 200]]
            msg = MapRegister(self.rng.getrandbits(63) | 1, recs, alg_id=self.alg_id, proxy_reply=True,
                              want_map_notify=False, merge=True)
            self._count("register-sent")
            out.append((msg.encode(self.key), self.map_server, LISP_CONTROL_PORT))
        return out

    # ------------------------------------------------------------ data

    def on_decap(self, inner: bytes | memoryview, src: int, dst: int) -> list[tuple]:
        """A decapsulated multicast packet from S=``src`` to G=``dst`` (ints): one LAN copy, or a counted drop."""
        if (src, dst) in self._members_int:
            self.counters["delivered"] += 1
            return [(SEND_MCAST, inner)]
        self.counters["no-receivers"] += 1
        return []

    def state(self) -> dict[str, int]:
        """``{"S,G": receivers}`` for the status file."""
        return {f"{s},{g}": len(hosts) for (s, g), hosts in sorted(self.members.items())}
