"""The CoreCast data-plane defence (issue 10 items 1-3): vouched ITRs only, caps, quarantine,
queued REFs on a map-cache miss, the ITR service's LAN check; every drop counted by reason."""

import socket

from hypothesis import example, given, settings, strategies as st

from testbed.lisp.corecast_etr import CoreCastEtr, _Chunk, itr_max_chunk
from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import RESOLVE, SEND_RAW, WRITE_TUN, Etr
from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire import corecast as cc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp

ITR = "174.16.0.2"          # x0's RLOC: the source site's CoreCast ITR
OTHER_ITR = "174.16.3.2"    # a CoreCast xTR of another site (vouched for 10.3.0.0/16 only)
OUTSIDER = "174.16.200.9"   # a host on the core: in no mapping
SRC = socket.inet_aton("10.0.0.10")
CLIENTS = [socket.inet_aton(f"10.1.0.{i}") for i in range(1, 101)]
CHUNK = bytes(range(256)) * 5 + bytes(36)  # 1316 bytes
CC_HDR = bytes([LISP_FLAG_N | LISP_FLAG_C]) + bytes(7)


def entry(prefix: str, *rlocs: tuple[str, bool], expires: float = 1e9) -> MapEntry:
    return MapEntry(*parse_prefix(prefix), [(r, 1, 100, c) for r, c in rlocs], expires)


def source_site(expires: float = 1e9) -> MapEntry:
    return entry("10.0.0.0/16", (ITR, True), expires=expires)


def cache_of(*entries: MapEntry) -> MapCache:
    cache = MapCache()
    for one in entries:
        cache.install(one)
    return cache


def make(*entries: MapEntry, **kw) -> CoreCastEtr:
    """The CoreCast ETR of client site 10.1.0.0/16; its map-cache holds ``entries``."""
    return CoreCastEtr(["10.1.0.0/16"], cache_of(*entries), **kw)


def data(chunk: bytes = CHUNK, stream: int = 1, seq: int = 0) -> bytes:
    return cc.encode_data(stream, seq, chunk)


def ref(dst: bytes = CLIENTS[0], chunk: bytes = CHUNK, stream: int = 1, src: bytes = SRC, sport: int = 5000) -> bytes:
    return cc.encode_ref(stream, 0, cc.chunk_hash(chunk), src, dst, sport, 6000)


def writes(actions: list) -> list:
    return [a for a in actions if a[0] == WRITE_TUN]


# ------------------------------------------------------------------ ETR: who may make it amplify


def test_issue_sample_100_refs_from_a_core_host_reach_no_client():
    """The issue's first attack: one DATA then 100 REFs of a 1,316-byte chunk from a core host: 0 delivered."""
    etr = make(source_site())
    out = etr.on_message(data(), OUTSIDER, 0.0)
    for client in CLIENTS:
        out += etr.on_message(ref(client), OUTSIDER, 0.0)
    assert writes(out) == []
    assert etr.counters["cc-unknown-itr"] == 100 and etr.counters["delivered"] == 0
    assert etr.counters["cc-quarantined"] == 1 and len(etr) == 0  # its DATA only in the quarantine


def test_locator_without_the_corecast_flag_is_not_vouched_for():
    etr = make(entry("10.0.0.0/16", (ITR, False)))
    etr.on_message(data(), ITR, 0.0)
    assert etr.on_message(ref(), ITR, 0.0) == []
    assert etr.counters["cc-unknown-itr"] == 1


def test_vouched_itr_with_a_source_eid_outside_its_prefixes_is_a_source_mismatch():
    """The REF's Source EID must be inside the prefixes that list the ITR: 'cc-source-mismatch'."""
    etr = make(source_site(), entry("10.3.0.0/16", (OTHER_ITR, True)))
    etr.on_message(data(), OTHER_ITR, 0.0)
    assert etr.on_message(ref(src=socket.inet_aton("10.3.0.7")), OTHER_ITR, 0.0)  # its own source: fine
    assert etr.on_message(ref(src=SRC), OTHER_ITR, 0.0) == []  # claims the source site's EID
    assert etr.counters["cc-source-mismatch"] == 1 and etr.counters["delivered"] == 1


def test_chunk_cap_is_what_the_itr_forwards():
    """The issue's 65,000-byte chunk (969x per REF) is dropped; 1,436 bytes (the ITR's limit) still passes."""
    assert itr_max_chunk(1500) == 1436
    etr = make(source_site())
    etr.on_message(ref(), ITR, 0.0)  # vouches for ITR
    etr.on_message(data(bytes(65000)), ITR, 0.0)
    etr.on_message(data(bytes(1437), stream=2), ITR, 0.0)
    assert etr.counters["cc-chunk-too-long"] == 2 and len(etr) == 0
    etr.on_message(data(bytes(1436), stream=3), ITR, 0.0)
    [(_k, pkt)] = etr.on_message(ref(chunk=bytes(1436), stream=3), ITR, 0.0)
    assert len(pkt) == 28 + 1436
    small = make(source_site(), max_chunk=100)
    small.on_message(data(bytes(101)), ITR, 0.0)
    assert small.counters["cc-chunk-too-long"] == 1


def test_outsider_cannot_evict_replace_or_poison_a_vouched_stream():
    """The issue's forged DATA 'into a live stream' from a non-vouched RLOC: the clients get the real chunk."""
    etr = make(source_site(), max_streams=4, quarantine=16, quarantine_per_rloc=4)
    etr.on_message(ref(), ITR, 0.0)
    etr.on_message(data(CHUNK), ITR, 0.0)
    for stream in range(1, 200):
        etr.on_message(data(b"forged" * 200, stream=stream), OUTSIDER, 0.0)
        etr.on_message(data(b"forged" * 200, stream=stream), f"174.16.9.{stream}", 0.0)
    assert etr.quarantined <= 16 and etr.counters["cc-quarantine-evicted"] > 0
    assert etr.counters["stream-evicted"] == 0 and len(etr) == 1
    [(_k, pkt)] = etr.on_message(ref(), ITR, 0.0)
    assert pkt == build_ipv4_udp(SRC, CLIENTS[0], 5000, 6000, CHUNK)
    assert etr.on_message(ref(chunk=b"forged" * 200), OUTSIDER, 0.0) == []


def test_quarantine_is_bounded_per_rloc():
    etr = make(source_site(), quarantine=64, quarantine_per_rloc=3)
    for stream in range(10):
        etr.on_message(data(stream=stream), OUTSIDER, 0.0)
    assert etr.quarantined == 3 and etr.counters["cc-quarantine-evicted"] == 7


# ------------------------------------------------------------------ ETR: a legitimate stream loses nothing


def test_legit_start_every_ref_is_expanded_once_the_map_reply_arrives():
    """First DATA+REFs of a new stream from a vouched ITR whose mapping is not cached yet:
    one Map-Request, nothing lost, every REF delivered with its own chunk, even across a newer chunk."""
    cache = MapCache()
    etr = CoreCastEtr(["10.1.0.0/16"], cache)
    c1, c2 = b"1" * 1316, b"2" * 1316
    out = etr.on_message(data(c1, seq=1), ITR, 0.0)
    out += etr.on_message(ref(CLIENTS[0], c1), ITR, 0.0)
    out += etr.on_message(ref(CLIENTS[1], c1), ITR, 0.0)
    out += etr.on_message(data(c2, seq=2), ITR, 0.001)
    out += etr.on_message(ref(CLIENTS[0], c2), ITR, 0.001)
    assert out == [(RESOLVE, int.from_bytes(SRC, "big"))]  # one resolution for the Source EID
    reply = source_site()
    cache.install(reply)  # what XtrControl does with the Map-Reply, before reporting it resolved
    got = etr.on_resolved(int.from_bytes(SRC, "big"), reply, 0.002)
    assert got == [(WRITE_TUN, build_ipv4_udp(SRC, CLIENTS[0], 5000, 6000, c1)),
                   (WRITE_TUN, build_ipv4_udp(SRC, CLIENTS[1], 5000, 6000, c1)),
                   (WRITE_TUN, build_ipv4_udp(SRC, CLIENTS[0], 5000, 6000, c2))]
    assert etr.counters["cc-promoted"] == 1 and etr.quarantined == 0  # c2 now the vouched current chunk
    [(_k, pkt)] = etr.on_message(ref(CLIENTS[1], c2), ITR, 0.003)
    assert pkt == build_ipv4_udp(SRC, CLIENTS[1], 5000, 6000, c2)
    etr.on_message(data(b"3" * 1316, seq=3), ITR, 0.004)
    assert etr.quarantined == 0 and len(writes(etr.on_message(ref(CLIENTS[2], b"3" * 1316), ITR, 0.004))) == 1
    c = etr.counters
    assert (c["delivered"], c["cc-ref-flushed"], c["cc-ref-queued"], c["cc-unknown-itr"]) == (5, 3, 3, 0)


def test_queued_refs_from_an_rloc_the_reply_does_not_list_are_dropped():
    cache = MapCache()
    etr = CoreCastEtr(["10.1.0.0/16"], cache)
    etr.on_message(data(), OUTSIDER, 0.0)
    assert etr.on_message(ref(), OUTSIDER, 0.0) == [(RESOLVE, int.from_bytes(SRC, "big"))]
    cache.install(source_site())
    assert etr.on_resolved(int.from_bytes(SRC, "big"), source_site(), 0.1) == []
    assert etr.counters["cc-unknown-itr"] == 1 and etr.quarantined == 1 and len(etr) == 0


def test_negative_reply_given_up_and_timed_out_resolutions_are_counted():
    etr = CoreCastEtr(["10.1.0.0/16"], MapCache(), queue_limit=2, max_pending=2, pending_timeout=5.0)
    src_int = int.from_bytes(SRC, "big")
    etr.on_message(data(), ITR, 0.0)
    for client in CLIENTS[:3]:
        etr.on_message(ref(client), ITR, 0.0)
    assert etr.counters["cc-ref-queue-overflow"] == 1
    negative = MapEntry(*parse_prefix("10.0.0.0/16"), [], 1e9, negative=True)
    assert etr.on_resolved(src_int, negative, 0.1) == []
    assert etr.counters["cc-unknown-itr"] == 2
    etr.on_message(ref(), ITR, 0.2)
    assert etr.on_resolved(src_int, None, 0.3) == [] and etr.counters["cc-ref-unresolved"] == 1
    for i in range(3):
        etr.on_message(ref(src=bytes((10, 0, 1, i))), ITR, 1.0)
    assert etr.counters["cc-ref-pending-overflow"] == 1
    assert etr.expire(10.0) == 2 and etr.counters["cc-ref-unresolved"] == 3


def test_ref_without_any_chunk_is_not_queued_but_resolves_its_source():
    """A flood of quarantined DATA may evict a new stream's first chunk; its REFs still get the
    ITR vouched for, so the stream's next chunk goes straight to the vouched cache."""
    cache = MapCache()
    etr = CoreCastEtr(["10.1.0.0/16"], cache, quarantine=4, quarantine_per_rloc=4)
    etr.on_message(data(b"first" * 200), ITR, 0.0)
    for i in range(4):
        etr.on_message(data(stream=i), f"174.16.9.{i}", 0.0)  # evicts the ITR's chunk
    assert etr.on_message(ref(chunk=b"first" * 200), ITR, 0.0) == [(RESOLVE, int.from_bytes(SRC, "big"))]
    assert etr.counters["no-chunk"] == 1 and etr.counters["cc-ref-queued"] == 0
    cache.install(source_site())
    assert etr.on_resolved(int.from_bytes(SRC, "big"), source_site(), 0.1) == []
    etr.on_message(ref(chunk=b"first" * 200), ITR, 0.2)  # vouched now (no chunk still)
    etr.on_message(data(b"second" * 200), ITR, 0.3)
    assert writes(etr.on_message(ref(chunk=b"second" * 200), ITR, 0.3))
    assert etr.quarantined == 4  # the flood's chunks, never promoted


def test_vouching_ends_when_the_mapping_changes_or_expires():
    cache = cache_of(source_site(expires=10.0))
    etr = CoreCastEtr(["10.1.0.0/16"], cache)
    etr.on_message(data(), ITR, 0.0)
    assert writes(etr.on_message(ref(), ITR, 1.0))
    cache.install(entry("10.0.0.0/16", (OTHER_ITR, True)))  # the site moved its ITR
    assert etr.on_message(ref(), ITR, 2.0) == []
    assert etr.counters["cc-source-mismatch"] == 1
    etr.on_message(data(b"late"), ITR, 11.0)  # vouching expired: quarantined
    assert etr.quarantined == 1


def test_defence_off_is_the_old_behaviour():
    """``corecast_defence: false`` (attack experiment only): any RLOC, chunks up to 65,507 bytes."""
    etr = CoreCastEtr(["10.1.0.0/16"], defence=False)
    etr.on_message(data(bytes(65000)), OUTSIDER, 0.0)
    [(_k, pkt)] = etr.on_message(ref(chunk=bytes(65000)), OUTSIDER, 0.0)
    assert len(pkt) == 65028
    etr.on_message(data(bytes(65508)), OUTSIDER, 0.0)
    assert etr.counters["chunk-too-big"] == 1 and etr.counters["cc-unknown-itr"] == 0


def test_defence_needs_the_map_cache():
    try:
        CoreCastEtr(["10.1.0.0/16"])
    except ValueError as exc:
        assert "map-cache" in str(exc)
    else:
        raise AssertionError("no ValueError")


# ------------------------------------------------------------------ property: no TUN write for an outsider

_EIDS = [SRC, socket.inet_aton("10.3.0.7"), socket.inet_aton("10.9.0.1"), CLIENTS[0], CLIENTS[1]]
_CHUNKS = [CHUNK, b"x" * 1436, b"y" * 1437]
_messages = st.one_of(
    st.builds(lambda c, s, q: cc.encode_data(s, q, c), st.sampled_from(_CHUNKS), st.integers(0, 3),
              st.integers(0, 2 ** 32 - 1)),
    st.builds(lambda c, s, src, dst, p: cc.encode_ref(s, 0, cc.chunk_hash(c), src, dst, p, 6000),
              st.sampled_from(_CHUNKS), st.integers(0, 1), st.sampled_from(_EIDS), st.sampled_from(_EIDS),
              st.integers(0, 3)),
    st.binary(max_size=40))
_rlocs = st.sampled_from([OUTSIDER, "174.16.1.2", "174.16.9.9"])  # in no mapping, or listed without the C flag
_events = st.lists(st.one_of(
    st.tuples(st.just("msg"), _rlocs, _messages),
    st.tuples(st.just("resolve"), st.sampled_from([0, 1, 2]), st.sampled_from(_EIDS)),
    st.tuples(st.just("expire"), st.floats(0, 20), st.none())), max_size=60)


@settings(max_examples=400, deadline=None)
@given(_events)
@example([("msg", OUTSIDER, data(stream=1)), ("msg", OUTSIDER, ref(stream=1))])
@example([("msg", OUTSIDER, data(stream=0)), ("msg", OUTSIDER, ref(stream=0))])
@example([("msg", OUTSIDER, data(stream=1)), ("msg", OUTSIDER, ref(stream=1)), ("resolve", 0, SRC)])
def test_no_message_sequence_from_an_rloc_not_vouched_for_writes_to_the_tun(events):
    """Whatever C-bit messages non-vouched RLOCs send, with resolutions in between, no TUN write results;
    and the vouched ITR's live stream still delivers its real chunk afterwards."""
    cache = cache_of(source_site(), entry("10.3.0.0/16", ("174.16.1.2", False)))
    etr = Etr(["10.1.0.0/16"], corecast=CoreCastEtr(["10.1.0.0/16"], cache, quarantine=8, quarantine_per_rloc=2))
    etr.on_lisp_packet(CC_HDR + ref(stream=0), ITR, 0.0)  # vouch for the ITR
    etr.on_lisp_packet(CC_HDR + data(CHUNK, stream=0), ITR, 0.0)
    replies = [source_site(), entry("10.3.0.0/16", ("174.16.1.2", False)),
               MapEntry(*parse_prefix("10.9.0.0/16"), [], 1e9, negative=True)]
    now = 0.0
    for kind, a, b in events:
        now += 0.01
        if kind == "msg":
            out = etr.on_lisp_packet(CC_HDR + b, a, now)
        elif kind == "resolve":
            reply = replies[a]
            if reply.covers(int.from_bytes(b, "big")):
                cache.install(reply)
                out = etr.corecast.on_resolved(int.from_bytes(b, "big"), reply, now)
            else:
                out = etr.corecast.on_resolved(int.from_bytes(b, "big"), None, now)
        else:
            out = []
            etr.corecast.expire(now + a)
        assert writes(out) == []
    assert etr.on_lisp_packet(CC_HDR + ref(stream=0), ITR, now) == [
        (WRITE_TUN, build_ipv4_udp(SRC, CLIENTS[0], 5000, 6000, CHUNK))]


# ------------------------------------------------------------------ ITR service: the LAN only


def _itr(**kw) -> CoreCastItr:
    cache = cache_of(entry("10.1.0.0/16", ("174.16.1.2", True)))
    return CoreCastItr(ITR, cache, ["10.0.0.10/32"], **kw)


def test_service_messages_not_from_the_lan_are_dropped():
    """The issue's second attack: spoofed 10.0.0.10 reaching the service through the TUN or the core."""
    itr = _itr()
    assert itr.on_service_message(data(), SRC, 0.0, on_lan=False) == []
    assert itr.on_service_message(ref(), SRC, 0.0, on_lan=False) == []
    assert itr.counters["cc-not-lan"] == 2 and itr.counters["data-in"] == 0 and len(itr) == 0
    itr.on_service_message(data(), SRC, 0.0, on_lan=True)
    out = itr.on_service_message(ref(), SRC, 0.0, on_lan=True)
    assert [a[0] for a in out] == [SEND_RAW, SEND_RAW]


def test_service_source_prefixes_still_apply_on_the_lan():
    itr = _itr()
    assert itr.on_service_message(data(), socket.inet_aton("10.0.0.11"), 0.0, on_lan=True) == []
    assert itr.counters["source-not-allowed"] == 1


def test_service_defence_off_accepts_any_interface():
    itr = _itr(defence=False)
    itr.on_service_message(data(), SRC, 0.0, on_lan=False)
    assert len(itr.on_service_message(ref(), SRC, 0.0, on_lan=False)) == 2
    assert itr.counters["cc-not-lan"] == 0


def test_itr_and_etr_agree_on_the_chunk_limit():
    itr = _itr()
    itr.on_service_message(data(bytes(1437)), SRC, 0.0)
    assert itr.counters["chunk-too-big"] == 1
    assert make(source_site()).max_chunk == itr.max_chunk == 1436


def test_a_vouched_itr_cannot_evict_another_itrs_stream():
    """Review finding: 5,000 DATA of fresh streams from one vouched ITR pushed the source ITR's chunk out."""
    cache = MapCache()
    etr = CoreCastEtr(["10.1.0.0/16"], cache, max_streams=8, max_streams_per_itr=4)
    src, other = "172.16.0.2", "172.16.3.2"
    etr._vouched[src] = etr._vouched[other] = 1e18  # both vouched (the map-cache path is tested above)
    good = _Chunk(b"h" * 8, b"chunk", 0, 1)
    etr._store((src, 7), good)
    for stream in range(5000):
        etr._store((other, stream), _Chunk(b"x" * 8, b"y", 0, 1))
    assert etr._streams[(src, 7)] is good
    assert len([k for k in etr._streams if k[0] == other]) == 4
    assert etr.counters["stream-evicted"] == 5000 - 4
    # beyond the whole bound, the ITR holding the most loses its oldest stream, not the source ITR
    for rloc in ("172.16.4.2", "172.16.5.2", "172.16.6.2"):
        etr._store((rloc, 1), _Chunk(b"z" * 8, b"z", 0, 1))
    assert (src, 7) in etr._streams and len(etr._streams) == 8


def test_refs_without_a_chunk_naming_fresh_source_eids_ask_a_bounded_number_of_lookups():
    """Review finding: 5,000 chunkless REFs with 5,000 Source EIDs from an outsider gave 5,000 lookups."""
    etr = make(max_pending=16, pending_timeout=5.0)
    asked = []
    for i in range(5000):
        src = (0x0A000000 + 0x10000 * (2 + i % 200) + i).to_bytes(4, "big")
        asked += [a for a in etr.on_message(ref(src=src), OUTSIDER, 1.0) if a[0] == RESOLVE]
    assert len(asked) == 16 and etr.counters["cc-lookup-limited"] == 5000 - 16
    # the same Source EID again: no new lookup while the first stands; a fresh one after the window
    assert [a for a in etr.on_message(ref(src=asked[0][1].to_bytes(4, "big")), OUTSIDER, 2.0)
            if a[0] == RESOLVE] == []
    later = etr.on_message(ref(src=socket.inet_aton("10.77.0.1")), OUTSIDER, 7.0)
    assert [a for a in later if a[0] == RESOLVE] == [(RESOLVE, int.from_bytes(socket.inet_aton("10.77.0.1"), "big"))]
