"""LISP data header (RFC 9300 section 5.1), fast codec.

```
|N|L|E|V|I|C|K|K|            Nonce/Map-Version (24)             |
|                 Instance ID/Locator-Status-Bits (32)          |
```
The C bit is RFC 9300's reserved R bit (mask 0x04 of the first byte): when set,
the LISP payload is a CoreCast message instead of an IP packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N, LISP_HEADER
from testbed.wire.errors import DecodeError

_HDR = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class LispDataHeader:
    """The 8-byte LISP data header; ``flags`` is the whole first byte."""

    flags: int = LISP_FLAG_N
    nonce: int = 0  # 24 bits: nonce or map-version
    iid_lsb: int = 0  # 32 bits: instance ID / locator-status bits

    @property
    def corecast(self) -> bool:
        """True when the C bit says the payload is a CoreCast message."""
        return bool(self.flags & LISP_FLAG_C)

    def encode(self) -> bytes:
        """Return the 8 header bytes."""
        return encode_lisp_header(self.flags, self.nonce, self.iid_lsb)


def encode_lisp_header(flags: int, nonce: int, iid_lsb: int = 0) -> bytes:
    """Build an 8-byte LISP data header."""
    if not 0 <= flags <= 0xFF or not 0 <= nonce <= 0xFFFFFF or not 0 <= iid_lsb <= 0xFFFFFFFF:
        raise ValueError("LISP header field out of range")
    return _HDR.pack((flags << 24) | nonce, iid_lsb)


def pack_lisp_header_into(buf: bytearray | memoryview, offset: int, flags: int, nonce: int, iid_lsb: int = 0) -> None:
    """Write an 8-byte LISP data header into ``buf`` at ``offset`` (fast path)."""
    _HDR.pack_into(buf, offset, (flags << 24) | (nonce & 0xFFFFFF), iid_lsb)


def decode_lisp_header(buf: bytes | bytearray | memoryview) -> LispDataHeader:
    """Parse the first 8 bytes of ``buf``; raise :class:`DecodeError` if truncated."""
    if len(buf) < LISP_HEADER:
        raise DecodeError("truncated", "LISP data header needs 8 bytes")
    word, iid = _HDR.unpack_from(buf, 0)
    return LispDataHeader(word >> 24, word & 0xFFFFFF, iid)
