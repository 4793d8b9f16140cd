"""CoreCast messages, version 1, fast codec.

Common header (12 bytes), then the body:
```
| Ver=1 | Type  |     Flags     |            Reserved           |
|                           Stream ID                           |
|                        Sequence Number                        |
```
* Type 1, DATA: the chunk follows.
* Type 2, REF: Chunk Hash (64), Source EID (32), Destination EID (32),
  Source Port (16), Destination Port (16); 32 bytes in all.
* Type 3, REF-LIST: Chunk Hash (64), ETR RLOC (32), Source EID (32), Source
  Port (16), Count (16), then Count entries of Destination EID (32) and
  Destination Port (16): 32 + 6 x Count bytes, 1 <= Count. Flag D (0x80, S to
  ITR only): send the stream's current DATA to the ETR before this list.
  A REF from S to its ITR with flag B (0x40) may be batched into a REF-LIST; flag L (0x20) marks
  the chunk's last REF, so the ITR can send the chunk's lists at once instead of on a timer.
* Type 4, REF-MAP (the compact form of a REF-LIST, :mod:`testbed.wire.refmap`): Chunk Hash (64), ETR RLOC
  (32), Source EID (32), Source Port (16), Destination Port (16), Base
  Destination EID (32), Length (16, bits), Count (16, bits set), then the
  bitmap, ceil(Length / 8) bytes: bit i (most significant bit of byte i // 8
  first) set means Destination EID Base + i is a destination. 40 +
  ceil(Length / 8) bytes; 1 <= Length, Count = the number of bits set >= 1, the
  bits after Length zero, Base + Length - 1 <= 255.255.255.255. Flags as REF-LIST.
  :func:`compact_ref_list` turns a REF-LIST into the REF-MAP naming the same
  destinations when that is shorter (one destination port, EIDs close together).

Chunk Hash = BLAKE2b with an 8-byte digest of the chunk.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from testbed.wire.constants import CORECAST_HEADER, CORECAST_REF
from testbed.wire.errors import DecodeError
from testbed.wire.refmap import (REF_MAP_HEADER, TYPE_REF_MAP, CoreCastRefMap, _MAP, check_ref_map,  # noqa: F401
                                 compact_ref_list, encode_ref_map, ref_map_capacity, ref_map_eids, ref_map_fault,
                                 ref_map_size)

VERSION = 1
TYPE_DATA = 1
TYPE_REF = 2
TYPE_REF_LIST = 3
FLAG_DATA_FIRST = 0x80  # REF-LIST from S to its ITR: send the current DATA to the ETR first
FLAG_BATCH = 0x40  # REF from S to its ITR: may wait in its ETR's REF-LIST (mode corecast-batch)
FLAG_LAST_REF = 0x20  # batchable REF from S to its ITR: the chunk's last REF; the ITR may close the lists now
REF_LIST_HEADER = 32
REF_LIST_ENTRY = 6

_COMMON = struct.Struct("!BBHII")
_REF = struct.Struct("!BBHII8s4s4sHH")
_LIST = struct.Struct("!BBHII8s4s4sHH")  # common header, hash, ETR RLOC, Source EID, Source Port, Count
_ENTRY = struct.Struct("!4sH")


def chunk_hash(chunk: bytes | bytearray | memoryview) -> bytes:
    """Return the 8-byte BLAKE2b digest CoreCast uses to name a chunk."""
    return hashlib.blake2b(chunk, digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class CoreCastData:
    """A DATA message: the content of one chunk of a stream."""

    stream_id: int
    seq: int
    chunk: bytes
    flags: int = 0

    def encode(self) -> bytes:
        """Return the wire bytes (12-byte header + chunk)."""
        return encode_data(self.stream_id, self.seq, self.chunk, self.flags)


@dataclass(frozen=True, slots=True)
class CoreCastRef:
    """A REF message: the hash of a chunk and the unicast flow it stands for."""

    stream_id: int
    seq: int
    chunk_hash: bytes
    src_eid: bytes  # 4 bytes, network order
    dst_eid: bytes  # 4 bytes, network order
    src_port: int
    dst_port: int
    flags: int = 0

    def encode(self) -> bytes:
        """Return the 32 wire bytes."""
        return encode_ref(self.stream_id, self.seq, self.chunk_hash, self.src_eid,
                          self.dst_eid, self.src_port, self.dst_port, self.flags)


def encode_data_header(stream_id: int, seq: int, flags: int = 0) -> bytes:
    """Return the 12-byte common header of a DATA message."""
    return _COMMON.pack((VERSION << 4) | TYPE_DATA, flags, 0, stream_id, seq)


def encode_data(stream_id: int, seq: int, chunk: bytes, flags: int = 0) -> bytes:
    """Return a DATA message carrying ``chunk``."""
    return encode_data_header(stream_id, seq, flags) + bytes(chunk)


def encode_ref(stream_id: int, seq: int, digest: bytes, src_eid: bytes, dst_eid: bytes,
               src_port: int, dst_port: int, flags: int = 0) -> bytes:
    """Return a 32-byte REF message."""
    return _REF.pack((VERSION << 4) | TYPE_REF, flags, 0, stream_id, seq,
                     digest, src_eid, dst_eid, src_port, dst_port)


def pack_ref_into(buf: bytearray | memoryview, offset: int, stream_id: int, seq: int, digest: bytes,
                  src_eid: bytes, dst_eid: bytes, src_port: int, dst_port: int, flags: int = 0) -> None:
    """Write a REF message into ``buf`` at ``offset`` (fast path, no allocation)."""
    _REF.pack_into(buf, offset, (VERSION << 4) | TYPE_REF, flags, 0, stream_id, seq,
                   digest, src_eid, dst_eid, src_port, dst_port)


def peek_type(buf: bytes | bytearray | memoryview) -> int:
    """Return the message type after checking length and version; raise DecodeError otherwise."""
    if len(buf) < CORECAST_HEADER:
        raise DecodeError("truncated", "CoreCast header needs 12 bytes")
    first = buf[0]
    if first >> 4 != VERSION:
        raise DecodeError("bad-version", f"CoreCast version {first >> 4}")
    mtype = first & 0x0F
    if mtype == TYPE_REF:
        if len(buf) != CORECAST_REF:
            raise DecodeError("bad-length", f"REF of {len(buf)} bytes, expected 32")
    elif mtype == TYPE_REF_LIST:
        check_ref_list(buf)
    elif mtype == TYPE_REF_MAP:
        check_ref_map(buf)
    elif mtype != TYPE_DATA:
        raise DecodeError("unknown-type", f"CoreCast type {mtype}")
    return mtype


def error_reason(buf: bytes | bytearray | memoryview) -> str:
    """The DecodeError reason of a message a fast path rejected (for its drop counters)."""
    try:
        peek_type(buf)
    except DecodeError as exc:
        return exc.reason
    return "unknown-type"


def unpack_ref(buf: bytes | bytearray | memoryview) -> tuple[int, int, int, bytes, bytes, bytes, int, int]:
    """Return (flags, stream_id, seq, hash, src_eid, dst_eid, src_port, dst_port) of a checked REF."""
    _, flags, _, stream_id, seq, digest, src, dst, sport, dport = _REF.unpack_from(buf, 0)
    return flags, stream_id, seq, digest, src, dst, sport, dport


def unpack_common(buf: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """Return (flags, stream_id, seq) of a checked message."""
    _, flags, _, stream_id, seq = _COMMON.unpack_from(buf, 0)
    return flags, stream_id, seq


def ref_list_capacity(outer_mtu: int = 1500) -> int:
    """Entries one REF-LIST may carry so that it fits one outer packet (ITR to ETR).

    ``(outer_mtu - 36 encapsulation - 32 list header) // 6``: 238 for 1,500.
    """
    return max(0, (outer_mtu - 36 - REF_LIST_HEADER) // REF_LIST_ENTRY)


def check_ref_list(buf: bytes | bytearray | memoryview) -> int:
    """Return the entry count of a REF-LIST after checking its length; raise DecodeError otherwise."""
    n = len(buf)
    if n < REF_LIST_HEADER:
        raise DecodeError("bad-length", f"REF-LIST of {n} bytes, header needs 32")
    count = (buf[30] << 8) | buf[31]
    if count == 0:
        raise DecodeError("bad-count", "REF-LIST with no entries")
    if n != REF_LIST_HEADER + REF_LIST_ENTRY * count:
        raise DecodeError("bad-length", f"REF-LIST of {n} bytes for {count} entries")
    return count


@dataclass(frozen=True, slots=True)
class CoreCastRefList:
    """A REF-LIST: one chunk's REFs for the clients behind one ETR, source named once.

    ``entries``: tuple of (Destination EID as 4 bytes, Destination Port).
    """

    stream_id: int
    seq: int
    chunk_hash: bytes
    etr_rloc: bytes  # 4 bytes; 0.0.0.0 if not named
    src_eid: bytes
    src_port: int
    entries: tuple[tuple[bytes, int], ...]
    flags: int = 0

    def encode(self) -> bytes:
        """Return the wire bytes (32 + 6 per entry)."""
        return encode_ref_list(self.stream_id, self.seq, self.chunk_hash, self.etr_rloc, self.src_eid,
                               self.src_port, self.entries, self.flags)


def encode_ref_list(stream_id: int, seq: int, digest: bytes, etr_rloc: bytes, src_eid: bytes, src_port: int,
                    entries: list[tuple[bytes, int]] | tuple[tuple[bytes, int], ...], flags: int = 0) -> bytes:
    """Return a REF-LIST message; ``entries`` are (4-byte Destination EID, port), 1 to 65,535 of them.

    Raises ValueError for an empty or too long list (split with :func:`split_entries`).
    """
    if not 0 < len(entries) <= 0xFFFF:
        raise ValueError(f"REF-LIST of {len(entries)} entries")
    out = bytearray(REF_LIST_HEADER + REF_LIST_ENTRY * len(entries))
    _LIST.pack_into(out, 0, (VERSION << 4) | TYPE_REF_LIST, flags, 0, stream_id, seq, digest, etr_rloc, src_eid,
                    src_port, len(entries))
    off = REF_LIST_HEADER
    for dst, dport in entries:
        _ENTRY.pack_into(out, off, dst, dport)
        off += REF_LIST_ENTRY
    return bytes(out)


def split_entries(entries: list, capacity: int) -> list[list]:
    """Split ``entries`` into lists of at most ``capacity`` (>= 1) entries each, in order."""
    if capacity < 1:
        raise ValueError("REF-LIST capacity must be >= 1")
    return [entries[i:i + capacity] for i in range(0, len(entries), capacity)]


def unpack_ref_list(buf: bytes | bytearray | memoryview) -> tuple[int, int, int, bytes, bytes, bytes, int, int]:
    """Return (flags, stream_id, seq, hash, etr_rloc, src_eid, src_port, count) of a checked REF-LIST."""
    _, flags, _, sid, seq, digest, etr, src, sport, count = _LIST.unpack_from(buf, 0)
    return flags, sid, seq, digest, etr, src, sport, count


class _RefBuilder:
    """A REF from its wire tuple at full speed: CoreCastRef's slots, not frozen; the object takes the class
    CoreCastRef (same layout) at the end of ``__init__``: 2.5 to 4 times the frozen ``__init__`` (docs/bench-wire.md)."""

    __slots__ = CoreCastRef.__slots__

    def __init__(self, _v: int, flags: int, _r: int, sid: int, seq: int, digest: bytes, src: bytes, dst: bytes,
                 sport: int, dport: int) -> None:
        self.stream_id, self.seq, self.chunk_hash, self.src_eid, self.dst_eid = sid, seq, digest, src, dst
        self.src_port, self.dst_port, self.flags = sport, dport, flags
        self.__class__ = CoreCastRef


_REF_BYTE = (VERSION << 4) | TYPE_REF
_unpack_ref_from = _REF.unpack_from


def decode(buf: bytes | bytearray | memoryview) -> CoreCastData | CoreCastRef | CoreCastRefList | CoreCastRefMap:
    """Decode a CoreCast message; raise :class:`DecodeError` on anything malformed."""
    if len(buf) == CORECAST_REF and buf[0] == _REF_BYTE:  # the hot case: what peek_type would accept as a REF
        return _RefBuilder(*_unpack_ref_from(buf, 0))
    mtype = peek_type(buf)
    if mtype == TYPE_REF:
        flags, sid, seq, digest, src, dst, sport, dport = unpack_ref(buf)
        return CoreCastRef(sid, seq, digest, src, dst, sport, dport, flags)
    if mtype == TYPE_REF_LIST:
        flags, sid, seq, digest, etr, src, sport, count = unpack_ref_list(buf)
        entries = tuple(_ENTRY.unpack_from(buf, REF_LIST_HEADER + REF_LIST_ENTRY * i) for i in range(count))
        return CoreCastRefList(sid, seq, digest, etr, src, sport, entries, flags)
    if mtype == TYPE_REF_MAP:
        _f, flags, _r, sid, seq, digest, etr, src, sport, dport, base, length, _count = _MAP.unpack_from(buf, 0)
        return CoreCastRefMap(sid, seq, digest, etr, src, sport, dport, base.to_bytes(4, "big"), length,
                              bytes(buf[REF_MAP_HEADER:]), flags)
    flags, sid, seq = unpack_common(buf)
    return CoreCastData(sid, seq, bytes(buf[CORECAST_HEADER:]), flags)


def encode_ref_messages(stream_id: int, seq: int, digest: bytes, etr_rloc: bytes, src_eid: bytes, src_port: int,
                        entries: list[tuple[bytes, int]], capacity: int, first_flags: int = 0) -> list[bytes]:
    """One ETR's destinations as messages: split at ``capacity`` entries (in order), each part the shorter
    of its REF-LIST and its REF-MAP (:func:`compact_ref_list`); ``first_flags`` on the first message only."""
    out = []
    flags = first_flags
    for part in split_entries(entries, capacity):
        out.append(compact_ref_list(encode_ref_list(stream_id, seq, digest, etr_rloc, src_eid, src_port, part,
                                                    flags)))
        flags = 0
    return out
