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

Chunk Hash = BLAKE2b with an 8-byte digest of the chunk.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from testbed.wire.constants import CORECAST_HEADER, CORECAST_REF
from testbed.wire.errors import DecodeError

VERSION = 1
TYPE_DATA = 1
TYPE_REF = 2

_COMMON = struct.Struct("!BBHII")
_REF = struct.Struct("!BBHII8s4s4sHH")


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


def decode(buf: bytes | bytearray | memoryview) -> CoreCastData | CoreCastRef:
    """Decode a CoreCast message; raise :class:`DecodeError` on anything malformed."""
    mtype = peek_type(buf)
    if mtype == TYPE_REF:
        flags, sid, seq, digest, src, dst, sport, dport = unpack_ref(buf)
        return CoreCastRef(sid, seq, digest, src, dst, sport, dport, flags)
    flags, sid, seq = unpack_common(buf)
    return CoreCastData(sid, seq, bytes(buf[CORECAST_HEADER:]), flags)
