"""Mode ipmc without a network: pimd's configs (checked by FRR's --dryrun), neighbors, routes, FRR's JSON, the nft rules."""

from __future__ import annotations

import json
import shutil

import pytest

from testbed.addressing import make_plan
from testbed.modes import MODES, IpmcMode
from testbed.net import frr, pim
from testbed.net.links import ruleset
from testbed.params import topo_params


def plan(**values):
    return make_plan(topo_params({"ases": 3, "clients": "2,1,0", **values}))


def test_interfaces_neighbors_and_routes_on_a_tree():
    p = plan(core="tree", transit=2)
    assert pim.routers(p) == ["x0", "x1", "x2", "x3", "core", "t1", "t2"]
    intfs = pim.pim_interfaces(p)
    assert intfs["x0"] == [("x0-eth1", False), ("x0-eth0", False)]  # no IGMP on the source's LAN
    assert intfs["x1"] == [("x1-eth1", False), ("x1-eth0", True)]
    assert intfs["core"] == [("core-eth1", False), ("core-t1", False), ("core-t2", False)]
    assert intfs["t1"] == [("t1-x1", False), ("t1-x3", False), ("t1-core", False)]
    nbrs = pim.expected_neighbors(p)
    assert nbrs["core"] == {"172.16.0.2", "172.18.1.2", "172.18.2.2"} and nbrs["x2"] == {"172.16.2.1"}
    assert pim.source_routes(p, p.source_eid) == {"core": "172.16.0.2", "t1": "172.18.1.1", "t2": "172.18.2.1",
                                                  "x1": "172.16.1.1", "x2": "172.16.2.1", "x3": "172.16.3.1"}
    assert pim.tree_routers(p) == ["x0", "core", "t1", "t2", "x1", "x2"]  # AS3 has no clients


def test_star_core_interfaces_follow_the_topology_names():
    p = plan()
    assert pim.pim_interfaces(p)["core"] == [(f"core-eth{n}", False) for n in (1, 2, 3, 4)]
    assert pim.tree_routers(p) == ["x0", "core", "x1", "x2"]


def test_frr_accepts_the_pimd_configs(tmp_path):
    p = plan(core="tree", transit=2)
    intfs = pim.pim_interfaces(p)
    for router in ("x1", "core"):
        sockdir = frr.socket_dir(router)
        try:
            d = frr.FrrDaemon(router, router, "pimd", str(tmp_path), sockdir, pim.pimd_conf(router, intfs[router]))
            d.render()
            d.dry_run()
        finally:
            shutil.rmtree(sockdir, ignore_errors=True)
    assert " ip igmp version 3" in pim.pimd_conf("x1", intfs["x1"])
    assert "igmp" not in pim.pimd_conf("core", intfs["core"])


def test_frr_json_readers():
    text = json.dumps({"x1-eth1": {"172.16.1.1": {"upTime": "00:00:01"}}, "x1-eth0": {}})
    assert pim.neighbors(text) == {"172.16.1.1"} and pim.neighbors("") == set() and pim.neighbors("{bad") == set()
    up = json.dumps({"232.2.2.2": {"10.0.0.10": {"joinState": "Joined"}}})
    assert pim.joined(up, "10.0.0.10") and not pim.joined(up, "10.0.0.11")
    assert not pim.joined(json.dumps({"232.2.2.2": {"10.0.0.10": {"joinState": "NotJoined"}}}), "10.0.0.10")
    assert not pim.joined("[]", "10.0.0.10") and not pim.joined("", "10.0.0.10")


def test_the_mode_counts_its_group_as_data_and_drops_lispmc_copies():
    assert MODES["ipmc"] is IpmcMode
    mode = IpmcMode()
    assert mode.source_config() == {"mode": "ipmc", "service": {"addr": "232.2.2.2", "port": 6000}}
    assert IpmcMode.link_data_match == "ip daddr 232.2.2.2 udp dport 6000"
    rules = ruleset(["x0-eth1"], [IpmcMode.link_data_match])
    assert 'oifname "x0-eth1" ip daddr 232.2.2.2 udp dport 6000 counter name "l0_up_data" accept' in rules
    assert 'iifname "x0-eth1" ip daddr 232.2.2.2 udp dport 6000 counter name "l0_down_data" accept' in rules
    assert "232.2.2.2" not in ruleset(["x0-eth1"])
    block = pim.lispmc_block_rule(plan())
    assert "@th,256,32 0xe8020202 counter drop" in block  # inner destination 232.2.2.2 of LISP data
    assert 'oifname "x0-eth1" ip daddr 232.0.0.0/8 ip daddr != 232.2.2.2 counter drop' in block


def test_source_schema_needs_the_group():
    from pydantic import ValidationError
    from testbed.schemas.source import SourceSchema
    base = {"name": "s", "eid": "10.0.0.10", "src_port": 5000, "stream_id": 1, "chunk_bytes": 1316,
            "bitrate": 1000000, "chunks": 3, "clients": [], "mode": "ipmc"}
    assert SourceSchema(**base, service={"addr": "232.2.2.2", "port": 6000}).mode == "ipmc"
    with pytest.raises(ValidationError, match="ipmc mode needs 'service'"):
        SourceSchema(**base, service={"addr": "10.0.255.254", "port": 4340})
