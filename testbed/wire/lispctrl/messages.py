"""LISP control message classes and their encoders (RFC 9301 sections 5.2-5.8).

Header flag bits are masks of the first 32-bit word (bit 0 = 0x80000000):

* Map-Request: ``Type=1|A|M|P|S|p|s|R|R|Rsvd|L|D|IRC|Record Count``.
* Map-Reply: ``Type=2|P|E|S|Reserved|Record Count``.
* Map-Register: ``Type=3|P|S|I|Reserved|E|T|a|R|M|Record Count``: P proxy-reply
  (bit 4), S security-capable (5), I xTR-ID present (6), E EID-notify (19),
  T use-TTL-for-timeout (20), a merge-request (21), R (22, RFC 9301 reserves
  it for RTRs of NAT traversal), M want-map-notify (23).
* Map-Notify: ``Type=4|I|R|Reserved|Record Count``: I xTR-ID present (bit 4), R (5).
* ECM: ``Type=8|S|D|E|M|Reserved``.

Map-Register and Map-Notify carry ``Key ID (8) | Algorithm ID (8) |
Authentication Data Length (16)`` then the authentication data (the full HMAC
output, 20 bytes for HMAC-SHA-1-96 and 32 for HMAC-SHA-256-128, as OOR, VPP and
OpenDaylight send it), the records and, with I set, the 128-bit xTR-ID and
64-bit site-ID. The HMAC covers the whole message (trailer included) with the
authentication data zeroed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass

from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispctrl.addr import check_u, encode_addr, encode_prefix
from testbed.wire.lispctrl.records import EidRecord

TYPE_MAP_REQUEST, TYPE_MAP_REPLY, TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY, TYPE_ECM = 1, 2, 3, 4, 8
ALG_NONE, ALG_SHA1_96, ALG_SHA256_128 = 0, 1, 2
AUTH_LEN = {ALG_NONE: 0, ALG_SHA1_96: 20, ALG_SHA256_128: 32}
"""Authentication Data length in bytes per Algorithm ID (full HMAC output)."""
DIGEST = {ALG_SHA1_96: hashlib.sha1, ALG_SHA256_128: hashlib.sha256}

REQ_A, REQ_M, REQ_P, REQ_S = 0x08000000, 0x04000000, 0x02000000, 0x01000000
REQ_PITR, REQ_SMR_INVOKED = 0x00800000, 0x00400000
REP_P, REP_E, REP_S = 0x08000000, 0x04000000, 0x02000000
REG_P, REG_S, REG_I = 0x08000000, 0x04000000, 0x02000000
REG_E, REG_T, REG_MERGE, REG_R, REG_M = 0x00001000, 0x00000800, 0x00000400, 0x00000200, 0x00000100
NOT_I, NOT_R = 0x08000000, 0x04000000
ECM_S, ECM_D = 0x08000000, 0x04000000
TRAILER = struct.Struct("!16s8s")
"""xTR-ID (128 bits) and site-ID (64 bits) after the last record when I is set."""

W = struct.Struct("!I")
WQ = struct.Struct("!IQ")
AUTH = struct.Struct("!BBH")


@dataclass
class MapRequest:
    """Map-Request (type 1). ``eids`` are prefixes (``"/0"`` = AFI 0, the RLOC-probe form); M is set iff
    ``map_reply`` is given. ``itr_rlocs`` may mix AFIs: a responder uses the first IPv4 one."""

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
        """Return the wire bytes (ValueError if a field does not fit)."""
        check_u("nonce", self.nonce, 64)
        if not 1 <= len(self.itr_rlocs) <= 32 or not all(self.itr_rlocs):
            raise ValueError("a Map-Request carries 1 to 32 ITR-RLOCs")
        check_u("record count", len(self.eids), 8)
        word = ((TYPE_MAP_REQUEST << 28) | (REQ_A if self.authoritative else 0)
                | (REQ_M if self.map_reply is not None else 0) | (REQ_P if self.probe else 0)
                | (REQ_S if self.smr else 0) | (REQ_PITR if self.pitr else 0)
                | (REQ_SMR_INVOKED if self.smr_invoked else 0)
                | ((len(self.itr_rlocs) - 1) << 8) | len(self.eids))
        parts = [WQ.pack(word, self.nonce), encode_addr(self.source_eid)]
        parts.extend(encode_addr(r) for r in self.itr_rlocs)
        for eid in self.eids:
            plen, addr = encode_prefix(eid)
            parts.append(bytes((0, plen)) + addr)
        if self.map_reply is not None:
            parts.append(self.map_reply.encode())
        return b"".join(parts)

    def reply_rloc(self) -> str | None:
        """The ITR-RLOC a Map-Reply goes to: the first IPv4 one (None if there is none), RFC 9301 5.3."""
        for rloc in self.itr_rlocs:
            if rloc and ":" not in rloc:
                return rloc
        return None


@dataclass
class MapReply:
    """Map-Reply (type 2); a record with no locators is a negative reply; ``probe`` answers an RLOC-probe."""

    nonce: int
    records: list[EidRecord]
    probe: bool = False
    echo_nonce: bool = False
    security: bool = False

    def encode(self) -> bytes:
        """Return the wire bytes."""
        check_u("nonce", self.nonce, 64)
        check_u("record count", len(self.records), 8)
        word = ((TYPE_MAP_REPLY << 28) | (REP_P if self.probe else 0) | (REP_E if self.echo_nonce else 0)
                | (REP_S if self.security else 0) | len(self.records))
        return WQ.pack(word, self.nonce) + b"".join(r.encode() for r in self.records)


def _trailer(xtr_id: int | None, site_id: int) -> bytes:
    if xtr_id is None:
        if site_id:
            raise ValueError("a site-ID needs an xTR-ID (the I bit)")
        return b""
    check_u("xtr_id", xtr_id, 128)
    check_u("site_id", site_id, 64)
    return TRAILER.pack(xtr_id.to_bytes(16, "big"), site_id.to_bytes(8, "big"))


def auth_message(word: int, nonce: int, key_id: int, alg_id: int, auth: bytes, records: list[EidRecord],
                 trailer: bytes, key: bytes | None) -> bytes:
    """Build a Map-Register/Map-Notify; with ``key``, fill in the HMAC (auth zeroed while hashing)."""
    check_u("nonce", nonce, 64)
    check_u("key_id", key_id, 8)
    check_u("alg_id", alg_id, 8)
    check_u("record count", len(records), 8)
    body = b"".join(r.encode() for r in records) + trailer
    if key is None:
        check_u("auth length", len(auth), 16)
        return WQ.pack(word | len(records), nonce) + AUTH.pack(key_id, alg_id, len(auth)) + auth + body
    if alg_id not in DIGEST:
        raise ValueError(f"cannot authenticate with algorithm {alg_id}")
    alen = AUTH_LEN[alg_id]
    head = WQ.pack(word | len(records), nonce) + AUTH.pack(key_id, alg_id, alen)
    digest = hmac.new(key, head + bytes(alen) + body, DIGEST[alg_id]).digest()
    return head + digest + body


@dataclass
class MapRegister:
    """Map-Register (type 3). ``xtr_id`` (an int < 2**128) set means the I bit and the xTR-ID/site-ID trailer."""

    nonce: int
    records: list[EidRecord]
    key_id: int = 0
    alg_id: int = ALG_SHA256_128
    proxy_reply: bool = False
    want_map_notify: bool = True
    auth: bytes = b""
    security: bool = False
    eid_notify: bool = False
    use_ttl: bool = False
    merge: bool = False
    rtr: bool = False
    xtr_id: int | None = None
    site_id: int = 0

    @property
    def word(self) -> int:
        """The first 32-bit word without the record count."""
        return ((TYPE_MAP_REGISTER << 28) | (REG_P if self.proxy_reply else 0) | (REG_S if self.security else 0)
                | (REG_I if self.xtr_id is not None else 0) | (REG_E if self.eid_notify else 0)
                | (REG_T if self.use_ttl else 0) | (REG_MERGE if self.merge else 0) | (REG_R if self.rtr else 0)
                | (REG_M if self.want_map_notify else 0))

    def encode(self, key: bytes | None = None) -> bytes:
        """Return the wire bytes; with ``key`` the authentication data is computed, else ``auth`` is used."""
        return auth_message(self.word, self.nonce, self.key_id, self.alg_id, self.auth, self.records,
                            _trailer(self.xtr_id, self.site_id), key)


@dataclass
class MapNotify:
    """Map-Notify (type 4): the Map-Server's acknowledgement; I bit and trailer iff ``xtr_id`` is set."""

    nonce: int
    records: list[EidRecord]
    key_id: int = 0
    alg_id: int = ALG_SHA256_128
    auth: bytes = b""
    rtr: bool = False
    xtr_id: int | None = None
    site_id: int = 0

    def encode(self, key: bytes | None = None) -> bytes:
        """Return the wire bytes; with ``key`` the authentication data is computed, else ``auth`` is used."""
        word = (TYPE_MAP_NOTIFY << 28) | (NOT_I if self.xtr_id is not None else 0) | (NOT_R if self.rtr else 0)
        return auth_message(word, self.nonce, self.key_id, self.alg_id, self.auth, self.records,
                            _trailer(self.xtr_id, self.site_id), key)


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
        check_u("sport", self.sport, 16)
        check_u("dport", self.dport, 16)
        head = W.pack((TYPE_ECM << 28) | (ECM_S if self.security else 0))
        return head + build_ipv4_udp(ipaddress.IPv4Address(self.inner_src).packed,
                                     ipaddress.IPv4Address(self.inner_dst).packed, self.sport, self.dport,
                                     self.payload)


ControlMessage = MapRequest | MapReply | MapRegister | MapNotify | Ecm
