"""The xTR's CoreCast defence config keys: each bad value is a one-line ConfigError."""

import pytest

from nodes import xtr
from testbed.nodeutil import ConfigError

BASE = {"rloc": "174.16.0.2", "map_server": "174.16.255.2", "map_resolver": "174.16.255.2", "key": "k",
        "tun": "x0-tun", "eid_block": "10.0.0.0/8", "eid_prefixes": ["10.0.0.0/16"], "lan_if": "x0-eth0"}
SERVICE = {"addr": "10.0.255.254", "port": 4340, "allowed_sources": ["10.0.0.10/32"]}


def test_defaults_and_valid_values_load():
    assert xtr.load(dict(BASE, corecast_service=SERVICE)) is not None
    assert xtr.load(dict(BASE, corecast_defence=False, corecast_max_chunk=1436, corecast_quarantine=8))


@pytest.mark.parametrize("extra, message", [
    ({"corecast_defence": "off"}, "corecast_defence must be true or false"),
    ({"corecast_max_chunk": 0}, "corecast_max_chunk must be an integer in 1..65507 (bytes)"),
    ({"corecast_max_chunk": 65508}, "corecast_max_chunk must be an integer in 1..65507 (bytes)"),
    ({"corecast_max_chunk": True}, "corecast_max_chunk must be an integer in 1..65507 (bytes)"),
    ({"corecast_quarantine": 0}, "corecast_quarantine must be an integer in 1..65536 (chunks)"),
    ({"corecast_service": dict(SERVICE, allowed_sources="10.0.0.10/32")},
     "corecast_service.allowed_sources must be a list of prefixes"),
    ({"corecast_service": dict(SERVICE, allowed_sources=["10.0.0.300/32"])},
     "corecast_service.allowed_sources: '10.0.0.300/32' is not an IPv4 prefix"),
])
def test_bad_defence_keys_are_one_line_errors(extra, message):
    with pytest.raises(ConfigError) as err:
        xtr.load(dict(BASE, **extra))
    assert str(err.value) == message and "\n" not in str(err.value)


def test_service_needs_the_lan_interface():
    cfg = dict(BASE, corecast_service=SERVICE)
    del cfg["lan_if"]
    with pytest.raises(ConfigError, match="needs 'lan_if'"):
        xtr.load(cfg)


def test_the_node_builds_its_cores_with_the_switch():
    on = xtr.XtrNode(dict(BASE, corecast=True, corecast_service=SERVICE))
    off = xtr.XtrNode(dict(BASE, corecast=True, corecast_service=SERVICE, corecast_defence=False))
    assert on.cc_etr.defence and on.cc_itr.defence and on.cc_etr.map_cache is on.map_cache
    assert on.cc_etr.max_chunk == 1436
    assert not off.cc_etr.defence and not off.cc_itr.defence and off.cc_etr.max_chunk == 65507
    assert on.status()["corecast_defence"] is True and "cc-unknown-itr" in on.status()["corecast_etr"]
