"""scapy layers: byte-exact build and dissect, identical bytes to the fast codecs for the same fields."""

from __future__ import annotations

import socket

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from testbed.layers import (CoreCast, CoreCastRef, LispAfiAddress, LispData, LispEcm, LispEidRecord, LispLocator,
                            LispMapNotify, LispMapRegister, LispMapReply, LispMapRequest, LispRequestRecord)
from testbed.wire import corecast as cc
from testbed.wire import lispctrl as lc
from testbed.wire.constants import CORECAST_PORT
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispdata import encode_lisp_header

H = bytes.fromhex
A = socket.inet_aton


def test_lisp_data_header_bytes():
    assert bytes(LispData(flags="N+I", nonce=0x123456, iid_lsb=7)) == H("88123456" "00000007")
    assert bytes(LispData(flags="N+C", nonce=1)) == encode_lisp_header(0x84, 1, 0)
    hdr = LispData(H("8c000005" "00000000"))
    assert hdr.flags.C and hdr.flags.N and not hdr.flags.L and hdr.nonce == 5


def test_lisp_data_payload_is_ip_or_corecast():
    inner = build_ipv4_udp(A("10.0.0.1"), A("10.1.0.5"), 5000, 6000, b"x" * 10)
    outer = IP(build_ipv4_udp(A("192.0.2.1"), A("192.0.2.2"), 50000, 4341, encode_lisp_header(0x80, 1) + inner))
    assert outer[LispData].payload.__class__ is IP and outer[IP:2].dst == "10.1.0.5"
    ref = cc.encode_ref(9, 3, b"12345678", A("10.0.0.1"), A("10.1.0.5"), 5000, 6000)
    outer = IP(build_ipv4_udp(A("192.0.2.1"), A("192.0.2.2"), 50000, 4341, encode_lisp_header(0x84, 1) + ref))
    assert outer[CoreCast].type == 2 and outer[CoreCast].stream_id == 9 and outer[CoreCast].seq == 3
    assert outer[CoreCastRef].chunk_hash == int.from_bytes(b"12345678", "big")
    assert outer[CoreCastRef].dst_eid == "10.1.0.5" and outer[CoreCastRef].dport == 6000


def test_corecast_layers_match_fast_codec():
    digest = cc.chunk_hash(b"chunk")
    ref = CoreCast(type=2, stream_id=9, seq=3) / CoreCastRef(chunk_hash=int.from_bytes(digest, "big"),
                                                            src_eid="10.0.0.1", dst_eid="10.1.0.5",
                                                            sport=5000, dport=6000)
    fast = cc.encode_ref(9, 3, digest, A("10.0.0.1"), A("10.1.0.5"), 5000, 6000)
    assert bytes(ref) == fast and len(fast) == 32
    assert bytes(CoreCast(type=1, stream_id=9, seq=4) / Raw(b"chunk")) == cc.encode_data(9, 4, b"chunk")
    assert bytes(CoreCast(stream_id=1, seq=2)) == H("11000000" "00000001" "00000002")


def test_corecast_service_port_binding():
    pkt = IP(build_ipv4_udp(A("10.0.0.1"), A("10.0.255.254"), 5000, CORECAST_PORT, cc.encode_data(1, 2, b"abc")))
    assert pkt[CoreCast].type == 1 and bytes(pkt[CoreCast].payload) == b"abc"


def test_map_request_matches_fast_codec():
    fast = lc.MapRequest(0x0102030405060708, ["10.1.0.0/16"], ["192.0.2.1"]).encode()
    pkt = LispMapRequest(nonce=0x0102030405060708, itr_rlocs=[LispAfiAddress(address="192.0.2.1")],
                         eids=[LispRequestRecord(mask_len=16, prefix="10.1.0.0")])
    assert bytes(pkt) == fast == H("10000001" "0102030405060708" "0000" "0001c0000201" "00100001" "0a010000")
    rec = LispEidRecord(mask_len=24, prefix="10.0.0.0", locators=[LispLocator(rloc="192.0.2.7")])
    pkt = LispMapRequest(flags="A+M+s", nonce=9, source_eid_afi=1, source_eid="10.0.0.5",
                         itr_rlocs=[LispAfiAddress(address="192.0.2.1"), LispAfiAddress(address="192.0.2.9")],
                         eids=[LispRequestRecord(mask_len=32, prefix="10.5.0.1")], map_reply=rec)
    fast = lc.MapRequest(9, ["10.5.0.1/32"], ["192.0.2.1", "192.0.2.9"], source_eid="10.0.0.5", authoritative=True,
                         smr_invoked=True, map_reply=lc.EidRecord("10.0.0.0/24", locators=[lc.Locator("192.0.2.7")]))
    assert bytes(pkt) == fast.encode()
    back = LispMapRequest(fast.encode())
    assert back.irc == 1 and back.map_reply.locators[0].rloc == "192.0.2.7" and back.flags.A


def test_map_reply_matches_fast_codec():
    fast = lc.MapReply(0xAABB, [lc.EidRecord("10.2.0.0/16", locators=[lc.Locator("203.0.113.2", corecast=True)]),
                                lc.EidRecord("10.9.0.0/16", ttl=15, action=1, authoritative=False)]).encode()
    pkt = LispMapReply(nonce=0xAABB, records=[
        LispEidRecord(mask_len=16, prefix="10.2.0.0", locators=[LispLocator(rloc="203.0.113.2", flags="R+CoreCast")]),
        LispEidRecord(ttl=15, mask_len=16, prefix="10.9.0.0", action=1, authoritative=0)])
    assert bytes(pkt) == fast
    back = LispMapReply(fast)
    assert back.rec_count == 2 and back.records[0].locators[0].flags.CoreCast
    assert back.records[1].loc_count == 0 and back.records[1].action == 1


def test_map_register_and_notify_match_fast_codec():
    recs = [lc.EidRecord("10.1.0.0/16", locators=[lc.Locator("198.51.100.1", local=True)])]
    fast = lc.MapRegister(1, recs, proxy_reply=True).encode(b"key")
    auth = fast[16:48]
    srec = LispEidRecord(mask_len=16, prefix="10.1.0.0", locators=[LispLocator(rloc="198.51.100.1", flags="L+R")])
    pkt = LispMapRegister(flags="P", flags2="M", nonce=1, key_id=0, alg_id=2, auth=auth, records=[srec])
    assert bytes(pkt) == fast
    back = LispMapRegister(fast)
    assert back.auth_len == 32 and back.alg_id == 2 and back.flags.P and back.flags2.M
    nfast = lc.MapNotify(1, recs, alg_id=1).encode(b"key")
    npkt = LispMapNotify(nonce=1, alg_id=1, auth=nfast[16:36], records=[srec])
    assert bytes(npkt) == nfast


def test_ecm_matches_fast_codec():
    inner = lc.MapRequest(3, ["10.1.0.0/16"], ["192.0.2.1"]).encode()
    fast = lc.Ecm("192.0.2.1", "192.0.2.100", 40000, 4342, inner).encode()
    pkt = LispEcm() / IP(src="192.0.2.1", dst="192.0.2.100", ttl=64, id=0, flags=0) / \
        UDP(sport=40000, dport=4342) / LispMapRequest(inner)
    assert bytes(pkt) == fast
    back = IP(build_ipv4_udp(A("192.0.2.1"), A("192.0.2.100"), 4342, 4342, fast))
    assert back[LispEcm].type == 8 and back[LispMapRequest].nonce == 3


def test_i_bit_register_and_notify_trailer_match_fast_codec():
    recs = [lc.EidRecord("10.5.0.0/24", ttl=3, locators=[lc.Locator("10.0.0.13", 0, 0, local=True)])]
    fast = lc.MapRegister(7, recs, use_ttl=True, xtr_id=0xAACD21D1050F82BC, site_id=9).encode(b"secret")
    back = LispMapRegister(fast)
    assert back.flags.I and back.flags2.T and back.flags2.M
    assert back.xtr_id == (0xAACD21D1050F82BC).to_bytes(16, "big") and back.site_id == 9
    assert bytes(back) == fast
    nfast = lc.MapNotify(7, recs, xtr_id=5, site_id=6).encode(b"secret")
    nback = LispMapNotify(nfast)
    assert nback.flags.I and not nback.flags.R and nback.site_id == 6 and bytes(nback) == nfast


def test_mixed_afi_request_and_rloc_probe_dissect():
    raw = H("1000010100000000000000550000000220010db80000000000000000000000010001c6336409002000010a01000a")
    pkt = LispMapRequest(raw)
    assert [a.afi for a in pkt.itr_rlocs] == [2, 1]
    assert pkt.itr_rlocs[0].address6 == "2001:db8::1" and pkt.itr_rlocs[1].address == "198.51.100.9"
    assert bytes(pkt) == raw
    probe = lc.MapRequest(5, ["/0"], ["10.0.0.13"], probe=True).encode()
    ppkt = LispMapRequest(probe)
    assert ppkt.flags.P and ppkt.eids[0].afi == 0 and ppkt.eids[0].mask_len == 0 and bytes(ppkt) == probe
    reply = lc.MapReply(5, [lc.EidRecord("10.1.0.0/16", locators=[lc.Locator("172.16.1.2", local=True,
                                                                              probed=True)])], probe=True)
    rpkt = LispMapReply(reply.encode())
    assert rpkt.flags.P and rpkt.records[0].locators[0].flags.p and bytes(rpkt) == reply.encode()
