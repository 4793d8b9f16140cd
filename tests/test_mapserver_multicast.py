"""Map-Server (S,G) state for signal-free multicast (RFC 8378): merge per (S,G), replies, leave, expiry, checks."""

from __future__ import annotations

from testbed.lisp.mapserver import MapServer, Site
from testbed.wire import lispctrl as lc
from testbed.wire.lispctrl.lcaf import parse_rle, rle_text, sg_prefix

KEY_A, KEY_B = b"site-a-secret", b"site-b-secret"
ETR_A, ETR_B = "172.16.1.2", "172.16.2.2"
S, G = "10.0.0.10", "232.1.1.1"
SG = sg_prefix(S, G)


def server(**kw) -> MapServer:
    return MapServer([Site("a", KEY_A, ["10.1.0.0/16"]), Site("b", KEY_B, ["10.2.0.0/16"])],
                     rloc_prefixes=("172.16.0.0/12",), **kw)


def register(own: str, rloc: str, key: bytes, nonce: int, sg_ttl: int = 3, rle=None, sg=SG) -> bytes:
    recs = [lc.EidRecord(own, ttl=3, locators=[lc.Locator(rloc, local=True)]),
            lc.EidRecord(sg, ttl=sg_ttl, locators=[lc.Locator(rle or rle_text([rloc]))])]
    return lc.MapRegister(nonce, recs, merge=True).encode(key)


def resolve(ms: MapServer, sg: str = SG, nonce: int = 9) -> lc.EidRecord:
    req = lc.MapRequest(nonce, [sg], ["172.16.0.2"])
    out = ms.on_message(lc.Ecm("172.16.0.2", G, 4342, 4342, req.encode()).encode(), "172.16.0.2", 4342, 1.0)
    (payload, dst, _), = out
    reply = lc.decode_control(payload)
    assert dst == "172.16.0.2" and reply.nonce == nonce
    rec, = reply.records
    assert rec.prefix == sg
    return rec


def test_registrations_of_two_etrs_merge_into_one_replication_list():
    ms = server()
    assert resolve(ms).action == lc.ACTION_NATIVE_FORWARD and not resolve(ms).locators
    out = ms.on_message(register("10.1.0.0/16", ETR_A, KEY_A, 1), ETR_A, 4342, 0.0)
    note = lc.decode_control(out[0][0])
    assert [r.prefix for r in note.records] == ["10.1.0.0/16", SG]   # Map-Notify acknowledges the (S,G) record
    ms.on_message(register("10.2.0.0/16", ETR_B, KEY_B, 2), ETR_B, 4342, 0.0)
    rec = resolve(ms)
    assert rec.ttl == 1 and len(rec.locators) == 1
    assert parse_rle(rec.locators[0].rloc) == [(ETR_A, 0), (ETR_B, 0)]
    assert ms.counters["sg-join"] == 2 and ms.counters["request-sg"] >= 1
    assert ms.multicast.summary() == {f"{S},{G}": {"rlocs": [ETR_A, ETR_B], "size": 2, "sites": ["a", "b"]}}
    ms.on_message(register("10.1.0.0/16", ETR_A, KEY_A, 3), ETR_A, 4342, 10.0)
    assert ms.counters["sg-refresh"] == 1


def test_leave_removes_only_that_etr_and_the_last_leave_the_entry():
    ms = server()
    ms.on_message(register("10.1.0.0/16", ETR_A, KEY_A, 1), ETR_A, 4342, 0.0)
    ms.on_message(register("10.2.0.0/16", ETR_B, KEY_B, 2), ETR_B, 4342, 0.0)
    ms.on_message(register("10.1.0.0/16", ETR_A, KEY_A, 3, sg_ttl=0), ETR_A, 4342, 1.0)
    assert parse_rle(resolve(ms).locators[0].rloc) == [(ETR_B, 0)]
    ms.on_message(register("10.2.0.0/16", ETR_B, KEY_B, 4, sg_ttl=0), ETR_B, 4342, 1.0)
    assert len(ms.multicast) == 0 and resolve(ms).action == lc.ACTION_NATIVE_FORWARD
    ms.on_message(register("10.2.0.0/16", ETR_B, KEY_B, 5, sg_ttl=0), ETR_B, 4342, 1.0)
    assert ms.counters["sg-leave"] == 2 and ms.counters["sg-leave-unknown"] == 1


def test_unrefreshed_entries_expire():
    ms = server(expiry=30.0)
    ms.on_message(register("10.1.0.0/16", ETR_A, KEY_A, 1), ETR_A, 4342, 0.0)
    ms.on_message(register("10.2.0.0/16", ETR_B, KEY_B, 2), ETR_B, 4342, 20.0)
    assert ms.next_deadline() == 30.0
    ms.on_timer(31.0)
    assert ms.multicast.rlocs((S, G)) == [ETR_B] and ms.counters["sg-expired"] == 1


def test_validation_rules_apply_to_sg_records():
    ms = server()
    cases = [
        (register("10.1.0.0/16", ETR_A, KEY_B, 1), "register-bad-auth"),
        (register("10.1.0.0/16", ETR_A, KEY_A, 2, rle=rle_text(["174.16.1.2"])), "register-rloc-outside"),
        (register("10.1.0.0/16", ETR_A, KEY_A, 3, rle=rle_text([ETR_A, ETR_B])), "register-sg-bad-rle"),
        (register("10.1.0.0/16", ETR_A, KEY_A, 4, rle=ETR_A), "register-sg-bad-rle"),
        (register("10.1.0.0/16", ETR_A, KEY_A, 5, sg=sg_prefix(S, "10.9.9.9")), "register-sg-bad-group"),
        (register("10.1.0.0/16", ETR_A, KEY_A, 6, sg_ttl=99999), "register-ttl-too-long"),
    ]
    for raw, reason in cases:
        assert ms.on_message(raw, ETR_A, 4342, 0.0) == []
        assert ms.last_drop[0] == reason, (reason, ms.last_drop)
    assert len(ms.multicast) == 0 and len(ms) == 0        # all-or-nothing: the unicast record was not applied
    only_sg = lc.MapRegister(7, [lc.EidRecord(SG, ttl=3, locators=[lc.Locator(rle_text([ETR_A]))])]).encode(KEY_A)
    assert ms.on_message(only_sg, ETR_A, 4342, 0.0) == [] and ms.last_drop[0] == "register-nothing-supported"
