"""REF-LIST (CoreCast type 3): fast codec, byte-identical scapy layer, errors, hypothesis fuzz."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.layers.corecast import CoreCast, CoreCastRefEntry, CoreCastRefList
from testbed.wire import corecast as cc
from testbed.wire.errors import DecodeError

A = socket.inet_aton
DIGEST = bytes.fromhex("0102030405060708")


def test_ref_list_sample_bytes():
    msg = cc.encode_ref_list(9, 3, DIGEST, A("192.0.2.2"), A("10.0.0.10"), 5000,
                             [(A("10.1.0.5"), 6000), (A("10.1.0.6"), 6001)])
    assert msg.hex() == ("13000000" "00000009" "00000003" "0102030405060708" "c0000202" "0a00000a"
                         "1388" "0002" "0a010005" "1770" "0a010006" "1771")
    assert len(msg) == 32 + 2 * 6


def test_ref_list_decodes_back():
    entries = ((A("10.1.0.5"), 6000), (A("10.1.0.6"), 6001), (A("10.1.0.7"), 1))
    msg = cc.encode_ref_list(1, 2, DIGEST, A("192.0.2.2"), A("10.0.0.10"), 5000, entries, cc.FLAG_DATA_FIRST)
    out = cc.decode(msg)
    assert isinstance(out, cc.CoreCastRefList)
    assert out == cc.CoreCastRefList(1, 2, DIGEST, A("192.0.2.2"), A("10.0.0.10"), 5000, entries, 0x80)
    assert out.encode() == msg
    assert cc.peek_type(msg) == cc.TYPE_REF_LIST


def test_scapy_layer_is_byte_identical():
    entries = [(A("10.1.0.5"), 6000), (A("10.1.0.9"), 6009)]
    fast = cc.encode_ref_list(7, 11, DIGEST, A("192.0.2.9"), A("10.0.0.10"), 5000, entries, 0x80)
    slow = CoreCast(type=3, flags=0x80, stream_id=7, seq=11) / CoreCastRefList(
        chunk_hash=int.from_bytes(DIGEST, "big"), etr_rloc="192.0.2.9", src_eid="10.0.0.10", sport=5000,
        entries=[CoreCastRefEntry(dst_eid="10.1.0.5", dport=6000), CoreCastRefEntry(dst_eid="10.1.0.9", dport=6009)])
    assert bytes(slow) == fast
    back = CoreCast(fast)
    assert back[CoreCastRefList].count == 2
    assert [(e.dst_eid, e.dport) for e in back[CoreCastRefList].entries] == [("10.1.0.5", 6000), ("10.1.0.9", 6009)]
    assert back[CoreCastRefList].etr_rloc == "192.0.2.9"


def test_capacity_fits_one_outer_packet():
    assert cc.ref_list_capacity(1500) == 238
    assert 36 + 32 + 6 * 238 <= 1500 < 36 + 32 + 6 * 239
    assert cc.split_entries(list(range(500)), 238) == [list(range(238)), list(range(238, 476)),
                                                       list(range(476, 500))]
    with pytest.raises(ValueError):
        cc.split_entries([1], 0)
    with pytest.raises(ValueError):
        cc.encode_ref_list(1, 1, DIGEST, A("0.0.0.0"), A("10.0.0.1"), 1, [])


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m[:31], "bad-length"),            # header cut
    (lambda m: m[:-1], "bad-length"),            # last entry cut
    (lambda m: m + b"\0", "bad-length"),         # trailing byte
    (lambda m: m[:30] + b"\0\0", "bad-count"),   # count 0, no entries
    (lambda m: m[:30] + b"\0\x03" + m[32:], "bad-length"),  # count says 3, 2 entries
])
def test_malformed_ref_lists(mutate, reason):
    msg = cc.encode_ref_list(1, 2, DIGEST, A("0.0.0.0"), A("10.0.0.10"), 5000,
                             [(A("10.1.0.5"), 6000), (A("10.1.0.6"), 6001)])
    with pytest.raises(DecodeError) as err:
        cc.decode(mutate(msg))
    assert err.value.reason == reason
    assert cc.error_reason(mutate(msg)) == reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_decode_error(data):
    for buf in (data, b"\x13" + data, b"\x13\0\0\0" + data):
        try:
            cc.decode(buf)
        except DecodeError:
            pass


entries_st = st.lists(st.tuples(st.binary(min_size=4, max_size=4), st.integers(0, 0xFFFF)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(entries_st, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
       st.integers(0, 200), st.integers(0, 255))
def test_roundtrip_and_mutations(entries, sid, seq, flags, pos, byte):
    msg = cc.encode_ref_list(sid, seq, DIGEST, A("192.0.2.1"), A("10.0.0.1"), 5000, entries, flags)
    assert cc.decode(msg).entries == tuple(entries)
    mutated = bytearray(msg)
    mutated[pos % len(msg)] = byte
    for buf in (bytes(mutated), msg[: pos % len(msg)]):
        try:
            cc.decode(buf)
        except DecodeError:
            pass


def test_tshark_dissects_ref_list(tmp_path):
    from test_tshark_corecast import _eth, _run, _tshark  # the dissector tests' helpers
    from testbed.capfile import write_pcap
    from testbed.decode import count_capture
    from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
    from testbed.wire.ipv4 import build_ipv4_udp
    from testbed.wire.lispdata import encode_lisp_header

    tshark = _tshark()
    msg = cc.encode_ref_list(7, 2, DIGEST, A("198.51.100.1"), A("10.0.0.10"), 5004,
                             [(A("10.1.0.5"), 6000), (A("10.1.0.6"), 6001), (A("10.1.0.7"), 6002)])
    lisp = encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, 1)
    frames = [_eth(build_ipv4_udp(A("192.0.2.1"), A("198.51.100.1"), 61000, 4341, lisp + msg)),
              _eth(build_ipv4_udp(A("10.0.0.10"), A("10.0.255.254"), 5004, 4340, msg)),
              _eth(build_ipv4_udp(A("192.0.2.1"), A("198.51.100.1"), 61000, 4341, lisp + msg[:-2]))]
    pcap = tmp_path / "list.pcap"
    write_pcap(str(pcap), frames)
    rows = _run(tshark, pcap, "corecast.type", "corecast.count", "corecast.etr_rloc", "corecast.src_eid",
                "_ws.expert.message", "_ws.col.Info", extra=("-E", "occurrence=a"))
    assert rows[0][:4] == ["3", "3", "198.51.100.1", "10.0.0.10"]
    assert rows[0][4] == "" and "3 destinations via 198.51.100.1" in rows[0][5]
    assert rows[1][0] == "3" and rows[1][1] == "3"
    assert "REF-LIST of 48 bytes" in rows[2][4]
    counts = count_capture(str(pcap))
    assert counts.packets["corecast-ref"] == 1 and counts.packets["corecast-service"] == 1
    assert counts.packets["malformed"] == 1  # the list with its last entry short
