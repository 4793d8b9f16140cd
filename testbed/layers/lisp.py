"""scapy layers for LISP: the data header (RFC 9300 section 5.1) and control messages (RFC 9301).

Contrib style: ``Packet`` subclasses with ``fields_desc`` and ``bind_layers`` at
the bottom. Importing this module (or :mod:`testbed.layers`) makes ``rdpcap``
decode UDP 4341 as :class:`LispData` (payload IP, or CoreCast when the C bit is
set) and UDP 4342 as the control message named by the type nibble.
Addresses are AFI 1 (IPv4) or AFI 2 (IPv6), AFI 0 where the RFC allows "no
address", or AFI 16387 (LCAF, :class:`LispLcaf`: RFC 8378's Multicast Info and RLE); a Map-Register or Map-Notify with the I bit ends with the 128-bit
xTR-ID and 64-bit site-ID (RFC 9301 sections 5.6, 5.7).
"""

from __future__ import annotations

from scapy.fields import (BitEnumField, BitField, BitFieldLenField, ByteEnumField, ByteField, ConditionalField,
                          FieldLenField, FlagsField, IntField, IP6Field, IPField, ShortField, PacketField, PacketListField,
                          StrLenField, X3BytesField, XLongField, XStrFixedLenField)
from scapy.layers.inet import IP, UDP
from scapy.packet import Packet, Raw, bind_bottom_up, bind_layers

from testbed.wire.constants import LISP_CONTROL_PORT, LISP_DATA_PORT

CONTROL_TYPES = {1: "Map-Request", 2: "Map-Reply", 3: "Map-Register", 4: "Map-Notify", 8: "ECM"}
ACTIONS = {0: "no-action", 1: "natively-forward", 2: "send-map-request", 3: "drop"}
AFIS = {0: "none", 1: "IPv4", 2: "IPv6", 16387: "LCAF"}
# Locator flags, least significant bit first: R, p, L, 12 unused, CoreCast capability (0x8000).
LOC_FLAGS = ["R", "p", "L"] + [f"u{i}" for i in range(3, 15)] + ["CoreCast"]


class LispData(Packet):
    """LISP data header: ``N|L|E|V|I|C|K|K``, nonce/map-version (24), instance ID/LSBs (32)."""

    name = "LISP data"
    # flag names, least significant first: KK, C (RFC 9300's reserved bit), I, V, E, L, N
    fields_desc = [FlagsField("flags", 0x80, 8, ["K0", "K1", "C", "I", "V", "E", "L", "N"]),
                   X3BytesField("nonce", 0),
                   IntField("iid_lsb", 0)]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        """CoreCast when the C bit is set, IPv4 when the payload starts with version 4."""
        if self.flags & 0x04:
            from testbed.layers.corecast import CoreCast
            return CoreCast
        if payload[:1] and payload[0] >> 4 == 4:
            return IP
        return Raw


class LispRleEntry(Packet):
    """One Replication List Entry (RFC 8060 section 4.10): Rsvd3, Rsvd4, Level Value, AFI 1, RTR/ETR RLOC."""

    name = "LISP RLE entry"
    fields_desc = [BitField("rsvd3", 0, 16), ByteField("rsvd4", 0), ByteField("level", 0),
                   BitEnumField("afi", 1, 16, AFIS), IPField("rloc", "0.0.0.0")]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class LispLcaf(Packet):
    """An LCAF address after its AFI 16387 (RFC 8060): Multicast Info (type 9) and RLE (type 13) decoded,
    any other type kept as bytes. IPv4 addresses only inside, as the testbed sends them."""

    name = "LISP LCAF"
    fields_desc = [ByteField("rsvd1", 0), ByteField("lcaf_flags", 0),
                   ByteEnumField("lcaf_type", 9, {9: "Multicast Info", 13: "Replication List Entry"}),
                   ByteField("rsvd2", 0),
                   ShortField("length", None),
                   ConditionalField(IntField("iid", 0), lambda p: p.lcaf_type == 9),
                   ConditionalField(BitField("mc_reserved", 0, 16), lambda p: p.lcaf_type == 9),
                   ConditionalField(ByteField("source_len", 32), lambda p: p.lcaf_type == 9),
                   ConditionalField(ByteField("group_len", 32), lambda p: p.lcaf_type == 9),
                   ConditionalField(BitEnumField("source_afi", 1, 16, AFIS), lambda p: p.lcaf_type == 9),
                   ConditionalField(IPField("source", "0.0.0.0"), lambda p: p.lcaf_type == 9),
                   ConditionalField(BitEnumField("group_afi", 1, 16, AFIS), lambda p: p.lcaf_type == 9),
                   ConditionalField(IPField("group", "0.0.0.0"), lambda p: p.lcaf_type == 9),
                   ConditionalField(PacketListField("rle", [], LispRleEntry, length_from=lambda p: p.length),
                                    lambda p: p.lcaf_type == 13),
                   ConditionalField(StrLenField("body", b"", length_from=lambda p: p.length),
                                    lambda p: p.lcaf_type not in (9, 13))]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        """Fill Length (bytes after the 6-byte header) when left unset."""
        if self.length is None:
            pkt = pkt[:4] + (len(pkt) - 6).to_bytes(2, "big") + pkt[6:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _lcaf_field() -> ConditionalField:
    return ConditionalField(PacketField("lcaf", None, LispLcaf), lambda p: p.afi == 16387)


class LispLocator(Packet):
    """A locator record: priority, weight, multicast priority/weight, flags, AFI 1, RLOC."""

    name = "LISP locator"
    fields_desc = [ByteField("priority", 1), ByteField("weight", 100),
                   ByteField("m_priority", 255), ByteField("m_weight", 0),
                   FlagsField("flags", 0x0001, 16, LOC_FLAGS),
                   BitEnumField("afi", 1, 16, AFIS),
                   ConditionalField(IPField("rloc", "0.0.0.0"), lambda p: p.afi == 1),
                   ConditionalField(IP6Field("rloc6", "::"), lambda p: p.afi == 2),
                   _lcaf_field()]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class LispEidRecord(Packet):
    """An EID-record with its locator records (used by Map-Reply, Map-Register, Map-Notify)."""

    name = "LISP EID record"
    fields_desc = [IntField("ttl", 1440),
                   FieldLenField("loc_count", None, fmt="B", count_of="locators"),
                   ByteField("mask_len", 32),
                   BitEnumField("action", 0, 3, ACTIONS),
                   BitField("authoritative", 1, 1),
                   BitField("reserved", 0, 12),
                   BitField("rsvd", 0, 4),
                   BitField("map_version", 0, 12),
                   BitEnumField("afi", 1, 16, AFIS),
                   ConditionalField(IPField("prefix", "0.0.0.0"), lambda p: p.afi == 1),
                   ConditionalField(IP6Field("prefix6", "::"), lambda p: p.afi == 2),
                   _lcaf_field(),
                   PacketListField("locators", [], LispLocator, count_from=lambda p: p.loc_count)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class LispAfiAddress(Packet):
    """An AFI-prefixed address (ITR-RLOC of a Map-Request): IPv4 or IPv6."""

    name = "LISP AFI address"
    fields_desc = [BitEnumField("afi", 1, 16, AFIS),
                   ConditionalField(IPField("address", "0.0.0.0"), lambda p: p.afi == 1),
                   ConditionalField(IP6Field("address6", "::"), lambda p: p.afi == 2)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class LispRequestRecord(Packet):
    """A Map-Request record: reserved, EID mask-len, AFI, EID prefix (none for AFI 0: an RLOC-probe's)."""

    name = "LISP request record"
    fields_desc = [ByteField("reserved", 0), ByteField("mask_len", 32),
                   BitEnumField("afi", 1, 16, AFIS),
                   ConditionalField(IPField("prefix", "0.0.0.0"), lambda p: p.afi == 1),
                   ConditionalField(IP6Field("prefix6", "::"), lambda p: p.afi == 2),
                   _lcaf_field()]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class LispControl(Packet):
    """Dispatcher for UDP 4342: picks the message class from the type nibble."""

    name = "LISP control"
    fields_desc = [BitEnumField("type", 0, 4, CONTROL_TYPES), BitField("reserved", 0, 28)]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args, **kargs) -> type[Packet]:
        """Return the class of the message type in the first nibble."""
        if _pkt:
            return _CONTROL_CLASSES.get(_pkt[0] >> 4, Raw)
        return cls


def _records_field() -> PacketListField:
    return PacketListField("records", [], LispEidRecord, count_from=lambda p: p.rec_count)


def _trailer_fields() -> list:
    """xTR-ID (16 bytes) and site-ID (64 bits), present when the I flag is set."""
    return [ConditionalField(XStrFixedLenField("xtr_id", b"\x00" * 16, 16), lambda p: p.flags.I),
            ConditionalField(XLongField("site_id", 0), lambda p: p.flags.I)]


class LispMapRequest(LispControl):
    """Map-Request (RFC 9301 section 5.2)."""

    name = "LISP Map-Request"
    fields_desc = [BitEnumField("type", 1, 4, CONTROL_TYPES),
                   FlagsField("flags", 0, 6, ["s", "p", "S", "P", "M", "A"]),
                   BitField("reserved", 0, 9),
                   BitFieldLenField("irc", None, 5, count_of="itr_rlocs", adjust=lambda p, n: n - 1),
                   FieldLenField("rec_count", None, fmt="B", count_of="eids"),
                   XLongField("nonce", 0),
                   BitEnumField("source_eid_afi", 0, 16, AFIS),
                   ConditionalField(IPField("source_eid", "0.0.0.0"), lambda p: p.source_eid_afi == 1),
                   ConditionalField(IP6Field("source_eid6", "::"), lambda p: p.source_eid_afi == 2),
                   PacketListField("itr_rlocs", [], LispAfiAddress, count_from=lambda p: p.irc + 1),
                   PacketListField("eids", [], LispRequestRecord, count_from=lambda p: p.rec_count),
                   ConditionalField(PacketField("map_reply", None, LispEidRecord), lambda p: p.flags.M)]


class LispMapReply(LispControl):
    """Map-Reply (RFC 9301 section 5.4)."""

    name = "LISP Map-Reply"
    fields_desc = [BitEnumField("type", 2, 4, CONTROL_TYPES),
                   FlagsField("flags", 0, 3, ["S", "E", "P"]),
                   BitField("reserved", 0, 17),
                   FieldLenField("rec_count", None, fmt="B", count_of="records"),
                   XLongField("nonce", 0),
                   _records_field()]


class LispMapRegister(LispControl):
    """Map-Register (RFC 9301 section 5.6): Key ID and Algorithm ID are one byte each."""

    name = "LISP Map-Register"
    fields_desc = [BitEnumField("type", 3, 4, CONTROL_TYPES),
                   FlagsField("flags", 0, 3, ["I", "S", "P"]),
                   BitField("reserved", 0, 12),
                   FlagsField("flags2", 0x01, 5, ["M", "R", "a", "T", "E"]),
                   FieldLenField("rec_count", None, fmt="B", count_of="records"),
                   XLongField("nonce", 0),
                   ByteField("key_id", 0), ByteField("alg_id", 2),
                   FieldLenField("auth_len", None, length_of="auth"),
                   StrLenField("auth", b"", length_from=lambda p: p.auth_len),
                   _records_field()] + _trailer_fields()


class LispMapNotify(LispControl):
    """Map-Notify (RFC 9301 section 5.7): ``Type=4|I|R|Reserved``, then the shape of a Map-Register."""

    name = "LISP Map-Notify"
    fields_desc = [BitEnumField("type", 4, 4, CONTROL_TYPES),
                   FlagsField("flags", 0, 2, ["R", "I"]),
                   BitField("reserved", 0, 18),
                   FieldLenField("rec_count", None, fmt="B", count_of="records"),
                   XLongField("nonce", 0),
                   ByteField("key_id", 0), ByteField("alg_id", 2),
                   FieldLenField("auth_len", None, length_of="auth"),
                   StrLenField("auth", b"", length_from=lambda p: p.auth_len),
                   _records_field()] + _trailer_fields()


class LispEcm(LispControl):
    """Encapsulated Control Message (RFC 9301 section 5.8): 4-byte header, then IPv4/UDP."""

    name = "LISP ECM"
    fields_desc = [BitEnumField("type", 8, 4, CONTROL_TYPES),
                   FlagsField("flags", 0, 4, ["M", "E", "D", "S"]),
                   BitField("reserved", 0, 24)]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return IP


_CONTROL_CLASSES: dict[int, type[Packet]] = {1: LispMapRequest, 2: LispMapReply, 3: LispMapRegister,
                                              4: LispMapNotify, 8: LispEcm}

bind_layers(UDP, LispData, dport=LISP_DATA_PORT)
bind_bottom_up(UDP, LispData, sport=LISP_DATA_PORT)
bind_layers(UDP, LispControl, dport=LISP_CONTROL_PORT)
bind_bottom_up(UDP, LispControl, sport=LISP_CONTROL_PORT)
