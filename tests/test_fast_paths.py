"""Fast paths of issue 16 item 3 give exactly what the full paths give.

* ``corecast.decode`` of a REF (built without the frozen ``__init__``): a real, frozen,
  hashable CoreCastRef equal to the one the full path builds; malformed REFs still fail
  with the same reasons.
* The Map-Server's 60-byte ECM Map-Request parser (testbed/wire/lispctrl/fast.py):
  on every single-byte change of a valid request, whatever it accepts the full decoder
  decodes to the same values, and a Map-Server answers byte for byte (and counts) as
  one with the fast path switched off.
"""

from __future__ import annotations

import dataclasses
import random
import socket

import pytest

from testbed.lisp import mapserver as msmod
from testbed.lisp.mapserver import MapServer, Site
from testbed.wire import corecast as cc
from testbed.wire import lispctrl as lc
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl.fast import ECM_REQUEST_LEN, parse_ecm_request

SRC, DST = socket.inet_aton("10.0.0.10"), socket.inet_aton("10.1.2.3")


def full_ref(buf: bytes) -> cc.CoreCastRef:
    """What decode() built before its fast path: peek_type, unpack_ref, the dataclass's own __init__."""
    assert cc.peek_type(buf) == cc.TYPE_REF
    flags, sid, seq, digest, src, dst, sport, dport = cc.unpack_ref(buf)
    return cc.CoreCastRef(sid, seq, digest, src, dst, sport, dport, flags)


def test_ref_decode_fast_path_builds_a_real_frozen_ref():
    wire = cc.encode_ref(7, 41, b"\x01" * 8, SRC, DST, 5000, 6000, cc.FLAG_BATCH | cc.FLAG_LAST_REF)
    for buf in (wire, bytearray(wire), memoryview(wire)):
        ref = cc.decode(buf)
        assert type(ref) is cc.CoreCastRef
        assert ref == full_ref(wire) and hash(ref) == hash(full_ref(wire)) and repr(ref) == repr(full_ref(wire))
        assert (ref.stream_id, ref.seq, ref.dst_eid, ref.dst_port, ref.flags) == (7, 41, DST, 6000, 0x60)
        assert ref.encode() == wire
        with pytest.raises(dataclasses.FrozenInstanceError):
            ref.seq = 1  # type: ignore[misc]


def test_ref_decode_fast_path_matches_full_path_on_random_refs():
    rng = random.Random(16)
    for _ in range(2000):
        buf = bytes([0x12]) + rng.randbytes(31)
        assert cc.decode(buf) == full_ref(buf)


@pytest.mark.parametrize("buf, reason", [
    (bytes([0x12]) + bytes(30), "bad-length"),  # 31 bytes
    (bytes([0x12]) + bytes(32), "bad-length"),  # 33 bytes
    (bytes([0x22]) + bytes(31), "bad-version"),
    (bytes([0x17]) + bytes(31), "unknown-type"),
])
def test_malformed_refs_still_fail_with_their_reason(buf, reason):
    with pytest.raises(DecodeError) as exc:
        cc.decode(buf)
    assert exc.value.reason == reason


def ecm_request(nonce: int, eid: str, itr: str = "192.0.2.9", sport: int = 4343) -> bytes:
    """An ECM Map-Request as the xTRs send it."""
    return lc.Ecm(itr, eid.partition("/")[0], sport, 4342, lc.MapRequest(nonce, [eid], [itr]).encode()).encode()


def test_ecm_request_sample_parses_to_its_fields():
    buf = ecm_request(0x1122334455667788, "10.1.2.3/32")
    assert len(buf) == ECM_REQUEST_LEN
    assert parse_ecm_request(buf) == (0x1122334455667788, socket.inet_aton("192.0.2.9"), 4343, 0x0A010203, 32)
    assert parse_ecm_request(ecm_request(5, "10.1.2.0/24"))[3:] == (0x0A010200, 24)
    assert parse_ecm_request(buf[:-1]) is None and parse_ecm_request(buf + b"\0") is None


def full_fields(buf: bytes) -> tuple[int, bytes, int, int, int] | None:
    """The same five values from the full decoder, or None if it rejects the message or it is another shape."""
    try:
        ecm = lc.decode_control(buf)
        req = lc.decode_control(ecm.payload) if isinstance(ecm, lc.Ecm) else None
    except DecodeError:
        return None
    if not isinstance(req, lc.MapRequest) or req.probe or req.map_reply is not None or len(req.eids) != 1:
        return None
    addr, _, plen = req.eids[0].partition("/")
    return req.nonce, socket.inet_aton(req.reply_rloc()), ecm.sport, int.from_bytes(socket.inet_aton(addr), "big"), \
        int(plen)


def mutations(buf: bytes) -> list[bytes]:
    """Every single-byte change of ``buf`` to a few values, a deterministic sample."""
    out = []
    for i in range(len(buf)):
        for value in {0, 0xFF, buf[i] ^ 0x01, buf[i] ^ 0x80, buf[i] ^ 0x10}:
            out.append(buf[:i] + bytes([value]) + buf[i + 1:])
    return out


def test_fast_parser_accepts_nothing_the_full_decoder_reads_otherwise():
    accepted = 0
    for buf in mutations(ecm_request(0xABCDEF, "10.1.2.3/32")):
        fast = parse_ecm_request(buf)
        if fast is not None:
            accepted += 1
            assert fast == full_fields(buf), buf.hex()
    assert accepted > 100  # nonce, addresses, ports, TTL...: many mutations stay well formed


def test_map_server_answers_alike_with_and_without_the_fast_path(monkeypatch):
    def server() -> MapServer:
        ms = MapServer([Site("s1", b"k1", ["10.1.0.0/16"]), Site("s2", b"k2", ["10.2.0.0/16"])],
                       rng=random.Random(1))
        reg = lc.MapRegister(1, [lc.EidRecord("10.1.0.0/16", locators=[lc.Locator("198.51.100.1", corecast=True)])],
                             proxy_reply=True).encode(b"k1")
        assert ms.on_message(reg, "198.51.100.1", 4342, 0.0)
        return ms

    msgs = [ecm_request(n, eid) for n, eid in enumerate(
        ["10.1.2.3/32", "10.2.0.7/32", "172.16.0.1/32", "10.1.0.0/16", "10.3.0.1/32"], 1)]
    msgs += mutations(msgs[0])[::7]
    fast = server()
    got_fast = [(fast.on_message(m, "192.0.2.9", 4343, 1.0), fast.last_drop) for m in msgs]
    monkeypatch.setattr(msmod, "parse_ecm_request", lambda _buf: None)
    full = server()
    got_full = [(full.on_message(m, "192.0.2.9", 4343, 1.0), full.last_drop) for m in msgs]
    assert got_fast == got_full
    assert fast.counters == full.counters
    assert fast.counters["request-positive"] >= 2 and fast.counters["request-negative"] >= 1


def test_itr_memo_follows_a_new_mapping_and_a_lost_capability():
    """The CoreCast ITR's memo of the last entry's choice: a new map-cache entry for the site is used at once."""
    from testbed.lisp.corecast_itr import CoreCastItr
    from testbed.lisp.dataplane import SEND_RAW
    from testbed.lisp.mapcache import MapCache, MapEntry
    cache = MapCache()
    cache.install(MapEntry(0x0A000000, 16, [("174.16.0.2", 1, 100, True)], expires=1e12))
    cache.install(MapEntry(0x0A010000, 16, [("174.16.1.2", 1, 100, True)], expires=1e12))
    itr = CoreCastItr("174.16.0.2", cache, ["10.0.0.10/32"])
    chunk = bytes(1200)
    src = socket.inet_aton("10.0.0.10")
    itr.on_service_message(cc.encode_data(1, 1, chunk), src, 1.0, True)

    def send(i: int) -> list[tuple[str, int]]:
        ref = cc.encode_ref(1, 1, cc.chunk_hash(chunk), src, bytes((10, 1, 0, i)), 5000, 6000)
        return [(a[1], len(a[2])) for a in itr.on_service_message(ref, src, 1.0, True) if a[0] == SEND_RAW]

    assert send(1) == [("174.16.1.2", 36 + 12 + 1200), ("174.16.1.2", 68)]  # DATA first, then the REF
    assert send(2) == [("174.16.1.2", 68)]
    cache.install(MapEntry(0x0A010000, 16, [("174.16.9.2", 1, 100, True)], expires=1e12))
    assert send(3) == [("174.16.9.2", 36 + 12 + 1200), ("174.16.9.2", 68)]
    cache.install(MapEntry(0x0A010000, 16, [("174.16.9.2", 1, 100, False)], expires=1e12))
    assert send(4) == [("174.16.9.2", 64 + 1200)]  # not capable any more: the client's unicast datagram
    assert itr.counters["ref-sent"] == 3 and itr.counters["unicast-sent"] == 1
