"""IGMP membership reports (RFC 3376 section 4.2 for IGMPv3; RFC 2236 for v2), sans-I/O codec.

An ETR learns its LAN's receivers from what a raw IGMP socket reads: a whole IPv4
packet (header included). :func:`parse_igmp_packet` returns the reporting host and
the group records; :func:`build_v3_report` makes reports (tests, the bench).

IGMPv3 report (type 0x22)::

    | Type=0x22 | Reserved | Checksum | Reserved (16) | Number of Group Records (16) |
    then per record: | Record Type | Aux Data Len (words) | Number of Sources (16) |
                     | Multicast Address | Source Address [i] ... | Auxiliary Data |

Record types (RFC 3376 section 4.2.12): 1 MODE_IS_INCLUDE, 2 MODE_IS_EXCLUDE,
3 CHANGE_TO_INCLUDE_MODE, 4 CHANGE_TO_EXCLUDE_MODE, 5 ALLOW_NEW_SOURCES,
6 BLOCK_OLD_SOURCES. IGMPv1/v2 reports (0x12, 0x16) and v2 leaves (0x17) carry one
group and no sources: returned as a record with type ``V2_REPORT`` / ``V2_LEAVE``.
Queries (0x11) return no records. Errors: only :class:`DecodeError`.
"""

from __future__ import annotations

import socket
import struct

from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import checksum16

IS_IN, IS_EX, TO_IN, TO_EX, ALLOW, BLOCK = 1, 2, 3, 4, 5, 6
V2_REPORT, V2_LEAVE = 0x16, 0x17
TYPE_QUERY, TYPE_V1_REPORT, TYPE_V3_REPORT = 0x11, 0x12, 0x22
PROTO_IGMP = 2
_V3 = struct.Struct("!BBHHH")
_REC = struct.Struct("!BBH4s")

GroupRecord = tuple[int, str, tuple[str, ...]]
"""(record type, group dotted, sources dotted)."""


def parse_igmp(msg: bytes | memoryview) -> list[GroupRecord]:
    """Parse one IGMP message (after the IP header); return its group records. DecodeError on bad input."""
    n = len(msg)
    if n < 8:
        raise DecodeError("truncated", "IGMP header")
    if checksum16(bytes(msg)) != 0:
        raise DecodeError("bad-checksum", "IGMP")
    kind = msg[0]
    if kind in (TYPE_V1_REPORT, V2_REPORT, V2_LEAVE):
        return [(V2_REPORT if kind != V2_LEAVE else V2_LEAVE, socket.inet_ntoa(bytes(msg[4:8])), ())]
    if kind == TYPE_QUERY:
        return []
    if kind != TYPE_V3_REPORT:
        raise DecodeError("igmp-type", f"type {kind:#x}")
    count = _V3.unpack_from(msg, 0)[4]
    off, out = 8, []
    for _ in range(count):
        if off + _REC.size > n:
            raise DecodeError("truncated", "IGMPv3 group record")
        rtype, aux, nsrc, group = _REC.unpack_from(msg, off)
        off += _REC.size
        end = off + 4 * nsrc
        if end + 4 * aux > n:
            raise DecodeError("truncated", "IGMPv3 sources")
        if not 1 <= rtype <= 6:
            raise DecodeError("igmp-record-type", f"record type {rtype}")
        sources = tuple(socket.inet_ntoa(bytes(msg[i:i + 4])) for i in range(off, end, 4))
        out.append((rtype, socket.inet_ntoa(group), sources))
        off = end + 4 * aux
    return out


def parse_igmp_packet(pkt: bytes | memoryview) -> tuple[str, list[GroupRecord]]:
    """Parse an IPv4 packet carrying IGMP (what a raw IGMP socket reads); return (host address, records)."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        raise DecodeError("bad-ip", "not IPv4")
    ihl = (pkt[0] & 0x0F) * 4
    total = (pkt[2] << 8) | pkt[3]
    if ihl < 20 or total < ihl + 8 or total > len(pkt) or pkt[9] != PROTO_IGMP:
        raise DecodeError("bad-ip", "length or protocol")
    return socket.inet_ntoa(bytes(pkt[12:16])), parse_igmp(pkt[ihl:total])


def build_v3_report(records: list[GroupRecord]) -> bytes:
    """Return an IGMPv3 report (IGMP bytes only, checksum filled) with ``records``."""
    body = b"".join(_REC.pack(rtype, 0, len(srcs), socket.inet_aton(group)) +
                    b"".join(socket.inet_aton(s) for s in srcs) for rtype, group, srcs in records)
    msg = bytearray(_V3.pack(TYPE_V3_REPORT, 0, 0, 0, len(records)) + body)
    struct.pack_into("!H", msg, 2, checksum16(bytes(msg)))
    return bytes(msg)
