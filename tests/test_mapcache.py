"""Tests of the xTR map-cache: LPM, expiry, negative entries, locator choice."""

from collections import Counter

from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry


def ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def entry(prefix: str, rlocs, expires=100.0, **kw) -> MapEntry:
    net, plen = parse_prefix(prefix)
    return MapEntry(net, plen, rlocs, expires, **kw)


def test_longest_prefix_match_prefers_more_specific():
    cache = MapCache()
    cache.install(entry("10.0.0.0/8", [("1.1.1.1", 1, 100, False)]))
    cache.install(entry("10.1.0.0/16", [("2.2.2.2", 1, 100, True)]))
    assert cache.lookup(ip("10.1.2.3"), 0.0).choose(0) == "2.2.2.2"
    assert cache.lookup(ip("10.2.2.3"), 0.0).choose(0) == "1.1.1.1"
    assert cache.lookup(ip("11.0.0.1"), 0.0) is None
    assert len(cache) == 2


def test_expired_entry_not_returned_and_falls_back_to_covering():
    cache = MapCache()
    cache.install(entry("10.0.0.0/8", [("1.1.1.1", 1, 100, False)], expires=50.0))
    cache.install(entry("10.1.0.0/16", [("2.2.2.2", 1, 100, False)], expires=10.0))
    assert cache.lookup(ip("10.1.0.1"), 5.0).choose(0) == "2.2.2.2"
    # after 10 s the /16 is gone; the /8 still covers
    assert cache.lookup(ip("10.1.0.1"), 10.0).choose(0) == "1.1.1.1"
    assert cache.lookup(ip("10.1.0.1"), 50.0) is None
    assert len(cache) == 0


def test_hot_cache_respects_expiry_and_replacement():
    cache = MapCache()
    cache.install(entry("10.1.0.0/16", [("2.2.2.2", 1, 100, False)], expires=10.0))
    assert cache.lookup(ip("10.1.0.1"), 1.0) is not None
    assert cache.lookup(ip("10.1.0.1"), 11.0) is None  # even though the address was hot
    cache.install(entry("10.1.0.0/16", [("3.3.3.3", 1, 100, False)], expires=30.0))
    assert cache.lookup(ip("10.1.0.1"), 12.0).choose(0) == "3.3.3.3"
    cache.install(entry("10.1.0.0/24", [("4.4.4.4", 1, 100, False)], expires=30.0))
    assert cache.lookup(ip("10.1.0.1"), 12.0).choose(0) == "4.4.4.4"


def test_negative_entry_returned_as_negative():
    cache = MapCache()
    cache.install(entry("192.168.0.0/16", [], negative=True, action=1))
    found = cache.lookup(ip("192.168.3.4"), 0.0)
    assert found is not None and found.negative and found.action == 1
    assert found.choose(12345) is None
    assert found.corecast is False


def test_remove_expired_counts():
    cache = MapCache()
    cache.install(entry("10.1.0.0/16", [("2.2.2.2", 1, 100, False)], expires=10.0))
    cache.install(entry("10.2.0.0/16", [("2.2.2.3", 1, 100, False)], expires=20.0))
    cache.install(entry("10.3.0.0/16", [("2.2.2.4", 1, 100, False)], expires=30.0))
    assert cache.remove_expired(20.0) == 2
    assert [e.rlocs[0][0] for e in cache.entries()] == ["2.2.2.4"]


def test_choose_lowest_priority_and_weights():
    e = entry("10.1.0.0/16", [("1.0.0.1", 2, 100, False), ("1.0.0.2", 1, 75, True),
                              ("1.0.0.3", 1, 25, True), ("1.0.0.4", 255, 100, True)])
    picks = Counter(e.choose(h) for h in range(1000))
    assert set(picks) == {"1.0.0.2", "1.0.0.3"}
    assert picks["1.0.0.2"] == 750 and picks["1.0.0.3"] == 250
    # the same flow always gets the same RLOC
    assert e.choose(987654321) == e.choose(987654321)
    assert e.corecast is True


def test_choose_zero_weights_share_equally_and_255_unusable():
    e = entry("10.1.0.0/16", [("1.0.0.1", 1, 0, False), ("1.0.0.2", 1, 0, False)])
    assert Counter(e.choose(h) for h in range(10)) == {"1.0.0.1": 5, "1.0.0.2": 5}
    dead = entry("10.1.0.0/16", [("1.0.0.1", 255, 100, True)])
    assert dead.choose(0) is None and dead.corecast is False


def test_corecast_needs_every_best_priority_locator():
    mixed = entry("10.1.0.0/16", [("1.0.0.1", 1, 50, True), ("1.0.0.2", 1, 50, False)])
    assert mixed.corecast is False
    backup_only = entry("10.1.0.0/16", [("1.0.0.1", 1, 50, False), ("1.0.0.2", 2, 50, True)])
    assert backup_only.corecast is False
    assert entry("10.1.0.0/16", [("1.0.0.1", 1, 50, True)]).corecast is True


def test_host_route_and_default_route():
    cache = MapCache()
    cache.install(entry("0.0.0.0/0", [("9.9.9.9", 1, 1, False)]))
    cache.install(entry("10.1.2.3/32", [("8.8.8.8", 1, 1, False)]))
    assert cache.lookup(ip("10.1.2.3"), 0.0).choose(0) == "8.8.8.8"
    assert cache.lookup(ip("10.1.2.4"), 0.0).choose(0) == "9.9.9.9"
    assert cache.get(*parse_prefix("10.1.2.3/32")).plen == 32
    assert cache.remove(*parse_prefix("10.1.2.3/32"))
    assert cache.lookup(ip("10.1.2.3"), 0.0).choose(0) == "9.9.9.9"


def test_vouches_needs_the_rloc_with_the_corecast_flag():
    """What the CoreCast ETR asks (docs/security.md): is this RLOC a CoreCast locator of the site?"""
    site = entry("10.0.0.0/16", [("1.1.1.1", 1, 100, True), ("2.2.2.2", 1, 100, False), ("3.3.3.3", 255, 0, True)])
    assert site.vouches("1.1.1.1") and site.vouches("3.3.3.3")  # any priority: the ITR need not be the ETR
    assert not site.vouches("2.2.2.2") and not site.vouches("9.9.9.9")
    assert not entry("10.0.0.0/16", [("1.1.1.1", 1, 100, True)], negative=True).vouches("1.1.1.1")


def test_generation_counts_every_change_of_the_entries():
    cache = MapCache()
    gens = [cache.gen]
    cache.install(entry("10.0.0.0/16", [("1.1.1.1", 1, 100, True)], expires=5.0))
    gens.append(cache.gen)
    assert cache.lookup(ip("10.0.0.1"), 1.0) is not None and cache.gen == gens[-1]  # a lookup changes nothing
    cache.install(entry("10.1.0.0/16", [("1.1.1.1", 1, 100, True)], expires=5.0))
    gens.append(cache.gen)
    assert cache.lookup(ip("10.0.0.1"), 6.0) is None  # expired: dropped lazily
    gens.append(cache.gen)
    assert cache.remove_expired(6.0) == 1
    gens.append(cache.gen)
    cache.remove(0, 0)
    gens.append(cache.gen)
    assert gens == sorted(set(gens)) and len(gens) == 6
