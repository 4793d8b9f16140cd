"""IPv4 and UDP headers (no options), fast build and parse helpers.

Used by the ETR to rebuild unicast packets from CoreCast REFs, by the ITR to
build outer headers, and by the ECM codec for its inner header.
"""

from __future__ import annotations

import struct

from testbed.wire.constants import IPV4_HEADER, UDP_HEADER
from testbed.wire.errors import DecodeError

PROTO_UDP = 17
PROTO_ICMP = 1
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_IPUDP = struct.Struct("!BBHHHBBH4s4sHHHH")


def checksum16(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Return the Internet checksum (RFC 1071) of ``data``, folding in ``initial``."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_checksum(src: bytes, dst: bytes, udp_segment: bytes | bytearray | memoryview) -> int:
    """Return the UDP checksum over the IPv4 pseudo-header and ``udp_segment`` (checksum field zero)."""
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, PROTO_UDP, len(udp_segment))
    value = checksum16(pseudo + bytes(udp_segment))
    return value or 0xFFFF


def build_ipv4_udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes | bytearray | memoryview,
                   ttl: int = 64, tos: int = 0, ident: int = 0, udp_checksum_on: bool = True) -> bytes:
    """Return a complete IPv4/UDP packet with correct lengths and checksums."""
    udp_len = UDP_HEADER + len(payload)
    total = IPV4_HEADER + udp_len
    if total > 0xFFFF:
        raise ValueError("IPv4 packet too long")
    ip = bytearray(_IP.pack(0x45, tos, total, ident, 0, ttl, PROTO_UDP, 0, src, dst))
    struct.pack_into("!H", ip, 10, checksum16(ip))
    udp = bytearray(_UDP.pack(sport, dport, udp_len, 0))
    if udp_checksum_on:
        struct.pack_into("!H", udp, 6, udp_checksum(src, dst, bytes(udp) + bytes(payload)))
    return bytes(ip) + bytes(udp) + bytes(payload)


def pack_ipv4_udp_into(buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, sport: int, dport: int,
                       payload_len: int, ttl: int = 64, tos: int = 0) -> None:
    """Write a 28-byte IPv4+UDP header (IP checksum set, UDP checksum zero) into ``buf`` at ``offset``.

    A zero UDP checksum is what RFC 9300 section 5.3 allows for LISP's outer header.
    """
    total = IPV4_HEADER + UDP_HEADER + payload_len
    _IPUDP.pack_into(buf, offset, 0x45, tos, total, 0, 0, ttl, PROTO_UDP, 0, src, dst,
                     sport, dport, UDP_HEADER + payload_len, 0)
    struct.pack_into("!H", buf, offset + 10, checksum16(memoryview(buf)[offset:offset + IPV4_HEADER]))


def parse_ipv4(buf: bytes | bytearray | memoryview) -> tuple[int, bytes, bytes, int, int]:
    """Return (protocol, src, dst, header length, total length) of an IPv4 packet; DecodeError otherwise."""
    if len(buf) < IPV4_HEADER:
        raise DecodeError("truncated", "IPv4 header needs 20 bytes")
    vihl, _tos, total, _id, _frag, _ttl, proto, _ck, src, dst = _IP.unpack_from(buf, 0)
    if vihl >> 4 != 4:
        raise DecodeError("bad-version", f"IP version {vihl >> 4}")
    ihl = (vihl & 0x0F) * 4
    if ihl < IPV4_HEADER or total < ihl or total > len(buf):
        raise DecodeError("bad-length", f"IPv4 ihl {ihl} total {total} buffer {len(buf)}")
    return proto, src, dst, ihl, total


def parse_ipv4_udp(buf: bytes | bytearray | memoryview) -> tuple[bytes, bytes, int, int, int, int]:
    """Return (src, dst, sport, dport, payload offset, payload end) of an IPv4/UDP packet."""
    proto, src, dst, ihl, total = parse_ipv4(buf)
    if proto != PROTO_UDP:
        raise DecodeError("not-udp", f"IP protocol {proto}")
    if total < ihl + UDP_HEADER:
        raise DecodeError("truncated", "UDP header")
    sport, dport, ulen, _ck = _UDP.unpack_from(buf, ihl)
    if ulen < UDP_HEADER or ihl + ulen > total:
        raise DecodeError("bad-length", f"UDP length {ulen}")
    return src, dst, sport, dport, ihl + UDP_HEADER, ihl + ulen
