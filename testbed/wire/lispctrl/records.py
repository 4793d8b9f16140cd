"""EID-records and Locator records (RFC 9301 section 5.4), shared by Map-Reply/Register/Notify.

EID-record: ``Record TTL (32) | Locator Count | EID mask-len | ACT(3)|A|Reserved(12) |
Rsvd(4)|Map-Version(12) | EID-Prefix-AFI | EID-Prefix``; locator record:
``Priority | Weight | M Priority | M Weight | Unused Flags...|L|p|R | Loc-AFI | Locator``.
CoreCast capability is bit 0x8000 of the locator flags (``LOC_FLAG_CORECAST``).
Prefixes and locators may be of any AFI that :mod:`.addr` can skip (IPv4,
IPv6, LCAF): the decoder keeps them as text and the consumers use IPv4 only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from testbed.wire.constants import LOC_FLAG_CORECAST, LOC_FLAG_L, LOC_FLAG_P, LOC_FLAG_R
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl.addr import check_u, decode_addr, decode_prefix, encode_addr, encode_prefix

ACTION_NO_ACTION, ACTION_NATIVE_FORWARD, ACTION_SEND_MAP_REQUEST, ACTION_DROP = 0, 1, 2, 3
REC_AUTHORITATIVE = 0x1000  # A bit in the 16-bit ACT|A|Reserved field

_REC = struct.Struct("!IBBHH")  # TTL, loc count, mask-len, ACT|A, version (then AFI + prefix)
_LOC = struct.Struct("!BBBBH")  # prio, weight, mprio, mweight, flags (then AFI + RLOC)
_MIN_REC = _REC.size + 2        # a record with an AFI-0 prefix and no locators
_MIN_LOC = _LOC.size + 2


@dataclass
class Locator:
    """A locator record: one RLOC (IPv4 text; other AFIs as :mod:`.addr` text) with policy and flags."""

    rloc: str
    priority: int = 1
    weight: int = 100
    m_priority: int = 255
    m_weight: int = 0
    local: bool = False
    probed: bool = False
    reachable: bool = True
    corecast: bool = False

    @property
    def flags(self) -> int:
        """The 16-bit flags field (L/p/R and the CoreCast capability bit)."""
        return ((LOC_FLAG_L if self.local else 0) | (LOC_FLAG_P if self.probed else 0)
                | (LOC_FLAG_R if self.reachable else 0) | (LOC_FLAG_CORECAST if self.corecast else 0))

    def encode(self) -> bytes:
        """Return the wire bytes (12 for an IPv4 RLOC)."""
        for name in ("priority", "weight", "m_priority", "m_weight"):
            check_u(name, getattr(self, name), 8)
        if not self.rloc:
            raise ValueError("a locator needs an address")
        return _LOC.pack(self.priority, self.weight, self.m_priority, self.m_weight, self.flags) + \
            encode_addr(self.rloc)


@dataclass
class EidRecord:
    """An EID-record: an EID prefix (``a.b.c.d/n``), its TTL (minutes), action and locators."""

    prefix: str
    ttl: int = 1440
    action: int = ACTION_NO_ACTION
    authoritative: bool = True
    map_version: int = 0
    locators: list[Locator] = field(default_factory=list)

    def encode(self) -> bytes:
        """Return the wire bytes of the record and its locator records (ValueError if a field does not fit)."""
        plen, addr = encode_prefix(self.prefix)
        check_u("ttl", self.ttl, 32)
        check_u("action", self.action, 3)
        check_u("map_version", self.map_version, 12)
        check_u("locator count", len(self.locators), 8)
        flags = (self.action << 13) | (REC_AUTHORITATIVE if self.authoritative else 0)
        head = _REC.pack(self.ttl, len(self.locators), plen, flags, self.map_version) + addr
        return head + b"".join(loc.encode() for loc in self.locators)


def decode_records(buf: bytes, off: int, count: int) -> tuple[list[EidRecord], int]:
    """Decode ``count`` EID-records from ``off``; return them and the offset after them (DecodeError only)."""
    end = len(buf)
    if count * _MIN_REC > end - off:
        raise DecodeError("bad-count", f"{count} records cannot fit in {end - off} bytes")
    records = []
    for _ in range(count):
        if off + _MIN_REC > end:
            raise DecodeError("bad-count", "record overruns the message")
        ttl, nloc, plen, actflags, version = _REC.unpack_from(buf, off)
        prefix, off = decode_prefix(buf, off + _REC.size, plen, "EID-Prefix")
        if nloc * _MIN_LOC > end - off:
            raise DecodeError("bad-count", f"{nloc} locators cannot fit in {end - off} bytes")
        locs = []
        for _ in range(nloc):
            if off + _MIN_LOC > end:
                raise DecodeError("bad-count", "locator overruns the message")
            prio, weight, mprio, mweight, flags = _LOC.unpack_from(buf, off)
            rloc, off = decode_addr(buf, off + _LOC.size, "Loc-AFI")
            if not rloc:
                raise DecodeError("unknown-afi", "Loc-AFI 0")
            locs.append(Locator(rloc, prio, weight, mprio, mweight, bool(flags & LOC_FLAG_L),
                                bool(flags & LOC_FLAG_P), bool(flags & LOC_FLAG_R),
                                bool(flags & LOC_FLAG_CORECAST)))
        records.append(EidRecord(prefix, ttl, actflags >> 13, bool(actflags & REC_AUTHORITATIVE),
                                 version & 0x0FFF, locs))
    return records, off
