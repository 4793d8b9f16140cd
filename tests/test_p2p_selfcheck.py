"""The P2P self-consistency expectation per inter-domain link (testbed.p2p.selfcheck), star and tree cores."""

from __future__ import annotations

from testbed.addressing import make_plan
from testbed.net.links import core_shape, interdomain_links
from testbed.p2p.selfcheck import WIRE, add_flows, expected_links, path
from testbed.params import topo_params


def _plan(**values):
    return make_plan(topo_params({"client_hosts": "per-as", **values}))


def _keys(plan):
    return [(link.name, d) for link in interdomain_links(plan) for d in ("up", "down")]


def test_star_paths_cross_two_links():
    p = _plan(ases=3, clients=2)
    assert path(p, 1, 3) == [("x1-core", "up"), ("x3-core", "down")]
    assert path(p, 0, 2) == [("x0-core", "up"), ("x2-core", "down")]


def test_tree_paths_meet_at_the_common_router_or_the_root():
    p = _plan(ases=5, clients=2, core="tree", transit=2)  # x1, x3, x5 under t1; x2, x4 under t2
    assert path(p, 1, 3) == [("x1-t1", "up"), ("x3-t1", "down")]
    assert path(p, 1, 2) == [("x1-t1", "up"), ("t1-core", "up"), ("t2-core", "down"), ("x2-t2", "down")]
    # the source AS's path is the model's (testbed.net.links.core_shape)
    shape = core_shape(p)
    for a in range(1, 6):
        assert tuple(path(p, 0, a)) == shape.paths[a - 1]


def test_expected_bytes_add_every_senders_flow_on_its_path():
    p = _plan(ases=5, clients=2, core="tree", transit=2)
    flows: dict = {}
    add_flows(flows, 0, {"1": [1000, 2], "2": [500, 1]})
    add_flows(flows, 1, {3: [100, 1], "2": [10, 1]})
    add_flows(flows, 1, {"3": [100, 1]})  # a second peer of AS 1 adds to the same flow
    assert flows[(1, 3)] == [200, 2]
    out, unplaced = expected_links(p, flows, _keys(p))
    assert unplaced == 0
    assert out[("x0-core", "up")] == 1000 + 2 * WIRE + 500 + WIRE
    assert out[("x1-t1", "up")] == 200 + 2 * WIRE + 10 + WIRE
    assert out[("x3-t1", "down")] == 200 + 2 * WIRE
    assert out[("t1-core", "up")] == 10 + WIRE  # AS 1 -> AS 2 only: AS 1 -> AS 3 stays under t1
    assert out[("t1-core", "down")] == 1000 + 2 * WIRE
    assert out[("t2-core", "down")] == 500 + WIRE + 10 + WIRE
    assert out[("x2-t2", "down")] == 500 + WIRE + 10 + WIRE
    assert out[("x4-t2", "down")] == 0 and out[("x0-core", "down")] == 0
    # sum over links = each flow times the links it crosses
    assert sum(out.values()) == (1000 + 2 * WIRE) * 3 + (500 + WIRE) * 3 + (200 + 2 * WIRE) * 2 + (10 + WIRE) * 4


def test_a_flow_to_an_unknown_as_is_unplaced_not_a_crash():
    p = _plan(ases=2, clients=2)
    out, unplaced = expected_links(p, {(1, -1): [50, 1], (1, 2): [10, 1]}, _keys(p))
    assert unplaced == 50 + WIRE and out[("x2-core", "down")] == 10 + WIRE
