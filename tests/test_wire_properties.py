"""Property tests (hypothesis): encode/decode are inverse; random or mutated bytes raise only DecodeError."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.wire import corecast as cc
from testbed.wire import lispctrl as lc
from testbed.wire.errors import DecodeError
from testbed.wire.ipv4 import parse_ipv4_udp
from testbed.wire.lispdata import decode_lisp_header, encode_lisp_header

u8 = st.integers(0, 255)
addrs = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))


@st.composite
def prefixes(draw) -> str:
    plen = draw(st.integers(0, 32))
    value = draw(st.integers(0, 2**32 - 1))
    return str(ipaddress.IPv4Network((value, plen), strict=False))


addrs6 = st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v)))
lcafs = st.tuples(u8, u8, u8, u8, st.binary(max_size=12)).map(
    lambda t: "lcaf:" + (bytes(t[:4]) + len(t[4]).to_bytes(2, "big") + t[4]).hex())
any_addrs = st.one_of(addrs, addrs, addrs6, lcafs)   # mixed-AFI lists: IPv4 mostly, IPv6 and LCAF too


@st.composite
def prefixes6(draw) -> str:
    plen = draw(st.integers(0, 128))
    return str(ipaddress.IPv6Network((draw(st.integers(0, 2**128 - 1)), plen), strict=False))


any_prefixes = st.one_of(prefixes(), prefixes(), prefixes6(), st.integers(0, 255).map(lambda n: f"/{n}"),
                         st.tuples(lcafs, st.integers(0, 255)).map(lambda t: f"{t[0]}/{t[1]}"))
locators = st.builds(lc.Locator, any_addrs, u8, u8, u8, u8, st.booleans(), st.booleans(), st.booleans(),
                     st.booleans())
records = st.builds(lc.EidRecord, st.one_of(prefixes(), prefixes(), prefixes6()), st.integers(0, 2**32 - 1),
                    st.integers(0, 7), st.booleans(), st.integers(0, 4095), st.lists(locators, max_size=4))
nonces = st.integers(0, 2**64 - 1)
requests = st.builds(lc.MapRequest, nonces, st.lists(any_prefixes, max_size=3),
                     st.lists(any_addrs, min_size=1, max_size=4), st.none() | any_addrs, st.booleans(), st.booleans(),
                     st.booleans(), st.booleans(), st.booleans(), st.none() | records)
probes = st.builds(lc.MapRequest, nonces, st.just(["/0"]), st.lists(any_addrs, min_size=1, max_size=4),
                   st.none() | addrs, probe=st.just(True))
replies = st.builds(lc.MapReply, nonces, st.lists(records, max_size=3), st.booleans(), st.booleans(), st.booleans())
auths = st.binary(max_size=40)
xtr_ids = st.none() | st.integers(0, 2**128 - 1)


def _no_site_without_xtr(msg):
    """A site-ID travels only with an xTR-ID (the I bit)."""
    return msg if msg.xtr_id is not None else dataclasses.replace(msg, site_id=0)
registers = st.builds(lc.MapRegister, nonces, st.lists(records, max_size=3), u8, u8, st.booleans(), st.booleans(),
                      auths, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(), xtr_ids,
                      st.integers(0, 2**64 - 1)).map(_no_site_without_xtr)
notifies = st.builds(lc.MapNotify, nonces, st.lists(records, max_size=3), u8, u8, auths, st.booleans(), xtr_ids,
                     st.integers(0, 2**64 - 1)).map(_no_site_without_xtr)
ecms = st.builds(lc.Ecm, addrs, addrs, st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=64),
                 st.booleans())
messages = st.one_of(requests, probes, replies, registers, notifies, ecms)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_control_roundtrip(msg):
    raw = msg.encode()
    assert lc.decode_control(raw) == msg
    assert lc.decode_control(memoryview(raw)) == msg


@settings(max_examples=100, deadline=None)
@given(st.one_of(registers, notifies), st.binary(min_size=1, max_size=32), st.sampled_from([1, 2]))
def test_auth_roundtrip(msg, key, alg):
    msg.alg_id = alg
    raw = msg.encode(key)
    assert lc.verify_auth(raw, key)
    assert not lc.verify_auth(raw, key + b"x")
    assert len(lc.decode_control(raw).auth) == lc.AUTH_LEN[alg]


def _only_decode_error(fn, raw) -> None:
    try:
        fn(raw)
    except DecodeError as err:
        assert err.reason and isinstance(err.reason, str)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_decode_error(raw):
    _only_decode_error(lc.decode_control, raw)
    _only_decode_error(cc.decode, raw)
    _only_decode_error(decode_lisp_header, raw)
    _only_decode_error(parse_ipv4_udp, raw)
    assert lc.verify_auth(raw, b"k") in (True, False)


@settings(max_examples=500, deadline=None)
@given(messages, st.data())
def test_mutated_messages_only_decode_error(msg, data):
    raw = bytearray(msg.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(u8)
        elif op == "cut":
            del raw[data.draw(st.integers(0, len(raw))):]
        else:
            i = data.draw(st.integers(0, len(raw)))
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    _only_decode_error(lc.decode_control, bytes(raw))
    assert lc.verify_auth(bytes(raw), b"k") in (True, False)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(min_size=8, max_size=8), addrs, addrs,
       st.integers(0, 65535), st.integers(0, 65535), u8)
def test_corecast_ref_roundtrip(sid, seq, digest, src, dst, sport, dport, flags):
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    ref = cc.CoreCastRef(sid, seq, digest, s, d, sport, dport, flags)
    assert cc.decode(ref.encode()) == ref


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=1400), u8)
def test_corecast_data_roundtrip(sid, seq, chunk, flags):
    data = cc.CoreCastData(sid, seq, chunk, flags)
    assert cc.decode(data.encode()) == data


@settings(max_examples=200, deadline=None)
@given(u8, st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1))
def test_lisp_header_roundtrip(flags, nonce, iid):
    hdr = decode_lisp_header(encode_lisp_header(flags, nonce, iid))
    assert (hdr.flags, hdr.nonce, hdr.iid_lsb) == (flags, nonce, iid)
