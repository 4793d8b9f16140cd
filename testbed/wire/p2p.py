"""Messages of the mesh-pull P2P live-streaming overlay, version 1, fast codec (see docs/p2p.md).

Every message is one UDP datagram: an 8-byte common header, then the body.
```
 0                   1                   2                   3
 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
| Ver=1 | Type  |     Flags     |       Sender's AS number      |
|                           Stream ID                           |
```
| type | name | body (bytes) |
| --- | --- | --- |
| 1 | JOIN (peer to tracker) | EID (4), port (2), reserved (2) |
| 2 | PEERS (tracker to peer) | newest seq (4, 0xFFFFFFFF: none yet), count (2), reserved (2), count x entry (EID 4, port 2, AS 2) |
| 3 | LEAVE (peer to tracker and partners) | EID (4), port (2), reserved (2) |
| 4 | BUFFERMAP | base seq (4), bits (2), reserved (2), ceil(bits/8) bytes, MSB first: bit i = chunk base+i held |
| 5 | REQUEST | count (2), reserved (2), count x seq (4) |
| 6 | CHUNK | seq (4), reserved (4), source time (8, microseconds since the epoch), the chunk |

Decoders raise only :class:`~testbed.wire.errors.DecodeError` (reasons: ``truncated``,
``bad-version``, ``unknown-type``, ``bad-length``, ``too-many``). The scapy layers in
:mod:`testbed.layers.p2p` build the same bytes (tested).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from testbed.wire.errors import DecodeError

VERSION = 1
JOIN, PEERS, LEAVE, BUFFERMAP, REQUEST, CHUNK = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {JOIN: "JOIN", PEERS: "PEERS", LEAVE: "LEAVE", BUFFERMAP: "BUFFERMAP", REQUEST: "REQUEST",
              CHUNK: "CHUNK"}
P2P_PORT = 4350
"""Default UDP port of a peer (ours, configurable)."""
TRACKER_PORT = 4351
"""Default UDP port of the tracker (ours, configurable)."""
NO_SEQ = 0xFFFFFFFF
"""``newest`` of a PEERS message sent before the first chunk."""

HEADER = 8
ENTRY = 8
CHUNK_HEADER = HEADER + 16
MAX_ENTRIES = 1024
"""Most peers a PEERS message lists (8 + 8 + 8 x 1024 bytes fits a UDP datagram)."""
MAX_BITS = 8192
"""Longest buffer map, in chunks."""
MAX_REQUEST = 1024
"""Most sequence numbers in one REQUEST."""

_HDR = struct.Struct("!BBHI")
_ADDR = struct.Struct("!BBHI4sHH")  # header + JOIN/LEAVE body
_PEERS = struct.Struct("!BBHIIHH")
_ENTRY = struct.Struct("!4sHH")
_BM = struct.Struct("!BBHIIHH")
_REQ = struct.Struct("!BBHIHH")
_CHUNK = struct.Struct("!BBHIIIQ")

Addr = tuple[str, int]
"""(EID dotted quad, UDP port): a peer's address."""


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message. ``body`` by type: JOIN/LEAVE ``Addr``; PEERS ``(newest, [(eid, port, asn), ...])``;
    BUFFERMAP ``(base, bits, bitmap bytes)``; REQUEST ``tuple of seqs``; CHUNK ``(seq, time_us, chunk)``."""

    mtype: int
    flags: int
    asn: int
    stream_id: int
    body: object


def _first(mtype: int) -> int:
    return (VERSION << 4) | mtype


def encode_join(asn: int, stream_id: int, eid: str, port: int, leave: bool = False, flags: int = 0) -> bytes:
    """JOIN (or LEAVE with ``leave``): 16 bytes."""
    return _ADDR.pack(_first(LEAVE if leave else JOIN), flags, asn, stream_id, socket.inet_aton(eid), port, 0)


def encode_peers(asn: int, stream_id: int, newest: int, entries: list[tuple[str, int, int]], flags: int = 0) -> bytes:
    """PEERS: 16 + 8 x len(entries) bytes; ValueError over :data:`MAX_ENTRIES`."""
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} entries")
    parts = [_PEERS.pack(_first(PEERS), flags, asn, stream_id, newest & 0xFFFFFFFF, len(entries), 0)]
    parts += [_ENTRY.pack(socket.inet_aton(e), p, a) for e, p, a in entries]
    return b"".join(parts)


def encode_buffermap(asn: int, stream_id: int, base: int, bits: int, bitmap: bytes, flags: int = 0) -> bytes:
    """BUFFERMAP: 16 + ceil(bits/8) bytes; ``bitmap`` must have exactly that many bytes."""
    if not 0 <= bits <= MAX_BITS or len(bitmap) != (bits + 7) // 8:
        raise ValueError("bitmap length does not match bits")
    return _BM.pack(_first(BUFFERMAP), flags, asn, stream_id, base & 0xFFFFFFFF, bits, 0) + bytes(bitmap)


def encode_request(asn: int, stream_id: int, seqs: list[int], flags: int = 0) -> bytes:
    """REQUEST: 12 + 4 x len(seqs) bytes."""
    if len(seqs) > MAX_REQUEST:
        raise ValueError(f"at most {MAX_REQUEST} sequence numbers")
    return _REQ.pack(_first(REQUEST), flags, asn, stream_id, len(seqs), 0) + struct.pack(f"!{len(seqs)}I", *seqs)


def encode_chunk_header(asn: int, stream_id: int, seq: int, time_us: int, flags: int = 0) -> bytes:
    """The 24 bytes before the chunk of a CHUNK message."""
    return _CHUNK.pack(_first(CHUNK), flags, asn, stream_id, seq & 0xFFFFFFFF, 0, time_us)


def encode_chunk(asn: int, stream_id: int, seq: int, time_us: int, chunk: bytes, flags: int = 0) -> bytes:
    """CHUNK: 24 + len(chunk) bytes."""
    return encode_chunk_header(asn, stream_id, seq, time_us, flags) + chunk


def bitmap_of(held: set[int] | dict, base: int, bits: int) -> bytes:
    """The bitmap bytes of a buffer map: bit i (MSB first) set when ``base + i`` is in ``held``."""
    value = 0
    for seq in held:
        i = seq - base
        if 0 <= i < bits:
            value |= 1 << (bits - 1 - i)
    nbytes = (bits + 7) // 8
    return (value << (nbytes * 8 - bits)).to_bytes(nbytes, "big") if nbytes else b""


def bitmap_seqs(base: int, bits: int, bitmap: bytes) -> list[int]:
    """The sequence numbers a buffer map says are held (inverse of :func:`bitmap_of`)."""
    if not bits:
        return []
    value = int.from_bytes(bitmap, "big") >> (len(bitmap) * 8 - bits)
    out = []
    i = bits - 1
    while value:
        if value & 1:
            out.append(base + i)
        value >>= 1
        i -= 1
    out.reverse()
    return out


def decode(buf: bytes | bytearray | memoryview) -> Message:
    """Decode one P2P message; raise :class:`DecodeError` on anything malformed."""
    n = len(buf)
    if n < HEADER:
        raise DecodeError("truncated", f"P2P header needs {HEADER} bytes, got {n}")
    first, flags, asn, sid = _HDR.unpack_from(buf, 0)
    if first >> 4 != VERSION:
        raise DecodeError("bad-version", f"P2P version {first >> 4}")
    mtype = first & 0x0F
    if mtype in (JOIN, LEAVE):
        if n != 16:
            raise DecodeError("bad-length", f"{TYPE_NAMES[mtype]} of {n} bytes, expected 16")
        _, _, _, _, eid, port, _ = _ADDR.unpack_from(buf, 0)
        return Message(mtype, flags, asn, sid, (socket.inet_ntoa(eid), port))
    if mtype == PEERS:
        if n < 16:
            raise DecodeError("truncated", "PEERS needs 16 bytes")
        _, _, _, _, newest, count, _ = _PEERS.unpack_from(buf, 0)
        if count > MAX_ENTRIES:
            raise DecodeError("too-many", f"PEERS lists {count} entries")
        if n != 16 + ENTRY * count:
            raise DecodeError("bad-length", f"PEERS of {n} bytes for {count} entries")
        entries = [(socket.inet_ntoa(e), p, a) for e, p, a in _ENTRY.iter_unpack(bytes(buf[16:]))]
        return Message(mtype, flags, asn, sid, (newest, entries))
    if mtype == BUFFERMAP:
        if n < 16:
            raise DecodeError("truncated", "BUFFERMAP needs 16 bytes")
        _, _, _, _, base, bits, _ = _BM.unpack_from(buf, 0)
        if bits > MAX_BITS:
            raise DecodeError("too-many", f"BUFFERMAP of {bits} bits")
        if n != 16 + (bits + 7) // 8:
            raise DecodeError("bad-length", f"BUFFERMAP of {n} bytes for {bits} bits")
        return Message(mtype, flags, asn, sid, (base, bits, bytes(buf[16:])))
    if mtype == REQUEST:
        if n < 12:
            raise DecodeError("truncated", "REQUEST needs 12 bytes")
        _, _, _, _, count, _ = _REQ.unpack_from(buf, 0)
        if count > MAX_REQUEST:
            raise DecodeError("too-many", f"REQUEST of {count} seqs")
        if n != 12 + 4 * count:
            raise DecodeError("bad-length", f"REQUEST of {n} bytes for {count} seqs")
        return Message(mtype, flags, asn, sid, struct.unpack_from(f"!{count}I", buf, 12))
    if mtype == CHUNK:
        if n < CHUNK_HEADER:
            raise DecodeError("truncated", f"CHUNK needs {CHUNK_HEADER} bytes")
        _, _, _, _, seq, _, time_us = _CHUNK.unpack_from(buf, 0)
        return Message(mtype, flags, asn, sid, (seq, time_us, bytes(buf[CHUNK_HEADER:])))
    raise DecodeError("unknown-type", f"P2P type {mtype}")
