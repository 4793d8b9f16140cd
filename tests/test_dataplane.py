"""Tests of the sans-I/O LISP data plane: ITR encapsulation, queues, MTU handling, ETR decapsulation."""

import socket
import struct

from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPOption_Router_Alert, IPOption_RR, defragment
from scapy.packet import Raw

from testbed.lisp.dataplane import (RESOLVE, SEND_RAW, WRITE_TUN, Encapsulator, Etr, Itr, flow_hash,
                                    ip_checksum_from, sum16)
from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp, checksum16

ITR_RLOC, ETR_RLOC, ETR2_RLOC = "192.0.2.1", "192.0.2.2", "192.0.2.3"
CHUNK = bytes(range(256)) * 5 + bytes(36)  # 1316 bytes


def a4(text: str) -> bytes:
    return socket.inet_aton(text)


def ip(text: str) -> int:
    return int.from_bytes(a4(text), "big")


def entry(prefix: str, rlocs, expires=1e9, **kw) -> MapEntry:
    net, plen = parse_prefix(prefix)
    return MapEntry(net, plen, rlocs, expires, **kw)


def cache_with(*entries: MapEntry) -> MapCache:
    cache = MapCache()
    for one in entries:
        cache.install(one)
    return cache


def site_b() -> MapEntry:
    return entry("10.2.0.0/16", [(ETR_RLOC, 1, 100, False)])


def udp_pkt(dst="10.2.0.5", sport=5000, dport=6000, payload=CHUNK, src="10.1.0.1") -> bytes:
    return build_ipv4_udp(a4(src), a4(dst), sport, dport, payload)


def test_encapsulation_fields_and_size():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    inner = bytes(IP(src="10.1.0.1", dst="10.2.0.5", ttl=17, tos=0xB8) / UDP(sport=5000, dport=6000) / Raw(CHUNK))
    [(kind, rloc, out)] = itr.on_tun_packet(inner, 0.0)
    assert (kind, rloc) == (SEND_RAW, ETR_RLOC)
    assert len(out) == 64 + len(CHUNK) == 1380  # DESIGN section 3: unicast chunk on the core
    outer = IP(out)
    assert (outer.src, outer.dst, outer.ttl, outer.tos, outer.len, outer.proto) == (ITR_RLOC, ETR_RLOC, 17, 0xB8,
                                                                                    1380, 17)
    again = IP(out)
    del again.chksum
    assert IP(bytes(again)).chksum == outer.chksum  # scapy computes the same header checksum
    assert checksum16(out[:20]) == 0  # header checksum verifies
    assert outer[UDP].dport == 4341 and outer[UDP].sport & 0xC000 == 0xC000
    assert outer[UDP].chksum == 0 and outer[UDP].len == 1380 - 20
    assert out[28] == LISP_FLAG_N and out[32:36] == bytes(4)
    assert out[36:] == inner
    assert itr.counters["encapsulated"] == 1 and itr.counters["cache-hit"] == 1


def test_nonce_changes_and_sport_stable_per_flow():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    outs = [itr.on_tun_packet(udp_pkt(), 0.0)[0][2] for _ in range(3)]
    nonces = {o[29:32] for o in outs}
    assert len(nonces) == 3
    assert len({o[20:22] for o in outs}) == 1  # same flow, same UDP source port
    sports = {itr.on_tun_packet(udp_pkt(sport=s), 0.0)[0][2][20:22] for s in range(1000, 1050)}
    assert len(sports) > 10


def test_nonce_sequence_is_a_permutation_prefix():
    enc = Encapsulator(ITR_RLOC, seed=bytes(6))
    nonces = {enc.header(ETR_RLOC, 10, 0xC000)[29:32] for _ in range(5000)}
    assert len(nonces) == 5000


def test_ttl_zero_becomes_one_and_non_udp_flow_hash():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    icmp = bytes(IP(src="10.1.0.1", dst="10.2.0.5", ttl=0) / ICMP())
    [(_k, _r, out)] = itr.on_tun_packet(icmp, 0.0)
    assert out[8] == 1
    sport = struct.unpack_from("!H", out, 20)[0]
    assert sport == 0xC000 | (flow_hash(ip("10.1.0.1"), ip("10.2.0.5"), 1, 0) & 0x3FFF)


def test_weighted_locators_split_flows_and_keep_each_flow():
    itr = Itr(ITR_RLOC, cache_with(entry("10.2.0.0/16", [(ETR_RLOC, 1, 50, False), (ETR2_RLOC, 1, 50, False),
                                                          ("192.0.2.9", 2, 100, False)])))
    seen = {itr.on_tun_packet(udp_pkt(sport=s), 0.0)[0][1] for s in range(100)}
    assert seen == {ETR_RLOC, ETR2_RLOC}
    assert len({itr.on_tun_packet(udp_pkt(sport=7), 0.0)[0][1] for _ in range(10)}) == 1


def test_negative_entry_and_unusable_locators_drop():
    itr = Itr(ITR_RLOC, cache_with(entry("10.2.0.0/16", [], negative=True, action=3),
                                   entry("10.3.0.0/16", [(ETR_RLOC, 255, 100, False)])))
    assert itr.on_tun_packet(udp_pkt("10.2.0.5"), 0.0) == []
    assert itr.on_tun_packet(udp_pkt("10.3.0.5"), 0.0) == []
    assert itr.counters["negative"] == 1 and itr.counters["no-rloc"] == 1 and itr.counters["encapsulated"] == 0


def test_garbage_and_non_ipv4_are_counted_drops():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    assert itr.on_tun_packet(b"\x45\x00", 0.0) == []
    assert itr.on_tun_packet(b"\x60" + bytes(60), 0.0) == []  # IPv6
    truncated = bytearray(udp_pkt())
    truncated[2:4] = struct.pack("!H", len(truncated) + 1)
    assert itr.on_tun_packet(bytes(truncated), 0.0) == []
    assert itr.on_tun_packet(b"\x44" + bytes(30), 0.0) == []  # IHL 4
    assert itr.counters["not-ipv4"] == 1 and itr.counters["bad-packet"] == 3


def test_trailing_bytes_are_trimmed():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    pkt = udp_pkt(payload=b"hello")
    [(_k, _r, out)] = itr.on_tun_packet(pkt + b"junk", 0.0)
    assert out[36:] == pkt


def test_miss_resolves_once_queues_and_flushes_in_order():
    cache = MapCache()
    itr = Itr(ITR_RLOC, cache, queue_limit=3)
    pkts = [udp_pkt(payload=bytes([i]) * 10) for i in range(5)]
    assert itr.on_tun_packet(pkts[0], 0.0) == [(RESOLVE, ip("10.2.0.5"))]
    for pkt in pkts[1:]:
        assert itr.on_tun_packet(pkt, 0.1) == []
    assert itr.counters["cache-miss"] == 5 and itr.counters["queue-overflow"] == 2
    cache.install(site_b())
    out = itr.on_resolved(ip("10.2.0.5"), site_b(), 0.2)
    assert [a[2][36:] for a in out] == pkts[2:]  # oldest dropped beyond the bound
    assert itr.counters["flushed"] == 3 and itr.counters["encapsulated"] == 3
    assert itr.on_resolved(ip("10.2.0.5"), site_b(), 0.3) == []  # nothing left


def test_memoryview_input_is_queued_as_a_copy():
    itr = Itr(ITR_RLOC, MapCache())
    buf = bytearray(udp_pkt(payload=b"abc"))
    itr.on_tun_packet(memoryview(buf), 0.0)
    expected = bytes(buf)
    buf[:] = bytes(len(buf))
    [(_k, _r, out)] = itr.on_resolved(ip("10.2.0.5"), site_b(), 0.1)
    assert out[36:] == expected


def test_resolution_covers_other_pending_eids():
    itr = Itr(ITR_RLOC, MapCache())
    assert itr.on_tun_packet(udp_pkt("10.2.0.5"), 0.0)[0][0] == RESOLVE
    assert itr.on_tun_packet(udp_pkt("10.2.0.6"), 0.0)[0][0] == RESOLVE
    assert itr.on_tun_packet(udp_pkt("10.9.0.6"), 0.0)[0][0] == RESOLVE
    out = itr.on_resolved(ip("10.2.0.5"), site_b(), 0.1)
    assert sorted(a[2][36 + 16:36 + 20] for a in out) == [a4("10.2.0.5"), a4("10.2.0.6")]
    assert len(itr.pending) == 1


def test_unresolved_negative_and_expired_queues_are_dropped():
    itr = Itr(ITR_RLOC, MapCache(), pending_timeout=2.0)
    itr.on_tun_packet(udp_pkt("10.2.0.5"), 0.0)
    itr.on_tun_packet(udp_pkt("10.2.0.5"), 0.0)
    assert itr.on_resolved(ip("10.2.0.5"), None, 1.0) == []
    itr.on_tun_packet(udp_pkt("10.3.0.5"), 1.0)
    assert itr.on_resolved(ip("10.3.0.5"), entry("10.3.0.0/16", [], negative=True), 1.0) == []
    assert itr.counters["unresolved"] == 3
    itr.on_tun_packet(udp_pkt("10.4.0.5"), 1.0)
    assert itr.expire(2.5) == 0
    assert itr.expire(3.5) == 1 and itr.counters["unresolved"] == 4
    assert itr.on_tun_packet(udp_pkt("10.4.0.5"), 4.0) == [(RESOLVE, ip("10.4.0.5"))]  # asks again


def test_pending_eids_are_bounded():
    itr = Itr(ITR_RLOC, MapCache(), max_pending=2)
    assert itr.on_tun_packet(udp_pkt("10.2.0.1"), 0.0)
    assert itr.on_tun_packet(udp_pkt("10.2.0.2"), 0.0)
    assert itr.on_tun_packet(udp_pkt("10.2.0.3"), 0.0) == []
    assert itr.counters["pending-overflow"] == 1 and len(itr.pending) == 2


def test_exact_fit_at_outer_mtu():
    itr = Itr(ITR_RLOC, cache_with(site_b()), outer_mtu=1380)
    [(_k, _r, out)] = itr.on_tun_packet(udp_pkt(), 0.0)
    assert len(out) == 1380 and itr.counters["fragmented"] == 0


def test_too_big_with_df_sends_icmp_frag_needed_rate_limited():
    itr = Itr(ITR_RLOC, cache_with(site_b()), outer_mtu=1300, icmp_rate=2.0)
    big = bytes(IP(src="10.1.0.1", dst="10.2.0.5", flags="DF") / UDP(sport=1, dport=2) / Raw(CHUNK))
    [(kind, icmp_pkt)] = itr.on_tun_packet(big, 10.0)
    assert kind == WRITE_TUN
    reply = IP(icmp_pkt)
    assert (reply.src, reply.dst, reply[ICMP].type, reply[ICMP].code) == ("10.2.0.5", "10.1.0.1", 3, 4)
    assert reply[ICMP].nexthopmtu == 1300 - 36
    assert bytes(reply[ICMP].payload)[:28] == big[:28]
    assert checksum16(icmp_pkt[:20]) == 0 and checksum16(icmp_pkt[20:]) == 0
    assert itr.on_tun_packet(big, 10.0)
    assert itr.on_tun_packet(big, 10.0) == []  # bucket of 2 empty
    assert itr.on_tun_packet(big, 11.0)  # refilled
    assert itr.counters["too-big-df"] == 4 and itr.counters["icmp-rate-limited"] == 1
    assert itr.counters["icmp-sent"] == 3 and itr.counters["encapsulated"] == 0


def test_too_big_icmp_error_gets_no_icmp_and_icmp_src_configurable():
    itr = Itr(ITR_RLOC, cache_with(site_b()), outer_mtu=200, icmp_src="10.1.255.254")
    err = bytes(IP(src="10.1.0.1", dst="10.2.0.5", flags="DF") / ICMP(type=3, code=1) / Raw(bytes(300)))
    assert itr.on_tun_packet(err, 0.0) == []
    big = bytes(IP(src="10.1.0.1", dst="10.2.0.5", flags="DF") / UDP() / Raw(bytes(300)))
    [(_k, icmp_pkt)] = itr.on_tun_packet(big, 0.0)
    assert IP(icmp_pkt).src == "10.1.255.254"


def test_too_big_without_df_is_fragmented_and_reassembles():
    itr = Itr(ITR_RLOC, cache_with(site_b()), outer_mtu=600)
    pkt = IP(src="10.1.0.1", dst="10.2.0.5", id=4242, options=[IPOption_Router_Alert(), IPOption_RR()]) \
        / UDP(sport=5000, dport=6000) / Raw(CHUNK)
    raw = bytes(pkt)
    out = itr.on_tun_packet(raw, 0.0)
    assert len(out) == 3 and itr.counters["fragments"] == 3 and itr.counters["fragmented"] == 1
    frags = []
    for kind, rloc, datagram in out:
        assert kind == SEND_RAW and rloc == ETR_RLOC and len(datagram) <= 600
        assert len({a[2][20:22] for a in out}) == 1  # fragments of one packet take one path
        inner = datagram[36:]
        assert checksum16(inner[:(inner[0] & 15) * 4]) == 0
        frags.append(IP(inner))
    assert IPOption_RR in {type(o) for o in frags[0].options}  # the first fragment keeps every option
    assert [type(o) for o in frags[1].options] == [IPOption_Router_Alert]  # later ones only the copied ones
    assert all(f.id == 4242 for f in frags) and [f.flags.MF for f in frags] == [1, 1, 0]
    whole = defragment(frags)
    assert len(whole) == 1 and bytes(whole[0][UDP]) == bytes(pkt[UDP])


def test_fragmenting_a_fragment_keeps_offset_and_more_fragments():
    itr = Itr(ITR_RLOC, cache_with(site_b()), outer_mtu=600)
    pkt = IP(src="10.1.0.1", dst="10.2.0.5", id=7, flags="MF", frag=100, proto=17) / Raw(bytes(1000))
    out = itr.on_tun_packet(bytes(pkt), 0.0)
    frags = [IP(a[2][36:]) for a in out]
    assert [f.frag for f in frags] == [100, 100 + 544 // 8]
    assert all(f.flags.MF for f in frags) and sum(len(f.payload) for f in frags) == 1000


def test_etr_decapsulates_own_eids_byte_for_byte():
    itr = Itr(ITR_RLOC, cache_with(site_b()))
    etr = Etr(["10.2.0.0/16", "10.20.0.0/16"])
    pkt = udp_pkt()
    [(_k, _r, out)] = itr.on_tun_packet(pkt, 0.0)
    assert etr.on_lisp_packet(out[28:], ITR_RLOC, 0.0) == [(WRITE_TUN, pkt)]
    assert etr.on_lisp_packet(memoryview(out)[28:], ITR_RLOC, 0.0)[0][1] == pkt
    assert etr.counters["decapsulated"] == 2


def test_etr_drops_foreign_malformed_and_encrypted():
    etr = Etr(["10.2.0.0/16"])
    lisp = bytes([LISP_FLAG_N]) + bytes(7)
    assert etr.on_lisp_packet(lisp + udp_pkt("10.3.0.1"), ITR_RLOC, 0.0) == []
    assert etr.on_lisp_packet(b"\x80\x00", ITR_RLOC, 0.0) == []
    assert etr.on_lisp_packet(lisp + b"\x45" + bytes(10), ITR_RLOC, 0.0) == []
    assert etr.on_lisp_packet(lisp + b"\x60" + bytes(59), ITR_RLOC, 0.0) == []
    assert etr.on_lisp_packet(lisp + udp_pkt() + b"x", ITR_RLOC, 0.0) == []  # total length mismatch
    assert etr.on_lisp_packet(b"\x81" + bytes(7) + udp_pkt(), ITR_RLOC, 0.0) == []  # KK bits: encrypted
    assert etr.on_lisp_packet(bytes([LISP_FLAG_N | LISP_FLAG_C]) + bytes(7) + b"\x12", ITR_RLOC, 0.0) == []
    c = etr.counters
    assert (c["foreign-eid"], c["bad-lisp"], c["bad-inner"], c["encrypted"], c["corecast-not-capable"]) == \
        (1, 1, 3, 1, 1)
    assert etr.on_lisp_packet(lisp + udp_pkt(), ITR_RLOC, 0.0)  # and it keeps forwarding valid traffic


def test_etr_copies_a_lower_outer_ttl():
    etr = Etr(["10.2.0.0/16"])
    lisp = bytes([LISP_FLAG_N]) + bytes(7)
    for ttl in (64, 1, 255, 0x80):
        pkt = build_ipv4_udp(a4("10.1.0.1"), a4("10.2.0.5"), 1, 2, b"x" * ttl, ttl=ttl)
        [(_k, out)] = etr.on_lisp_packet(lisp + pkt, ITR_RLOC, 0.0, outer_ttl=ttl - 1 if ttl > 1 else 0)
        assert out[8] == max(ttl - 1, 0) and checksum16(out[:20]) == 0 and out[20:] == pkt[20:]
    [(_k, out)] = etr.on_lisp_packet(lisp + pkt, ITR_RLOC, 0.0, outer_ttl=200)
    assert out == pkt
    assert etr.counters["ttl-copied"] == 4


@given(st.binary(min_size=1, max_size=200).filter(any))
def test_sum16_matches_checksum16(data):
    assert ip_checksum_from(sum16(data)) == checksum16(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 2**32 - 1), st.sampled_from([0, 4, 6, 17]))
def test_random_bytes_never_raise(data, eid, proto):
    cache = cache_with(site_b(), entry("10.3.0.0/16", [], negative=True))
    itr = Itr(ITR_RLOC, cache, outer_mtu=104, queue_limit=2)
    etr = Etr(["10.2.0.0/16"])
    head = bytearray(data[:20].ljust(20, b"\0"))
    head[0], head[9] = 0x40 | (data[0] & 0x0F if data else 5), proto
    for buf in (data, bytes(head) + data[20:], b"\x45" + data[1:]):
        itr.on_tun_packet(buf, 0.0)
        itr.on_resolved(eid, site_b(), 0.0)
        etr.on_lisp_packet(buf, ITR_RLOC, 0.0, outer_ttl=eid & 0xFF)
        etr.on_lisp_packet(b"\x80" + bytes(7) + buf, ITR_RLOC, 0.0)
    itr.expire(100.0)


def test_pending_queue_counter_prefix_and_membership():
    from testbed.lisp.pending import PendingQueues
    counters: dict[str, int] = {}
    queues = PendingQueues(counters, limit=1, max_eids=1, timeout=1.0, prefix="cc-ref-")
    assert set(counters) == {"cc-ref-queued", "cc-ref-queue-overflow", "cc-ref-pending-overflow", "cc-ref-unresolved"}
    assert queues.add(5, "a", 0.0) and 5 in queues and 6 not in queues
    assert not queues.add(5, "b", 0.0) and not queues.add(6, "c", 0.0)
    assert queues.expire(2.0) == 1 and 5 not in queues
    assert counters == {"cc-ref-queued": 2, "cc-ref-queue-overflow": 1, "cc-ref-pending-overflow": 1,
                        "cc-ref-unresolved": 1}
