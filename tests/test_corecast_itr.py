"""Tests of the CoreCast ITR core: sources, chunk cache, DATA once per ETR, REFs, unicast fallback, queues."""

import socket

from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, UDP

from testbed.lisp.corecast_etr import CoreCastEtr
from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import RESOLVE, SEND_RAW, WRITE_TUN, Etr, Itr
from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire import corecast as cc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp, checksum16

ITR_RLOC = "192.0.2.1"
RLOC = {"b": "192.0.2.2", "c": "192.0.2.3", "d": "192.0.2.4"}
PREFIX = {"b": "10.2.0.0/16", "c": "10.3.0.0/16", "d": "10.4.0.0/16"}
CHUNK = bytes(range(256)) * 5 + bytes(36)  # 1316 bytes
P = len(CHUNK)
S = socket.inet_aton("10.1.0.10")


def a4(text: str) -> bytes:
    return socket.inet_aton(text)


def ip(text: str) -> int:
    return int.from_bytes(a4(text), "big")


def site(name: str, capable: bool = True) -> MapEntry:
    net, plen = parse_prefix(PREFIX[name])
    return MapEntry(net, plen, [(RLOC[name], 1, 100, capable)], 1e9)


def cache_with(*entries: MapEntry) -> MapCache:
    cache = MapCache()
    for one in entries:
        cache.install(one)
    return cache


def source_site() -> MapEntry:
    """The source's site 10.1.0.0/16 with ITR_RLOC as its CoreCast locator (what vouches for the ITR)."""
    return MapEntry(*parse_prefix("10.1.0.0/16"), [(ITR_RLOC, 1, 100, True)], 1e9)


def cc_etr(prefix: str) -> CoreCastEtr:
    """A CoreCast ETR whose map-cache vouches for ITR_RLOC."""
    return CoreCastEtr([prefix], cache_with(source_site()))


def make(*entries: MapEntry, **kw) -> CoreCastItr:
    return CoreCastItr(ITR_RLOC, cache_with(*entries), ["10.1.0.0/24"], **kw)


def ref(dst: str, chunk: bytes = CHUNK, stream: int = 1, sport: int = 5000, dport: int = 6000, src: bytes = S):
    return cc.encode_ref(stream, 0, cc.chunk_hash(chunk), src, a4(dst), sport, dport)


def data(chunk: bytes = CHUNK, stream: int = 1, seq: int = 0) -> bytes:
    return cc.encode_data(stream, seq, chunk)


def test_data_is_cached_and_forwards_nothing():
    itr = make(site("b"))
    assert itr.on_service_message(data(), S, 0.0) == []
    assert itr.counters["data-in"] == 1 and len(itr) == 1


def test_source_not_allowed_is_dropped():
    itr = make(site("b"))
    outsider = a4("10.1.1.10")
    assert itr.on_service_message(data(), outsider, 0.0) == []
    itr.on_service_message(data(), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5"), outsider, 0.0) == []
    assert itr.on_service_message(data(), b"\x0a\x01", 0.0) == []  # not an IPv4 address at all
    assert itr.counters["source-not-allowed"] == 3 and itr.counters["ref-in"] == 0


def test_ref_source_eid_must_be_the_sender_or_allowed():
    itr = make(site("b"))
    itr.on_service_message(data(), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5", src=a4("10.9.9.9")), S, 0.0) == []
    assert itr.counters["ref-src-not-allowed"] == 1
    assert itr.on_service_message(ref("10.2.0.5", src=a4("10.1.0.77")), S, 0.0)


def test_capable_site_gets_data_once_then_refs_with_exact_sizes():
    itr = make(site("b"))
    itr.on_service_message(data(), S, 0.0)
    first = itr.on_service_message(ref("10.2.0.5"), S, 0.0)
    assert [(k, r, len(d)) for k, r, d in first] == [(SEND_RAW, RLOC["b"], 48 + P), (SEND_RAW, RLOC["b"], 68)]
    for _k, _r, datagram in first:
        outer = IP(datagram)
        assert (outer.src, outer.dst, outer[UDP].dport, outer.len) == (ITR_RLOC, RLOC["b"], 4341, len(datagram))
        assert checksum16(datagram[:20]) == 0
        assert datagram[28] == LISP_FLAG_N | LISP_FLAG_C
    assert first[0][2][36:] == data() and first[1][2][36:] == ref("10.2.0.5")
    second = itr.on_service_message(ref("10.2.0.6"), S, 0.0)
    assert [len(d) for _k, _r, d in second] == [68]
    itr.on_service_message(data(b"next" * 300, seq=1), S, 0.0)
    third = itr.on_service_message(ref("10.2.0.6", chunk=b"next" * 300), S, 0.0)
    assert [len(d) for _k, _r, d in third] == [48 + 1200, 68]  # new chunk: DATA again
    c = itr.counters
    assert (c["data-sent"], c["ref-sent"], c["unicast-sent"]) == (2, 3, 0)


def test_non_capable_site_gets_encapsulated_unicast_identical_to_the_itr_path():
    itr = make(site("b", capable=False))
    itr.on_service_message(data(), S, 0.0)
    [(kind, rloc, datagram)] = itr.on_service_message(ref("10.2.0.5"), S, 0.0)
    assert (kind, rloc, len(datagram)) == (SEND_RAW, RLOC["b"], 64 + P)
    assert datagram[28] == LISP_FLAG_N
    unicast = build_ipv4_udp(S, a4("10.2.0.5"), 5000, 6000, CHUNK)
    assert datagram[36:] == unicast
    [(_k, _r, via_itr)] = Itr(ITR_RLOC, cache_with(site("b", capable=False))).on_tun_packet(unicast, 0.0)
    masked = lambda b: b[:29] + b[32:]  # everything but the nonce
    assert masked(datagram) == masked(via_itr)
    delivered = Etr([PREFIX["b"]]).on_lisp_packet(datagram[28:], ITR_RLOC, 0.0)
    assert delivered == [(WRITE_TUN, unicast)]
    assert itr.counters["unicast-sent"] == 1


def test_stale_and_missing_refs_are_dropped():
    itr = make(site("b"))
    assert itr.on_service_message(ref("10.2.0.5"), S, 0.0) == []
    itr.on_service_message(data(b"one"), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5", stream=2, chunk=b"one"), S, 0.0) == []
    itr.on_service_message(data(b"two"), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5", chunk=b"one"), S, 0.0) == []
    assert itr.counters["no-chunk"] == 2 and itr.counters["stale-ref"] == 1


def test_core_bytes_match_the_design_formula_in_a_mixed_deployment():
    itr = make(site("b"), site("c"), site("d", capable=False))
    clients = [f"10.2.0.{i}" for i in range(1, 11)] + [f"10.3.0.{i}" for i in range(1, 4)] + \
              [f"10.4.0.{i}" for i in range(1, 6)]
    for seq in range(3):
        chunk = bytes([seq]) * P
        itr.on_service_message(data(chunk, seq=seq), S, 0.0)
        out = [a for c in clients for a in itr.on_service_message(ref(c, chunk), S, 0.0)]
        j_c, k_c, k_n = 2, 13, 5
        assert sum(len(d) for _k, _r, d in out) == j_c * (48 + P) + k_c * 68 + k_n * (64 + P)
        assert sum(len(d) for _k, _r, d in out) == sum(IP(d).len for _k, _r, d in out)


def test_everything_the_itr_sends_is_delivered_by_etrs():
    itr = make(site("b"), site("c"))
    etrs = {RLOC[n]: Etr([PREFIX[n]], corecast=cc_etr(PREFIX[n])) for n in ("b", "c")}
    clients = ["10.2.0.1", "10.3.0.1", "10.2.0.2", "10.3.0.2"]
    for seq in range(4):
        chunk = seq.to_bytes(2, "big") * 600
        itr.on_service_message(data(chunk, seq=seq), S, 0.0)
        for client in clients:
            for _k, rloc, datagram in itr.on_service_message(ref(client, chunk), S, 0.0):
                delivered = etrs[rloc].on_lisp_packet(datagram[28:], ITR_RLOC, 0.0)
                if datagram[36] == 0x12:
                    assert delivered == [(WRITE_TUN, build_ipv4_udp(S, a4(client), 5000, 6000, chunk))]
    assert sum(e.corecast.counters["delivered"] for e in etrs.values()) == 16
    assert sum(e.corecast.counters["data-in"] for e in etrs.values()) == 8


def test_miss_queues_refs_which_keep_their_chunk_across_newer_chunks():
    cache = cache_with(site("c"))
    itr = CoreCastItr(ITR_RLOC, cache, ["10.1.0.0/24"], queue_limit=8)
    etr_b = Etr([PREFIX["b"]], corecast=cc_etr(PREFIX["b"]))
    got = []

    def deliver(actions):
        for kind, rloc, datagram in actions:
            assert kind == SEND_RAW and rloc == RLOC["b"]
            got.extend(p for _k, p in etr_b.on_lisp_packet(datagram[28:], ITR_RLOC, 0.0))

    itr.on_service_message(data(b"c1" * 600), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5", b"c1" * 600), S, 0.0) == [(RESOLVE, ip("10.2.0.5"))]
    itr.on_service_message(data(b"c2" * 600), S, 0.0)
    assert itr.on_service_message(ref("10.2.0.5", b"c2" * 600), S, 0.0) == []  # same EID: queued, no new RESOLVE
    cache.install(site("b"))
    deliver(itr.on_service_message(ref("10.2.0.6", b"c2" * 600), S, 0.0))  # ETR b now holds c2
    deliver(itr.on_resolved(ip("10.2.0.5"), site("b"), 0.1))  # c1 (DATA resent), then c2 (DATA again)
    deliver(itr.on_service_message(ref("10.2.0.7", b"c2" * 600), S, 0.0))
    assert [(p[16:20], p[28:30]) for p in got] == [(a4("10.2.0.6"), b"c2"), (a4("10.2.0.5"), b"c1"),
                                                   (a4("10.2.0.5"), b"c2"), (a4("10.2.0.7"), b"c2")]
    assert etr_b.corecast.counters["hash-mismatch"] == 0
    assert itr.counters["flushed"] == 2 and itr.counters["queued"] == 2


def test_queue_bound_negative_and_unresolved():
    itr = make(site("d"), queue_limit=2)
    itr.map_cache.install(MapEntry(*parse_prefix("10.9.0.0/16"), [], 1e9, negative=True))
    itr.on_service_message(data(), S, 0.0)
    assert itr.on_service_message(ref("10.9.0.1"), S, 0.0) == []
    assert itr.counters["negative"] == 1
    for port in range(3):
        itr.on_service_message(ref("10.2.0.5", sport=port), S, 0.0)
    assert itr.counters["queue-overflow"] == 1
    out = itr.on_resolved(ip("10.2.0.5"), site("b"), 0.0)
    assert [d[-4:-2] for _k, _r, d in out if len(d) == 68] == [b"\x00\x01", b"\x00\x02"]  # oldest dropped
    itr.on_service_message(ref("10.5.0.5"), S, 0.0)
    assert itr.on_resolved(ip("10.5.0.5"), None, 0.0) == []
    itr.on_service_message(ref("10.6.0.5"), S, 0.0)
    assert itr.expire(100.0) == 1 and itr.counters["unresolved"] == 2


def test_chunk_too_big_for_the_core_is_dropped():
    itr = make(site("b", capable=False))
    itr.on_service_message(data(bytes(1437)), S, 0.0)
    assert itr.counters["chunk-too-big"] == 1 and len(itr) == 0
    itr.on_service_message(data(bytes(1436)), S, 0.0)
    [(_k, _r, datagram)] = itr.on_service_message(ref("10.2.0.5", bytes(1436)), S, 0.0)
    assert len(datagram) == 1500


def test_memory_flat_and_streams_bounded():
    itr = make(site("b"), site("c"), max_streams=2)
    for seq in range(300):
        chunk = seq.to_bytes(2, "big") * 10
        itr.on_service_message(data(chunk, seq=seq), S, 0.0)
        itr.on_service_message(ref("10.2.0.1", chunk), S, 0.0)
        itr.on_service_message(ref("10.3.0.1", chunk), S, 0.0)
    assert len(itr) == 1 and len(itr._streams[(S, 1)].held) == 2
    for stream in (2, 3):
        itr.on_service_message(data(stream=stream), S, 0.0)
    assert len(itr) == 2 and itr.counters["stream-evicted"] == 1


def test_malformed_messages_counted():
    itr = make(site("b"))
    for msg in (b"", b"\x12" * 5, b"\x32" + bytes(31), b"\x12" + bytes(40), b"\x17" + bytes(20)):
        assert itr.on_service_message(msg, S, 0.0) == []
    c = itr.counters
    assert (c["decode-truncated"], c["decode-bad-version"], c["decode-bad-length"], c["decode-unknown-type"]) == \
        (2, 1, 1, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([0x11, 0x12, 0x22]), st.integers(0, 2**32 - 1))
def test_random_bytes_never_raise(blob, first, eid):
    itr = make(site("b"), site("c", capable=False), queue_limit=2)
    for msg in (blob, bytes([first]) + blob, bytes([first]) + blob[:31].ljust(31, b"\0")):
        for src in (S, a4("10.2.0.1"), blob[:4]):
            itr.on_service_message(msg, src, 0.0)
        itr.on_resolved(eid, site("b"), 0.0)
        itr.on_resolved(eid, None, 0.0)
    itr.expire(10.0)
