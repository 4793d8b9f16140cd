"""LISP data plane (RFC 9300), sans-I/O: the ITR and the ETR of an xTR.

The node program (``nodes/xtr.py``) reads packets from its TUN device and its
UDP 4341 socket, hands them to :class:`Itr` and :class:`Etr`, and carries out
the actions they return, plain tuples for speed:

* ``(SEND_RAW, rloc, datagram)``: a complete outer IPv4+UDP+LISP packet, to be
  sent on a raw IP socket with ``IP_HDRINCL`` towards the RLOC ``rloc`` (str);
* ``(WRITE_TUN, packet)``: an IPv4 packet for the kernel on the EID side;
* ``(RESOLVE, eid)``: a map-cache miss for ``eid`` (int): call
  ``XtrControl.request(eid, now)``; feed every ``(eid, entry)`` it resolves (or
  gives up on) back through ``on_resolved``.

Buffers in actions may be slices of the buffer passed in (memoryviews if a
memoryview was given): carry the actions out before reusing that buffer.
See ``docs/dataplane.md`` for the design choices (TTL, nonce, MTU, queues).
"""

from __future__ import annotations

import os
import struct

from testbed.lisp.prefixes import mask, parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.lisp.pending import PendingQueues
from testbed.wire.constants import (ENCAP_OVERHEAD, IPV4_HEADER, LISP_DATA_PORT, LISP_FLAG_C, LISP_FLAG_KK,
                                    LISP_FLAG_N, LISP_HEADER)
from testbed.wire.ipv4 import PROTO_ICMP, PROTO_UDP, checksum16

SEND_RAW = 1
"""Action ``(SEND_RAW, rloc: str, datagram: bytes)``: send a full outer IPv4 packet (IP_HDRINCL)."""
WRITE_TUN = 2
"""Action ``(WRITE_TUN, packet)``: write an inner IPv4 packet to the TUN device."""
RESOLVE = 3
"""Action ``(RESOLVE, eid: int)``: ask the control plane to resolve ``eid``."""

__all__ = ["SEND_RAW", "WRITE_TUN", "RESOLVE", "Encapsulator", "Itr", "Etr", "PendingQueues", "flow_hash",
           "sum16", "ip_checksum_from", "icmp_frag_needed"]

PROTO_TCP = 6
_PORTS_PROTOS = frozenset((PROTO_TCP, PROTO_UDP, 132))  # TCP, UDP, SCTP: ports in the first 4 bytes
# outer IPv4 (no options) + UDP + LISP data header, in one go (36 bytes)
_OUTER = struct.Struct("!BBHHHBBHIIHHHHII")
_INNER_FIELDS = struct.Struct("!BBHHHBBHII")  # vihl tos total id frag ttl proto cksum src dst
_PORTS = struct.Struct("!I")
_U16 = struct.Struct("!H")
_ICMP_HDR = struct.Struct("!BBHHH")


def flow_hash(src: int, dst: int, proto: int, ports: int) -> int:
    """Return a non-negative 31-bit hash of a flow (deterministic across runs).

    ``ports`` is the first 32-bit word of the transport header (sport << 16 | dport),
    or 0 for protocols without ports and for IP fragments.
    """
    return hash((src, dst, proto, ports)) & 0x7FFFFFFF


def sum16(data: bytes | bytearray | memoryview) -> int:
    """Return the ones-complement sum of ``data`` modulo 0xFFFF (odd length zero-padded).

    2**16 = 1 (mod 0xFFFF), so the big-endian integer of the bytes is congruent to
    the sum of its 16-bit words; the whole sum is one C-level operation. A final
    checksum over nonzero data is ``(0xFFFF - r) % 0xFFFF`` for IP and
    ``0xFFFF - r`` for UDP (which transmits a zero checksum as 0xFFFF).
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def ip_checksum_from(r: int) -> int:
    """Return the IPv4 header checksum whose words sum to ``r`` (mod 0xFFFF), as checksum16 would."""
    return (0xFFFF - r % 0xFFFF) % 0xFFFF


class Encapsulator:
    """Builds outer IPv4+UDP+LISP headers from one RLOC: nonces, checksums, per-RLOC constants."""

    __slots__ = ("own_rloc", "own_int", "outer_mtu", "_rlocs", "_nonce", "_step")

    def __init__(self, own_rloc: str, outer_mtu: int = 1500, seed: bytes | None = None) -> None:
        self.own_rloc = own_rloc
        self.own_int = parse_prefix(own_rloc + "/32")[0]
        if not ENCAP_OVERHEAD + 68 <= outer_mtu <= 0xFFFF:
            raise ValueError(f"outer MTU {outer_mtu} out of range")
        self.outer_mtu = outer_mtu
        self._rlocs: dict[str, tuple[int, int]] = {}
        seed = seed if seed is not None else os.urandom(6)
        self._nonce = int.from_bytes(seed[:3], "big")
        self._step = int.from_bytes(seed[3:6], "big") | 1  # odd: the sequence has period 2**24

    def _rloc(self, rloc: str) -> tuple[int, int]:
        """Return (RLOC int, constant part of the outer IP checksum) for ``rloc``, cached."""
        got = self._rlocs.get(rloc)
        if got is None:
            dst = parse_prefix(rloc + "/32")[0]
            if len(self._rlocs) >= 4096:
                self._rlocs.clear()
            got = self._rlocs[rloc] = (dst, (0x4500 + PROTO_UDP + self.own_int + dst) % 0xFFFF)
        return got

    def header(self, rloc: str, payload_len: int, sport: int, tos: int = 0, ttl: int = 64,
               flags: int = LISP_FLAG_N) -> bytes:
        """Return the 36 outer bytes for a LISP payload of ``payload_len`` bytes to ``rloc``.

        The nonce is a Weyl sequence (random start, random odd step) mod 2**24.
        Outer IP ID 0 and DF clear: the kernel fills the ID of an IP_HDRINCL packet.
        """
        dst, const = self._rloc(rloc)
        total = ENCAP_OVERHEAD + payload_len
        nonce = self._nonce = (self._nonce + self._step) & 0xFFFFFF
        r = (const + tos + total + (ttl << 8)) % 0xFFFF
        return _OUTER.pack(0x45, tos, total, 0, 0, ttl, PROTO_UDP, (0xFFFF - r) % 0xFFFF, self.own_int, dst,
                           sport, LISP_DATA_PORT, total - IPV4_HEADER, 0, (flags << 24) | nonce, 0)


def _fragment(pkt: bytes, ihl: int, total: int, max_len: int) -> list[bytes]:
    """Split IPv4 packet ``pkt`` into fragments of at most ``max_len`` bytes (RFC 791).

    Non-first fragments carry only the options whose copied flag is set.
    """
    header = pkt[:ihl]
    options = header[IPV4_HEADER:]
    later_opts = bytearray()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        size = options[i + 1] if i + 1 < len(options) else 0
        if size < 2:
            break
        if kind & 0x80:
            later_opts += options[i:i + size]
        i += size
    later_opts += b"\0" * (-len(later_opts) % 4)
    ident, frag_word = struct.unpack_from("!HH", pkt, 4)
    base_off, flags = frag_word & 0x1FFF, frag_word & 0x6000  # keep DF (clear here) and an inherited MF
    frags = []
    pos = ihl
    first = True
    while pos < total:
        hdr = bytearray(header if first else header[:IPV4_HEADER] + later_opts)
        hlen = len(hdr)
        step = (max_len - hlen) & ~7
        end = min(pos + step, total)
        hdr[0] = 0x40 | (hlen >> 2)
        more = flags if end == total else flags | 0x2000
        struct.pack_into("!HHH", hdr, 2, hlen + end - pos, ident, (base_off + (pos - ihl) // 8) | more)
        hdr[10:12] = b"\0\0"
        _U16.pack_into(hdr, 10, checksum16(hdr))
        frags.append(bytes(hdr) + pkt[pos:end])
        pos, first = end, False
    return frags


def icmp_frag_needed(pkt: bytes, ihl: int, mtu: int, src: bytes) -> bytes:
    """Return an ICMP Destination Unreachable / Fragmentation Needed (type 3 code 4) about ``pkt``.

    It goes back to ``pkt``'s source from ``src``, quoting the header and 8 bytes of data.
    """
    quote = bytes(pkt[:ihl + 8])
    icmp = bytearray(_ICMP_HDR.pack(3, 4, 0, 0, mtu)) + quote
    struct.pack_into("!H", icmp, 2, checksum16(icmp))
    total = IPV4_HEADER + len(icmp)
    ip = bytearray(_INNER_FIELDS.pack(0x45, 0, total, 0, 0, 64, PROTO_ICMP, 0,
                                      int.from_bytes(src, "big"), int.from_bytes(pkt[12:16], "big")))
    struct.pack_into("!H", ip, 10, checksum16(ip))
    return bytes(ip) + bytes(icmp)


class Itr:
    """Ingress tunnel router: encapsulates packets from the TUN device (RFC 9300).

    Outer header: source ``own_rloc``, destination ``entry.choose(flow_hash)``,
    UDP source port ``0xC000 | flow_hash & 0x3FFF``, destination 4341, checksum 0,
    TTL copied from the inner packet (at least 1), TOS byte copied; LISP header with
    the N bit and a nonce. Larger than ``outer_mtu`` once encapsulated: RFC 9300
    section 7.1 (stateless): DF set -> drop and ICMP Fragmentation Needed with
    MTU ``outer_mtu - 36`` written to the TUN; DF clear -> the inner packet is
    fragmented so that each encapsulated fragment fits.
    """

    def __init__(self, own_rloc: str, map_cache: MapCache, *, outer_mtu: int = 1500, queue_limit: int = 64,
                 max_pending: int = 1024, pending_timeout: float = 5.0, icmp_src: str | None = None,
                 icmp_rate: float = 100.0, encap: Encapsulator | None = None) -> None:
        self.map_cache = map_cache
        self.encap = encap if encap is not None else Encapsulator(own_rloc, outer_mtu)
        self.counters: dict[str, int] = dict.fromkeys((
            "encapsulated", "cache-hit", "cache-miss", "flushed", "negative", "no-rloc", "not-ipv4", "bad-packet",
            "too-big-df", "icmp-sent", "icmp-rate-limited", "fragmented", "fragments"), 0)
        self.pending = PendingQueues(self.counters, queue_limit, max_pending, pending_timeout)
        self.icmp_src = None if icmp_src is None else parse_prefix(icmp_src + "/32")[0].to_bytes(4, "big")
        self.icmp_rate = icmp_rate
        self._icmp_tokens, self._icmp_time = icmp_rate, 0.0

    def on_tun_packet(self, pkt: bytes | memoryview, now: float) -> list[tuple]:
        """Handle one packet read from the TUN device; return the actions."""
        n = len(pkt)
        if n < IPV4_HEADER:
            self.counters["bad-packet"] += 1
            return []
        vihl, tos, total, _id, frag, ttl, proto, _ck, src, dst = _INNER_FIELDS.unpack_from(pkt, 0)
        if vihl >> 4 != 4:
            self.counters["not-ipv4"] += 1
            return []
        ihl = (vihl & 0x0F) << 2
        if ihl < IPV4_HEADER or total < ihl or total > n:
            self.counters["bad-packet"] += 1
            return []
        if total < n:
            pkt = pkt[:total]
        entry = self.map_cache.lookup(dst, now)
        if entry is None:
            self.counters["cache-miss"] += 1
            if self.pending.add(dst, bytes(pkt), now):
                return [(RESOLVE, dst)]
            return []
        self.counters["cache-hit"] += 1
        return self._forward(entry, pkt, tos, total, frag, ttl, proto, src, dst, ihl, now)

    def _forward(self, entry: MapEntry, pkt: bytes, tos: int, total: int, frag: int, ttl: int, proto: int,
                 src: int, dst: int, ihl: int, now: float) -> list[tuple]:
        """Encapsulate ``pkt`` (already parsed) along ``entry``."""
        if entry.negative:
            self.counters["negative"] += 1
            return []
        if proto in _PORTS_PROTOS and not frag & 0x3FFF and total >= ihl + 4:
            h = hash((src, dst, proto, _PORTS.unpack_from(pkt, ihl)[0])) & 0x7FFFFFFF
        else:
            h = hash((src, dst, proto, 0)) & 0x7FFFFFFF
        rloc = entry.choose(h)
        if rloc is None:
            self.counters["no-rloc"] += 1
            return []
        encap = self.encap
        if total + ENCAP_OVERHEAD > encap.outer_mtu:
            return self._too_big(pkt, rloc, h, tos, total, frag, ttl, proto, ihl, now)
        self.counters["encapsulated"] += 1
        return [(SEND_RAW, rloc, encap.header(rloc, total, 0xC000 | (h & 0x3FFF), tos, ttl or 1) + pkt)]

    def _too_big(self, pkt: bytes, rloc: str, h: int, tos: int, total: int, frag: int, ttl: int, proto: int,
                 ihl: int, now: float) -> list[tuple]:
        """RFC 9300 section 7.1 for a packet that would exceed the outer MTU once encapsulated."""
        inner_mtu = self.encap.outer_mtu - ENCAP_OVERHEAD
        if frag & 0x4000:
            self.counters["too-big-df"] += 1
            is_error = proto == PROTO_ICMP and total >= ihl + 1 and pkt[ihl] in (3, 4, 5, 11, 12)
            if is_error or frag & 0x1FFF:  # RFC 1122: no ICMP about ICMP errors or non-first fragments
                return []
            self._icmp_tokens = min(self.icmp_rate, self._icmp_tokens + (now - self._icmp_time) * self.icmp_rate)
            self._icmp_time = now
            if self._icmp_tokens < 1.0:
                self.counters["icmp-rate-limited"] += 1
                return []
            self._icmp_tokens -= 1.0
            self.counters["icmp-sent"] += 1
            src = self.icmp_src if self.icmp_src is not None else bytes(pkt[16:20])
            return [(WRITE_TUN, icmp_frag_needed(pkt, ihl, inner_mtu, src))]
        frags = _fragment(bytes(pkt), ihl, total, inner_mtu)
        self.counters["fragmented"] += 1
        self.counters["fragments"] += len(frags)
        self.counters["encapsulated"] += len(frags)
        sport = 0xC000 | (h & 0x3FFF)
        return [(SEND_RAW, rloc, self.encap.header(rloc, len(f), sport, tos, ttl or 1) + f) for f in frags]

    def on_resolved(self, eid: int, entry: MapEntry | None, now: float) -> list[tuple]:
        """Flush the packets queued for ``eid`` (and for other pending EIDs ``entry`` covers).

        With no entry or a negative one, the queued packets are dropped ('unresolved').
        """
        actions: list[tuple] = []
        for _eid, pkt in self.pending.release(eid, entry):
            vihl, tos, total, _id, frag, ttl, proto, _ck, src, dst = _INNER_FIELDS.unpack_from(pkt, 0)
            self.counters["flushed"] += 1
            actions += self._forward(entry, pkt, tos, total, frag, ttl, proto, src, dst, (vihl & 0x0F) << 2, now)
        return actions

    def expire(self, now: float) -> int:
        """Drop queues waiting too long for a resolution; return how many packets were dropped."""
        return self.pending.expire(now)


class Etr:
    """Egress tunnel router: decapsulates LISP packets received on UDP 4341.

    C bit clear: the inner IPv4 packet must be well formed and addressed inside one
    of ``eid_prefixes``; it is returned for the TUN unchanged, except that an
    ``outer_ttl`` lower than the inner TTL is copied in (RFC 9300 section 5.3).
    C bit set: the CoreCast message goes to ``corecast`` (a CoreCastEtr) if any.
    """

    def __init__(self, eid_prefixes: list[str], corecast: object | None = None) -> None:
        self.prefixes = tuple((net, mask(plen)) for net, plen in map(parse_prefix, eid_prefixes))
        self.corecast = corecast
        self.multicast: object | None = None
        """A MulticastEtr (RFC 8378, testbed/lisp/multicast_etr.py) for inner multicast destinations, if any."""
        self.counters: dict[str, int] = dict.fromkeys((
            "decapsulated", "bad-lisp", "encrypted", "bad-inner", "foreign-eid", "ttl-copied", "corecast-in",
            "corecast-not-capable", "multicast-in"), 0)

    def owns(self, addr: int) -> bool:
        """True if ``addr`` is inside one of the ETR's EID prefixes."""
        for net, m in self.prefixes:
            if addr & m == net:
                return True
        return False

    def on_lisp_packet(self, payload: bytes | memoryview, outer_src_rloc: str, now: float,
                       outer_ttl: int | None = None) -> list[tuple]:
        """Handle the UDP payload of one LISP data packet from ``outer_src_rloc``; return the actions."""
        n = len(payload)
        if n < LISP_HEADER:
            self.counters["bad-lisp"] += 1
            return []
        flags = payload[0]
        if flags & LISP_FLAG_KK:
            self.counters["encrypted"] += 1
            return []
        if flags & LISP_FLAG_C:
            self.counters["corecast-in"] += 1
            if self.corecast is None:
                self.counters["corecast-not-capable"] += 1
                return []
            return self.corecast.on_message(payload[LISP_HEADER:], outer_src_rloc, now)
        if n < LISP_HEADER + IPV4_HEADER:
            self.counters["bad-inner"] += 1
            return []
        vihl, _tos, total, _id, _frag, ttl, _p, _ck, src, dst = _INNER_FIELDS.unpack_from(payload, LISP_HEADER)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < IPV4_HEADER or total < ihl or total != n - LISP_HEADER:
            self.counters["bad-inner"] += 1
            return []
        if dst >> 28 == 0xE and self.multicast is not None:   # (S,G) traffic: signal-free multicast
            self.counters["multicast-in"] += 1
            return self.multicast.on_decap(payload[LISP_HEADER:], src, dst)
        for net, m in self.prefixes:
            if dst & m == net:
                break
        else:
            self.counters["foreign-eid"] += 1
            return []
        self.counters["decapsulated"] += 1
        if outer_ttl is not None and outer_ttl < ttl:
            self.counters["ttl-copied"] += 1
            return [(WRITE_TUN, _set_ttl(payload[LISP_HEADER:], outer_ttl))]
        return [(WRITE_TUN, payload[LISP_HEADER:])]


def _set_ttl(pkt: bytes | memoryview, ttl: int) -> bytes:
    """Return ``pkt`` with its TTL replaced and the header checksum updated (RFC 1624)."""
    out = bytearray(pkt)
    old_word = (out[8] << 8) | out[9]
    new_word = (ttl << 8) | out[9]
    out[8] = ttl
    ck = _U16.unpack_from(out, 10)[0]
    _U16.pack_into(out, 10, ip_checksum_from((~ck & 0xFFFF) + (~old_word & 0xFFFF) + new_word))  # ~(~HC + ~m + m')
    return bytes(out)
