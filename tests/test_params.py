"""Topology parameters, --set parsing, the addressing plan, and CLI argument errors."""

from __future__ import annotations

import ipaddress

import pytest

from conftest import corecast
from testbed.addressing import make_plan
from testbed.nodeutil import ConfigError
from testbed.params import parse_sets, topo_params, uniform_counts, zipf_counts


def test_parse_sets_types():
    assert parse_sets(["ases=4", "capable=0.5", "client_hosts=per-as", "x=true"]) == {
        "ases": 4, "capable": 0.5, "client_hosts": "per-as", "x": True}


@pytest.mark.parametrize("item", ["ases", "=4", "ases=", "a b=1"])
def test_parse_sets_malformed(item):
    with pytest.raises(ConfigError):
        parse_sets([item])


@pytest.mark.parametrize("values,needle", [
    ({"ases": 0}, "ases"), ({"ases": "x"}, "ases"), ({"clients": -1}, "negative"),
    ({"distribution": "pareto"}, "distribution"), ({"ases": 3, "clients": "1,2"}, "3 ASes"),
    ({"capable": "7"}, "capable"), ({"capable": 1.5}, "fraction"), ({"client_hosts": "many"}, "client_hosts"),
])
def test_topo_params_rejects(values, needle):
    with pytest.raises(ConfigError, match=needle):
        topo_params(values)


def test_distributions():
    assert uniform_counts(10, 4) == [3, 3, 2, 2]
    z = zipf_counts(1000, 5, 1.0, seed=3)
    assert sum(z) == 1000 and z[0] > z[-1]
    assert zipf_counts(1000, 5, 1.0, seed=3) == z  # seeded
    p = topo_params({"ases": 4, "capable": 0.5})
    assert p.capable == [True, True, False, False]
    assert topo_params({"ases": 4, "capable": "2,4"}).capable == [False, True, False, True]


def test_plan_spaces_disjoint_and_names_short():
    p = topo_params({"ases": 50, "clients": 5})
    plan = make_plan(p)
    eid, rloc = ipaddress.ip_network(plan.eid_block), ipaddress.ip_network(plan.rloc_block)
    assert not eid.overlaps(rloc)
    for a in plan.all_ases:
        assert ipaddress.ip_network(a.eid_prefix).subnet_of(eid)
        assert ipaddress.ip_address(a.rloc) in rloc and ipaddress.ip_address(a.core_ip) in rloc
        for host, client in a.clients:
            assert len(host) <= 9 and len(f"{host}-eth0") <= 15
            assert ipaddress.ip_address(client) in ipaddress.ip_network(a.eid_prefix)
        assert len(a.xtr) <= 9 and len(a.core_if) <= 15 and len(f"{a.xtr}-tun") <= 15
    eids = [e for _a, _h, e in plan.clients()]
    assert len(set(eids)) == len(eids) == 250


def test_plan_many_clients_block():
    plan = make_plan(topo_params({"ases": 2, "clients": 10_000, "client_hosts": "per-as"}))
    a = plan.client_ases[1]
    block = ipaddress.ip_network(a.many_block)
    assert all(ipaddress.ip_address(e) in block for _h, e in a.clients)
    assert len({e for _h, e in a.clients}) == 10_000


@pytest.mark.parametrize("args", [
    ["check", "nope"], ["check", "--set", "ases=0"], ["check", "--set", "clients=-2"],
    ["check", "--set", "distribution=pareto"], ["check", "--set", "bad"], ["run", "nope"],
    ["check", "--set", "frobnicate=1"], ["run", "demo", "--set", "seconds=abc"], ["bogus-verb"],
])
def test_cli_bad_input_one_line_exit_2(args):
    res = corecast(*args)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corecast: ") and "Traceback" not in res.stderr


@pytest.mark.parametrize("sets,message", [
    (["ases=1e9"], "ases must be a whole number, got '1e+09'"),  # review: it said '1000000000.0'
    (["ases=4000", "core=tree", "transit=4000"], "transit must be a whole number within 1..50 (at most 50), got '4000'"),
    (["ases=3", "core=tree", "transit=4"], "transit must be a whole number within 1..3 (one per client AS at most), got '4'"),
])
def test_whole_number_errors_show_the_value_and_the_right_limit(sets, message):
    with pytest.raises(ConfigError) as err:
        topo_params(parse_sets(sets))
    assert str(err.value) == message
