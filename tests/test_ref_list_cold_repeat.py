"""A REF-LIST or REF-MAP that waits for a Map-Reply (cold map-cache) is under the same once-per-chunk bound as one
expanded at once: a repeated map or an overlapping list queued before the reply gives each (Destination EID, port)
one datagram per chunk, so a 70-byte map sent 17 times is not 17 x 238 copies of the chunk (review finding)."""

from __future__ import annotations

from testbed.lisp.dataplane import RESOLVE, WRITE_TUN
from testbed.wire import corecast as cc

from test_corecast_defence import CHUNK, ITR, SRC, make, source_site
from test_ref_list_map import A, DIGEST, rmap

SRC_INT = int.from_bytes(SRC, "big")


def tun(actions):
    return [a[1] for a in actions if a[0] == WRITE_TUN]


def cold():
    etr = make()  # the source's mapping is not cached yet
    etr.on_message(cc.encode_data(1, 0, CHUNK), ITR, 0.0)
    return etr


def test_a_map_repeated_before_the_reply_gives_each_destination_once():
    etr = cold()
    full = rmap("1" * 238)  # 70 bytes naming 238 destinations
    assert etr.on_message(full, ITR, 1.0) == [(RESOLVE, SRC_INT)]
    for _ in range(16):
        assert etr.on_message(full, ITR, 1.0) == []
    got = tun(etr.on_resolved(SRC_INT, source_site(), 1.1))
    assert len(got) == 238 and len({p[16:20] for p in got}) == 238
    assert etr.counters["cc-list-repeat"] == 16 * 238
    etr.map_cache.install(source_site())  # the xTR installs the reply; the same map again adds nothing
    assert tun(etr.on_message(full, ITR, 1.2)) == []
    assert etr.counters["delivered"] == 238


def test_an_overlapping_list_queued_before_the_reply_adds_only_new_destinations():
    etr = cold()
    etr.on_message(rmap("1111"), ITR, 1.0)  # 10.1.0.1 .. 10.1.0.4
    again = cc.encode_ref_list(1, 0, DIGEST, A(ITR), SRC, 5000, [(A("10.1.0.2"), 6000), (A("10.1.0.9"), 6000)])
    etr.on_message(again, ITR, 1.0)
    got = tun(etr.on_resolved(SRC_INT, source_site(), 1.1))
    assert sorted(p[16:20] for p in got) == sorted(A(f"10.1.0.{i}") for i in (1, 2, 3, 4, 9))
    assert etr.counters["cc-list-repeat"] == 1


def test_the_next_chunk_is_expanded_again():
    etr = cold()
    etr.on_message(rmap("11"), ITR, 1.0)
    assert len(tun(etr.on_resolved(SRC_INT, source_site(), 1.1))) == 2
    etr.map_cache.install(source_site())
    nxt = bytes(reversed(CHUNK))
    etr.on_message(cc.encode_data(1, 1, nxt), ITR, 1.2)
    assert len(tun(etr.on_message(rmap("11", chunk=nxt), ITR, 1.3))) == 2
