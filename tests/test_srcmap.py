"""corecast-src at the source (issue 15 part D): its own Map-Requests, cache, TTL refresh, grouping, datagrams."""

import socket

from testbed.lisp.mapcache import MapEntry
from testbed.lisp.prefixes import parse_prefix
from testbed.stream.sender import Sender
from testbed.stream.srcmap import SourceMapper
from testbed.wire import corecast as cc
from testbed.wire.lispctrl import Ecm, EidRecord, Locator, MapReply, MapRequest, decode_control

SRC, MR = "10.0.0.10", "172.17.0.2"
CLIENTS = [("10.1.0.5", 6000), ("10.1.0.6", 6000), ("10.2.0.5", 6000), ("10.3.0.5", 6000)]


def entry(prefix: str, rloc: str, capable: bool, expires: float = 1e9) -> MapEntry:
    return MapEntry(*parse_prefix(prefix), [(rloc, 1, 100, capable)], expires)


def reply_to(ecm_bytes: bytes, prefix: str, rloc: str, capable: bool, ttl: int = 1) -> tuple[bytes, int]:
    ecm = decode_control(ecm_bytes)
    assert isinstance(ecm, Ecm) and ecm.inner_src == SRC and ecm.sport == 4342
    req = decode_control(ecm.payload)
    assert isinstance(req, MapRequest) and req.itr_rlocs == [SRC]
    rec = EidRecord(prefix, ttl, locators=[Locator(rloc, 1, 100, corecast=capable)])
    return MapReply(req.nonce, [rec]).encode(), req.nonce


def test_mapper_requests_once_caches_and_groups():
    m = SourceMapper(SRC, MR, 1)
    (lists, uni, unres), sends = m.group(CLIENTS, 0.0)
    assert unres == CLIENTS and lists == {} and uni == []
    assert len(sends) == 4 and all((s[1], s[2]) == (MR, 4342) for s in sends)
    _g, again = m.group(CLIENTS, 0.1)
    assert again == []  # one outstanding request per EID
    for buf, site in zip([s[0] for s in sends], [("10.1.0.0/16", "174.16.1.2", True), ("10.1.0.0/16",
                                                   "174.16.1.2", True), ("10.2.0.0/16", "174.16.2.2", True),
                                                  ("10.3.0.0/16", "174.16.3.2", False)]):
        rep, _n = reply_to(buf, *site)
        m.on_reply(rep, MR, 4342, 0.2)
    (lists, uni, unres), sends = m.group(CLIENTS, 0.3)
    assert sends == [] and unres == []
    assert lists == {"174.16.1.2": [(socket.inet_aton("10.1.0.5"), 6000), (socket.inet_aton("10.1.0.6"), 6000)],
                     "174.16.2.2": [(socket.inet_aton("10.2.0.5"), 6000)]}
    assert uni == [("10.3.0.5", 6000)]


def test_unknown_nonce_is_ignored_and_ttl_refresh_keeps_the_entry_in_use():
    m = SourceMapper(SRC, MR, 1, refresh_s=5.0)
    _g, sends = m.group(CLIENTS[:1], 0.0)
    rep, nonce = reply_to(sends[0][0], "10.1.0.0/16", "174.16.1.2", True, ttl=1)  # 60 s
    forged = MapReply(nonce ^ 1, [EidRecord("10.1.0.0/16", 1, locators=[Locator("6.6.6.6", 1, 100, corecast=True)])])
    m.on_reply(forged.encode(), MR, 4342, 0.1)
    assert m.ctl.counters.get("reply-unknown-nonce") == 1
    m.on_reply(rep, MR, 4342, 0.1)
    (lists, _u, unres), sends = m.group(CLIENTS[:1], 56.0)  # within 5 s of expiry: re-resolve, still used
    assert list(lists) == ["174.16.1.2"] and unres == [] and len(sends) == 1
    assert m.counters["refresh"] == 1
    (lists, _u, unres), _s = m.group(CLIENTS[:1], 61.0)  # expired, reply not back: the REF fallback
    assert unres == CLIENTS[:1] and lists == {}


def test_sender_corecast_src_datagrams():
    s = Sender("corecast-src", src_eid=SRC, src_port=5000, service=("10.0.255.254", 4340))
    many = [(socket.inet_aton(f"10.1.{i // 250}.{i % 250 + 1}"), 6000) for i in range(300)]
    s.resolve = lambda dests: ({"174.16.1.2": many, "174.16.2.2": many[:2]}, [("10.3.0.5", 6000)],
                               [("10.4.0.5", 6000)])
    chunk = bytes(1316)
    out = s.datagrams(0, chunk, CLIENTS)
    msgs = [cc.decode(p) if a == "10.0.255.254" else p for p, a, _port in out]
    assert isinstance(msgs[0], cc.CoreCastData)
    lists = msgs[1:4]
    assert [len(x.entries) for x in lists] == [238, 62, 2]
    assert [x.flags for x in lists] == [cc.FLAG_DATA_FIRST, 0, cc.FLAG_DATA_FIRST]
    assert lists[0].etr_rloc == socket.inet_aton("174.16.1.2") and lists[2].etr_rloc == socket.inet_aton("174.16.2.2")
    assert out[4] == (chunk, "10.3.0.5", 6000)
    assert isinstance(msgs[5], cc.CoreCastRef) and msgs[5].flags == cc.FLAG_BATCH | cc.FLAG_LAST_REF and len(out) == 6
