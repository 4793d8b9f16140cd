"""AFI-encoded addresses of LISP control messages (RFC 9301 section 5, AFIs from IANA).

An address travels as ``AFI (16) | address``. Decoded addresses are text:

* AFI 0 (no address): ``""`` (``None`` where a field may be absent, e.g. Source-EID);
* AFI 1: dotted IPv4, ``"192.0.2.1"``;
* AFI 2: IPv6 text, ``"2001:db8::1"`` (carried, never used for forwarding);
* AFI 16387 (LCAF, RFC 8060): ``"lcaf:<hex>"``, the hex of the 6-byte LCAF
  header and its body, kept opaque.

Any other AFI has no known length, so the message cannot be parsed past it:
:class:`~testbed.wire.errors.DecodeError` ``unknown-afi``. Prefix text is
``address/mask-len`` (``"/0"`` for AFI 0).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from testbed.wire.constants import AFI_IPV4, AFI_LCAF
from testbed.wire.errors import DecodeError

AFI_NONE, AFI_IPV6 = 0, 2
_LCAF_HEAD = struct.Struct("!BBBBH")  # rsvd1, flags, type, rsvd2, length
MAX_PLEN = {AFI_IPV4: 32, AFI_IPV6: 128}
"""Largest mask-len per AFI; AFI 0 and LCAF prefixes take any 8-bit mask-len."""


def check_u(name: str, value: int, bits: int) -> None:
    """Raise ValueError unless ``0 <= value < 2**bits``."""
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value} does not fit in {bits} bits")


def afi_of(text: str) -> int:
    """Return the AFI of an address text (see the module docstring)."""
    if not text:
        return AFI_NONE
    if text.startswith("lcaf:"):
        return AFI_LCAF
    return AFI_IPV6 if ":" in text else AFI_IPV4


def is_ipv4(text: str | None) -> bool:
    """True for an AFI 1 (IPv4) address text."""
    return bool(text) and ":" not in text  # type: ignore[operator]


def encode_addr(text: str | None) -> bytes:
    """Return ``AFI | address`` for an address text; ValueError if malformed."""
    if not text:
        return b"\x00\x00"
    afi = afi_of(text)
    if afi == AFI_IPV4:
        return b"\x00\x01" + ipaddress.IPv4Address(text).packed
    if afi == AFI_IPV6:
        return b"\x00\x02" + ipaddress.IPv6Address(text).packed
    body = bytes.fromhex(text[5:])
    if len(body) < _LCAF_HEAD.size or _LCAF_HEAD.unpack_from(body)[4] != len(body) - _LCAF_HEAD.size:
        raise ValueError(f"LCAF address {text!r}: length field does not match")
    return struct.pack("!H", AFI_LCAF) + body


def decode_addr(buf: bytes, off: int, what: str) -> tuple[str, int]:
    """Decode ``AFI | address`` at ``off``; return (text, offset after it). DecodeError on bad input."""
    end = len(buf)
    if off + 2 > end:
        raise DecodeError("truncated", what)
    afi = (buf[off] << 8) | buf[off + 1]
    off += 2
    if afi == AFI_IPV4:
        if off + 4 > end:
            raise DecodeError("truncated", what)
        return socket.inet_ntoa(buf[off:off + 4]), off + 4
    if afi == AFI_NONE:
        return "", off
    if afi == AFI_IPV6:
        if off + 16 > end:
            raise DecodeError("truncated", what)
        return str(ipaddress.IPv6Address(buf[off:off + 16])), off + 16
    if afi == AFI_LCAF:
        if off + _LCAF_HEAD.size > end:
            raise DecodeError("truncated", f"{what} LCAF header")
        stop = off + _LCAF_HEAD.size + _LCAF_HEAD.unpack_from(buf, off)[4]
        if stop > end:
            raise DecodeError("truncated", f"{what} LCAF body")
        return "lcaf:" + buf[off:stop].hex(), stop
    raise DecodeError("unknown-afi", f"{what} AFI {afi}")


def split_prefix(text: str) -> tuple[str, int]:
    """Split ``address/mask-len`` into its parts; ValueError if malformed."""
    addr, sep, plen = text.rpartition("/")
    if not sep:
        raise ValueError(f"prefix {text!r} has no mask-len")
    return addr, int(plen)


def encode_prefix(text: str) -> tuple[int, bytes]:
    """Return (mask-len, ``AFI | address``) of a prefix text; IPv4/IPv6 host bits must be zero."""
    addr, plen = split_prefix(text)
    afi = afi_of(addr)
    check_u("mask-len", plen, 8)
    if afi in MAX_PLEN:
        net = ipaddress.ip_network(text, strict=True)
        if net.version != (4 if afi == AFI_IPV4 else 6):
            raise ValueError(f"prefix {text!r}")
    return plen, encode_addr(addr)


def format_prefix(addr: str, plen: int, afi_max: int | None) -> str:
    """Return the normalized prefix text (host bits cleared) of a decoded address and mask-len."""
    if afi_max is None:
        return f"{addr}/{plen}"
    return str(ipaddress.ip_network(f"{addr}/{plen}", strict=False))


def decode_prefix(buf: bytes, off: int, plen: int, what: str) -> tuple[str, int]:
    """Decode the address of a prefix with ``plen`` at ``off``; return (prefix text, offset after it)."""
    if off + 6 <= len(buf) and buf[off] == 0 and buf[off + 1] == AFI_IPV4:  # the common case, fast
        if plen > 32:
            raise DecodeError("bad-prefix", f"{what} mask-len {plen}")
        value = int.from_bytes(buf[off + 2:off + 6], "big") & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
        return f"{socket.inet_ntoa(value.to_bytes(4, 'big'))}/{plen}", off + 6
    addr, off = decode_addr(buf, off, what)
    limit = MAX_PLEN.get(afi_of(addr))
    if limit is not None and plen > limit:
        raise DecodeError("bad-prefix", f"{what} mask-len {plen}")
    return format_prefix(addr, plen, limit), off
