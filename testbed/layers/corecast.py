"""scapy layers for CoreCast messages (version 1): the 12-byte common header, DATA and REF.

```
| Ver=1 | Type  |     Flags     |            Reserved           |
|                           Stream ID                           |
|                        Sequence Number                        |
```
DATA (type 1) is followed by the chunk (``Raw``); REF (type 2) by
:class:`CoreCastRef` (hash, source and destination EID, ports); REF-LIST
(type 3) by :class:`CoreCastRefList` (hash, ETR RLOC, source EID and port,
count, then :class:`CoreCastRefEntry` destinations); REF-MAP (type 4) by
:class:`CoreCastRefMap` (hash, ETR RLOC, source EID and port, destination port,
base destination EID, length in bits, count of bits set, bitmap). Bound to UDP
``CORECAST_PORT`` (source to ITR) and reached from :class:`~testbed.layers.lisp.LispData`
when the C bit is set.
"""

from __future__ import annotations

from scapy.fields import (BitEnumField, BitField, ByteField, FieldLenField, IntField, IPField, PacketListField,
                          ShortField, StrLenField, XLongField)
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw, bind_layers

from testbed.wire.constants import CORECAST_PORT

CORECAST_TYPES = {1: "DATA", 2: "REF", 3: "REF-LIST", 4: "REF-MAP"}


class CoreCast(Packet):
    """CoreCast common header."""

    name = "CoreCast"
    fields_desc = [BitField("version", 1, 4),
                   BitEnumField("type", 1, 4, CORECAST_TYPES),
                   ByteField("flags", 0),
                   ShortField("reserved", 0),
                   IntField("stream_id", 0),
                   IntField("seq", 0)]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        """REF body for type 2, REF-LIST body for type 3, the raw chunk otherwise."""
        if self.type == 2:
            return CoreCastRef
        if self.type == 3:
            return CoreCastRefList
        if self.type == 4:
            return CoreCastRefMap
        return Raw


class CoreCastRef(Packet):
    """Body of a REF: chunk hash (BLAKE2b-64), source/destination EID and UDP ports."""

    name = "CoreCast REF"
    fields_desc = [XLongField("chunk_hash", 0),
                   IPField("src_eid", "0.0.0.0"), IPField("dst_eid", "0.0.0.0"),
                   ShortField("sport", 0), ShortField("dport", 0)]


class CoreCastRefEntry(Packet):
    """One REF-LIST entry: Destination EID and Destination Port (6 bytes)."""

    name = "CoreCast REF-LIST entry"
    fields_desc = [IPField("dst_eid", "0.0.0.0"), ShortField("dport", 0)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """An entry has no payload: the rest belongs to the next entry."""
        return b"", s


class CoreCastRefList(Packet):
    """Body of a REF-LIST: hash, ETR RLOC, Source EID and Port once, Count, then the entries."""

    name = "CoreCast REF-LIST"
    fields_desc = [XLongField("chunk_hash", 0), IPField("etr_rloc", "0.0.0.0"),
                   IPField("src_eid", "0.0.0.0"), ShortField("sport", 0),
                   FieldLenField("count", None, count_of="entries", fmt="!H"),
                   PacketListField("entries", [], CoreCastRefEntry, count_from=lambda pkt: pkt.count)]


class CoreCastRefMap(Packet):
    """Body of a REF-MAP: hash, ETR RLOC, Source EID and Port, Destination Port, Base Destination EID,
    Length (bits), Count (bits set; computed from the bitmap when left None), then ceil(Length / 8) bytes
    of bitmap (bit i, most significant first, names Base + i)."""

    name = "CoreCast REF-MAP"
    fields_desc = [XLongField("chunk_hash", 0), IPField("etr_rloc", "0.0.0.0"),
                   IPField("src_eid", "0.0.0.0"), ShortField("sport", 0), ShortField("dport", 0),
                   IPField("base", "0.0.0.0"),
                   FieldLenField("length", None, length_of="bitmap", fmt="!H", adjust=lambda pkt, n: n * 8),
                   ShortField("count", None),
                   StrLenField("bitmap", b"", length_from=lambda pkt: (pkt.length + 7) // 8)]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        """Fill Count with the number of bits set when it was left None."""
        if self.count is None:
            pkt = pkt[:26] + int.from_bytes(pkt[28:], "big").bit_count().to_bytes(2, "big") + pkt[28:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """Nothing follows the bitmap."""
        return b"", s


bind_layers(CoreCast, CoreCastRef, type=2)
bind_layers(CoreCast, CoreCastRefList, type=3)
bind_layers(CoreCast, CoreCastRefMap, type=4)
bind_layers(UDP, CoreCast, dport=CORECAST_PORT)
