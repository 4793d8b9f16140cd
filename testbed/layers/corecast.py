"""scapy layers for CoreCast messages (version 1): the 12-byte common header, DATA and REF.

```
| Ver=1 | Type  |     Flags     |            Reserved           |
|                           Stream ID                           |
|                        Sequence Number                        |
```
DATA (type 1) is followed by the chunk (``Raw``); REF (type 2) by
:class:`CoreCastRef` (hash, source and destination EID, ports); REF-LIST
(type 3) by :class:`CoreCastRefList` (hash, ETR RLOC, source EID and port,
count, then :class:`CoreCastRefEntry` destinations). Bound to UDP
``CORECAST_PORT`` (source to ITR) and reached from :class:`~testbed.layers.lisp.LispData`
when the C bit is set.
"""

from __future__ import annotations

from scapy.fields import (BitEnumField, BitField, ByteField, FieldLenField, IntField, IPField, PacketListField,
                          ShortField, XLongField)
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw, bind_layers

from testbed.wire.constants import CORECAST_PORT

CORECAST_TYPES = {1: "DATA", 2: "REF", 3: "REF-LIST"}


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


bind_layers(CoreCast, CoreCastRef, type=2)
bind_layers(CoreCast, CoreCastRefList, type=3)
bind_layers(UDP, CoreCast, dport=CORECAST_PORT)
