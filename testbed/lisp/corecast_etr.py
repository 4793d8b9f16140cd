"""CoreCast in the ETR, sans-I/O: turn REFs back into the unicast packets they stand for.

A LISP data packet with the C bit carries a CoreCast message (DESIGN section 3);
:class:`testbed.lisp.dataplane.Etr` hands it here with the outer source RLOC.

* DATA: hash the chunk and cache it as the current chunk of (ITR RLOC, stream),
  replacing the previous one: one chunk per (ITR, stream), memory stays flat.
* REF: if the destination EID is one of ours and the hash equals the cached chunk
  of (ITR, stream), return ``(WRITE_TUN, IP(src=Source EID, dst=Destination EID,
  TTL 64)/UDP(sport, dport, checksum)/chunk)``: byte for byte what
  ``testbed.wire.ipv4.build_ipv4_udp`` builds, i.e. what the source's unicast
  datagram looks like when the unicast ETR decapsulates it.
"""

from __future__ import annotations

import struct

from testbed.lisp.dataplane import WRITE_TUN, sum16
from testbed.lisp.lpm import mask, parse_prefix
from testbed.wire.constants import CORECAST_HEADER, CORECAST_REF, IPV4_HEADER, UDP_HEADER
from testbed.wire.corecast import TYPE_DATA, TYPE_REF, VERSION, chunk_hash, error_reason
from testbed.wire.ipv4 import PROTO_UDP

# testbed.wire.corecast's REF layout with the EIDs as integers (packed back with "I": same bytes)
_REF = struct.Struct("!BBHII8sIIHH")
_DATA_HDR = struct.Struct("!BBHI")
_IPUDP = struct.Struct("!BBHHHBBHIIHHHH")
_REF_FIRST = (VERSION << 4) | TYPE_REF
_DATA_FIRST = (VERSION << 4) | TYPE_DATA
_IP_CONST = 0x4500 + (64 << 8) + PROTO_UDP  # version/IHL, TTL 64 / UDP: the fixed IP header words


class _Chunk:
    """The current chunk of one (ITR, stream): its hash, bytes and checksum partial sum."""

    __slots__ = ("digest", "chunk", "csum", "seq")

    def __init__(self, digest: bytes, chunk: bytes, csum: int, seq: int) -> None:
        self.digest, self.chunk, self.csum, self.seq = digest, chunk, csum, seq


def unicast_packet(src: int, dst: int, sport: int, dport: int, chunk: bytes, chunk_sum: int) -> bytes:
    """Return IP(src, dst, TTL 64, ID 0)/UDP(sport, dport)/chunk with both checksums.

    ``chunk_sum`` is :func:`testbed.lisp.dataplane.sum16` of ``chunk`` (computed once per chunk).
    """
    udp_len = UDP_HEADER + len(chunk)
    total = IPV4_HEADER + udp_len
    ip_r = (_IP_CONST + total + src + dst) % 0xFFFF
    udp_r = (src + dst + PROTO_UDP + udp_len + udp_len + sport + dport + chunk_sum) % 0xFFFF
    return _IPUDP.pack(0x45, 0, total, 0, 0, 64, PROTO_UDP, (0xFFFF - ip_r) % 0xFFFF, src, dst,
                       sport, dport, udp_len, 0xFFFF - udp_r) + chunk


class CoreCastEtr:
    """The CoreCast half of a capable ETR (see the module docstring).

    ``max_streams`` bounds the (ITR, stream) cache; a new one beyond it evicts the
    least recently created ('stream-evicted').
    """

    def __init__(self, own_eid_prefixes: list[str], *, max_streams: int = 4096) -> None:
        self.prefixes = tuple((net, mask(plen)) for net, plen in map(parse_prefix, own_eid_prefixes))
        self.max_streams = max_streams
        self.counters: dict[str, int] = dict.fromkeys((
            "data-in", "ref-in", "delivered", "no-chunk", "hash-mismatch", "foreign-eid", "stream-evicted",
            "decode-truncated", "decode-bad-version", "decode-bad-length", "decode-unknown-type",
            "chunk-too-big"), 0)
        self._streams: dict[tuple[str, int], _Chunk] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def on_message(self, msg: bytes | memoryview, itr_rloc: str, now: float) -> list[tuple]:
        """Handle one CoreCast message (the LISP payload after the header) from ``itr_rloc``."""
        n = len(msg)
        if n == CORECAST_REF and msg[0] == _REF_FIRST:
            return self._ref(msg, itr_rloc)
        if n >= CORECAST_HEADER and msg[0] == _DATA_FIRST:
            return self._data(msg, itr_rloc)
        self._bad(msg)
        return []

    def _ref(self, msg: bytes | memoryview, itr_rloc: str) -> list[tuple]:
        """A REF: rebuild the unicast packet if we hold its chunk."""
        counters = self.counters
        counters["ref-in"] += 1
        _f, _fl, _r, stream, _seq, digest, src, dst, sport, dport = _REF.unpack_from(msg, 0)
        for net, m in self.prefixes:
            if dst & m == net:
                break
        else:
            counters["foreign-eid"] += 1
            return []
        cur = self._streams.get((itr_rloc, stream))
        if cur is None:
            counters["no-chunk"] += 1
            return []
        if cur.digest != digest:
            counters["hash-mismatch"] += 1
            return []
        counters["delivered"] += 1
        return [(WRITE_TUN, unicast_packet(src, dst, sport, dport, cur.chunk, cur.csum))]

    def _data(self, msg: bytes | memoryview, itr_rloc: str) -> list[tuple]:
        """A DATA: cache its chunk as the current one of (ITR, stream)."""
        self.counters["data-in"] += 1
        chunk = bytes(msg[CORECAST_HEADER:])
        if len(chunk) > 0xFFFF - IPV4_HEADER - UDP_HEADER:
            self.counters["chunk-too-big"] += 1
            return []
        _f, _fl, _r, stream = _DATA_HDR.unpack_from(msg, 0)
        seq = int.from_bytes(msg[8:12], "big")
        key = (itr_rloc, stream)
        streams = self._streams
        if key not in streams and len(streams) >= self.max_streams:
            del streams[next(iter(streams))]
            self.counters["stream-evicted"] += 1
        streams[key] = _Chunk(chunk_hash(chunk), chunk, sum16(chunk), seq)
        return []

    def _bad(self, msg: bytes | memoryview) -> None:
        """Count a malformed message by its decode reason."""
        key = "decode-" + error_reason(msg)
        self.counters[key] = self.counters.get(key, 0) + 1
