"""P2P overlay wire format: fast codec round trips, scapy layers byte-identical, decoders raise only DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, UDP

from testbed.layers.p2p import (P2P, P2PAddr, P2PBufferMap, P2PChunk, P2PEntry, P2PPeers, P2PRequest)
from testbed.wire import p2p as w
from testbed.wire.errors import DecodeError


def test_join_and_leave_bytes():
    b = w.encode_join(7, 1, "10.1.0.10", 4350)
    assert b.hex() == "1100000700000001" + "0a01000a" + "10fe" + "0000"
    assert bytes(P2P(type=1, asn=7, stream_id=1) / P2PAddr(eid="10.1.0.10", port=4350)) == b
    m = w.decode(b)
    assert (m.mtype, m.asn, m.stream_id, m.body) == (w.JOIN, 7, 1, ("10.1.0.10", 4350))
    leave = w.encode_join(7, 1, "10.1.0.10", 4350, leave=True)
    assert leave[0] == 0x13 and w.decode(leave).mtype == w.LEAVE
    assert bytes(P2P(type=3, asn=7, stream_id=1) / P2PAddr(eid="10.1.0.10", port=4350)) == leave


def test_peers_identical_to_scapy():
    entries = [("10.1.0.10", 4350, 1), ("10.2.3.4", 9, 2)]
    b = w.encode_peers(0, 5, 42, entries)
    assert len(b) == 16 + 16
    layer = P2P(type=2, asn=0, stream_id=5) / P2PPeers(newest=42, entries=[P2PEntry(eid=e, port=p, asn=a)
                                                                          for e, p, a in entries])
    assert bytes(layer) == b
    assert w.decode(b).body == (42, entries)
    parsed = P2P(b)
    assert parsed[P2PPeers].count == 2 and parsed[P2PPeers].entries[1].eid == "10.2.3.4"


def test_buffermap_bits_and_scapy():
    held = {100, 101, 109, 110}
    bm = w.bitmap_of(held, 100, 11)
    assert bm == bytes([0b11000000, 0b01100000])
    assert w.bitmap_seqs(100, 11, bm) == [100, 101, 109, 110]
    b = w.encode_buffermap(3, 1, 100, 11, bm)
    assert bytes(P2P(type=4, asn=3, stream_id=1) / P2PBufferMap(base=100, bits=11, bitmap=bm)) == b
    assert w.decode(b).body == (100, 11, bm)
    assert w.decode(w.encode_buffermap(3, 1, 0, 0, b"")).body == (0, 0, b"")
    with pytest.raises(ValueError):
        w.encode_buffermap(3, 1, 0, 9, b"\x00")


def test_request_and_chunk_identical_to_scapy():
    b = w.encode_request(2, 1, [5, 6, 0xFFFFFFFF])
    assert bytes(P2P(type=5, asn=2, stream_id=1) / P2PRequest(seqs=[5, 6, 0xFFFFFFFF])) == b
    assert w.decode(b).body == (5, 6, 0xFFFFFFFF)
    c = w.encode_chunk(2, 1, 77, 1_700_000_000_123_456, b"x" * 1316)
    assert len(c) == w.CHUNK_HEADER + 1316
    assert bytes(P2P(type=6, asn=2, stream_id=1) / P2PChunk(seq=77, time_us=1_700_000_000_123_456,
                                                              chunk=b"x" * 1316)) == c
    assert w.decode(c).body == (77, 1_700_000_000_123_456, b"x" * 1316)
    pkt = IP(bytes(IP(src="10.1.0.10", dst="10.2.0.10") / UDP(sport=4350, dport=4350) / c))
    assert pkt[P2PChunk].seq == 77 and pkt[P2PChunk].chunk == b"x" * 1316


@pytest.mark.parametrize("data,reason", [
    (b"", "truncated"), (b"\x11\x00\x00", "truncated"),
    (bytes([0x21, 0, 0, 0, 0, 0, 0, 1]), "bad-version"),
    (bytes([0x19, 0, 0, 0, 0, 0, 0, 1]), "unknown-type"),
    (w.encode_join(1, 1, "10.0.0.1", 1) + b"\x00", "bad-length"),
    (w.encode_peers(0, 1, 0, [("10.0.0.1", 1, 1)])[:-1], "bad-length"),
    (bytes([0x12, 0, 0, 0, 0, 0, 0, 1]) + b"\x00" * 4 + b"\xff\xff\x00\x00", "too-many"),
    (w.encode_buffermap(1, 1, 0, 9, b"\x00\x00") + b"\x00", "bad-length"),
    (bytes([0x14, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0]), "too-many"),
    (w.encode_request(1, 1, [1, 2])[:-2], "bad-length"),
    (w.encode_chunk(1, 1, 1, 1, b"")[:-1], "truncated"),
])
def test_malformed_reason(data, reason):
    with pytest.raises(DecodeError) as info:
        w.decode(data)
    assert info.value.reason == reason


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 6))
def test_decoder_raises_only_decode_error(tail, mtype):
    """Random bodies behind a valid first byte (and wholly random bytes) decode or raise DecodeError."""
    for data in (bytes([0x10 | mtype]) + tail, tail):
        try:
            m = w.decode(data)
        except DecodeError:
            continue
        assert m.mtype in w.TYPE_NAMES


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sets(st.integers(0, 300), max_size=60), st.integers(0, 300))
def test_bitmap_round_trip(base, rel, bits):
    held = {base + r for r in rel}
    bm = w.bitmap_of(held, base, bits)
    assert w.bitmap_seqs(base, bits, bm) == sorted(s for s in held if s - base < bits)
