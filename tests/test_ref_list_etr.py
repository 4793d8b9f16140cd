"""The ETR expands REF-LISTs (issue 15 part B): byte-identical to REFs and to unicast, the REF checks, bounds."""

import socket

from hypothesis import given, settings, strategies as st

from testbed.lisp.corecast_etr import CoreCastEtr
from testbed.lisp.dataplane import RESOLVE, WRITE_TUN
from testbed.wire import corecast as cc
from testbed.wire.ipv4 import build_ipv4_udp

from test_corecast_defence import CHUNK, CLIENTS, ITR, OTHER_ITR, OUTSIDER, SRC, entry, make, source_site

A = socket.inet_aton
DIGEST = cc.chunk_hash(CHUNK)


def rlist(dsts, chunk: bytes = CHUNK, src: bytes = SRC, sport: int = 5000, stream: int = 1) -> bytes:
    return cc.encode_ref_list(stream, 0, cc.chunk_hash(chunk), A(ITR), src, sport, dsts)


def primed(**kw) -> CoreCastEtr:
    etr = make(source_site(), **kw)
    etr.on_message(cc.encode_data(1, 0, CHUNK), ITR, 0.0)
    return etr


def tun(actions):
    return [a[1] for a in actions if a[0] == WRITE_TUN]


def test_list_expands_byte_identical_to_refs_and_unicast():
    dsts = [(CLIENTS[i], 6000 + i) for i in range(5)]
    by_list = tun(primed().on_message(rlist(dsts), ITR, 1.0))
    etr = primed()
    by_refs = [p for d, port in dsts for p in tun(etr.on_message(
        cc.encode_ref(1, 0, DIGEST, SRC, d, 5000, port), ITR, 1.0))]
    assert by_list == by_refs
    assert by_list == [build_ipv4_udp(SRC, d, 5000, port, CHUNK) for d, port in dsts]


def test_sample_list_counts():
    etr = primed()
    out = etr.on_message(rlist([(CLIENTS[0], 6000), (A("10.9.0.1"), 6000), (CLIENTS[1], 6000)]), ITR, 1.0)
    assert len(tun(out)) == 2
    assert etr.counters["foreign-eid"] == 1 and etr.counters["list-in"] == 1 and etr.counters["list-entries"] == 3
    assert etr.counters["delivered"] == 2


def test_unvouched_itr_and_source_mismatch_are_counted_per_entry():
    etr = make(source_site(), entry("10.3.0.0/16", (OTHER_ITR, True)))
    etr.on_message(cc.encode_data(1, 0, CHUNK), OUTSIDER, 0.0)
    msg = rlist([(c, 6000) for c in CLIENTS[:4]])
    assert tun(etr.on_message(msg, OUTSIDER, 1.0)) == []
    assert etr.counters["cc-unknown-itr"] == 4
    # OTHER_ITR is vouched for 10.3/16, not for the source's 10.0/16
    etr.on_message(cc.encode_data(1, 0, CHUNK), OTHER_ITR, 0.0)
    assert tun(etr.on_message(cc.encode_ref(1, 0, DIGEST, A("10.3.0.1"), CLIENTS[0], 1, 2), OTHER_ITR, 1.0))
    assert tun(etr.on_message(msg, OTHER_ITR, 1.0)) == []
    assert etr.counters["cc-source-mismatch"] == 4


def test_hash_mismatch_no_chunk_and_cap():
    etr = primed(max_list=3)
    assert tun(etr.on_message(rlist([(c, 1) for c in CLIENTS[:4]]), ITR, 1.0)) == []
    assert etr.counters["cc-list-too-long"] == 1
    assert tun(etr.on_message(rlist([(c, 1) for c in CLIENTS[:2]], chunk=b"other"), ITR, 1.0)) == []
    assert etr.counters["hash-mismatch"] == 2
    assert tun(etr.on_message(rlist([(c, 1) for c in CLIENTS[:2]], stream=9), ITR, 1.0)) == []
    assert etr.counters["no-chunk"] == 2
    assert make(source_site()).max_list == 238


def test_malformed_lists_are_counted_drops():
    etr = primed()
    msg = rlist([(CLIENTS[0], 1), (CLIENTS[1], 2)])
    for bad in (msg[:-1], msg[:30] + b"\0\0", msg[:31], msg + b"\0"):
        assert etr.on_message(bad, ITR, 1.0) == []
    assert etr.counters["decode-bad-length"] == 3 and etr.counters["decode-bad-count"] == 1


def test_cold_map_cache_queues_all_entries_then_delivers():
    etr = make()  # the source's mapping is not cached yet
    etr.on_message(cc.encode_data(1, 0, CHUNK), ITR, 0.0)
    out = etr.on_message(rlist([(c, 6000) for c in CLIENTS[:3]]), ITR, 1.0)
    assert out == [(RESOLVE, int.from_bytes(SRC, "big"))]
    got = tun(etr.on_resolved(int.from_bytes(SRC, "big"), source_site(), 1.1))
    assert got == [build_ipv4_udp(SRC, c, 5000, 6000, CHUNK) for c in CLIENTS[:3]]


def test_repeated_list_or_entry_gives_nothing_more():
    etr = primed()
    dsts = [(CLIENTS[0], 6000), (CLIENTS[0], 6000), (CLIENTS[1], 6000)]
    assert len(tun(etr.on_message(rlist(dsts), ITR, 1.0))) == 2
    assert tun(etr.on_message(rlist(dsts), ITR, 1.0)) == []
    assert etr.counters["cc-list-repeat"] == 4
    etr.on_message(cc.encode_data(1, 1, CHUNK[::-1]), ITR, 2.0)  # the next chunk: a fresh set
    assert len(tun(etr.on_message(rlist(dsts, chunk=CHUNK[::-1]), ITR, 2.0))) == 2


ours = st.sampled_from(CLIENTS[:6])
foreign = st.sampled_from([A("10.9.0.1"), A("10.2.0.7")])
dst_st = st.tuples(st.one_of(ours, foreign), st.sampled_from([6000, 6001]))


@settings(max_examples=150, deadline=None)
@given(st.lists(dst_st, min_size=1, max_size=30), st.integers(1, 4))
def test_list_never_more_packets_than_the_refs_it_replaces(dsts, repeats):
    """Fewer bytes in, never more packets out: the list (sent ``repeats`` times) vs its REFs (sent once)."""
    etr = primed()
    refs = [cc.encode_ref(1, 0, DIGEST, SRC, d, 5000, p) for d, p in dsts]
    ref_pkts = sum(len(tun(etr.on_message(r, ITR, 1.0))) for r in refs)
    etr = primed()
    msg = rlist(dsts)
    list_pkts = sum(len(tun(etr.on_message(msg, ITR, 1.0))) for _ in range(repeats))
    assert list_pkts <= ref_pkts
    assert list_pkts == len({(d, p) for d, p in dsts if d in CLIENTS[:6]})
    if len(dsts) > 1:
        assert len(msg) < sum(map(len, refs))
