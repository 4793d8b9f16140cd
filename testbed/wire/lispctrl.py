"""LISP control messages (RFC 9301 section 5), fast codec, IPv4 (AFI 1) only.

Every message class has ``encode() -> bytes``; :func:`decode_control` turns
untrusted bytes (the UDP payload of port 4342) back into one of them and
raises only :class:`~testbed.wire.errors.DecodeError`.

Layouts (big-endian; see docs/protocol.md for the full diagrams):

* Map-Request (type 1): ``Type|A|M|P|S|p|s|R|R|Rsvd|L|D|IRC|Record Count``,
  nonce (64), Source-EID-AFI + address (AFI 0 = none), IRC+1 ITR-RLOCs
  (AFI + address), records ``Reserved|EID mask-len|EID-Prefix-AFI|EID-Prefix``,
  then one Map-Reply record when M is set.
* Map-Reply (type 2): ``Type|P|E|S|Reserved|Record Count``, nonce, records.
* Map-Register (type 3): ``Type|P|S|I|Reserved|E|T|a|R|M|Record Count``, nonce,
  ``Key ID (8)|Algorithm ID (8)|Authentication Data Length (16)``, auth data, records.
  Implementations that predate RFC 9301 read Key ID and Algorithm ID as one
  16-bit Key ID; with Key ID 0 both readings agree (value = algorithm).
* Map-Notify (type 4): same shape as Map-Register, no flags of ours.
* ECM (type 8): ``Type|S|D|E|M|Reserved`` then an IPv4/UDP packet holding a
  control message (a Map-Request to the Map-Resolver).

EID-record: ``Record TTL (32) | Locator Count | EID mask-len | ACT(3)|A|Reserved(12)
| Rsvd(4)|Map-Version(12) | EID-Prefix-AFI | EID-Prefix``; locator record:
``Priority | Weight | M Priority | M Weight | Unused Flags...|L|p|R | Loc-AFI | Locator``.
CoreCast capability is bit 0x8000 of the locator flags (``LOC_FLAG_CORECAST``).

Authentication data is the full HMAC output (20 bytes for HMAC-SHA-1-96,
32 bytes for HMAC-SHA-256-128) as deployed implementations (OOR, VPP,
OpenDaylight) send it; the HMAC covers the whole message with the
authentication data zeroed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

from testbed.wire.constants import AFI_IPV4, LOC_FLAG_CORECAST, LOC_FLAG_L, LOC_FLAG_P, LOC_FLAG_R
from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import build_ipv4_udp, parse_ipv4_udp

TYPE_MAP_REQUEST, TYPE_MAP_REPLY, TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY, TYPE_ECM = 1, 2, 3, 4, 8
ACTION_NO_ACTION, ACTION_NATIVE_FORWARD, ACTION_SEND_MAP_REQUEST, ACTION_DROP = 0, 1, 2, 3
ALG_NONE, ALG_SHA1_96, ALG_SHA256_128 = 0, 1, 2

AUTH_LEN = {ALG_NONE: 0, ALG_SHA1_96: 20, ALG_SHA256_128: 32}
"""Authentication Data length in bytes per Algorithm ID (full HMAC output)."""
_DIGEST = {ALG_SHA1_96: hashlib.sha1, ALG_SHA256_128: hashlib.sha256}

# Header flag bits, as masks of the first 32-bit word.
REQ_A, REQ_M, REQ_P, REQ_S = 0x08000000, 0x04000000, 0x02000000, 0x01000000
REQ_PITR, REQ_SMR_INVOKED = 0x00800000, 0x00400000
REP_P, REP_E, REP_S = 0x08000000, 0x04000000, 0x02000000
REG_P, REG_S, REG_I = 0x08000000, 0x04000000, 0x02000000
REG_E, REG_T, REG_MERGE, REG_R, REG_M = 0x00001000, 0x00000800, 0x00000400, 0x00000200, 0x00000100
ECM_S, ECM_D = 0x08000000, 0x04000000
REC_AUTHORITATIVE = 0x1000  # A bit in the 16-bit ACT|A|Reserved field

_W = struct.Struct("!I")
_WQ = struct.Struct("!IQ")
_AUTH = struct.Struct("!BBH")
_REC = struct.Struct("!IBBHHH4s")  # TTL, loc count, mask-len, ACT|A, version, AFI, prefix
_LOC = struct.Struct("!BBBBHH4s")  # prio, weight, mprio, mweight, flags, AFI, RLOC
_REQREC = struct.Struct("!BBH4s")  # reserved, mask-len, AFI, prefix
_AFI_ADDR = struct.Struct("!H4s")
_MIN_REC = _REC.size  # 16 bytes: a record with no locators


def _addr(text: str) -> bytes:
    """Return the 4 bytes of a dotted IPv4 address (ValueError if malformed)."""
    return ipaddress.IPv4Address(text).packed


def _prefix(text: str) -> tuple[bytes, int]:
    """Return (network bytes, length) of ``a.b.c.d/n`` (ValueError if host bits are set)."""
    net = ipaddress.IPv4Network(text, strict=True)
    return net.network_address.packed, net.prefixlen


def _fmt_prefix(raw: bytes, plen: int) -> str:
    """Return the normalized ``a.b.c.d/n`` text of a decoded prefix (host bits cleared)."""
    value = int.from_bytes(raw, "big") & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
    return f"{socket.inet_ntoa(value.to_bytes(4, 'big'))}/{plen}"


def _check_u(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value} does not fit in {bits} bits")


@dataclass
class Locator:
    """A locator record: one RLOC of a mapping with its policy and flags."""

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
        """Return the 12 wire bytes."""
        for name in ("priority", "weight", "m_priority", "m_weight"):
            _check_u(name, getattr(self, name), 8)
        return _LOC.pack(self.priority, self.weight, self.m_priority, self.m_weight,
                         self.flags, AFI_IPV4, _addr(self.rloc))


@dataclass
class EidRecord:
    """An EID-record: an EID prefix, its TTL (minutes), action and locators."""

    prefix: str
    ttl: int = 1440
    action: int = ACTION_NO_ACTION
    authoritative: bool = True
    map_version: int = 0
    locators: list[Locator] = field(default_factory=list)

    def encode(self) -> bytes:
        """Return the wire bytes of the record and its locator records."""
        raw, plen = _prefix(self.prefix)
        _check_u("ttl", self.ttl, 32)
        _check_u("action", self.action, 3)
        _check_u("map_version", self.map_version, 12)
        _check_u("locator count", len(self.locators), 8)
        flags = (self.action << 13) | (REC_AUTHORITATIVE if self.authoritative else 0)
        head = _REC.pack(self.ttl, len(self.locators), plen, flags, self.map_version, AFI_IPV4, raw)
        return head + b"".join(loc.encode() for loc in self.locators)


@dataclass
class MapRequest:
    """Map-Request (type 1). ``eids`` are prefixes; the M bit is set iff ``map_reply`` is given."""

    nonce: int
    eids: list[str]
    itr_rlocs: list[str]
    source_eid: str | None = None
    authoritative: bool = False
    probe: bool = False
    smr: bool = False
    pitr: bool = False
    smr_invoked: bool = False
    map_reply: EidRecord | None = None

    def encode(self) -> bytes:
        """Return the wire bytes."""
        _check_u("nonce", self.nonce, 64)
        if not 1 <= len(self.itr_rlocs) <= 32:
            raise ValueError("a Map-Request carries 1 to 32 ITR-RLOCs")
        _check_u("record count", len(self.eids), 8)
        word = ((TYPE_MAP_REQUEST << 28) | (REQ_A if self.authoritative else 0)
                | (REQ_M if self.map_reply is not None else 0) | (REQ_P if self.probe else 0)
                | (REQ_S if self.smr else 0) | (REQ_PITR if self.pitr else 0)
                | (REQ_SMR_INVOKED if self.smr_invoked else 0)
                | ((len(self.itr_rlocs) - 1) << 8) | len(self.eids))
        parts = [_WQ.pack(word, self.nonce)]
        if self.source_eid is None:
            parts.append(b"\x00\x00")
        else:
            parts.append(_AFI_ADDR.pack(AFI_IPV4, _addr(self.source_eid)))
        parts.extend(_AFI_ADDR.pack(AFI_IPV4, _addr(r)) for r in self.itr_rlocs)
        for eid in self.eids:
            raw, plen = _prefix(eid)
            parts.append(_REQREC.pack(0, plen, AFI_IPV4, raw))
        if self.map_reply is not None:
            parts.append(self.map_reply.encode())
        return b"".join(parts)


@dataclass
class MapReply:
    """Map-Reply (type 2); a record with no locators is a negative reply."""

    nonce: int
    records: list[EidRecord]
    probe: bool = False
    echo_nonce: bool = False
    security: bool = False

    def encode(self) -> bytes:
        """Return the wire bytes."""
        _check_u("nonce", self.nonce, 64)
        _check_u("record count", len(self.records), 8)
        word = ((TYPE_MAP_REPLY << 28) | (REP_P if self.probe else 0) | (REP_E if self.echo_nonce else 0)
                | (REP_S if self.security else 0) | len(self.records))
        return _WQ.pack(word, self.nonce) + b"".join(r.encode() for r in self.records)


def _auth_message(word: int, nonce: int, key_id: int, alg_id: int, auth: bytes,
                  records: list[EidRecord], key: bytes | None) -> bytes:
    """Build a Map-Register/Map-Notify; with ``key``, fill in the HMAC (auth zeroed while hashing)."""
    _check_u("nonce", nonce, 64)
    _check_u("key_id", key_id, 8)
    _check_u("alg_id", alg_id, 8)
    _check_u("record count", len(records), 8)
    body = b"".join(r.encode() for r in records)
    if key is None:
        _check_u("auth length", len(auth), 16)
        return _WQ.pack(word | len(records), nonce) + _AUTH.pack(key_id, alg_id, len(auth)) + auth + body
    if alg_id not in _DIGEST:
        raise ValueError(f"cannot authenticate with algorithm {alg_id}")
    alen = AUTH_LEN[alg_id]
    head = _WQ.pack(word | len(records), nonce) + _AUTH.pack(key_id, alg_id, alen)
    digest = hmac.new(key, head + bytes(alen) + body, _DIGEST[alg_id]).digest()
    return head + digest + body


@dataclass
class MapRegister:
    """Map-Register (type 3) with P (proxy-reply) and M (want-map-notify) bits."""

    nonce: int
    records: list[EidRecord]
    key_id: int = 0
    alg_id: int = ALG_SHA256_128
    proxy_reply: bool = False
    want_map_notify: bool = True
    auth: bytes = b""

    def encode(self, key: bytes | None = None) -> bytes:
        """Return the wire bytes; with ``key`` the authentication data is computed, else ``auth`` is used."""
        word = ((TYPE_MAP_REGISTER << 28) | (REG_P if self.proxy_reply else 0)
                | (REG_M if self.want_map_notify else 0))
        return _auth_message(word, self.nonce, self.key_id, self.alg_id, self.auth, self.records, key)


@dataclass
class MapNotify:
    """Map-Notify (type 4): the Map-Server's acknowledgement of a Map-Register."""

    nonce: int
    records: list[EidRecord]
    key_id: int = 0
    alg_id: int = ALG_SHA256_128
    auth: bytes = b""

    def encode(self, key: bytes | None = None) -> bytes:
        """Return the wire bytes; with ``key`` the authentication data is computed, else ``auth`` is used."""
        return _auth_message(TYPE_MAP_NOTIFY << 28, self.nonce, self.key_id, self.alg_id, self.auth,
                             self.records, key)


@dataclass
class Ecm:
    """Encapsulated Control Message (type 8): 4-byte header, then IPv4/UDP carrying ``payload``."""

    inner_src: str
    inner_dst: str
    sport: int
    dport: int
    payload: bytes
    security: bool = False

    def encode(self) -> bytes:
        """Return the wire bytes (inner UDP checksum computed)."""
        _check_u("sport", self.sport, 16)
        _check_u("dport", self.dport, 16)
        head = _W.pack((TYPE_ECM << 28) | (ECM_S if self.security else 0))
        return head + build_ipv4_udp(_addr(self.inner_src), _addr(self.inner_dst), self.sport, self.dport,
                                     self.payload)


ControlMessage = MapRequest | MapReply | MapRegister | MapNotify | Ecm


# ---------------------------------------------------------------- decoding


def _decode_records(buf: bytes, off: int, count: int) -> tuple[list[EidRecord], int]:
    """Decode ``count`` EID-records from ``off``; return them and the offset after them."""
    end = len(buf)
    if count * _MIN_REC > end - off:
        raise DecodeError("bad-count", f"{count} records cannot fit in {end - off} bytes")
    records = []
    for _ in range(count):
        if off + _MIN_REC > end:
            raise DecodeError("bad-count", "record overruns the message")
        ttl, nloc, plen, actflags, version, afi, raw = _REC.unpack_from(buf, off)
        if afi != AFI_IPV4:
            raise DecodeError("unknown-afi", f"EID-Prefix-AFI {afi}")
        if plen > 32:
            raise DecodeError("bad-prefix", f"EID mask-len {plen}")
        off += _MIN_REC
        if nloc * _LOC.size > end - off:
            raise DecodeError("bad-count", f"{nloc} locators cannot fit in {end - off} bytes")
        locs = []
        for _ in range(nloc):
            prio, weight, mprio, mweight, flags, lafi, rloc = _LOC.unpack_from(buf, off)
            if lafi != AFI_IPV4:
                raise DecodeError("unknown-afi", f"Loc-AFI {lafi}")
            off += _LOC.size
            locs.append(Locator(socket.inet_ntoa(rloc), prio, weight, mprio, mweight,
                                bool(flags & LOC_FLAG_L), bool(flags & LOC_FLAG_P),
                                bool(flags & LOC_FLAG_R), bool(flags & LOC_FLAG_CORECAST)))
        records.append(EidRecord(_fmt_prefix(raw, plen), ttl, actflags >> 13, bool(actflags & REC_AUTHORITATIVE),
                                 version & 0x0FFF, locs))
    return records, off


def _expect_end(buf: bytes, off: int) -> None:
    if off != len(buf):
        raise DecodeError("bad-length", f"{len(buf) - off} bytes after the last record")


def _afi_addr(buf: bytes, off: int, what: str) -> tuple[str | None, int]:
    """Decode an AFI-prefixed address (AFI 0 = none, AFI 1 = IPv4)."""
    if off + 2 > len(buf):
        raise DecodeError("truncated", what)
    afi = (buf[off] << 8) | buf[off + 1]
    if afi == 0:
        return None, off + 2
    if afi != AFI_IPV4:
        raise DecodeError("unknown-afi", f"{what} AFI {afi}")
    if off + 6 > len(buf):
        raise DecodeError("truncated", what)
    return socket.inet_ntoa(buf[off + 2:off + 6]), off + 6


def _decode_request(buf: bytes, word: int, nonce: int) -> MapRequest:
    count = word & 0xFF
    irc = ((word >> 8) & 0x1F) + 1
    source, off = _afi_addr(buf, 12, "Source-EID")
    if irc * 6 > len(buf) - off:
        raise DecodeError("bad-count", f"{irc} ITR-RLOCs cannot fit")
    rlocs = []
    for _ in range(irc):
        rloc, off = _afi_addr(buf, off, "ITR-RLOC")
        if rloc is None:
            raise DecodeError("unknown-afi", "ITR-RLOC AFI 0")
        rlocs.append(rloc)
    if count * _REQREC.size > len(buf) - off:
        raise DecodeError("bad-count", f"{count} EID records cannot fit")
    eids = []
    for _ in range(count):
        _res, plen, afi, raw = _REQREC.unpack_from(buf, off)
        if afi != AFI_IPV4:
            raise DecodeError("unknown-afi", f"EID-Prefix-AFI {afi}")
        if plen > 32:
            raise DecodeError("bad-prefix", f"EID mask-len {plen}")
        eids.append(_fmt_prefix(raw, plen))
        off += _REQREC.size
    reply = None
    if word & REQ_M:
        recs, off = _decode_records(buf, off, 1)
        reply = recs[0]
    _expect_end(buf, off)
    return MapRequest(nonce, eids, rlocs, source, bool(word & REQ_A), bool(word & REQ_P), bool(word & REQ_S),
                      bool(word & REQ_PITR), bool(word & REQ_SMR_INVOKED), reply)


def _decode_auth(buf: bytes) -> tuple[int, int, bytes, int]:
    """Return (key_id, alg_id, auth, offset of the first record) of a Map-Register/Notify."""
    if len(buf) < 16:
        raise DecodeError("truncated", "Map-Register/Notify header needs 16 bytes")
    key_id, alg_id, alen = _AUTH.unpack_from(buf, 12)
    if 16 + alen > len(buf):
        raise DecodeError("bad-length", f"authentication data of {alen} bytes overruns the message")
    return key_id, alg_id, buf[16:16 + alen], 16 + alen


def decode_control(buf: bytes | bytearray | memoryview) -> ControlMessage:
    """Decode one LISP control message; raise :class:`DecodeError` (only) on malformed input."""
    buf = bytes(buf)
    if not buf:
        raise DecodeError("truncated", "empty control message")
    mtype = buf[0] >> 4
    if mtype == TYPE_ECM:
        if len(buf) < 4:
            raise DecodeError("truncated", "ECM header needs 4 bytes")
        word = _W.unpack_from(buf, 0)[0]
        src, dst, sport, dport, start, end = parse_ipv4_udp(memoryview(buf)[4:])
        if 4 + end != len(buf):
            raise DecodeError("bad-length", "bytes after the ECM inner packet")
        return Ecm(socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport, buf[4 + start:4 + end],
                   bool(word & ECM_S))
    if mtype not in (TYPE_MAP_REQUEST, TYPE_MAP_REPLY, TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY):
        raise DecodeError("unknown-type", f"LISP control type {mtype}")
    if len(buf) < 12:
        raise DecodeError("truncated", "control header needs 12 bytes")
    word, nonce = _WQ.unpack_from(buf, 0)
    count = word & 0xFF
    if mtype == TYPE_MAP_REQUEST:
        return _decode_request(buf, word, nonce)
    if mtype == TYPE_MAP_REPLY:
        records, off = _decode_records(buf, 12, count)
        _expect_end(buf, off)
        return MapReply(nonce, records, bool(word & REP_P), bool(word & REP_E), bool(word & REP_S))
    key_id, alg_id, auth, off = _decode_auth(buf)
    records, off = _decode_records(buf, off, count)
    _expect_end(buf, off)
    if mtype == TYPE_MAP_REGISTER:
        return MapRegister(nonce, records, key_id, alg_id, bool(word & REG_P), bool(word & REG_M), auth)
    return MapNotify(nonce, records, key_id, alg_id, auth)


def verify_auth(buf: bytes | bytearray | memoryview, key: bytes) -> bool:
    """Check the HMAC of a received Map-Register/Map-Notify (recomputed with the auth field zeroed).

    Returns False for a wrong digest, an unknown algorithm, a length that does not
    match the algorithm, or a message too short to hold its authentication data.
    """
    buf = bytes(buf)
    if len(buf) < 16 or buf[0] >> 4 not in (TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY):
        return False
    _key_id, alg_id, alen = _AUTH.unpack_from(buf, 12)
    if alg_id not in _DIGEST or alen != AUTH_LEN[alg_id] or 16 + alen > len(buf):
        return False
    zeroed = buf[:16] + bytes(alen) + buf[16 + alen:]
    expected = hmac.new(key, zeroed, _DIGEST[alg_id]).digest()
    return hmac.compare_digest(expected, buf[16:16 + alen])
