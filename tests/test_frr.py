"""The tree core without a network: parameters, the plan, the topology graph, FRR's configs (checked by FRR), links."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from testbed.addressing import make_plan
from testbed.modemodels import MODELS
from testbed.net import frr
from testbed.net.links import core_shape, interdomain_links
from testbed.nodeutil import ConfigError
from testbed.params import topo_params
from topologies.paper import PaperTopo

P = 1316


def tree(**values):
    return make_plan(topo_params({"core": "tree", **values}))


@pytest.mark.parametrize("values,needle", [
    ({"core": "ring"}, "core must be star or tree"),
    ({"transit": 2}, "transit needs core=tree"),
    ({"core": "tree", "ases": 3, "transit": 4}, "within 1..3"),
    ({"core": "tree", "transit": 0}, "within 1..4"),
    ({"core": "tree", "transit": "two"}, "whole number"),
    ({"core": "tree", "attach": "nearest"}, "round-robin or random"),
])
def test_bad_core_parameters_are_one_line_errors(values, needle):
    with pytest.raises(ConfigError) as err:
        topo_params(values)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_star_is_the_default_and_unchanged():
    p = make_plan(topo_params({}))
    assert (p.params.core, p.params.transit, p.transit) == ("star", 0, [])
    assert {a.upstream for a in p.all_ases} == {"core"} and "transit" not in p.to_dict()


def test_tree_attaches_client_ases_round_robin_or_seeded_random():
    p = tree(ases=5, clients=1, transit=2)
    assert [t.name for t in p.transit] == ["t1", "t2"] and p.transit[1].ip == "172.18.2.2"
    assert p.source_as.upstream == "core"
    assert [a.upstream for a in p.client_ases] == ["t1", "t2", "t1", "t2", "t1"]
    r1 = [a.upstream for a in tree(ases=12, clients=1, transit=3, attach="random", seed=7).client_ases]
    r2 = [a.upstream for a in tree(ases=12, clients=1, transit=3, attach="random", seed=7).client_ases]
    assert r1 == r2 and set(r1) <= {"t1", "t2", "t3"} and len(set(r1)) > 1
    d = p.to_dict()
    assert d["transit"][0] == {"name": "t1", "ip": "172.18.1.2", "root_ip": "172.18.1.1", "root_if": "t1-core"}
    assert d["ases"][2]["upstream"] == "t2"


def test_tree_topology_graph():
    p = tree(ases=3, clients="2,1,0", transit=2)
    topo = PaperTopo(plan=p)
    links = {(a, b): info for a, b, info in topo.links(withInfo=True)}
    assert {"core", "t1", "t2"} <= set(topo.nodes())
    t1 = links.get(("t1", "core")) or links.get(("core", "t1"))
    assert {t1["intfName1"], t1["intfName2"]} == {"t1-core", "core-t1"}
    x2 = links.get(("x2", "t2")) or links.get(("t2", "x2"))
    assert {x2["intfName1"], x2["intfName2"]} == {"x2-eth1", "t2-x2"}
    x0 = links.get(("x0", "core")) or links.get(("core", "x0"))
    assert x0 is not None


def test_tree_links_and_model_per_link():
    p = tree(ases=3, clients="2,1,1", transit=2)
    assert [(x.name, x.node, x.intf) for x in interdomain_links(p)] == [
        ("x0-core", "x0", "x0-eth1"), ("x1-t1", "x1", "x1-eth1"), ("x2-t2", "x2", "x2-eth1"),
        ("x3-t1", "x3", "x3-eth1"), ("t1-core", "t1", "t1-core"), ("t2-core", "t2", "t2-core")]
    shape = core_shape(p)
    assert shape.paths[2] == (("x0-core", "up"), ("t1-core", "down"), ("x3-t1", "down"))
    uni = MODELS["unicast"].link_bytes([2, 1, 1], [True] * 3, P, shape)
    assert uni[("t1-core", "down")] == 3 * 1380 and uni[("t2-core", "down")] == 1380
    assert sum(uni.values()) == 3 * 4 * 1380  # every copy crosses three links
    cc = MODELS["corecast"].link_bytes([2, 1, 1], [True] * 3, P, shape)
    assert cc[("t1-core", "down")] == (1364 + 136) + (1364 + 68)
    assert cc[("x0-core", "up")] == max(cc.values()) == 3 * 1364 + 4 * 68


def test_ospfd_config():
    p = tree(ases=2, clients=1, transit=2)
    ids, links = frr.router_ids(p), frr.ospf_links(p)
    assert ids == {"core": "172.18.0.1", "t1": "172.18.1.2", "t2": "172.18.2.2"}
    assert links == {"core": ["core-t1", "core-t2"], "t1": ["t1-core"], "t2": ["t2-core"]}
    conf = frr.ospfd_conf("core", ids["core"], links["core"], p.rloc_block)
    assert "interface core-t2\n ip ospf network point-to-point\n ip ospf hello-interval 1\n" in conf
    assert " no ip ospf passive\n" in conf and " passive-interface default\n" in conf
    assert " timers throttle lsa all 0\n" in conf and " timers lsa min-arrival 0\n" in conf
    assert " ospf router-id 172.18.0.1\n" in conf and " network 172.16.0.0/12 area 0\n" in conf


@pytest.mark.skipif(os.geteuid() != 0, reason="FRR's checker drops privileges to the frr user")
def test_frr_accepts_the_rendered_configs(tmp_path):
    """FRR's own --dryrun on every config of a tree core (frr is installed by scripts/setup.sh)."""
    p = tree(ases=3, clients=1, transit=2)

    class Tb:
        def node(self, name):
            return name

    daemons = frr.frr_daemons(Tb(), p, str(tmp_path))
    try:
        assert [d.name for d in daemons] == ["core-zebra", "core-ospfd", "t1-zebra", "t1-ospfd", "t2-zebra",
                                             "t2-ospfd"]
        for d in daemons:
            d.render()
            d.dry_run()
            assert open(d.conf_path).read() == d.conf_text
        bad = daemons[1]
        bad.conf_text = bad.conf_text.replace("network 172.16.0.0/12", "network 999.16.0.0/12")
        bad.render()
        with pytest.raises(frr.FrrError, match="FRR refused .*No such command on config line"):
            bad.dry_run()
    finally:
        for d in daemons:
            shutil.rmtree(d.sockdir, ignore_errors=True)
    assert frr.frr_daemons(Tb(), make_plan(topo_params({})), str(tmp_path)) == []


def test_full_neighbors_reads_frr_json():
    text = json.dumps({"neighbors": {
        "172.18.1.2": [{"nbrState": "Full/-", "converged": "Full", "address": "172.18.1.2"}],
        "172.18.2.2": [{"nbrState": "Init/-"}],
        "172.18.3.2": [{"state": "Full/DR"}]}})
    assert frr.full_neighbors(text) == {"172.18.1.2", "172.18.3.2"}
    assert frr.full_neighbors("") == set() and frr.full_neighbors("% OSPF instance not found") == set()


def test_expected_subnets():
    p = tree(ases=2, clients=1, transit=1)
    assert frr.expected_subnets(p) == {"172.16.0.0/24", "172.16.1.0/24", "172.16.2.0/24", "172.18.1.0/24",
                                       "172.17.0.0/24"}
