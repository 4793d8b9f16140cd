"""Decoding of untrusted LISP control bytes (the UDP payload of port 4342); raises only DecodeError."""

from __future__ import annotations

import hmac
import socket

from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import parse_ipv4_udp
from testbed.wire.lispctrl.addr import decode_addr, decode_prefix
from testbed.wire.lispctrl.messages import (AUTH, AUTH_LEN, DIGEST, ECM_S, NOT_I, NOT_R, REG_E, REG_I, REG_M,
                                                REG_MERGE, REG_P, REG_R, REG_S, REG_T, REP_E, REP_P, REP_S, REQ_A,
                                                REQ_M, REQ_P, REQ_PITR, REQ_S, REQ_SMR_INVOKED, TRAILER, TYPE_ECM,
                                                TYPE_MAP_NOTIFY, TYPE_MAP_REGISTER, TYPE_MAP_REPLY, TYPE_MAP_REQUEST,
                                                W, WQ, ControlMessage, Ecm, MapNotify, MapRegister, MapReply,
                                                MapRequest)
from testbed.wire.lispctrl.records import decode_records


def _expect_end(buf: bytes, off: int) -> None:
    if off != len(buf):
        raise DecodeError("bad-length", f"{len(buf) - off} bytes after the last record")


def _decode_request(buf: bytes, word: int, nonce: int) -> MapRequest:
    """Map-Request body. Bytes after the last record are ignored (some xTRs pad RLOC-probes)."""
    count = word & 0xFF
    irc = ((word >> 8) & 0x1F) + 1
    source, off = decode_addr(buf, 12, "Source-EID")
    if irc * 2 > len(buf) - off:
        raise DecodeError("bad-count", f"{irc} ITR-RLOCs cannot fit")
    rlocs = []
    for _ in range(irc):
        rloc, off = decode_addr(buf, off, "ITR-RLOC")
        if not rloc:
            raise DecodeError("unknown-afi", "ITR-RLOC AFI 0")
        rlocs.append(rloc)
    if count * 4 > len(buf) - off:
        raise DecodeError("bad-count", f"{count} EID records cannot fit")
    eids = []
    for _ in range(count):
        if off + 4 > len(buf):
            raise DecodeError("bad-count", "EID record overruns the message")
        eid, off = decode_prefix(buf, off + 2, buf[off + 1], "EID-Prefix")
        eids.append(eid)
    reply = None
    if word & REQ_M:
        recs, off = decode_records(buf, off, 1)
        reply = recs[0]
    return MapRequest(nonce, eids, rlocs, source or None, bool(word & REQ_A), bool(word & REQ_P),
                      bool(word & REQ_S), bool(word & REQ_PITR), bool(word & REQ_SMR_INVOKED), reply)


def _decode_auth(buf: bytes) -> tuple[int, int, bytes, int]:
    """Return (key_id, alg_id, auth, offset of the first record) of a Map-Register/Notify."""
    if len(buf) < 16:
        raise DecodeError("truncated", "Map-Register/Notify header needs 16 bytes")
    key_id, alg_id, alen = AUTH.unpack_from(buf, 12)
    if 16 + alen > len(buf):
        raise DecodeError("bad-length", f"authentication data of {alen} bytes overruns the message")
    return key_id, alg_id, buf[16:16 + alen], 16 + alen


def _decode_trailer(buf: bytes, off: int) -> tuple[int, int]:
    """(xTR-ID, site-ID) from the 24 bytes at ``off``, which must end the message."""
    if len(buf) - off != TRAILER.size:
        raise DecodeError("bad-length", f"I bit set: {len(buf) - off} bytes after the records, "
                                        f"{TRAILER.size} expected (xTR-ID, site-ID)")
    xtr, site = TRAILER.unpack_from(buf, off)
    return int.from_bytes(xtr, "big"), int.from_bytes(site, "big")


def decode_control(buf: bytes | bytearray | memoryview) -> ControlMessage:
    """Decode one LISP control message; raise :class:`DecodeError` (only) on malformed input."""
    buf = bytes(buf)
    if not buf:
        raise DecodeError("truncated", "empty control message")
    mtype = buf[0] >> 4
    if mtype == TYPE_ECM:
        if len(buf) < 4:
            raise DecodeError("truncated", "ECM header needs 4 bytes")
        word = W.unpack_from(buf, 0)[0]
        src, dst, sport, dport, start, end = parse_ipv4_udp(memoryview(buf)[4:])
        if 4 + end != len(buf):
            raise DecodeError("bad-length", "bytes after the ECM inner packet")
        return Ecm(socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport, buf[4 + start:4 + end],
                   bool(word & ECM_S))
    if mtype not in (TYPE_MAP_REQUEST, TYPE_MAP_REPLY, TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY):
        raise DecodeError("unknown-type", f"LISP control type {mtype}")
    if len(buf) < 12:
        raise DecodeError("truncated", "control header needs 12 bytes")
    word, nonce = WQ.unpack_from(buf, 0)
    count = word & 0xFF
    if mtype == TYPE_MAP_REQUEST:
        return _decode_request(buf, word, nonce)
    if mtype == TYPE_MAP_REPLY:
        records, off = decode_records(buf, 12, count)
        _expect_end(buf, off)
        return MapReply(nonce, records, bool(word & REP_P), bool(word & REP_E), bool(word & REP_S))
    key_id, alg_id, auth, off = _decode_auth(buf)
    records, off = decode_records(buf, off, count)
    has_id = word & (REG_I if mtype == TYPE_MAP_REGISTER else NOT_I)
    xtr_id, site_id = _decode_trailer(buf, off) if has_id else (None, 0)
    if not has_id:
        _expect_end(buf, off)
    if mtype == TYPE_MAP_REGISTER:
        return MapRegister(nonce, records, key_id, alg_id, bool(word & REG_P), bool(word & REG_M), auth,
                           bool(word & REG_S), bool(word & REG_E), bool(word & REG_T), bool(word & REG_MERGE),
                           bool(word & REG_R), xtr_id, site_id)
    return MapNotify(nonce, records, key_id, alg_id, auth, bool(word & NOT_R), xtr_id, site_id)


def verify_auth(buf: bytes | bytearray | memoryview, key: bytes) -> bool:
    """Check the HMAC of a received Map-Register/Map-Notify (recomputed with the auth field zeroed).

    Returns False for a wrong digest, an unknown algorithm, a length that does not
    match the algorithm, or a message too short to hold its authentication data.
    """
    buf = bytes(buf)
    if len(buf) < 16 or buf[0] >> 4 not in (TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY):
        return False
    _key_id, alg_id, alen = AUTH.unpack_from(buf, 12)
    if alg_id not in DIGEST or alen != AUTH_LEN[alg_id] or 16 + alen > len(buf):
        return False
    zeroed = buf[:16] + bytes(alen) + buf[16 + alen:]
    expected = hmac.new(key, zeroed, DIGEST[alg_id]).digest()
    return hmac.compare_digest(expected, buf[16:16 + alen])
