"""LCAF addresses used by signal-free LISP multicast (RFC 8378; RFC 8060 sections 4.3 and 4.10).

The generic codec (:mod:`.addr`) carries any LCAF as opaque text ``"lcaf:<hex>"``
(the 6-byte LCAF header and its body, without the 2-byte AFI 16387). This module
builds and parses the two LCAF types RFC 8378 needs, from and to that text:

**Multicast Info** (type 9), the EID of an (S,G) mapping entry::

    | Rsvd1 | Flags | Type=9 | Rsvd2(5)|R|L|J | Length (16) |
    |                  Instance-ID (32)                      |
    |   Reserved (16)    | Source MaskLen | Group MaskLen    |
    | AFI=1 | Source address | AFI=1 | Group address         |

IPv4 only here: Length = 20 (the 8 fixed bytes and two AFI-1 addresses).

**Replication List Entry** (RLE, type 13), the RLOC of an (S,G) mapping entry:
one entry per ETR (or RTR) that wants the traffic::

    | Rsvd1 | Flags | Type=13 | Rsvd2 | Length (16) |
    then per entry: | Rsvd3 (16) | Rsvd4 (8) | Level Value (8) | AFI=1 | RLOC |

Each IPv4 entry is 10 bytes. RFC 8378 section 5: an ETR registers the (S,G)
entry with its own RLOC; the Map-Server merges the registrations into one
replication list, sent back to ITRs in Map-Replies as one RLE locator.

Errors: builders raise ValueError on bad arguments; parsers raise only
:class:`~testbed.wire.errors.DecodeError` (``not-lcaf``, ``lcaf-type``,
``truncated``, ``bad-lcaf``, ``unknown-afi``, ``bad-prefix``).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from testbed.wire.errors import DecodeError

LCAF_MCAST_INFO, LCAF_RLE = 9, 13
MC_R, MC_L, MC_J = 0x04, 0x02, 0x01   # Rsvd2 bits of Multicast Info (RFC 8060 section 4.3)
_HEAD = struct.Struct("!BBBBH")        # Rsvd1, Flags, Type, Rsvd2, Length
_MC = struct.Struct("!IHBB")           # Instance-ID, Reserved, Source MaskLen, Group MaskLen
_RLE = struct.Struct("!HBB")           # Rsvd3, Rsvd4, Level Value
MC_BODY_LEN = _MC.size + 12            # 20 for IPv4 S and G
RLE_ENTRY_LEN = _RLE.size + 6          # 10 per IPv4 entry
MAX_RLE_ENTRIES = (0xFFFF) // RLE_ENTRY_LEN
"""Largest number of IPv4 entries an RLE's 16-bit Length can describe (6553)."""


@dataclass(frozen=True)
class MulticastInfo:
    """An (S,G) EID: Instance-ID, IPv4 source and group (dotted text) and their mask-lens, R/L/J bits."""

    source: str
    group: str
    iid: int = 0
    source_len: int = 32
    group_len: int = 32
    flags: int = 0

    def text(self) -> str:
        """Return the ``"lcaf:<hex>"`` address text of this LCAF (ValueError on a bad field)."""
        if not 0 <= self.iid < 1 << 32 or not 0 <= self.flags < 8:
            raise ValueError(f"Multicast Info: iid {self.iid} / flags {self.flags} out of range")
        if not (0 <= self.source_len <= 32 and 0 <= self.group_len <= 32):
            raise ValueError("Multicast Info: mask-len over 32")
        body = _MC.pack(self.iid, 0, self.source_len, self.group_len) + \
            b"\x00\x01" + socket.inet_aton(self.source) + b"\x00\x01" + socket.inet_aton(self.group)
        return "lcaf:" + (_HEAD.pack(0, 0, LCAF_MCAST_INFO, self.flags, len(body)) + body).hex()

    @property
    def key(self) -> tuple[str, str]:
        """``(S, G)`` as dotted text: the Map-Server's and map-cache's key."""
        return self.source, self.group


def _body(text: str, want: int) -> tuple[int, bytes]:
    """Return (Rsvd2, body) of an LCAF text of type ``want``; DecodeError otherwise."""
    if not isinstance(text, str) or not text.startswith("lcaf:"):
        raise DecodeError("not-lcaf", repr(text)[:40])
    try:
        raw = bytes.fromhex(text[5:])
    except ValueError:
        raise DecodeError("bad-lcaf", "hex") from None
    if len(raw) < _HEAD.size:
        raise DecodeError("truncated", "LCAF header")
    _, _, ltype, rsvd2, length = _HEAD.unpack_from(raw)
    if ltype != want:
        raise DecodeError("lcaf-type", f"type {ltype}, want {want}")
    if length != len(raw) - _HEAD.size:
        raise DecodeError("bad-lcaf", f"length {length} for {len(raw) - _HEAD.size} body bytes")
    return rsvd2, raw[_HEAD.size:]


def _ipv4(body: bytes, off: int, what: str) -> tuple[str, int]:
    if off + 6 > len(body):
        raise DecodeError("truncated", what)
    afi = (body[off] << 8) | body[off + 1]
    if afi != 1:
        raise DecodeError("unknown-afi", f"{what} AFI {afi} (IPv4 only)")
    return socket.inet_ntoa(body[off + 2:off + 6]), off + 6


def parse_mcast_info(text: str) -> MulticastInfo:
    """Parse a Multicast Info LCAF text (IPv4 S and G); DecodeError on anything else."""
    rsvd2, body = _body(text, LCAF_MCAST_INFO)
    if len(body) < _MC.size:
        raise DecodeError("truncated", "Multicast Info")
    iid, _, slen, glen = _MC.unpack_from(body)
    if slen > 32 or glen > 32:
        raise DecodeError("bad-prefix", f"Multicast Info mask-len {slen}/{glen}")
    source, off = _ipv4(body, _MC.size, "Multicast Info source")
    group, off = _ipv4(body, off, "Multicast Info group")
    if off != len(body):
        raise DecodeError("bad-lcaf", "Multicast Info trailing bytes")
    return MulticastInfo(source, group, iid, slen, glen, rsvd2 & 0x07)


def rle_text(rlocs: list[str] | tuple[str, ...], level: int = 0) -> str:
    """Return the ``"lcaf:<hex>"`` text of an RLE listing ``rlocs`` (IPv4 dotted), all at ``level``."""
    if not 0 <= level < 256 or not 0 < len(rlocs) <= MAX_RLE_ENTRIES:
        raise ValueError(f"RLE: level {level}, {len(rlocs)} entries")
    body = b"".join(_RLE.pack(0, 0, level) + b"\x00\x01" + socket.inet_aton(r) for r in rlocs)
    return "lcaf:" + (_HEAD.pack(0, 0, LCAF_RLE, 0, len(body)) + body).hex()


def parse_rle(text: str) -> list[tuple[str, int]]:
    """Parse an RLE LCAF text; return ``[(rloc, level), ...]`` in wire order. DecodeError on bad input."""
    _, body = _body(text, LCAF_RLE)
    out, off = [], 0
    while off < len(body):
        if off + _RLE.size > len(body):
            raise DecodeError("truncated", "RLE entry")
        level = body[off + 3]
        rloc, off = _ipv4(body, off + _RLE.size, "RLE entry")
        out.append((rloc, level))
    if not out:
        raise DecodeError("bad-lcaf", "empty RLE")
    return out


def sg_prefix(source: str, group: str, iid: int = 0) -> str:
    """Return the EID-prefix text of an (S,G) record: Multicast Info LCAF, EID mask-len 0.

    RFC 8060 puts both mask-lens inside the LCAF; the record's own EID mask-len
    is not used for it (RFC 9301 gives no meaning to it for an LCAF EID) and is sent as 0."""
    return MulticastInfo(source, group, iid).text() + "/0"


def sg_of_prefix(prefix: str) -> tuple[str, str] | None:
    """``(S, G)`` of an EID-prefix text carrying a Multicast Info LCAF, or None for any other prefix."""
    if not prefix.startswith("lcaf:"):
        return None
    try:
        return parse_mcast_info(prefix.rpartition("/")[0]).key
    except DecodeError:
        return None
