"""LCAF codecs of RFC 8378 (Multicast Info type 9, RLE type 13): hand vectors from the RFC 8060 diagrams,
round trips, scapy byte identity, fuzz (only DecodeError escapes) and tshark as an outside judge."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.layers.lisp import LispControl, LispEidRecord, LispLcaf, LispLocator, LispMapReply, LispRleEntry
from testbed.wire import lispctrl as lc
from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispctrl.lcaf import (MulticastInfo, parse_mcast_info, parse_rle, rle_text, sg_of_prefix,
                                        sg_prefix)
from tests.test_tshark import _flatten, _tshark

H = bytes.fromhex
# RFC 8060 section 4.3 (Multicast Info): AFI 16387 | Rsvd1 | Flags | Type 9 | Rsvd2 |R|L|J| Length |
# Instance-ID | Reserved | Source MaskLen | Group MaskLen | AFI 1 | S | AFI 1 | G
MC_VECTOR = H("4003" "00" "00" "09" "00" "0014" "00000007" "0000" "20" "20" "0001" "0a00000a" "0001" "e8010203")
# RFC 8060 section 4.10 (RLE): AFI 16387 | Rsvd1 | Flags | Type 13 | Rsvd2 | Length | then per entry
# Rsvd3 (16) | Rsvd4 | Level | AFI 1 | RTR/ETR
RLE_VECTOR = H("4003" "00" "00" "0d" "00" "0014" "0000" "00" "00" "0001" "c0000201"
               "0000" "00" "80" "0001" "c0000202")


def test_multicast_info_hand_vector():
    text = MulticastInfo("10.0.0.10", "232.1.2.3", iid=7).text()
    from testbed.wire.lispctrl.addr import decode_addr, encode_addr
    assert encode_addr(text) == MC_VECTOR
    assert decode_addr(MC_VECTOR, 0, "x") == (text, len(MC_VECTOR))
    mc = parse_mcast_info(text)
    assert (mc.source, mc.group, mc.iid, mc.source_len, mc.group_len, mc.flags) == \
        ("10.0.0.10", "232.1.2.3", 7, 32, 32, 0)
    assert MulticastInfo("10.0.0.10", "232.1.2.3", flags=5).text()[:13] == "lcaf:0000" + "0905"


def test_rle_hand_vector():
    from testbed.wire.lispctrl.addr import encode_addr
    text = "lcaf:" + RLE_VECTOR[2:].hex()
    assert parse_rle(text) == [("192.0.2.1", 0), ("192.0.2.2", 128)]
    assert encode_addr(rle_text(["192.0.2.1"])) == RLE_VECTOR[:6] + b"\x00\x0a" + RLE_VECTOR[8:18]
    assert parse_rle(rle_text(["192.0.2.1", "192.0.2.2"], level=3)) == [("192.0.2.1", 3), ("192.0.2.2", 3)]


def test_sg_record_round_trip_and_scapy_identity():
    sg = sg_prefix("10.0.0.10", "232.1.2.3")
    assert sg_of_prefix(sg) == ("10.0.0.10", "232.1.2.3")
    assert sg_of_prefix("10.1.0.0/16") is None and sg_of_prefix(rle_text(["1.2.3.4"]) + "/0") is None
    rec = lc.EidRecord(sg, ttl=1, locators=[lc.Locator(rle_text(["192.0.2.1", "192.0.2.2"]))])
    raw = lc.MapReply(5, [rec]).encode()
    assert lc.decode_control(raw).records == [rec]
    built = LispMapReply(nonce=5, records=[LispEidRecord(
        ttl=1, mask_len=0, afi=16387, lcaf=LispLcaf(lcaf_type=9, source="10.0.0.10", group="232.1.2.3"),
        locators=[LispLocator(afi=16387, lcaf=LispLcaf(lcaf_type=13, rle=[
            LispRleEntry(rloc="192.0.2.1"), LispRleEntry(rloc="192.0.2.2")]))])])
    assert bytes(built) == raw
    parsed = LispControl(raw)
    assert bytes(parsed) == raw
    assert parsed.records[0].lcaf.group == "232.1.2.3"
    assert [e.rloc for e in parsed.records[0].locators[0].lcaf.rle] == ["192.0.2.1", "192.0.2.2"]
    req = lc.MapRequest(9, [sg], ["192.0.2.9"]).encode()
    assert lc.decode_control(req).eids == [sg]
    assert bytes(LispControl(req)) == req


@pytest.mark.parametrize("bad", ["10.0.0.1", "lcaf:zz", "lcaf:0000", "lcaf:00000d000000",
                                 "lcaf:000009000014", "lcaf:00000d00000a0000000000020102030405",
                                 "lcaf:00000d000004000000ff", MulticastInfo("1.2.3.4", "232.0.0.1").text()])
def test_bad_rle_is_decode_error(bad):
    with pytest.raises(DecodeError):
        parse_rle(bad)


def test_bad_mcast_info_is_decode_error():
    good = MulticastInfo("1.2.3.4", "232.0.0.1").text()
    for bad in (good[:-2], good + "00", good[:29] + "21" + good[31:], rle_text(["1.2.3.4"]),
                good.replace("0001e8", "0002e8")):
        with pytest.raises(DecodeError):
            parse_mcast_info(bad)
    with pytest.raises(ValueError):
        MulticastInfo("1.2.3.4", "232.0.0.1", source_len=33).text()
    with pytest.raises(ValueError):
        rle_text([])


ipv4 = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))


@settings(max_examples=200, deadline=None)
@given(ipv4, ipv4, st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 32), st.integers(0, 7),
       st.lists(st.tuples(ipv4, st.integers(0, 255)), min_size=1, max_size=20))
def test_round_trips(src, grp, iid, slen, glen, flags, entries):
    mc = MulticastInfo(src, grp, iid, slen, glen, flags)
    assert parse_mcast_info(mc.text()) == mc
    rlocs = [r for r, _ in entries]
    assert parse_rle(rle_text(rlocs, entries[0][1])) == [(r, entries[0][1]) for r in rlocs]
    rec = lc.EidRecord(mc.text() + "/0", locators=[lc.Locator(rle_text(rlocs))])
    raw = lc.MapRegister(1, [rec], merge=True).encode(b"k")
    assert lc.decode_control(raw).records == [rec]
    assert bytes(LispControl(raw)) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.sampled_from([9, 13, 2]))
def test_fuzz_only_decode_error(body, ltype):
    text = "lcaf:" + (bytes([0, 0, ltype, 0]) + len(body).to_bytes(2, "big") + body).hex()
    for parse in (parse_mcast_info, parse_rle):
        try:
            parse(text)
        except DecodeError:
            pass
    sg_of_prefix(text + "/0")


def _frame(payload: bytes) -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0800)
    return eth + build_ipv4_udp(socket.inet_aton("192.0.2.1"), socket.inet_aton("203.0.113.100"), 4342, 4342,
                                payload)


def _from_the_cores() -> list[bytes]:
    """What the lispmc ETR, ITR and Map-Server really send: a join register, an ECM (S,G) request, the reply."""
    import random

    from testbed.lisp.dataplane import Encapsulator
    from testbed.lisp.mapserver import MapServer, Site
    from testbed.lisp.multicast_etr import MulticastEtr
    from testbed.lisp.multicast_itr import MulticastItr
    from testbed.wire.igmp import ALLOW, build_v3_report
    etr = MulticastEtr(rloc="192.0.2.1", eid_prefixes=["10.1.0.0/16"], map_server="203.0.113.100", key=b"k",
                       rng=random.Random(1))
    hdr = bytes.fromhex("4600002c00000000010200000a010005e0000016") + bytes.fromhex("94040000")
    igmp = build_v3_report([(ALLOW, "232.1.2.3", ("10.0.0.10",))])
    hdr = hdr[:2] + (len(hdr) + len(igmp)).to_bytes(2, "big") + hdr[4:]
    (register, _, _), = etr.on_igmp(hdr + igmp, 0.0)
    ms = MapServer([Site("a", b"k", ["10.1.0.0/16"])])
    assert ms.on_message(register, "192.0.2.1", 4342, 0.0) == [] and ms.counters["sg-join"] == 1
    itr = MulticastItr(rloc="192.0.2.9", map_resolver="203.0.113.100", encap=Encapsulator("192.0.2.9"))
    itr.on_lan_packet(build_ipv4_udp(socket.inet_aton("10.0.0.10"), socket.inet_aton("232.1.2.3"), 1, 2, b"x"), 0.0)
    (ecm, _, _), = itr.on_timer(0.0)
    (reply, _, _), = ms.on_message(ecm, "192.0.2.9", 4342, 0.0)
    return [register, ecm, reply]


def test_tshark_dissects_every_lcaf_message(tmp_path: Path):
    tshark = _tshark()
    sg = sg_prefix("10.0.0.10", "232.1.2.3")
    reg = lc.MapRegister(6, [lc.EidRecord(sg, ttl=3, locators=[lc.Locator(rle_text(["192.0.2.1"]))])],
                         merge=True)
    reply = lc.MapReply(5, [lc.EidRecord(sg, ttl=1, locators=[lc.Locator(rle_text(["192.0.2.1", "192.0.2.2"]))])])
    notify = lc.MapNotify(6, reg.records)
    msgs = [reg.encode(b"k"), reply.encode(), lc.MapRequest(7, [sg], ["192.0.2.9"]).encode(), notify.encode(b"k"),
            lc.MapReply(8, [lc.EidRecord(sg, ttl=1, action=lc.ACTION_NATIVE_FORWARD)]).encode()]
    msgs += _from_the_cores()
    path = tmp_path / "lcaf.pcap"
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, msg in enumerate(msgs):
            frame = _frame(msg)
            out.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    res = subprocess.run([tshark, "-r", str(path), "-T", "json", "--no-duplicate-keys"], capture_output=True,
                         text=True, timeout=120, check=True)
    pkts = [_flatten(p["_source"]["layers"], {}) for p in json.loads(res.stdout)]
    assert len(pkts) == len(msgs)
    for f in pkts:
        assert not any(k.startswith("_ws.") and k != "_ws.lua.fake" for k in f), f.get("_ws.expert.message")
        assert f["lisp.lcaf.mcinfo.src.ipv4"] == ["10.0.0.10"] and f["lisp.lcaf.mcinfo.grp.ipv4"] == ["232.1.2.3"]
        assert f["lisp.lcaf.mcinfo.src.masklen"] == ["32"] and f["lisp.lcaf.mcinfo.grp.masklen"] == ["32"]
    assert pkts[0]["lisp.lcaf.type"] == ["9", "13"] and pkts[0]["lisp.lcaf.rle_entry.level"] == ["0"]
    assert pkts[1]["lisp.lcaf.length"] == ["20", "20"] and pkts[1]["lisp.lcaf.rle_entry.afi"] == ["1", "1"]
    assert pkts[2]["lisp.type"] == ["1"] and pkts[2]["lisp.lcaf.type"] == ["9"]
    assert pkts[5]["lisp.type"] == ["3"] and pkts[5]["lisp.mapping.eid.ipv4"] == ["10.1.0.0"]     # the ETR's join
    assert pkts[6]["lisp.type"] == ["8", "1"] and pkts[7]["lisp.lcaf.rle_entry.afi"] == ["1"]  # ECM, MS reply
