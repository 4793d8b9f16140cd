"""Tests of the CoreCast ETR core: DATA caching, REF -> unicast packet, drops by reason."""

import socket

from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from testbed.lisp.corecast_etr import CoreCastEtr, unicast_packet
from testbed.lisp.dataplane import WRITE_TUN, Etr, Itr, sum16
from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire import corecast as cc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp

ITR_RLOC, ITR2_RLOC, ETR_RLOC = "192.0.2.1", "192.0.2.7", "192.0.2.2"
CHUNK = bytes(range(256)) * 5 + bytes(36)  # 1316 bytes
SRC, DST = socket.inet_aton("10.1.0.10"), socket.inet_aton("10.2.0.5")
CC_HDR = bytes([LISP_FLAG_N | LISP_FLAG_C]) + bytes(7)


SOURCE_SITE = "10.1.0.0/16"


def source_entry(rloc=ITR_RLOC, capable=True, prefix=SOURCE_SITE, expires=1e9) -> MapEntry:
    """The source site's mapping: ``rloc`` is its (CoreCast) locator."""
    return MapEntry(*parse_prefix(prefix), [(rloc, 1, 100, capable)], expires)


def vouching_cache(*entries) -> MapCache:
    cache = MapCache()
    for entry in entries or (source_entry(),):
        cache.install(entry)
    return cache


def make(prefix="10.2.0.0/16", cache=None, **kw) -> CoreCastEtr:
    """A CoreCast ETR for ``prefix`` whose map-cache vouches for ITR_RLOC as 10.1.0.0/16's ITR."""
    return CoreCastEtr([prefix], cache if cache is not None else vouching_cache(), **kw)


def ref(chunk=CHUNK, stream=1, dst=DST, sport=5000, dport=6000, src=SRC) -> bytes:
    return cc.encode_ref(stream, 9, cc.chunk_hash(chunk), src, dst, sport, dport)


def test_ref_becomes_the_unicast_packet_byte_for_byte():
    etr = make()
    assert etr.on_message(cc.encode_data(1, 9, CHUNK), ITR_RLOC, 0.0) == []
    [(kind, pkt)] = etr.on_message(ref(), ITR_RLOC, 0.0)
    assert kind == WRITE_TUN
    assert len(pkt) == 28 + len(CHUNK)  # DESIGN section 3: ETR to client
    assert pkt == build_ipv4_udp(SRC, DST, 5000, 6000, CHUNK)
    scapy_pkt = IP(src="10.1.0.10", dst="10.2.0.5", ttl=64, id=0, flags=0) / UDP(sport=5000, dport=6000) / Raw(CHUNK)
    assert pkt == bytes(scapy_pkt)  # scapy computes the same IP and UDP checksums
    assert etr.counters["delivered"] == 1 and etr.counters["data-in"] == 1


def test_ref_output_equals_what_the_unicast_path_delivers():
    """The source's unicast datagram through Itr -> Etr equals what a REF turns into."""
    cache = MapCache()
    net, plen = parse_prefix("10.2.0.0/16")
    cache.install(MapEntry(net, plen, [(ETR_RLOC, 1, 100, True)], 1e9))
    itr = Itr(ITR_RLOC, cache)
    etr = Etr(["10.2.0.0/16"], corecast=make())
    unicast = build_ipv4_udp(SRC, DST, 5000, 6000, CHUNK)
    [(_k, _r, core_pkt)] = itr.on_tun_packet(unicast, 0.0)
    [(_k, delivered_unicast)] = etr.on_lisp_packet(core_pkt[28:], ITR_RLOC, 0.0)
    etr.on_lisp_packet(CC_HDR + cc.encode_data(1, 9, CHUNK), ITR_RLOC, 0.0)
    [(_k, delivered_corecast)] = etr.on_lisp_packet(CC_HDR + ref(), ITR_RLOC, 0.0)
    assert delivered_corecast == delivered_unicast == unicast


def test_missing_stale_and_foreign_refs_produce_nothing():
    etr = make()
    assert etr.on_message(ref(), ITR_RLOC, 0.0) == []  # no chunk yet
    etr.on_message(cc.encode_data(1, 9, CHUNK), ITR_RLOC, 0.0)
    assert etr.on_message(ref(), ITR2_RLOC, 0.0) == []  # another RLOC, not vouched for: dropped
    assert etr.on_message(ref(stream=2), ITR_RLOC, 0.0) == []  # another stream
    assert etr.on_message(ref(chunk=b"other"), ITR_RLOC, 0.0) == []  # hash matches nothing
    assert etr.on_message(ref(dst=socket.inet_aton("10.3.0.5")), ITR_RLOC, 0.0) == []
    c = etr.counters
    assert (c["no-chunk"], c["hash-mismatch"], c["foreign-eid"], c["delivered"]) == (2, 1, 1, 0)
    assert c["cc-unknown-itr"] == 1


def test_new_chunk_replaces_the_old_one():
    etr = make()
    etr.on_message(cc.encode_data(1, 1, b"first chunk"), ITR_RLOC, 0.0)
    etr.on_message(cc.encode_data(1, 2, b"second chunk"), ITR_RLOC, 0.0)
    assert etr.on_message(ref(chunk=b"first chunk"), ITR_RLOC, 0.0) == []
    [(_k, pkt)] = etr.on_message(ref(chunk=b"second chunk"), ITR_RLOC, 0.0)
    assert pkt.endswith(b"second chunk")
    assert len(etr) == 1 and etr.counters["hash-mismatch"] == 1


def test_memory_stays_flat_and_streams_are_bounded():
    etr = make(max_streams=3)
    etr.on_message(ref(stream=99), ITR_RLOC, 0.0)  # vouches for ITR_RLOC: its DATA skip the quarantine
    for seq in range(500):
        etr.on_message(cc.encode_data(1, seq, seq.to_bytes(4, "big") * 300), ITR_RLOC, 0.0)
    assert len(etr) == 1
    for stream in range(2, 6):
        etr.on_message(cc.encode_data(stream, 0, b"x"), ITR_RLOC, 0.0)
    assert len(etr) == 3 and etr.counters["stream-evicted"] == 2
    assert etr.on_message(ref(chunk=b"x", stream=5), ITR_RLOC, 0.0)
    assert etr.on_message(ref(chunk=(499).to_bytes(4, "big") * 300, stream=1), ITR_RLOC, 0.0) == []  # evicted


def test_malformed_messages_are_counted_by_reason():
    etr = make()
    etr.on_message(b"\x12\x00", ITR_RLOC, 0.0)
    etr.on_message(b"\x22" + bytes(31), ITR_RLOC, 0.0)
    etr.on_message(b"\x12" + bytes(32), ITR_RLOC, 0.0)
    etr.on_message(b"\x1f" + bytes(31), ITR_RLOC, 0.0)
    c = etr.counters
    assert (c["decode-truncated"], c["decode-bad-version"], c["decode-bad-length"], c["decode-unknown-type"]) == \
        (1, 1, 1, 1)


def test_empty_chunk_is_a_valid_chunk():
    etr = make()
    etr.on_message(cc.encode_data(1, 0, b""), ITR_RLOC, 0.0)
    [(_k, pkt)] = etr.on_message(ref(chunk=b""), ITR_RLOC, 0.0)
    assert pkt == build_ipv4_udp(SRC, DST, 5000, 6000, b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500), st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_unicast_packet_matches_build_ipv4_udp(chunk, src, dst, sport, dport):
    got = unicast_packet(int.from_bytes(src, "big"), int.from_bytes(dst, "big"), sport, dport, chunk, sum16(chunk))
    assert got == build_ipv4_udp(src, dst, sport, dport, chunk)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([0x11, 0x12, 0x21, 0x1F]))
def test_random_bytes_never_raise(data, first):
    etr = make("10.0.0.0/8")
    for buf in (data, bytes([first]) + data, bytes([first]) + data[:31].ljust(31, b"\0")):
        etr.on_message(buf, ITR_RLOC, 0.0)
        etr.on_message(memoryview(buf), ITR_RLOC, 0.0)
