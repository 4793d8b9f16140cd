"""CoreCast REF-MAP (type 4), fast codec: the compact form of a REF-LIST (docs/protocol.md section 3).

```
|                common header (12 bytes, Type=4)               |
|                       Chunk Hash (64 bits)                    |
|                           ETR RLOC                            |
|                          Source EID                           |
|          Source Port          |       Destination Port        |
|                     Base Destination EID                      |
|         Length (bits)         |       Count (bits set)        |
|          Bitmap, ceil(Length / 8) bytes ...
```
Bit i of the bitmap (most significant bit of byte i // 8 first) set: Destination EID
Base + i is a destination, i.e. the REF (hash, Source EID, Base + i, Source Port,
Destination Port). 40 + ceil(Length / 8) bytes; 1 <= Length; Count = the number of
bits set >= 1; the bits after Length zero; Base + Length - 1 <= 255.255.255.255.
The bytes up to offset 30 are a REF-LIST's; flags as a REF-LIST's (D = 0x80).
Re-exported by :mod:`testbed.wire.corecast`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from testbed.wire.errors import DecodeError

VERSION = 1
TYPE_REF_MAP = 4
REF_MAP_HEADER = 40
_REF_LIST_HEADER, _REF_LIST_ENTRY = 32, 6  # testbed.wire.corecast's REF-LIST layout
# common header, hash, ETR RLOC, Source EID, Source Port, Destination Port, Base Destination EID, Length, Count
_MAP = struct.Struct("!BBHII8s4s4sHHIHH")


def ref_map_capacity(outer_mtu: int = 1500) -> int:
    """The longest bitmap (bits) a REF-MAP may carry to fit one outer packet: ``(outer_mtu - 36 - 40) x 8``.

    11,392 for an outer MTU of 1,500.
    """
    return max(0, (outer_mtu - 36 - REF_MAP_HEADER) * 8)


def ref_map_fault(buf: bytes | bytearray | memoryview) -> str | None:
    """The DecodeError reason of a malformed REF-MAP (type byte already checked), or None if well formed.

    'bad-length': shorter than 41 bytes, Length 0, or not 40 + ceil(Length / 8) bytes; 'bad-range':
    Base + Length - 1 beyond 255.255.255.255; 'bad-bitmap': a bit after Length set; 'bad-count':
    Count is 0 or not the number of bits set.
    """
    n = len(buf)
    if n <= REF_MAP_HEADER:
        return "bad-length"
    length = (buf[36] << 8) | buf[37]
    if length == 0 or n != REF_MAP_HEADER + ((length + 7) >> 3):
        return "bad-length"
    if int.from_bytes(buf[32:36], "big") + length - 1 > 0xFFFFFFFF:
        return "bad-range"
    spare = -length & 7
    if spare and buf[n - 1] & ((1 << spare) - 1):
        return "bad-bitmap"
    count = (buf[38] << 8) | buf[39]
    if count == 0 or count != int.from_bytes(buf[REF_MAP_HEADER:], "big").bit_count():
        return "bad-count"
    return None


def check_ref_map(buf: bytes | bytearray | memoryview) -> int:
    """Return the Count of a REF-MAP after checking it (:func:`ref_map_fault`); raise DecodeError otherwise."""
    reason = ref_map_fault(buf)
    if reason is not None:
        raise DecodeError(reason, f"REF-MAP of {len(buf)} bytes: {reason}")
    return (buf[38] << 8) | buf[39]


def ref_map_eids(bitmap: bytes | bytearray | memoryview, base: int) -> list[int]:
    """The Destination EIDs (integers, ascending) a checked bitmap names: ``base + i`` for each set bit i."""
    bits = int.from_bytes(bitmap, "big")
    top = base + len(bitmap) * 8 - 1
    out = []
    while bits:
        b = bits.bit_length() - 1
        out.append(top - b)
        bits ^= 1 << b
    return out


@dataclass(frozen=True, slots=True)
class CoreCastRefMap:
    """A REF-MAP: one chunk's REFs for the clients behind one ETR, as a bitmap over ``base``..``base + length - 1``.

    ``base``: 4 bytes, network order; ``bitmap``: ceil(length / 8) bytes, bit i (MSB first) = ``base + i``.
    """

    stream_id: int
    seq: int
    chunk_hash: bytes
    etr_rloc: bytes
    src_eid: bytes
    src_port: int
    dst_port: int
    base: bytes
    length: int
    bitmap: bytes
    flags: int = 0

    @property
    def entries(self) -> tuple[tuple[bytes, int], ...]:
        """The destinations as REF-LIST entries: (Destination EID as 4 bytes, Destination Port), ascending."""
        base = int.from_bytes(self.base, "big")
        return tuple((eid.to_bytes(4, "big"), self.dst_port) for eid in ref_map_eids(self.bitmap, base))

    def encode(self) -> bytes:
        """Return the wire bytes (40 + ceil(length / 8))."""
        return encode_ref_map(self.stream_id, self.seq, self.chunk_hash, self.etr_rloc, self.src_eid,
                              self.src_port, self.dst_port, self.base, self.length, self.bitmap, self.flags)


def encode_ref_map(stream_id: int, seq: int, digest: bytes, etr_rloc: bytes, src_eid: bytes, src_port: int,
                   dst_port: int, base: bytes, length: int, bitmap: bytes, flags: int = 0) -> bytes:
    """Return a REF-MAP message for ``bitmap`` (ceil(length / 8) bytes) over ``length`` EIDs from ``base``.

    Raises ValueError if ``length`` is not 1..65,535, the bitmap's size does not match it, or no bit is set.
    """
    if not 0 < length <= 0xFFFF or len(bitmap) != (length + 7) >> 3:
        raise ValueError(f"REF-MAP bitmap of {len(bitmap)} bytes for {length} bits")
    count = int.from_bytes(bitmap, "big").bit_count()
    if not 0 < count <= 0xFFFF:
        raise ValueError(f"REF-MAP with {count} destinations")
    return _MAP.pack((VERSION << 4) | TYPE_REF_MAP, flags, 0, stream_id, seq, digest, etr_rloc, src_eid, src_port,
                     dst_port, int.from_bytes(base, "big"), length, count) + bytes(bitmap)


def ref_map_size(eids: list[int] | tuple[int, ...]) -> int:
    """Bytes of the REF-MAP naming the EIDs ``eids`` (integers, at least one): ``40 + ceil((max - min + 1) / 8)``."""
    return REF_MAP_HEADER + ((max(eids) - min(eids) + 8) >> 3)


def compact_ref_list(msg: bytes) -> bytes:
    """The REF-MAP naming the destinations of the well-formed REF-LIST ``msg`` if it is shorter, else ``msg``.

    Shorter needs one Destination Port for every entry and ``40 + ceil(span / 8) < 32 + 6 x Count``
    (span: the highest EID - the lowest + 1). Same header fields and flags; repeated entries are
    named once (an ETR expands a repeated entry of a REF-LIST once too).
    """
    count = (msg[30] << 8) | msg[31]
    if count < 2:
        return msg
    dport = msg[_REF_LIST_HEADER + 4:_REF_LIST_HEADER + 6]
    eids = []
    for off in range(_REF_LIST_HEADER, len(msg), _REF_LIST_ENTRY):
        if msg[off + 4:off + 6] != dport:
            return msg
        eids.append(int.from_bytes(msg[off:off + 4], "big"))
    lo, hi = min(eids), max(eids)
    length = hi - lo + 1
    if REF_MAP_HEADER + ((length + 7) >> 3) >= len(msg):
        return msg
    bits = 0
    top = length - 1 + (-length & 7)
    for eid in eids:
        bits |= 1 << (top - (eid - lo))
    return encode_ref_map(int.from_bytes(msg[4:8], "big"), int.from_bytes(msg[8:12], "big"), msg[12:20],
                          msg[20:24], msg[24:28], int.from_bytes(msg[28:30], "big"), int.from_bytes(dport, "big"),
                          lo.to_bytes(4, "big"), length, bits.to_bytes((length + 7) >> 3, "big"), msg[1])
