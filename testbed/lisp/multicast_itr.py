"""The ITR half of signal-free LISP multicast (RFC 8378 section 6), sans-I/O.

The source's ITR catches each multicast packet to an SSM group (232/8, RFC 4607)
on its LAN (``nodes/xtr.py``: a packet socket on the LAN interface with a BPF
filter for the SSM range), looks the (S,G) up in its replication lists and sends one
LISP-encapsulated copy (C bit clear; RFC 9300 header, N bit and nonce) of the
packet, unchanged, to every RLOC of the list: head-end replication.

Replication lists come from the mapping system, data-driven as RFC 8378
section 6 describes: the first packet of an (S,G) triggers an ECM Map-Request
for the (S,G) EID (Multicast Info LCAF) to the Map-Resolver, and its packets
wait (at most ``queue_limit``) for the reply; the Map-Reply's RLE locator is the
list, a negative reply an empty list. An (S,G) with no packet for ``idle_s``
seconds is forgotten (no more Map-Requests). RFC 8378 section 6 has the ITR
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

from testbed.lisp.dataplane import SEND_RAW, Encapsulator, sum16
from testbed.lisp.prefixes import mask, parse_prefix
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import Ecm, MapReply, MapRequest
from testbed.wire.lispctrl.lcaf import parse_rle, sg_of_prefix, sg_prefix

Send = tuple[bytes, str, int]
_HDR = struct.Struct("!BBH4xBB2xII")   # vihl, tos, total, ttl, proto, src, dst


def complete_udp_checksum(pkt: bytes | memoryview) -> bytes:
    """Return the IPv4 packet ``pkt`` with its UDP checksum computed (other packets unchanged).

    A packet socket sees the source host's datagram before checksum offload is done
    (veth: CHECKSUM_PARTIAL, only the pseudo-header sum in the field), so the ITR
    completes it before sending the packet out of the site (RFC 768)."""
    ihl = (pkt[0] & 0x0F) * 4
    total = (pkt[2] << 8) | pkt[3]
    if pkt[9] != 17 or (pkt[6] & 0x3F) or pkt[7] or total < ihl + 8 or total > len(pkt):
        return bytes(pkt)
    out = bytearray(pkt[:total])
    out[ihl + 6:ihl + 8] = b"\0\0"
    r = (sum16(bytes(out[12:20]) + bytes((0, 17)) + (total - ihl).to_bytes(2, "big")) + sum16(out[ihl:])) % 0xFFFF
    out[ihl + 6:ihl + 8] = (0xFFFF - r).to_bytes(2, "big")
    return bytes(out)


def _int(addr: str) -> int:
    return int.from_bytes(socket.inet_aton(addr), "big")


class MulticastItr:
    """Replication lists of the configured (S,G) and head-end replication of their packets."""

    def __init__(self, *, rloc: str, map_resolver: str, encap: Encapsulator, refresh_s: float = 0.5,
                 request_timeout: float = 1.0, idle_s: float = 10.0, queue_limit: int = 64,
                 ssm_range: str = "232.0.0.0/8", rng: random.Random | None = None) -> None:
        """Set up; ValueError on a bad prefix or a non-positive period."""
        if min(refresh_s, request_timeout, idle_s) <= 0:
            raise ValueError("refresh_s, request_timeout and idle_s must be > 0")
        self.rloc, self.map_resolver, self.encap = rloc, map_resolver, encap
        net, plen = parse_prefix(ssm_range)
        self._ssm = (net, mask(plen))
        self.refresh_s, self.request_timeout, self.idle_s = float(refresh_s), float(request_timeout), float(idle_s)
        self.queue_limit = int(queue_limit)
        self._queue: dict[tuple[str, str], list[bytes]] = {}
        self._seen: dict[tuple[int, int], float] = {}   # (S int, G int) -> last packet time
        self.rng = rng or random.Random()
        self.lists: dict[tuple[str, str], list[str]] = {}
        """(S, G) -> replication list (RLOCs), present once resolved."""
        self._fast: dict[tuple[int, int], list[str]] = {}
        self._nonces: dict[int, tuple[str, str]] = {}
        self._due: dict[tuple[str, str], float] = {}
        self.counters: dict[str, int] = dict.fromkeys((
            "request-sent", "reply-in", "reply-bad", "list-changed", "packets-in", "replicated", "queued",
            "queue-full", "flushed", "no-receivers", "not-ssm", "bad-packet", "idle-forgotten"), 0)
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
        for sg, due in list(self._due.items()):
            if due > now:
                continue
            if now - self._seen.get((_int(sg[0]), _int(sg[1])), now) > self.idle_s:
                self._forget(sg)
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

    def _forget(self, sg: tuple[str, str]) -> None:
        self._count("idle-forgotten")
        for table in (self._due, self.lists, self._queue):
            table.pop(sg, None)
        self._fast.pop((_int(sg[0]), _int(sg[1])), None)
        self._seen.pop((_int(sg[0]), _int(sg[1])), None)
        for nonce in [n for n, k in self._nonces.items() if k == sg]:
            del self._nonces[nonce]

    def on_reply(self, msg: MapReply, now: float) -> list[tuple] | None:
        """Take a Map-Reply if its nonce is one of ours (else None): install the (S,G) list and return the
        actions replicating the packets that waited for it."""
        sg = self._nonces.pop(msg.nonce, None)
        if sg is None:
            return None
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
                return []
        if rlocs is None:
            self._count("reply-bad")
            return []
        if self.lists.get(sg) != rlocs:
            self._count("list-changed")
            self.changes.append((now, sg[0], sg[1], len(rlocs)))
            del self.changes[:-1000]
        self.lists[sg] = rlocs
        self._fast[(_int(sg[0]), _int(sg[1]))] = rlocs
        actions: list[tuple] = []
        for pkt in self._queue.pop(sg, []):
            self.counters["flushed"] += 1
            self.counters["packets-in"] -= 1   # counted once, when it arrived
            actions += self.on_lan_packet(pkt, now)
        return actions

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
        if dst & self._ssm[1] != self._ssm[0]:
            self.counters["not-ssm"] += 1
            return []
        key = (src, dst)
        self.counters["packets-in"] += 1
        self._seen[key] = now
        rlocs = self._fast.get(key)
        if rlocs is None:
            sg = (socket.inet_ntoa(src.to_bytes(4, "big")), socket.inet_ntoa(dst.to_bytes(4, "big")))
            self._due.setdefault(sg, now)
            queue = self._queue.setdefault(sg, [])
            if len(queue) >= self.queue_limit:
                self.counters["queue-full"] += 1
            else:
                self.counters["queued"] += 1
                queue.append(bytes(pkt))
            return []
        if not rlocs:
            self.counters["no-receivers"] += 1
            return []
        sport = 0xC000 | (hash(key) & 0x3FFF)
        header = self.encap.header
        data = complete_udp_checksum(pkt)
        self.counters["replicated"] += len(rlocs)
        return [(SEND_RAW, rloc, header(rloc, total, sport, tos, ttl or 1) + data) for rloc in rlocs]

    def state(self) -> dict[str, int]:
        """``{"S,G": list size}`` for the status file (resolved entries only)."""
        return {f"{s},{g}": len(r) for (s, g), r in sorted(self.lists.items())}
