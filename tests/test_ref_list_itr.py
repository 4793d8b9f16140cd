"""The ITR's REF-LISTs (issue 15 parts C and D): batching per ETR (corecast-batch), forwarding the source's
lists to the ETR they name (corecast-src); what the ETRs deliver equals per-client REFs."""

import pytest

from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import SEND_RAW, WRITE_TUN
from testbed.wire import corecast as cc
from testbed.wire.ipv4 import build_ipv4_udp

from test_corecast_itr import CHUNK, RLOC, S, a4, cc_etr, make, site, PREFIX

CLIENTS = {"b": [f"10.2.0.{i}" for i in range(1, 6)], "c": [f"10.3.0.{i}" for i in range(1, 4)]}
DATA = cc.encode_data(1, 0, CHUNK)
CHUNK2 = CHUNK[::-1]


def kinds(actions):
    """(rloc, CoreCast type) of each SEND_RAW (the type byte after outer IP/UDP and the LISP header)."""
    return [(a[1], a[2][36] & 0x0F) for a in actions if a[0] == SEND_RAW]


def deliver(actions) -> dict[str, list[bytes]]:
    """Run the ITR's output through one CoreCast ETR per site; the datagrams each writes."""
    etrs = {RLOC[n]: cc_etr(PREFIX[n]) for n in RLOC}
    got: dict[str, list[bytes]] = {}
    for act in actions:
        if act[0] == SEND_RAW:
            out = etrs[act[1]].on_message(act[2][36:], "192.0.2.1", 1.0)
            got.setdefault(act[1], []).extend(a[1] for a in out if a[0] == WRITE_TUN)
    return got


def bref(dst: str, chunk: bytes = CHUNK, flags: int = cc.FLAG_BATCH) -> bytes:
    return cc.encode_ref(1, 0, cc.chunk_hash(chunk), S, a4(dst), 5000, 6000, flags)


def send_chunk(itr: CoreCastItr, chunk: bytes = CHUNK, seq: int = 0, now: float = 0.0, flags: int = cc.FLAG_BATCH) -> list:
    out = itr.on_service_message(cc.encode_data(1, seq, chunk), S, now)
    for name, clients in CLIENTS.items():
        for c in clients:
            out += itr.on_service_message(bref(c, chunk, flags), S, now)
    return out


def test_batch_sends_data_at_once_and_one_list_per_etr_on_the_next_data():
    itr = make(site("b"), site("c"), batch_delay=1.0)
    out = send_chunk(itr)
    assert kinds(out) == [(RLOC["b"], 1), (RLOC["c"], 1)]  # DATA only, the REFs wait
    nxt = itr.on_service_message(cc.encode_data(1, 1, CHUNK2), S, 0.01)
    assert kinds(nxt) == [(RLOC["b"], 4), (RLOC["c"], 4)]  # consecutive EIDs, one port: REF-MAPs are shorter
    lists = [cc.decode(a[2][36:]) for a in nxt]
    assert [len(x.entries) for x in lists] == [5, 3] and lists[0].etr_rloc == a4(RLOC["b"])
    assert lists[0].entries[0] == (a4("10.2.0.1"), 6000) and lists[0].chunk_hash == cc.chunk_hash(CHUNK)
    assert len(nxt[0][2]) == 36 + 40 + 1 < 36 + 32 + 6 * 5
    assert itr.counters["list-sent"] == 2 and itr.counters["list-entries"] == 8 and itr.counters["ref-sent"] == 0


def test_batch_delivers_what_per_client_refs_deliver_byte_for_byte():
    plain, batched = make(site("b"), site("c")), make(site("b"), site("c"), batch_delay=0.005)
    want = deliver(send_chunk(plain))
    got = deliver(send_chunk(batched) + batched.flush())
    assert got == want
    assert sorted(got[RLOC["b"]]) == sorted(build_ipv4_udp(S, a4(c), 5000, 6000, CHUNK) for c in CLIENTS["b"])


def test_batch_flushes_by_delay_and_when_full():
    itr = make(site("b"), site("c"), batch_delay=0.005)
    send_chunk(itr, now=10.0)
    assert itr.next_deadline() == pytest.approx(10.005)
    assert itr.poll(10.004) == []
    assert kinds(itr.poll(10.005)) == [(RLOC["b"], 4), (RLOC["c"], 4)]
    assert itr.next_deadline() == float("inf")
    full = make(site("b"), batch_delay=1.0)
    full.on_service_message(DATA, S, 0.0)
    out = []
    for i in range(240):
        out += full.on_service_message(bref(f"10.2.{i // 200}.{i % 200 + 1}"), S, 0.0)
    assert kinds(out) == [(RLOC["b"], 1), (RLOC["b"], 4)]
    assert len(cc.decode(out[1][2][36:]).entries) == 238 == full.list_capacity
    assert len(out[1][2]) == 36 + 40 + (256 + 38 + 7) // 8  # 10.2.0.1 to 10.2.1.38: 294 bits
    assert len(cc.decode(full.flush()[0][2][36:]).entries) == 2


def test_refs_without_flag_b_are_sent_alone():
    itr = make(site("b"), site("c"), batch_delay=1.0)
    out = send_chunk(itr, flags=0)
    assert kinds(out) == [(RLOC["b"], 1), (RLOC["b"], 2)] + [(RLOC["b"], 2)] * 4 + [(RLOC["c"], 1)] + [(RLOC["c"], 2)] * 3
    assert itr.next_deadline() == float("inf")


def test_batch_keeps_unicast_for_non_capable_sites():
    itr = make(site("b"), site("c", capable=False), batch_delay=1.0)
    out = send_chunk(itr)
    assert kinds(out)[0] == (RLOC["b"], 1)
    assert itr.counters["unicast-sent"] == 3 and len(out) == 4


def src_list(etr: str, clients: list[str], chunk: bytes = CHUNK, flags: int = cc.FLAG_DATA_FIRST) -> bytes:
    return cc.encode_ref_list(1, 0, cc.chunk_hash(chunk), a4(etr), S, 5000, [(a4(c), 6000) for c in clients],
                              flags)


def test_src_lists_go_to_the_named_etr_without_lookup():
    itr = make()  # an empty map-cache: the ITR resolves nothing
    out = itr.on_service_message(DATA, S, 0.0)
    for name, clients in CLIENTS.items():
        out += itr.on_service_message(src_list(RLOC[name], clients), S, 0.0)
    assert kinds(out) == [(RLOC["b"], 1), (RLOC["b"], 3), (RLOC["c"], 1), (RLOC["c"], 3)]
    assert out[1][2][36 + 1] == 0  # the D flag is not forwarded
    assert itr.counters["cache-hit"] == itr.counters["cache-miss"] == 0 and itr.counters["list-fwd"] == 2
    want = deliver(send_chunk(make(site("b"), site("c"))))
    assert deliver(out) == want


def test_src_list_checks():
    itr = make()
    assert itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"]), S, 0.0) == []
    assert itr.counters["no-chunk"] == 1
    itr.on_service_message(DATA, S, 0.0)
    assert itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"], chunk=CHUNK2), S, 0.0) == []
    assert itr.counters["stale-ref"] == 1
    assert itr.on_service_message(src_list("0.0.0.0", ["10.2.0.1"]), S, 0.0) == []
    assert itr.counters["list-no-etr"] == 1
    bad = cc.encode_ref_list(1, 0, cc.chunk_hash(CHUNK), a4(RLOC["b"]), a4("10.9.9.9"), 1, [(a4("10.2.0.1"), 1)])
    assert itr.on_service_message(bad, S, 0.0) == []
    assert itr.counters["ref-src-not-allowed"] == 1
    assert itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"])[:-1], S, 0.0) == []
    assert itr.counters["decode-bad-length"] == 1
    long = src_list(RLOC["b"], [f"10.2.{i // 250}.{i % 250}" for i in range(239)])
    assert itr.on_service_message(long, S, 0.0) == [] and itr.counters["list-too-long"] == 1


def test_no_list_only_data_when_flag_clear():
    itr = make()
    itr.on_service_message(DATA, S, 0.0)
    out = itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"], flags=0), S, 0.0)
    assert kinds(out) == [(RLOC["b"], 3)]


def test_batch_idle_timer_keeps_a_slow_burst_in_one_list_up_to_ten_delays():
    itr = make(site("b"), batch_delay=0.005)
    itr.on_service_message(DATA, S, 0.0)
    out = []
    for i in range(8):  # one REF every 4 ms: never idle for 5 ms
        now = 0.004 * i
        out += itr.poll(now) + itr.on_service_message(bref(f"10.2.0.{i + 1}"), S, now)
    assert kinds(out) == [(RLOC["b"], 1)]
    assert itr.next_deadline() == pytest.approx(0.028 + 0.005)
    out = itr.poll(0.033)
    assert len(cc.decode(out[0][2][36:]).entries) == 8
    assert itr.counters["list-hold-us"] == itr.counters["list-hold-max-us"] == 33000
    itr.on_service_message(DATA, S, 1.0)
    for i in range(20):  # a burst that never pauses is cut at 10 delays (50 ms) after its first entry
        itr.on_service_message(bref(f"10.2.0.{i + 1}"), S, 1.0 + 0.003 * i)
        got = itr.poll(1.0 + 0.003 * i)
        if got:
            break
    assert i == 17 and len(cc.decode(got[0][2][36:]).entries) == 18


def test_the_chunks_last_ref_sends_its_lists_at_once_without_the_timer():
    """Flag L on the chunk's last REF closes the stream's lists: no timer, so a scheduling pause inside a burst
    of REFs cannot split a list (one list per ETR per chunk, as the model counts)."""
    from testbed.stream.sender import Sender
    from testbed.wire import corecast as cc
    sender = Sender("corecast-batch", src_eid="10.0.0.10", src_port=5000, service=("10.0.255.254", 4340))
    dests = [(f"10.1.0.{i}", 6000) for i in range(1, 6)]
    grams = sender.datagrams(0, bytes(1316), dests)
    flags = [cc.decode(msg).flags for msg, _a, _p in grams[1:]]
    assert flags == [cc.FLAG_BATCH] * 4 + [cc.FLAG_BATCH | cc.FLAG_LAST_REF]


def test_itr_sends_the_lists_on_the_chunks_last_ref_and_not_before():
    itr = make(site("b"), site("c"), batch_delay=1.0)  # a timer that never fires here
    out = itr.on_service_message(cc.encode_data(1, 0, CHUNK), S, 0.0)
    refs = [c for name in ("b", "c") for c in CLIENTS[name]]
    for c in refs[:-1]:
        out += itr.on_service_message(bref(c), S, 0.0)
    assert [k for k in kinds(out) if k[1] == 3] == []  # nothing sent before the last REF
    last = itr.on_service_message(bref(refs[-1], flags=cc.FLAG_BATCH | cc.FLAG_LAST_REF), S, 0.0)
    assert kinds(last) == [(RLOC["b"], 4), (RLOC["c"], 4)] and itr.next_deadline() == float("inf")
    assert [len(cc.decode(a[2][36:]).entries) for a in last] == [5, 3]


def test_src_list_sends_the_data_once_per_etr_and_chunk():
    """Review finding: a source list with the D flag sent 10 times made the ITR send the DATA 10 times to the
    named RLOC (14,410 bytes out from 410 in). Now the DATA goes once per ETR per chunk (as on the REF path),
    the list itself is forwarded each time (its size in, about its size out), and a new chunk starts afresh."""
    itr = make()
    itr.on_service_message(DATA, S, 0.0)
    outs = [itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"]), S, 0.0) for _ in range(10)]
    assert [len(o) for o in outs] == [2] + [1] * 9
    assert itr.counters["data-sent"] == 1 and itr.counters["data-repeat"] == 9 and itr.counters["list-fwd"] == 10
    sent_in = 10 * len(src_list(RLOC["b"], ["10.2.0.1"]))
    sent_out = sum(len(a[2]) for o in outs for a in o)
    assert sent_out - len(DATA) - 36 <= sent_in + 10 * 36  # beyond one DATA: each list out with its LISP header
    itr.on_service_message(cc.encode_data(1, 1, CHUNK2), S, 0.0)
    assert len(itr.on_service_message(src_list(RLOC["b"], ["10.2.0.1"], chunk=CHUNK2), S, 0.0)) == 2
    assert itr.counters["data-sent"] == 2
