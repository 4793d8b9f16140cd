"""The ITR half of signal-free LISP multicast (RFC 8378 section 6), sans-I/O.

The source's ITR catches each multicast packet of a configured (S,G) on its LAN
(``nodes/xtr.py``: a raw UDP socket on the LAN interface, filtered to multicast
destinations, and a source-specific membership so the kernel accepts the
packets), looks the (S,G) up in its replication lists and sends one
LISP-encapsulated copy (C bit clear; RFC 9300 header, N bit and nonce) of the
packet, unchanged, to every RLOC of the list: head-end replication.

Replication lists come from the mapping system: an ECM Map-Request for the
(S,G) EID (Multicast Info LCAF) to the Map-Resolver; the Map-Reply's RLE locator
is the list, a negative reply an empty list. RFC 8378 section 6 has the ITR
learn list changes from the mapping system; this ITR re-resolves each (S,G)
every ``refresh_s`` seconds (default 0.5 s: the Map-Reply's TTL, 1 minute, is far
too coarse for joins and leaves mid-stream), so a join or leave takes effect
within one refresh period plus a Map-Request round trip after the
registration lands. The pub/sub Map-Notify of draft-ietf-lisp-rfc8378bis
(RFC 9437) is not built.
"""

from __future__ import annotations

import random
import socket
import struct

from testbed.lisp.dataplane import SEND_RAW, Encapsulator
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import Ecm, MapReply, MapRequest
from testbed.wire.lispctrl.lcaf import parse_rle, sg_of_prefix, sg_prefix

Send = tuple[bytes, str, int]
_HDR = struct.Struct("!BBH4xBB2xII")   # vihl, tos, total, ttl, proto, src, dst


def _int(addr: str) -> int:
    return int.from_bytes(socket.inet_aton(addr), "big")


class MulticastItr:
    """Replication lists of the configured (S,G) and head-end replication of their packets."""

    def __init__(self, *, rloc: str, map_resolver: str, groups: list[tuple[str, str]], encap: Encapsulator,
                 refresh_s: float = 0.5, request_timeout: float = 1.0, rng: random.Random | None = None) -> None:
        """``groups``: the (S, G) pairs (dotted) this ITR serves. ValueError on a bad address or period."""
        if refresh_s <= 0 or request_timeout <= 0:
            raise ValueError("refresh_s and request_timeout must be > 0")
        self.rloc, self.map_resolver, self.encap = rloc, map_resolver, encap
        self.groups = [(s, g) for s, g in groups]
        self._keys = {(_int(s), _int(g)): (s, g) for s, g in self.groups}
        self.refresh_s, self.request_timeout = float(refresh_s), float(request_timeout)
        self.rng = rng or random.Random()
        self.lists: dict[tuple[str, str], list[str]] = {}
        """(S, G) -> replication list (RLOCs), present once resolved."""
        self._fast: dict[tuple[int, int], list[str]] = {}
        self._nonces: dict[int, tuple[str, str]] = {}
        self._due: dict[tuple[str, str], float] = dict.fromkeys(self.groups, 0.0)
        self.counters: dict[str, int] = dict.fromkeys((
            "request-sent", "reply-in", "reply-unknown-nonce", "reply-bad", "list-changed", "packets-in",
            "replicated", "unresolved", "no-receivers", "not-configured", "bad-packet"), 0)
        self.changes: list[tuple[float, str, str, int]] = []
        """(time, S, G, list size) whenever a list changed (join/leave delay measurement)."""

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------ control

    def next_deadline(self) -> float:
        """When the next (S,G) Map-Request is due."""
        return min(self._due.values(), default=float("inf"))

    def on_timer(self, now: float) -> list[Send]:
        """ECM Map-Requests for every (S,G) whose refresh (or request timeout) is due."""
        out = []
        for sg, due in self._due.items():
            if due > now:
                continue
            for nonce in [n for n, k in self._nonces.items() if k == sg]:
                del self._nonces[nonce]
            nonce = self.rng.getrandbits(63) | 1
            self._nonces[nonce] = sg
            self._due[sg] = now + min(self.refresh_s, self.request_timeout)
            req = MapRequest(nonce, [sg_prefix(*sg)], [self.rloc])
            out.append((Ecm(self.rloc, sg[1], LISP_CONTROL_PORT, LISP_CONTROL_PORT, req.encode()).encode(),
                        self.map_resolver, LISP_CONTROL_PORT))
            self._count("request-sent")
        return out

    def on_reply(self, msg: MapReply, now: float) -> bool:
        """Take a Map-Reply if its nonce is one of ours (return True), installing the (S,G) list."""
        sg = self._nonces.pop(msg.nonce, None)
        if sg is None:
            return False
        self._count("reply-in")
        self._due[sg] = now + self.refresh_s
        rlocs: list[str] | None = None
        for rec in msg.records:
            if sg_of_prefix(rec.prefix) != sg:
                continue
            try:
                rlocs = sorted({r for loc in rec.locators for r, _lvl in parse_rle(loc.rloc)}, key=socket.inet_aton)
            except DecodeError:
                self._count("reply-bad")
                return True
        if rlocs is None:
            self._count("reply-bad")
            return True
        if self.lists.get(sg) != rlocs:
            self._count("list-changed")
            self.changes.append((now, sg[0], sg[1], len(rlocs)))
            del self.changes[:-1000]
        self.lists[sg] = rlocs
        self._fast[(_int(sg[0]), _int(sg[1]))] = rlocs
        return True

    # ------------------------------------------------------------ data

    def on_lan_packet(self, pkt: bytes | memoryview, now: float) -> list[tuple]:
        """One IPv4 packet caught on the LAN: a LISP-encapsulated copy per RLOC of its (S,G) list."""
        if len(pkt) < 28:
            self.counters["bad-packet"] += 1
            return []
        vihl, tos, total, ttl, proto, src, dst = _HDR.unpack_from(pkt, 0)
        if vihl >> 4 != 4 or total > len(pkt) or total < (vihl & 0x0F) * 4:
            self.counters["bad-packet"] += 1
            return []
        if total < len(pkt):
            pkt = pkt[:total]
        key = (src, dst)
        self.counters["packets-in"] += 1
        rlocs = self._fast.get(key)
        if rlocs is None:
            self.counters["unresolved" if key in self._keys else "not-configured"] += 1
            return []
        if not rlocs:
            self.counters["no-receivers"] += 1
            return []
        sport = 0xC000 | (hash(key) & 0x3FFF)
        header = self.encap.header
        data = bytes(pkt)
        self.counters["replicated"] += len(rlocs)
        return [(SEND_RAW, rloc, header(rloc, total, sport, tos, ttl or 1) + data) for rloc in rlocs]

    def state(self) -> dict[str, int]:
        """``{"S,G": list size}`` for the status file (resolved entries only)."""
        return {f"{s},{g}": len(r) for (s, g), r in sorted(self.lists.items())}
