"""REF-MAP (CoreCast type 4, the compact REF-LIST): codec, scapy layer, encoder choice, the model to the byte,
the ETR's expansion under the REF-LIST's checks and bounds (N bits set give exactly N datagrams), hypothesis fuzz,
and the Wireshark dissector."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.addressing import make_plan
from testbed.layers.corecast import CoreCast, CoreCastRefMap
from testbed.lisp.dataplane import WRITE_TUN
from testbed.modemodels import list_bytes, ref_lists
from testbed.params import topo_params
from testbed.wire import corecast as cc
from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import build_ipv4_udp

from test_corecast_defence import CHUNK, ITR, SRC, make, source_site

A = socket.inet_aton
DIGEST = cc.chunk_hash(CHUNK)
BASE = "10.1.0.1"


def ip(text: str) -> int:
    return int.from_bytes(A(text), "big")


def eid(n: int) -> bytes:
    return n.to_bytes(4, "big")


def rmap(bits: str, base: str = BASE, dport: int = 6000, chunk: bytes = CHUNK, flags: int = 0) -> bytes:
    """A REF-MAP from a string of '0'/'1' (bit i names base + i)."""
    value = int(bits.ljust(-(-len(bits) // 8) * 8, "0"), 2)
    return cc.encode_ref_map(1, 0, cc.chunk_hash(chunk), A(ITR), SRC, 5000, dport, A(base), len(bits),
                             value.to_bytes(-(-len(bits) // 8), "big"), flags)


def primed(**kw):
    etr = make(source_site(), **kw)
    etr.on_message(cc.encode_data(1, 0, CHUNK), ITR, 0.0)
    return etr


def tun(actions):
    return [a[1] for a in actions if a[0] == WRITE_TUN]


# --- codec -------------------------------------------------------------------------------------------------------

def test_ref_map_sample_bytes():
    msg = cc.encode_ref_map(9, 3, bytes.fromhex("0102030405060708"), A("192.0.2.2"), A("10.0.0.10"), 5000, 6000,
                            A("10.1.0.5"), 10, bytes([0b10110000, 0b01000000]))
    assert msg.hex() == ("14000000" "00000009" "00000003" "0102030405060708" "c0000202" "0a00000a"
                         "1388" "1770" "0a010005" "000a" "0004" "b040")
    assert len(msg) == 40 + 2
    out = cc.decode(msg)
    assert isinstance(out, cc.CoreCastRefMap) and out.encode() == msg and cc.peek_type(msg) == cc.TYPE_REF_MAP
    assert out.entries == tuple((A(e), 6000) for e in ("10.1.0.5", "10.1.0.7", "10.1.0.8", "10.1.0.14"))


def test_scapy_layer_is_byte_identical():
    fast = rmap("1101" * 5 + "1", flags=cc.FLAG_DATA_FIRST)
    slow = CoreCast(type=4, flags=0x80, stream_id=1, seq=0) / CoreCastRefMap(
        chunk_hash=int.from_bytes(DIGEST, "big"), etr_rloc=ITR, src_eid="10.0.0.10", sport=5000, dport=6000,
        base=BASE, length=21, bitmap=fast[40:])
    assert bytes(slow) == fast
    back = CoreCast(fast)[CoreCastRefMap]
    assert (back.base, back.length, back.count, back.dport, back.bitmap) == (BASE, 21, 16, 6000, fast[40:])


def test_capacity_fits_one_outer_packet():
    assert cc.ref_map_capacity(1500) == 11392 == (1500 - 36 - 40) * 8
    with pytest.raises(ValueError):
        cc.encode_ref_map(1, 1, DIGEST, A(ITR), SRC, 1, 2, A(BASE), 9, b"\x80")  # 9 bits need 2 bytes
    with pytest.raises(ValueError):
        cc.encode_ref_map(1, 1, DIGEST, A(ITR), SRC, 1, 2, A(BASE), 8, b"\x00")  # no destination


def _with(msg: bytes, off: int, value: bytes) -> bytes:
    return msg[:off] + value + msg[off + len(value):]


GOOD = rmap("1" * 10)  # 10.1.0.1 .. 10.1.0.10: 40 + 2 bytes, last byte 0b11000000


@pytest.mark.parametrize("msg, reason", [
    (GOOD[:40], "bad-length"),                                   # no bitmap at all
    (_with(GOOD, 36, b"\0\0"), "bad-length"),                    # zero length
    (_with(GOOD, 36, b"\0\x11"), "bad-length"),                  # 17 bits need 3 bytes, 2 here
    (_with(GOOD, 36, b"\xff\xff"), "bad-length"),                # huge length, 2 bytes of bitmap
    (GOOD + b"\0", "bad-length"),                                # trailing byte
    (_with(GOOD, 41, b"\xe0"), "bad-bitmap"),                    # bit 10 set, length 10
    (_with(GOOD, 38, b"\0\0"), "bad-count"),                     # count 0
    (_with(GOOD, 38, b"\0\x09"), "bad-count"),                   # count 9, 10 bits set
    (_with(GOOD, 32, A("255.255.255.250")), "bad-range"),        # base + 9 wraps past 255.255.255.255
])
def test_malformed_ref_maps_are_decode_errors_and_counted_drops(msg, reason):
    with pytest.raises(DecodeError) as err:
        cc.decode(msg)
    assert err.value.reason == reason and cc.error_reason(msg) == reason
    etr = primed()
    assert etr.on_message(msg, ITR, 1.0) == []
    assert etr.counters[f"decode-{reason}"] == 1 and etr.counters["delivered"] == 0


# --- encoder choice -----------------------------------------------------------------------------------------------

def _list(dsts, flags: int = 0) -> bytes:
    return cc.encode_ref_list(1, 0, DIGEST, A(ITR), SRC, 5000, dsts, flags)


def test_compact_picks_the_shorter_form():
    one = _list([(A("10.1.0.1"), 6000)])
    assert cc.compact_ref_list(one) == one  # 38 bytes against a 41-byte map
    ten = _list([(A(f"10.1.0.{i}"), 6000) for i in range(1, 11)], flags=cc.FLAG_DATA_FIRST)
    short = cc.compact_ref_list(ten)
    assert len(short) == 42 < len(ten) == 92 and short[0] == 0x14 and short[1] == cc.FLAG_DATA_FIRST
    assert cc.decode(short).entries == cc.decode(ten).entries
    mixed = _list([(A("10.1.0.1"), 6000), (A("10.1.0.2"), 6001), (A("10.1.0.3"), 6000)])
    assert cc.compact_ref_list(mixed) == mixed  # two ports: only the per-entry form names them
    scattered = _list([(A("10.1.0.1"), 6000), (A("10.1.3.1"), 6000)])
    assert cc.compact_ref_list(scattered) == scattered  # 769 bits: 137 bytes against 44
    repeated = _list([(A("10.1.0.2"), 6000), (A("10.1.0.1"), 6000), (A("10.1.0.2"), 6000)])
    assert cc.decode(cc.compact_ref_list(repeated)).entries == ((A("10.1.0.1"), 6000), (A("10.1.0.2"), 6000))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.sampled_from([6000, 6000, 6000, 7000])), min_size=1, max_size=60))
def test_compact_never_longer_and_names_the_same_destinations(raw):
    dsts = [(eid(ip("10.1.0.0") + off), port) for off, port in raw]
    msg = _list(dsts)
    out = cc.compact_ref_list(msg)
    assert len(out) <= len(msg)
    assert set(cc.decode(out).entries) == set(dsts)


def _plan_eids(n: int) -> list[bytes]:
    plan = make_plan(topo_params({"ases": 1, "clients": n, "client_hosts": "per-as"}))
    return [A(e) for _h, e in plan.client_ases[0].clients]


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 10, 17, 100, 237, 238, 239, 250, 251, 300, 476, 477, 1000, 2000])
def test_encoder_bytes_equal_the_model(n):
    """What the source sends for an AS's first n clients (the addressing plan's EIDs) is the model's list_bytes."""
    msgs = cc.encode_ref_messages(1, 0, DIGEST, A("172.16.1.2"), SRC, 5000, [(e, 6000) for e in _plan_eids(n)],
                                  cc.ref_list_capacity(), cc.FLAG_DATA_FIRST)
    assert len(msgs) == ref_lists(n)
    assert sum(map(len, msgs)) == list_bytes(n)
    assert msgs[0][1] == cc.FLAG_DATA_FIRST and all(m[1] == 0 for m in msgs[1:])
    assert [e for m in msgs for e in cc.decode(m).entries] == [(e, 6000) for e in _plan_eids(n)]


def test_gamma_10_and_100_are_within_1_10_of_the_floor():
    """Source uplink per ETR: DATA (48+P) + one REF-MAP (36 + 40 + ceil(gamma/8)) against the floor 48+P."""
    floor = 48 + len(CHUNK)
    for gamma, expect in ((10, 1.0572), (100, 1.0652)):
        per_etr = floor + 36 * ref_lists(gamma) + list_bytes(gamma)
        assert per_etr / floor == pytest.approx(expect, abs=1e-4) and per_etr / floor <= 1.10


# --- the ETR ------------------------------------------------------------------------------------------------------

def test_n_bits_give_exactly_n_datagrams_byte_identical_to_refs_and_unicast():
    bits = "1011001110" * 3 + "1"
    want = [A(BASE)[:3] + bytes([1 + i]) for i, b in enumerate(bits) if b == "1"]
    by_map = tun(primed().on_message(rmap(bits), ITR, 1.0))
    assert len(by_map) == bits.count("1") == 19
    assert by_map == [build_ipv4_udp(SRC, d, 5000, 6000, CHUNK) for d in want]
    etr = primed()
    by_refs = [p for d in want for p in tun(etr.on_message(cc.encode_ref(1, 0, DIGEST, SRC, d, 5000, 6000), ITR,
                                                           1.0))]
    assert by_map == by_refs
    assert tun(primed().on_message(cc.encode_ref_list(1, 0, DIGEST, A(ITR), SRC, 5000, [(d, 6000) for d in want]),
                                   ITR, 1.0)) == by_map


def test_repeated_map_and_overlapping_list_give_nothing_more():
    etr = primed()
    assert len(tun(etr.on_message(rmap("1111"), ITR, 1.0))) == 4
    assert tun(etr.on_message(rmap("1111"), ITR, 1.0)) == []
    again = cc.encode_ref_list(1, 0, DIGEST, A(ITR), SRC, 5000, [(A("10.1.0.2"), 6000), (A("10.1.0.9"), 6000)])
    assert len(tun(etr.on_message(again, ITR, 1.0))) == 1
    assert etr.counters["cc-list-repeat"] == 5 and etr.counters["delivered"] == 5 and etr.counters["map-in"] == 2


def test_out_of_prefix_base_and_partly_foreign_ranges():
    etr = primed()
    assert etr.on_message(rmap("11111", base="10.9.0.1"), ITR, 1.0) == []
    assert etr.counters["foreign-eid"] == 5 and etr.counters["delivered"] == 0
    # 10.0.255.254 .. 10.1.0.3: the first two bits are outside 10.1.0.0/16
    assert len(tun(etr.on_message(rmap("111011", base="10.0.255.254"), ITR, 1.0))) == 3
    assert etr.counters["foreign-eid"] == 7


def test_bounds_count_and_length():
    etr = primed(max_list=4)
    assert etr.on_message(rmap("11111"), ITR, 1.0) == []  # 5 bits set, at most 4 per message
    assert len(tun(etr.on_message(rmap("1111"), ITR, 1.0))) == 4
    long_map = primed(max_map_bits=64)
    assert long_map.on_message(rmap("1" + "0" * 64 + "1"), ITR, 1.0) == []  # 66 bits > 64: huge for this ETR
    default = primed()
    assert default.max_map_bits == cc.ref_map_capacity() and default.max_list == cc.ref_list_capacity()
    assert default.on_message(rmap("1" + "0" * 11392 + "1"), ITR, 1.0) == []  # longer than one outer packet
    assert len(tun(default.on_message(rmap("1" + "0" * 11390 + "1"), ITR, 1.0))) == 2
    assert etr.counters["cc-list-too-long"] == long_map.counters["cc-list-too-long"] == 1
    assert default.counters["cc-list-too-long"] == 1


def test_cold_map_cache_queues_every_bit_then_delivers_and_wrong_hash_gives_nothing():
    from testbed.lisp.dataplane import RESOLVE
    etr = make()  # the source's mapping is not cached yet
    etr.on_message(cc.encode_data(1, 0, CHUNK), ITR, 0.0)
    assert etr.on_message(rmap("101"), ITR, 1.0) == [(RESOLVE, int.from_bytes(SRC, "big"))]
    got = tun(etr.on_resolved(int.from_bytes(SRC, "big"), source_site(), 1.1))
    assert got == [build_ipv4_udp(SRC, A(d), 5000, 6000, CHUNK) for d in ("10.1.0.1", "10.1.0.3")]
    stale = primed()
    assert stale.on_message(rmap("111", chunk=b"another chunk"), ITR, 1.0) == []
    assert stale.counters["hash-mismatch"] == 3


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(1, 4))
def test_map_never_more_packets_than_the_refs_it_replaces(offsets, repeats):
    """Fewer bytes in, never more packets out: the map (sent ``repeats`` times) against its REFs (sent once)."""
    dsts = sorted({ip(BASE) + o for o in offsets})
    etr = primed()
    refs = [cc.encode_ref(1, 0, DIGEST, SRC, eid(d), 5000, 6000) for d in dsts]
    ref_pkts = sum(len(tun(etr.on_message(r, ITR, 1.0))) for r in refs)
    bits = "".join("1" if ip(BASE) + i in dsts else "0" for i in range(dsts[-1] - ip(BASE) + 1))
    msg = rmap(bits)
    etr = primed()
    map_pkts = sum(len(tun(etr.on_message(msg, ITR, 1.0))) for _ in range(repeats))
    assert map_pkts == ref_pkts == len(dsts)
    assert len(msg) < sum(map(len, refs)) or len(dsts) == 1  # one destination: a REF (32) is shorter


def test_unvouched_itr_gets_nothing_from_a_map():
    from test_corecast_defence import OUTSIDER
    etr = make(source_site())
    etr.on_message(cc.encode_data(1, 0, CHUNK), OUTSIDER, 0.0)
    assert tun(etr.on_message(rmap("111"), OUTSIDER, 1.0)) == []
    assert etr.counters["cc-unknown-itr"] == 3


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 700), st.binary(min_size=1, max_size=90), st.integers(0, 0xFFFF))
def test_fuzz_any_map_gives_at_most_its_bits_set(base, length, bitmap, count):
    """Random headers and bitmaps: never a traceback; a map the ETR accepts gives at most Count datagrams, each to
    a set bit's EID inside 10.1.0.0/16; everything else is a counted drop."""
    msg = cc._MAP.pack(0x14, 0, 0, 1, 0, DIGEST, A(ITR), SRC, 5000, 6000, base, length, count) + bitmap
    etr = primed()
    out = tun(etr.on_message(msg, ITR, 1.0))
    if cc.ref_map_fault(msg) is not None:
        assert out == [] and etr.counters["decode-" + cc.ref_map_fault(msg)] == 1
        return
    eids = set(cc.ref_map_eids(bitmap, base))
    assert len(out) <= count == len(eids)
    for pkt in out:
        dst = int.from_bytes(pkt[16:20], "big")
        assert dst in eids and dst >> 16 == ip("10.1.0.0") >> 16
    dropped = etr.counters["foreign-eid"] + etr.counters["cc-list-too-long"] * count
    assert len(out) + dropped == count


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 45), st.integers(0, 255), st.integers(0, 45))
def test_fuzz_mutated_and_cut_maps_never_raise(pos, byte, cut):
    msg = bytearray(rmap("1101" * 6))
    msg[pos % len(msg)] = byte
    for buf in (bytes(msg), bytes(msg)[:cut]):
        etr = primed()
        out = tun(etr.on_message(buf, ITR, 1.0))
        assert len(out) <= 24
        try:
            cc.decode(buf)
        except DecodeError:
            assert out == []


# --- the ITR forwards the source's REF-MAPs ----------------------------------------------------------------------

def test_itr_forwards_a_source_map_to_the_named_etr_and_drops_bad_ones():
    from test_corecast_itr import S, make as make_itr
    from testbed.lisp.dataplane import SEND_RAW
    itr = make_itr()
    out = itr.on_service_message(cc.encode_data(1, 0, CHUNK), S, 0.0)
    good = cc.encode_ref_map(1, 0, DIGEST, A("192.0.2.2"), S, 5000, 6000, A("10.2.0.1"), 10, b"\xff\xc0",
                             cc.FLAG_DATA_FIRST)
    out += itr.on_service_message(good, S, 0.0)
    sent = [(a[1], a[2][36:]) for a in out if a[0] == SEND_RAW]
    assert [m[0] & 0x0F for _r, m in sent] == [1, 4] and {r for r, _m in sent} == {"192.0.2.2"}
    assert sent[1][1] == good[:1] + b"\0" + good[2:]  # as received, the D flag cleared
    assert itr.counters["list-fwd"] == 1 and itr.counters["list-entries"] == 10
    assert itr.on_service_message(_with(good, 41, b"\xe0"), S, 0.0) == []  # a bit after the length
    assert itr.counters["decode-bad-bitmap"] == 1


# --- Wireshark ------------------------------------------------------------------------------------------------------

def test_tshark_dissects_ref_maps(tmp_path):
    from test_tshark_corecast import _eth, _run, _tshark  # the dissector tests' helpers
    from testbed.capfile import write_pcap
    from testbed.decode import count_capture
    from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
    from testbed.wire.lispdata import encode_lisp_header

    tshark = _tshark()
    msg = cc.encode_ref_map(7, 2, DIGEST, A("198.51.100.1"), A("10.0.0.10"), 5004, 6000, A("10.1.128.1"), 100,
                            bytes([0xFF] * 12 + [0xF0]))
    small = cc.encode_ref_map(7, 3, DIGEST, A("198.51.100.1"), A("10.0.0.10"), 5004, 6000, A("10.1.0.5"), 4,
                              b"\xa0")
    lisp = encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, 1)
    core, svc = (A("192.0.2.1"), A("198.51.100.1"), 61000, 4341), (A("10.0.0.10"), A("10.0.255.254"), 5004, 4340)
    frames = [_eth(build_ipv4_udp(*core, lisp + msg)),
              _eth(build_ipv4_udp(*svc, msg)),
              _eth(build_ipv4_udp(*core, lisp + small)),
              _eth(build_ipv4_udp(*core, lisp + _with(small, 40, b"\xa8"))),  # a bit after the length
              _eth(build_ipv4_udp(*core, lisp + msg[:-1]))]                  # bitmap one byte short
    pcap = tmp_path / "map.pcap"
    write_pcap(str(pcap), frames)
    rows = _run(tshark, pcap, "corecast.type", "corecast.count", "corecast.map_len", "corecast.base",
                "corecast.etr_rloc", "corecast.dst_eid", "_ws.expert.message", "_ws.malformed", "_ws.col.Info",
                )
    assert len(rows) == 5
    assert rows[0][:6] == ["4", "100", "100", "10.1.128.1", "198.51.100.1", "10.1.128.1"]
    assert rows[0][6] == "" and rows[0][7] == ""
    assert "100 destinations from 10.1.128.1 port 6000 via 198.51.100.1" in rows[0][8]
    assert rows[1][:3] == ["4", "100", "100"] and rows[1][6] == ""
    assert rows[2][5] == "10.1.0.5" and rows[2][6] == ""
    # each destination a bit names is a filterable corecast.dst_eid, and no other
    for flt, frames in (("10.1.128.100", ["1", "2"]), ("10.1.128.101", []), ("10.1.0.7", ["3"]), ("10.1.0.6", [])):
        got = _run(tshark, pcap, "frame.number", extra=("-Y", f"corecast.type == 4 && corecast.dst_eid == {flt}"))
        assert [r[0] for r in got] == frames, flt
    assert "after its length" in rows[3][6] and "malformed" in rows[3][8]
    assert "for a length of 100 bits" in rows[4][6]
    counts = count_capture(str(pcap))
    assert counts.packets["corecast-ref"] == 2 and counts.packets["corecast-service"] == 1
    assert counts.packets["malformed"] == 2
