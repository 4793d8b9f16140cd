"""Signal-free multicast cores (RFC 8378) end to end in process: IGMP codec, ETR receivers and registration,
Map-Server merge, ITR resolution and head-end replication, ETR delivery (one LAN copy)."""

from __future__ import annotations

import random
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.lisp.dataplane import SEND_RAW, Encapsulator, Etr
from testbed.lisp.mapserver import MapServer, Site
from testbed.lisp.multicast_etr import SEND_MCAST, MulticastEtr
from testbed.lisp.multicast_itr import MulticastItr
from testbed.wire import lispctrl as lc
from testbed.wire.errors import DecodeError
from testbed.wire.igmp import (ALLOW, BLOCK, IS_EX, IS_IN, TO_EX, TO_IN, V2_LEAVE, build_v3_report, parse_igmp,
                               parse_igmp_packet)
from testbed.wire.ipv4 import build_ipv4_udp, checksum16
from testbed.wire.lispctrl.lcaf import rle_text, sg_of_prefix, sg_prefix

S, G, G2 = "10.0.0.10", "232.1.1.1", "232.1.1.2"
RLOC0, RLOC1, RLOC2 = "172.16.0.2", "172.16.1.2", "172.16.2.2"
A = socket.inet_aton


def igmp_ip(host: str, igmp: bytes) -> bytes:
    hdr = bytearray(b"\x45\x00" + (24 + len(igmp)).to_bytes(2, "big") + b"\x00\x00\x00\x00\x01\x02\x00\x00"
                    + A(host) + A("224.0.0.22") + b"\x94\x04\x00\x00")
    hdr[0] = 0x46
    hdr[10:12] = checksum16(bytes(hdr)).to_bytes(2, "big")
    return bytes(hdr) + igmp


def test_igmp_v3_report_hand_vector():
    # RFC 3376 4.2: type 0x22, reserved, checksum, reserved, 1 record: ALLOW(5), aux 0, 1 source, group, source
    raw = bytes.fromhex("22 00 0000 0000 0001 05 00 0001 e8010101 0a00000a".replace(" ", ""))
    raw = raw[:2] + checksum16(raw).to_bytes(2, "big") + raw[4:]
    assert build_v3_report([(ALLOW, G, (S,))]) == raw
    assert parse_igmp(raw) == [(ALLOW, G, (S,))]
    host, recs = parse_igmp_packet(igmp_ip("10.1.0.5", raw))
    assert host == "10.1.0.5" and recs == [(ALLOW, G, (S,))]
    leave = bytearray(b"\x17\x00\x00\x00" + A(G))
    leave[2:4] = checksum16(bytes(leave)).to_bytes(2, "big")
    assert parse_igmp(bytes(leave)) == [(V2_LEAVE, G, ())]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_igmp_fuzz_only_decode_error(data):
    for parse in (parse_igmp, parse_igmp_packet):
        try:
            parse(data)
        except DecodeError:
            pass
    good = build_v3_report([(TO_IN, G, (S, "10.0.0.11"))])
    try:
        parse_igmp(good[:len(data) % len(good)])
    except DecodeError:
        pass


def site_etr(n: int, rloc: str) -> MulticastEtr:
    return MulticastEtr(rloc=rloc, eid_prefixes=[f"10.{n}.0.0/16"], map_server="172.16.255.1", key=b"k%d" % n,
                        rng=random.Random(n), refresh_s=10.0)


def report(etr: MulticastEtr, host: str, rtype: int, srcs=(S,), group=G, now=0.0):
    return etr.on_igmp(igmp_ip(host, build_v3_report([(rtype, group, tuple(srcs))])), now)


def test_etr_receivers_join_leave_and_registration():
    etr = site_etr(1, RLOC1)
    sends = report(etr, "10.1.0.5", ALLOW)
    assert etr.members == {(S, G): {"10.1.0.5"}} and etr.counters["join"] == 1
    (payload, dst, port), = sends
    msg = lc.decode_control(payload)
    assert (dst, port) == ("172.16.255.1", 4342) and msg.merge and lc.verify_auth(payload, b"k1")
    assert [r.prefix for r in msg.records][0] == "10.1.0.0/16"
    assert sg_of_prefix(msg.records[1].prefix) == (S, G) and msg.records[1].ttl == 1440
    assert report(etr, "10.1.0.6", IS_IN) == []            # second receiver: nothing new to register
    assert report(etr, "10.1.0.5", BLOCK) == [] and etr.members[(S, G)] == {"10.1.0.6"}
    sends = report(etr, "10.1.0.6", TO_IN, srcs=())          # the last receiver leaves
    assert etr.members == {} and etr.counters["leave"] == 1
    assert lc.decode_control(sends[0][0]).records[1].ttl == 0
    assert report(etr, "10.1.0.7", TO_EX, srcs=()) == [] and etr.counters["igmp-asm-ignored"] == 1
    assert report(etr, "10.1.0.7", IS_EX) == [] and etr.counters["igmp-asm-ignored"] == 2
    assert report(etr, "10.2.0.7", ALLOW) == [] and etr.counters["igmp-foreign-host"] == 1
    assert report(etr, "10.1.0.7", ALLOW, group="239.1.1.1") == [] and etr.counters["igmp-not-ssm"] == 1
    assert etr.on_igmp(b"\x45garbage", 0.0) == [] and etr.counters["igmp-bad"] == 1
    assert [e[1] for e in etr.events] == ["join", "leave"]


def test_etr_refreshes_its_registrations():
    etr = site_etr(1, RLOC1)
    report(etr, "10.1.0.5", ALLOW, now=0.0)
    report(etr, "10.1.0.5", ALLOW, srcs=("10.0.0.11",), now=1.0)
    assert etr.next_deadline() == 10.0 and etr.on_timer(5.0) == []
    msg = lc.decode_control(etr.on_timer(10.0)[0][0])
    assert len(msg.records) == 3 and etr.next_deadline() == 20.0


def inner_packet(payload: bytes = b"chunk" * 100) -> bytes:
    return build_ipv4_udp(A(S), A(G), 5000, 6000, payload)


def test_end_to_end_in_process():
    ms = MapServer([Site("a1", b"k1", ["10.1.0.0/16"]), Site("a2", b"k2", ["10.2.0.0/16"])],
                   rloc_prefixes=("172.16.0.0/12",))
    etrs = {RLOC1: site_etr(1, RLOC1), RLOC2: site_etr(2, RLOC2)}
    itr = MulticastItr(rloc=RLOC0, map_resolver="172.16.255.1", encap=Encapsulator(RLOC0, seed=b"\x00" * 6),
                       rng=random.Random(0))

    def resolve(now):
        for payload, dst, _ in itr.on_timer(now):
            ecm = lc.decode_control(payload)
            assert lc.decode_control(ecm.payload).eids == [sg_prefix(S, G)]
            (reply, to, _), = ms.on_message(payload, RLOC0, 4342, now)
            assert to == RLOC0
            flushed.extend(itr.on_reply(lc.decode_control(reply), now))

    flushed: list = []
    pkt = inner_packet()
    assert itr.on_timer(0.0) == [] and itr.next_deadline() == float("inf")   # data-driven: nothing asked yet
    assert itr.on_lan_packet(pkt, 0.0) == [] and itr.counters["queued"] == 1   # first packet: resolve, queue
    resolve(0.0)
    assert itr.lists == {(S, G): []} and flushed == [] and itr.counters["no-receivers"] == 1
    assert itr.on_lan_packet(pkt, 0.1) == [] and itr.counters["no-receivers"] == 2
    for host, rloc in (("10.1.0.5", RLOC1), ("10.2.0.5", RLOC2), ("10.2.0.6", RLOC2)):
        for payload, _, _ in report(etrs[rloc], host, ALLOW):
            ms.on_message(payload, rloc, 4342, 0.2)
    assert itr.on_timer(0.3) == []                       # not due before refresh_s
    resolve(0.6)
    assert itr.lists == {(S, G): [RLOC1, RLOC2]} and itr.counters["list-changed"] == 2
    out = itr.on_lan_packet(pkt, 0.7)
    assert [(a[0], a[1]) for a in out] == [(SEND_RAW, RLOC1), (SEND_RAW, RLOC2)]
    for _, rloc, datagram in out:
        assert len(datagram) == 64 + 500 and datagram[36:] == pkt   # 36 outer bytes + the packet
        etr = Etr([f"10.{rloc[-3]}.0.0/16"])
        etr.multicast = etrs[rloc]
        (kind, lan), = etr.on_lisp_packet(datagram[28:], RLOC0, 0.7)
        assert kind == SEND_MCAST and bytes(lan) == pkt      # one LAN copy, whatever the receivers
    assert ms.multicast.summary()[f"{S},{G}"]["size"] == 2
    # the ETR of AS 1 loses its receiver: the ITR stops sending to it after the next refresh
    for payload, _, _ in report(etrs[RLOC1], "10.1.0.5", BLOCK):
        ms.on_message(payload, RLOC1, 4342, 1.0)
    resolve(1.2)
    assert [a[1] for a in itr.on_lan_packet(pkt, 1.3)] == [RLOC2]
    late = Etr(["10.1.0.0/16"])
    late.multicast = etrs[RLOC1]
    assert late.on_lisp_packet(out[0][2][28:], RLOC0, 1.3) == [] and etrs[RLOC1].counters["no-receivers"] == 1
    assert itr.on_lan_packet(build_ipv4_udp(A(S), A("239.1.1.1"), 1, 2, b"x"), 1.4) == []
    assert itr.counters["not-ssm"] == 1 and itr.on_lan_packet(b"\x45", 1.4) == []
    assert itr.on_lan_packet(build_ipv4_udp(A(S), A(G2), 1, 2, b"x"), 1.4) == []    # a new (S,G): queued
    assert len(itr.on_timer(1.4)) == 1 and set(itr._due) == {(S, G), (S, G2)}
    assert itr.on_timer(12.0) == [] and itr.lists == {} and itr.counters["idle-forgotten"] == 2


def test_itr_ignores_foreign_replies_retries_and_flushes_its_queue():
    itr = MulticastItr(rloc=RLOC0, map_resolver="172.16.255.1", encap=Encapsulator(RLOC0), queue_limit=2)
    assert itr.on_reply(lc.MapReply(12345, []), 0.0) is None
    for _ in range(3):
        itr.on_lan_packet(inner_packet(), 0.0)
    assert itr.counters["queued"] == 2 and itr.counters["queue-full"] == 1
    (payload, _, _), = itr.on_timer(0.0)
    assert itr.next_deadline() == 0.5
    (payload, _, _), = itr.on_timer(0.5)                       # no reply: asked again
    assert itr.counters["request-sent"] == 2
    nonce = lc.decode_control(lc.decode_control(payload).payload).nonce
    rec = lc.EidRecord(sg_prefix(S, G), 1, locators=[lc.Locator(rle_text([RLOC1]))])
    out = itr.on_reply(lc.MapReply(nonce, [rec]), 0.6)
    assert [a[1] for a in out] == [RLOC1, RLOC1] and itr.counters["flushed"] == 2
    assert itr.counters["packets-in"] == 3
    with pytest.raises(ValueError):
        MulticastItr(rloc=RLOC0, map_resolver="x", encap=Encapsulator(RLOC0), refresh_s=0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1400), st.integers(0, 0xFFFF))
def test_itr_completes_the_udp_checksum(payload, junk):
    from testbed.lisp.multicast_itr import complete_udp_checksum
    good = inner_packet(payload)
    partial = bytearray(good)
    partial[26:28] = junk.to_bytes(2, "big")            # what checksum offload leaves in the field
    assert complete_udp_checksum(bytes(partial)) == good
    frag = bytearray(good)
    frag[6] = 0x20                                      # a fragment: left alone
    assert complete_udp_checksum(bytes(frag)) == bytes(frag)
