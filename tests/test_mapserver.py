"""Tests of the sans-I/O Map-Server/Map-Resolver."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapserver import MapServer, Site
from testbed.wire import lispctrl as lc

KEY_A, KEY_B = b"site-a-secret", b"site-b-secret"
ETR_A, ETR_B = "198.51.100.1", "198.51.100.2"


def server(**kw) -> MapServer:
    sites = [Site("a", KEY_A, ["10.1.0.0/16"]), Site("b", KEY_B, ["10.2.0.0/16", "172.16.0.0/12"],
                                                        alg_ids=frozenset({lc.ALG_SHA256_128}))]
    return MapServer(sites, **kw)


def register(prefixes, rloc=ETR_A, key=KEY_A, nonce=1, ttl=1440, alg=lc.ALG_SHA256_128, corecast=True,
             notify=True) -> bytes:
    recs = [lc.EidRecord(p, ttl=ttl, locators=[lc.Locator(rloc, local=True, corecast=corecast)]) for p in prefixes]
    return lc.MapRegister(nonce, recs, alg_id=alg, proxy_reply=True, want_map_notify=notify).encode(key)


def ecm_request(eid: str, nonce=77, itr="203.0.113.9", sport=4342) -> bytes:
    req = lc.MapRequest(nonce, [f"{eid}/32"], [itr])
    return lc.Ecm(itr, eid, sport, 4342, req.encode()).encode()


def reply_of(out) -> tuple[lc.MapReply, str, int]:
    assert len(out) == 1
    payload, dst, port = out[0]
    msg = lc.decode_control(payload)
    assert isinstance(msg, lc.MapReply)
    return msg, dst, port


def test_register_accepted_and_map_notify():
    ms = server()
    out = ms.on_message(register(["10.1.0.0/16"], nonce=0xABCDEF), ETR_A, 40000, 0.0)
    assert ms.counters["register-ok"] == 1 and ms.last_drop is None
    payload, dst, port = out[0]
    assert (dst, port) == (ETR_A, 40000)
    note = lc.decode_control(payload)
    assert isinstance(note, lc.MapNotify) and note.nonce == 0xABCDEF
    assert lc.verify_auth(payload, KEY_A) and not lc.verify_auth(payload, KEY_B)
    assert [r.prefix for r in note.records] == ["10.1.0.0/16"]
    assert note.records[0].locators[0].corecast
    row, = ms.table()
    assert row["site"] == "a" and row["prefix"] == "10.1.0.0/16" and row["expires_at"] == 180.0
    assert row["rlocs"] == [{"rloc": ETR_A, "priority": 1, "weight": 100, "m_priority": 255, "m_weight": 0,
                             "corecast": True, "reachable": True}]
    assert row["last_nonce"] == "0x0000000000abcdef"


def test_no_notify_without_want_bit():
    ms = server()
    assert ms.on_message(register(["10.1.0.0/16"], notify=False), ETR_A, 4342, 0.0) == []
    assert len(ms.table()) == 1


def test_wrong_key_rejected_and_counted():
    ms = server()
    assert ms.on_message(register(["10.1.0.0/16"], key=b"wrong"), ETR_A, 4342, 0.0) == []
    assert ms.counters["register-bad-auth"] == 1
    assert ms.last_drop[0] == "register-bad-auth"
    assert ms.table() == []


def test_tampered_register_rejected():
    raw = bytearray(register(["10.1.0.0/16"]))
    raw[-1] ^= 1  # change the RLOC after signing
    ms = server()
    assert ms.on_message(bytes(raw), ETR_A, 4342, 0.0) == []
    assert ms.counters["register-bad-auth"] == 1


@pytest.mark.parametrize("prefixes", [["10.9.0.0/16"], ["10.0.0.0/15"], ["10.1.0.0/16", "10.9.0.0/16"],
                                      ["10.1.0.0/16", "10.2.0.0/16"]])
def test_prefix_not_allowed_rejected_and_counted(prefixes):
    ms = server()
    assert ms.on_message(register(prefixes), ETR_A, 4342, 0.0) == []
    assert ms.counters["register-prefix-not-allowed"] == 1
    assert ms.table() == []  # the whole message is refused


def test_more_specific_prefix_allowed():
    ms = server()
    ms.on_message(register(["10.1.128.0/17", "10.1.7.0/24"]), ETR_A, 4342, 0.0)
    assert [r["prefix"] for r in ms.table()] == ["10.1.7.0/24", "10.1.128.0/17"]


def test_other_sites_prefix_with_own_key_is_bad_auth():
    ms = server()
    ms.on_message(register(["10.2.0.0/16"], key=KEY_A), ETR_A, 4342, 0.0)
    assert ms.counters["register-bad-auth"] == 1 and ms.table() == []


def test_sha1_accepted_and_algorithm_policy():
    ms = server()
    out = ms.on_message(register(["10.1.0.0/16"], alg=lc.ALG_SHA1_96), ETR_A, 4342, 0.0)
    assert ms.counters["register-ok"] == 1
    note = lc.decode_control(out[0][0])
    assert note.alg_id == lc.ALG_SHA1_96 and lc.verify_auth(out[0][0], KEY_A)
    # site b accepts SHA-256 only
    assert ms.on_message(register(["10.2.0.0/16"], key=KEY_B, alg=lc.ALG_SHA1_96), ETR_B, 4342, 0.0) == []
    assert ms.counters["register-bad-algorithm"] == 1
    ms.on_message(register(["10.2.0.0/16"], key=KEY_B, nonce=9), ETR_B, 4342, 0.0)
    assert len(ms.table()) == 2


def test_expiry_and_refresh():
    ms = server(expiry=3.0)
    ms.on_message(register(["10.1.0.0/16"], nonce=1), ETR_A, 4342, 0.0)
    ms.on_message(register(["10.2.0.0/16"], key=KEY_B, rloc=ETR_B, nonce=2), ETR_B, 4342, 0.0)
    assert ms.next_deadline() == 3.0
    ms.on_message(register(["10.1.0.0/16"], nonce=3), ETR_A, 4342, 2.0)  # refresh a only
    assert ms.counters["register-refresh"] == 1
    ms.on_timer(2.9)
    assert len(ms.table()) == 2
    ms.on_timer(3.0)
    assert [r["site"] for r in ms.table()] == ["a"]
    assert ms.counters["expired"] == 1
    ms.on_timer(5.0)
    assert ms.table() == [] and ms.counters["expired"] == 2
    # after expiry the EID is answered as configured-but-unregistered
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.2.3"), "203.0.113.9", 4342, 5.0))
    assert reply.records[0].locators == [] and reply.records[0].ttl == 1


def test_expiry_applied_before_request_without_timer():
    ms = server(expiry=3.0)
    ms.on_message(register(["10.1.0.0/16"]), ETR_A, 4342, 0.0)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.2.3"), "203.0.113.9", 4342, 10.0))
    assert reply.records[0].locators == []


def test_ecm_request_answered_to_inner_source_and_port():
    ms = server()
    ms.on_message(register(["10.1.0.0/16"], ttl=30), ETR_A, 4342, 0.0)
    out = ms.on_message(ecm_request("10.1.2.3", nonce=0x1122334455667788, itr="203.0.113.9", sport=51000),
                        "192.0.2.77", 4342, 1.0)
    reply, dst, port = reply_of(out)
    assert (dst, port) == ("203.0.113.9", 51000)
    assert reply.nonce == 0x1122334455667788
    rec, = reply.records
    assert rec.prefix == "10.1.0.0/16" and rec.ttl == 30 and rec.action == lc.ACTION_NO_ACTION
    assert rec.authoritative is False  # proxy reply (RFC 9301 section 5.4)
    loc, = rec.locators
    assert loc.rloc == ETR_A and loc.corecast and loc.reachable and not loc.local
    assert ms.counters["request-ecm"] == 1 and ms.counters["request-positive"] == 1


def test_corecast_flag_carried_through_both_ways():
    ms = server()
    ms.on_message(register(["10.1.0.0/16"], corecast=False), ETR_A, 4342, 0.0)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.0.1"), ETR_B, 4342, 0.0))
    assert reply.records[0].locators[0].corecast is False


def test_plain_request_answered_to_first_itr_rloc_at_source_port():
    ms = server()
    ms.on_message(register(["10.1.0.0/16"]), ETR_A, 4342, 0.0)
    req = lc.MapRequest(5, ["10.1.9.9/32"], ["192.0.2.10", "192.0.2.11"]).encode()
    reply, dst, port = reply_of(ms.on_message(req, "192.0.2.200", 33333, 0.0))
    assert (dst, port, reply.nonce) == ("192.0.2.10", 33333, 5)
    assert reply.records[0].locators[0].rloc == ETR_A


def test_proxy_authoritative_option():
    ms = server(proxy_authoritative=True)
    ms.on_message(register(["10.1.0.0/16"]), ETR_A, 4342, 0.0)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.0.1"), ETR_B, 4342, 0.0))
    assert reply.records[0].authoritative is True


def test_negative_reply_outside_every_site_is_largest_hole():
    ms = server(negative_ttl=15)
    # 192.168.1.1 = 11000000...: the nearest configured prefix, 172.16.0.0/12, starts 10...
    reply, _, _ = reply_of(ms.on_message(ecm_request("192.168.1.1", nonce=3), "x", 1, 0.0))
    rec, = reply.records
    assert reply.nonce == 3
    assert rec.prefix == "192.0.0.0/2" and rec.locators == [] and rec.ttl == 15
    assert rec.action == lc.ACTION_NATIVE_FORWARD
    # 10.3.0.1 is next to 10.2/16 and 10.1/16: the hole is 10.3.0.0/16 (10.2 is configured)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.3.0.1"), "x", 1, 0.0))
    assert reply.records[0].prefix == "10.3.0.0/16"
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.4.0.1"), "x", 1, 0.0))
    assert reply.records[0].prefix == "10.4.0.0/14"
    assert ms.counters["request-negative"] == 3


def test_negative_reply_for_configured_but_unregistered_prefix():
    ms = server()
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.2.3"), "x", 1, 0.0))
    rec, = reply.records
    assert rec.prefix == "10.1.0.0/16" and rec.ttl == 1 and rec.action == lc.ACTION_NATIVE_FORWARD
    ms.on_message(register(["10.1.1.0/24"]), ETR_A, 4342, 0.0)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.2.3"), "x", 1, 0.0))
    assert reply.records[0].prefix == "10.1.2.0/23"  # the hole beside 10.1.1.0/24
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.1.1.3"), "x", 1, 0.0))
    assert reply.records[0].prefix == "10.1.1.0/24" and reply.records[0].locators
    assert ms.counters["request-unregistered"] == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 32)), min_size=1, max_size=12),
       st.integers(0, 2**32 - 1))
def test_negative_hole_property(raw_prefixes, eid):
    prefixes = sorted({str(ipaddress.IPv4Network((a, l), strict=False)) for a, l in raw_prefixes})
    sites = [Site(f"s{i}", b"k", [p]) for i, p in enumerate(prefixes)]
    ms = MapServer(sites)
    eid_text = str(ipaddress.IPv4Address(eid))
    rec = reply_of(ms.on_message(ecm_request(eid_text), "x", 1, 0.0))[0].records[0]
    hole = ipaddress.IPv4Network(rec.prefix)
    nets = [ipaddress.IPv4Network(p) for p in prefixes]
    assert ipaddress.IPv4Address(eid) in hole
    covering = [n for n in nets if ipaddress.IPv4Address(eid) in n]
    if not covering:
        assert not any(hole.overlaps(n) for n in nets)
        if hole.prefixlen > 0:  # maximal: the parent prefix would overlap a configured one
            assert any(hole.supernet().overlaps(n) for n in nets)
    else:
        best = max(covering, key=lambda n: n.prefixlen)
        assert hole.subnet_of(best)
        assert not any(n.subnet_of(hole) and n != best for n in nets if n.prefixlen > best.prefixlen)


def test_multi_eid_request_answers_each():
    ms = server()
    ms.on_message(register(["10.1.0.0/16"]), ETR_A, 4342, 0.0)
    req = lc.MapRequest(8, ["10.1.0.1/32", "192.168.0.1/32"], ["192.0.2.1"]).encode()
    reply, _, _ = reply_of(ms.on_message(req, "192.0.2.1", 4342, 0.0))
    assert [r.prefix for r in reply.records] == ["10.1.0.0/16", "192.0.0.0/2"]
    assert reply.nonce == 8


def test_retransmit_of_latest_register_is_applied_again_and_acknowledged():
    ms = server(expiry=10.0)
    raw = register(["10.1.0.0/16"], nonce=42)
    ms.on_message(raw, ETR_A, 4342, 0.0)
    out = ms.on_message(raw, ETR_A, 4342, 5.0)
    assert ms.counters["register-retransmit"] == 1 and ms.counters["register-ok"] == 2
    assert "register-replay" not in ms.counters
    assert len(out) == 1 and lc.decode_control(out[0][0]).nonce == 42
    assert ms.table()[0]["expires_at"] == 15.0  # the Map-Notify acknowledges what the table holds: refreshed


def test_replay_of_older_register_is_not_applied():
    ms = server()
    old = register(["10.1.0.0/16"], rloc="198.51.100.7", nonce=1)
    ms.on_message(old, ETR_A, 4342, 0.0)
    ms.on_message(register(["10.1.0.0/16"], rloc=ETR_A, nonce=2), ETR_A, 4342, 1.0)
    assert ms.on_message(old, ETR_A, 4342, 2.0) == []
    assert ms.counters["register-replay"] == 1 and ms.counters["register-changed"] == 1
    assert ms.table()[0]["rlocs"][0]["rloc"] == ETR_A


def test_nonce_zero_is_not_replay():
    ms = server()
    raw = register(["10.1.0.0/16"], nonce=0, notify=False)
    ms.on_message(raw, ETR_A, 4342, 0.0)
    ms.on_message(raw, ETR_A, 4342, 1.0)
    assert ms.counters["register-ok"] == 2 and "register-replay" not in ms.counters


def test_deregister_with_ttl_zero():
    ms = server()
    ms.on_message(register(["10.1.0.0/16"], nonce=1), ETR_A, 4342, 0.0)
    ms.on_message(register(["10.1.0.0/16"], nonce=2, ttl=0), ETR_A, 4342, 1.0)
    assert ms.table() == [] and ms.counters["register-deregister"] == 1


def test_bad_input_is_counted_by_reason():
    ms = server()
    assert ms.on_message(b"", "x", 1, 0.0) == []
    assert ms.on_message(b"\x70\x00", "x", 1, 0.0) == []
    assert ms.on_message(b"\x10\x00\x00", "x", 1, 0.0) == []
    reply = lc.MapReply(1, []).encode()
    assert ms.on_message(reply, "x", 1, 0.0) == []
    probe = lc.MapRequest(1, ["10.1.0.1/32"], ["192.0.2.1"], probe=True).encode()
    assert ms.on_message(probe, "x", 1, 0.0) == []
    inner_reg = lc.Ecm("1.2.3.4", "10.1.0.1", 4342, 4342, register(["10.1.0.0/16"])).encode()
    assert ms.on_message(inner_reg, "x", 1, 0.0) == []
    assert ms.on_message(lc.Ecm("1.2.3.4", "10.1.0.1", 4342, 4342, b"\x10").encode(), "x", 1, 0.0) == []
    c = ms.counters
    assert c["decode-truncated"] == 2 and c["decode-unknown-type"] == 1
    assert c["unexpected-mapreply"] == 1 and c["request-probe-ignored"] == 1
    assert c["ecm-not-request"] == 1 and c["ecm-inner-truncated"] == 1
    assert c["rx"] == 7


def test_duplicate_site_prefix_is_a_config_error():
    with pytest.raises(ValueError):
        MapServer([Site("a", b"k", ["10.0.0.0/8"]), Site("b", b"k", ["10.0.0.0/8"])])


def test_ten_thousand_prefixes_lookup():
    sites = [Site(f"s{i}", b"k%d" % i, [f"10.{i // 256}.{i % 256}.0/24"]) for i in range(10000)]
    ms = MapServer(sites)
    for i in range(0, 10000, 7):
        ms.on_message(register([f"10.{i // 256}.{i % 256}.0/24"], key=b"k%d" % i, nonce=i + 1), ETR_A, 4342, 0.0)
    reply, _, _ = reply_of(ms.on_message(ecm_request("10.27.88.200"), "x", 1, 0.0))  # i = 27*256+88 = 7000
    assert reply.records[0].prefix == "10.27.88.0/24" and reply.records[0].locators
    assert parse_prefix(reply.records[0].prefix)[1] == 24
