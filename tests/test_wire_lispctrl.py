"""Byte-exact vectors (worked out by hand from the RFC 9301 diagrams) and round trips for lispctrl."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from testbed.wire import lispctrl as lc
from testbed.wire.errors import DecodeError

H = bytes.fromhex

# Map-Request: Type=1, no flags, IRC=0, 1 record | nonce | Source-EID-AFI 0 |
# ITR-RLOC AFI 1 192.0.2.1 | rsvd 0, mask-len 16, AFI 1, 10.1.0.0
REQ_PLAIN = H("10000001" "0102030405060708" "0000" "0001c0000201" "00100001" "0a010000")
# A + s flags, IRC=1 (2 ITR-RLOCs), source EID 10.0.0.5, one /32 record
REQ_FLAGS = H("18400101" "0000000000000001" "00010a000005" "0001c0000201" "0001c6336401"
              "00200001" "0a020304")
# Map-Reply: Type=2, 1 record | nonce | TTL 1440 | 1 locator, /16, ACT 0 A=1 | ver 0, AFI 1 | 10.2.0.0 |
# prio 1, weight 100, mprio 255, mweight 0 | flags 0x8001 (CoreCast + R), AFI 1 | 203.0.113.2
REP_POS = H("20000001" "aabbccddeeff0011" "000005a0" "01101000" "00000001" "0a020000"
            "0164ff00" "80010001" "cb007102")
# Negative Map-Reply: TTL 15, 0 locators, /16, ACT 1 (natively-forward), A=0, 10.9.0.0
REP_NEG = H("20000001" "0000000000000abc" "0000000f" "00102000" "00000001" "0a090000")
# Map-Register: Type=3, M (want-map-notify, word bit 0x100), 1 record | nonce 1 |
# Key ID 0, Algorithm ID 2, auth length 32 | HMAC | record 10.1.0.0/16 -> 198.51.100.1 (L, R)
REG_HEAD = H("30000101" "0000000000000001" "00020020")
REG_BODY = H("000005a0" "01101000" "00000001" "0a010000" "0164ff00" "00050001" "c6336401")


def _register() -> lc.MapRegister:
    loc = lc.Locator("198.51.100.1", local=True)
    return lc.MapRegister(1, [lc.EidRecord("10.1.0.0/16", locators=[loc])])


def test_map_request_plain_bytes():
    msg = lc.MapRequest(0x0102030405060708, ["10.1.0.0/16"], ["192.0.2.1"])
    assert msg.encode() == REQ_PLAIN
    assert lc.decode_control(REQ_PLAIN) == msg


def test_map_request_flags_bytes():
    msg = lc.MapRequest(1, ["10.2.3.4/32"], ["192.0.2.1", "198.51.100.1"], source_eid="10.0.0.5",
                        authoritative=True, smr_invoked=True)
    assert msg.encode() == REQ_FLAGS
    assert lc.decode_control(REQ_FLAGS) == msg


@pytest.mark.parametrize("attr,byte_index,mask", [
    ("authoritative", 0, 0x08), ("probe", 0, 0x02), ("smr", 0, 0x01), ("pitr", 1, 0x80), ("smr_invoked", 1, 0x40),
])
def test_map_request_each_flag(attr, byte_index, mask):
    msg = lc.MapRequest(5, ["10.0.0.0/8"], ["192.0.2.1"], **{attr: True})
    raw = msg.encode()
    assert raw[byte_index] & mask
    plain = lc.MapRequest(5, ["10.0.0.0/8"], ["192.0.2.1"]).encode()
    assert raw[byte_index] ^ plain[byte_index] == mask
    assert lc.decode_control(raw) == msg


def test_map_request_with_map_reply_record_sets_m():
    rec = lc.EidRecord("10.0.0.0/24", locators=[lc.Locator("192.0.2.7")])
    msg = lc.MapRequest(9, ["10.5.0.0/16"], ["192.0.2.1"], map_reply=rec)
    raw = msg.encode()
    assert raw[0] == 0x14
    assert raw.endswith(rec.encode())
    assert lc.decode_control(raw) == msg


def test_map_reply_positive_bytes():
    loc = lc.Locator("203.0.113.2", corecast=True)
    msg = lc.MapReply(0xAABBCCDDEEFF0011, [lc.EidRecord("10.2.0.0/16", locators=[loc])])
    assert msg.encode() == REP_POS
    back = lc.decode_control(REP_POS)
    assert back == msg and back.records[0].locators[0].corecast


def test_map_reply_negative_bytes():
    msg = lc.MapReply(0xABC, [lc.EidRecord("10.9.0.0/16", ttl=15, action=lc.ACTION_NATIVE_FORWARD,
                                            authoritative=False)])
    assert msg.encode() == REP_NEG
    assert lc.decode_control(REP_NEG) == msg


def test_map_reply_flags():
    raw = lc.MapReply(1, [], probe=True, echo_nonce=True, security=True).encode()
    assert raw[0] == 0x2E
    assert lc.decode_control(raw) == lc.MapReply(1, [], True, True, True)


def test_map_register_sha256_bytes_and_verify():
    key = b"s3cret"
    raw = _register().encode(key)
    digest = hmac.new(key, REG_HEAD + bytes(32) + REG_BODY, hashlib.sha256).digest()
    assert raw == REG_HEAD + digest + REG_BODY
    assert lc.verify_auth(raw, key)
    assert not lc.verify_auth(raw, b"wrong")
    back = lc.decode_control(raw)
    assert isinstance(back, lc.MapRegister)
    assert back.auth == digest and back.alg_id == 2 and back.key_id == 0 and back.want_map_notify
    # the 16-bit reading of older implementations sees Key ID 2
    assert int.from_bytes(raw[12:14], "big") == 2


def test_map_register_sha1_bytes_and_verify():
    key = b"k"
    reg = _register()
    reg.alg_id, reg.key_id, reg.proxy_reply, reg.want_map_notify = lc.ALG_SHA1_96, 7, True, False
    raw = reg.encode(key)
    head = H("38000001" "0000000000000001" "07010014")
    digest = hmac.new(key, head + bytes(20) + REG_BODY, hashlib.sha1).digest()
    assert raw == head + digest + REG_BODY
    assert lc.verify_auth(raw, key)
    tampered = bytearray(raw)
    tampered[-1] ^= 1
    assert not lc.verify_auth(bytes(tampered), key)


def test_map_register_encode_without_key_uses_auth_field():
    reg = _register()
    reg.auth = bytes(range(32))
    raw = reg.encode()
    assert raw == REG_HEAD + bytes(range(32)) + REG_BODY
    assert lc.decode_control(raw) == reg


def test_map_notify_bytes():
    key = b"s3cret"
    notify = lc.MapNotify(1, _register().records)
    raw = notify.encode(key)
    head = H("40000001" "0000000000000001" "00020020")
    assert raw == head + hmac.new(key, head + bytes(32) + REG_BODY, hashlib.sha256).digest() + REG_BODY
    assert lc.verify_auth(raw, key)
    back = lc.decode_control(raw)
    assert isinstance(back, lc.MapNotify) and back.records == notify.records


def test_ecm_bytes():
    inner = lc.MapRequest(3, ["10.1.0.0/16"], ["192.0.2.1"]).encode()
    ecm = lc.Ecm("192.0.2.1", "192.0.2.100", 40000, 4342, inner)
    raw = ecm.encode()
    assert raw[:4] == H("80000000")
    ip = raw[4:]
    assert ip[0] == 0x45 and ip[9] == 17 and int.from_bytes(ip[2:4], "big") == 28 + len(inner)
    assert ip[12:16] == H("c0000201") and ip[16:20] == H("c0000264")
    assert ip[20:24] == H("9c4010f6")
    assert ip[28:] == inner
    back = lc.decode_control(raw)
    assert back == ecm
    assert lc.decode_control(back.payload) == lc.MapRequest(3, ["10.1.0.0/16"], ["192.0.2.1"])
    assert lc.Ecm("192.0.2.1", "192.0.2.100", 1, 4342, b"", security=True).encode()[0] == 0x88


@pytest.mark.parametrize("raw,reason", [
    (b"", "truncated"),
    (H("10"), "truncated"),
    (H("50000000") + bytes(8), "unknown-type"),
    (H("00000000") + bytes(8), "unknown-type"),
    (REQ_PLAIN[:-1], "truncated"),
    (REQ_PLAIN[:12] + H("0002"), "truncated"),
    (REQ_PLAIN[:12] + H("0007"), "unknown-afi"),
    (H("10001f01") + bytes(8) + H("0000"), "bad-count"),
    (REP_POS[:-3], "truncated"),
    (H("200000ff") + bytes(8) + bytes(32), "bad-count"),
    (REP_NEG + b"xx", "bad-length"),
    (REP_NEG[:22] + H("0007") + REP_NEG[24:], "unknown-afi"),
    (REP_NEG[:22] + H("0002") + REP_NEG[24:], "truncated"),
    (REP_NEG[:17] + H("21") + REP_NEG[18:], "bad-prefix"),
    (REG_HEAD[:12] + H("0002ffff") + REG_BODY, "bad-length"),
    (REG_HEAD[:10], "truncated"),
    (H("80000000"), "truncated"),
    (H("800000"), "truncated"),
])
def test_decode_rejects(raw, reason):
    with pytest.raises(DecodeError) as err:
        lc.decode_control(raw)
    assert err.value.reason == reason


def test_decode_masks_host_bits():
    raw = bytearray(REQ_PLAIN)
    raw[-1] = 7
    assert lc.decode_control(bytes(raw)).eids == ["10.1.0.0/16"]


def test_encode_rejects_bad_fields():
    with pytest.raises(ValueError):
        lc.MapRequest(1, ["10.1.0.0/16"], []).encode()
    with pytest.raises(ValueError):
        lc.EidRecord("10.1.0.1/16").encode()
    with pytest.raises(ValueError):
        lc.Locator("1.2.3.4", priority=256).encode()
    with pytest.raises(ValueError):
        lc.MapRegister(1, [], alg_id=9).encode(b"k")


def test_verify_auth_rejects_garbage():
    assert not lc.verify_auth(b"", b"k")
    assert not lc.verify_auth(REP_POS, b"k")
    assert not lc.verify_auth(REG_HEAD[:12] + H("00020040"), b"k")
