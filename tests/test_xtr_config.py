"""The xTR's CoreCast defence config keys (schema: testbed/schemas/xtr.py): each bad value is a one-line
ConfigError naming the field; the node builds its cores with the switch."""

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
    ({"corecast_defence": "off"}, "config 'corecast_defence': input should be a valid boolean, got 'off'"),
    ({"corecast_max_chunk": 0}, "config 'corecast_max_chunk': input should be greater than or equal to 1, got 0"),
    ({"corecast_max_chunk": 65508},
     "config 'corecast_max_chunk': input should be less than or equal to 65507, got 65508"),
    ({"corecast_max_chunk": True}, "config 'corecast_max_chunk': input should be a valid integer, got True"),
    ({"corecast_quarantine": 0}, "config 'corecast_quarantine': input should be greater than or equal to 1, got 0"),
    ({"corecast_service": dict(SERVICE, allowed_sources="10.0.0.10/32")},
     "config 'corecast_service.allowed_sources': input should be a valid array, got '10.0.0.10/32'"),
    ({"corecast_service": dict(SERVICE, allowed_sources=["10.0.0.300/32"])},
     "config 'corecast_service.allowed_sources[0]': not an IPv4 prefix"),
])
def test_bad_defence_keys_are_one_line_errors(extra, message):
    with pytest.raises(ConfigError) as err:
        xtr.load(dict(BASE, **extra))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_service_needs_the_lan_interface():
    cfg = dict(BASE, corecast_service=SERVICE)
    del cfg["lan_if"]
    with pytest.raises(ConfigError, match="corecast_service needs lan_if"):
        xtr.load(cfg)


def test_the_node_builds_its_cores_with_the_switch():
    on = xtr.XtrNode(xtr.load(dict(BASE, corecast=True, corecast_service=SERVICE)))
    off = xtr.XtrNode(xtr.load(dict(BASE, corecast=True, corecast_service=SERVICE, corecast_defence=False)))
    assert on.cc_etr.defence and on.cc_itr.defence and on.cc_etr.map_cache is on.map_cache
    assert on.cc_etr.max_chunk == 1436
    assert not off.cc_etr.defence and not off.cc_itr.defence and off.cc_etr.max_chunk == 65507
    assert on.status()["corecast_defence"] is True and "cc-unknown-itr" in on.status()["corecast_etr"]


def test_chunk_cap_follows_the_outer_mtu_unless_set():
    node = xtr.XtrNode(xtr.load(dict(BASE, corecast=True, outer_mtu=1400, tun_mtu=1364)))
    assert node.cc_etr.max_chunk == 1400 - 64
    node = xtr.XtrNode(xtr.load(dict(BASE, corecast=True, corecast_max_chunk=500)))
    assert node.cc_etr.max_chunk == 500
