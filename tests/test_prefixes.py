"""Longest-prefix match (testbed.lisp.prefixes.PrefixTable, on pytricia) against its behaviour.

Explicit cases, then a naive oracle (a linear scan over the stored prefixes) on
random tables: longest match, exact get, removal, address order, and the
negative Map-Reply hole (RFC 9301 section 8.2).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.lisp.prefixes import PrefixTable, format_prefix, mask, parse_prefix


def P(text: str) -> tuple[int, int]:
    return parse_prefix(text)


def A(text: str) -> int:
    return parse_prefix(text + "/32")[0]


def test_parse_format_mask():
    assert P("10.1.0.0/16") == (0x0A010000, 16)
    assert format_prefix(0x0A010000, 16) == "10.1.0.0/16"
    assert mask(0) == 0 and mask(16) == 0xFFFF0000 and mask(32) == 0xFFFFFFFF
    for bad in ("10.1.0.1/16", "10.1.0.0/33", "nonsense", "10.1.0.0/-1"):
        with pytest.raises(ValueError):
            parse_prefix(bad)


def test_longest_match_prefers_more_specific_and_default():
    t: PrefixTable[str] = PrefixTable()
    assert t.longest_match(A("10.1.2.3")) is None
    t.insert(*P("10.1.0.0/16"), "as1")
    t.insert(*P("10.1.2.0/24"), "lan")
    assert t.longest_match(A("10.1.2.3")) == (*P("10.1.2.0/24"), "lan")
    assert t.longest_match(A("10.1.3.3")) == (*P("10.1.0.0/16"), "as1")
    assert t.longest_match(A("10.2.0.1")) is None
    t.insert(*P("0.0.0.0/0"), "default")
    assert t.longest_match(A("10.2.0.1")) == (0, 0, "default")
    t.insert(*P("10.1.2.3/32"), "host")
    assert t.longest_match(A("10.1.2.3"))[2] == "host"
    assert len(t) == 4


def test_insert_replaces_get_exact_remove():
    t: PrefixTable[int] = PrefixTable()
    t.insert(*P("10.1.0.0/16"), 1)
    t.insert(*P("10.1.0.0/16"), 2)
    assert len(t) == 1 and t.get(*P("10.1.0.0/16")) == 2
    assert t.get(*P("10.1.0.0/24")) is None and t.get(*P("10.0.0.0/8")) is None
    assert t.remove(*P("10.1.0.0/16")) is True
    assert t.remove(*P("10.1.0.0/16")) is False
    assert len(t) == 0 and t.longest_match(A("10.1.0.1")) is None


def test_bad_prefixes_rejected():
    t: PrefixTable[int] = PrefixTable()
    for prefix, plen in ((0x0A010001, 16), (0, 33), (0, -1), (1 << 32, 0)):
        with pytest.raises(ValueError):
            t.insert(prefix, plen, 0)
    assert len(t) == 0


def test_items_in_address_order():
    t: PrefixTable[str] = PrefixTable()
    for text in ("10.2.0.0/16", "10.1.2.0/24", "10.1.0.0/16", "0.0.0.0/0"):
        t.insert(*P(text), text)
    assert [format_prefix(p, l) for p, l, _ in t.items()] == ["0.0.0.0/0", "10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16"]


def test_hole_examples():
    t: PrefixTable[bool] = PrefixTable()
    assert t.hole(A("10.9.0.1")) == (0, 1)  # empty: half the space
    for text in ("10.1.0.0/16", "10.2.0.0/16"):
        t.insert(*P(text), True)
    # 10.9.0.1 shares 12 bits with 10.1/10.2 (00001010.0000 1001 vs 0001/0010): hole is /13
    assert t.hole(A("10.9.0.1")) == (*P("10.8.0.0/13"),)
    assert t.hole(A("10.3.0.1")) == P("10.3.0.0/16")
    assert t.hole(A("192.168.1.1")) == P("128.0.0.0/1")
    t.insert(*P("10.0.0.0/8"), True)  # a covering prefix: the hole is below it, beside the more-specifics
    assert t.hole(A("10.9.0.1")) == P("10.8.0.0/13")
    assert t.hole(A("10.200.0.1")) == P("10.128.0.0/9")


def _oracle_match(entries: dict, addr: int):
    best = None
    for (net, plen), value in entries.items():
        if addr & mask(plen) == net and (best is None or plen > best[1]):
            best = (net, plen, value)
    return best


def _oracle_hole(entries: dict, addr: int) -> tuple[int, int]:
    d = 0
    for p in range(33):
        net, last = addr & mask(p), (addr & mask(p)) | (~mask(p) & 0xFFFFFFFF)
        if any(pl >= p and net <= n <= last for n, pl in entries):
            d = p
    plen = min(d + 1, 32)
    return addr & mask(plen), plen


prefix = st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 32)).map(lambda t: (t[0] & mask(t[1]), t[1]))
near = st.sampled_from([0x0A000000, 0x0A010000, 0x0A01FF00, 0xC0A80000, 0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(prefix, st.booleans()), max_size=40),
       st.lists(st.one_of(st.integers(0, 0xFFFFFFFF), near.flatmap(lambda b: st.integers(b, b + 0x1FFFF))),
                min_size=1, max_size=30))
def test_against_a_linear_scan(ops, addrs):
    t: PrefixTable[int] = PrefixTable()
    ref: dict[tuple[int, int], int] = {}
    for i, ((net, plen), keep) in enumerate(ops):
        t.insert(net, plen, i)
        ref[(net, plen)] = i
        if not keep:
            assert t.remove(net, plen) is True
            del ref[(net, plen)]
    assert len(t) == len(ref)
    assert [(p, l) for p, l, _ in t.items()] == sorted(ref)
    for (net, plen), value in ref.items():
        assert t.get(net, plen) == value
    for addr in addrs:
        addr &= 0xFFFFFFFF
        assert t.longest_match(addr) == _oracle_match(ref, addr)
        assert t.hole(addr) == _oracle_hole(ref, addr)
