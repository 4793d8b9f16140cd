"""Tests of the xTR control half: registration, Map-Notify checks, resolution, retries, caching."""

from __future__ import annotations

import random

import pytest

from testbed.lisp.mapcache import MapCache
from testbed.lisp.mapserver import MapServer, Site
from testbed.lisp.xtrcontrol import XtrControl
from testbed.wire import lispctrl as lc

KEY = b"xtr-key"
RLOC, MS = "192.0.2.1", "192.0.2.100"


def ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def xtr(cache=None, **kw) -> XtrControl:
    args = dict(rloc=RLOC, eid_prefixes=["10.1.0.0/16"], map_server=MS, map_resolver=MS, key=KEY,
                map_cache=cache if cache is not None else MapCache(), corecast=True, rng=random.Random(7))
    args.update(kw)
    return XtrControl(**args)


def test_start_sends_authenticated_register_with_corecast_flag():
    x = xtr()
    (payload, dst, port), = x.start(0.0)
    assert (dst, port) == (MS, 4342)
    reg = lc.decode_control(payload)
    assert isinstance(reg, lc.MapRegister) and reg.want_map_notify and reg.proxy_reply
    assert reg.alg_id == lc.ALG_SHA256_128 and lc.verify_auth(payload, KEY)
    rec, = reg.records
    assert rec.prefix == "10.1.0.0/16" and rec.ttl == 1440
    loc, = rec.locators
    assert loc.rloc == RLOC and loc.corecast and loc.local and loc.reachable
    assert reg.nonce != 0


def test_periodic_register_and_notify_acknowledges():
    x = xtr(register_interval=60.0)
    first = x.start(0.0)[0][0]
    nonce = lc.decode_control(first).nonce
    note = lc.MapNotify(nonce, lc.decode_control(first).records).encode(KEY)
    assert x.on_control(note, MS, 4342, 0.1) == ([], [])
    assert x.registered and x.counters["notify-ok"] == 1
    assert x.next_deadline() == 60.0  # no register retry once acknowledged
    sends, _ = x.on_timer(60.0)
    assert len(sends) == 1 and lc.decode_control(sends[0][0]).nonce != nonce
    assert x.counters["register-sent"] == 2


def test_notify_bad_auth_and_unknown_nonce_counted():
    x = xtr()
    reg = lc.decode_control(x.start(0.0)[0][0])
    x.on_control(lc.MapNotify(reg.nonce, reg.records).encode(b"other"), MS, 4342, 0.1)
    x.on_control(lc.MapNotify(reg.nonce + 1, reg.records).encode(KEY), MS, 4342, 0.1)
    assert x.counters["notify-bad-auth"] == 1 and x.counters["notify-unknown-nonce"] == 1
    assert not x.registered


def test_register_retried_until_notified():
    x = xtr(request_timeout=1.0, request_tries=3, register_interval=60.0)
    x.start(0.0)
    assert x.on_timer(0.5) == ([], [])
    sends, _ = x.on_timer(1.0)
    assert len(sends) == 1 and x.counters["register-retry"] == 1
    assert x.next_deadline() == 3.0
    sends, _ = x.on_timer(3.0)
    assert len(sends) == 1
    sends, _ = x.on_timer(7.0)
    assert sends == [] and x.counters["register-unacknowledged"] == 1
    assert x.next_deadline() == 60.0


def test_request_is_ecm_to_resolver():
    x = xtr(rloc="198.51.100.5", map_resolver="192.0.2.53")
    (payload, dst, port), = x.request(ip("10.2.3.4"), 0.0)
    assert (dst, port) == ("192.0.2.53", 4342)
    ecm = lc.decode_control(payload)
    assert isinstance(ecm, lc.Ecm)
    assert (ecm.inner_src, ecm.inner_dst, ecm.sport, ecm.dport) == ("198.51.100.5", "10.2.3.4", 4342, 4342)
    req = lc.decode_control(ecm.payload)
    assert req.eids == ["10.2.3.4/32"] and req.itr_rlocs == ["198.51.100.5"] and req.nonce != 0


def test_requests_deduplicated_per_eid():
    x = xtr()
    assert len(x.request(ip("10.2.3.4"), 0.0)) == 1
    assert x.request(ip("10.2.3.4"), 0.1) == []
    assert len(x.request(ip("10.2.3.5"), 0.1)) == 1
    assert x.counters["request-dedup"] == 1 and sorted(x.pending) == [ip("10.2.3.4"), ip("10.2.3.5")]


def _nonce_of(send) -> int:
    return lc.decode_control(lc.decode_control(send[0]).payload).nonce


def test_retransmission_doubling_then_give_up():
    x = xtr(request_timeout=1.0, request_tries=3, eid_prefixes=[])
    first = x.request(ip("10.2.3.4"), 0.0)[0]
    assert x.next_deadline() == 1.0
    assert x.on_timer(0.99) == ([], [])
    sends, failed = x.on_timer(1.0)
    assert len(sends) == 1 and failed == [] and _nonce_of(sends[0]) == _nonce_of(first)
    assert x.next_deadline() == 3.0  # timeout doubled to 2 s
    sends, failed = x.on_timer(3.0)
    assert len(sends) == 1 and x.next_deadline() == 7.0
    sends, failed = x.on_timer(7.0)
    assert sends == [] and failed == [(ip("10.2.3.4"), None)]
    assert x.counters["request-retry"] == 2 and x.counters["request-giveup"] == 1
    assert x.pending == [] and x.next_deadline() == float("inf")
    # a late reply for the given-up request is dropped and counted
    late = lc.MapReply(_nonce_of(first), [lc.EidRecord("10.2.0.0/16", locators=[lc.Locator("1.1.1.1")])]).encode()
    assert x.on_control(late, MS, 4342, 8.0) == ([], [])
    assert x.counters["reply-unknown-nonce"] == 1


def test_reply_installs_and_resolves_all_covered_pending():
    cache = MapCache()
    x = xtr(cache)
    s1 = x.request(ip("10.2.3.4"), 0.0)[0]
    x.request(ip("10.2.9.9"), 0.0)
    x.request(ip("10.3.0.1"), 0.0)
    rec = lc.EidRecord("10.2.0.0/16", ttl=10, locators=[lc.Locator("203.0.113.2", 1, 60, corecast=True),
                                                         lc.Locator("203.0.113.3", 1, 40),
                                                         lc.Locator("203.0.113.4", reachable=False)])
    sends, resolved = x.on_control(lc.MapReply(_nonce_of(s1), [rec]).encode(), MS, 4342, 5.0)
    assert sends == []
    assert sorted(eid for eid, _ in resolved) == [ip("10.2.3.4"), ip("10.2.9.9")]
    entry = resolved[0][1]
    assert entry.rlocs == [("203.0.113.2", 1, 60, True), ("203.0.113.3", 1, 40, False)]
    assert entry.expires == 5.0 + 600.0
    assert cache.lookup(ip("10.2.200.1"), 6.0) is entry
    assert x.pending == [ip("10.3.0.1")]
    # TTL expiry in the map-cache
    assert cache.lookup(ip("10.2.200.1"), 605.0) is None


def test_reply_records_not_covering_the_eid_are_ignored():
    cache = MapCache()
    x = xtr(cache)
    s = x.request(ip("10.2.3.4"), 0.0)[0]
    bogus = lc.EidRecord("0.0.0.0/0", locators=[lc.Locator("6.6.6.6")])
    other = lc.EidRecord("10.9.0.0/16", locators=[lc.Locator("6.6.6.6")])
    assert x.on_control(lc.MapReply(_nonce_of(s), [other]).encode(), MS, 4342, 1.0) == ([], [])
    assert x.counters["reply-record-ignored"] == 1 and x.counters["reply-not-covering"] == 1
    assert len(cache) == 0 and x.pending == [ip("10.2.3.4")]
    # a covering record, even a short one, is accepted
    _s, resolved = x.on_control(lc.MapReply(_nonce_of(s), [bogus]).encode(), MS, 4342, 1.0)
    assert resolved and resolved[0][1].plen == 0


def test_negative_reply_cached_with_cap():
    cache = MapCache()
    x = xtr(cache, negative_ttl=60.0)
    s = x.request(ip("192.168.1.1"), 0.0)[0]
    neg = lc.EidRecord("192.0.0.0/2", ttl=15, action=lc.ACTION_NATIVE_FORWARD, authoritative=True)
    _s, resolved = x.on_control(lc.MapReply(_nonce_of(s), [neg]).encode(), MS, 4342, 1.0)
    (eid, entry), = resolved
    assert entry.negative and entry.action == lc.ACTION_NATIVE_FORWARD and entry.expires == 61.0
    hit = cache.lookup(ip("200.1.1.1"), 30.0)
    assert hit is entry and hit.choose(0) is None
    assert x.counters["reply-negative"] == 1
    assert cache.lookup(ip("200.1.1.1"), 61.0) is None  # negative entry expired
    # a shorter TTL in the reply wins over the cap
    x2 = xtr(MapCache(), negative_ttl=3600.0)
    s = x2.request(ip("192.168.1.1"), 0.0)[0]
    _s, resolved = x2.on_control(lc.MapReply(_nonce_of(s), [neg]).encode(), MS, 4342, 0.0)
    assert resolved[0][1].expires == 15 * 60.0


def test_garbage_and_unexpected_messages_counted():
    x = xtr()
    assert x.on_control(b"\xff\x00", MS, 4342, 0.0) == ([], [])
    req = lc.MapRequest(1, ["10.1.0.1/32"], ["192.0.2.9"]).encode()
    assert x.on_control(req, MS, 4342, 0.0) == ([], [])
    assert x.counters["decode-unknown-type"] == 1 and x.counters["unexpected-maprequest"] == 1


def test_sha1_register():
    x = xtr(alg_id=lc.ALG_SHA1_96)
    payload = x.start(0.0)[0][0]
    assert lc.decode_control(payload).alg_id == lc.ALG_SHA1_96 and lc.verify_auth(payload, KEY)


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        xtr(eid_prefixes=["10.1.0.1/16"])
    with pytest.raises(ValueError):
        xtr(request_tries=0)


def test_end_to_end_with_map_server():
    """Two xTRs register with a MapServer and resolve each other's EIDs, in-process."""
    ms = MapServer([Site("a", b"ka", ["10.1.0.0/16"]), Site("b", b"kb", ["10.2.0.0/16"])], expiry=180.0)
    ca, cb = MapCache(), MapCache()
    xa = xtr(ca, rloc="192.0.2.1", eid_prefixes=["10.1.0.0/16"], key=b"ka", corecast=True)
    xb = xtr(cb, rloc="192.0.2.2", eid_prefixes=["10.2.0.0/16"], key=b"kb", corecast=False)
    nodes = {"192.0.2.1": xa, "192.0.2.2": xb}

    def pump(sends, src, now):
        resolved = []
        for payload, dst, port in sends:
            assert dst == MS and port == 4342
            for back, to, to_port in ms.on_message(payload, src, 4342, now):
                assert to_port == 4342
                _s, res = nodes[to].on_control(back, MS, 4342, now)
                resolved.extend(res)
        return resolved

    pump(xa.start(0.0), "192.0.2.1", 0.0)
    pump(xb.start(0.0), "192.0.2.2", 0.0)
    assert xa.registered and xb.registered and len(ms.table()) == 2
    (eid, entry), = pump(xa.request(ip("10.2.0.7"), 1.0), "192.0.2.1", 1.0)
    assert entry.choose(123) == "192.0.2.2" and entry.corecast is False
    (eid, entry), = pump(xb.request(ip("10.1.0.7"), 1.0), "192.0.2.2", 1.0)
    assert entry.choose(123) == "192.0.2.1" and entry.corecast is True
    (eid, entry), = pump(xa.request(ip("8.8.8.8"), 1.0), "192.0.2.1", 1.0)
    assert entry.negative and entry.action == lc.ACTION_NATIVE_FORWARD
