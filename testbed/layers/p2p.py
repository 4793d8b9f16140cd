"""scapy layers for the P2P overlay's messages (version 1), byte-identical to :mod:`testbed.wire.p2p`.

```
| Ver=1 | Type  |     Flags     |       Sender's AS number      |
|                           Stream ID                           |
```
then JOIN/LEAVE (:class:`P2PAddr`), PEERS (:class:`P2PPeers` with :class:`P2PEntry`
items), BUFFERMAP (:class:`P2PBufferMap`), REQUEST (:class:`P2PRequest`) or CHUNK
(:class:`P2PChunk`, the chunk as ``Raw``). Bound to UDP ports ``P2P_PORT`` and
``TRACKER_PORT``. See docs/p2p.md.
"""

from __future__ import annotations

from scapy.fields import (BitEnumField, BitField, ByteField, FieldLenField, FieldListField, IntField, IPField,
                          LongField, PacketListField, ShortField, StrField, XStrLenField)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_layers

from testbed.wire.p2p import P2P_PORT, TRACKER_PORT, TYPE_NAMES


class P2P(Packet):
    """P2P common header."""

    name = "P2P"
    fields_desc = [BitField("version", 1, 4),
                   BitEnumField("type", 1, 4, TYPE_NAMES),
                   ByteField("flags", 0),
                   ShortField("asn", 0),
                   IntField("stream_id", 0)]


class P2PAddr(Packet):
    """JOIN/LEAVE body: the peer's EID and port."""

    name = "P2P address"
    fields_desc = [IPField("eid", "0.0.0.0"), ShortField("port", 0), ShortField("reserved", 0)]


class P2PEntry(Packet):
    """One peer of a PEERS list."""

    name = "P2P entry"
    fields_desc = [IPField("eid", "0.0.0.0"), ShortField("port", 0), ShortField("asn", 0)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class P2PPeers(Packet):
    """PEERS body: the newest chunk the tracker's source sent, and a partial view of the swarm."""

    name = "P2P peers"
    fields_desc = [IntField("newest", 0xFFFFFFFF),
                   FieldLenField("count", None, count_of="entries", fmt="H"),
                   ShortField("reserved", 0),
                   PacketListField("entries", [], P2PEntry, count_from=lambda p: p.count)]


class P2PBufferMap(Packet):
    """BUFFERMAP body: bit i (MSB first) set when chunk base+i is held."""

    name = "P2P buffer map"
    fields_desc = [IntField("base", 0),
                   FieldLenField("bits", None, length_of="bitmap", fmt="H", adjust=lambda p, x: x * 8),
                   ShortField("reserved", 0),
                   XStrLenField("bitmap", b"", length_from=lambda p: (p.bits + 7) // 8)]


class P2PRequest(Packet):
    """REQUEST body: the chunks asked for."""

    name = "P2P request"
    fields_desc = [FieldLenField("count", None, count_of="seqs", fmt="H"),
                   ShortField("reserved", 0),
                   FieldListField("seqs", [], IntField("seq", 0), count_from=lambda p: p.count)]


class P2PChunk(Packet):
    """CHUNK body: sequence number and the source's send time (microseconds); the chunk follows."""

    name = "P2P chunk"
    fields_desc = [IntField("seq", 0), IntField("reserved", 0), LongField("time_us", 0),
                   StrField("chunk", b"")]


bind_layers(P2P, P2PAddr, type=1)
bind_layers(P2P, P2PPeers, type=2)
bind_layers(P2P, P2PAddr, type=3)
bind_layers(P2P, P2PBufferMap, type=4)
bind_layers(P2P, P2PRequest, type=5)
bind_layers(P2P, P2PChunk, type=6)
bind_layers(UDP, P2P, dport=P2P_PORT)
bind_layers(UDP, P2P, sport=P2P_PORT)
bind_layers(UDP, P2P, dport=TRACKER_PORT)
bind_layers(UDP, P2P, sport=TRACKER_PORT)
