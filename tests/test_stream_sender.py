"""Per-chunk datagrams of the source in unicast and corecast modes, byte-exact."""

import socket

import pytest

from testbed.stream.sender import Sender
from testbed.wire import corecast
from testbed.wire.corecast import CoreCastData, CoreCastRef, chunk_hash

P = 1316
CHUNK = bytes(range(256)) * 5 + bytes(P - 1280)
DESTS = [("10.1.0.10", 6000), ("10.1.0.11", 6001), ("10.2.0.10", 6000)]


def test_unicast_one_datagram_per_client():
    s = Sender("unicast", src_eid="10.0.0.10", src_port=5000)
    grams = s.datagrams(0, CHUNK, DESTS)
    assert grams == [(CHUNK, "10.1.0.10", 6000), (CHUNK, "10.1.0.11", 6001), (CHUNK, "10.2.0.10", 6000)]
    assert s.counters.ip_bytes == 3 * (28 + P)     # IP total length on the wire
    assert s.counters.as_dict()["by_kind"] == {"unicast": {"datagrams": 3, "bytes": 3 * P}}
    assert s.counters.chunks == 1


def test_corecast_data_then_refs():
    s = Sender("corecast", src_eid="10.0.0.10", src_port=5000, stream_id=7, service=("10.0.255.254", 4340))
    grams = s.datagrams(41, CHUNK, DESTS)
    assert len(grams) == 1 + len(DESTS)
    assert all((addr, port) == ("10.0.255.254", 4340) for _, addr, port in grams)
    data = grams[0][0]
    assert len(data) + 28 == 40 + P
    assert data[:12] == bytes([0x11, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 41])
    assert corecast.decode(data) == CoreCastData(7, 41, CHUNK)
    for (ref, _, _), (eid, port) in zip(grams[1:], DESTS):
        assert len(ref) + 28 == 60
        assert corecast.decode(ref) == CoreCastRef(7, 41, chunk_hash(CHUNK), socket.inet_aton("10.0.0.10"),
                                                   socket.inet_aton(eid), 5000, port)
    c = s.counters.as_dict()
    assert c["by_kind"] == {"data": {"datagrams": 1, "bytes": 12 + P}, "ref": {"datagrams": 3, "bytes": 96}}
    assert c["ip_bytes"] == (40 + P) + 3 * 60
    assert c["datagrams"] == 4


def test_corecast_ref_hash_is_blake2b_64():
    import hashlib
    s = Sender("corecast", src_eid="10.0.0.10", src_port=5000, service=("10.0.255.254", 4340))
    ref = s.datagrams(0, CHUNK, DESTS[:1])[1][0]
    assert ref[12:20] == hashlib.blake2b(CHUNK, digest_size=8).digest()


def test_corecast_precomputed_digest_and_seq_wrap():
    s = Sender("corecast", src_eid="10.0.0.10", src_port=5000, service=("10.0.255.254", 4340))
    grams = s.datagrams(2**32 + 3, CHUNK, DESTS[:1], digest=b"12345678")
    assert corecast.decode(grams[0][0]).seq == 3
    assert corecast.decode(grams[1][0]).chunk_hash == b"12345678"


def test_no_destinations():
    uni = Sender("unicast", src_eid="10.0.0.10", src_port=5000)
    assert uni.datagrams(0, CHUNK, []) == []
    cc = Sender("corecast", src_eid="10.0.0.10", src_port=5000, service=("10.0.255.254", 4340))
    grams = cc.datagrams(0, CHUNK, [])
    assert len(grams) == 1 and corecast.peek_type(grams[0][0]) == corecast.TYPE_DATA


def test_bad_arguments():
    with pytest.raises(ValueError):
        Sender("multicast", src_eid="10.0.0.10", src_port=5000)
    with pytest.raises(ValueError):
        Sender("corecast", src_eid="10.0.0.10", src_port=5000)
