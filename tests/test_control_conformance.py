"""Issue 11 items 1-6 and issue 10 items 4-5: each sample from the issue, with the right value asserted,
plus the other instances of the same kind of fault."""

from __future__ import annotations

import pytest

from testbed.lisp.mapcache import MapCache
from testbed.lisp.mapserver import MapServer, Site
from testbed.lisp.xtrcontrol import XtrControl
from testbed.wire import lispctrl as lc

H = bytes.fromhex
# Issue 11 item 1: an ECM as another xTR sent it (inner 10.2.0.10 -> 10.1.0.10, ITR-RLOC 10.0.0.12)
ECM_OTHER_XTR = H("800000004500003c00024000ff1167980a02000a0a01000a10f610f600284d7f1000000137ff5f6b5354631600010a02000a"
                  "00010a00000c002000010a01000a")
# item 2: site 10.5.0.0/24, key "secret", HMAC-SHA-256, I, T and M bits, xTR-ID + site-ID trailer
REG_I_BIT = H("3200090101dfdfdfddccbbaa000200204f9c90d768a08f6d9369883954465e2bffe0344b86752b3311f7e819c8ed3c28"
              "0000000301181000000000010a0500000000ff00000500010a00000d0000000000000000aacd21d1050f82bc"
              "0000000000000000")
# item 3: Key ID 7, signed with the only key of site 10.1.0.0/16 ("site-key")
REG_KEY_ID_7 = H("3800010100000000000000010702002089f446ba3d0be53a558c4d4fed5e646a462f849fb2231735c324c8f5be435e96"
                 "000005a001101000000000010a0100000164ff0000010001c6336401")
# item 5: ITR-RLOCs [IPv6 2001:db8::1, IPv4 198.51.100.9]
REQ_MIXED_AFI = H("1000010100000000000000550000000220010db80000000000000000000000010001c6336409002000010a01000a")
# item 6: RLOC-probe, EID record mask-len 0 AFI 0
PROBE = H("12000001e24a3e1157fab44300010a01000000010a00000d0000000000")


def reply(out):
    assert len(out) == 1, out
    payload, dst, port = out[0]
    msg = lc.decode_control(payload)
    assert isinstance(msg, lc.MapReply)
    return msg, dst, port


def test_ecm_reply_goes_to_itr_rloc_at_inner_source_port():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    msg, dst, port = reply(ms.on_message(ECM_OTHER_XTR, "10.0.0.12", 4342, 0.0))
    assert (dst, port) == ("10.0.0.12", 4342)  # not the inner source 10.2.0.10 (an EID)
    assert msg.nonce == 0x37FF5F6B53546316 and msg.records[0].prefix == "10.1.0.0/16"


@pytest.mark.parametrize("eid", ["10.1.0.10", "10.9.9.9", "192.0.2.1"])  # unregistered, negative, outside
def test_every_reply_kind_goes_to_itr_rloc(eid):
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    req = lc.MapRequest(5, [f"{eid}/32"], ["198.51.100.20"], source_eid="10.2.0.10")
    ecm = lc.Ecm("10.2.0.10", eid, 61001, 4342, req.encode()).encode()
    _, dst, port = reply(ms.on_message(ecm, "198.51.100.20", 4342, 0.0))
    assert (dst, port) == ("198.51.100.20", 61001)


def test_request_without_ipv4_itr_rloc_is_dropped_counted():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    req = lc.MapRequest(5, ["10.1.0.1/32"], ["2001:db8::1"]).encode()
    assert ms.on_message(req, "192.0.2.1", 4342, 0.0) == []
    assert ms.counters["request-no-itr-rloc"] == 1


def test_register_with_i_bit_is_registered_and_notify_carries_trailer():
    ms = MapServer([Site("s5", b"secret", ["10.5.0.0/24"])], rloc_prefixes=["10.0.0.0/8"])
    out = ms.on_message(REG_I_BIT, "10.0.0.13", 4342, 0.0)
    assert ms.counters["register-ok"] == 1 and len(out) == 1
    payload, dst, port = out[0]
    assert (dst, port) == ("10.0.0.13", 4342)
    note = lc.decode_control(payload)
    assert isinstance(note, lc.MapNotify) and note.nonce == 0x01DFDFDFDDCCBBAA
    assert payload[0] & 0x08  # Map-Notify I bit
    assert note.xtr_id == 0xAACD21D1050F82BC and note.site_id == 0
    assert payload[-24:] == REG_I_BIT[-24:]
    assert lc.verify_auth(payload, b"secret")
    row, = ms.table()
    assert row["prefix"] == "10.5.0.0/24" and row["xtr_id"] == "0000000000000000aacd21d1050f82bc"
    assert row["site_id"] == "0000000000000000"


def test_register_flags_decode_at_rfc_positions():
    reg = lc.decode_control(REG_I_BIT)
    assert reg.use_ttl and reg.want_map_notify and reg.xtr_id is not None
    assert not (reg.proxy_reply or reg.security or reg.merge or reg.rtr or reg.eid_notify)
    for attr, mask in [("proxy_reply", 0x08000000), ("security", 0x04000000), ("eid_notify", 0x00001000),
                       ("use_ttl", 0x00000800), ("merge", 0x00000400), ("rtr", 0x00000200),
                       ("want_map_notify", 0x00000100)]:
        msg = lc.MapRegister(1, [], **dict({"want_map_notify": False}, **{attr: True}))
        word = int.from_bytes(msg.encode()[:4], "big")
        assert word & 0x0FFFFF00 == mask, attr
        assert getattr(lc.decode_control(msg.encode()), attr)
    assert int.from_bytes(lc.MapRegister(1, [], want_map_notify=False, xtr_id=5).encode()[:4], "big") \
        & 0x0FFFFF00 == 0x02000000
    assert lc.MapNotify(1, [], xtr_id=1).encode()[0] == 0x48 and lc.MapNotify(1, [], rtr=True).encode()[0] == 0x44


def test_i_bit_trailer_is_covered_by_hmac():
    bad = REG_I_BIT[:-1] + b"\x01"  # site-ID changed after signing
    ms = MapServer([Site("s5", b"secret", ["10.5.0.0/24"])], rloc_prefixes=["10.0.0.0/8"])
    assert ms.on_message(bad, "10.0.0.13", 4342, 0.0) == []
    assert ms.counters["register-bad-auth"] == 1 and len(ms) == 0


def test_unknown_key_id_fails_authentication_counted():
    ms = MapServer([Site("as1", b"site-key", ["10.1.0.0/16"])])
    assert ms.on_message(REG_KEY_ID_7, "198.51.100.1", 4342, 0.0) == []
    assert ms.counters["register-bad-key-id"] == 1 and len(ms) == 0


def test_key_id_selects_the_configured_key():
    site = Site("as1", None, ["10.1.0.0/16"], keys={7: b"seven", 1: b"one"})
    ms = MapServer([site])
    recs = [lc.EidRecord("10.1.0.0/16", locators=[lc.Locator("198.51.100.1")])]
    ok = lc.MapRegister(1, recs, key_id=7).encode(b"seven")
    wrong = lc.MapRegister(2, recs, key_id=1).encode(b"seven")
    zero = lc.MapRegister(3, recs, key_id=0).encode(b"seven")
    note = lc.decode_control(ms.on_message(ok, "198.51.100.1", 4342, 0.0)[0][0])
    assert note.key_id == 7 and lc.verify_auth(ms.on_message(ok, "198.51.100.1", 4342, 0.0)[0][0], b"seven")
    assert ms.on_message(wrong, "198.51.100.1", 4342, 0.0) == [] and ms.counters["register-bad-auth"] == 1
    assert ms.on_message(zero, "198.51.100.1", 4342, 0.0) == [] and ms.counters["register-bad-key-id"] == 1


def _reg(nonce, ttl, rloc="198.51.100.1", key=b"k", xtr_id=None):
    rec = lc.EidRecord("10.1.0.0/16", ttl=ttl, locators=[] if ttl == 0 else [lc.Locator(rloc)])
    return lc.MapRegister(nonce, [rec], xtr_id=xtr_id).encode(key)


def test_deregistration_reusing_nonce_is_dropped_and_table_unchanged():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    ms.on_message(_reg(42, 1440), "198.51.100.1", 4342, 0.0)
    out = ms.on_message(_reg(42, 0), "198.51.100.1", 4342, 1.0)
    assert out == [] and ms.counters["register-replay"] == 1   # no Map-Notify for what was not done
    assert [r["prefix"] for r in ms.table()] == ["10.1.0.0/16"]
    out = ms.on_message(_reg(43, 0), "198.51.100.1", 4342, 2.0)  # a fresh nonce deregisters
    assert ms.table() == [] and ms.counters["register-deregister"] == 1
    note = lc.decode_control(out[0][0])
    assert note.records[0].ttl == 0 and note.records[0].prefix == "10.1.0.0/16"


def test_deregistration_of_another_xtr_is_not_acknowledged():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    ms.on_message(_reg(1, 1440, xtr_id=1), "198.51.100.1", 4342, 0.0)
    assert ms.on_message(_reg(2, 0, xtr_id=2), "198.51.100.2", 4342, 1.0) == []
    assert len(ms) == 1 and ms.counters["register-deregister-other-xtr"] == 1
    assert ms.on_message(_reg(3, 0, xtr_id=1), "198.51.100.1", 4342, 1.0) and len(ms) == 0


def test_mixed_afi_itr_rlocs_answer_the_ipv4_one():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    msg, dst, port = reply(ms.on_message(REQ_MIXED_AFI, "198.51.100.9", 40000, 0.0))
    assert (dst, port) == ("198.51.100.9", 40000) and msg.nonce == 0x55
    assert lc.decode_control(REQ_MIXED_AFI).itr_rlocs == ["2001:db8::1", "198.51.100.9"]


def test_unsupported_afi_records_and_locators_are_skipped_not_fatal():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])
    lcaf = "lcaf:" + H("000002000002" "0001").hex()  # an opaque LCAF address of 2 body bytes
    recs = [lc.EidRecord("2001:db8::/32", locators=[lc.Locator("198.51.100.1")]),
            lc.EidRecord("10.1.0.0/16", locators=[lc.Locator("2001:db8::2"), lc.Locator(lcaf),
                                                  lc.Locator("198.51.100.1")])]
    raw = lc.MapRegister(9, recs).encode(b"k")
    out = ms.on_message(raw, "198.51.100.1", 4342, 0.0)
    assert ms.counters["register-record-unsupported"] == 1 and ms.counters["register-locator-unsupported"] == 2
    row, = ms.table()
    assert [r["rloc"] for r in row["rlocs"]] == ["198.51.100.1"]
    note = lc.decode_control(out[0][0])
    assert [r.prefix for r in note.records] == ["10.1.0.0/16"]  # acknowledges what the table holds
    assert [l.rloc for l in note.records[0].locators] == ["198.51.100.1"]
    req = lc.MapRequest(3, ["2001:db8::1/128", "10.1.0.1/32"], ["198.51.100.3"]).encode()
    msg, _, _ = reply(ms.on_message(req, "198.51.100.3", 4342, 0.0))
    assert [r.prefix for r in msg.records] == ["10.1.0.0/16"] and ms.counters["request-eid-unsupported"] == 1


def test_rloc_probe_decodes():
    req = lc.decode_control(PROBE)
    assert req.probe and req.eids == ["/0"] and req.itr_rlocs == ["10.0.0.13"] and req.source_eid == "10.1.0.0"


def _xtr(**kw) -> XtrControl:
    return XtrControl(rloc="172.16.1.2", eid_prefixes=["10.1.0.0/16"], map_server="172.17.0.2",
                      map_resolver="172.17.0.2", key=b"k", map_cache=MapCache(), corecast=True, **kw)


def test_xtr_answers_rloc_probe_with_probe_bit_and_locator_set():
    x = _xtr()
    sends, resolved = x.on_control(PROBE, "10.0.0.13", 4342, 100.0)
    assert resolved == [] and x.counters["probe-reply-sent"] == 1
    msg, dst, port = reply(sends)
    assert (dst, port) == ("10.0.0.13", 4342)
    assert msg.probe and msg.nonce == 0xE24A3E1157FAB443
    rec, = msg.records
    assert rec.prefix == "10.1.0.0/16" and rec.authoritative
    loc, = rec.locators
    assert (loc.rloc, loc.local, loc.probed, loc.reachable, loc.corecast) == ("172.16.1.2", True, True, True, True)


def test_xtr_probe_rate_limited_and_foreign_eid_not_answered():
    x = _xtr(probe_rate=2.0)
    sent = sum(bool(x.on_control(PROBE, "10.0.0.13", 4342, 50.0)[0]) for _ in range(10))
    assert sent == 2 and x.counters["probe-rate-limited"] == 8
    other = lc.MapRequest(1, ["10.9.0.1/32"], ["10.0.0.13"], probe=True).encode()
    assert x.on_control(other, "10.0.0.13", 4342, 60.0)[0] == [] and x.counters["probe-not-ours"] == 1
    v6only = lc.MapRequest(1, ["/0"], ["2001:db8::1"], probe=True).encode()
    assert x.on_control(v6only, "10.0.0.13", 4342, 70.0)[0] == [] and x.counters["probe-no-itr-rloc"] == 1


def test_rloc_outside_site_space_rejected_whole_no_notify():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], rloc_prefixes=["172.16.0.0/12"])
    recs = [lc.EidRecord("10.1.1.0/24", ttl=1440, locators=[lc.Locator("174.16.1.2")]),
            lc.EidRecord("10.1.2.0/24", ttl=1440, locators=[lc.Locator("172.16.1.2")])]
    assert ms.on_message(lc.MapRegister(1, recs).encode(b"k"), "172.16.1.2", 4342, 0.0) == []
    assert ms.counters["register-rloc-outside"] == 1 and len(ms) == 0


def test_issue_sample_ttl_and_rloc_rejected():
    """``10.1.1.0/24 -> 174.16.1.2`` with TTL 67,110,304 minutes: rejected (TTL checked first), no Map-Notify."""
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], rloc_prefixes=["172.16.0.0/12"])
    rec = lc.EidRecord("10.1.1.0/24", ttl=67_110_304, locators=[lc.Locator("174.16.1.2")])
    assert ms.on_message(lc.MapRegister(1, [rec]).encode(b"k"), "172.16.1.2", 4342, 0.0) == []
    assert ms.counters["register-ttl-too-long"] == 1 and len(ms) == 0
    rec.ttl = 1441
    assert ms.on_message(lc.MapRegister(2, [rec]).encode(b"k"), "172.16.1.2", 4342, 0.0) == []
    assert ms.counters["register-ttl-too-long"] == 2
    rec.ttl = 1440
    assert ms.on_message(lc.MapRegister(3, [rec]).encode(b"k"), "172.16.1.2", 4342, 0.0) == []
    assert ms.counters["register-rloc-outside"] == 1 and len(ms) == 0


def test_per_site_rloc_space_overrides_default():
    sites = [Site("as1", b"k", ["10.1.0.0/16"], rloc_prefixes=("172.16.1.0/24",))]
    ms = MapServer(sites, rloc_prefixes=["172.16.0.0/12"], max_ttl=60)
    ok = lc.MapRegister(1, [lc.EidRecord("10.1.0.0/16", ttl=60, locators=[lc.Locator("172.16.1.2")])])
    bad = lc.MapRegister(2, [lc.EidRecord("10.1.0.0/16", ttl=60, locators=[lc.Locator("172.16.2.2")])])
    assert ms.on_message(ok.encode(b"k"), "172.16.1.2", 4342, 0.0)
    assert ms.on_message(bad.encode(b"k"), "172.16.2.2", 4342, 0.0) == []
    assert ms.counters["register-rloc-outside"] == 1 and ms.table()[0]["rlocs"][0]["rloc"] == "172.16.1.2"


def test_table_restore_keeps_absolute_expiry_and_drops_expired():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"]), Site("as2", b"k2", ["10.2.0.0/16"])], expiry=100.0)
    ms.on_message(_reg(1, 1440, xtr_id=9), "198.51.100.1", 4342, 0.0)
    ms.on_message(lc.MapRegister(2, [lc.EidRecord("10.2.0.0/16", locators=[lc.Locator("198.51.100.2")])])
                  .encode(b"k2"), "198.51.100.2", 4342, 50.0)
    rows = ms.table()
    fresh = MapServer([Site("as1", b"k", ["10.1.0.0/16"]), Site("as2", b"k2", ["10.2.0.0/16"])], expiry=100.0)
    assert fresh.restore(rows, 120.0) == 1   # 10.1 expired at 100, 10.2 lives until 150
    assert fresh.counters["restore-expired"] == 1
    assert fresh.table()[0]["expires_at"] == 150.0 and fresh.next_deadline() == 150.0
    req = lc.MapRequest(7, ["10.2.0.1/32"], ["192.0.2.1"]).encode()
    msg, _, _ = reply(fresh.on_message(req, "192.0.2.1", 4342, 121.0))
    assert msg.records[0].locators[0].rloc == "198.51.100.2"
    again = MapServer([Site("as1", b"k", ["10.1.0.0/16"])])    # as2 gone from the config: rejected
    assert again.restore(rows, 0.0) == 1 and again.counters["restore-invalid"] == 1
    assert again.table()[0]["xtr_id"] == f"{9:032x}"
    assert MapServer([]).restore([{"junk": 1}, 5, None], 0.0) == 0


def test_restored_rows_never_outlive_a_fresh_registration():
    """Review: a table row with expires_at 1e308 (or NaN) was restored and never expired."""
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], expiry=100.0)
    ms.on_message(_reg(1, 1440), "198.51.100.1", 4342, 0.0)
    row = ms.table()[0]
    fresh = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], expiry=100.0)
    assert fresh.restore([{**row, "expires_at": 1e308}], 10.0) == 1
    assert fresh.table()[0]["expires_at"] == 110.0
    nan = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], expiry=100.0)
    assert nan.restore([{**row, "expires_at": float("nan")}], 10.0) == 0 and nan.counters["restore-invalid"] == 1


def test_table_version_changes_with_the_table():
    ms = MapServer([Site("as1", b"k", ["10.1.0.0/16"])], expiry=10.0)
    v0 = ms.version
    ms.on_message(_reg(1, 1440), "198.51.100.1", 4342, 0.0)
    v1 = ms.version
    ms.on_message(lc.MapRequest(1, ["10.1.0.1/32"], ["192.0.2.1"]).encode(), "192.0.2.1", 4342, 1.0)
    assert v1 > v0 and ms.version == v1     # a lookup changes nothing
    ms.on_timer(11.0)
    assert len(ms) == 0 and ms.version > v1
