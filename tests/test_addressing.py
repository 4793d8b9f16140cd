"""The addressing plan for thousands of ASes (issue 16 item 1): invariants at every size, exact small plans, errors."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct

import pytest

from conftest import corecast
from testbed.addressing import MAX_PLAN_ASES, eid_slot_len, link_len, make_plan, needed_len
from testbed.nodeutil import ConfigError
from testbed.params import MAX_ASES, MAX_CLIENTS, topo_params

EID = ipaddress.ip_network("10.0.0.0/8")
RLOC = ipaddress.ip_network("172.16.0.0/12")


def _int(addr: str) -> int:
    return struct.unpack("!I", socket.inet_aton(addr))[0]


def _span(prefix: str) -> tuple[int, int]:
    net = ipaddress.ip_network(prefix)
    return int(net.network_address), int(net.broadcast_address)


def _disjoint(spans: list[tuple[int, int]]) -> bool:
    spans = sorted(spans)
    return all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def check_invariants(plan) -> None:
    """Every property the topology, the daemons and the checks rely on; fails on the first broken one."""
    assert not ipaddress.ip_network(plan.eid_block).overlaps(ipaddress.ip_network(plan.rloc_block))
    eids = [_span(a.eid_prefix) for a in plan.all_ases]
    assert all(EID[0] <= ipaddress.ip_address(lo) and ipaddress.ip_address(hi) <= EID[-1] for lo, hi in eids)
    assert _disjoint(eids), "two ASes share EID space"
    links = [_span(a.link_prefix) for a in plan.all_ases] + [_span(plan.ms_link), _span("172.17.1.0/24")]
    links += [_span(t.link_prefix) for t in plan.transit]
    assert all(ipaddress.ip_address(lo) in RLOC and ipaddress.ip_address(hi) in RLOC for lo, hi in links)
    assert _disjoint(links), "two RLOC links overlap"
    names = {plan.core, plan.ms, plan.source_host, *(t.name for t in plan.transit)}
    ifnames = [f"{plan.core}-eth{len(plan.all_ases) + 1}", *(t.root_if for t in plan.transit)]
    seen: set[str] = set()
    for a in plan.all_ases:
        lo, hi = _span(a.eid_prefix)
        llo, lhi = _span(a.link_prefix)
        assert llo < _int(a.core_ip) <= lhi and llo < _int(a.rloc) < lhi and a.core_ip != a.rloc
        assert lo < _int(a.xtr_lan_ip) < hi
        names |= {a.xtr, a.switch}
        ifnames += [a.lan_if, a.core_if, f"{a.xtr}-tun", a.up_if]
        hosts = sorted({h for h, _e in a.clients})
        names |= set(hosts)
        ifnames += [f"{h}-eth0" for h in hosts] + [f"{a.switch}-eth{len(hosts) + 2}"]
        inner = _span(a.many_block) if a.many_block else (lo, hi)
        if a.many_block:
            assert lo <= inner[0] and inner[1] <= hi and lo < _int(a.many_host_ip) < inner[0]
        for _h, e in a.clients:
            v = _int(e)
            assert inner[0] < v < inner[1] and v & 0xFF not in (0, 255), (a.number, e, a.eid_prefix)
        for e in [e for _h, e in a.clients]:
            assert e not in seen
            seen.add(e)
        assert a.xtr_lan_ip not in seen and (a.many_host_ip or "") not in seen
    src_lo, src_hi = _span(plan.source_as.eid_prefix)
    assert src_lo < _int(plan.source_eid) < src_hi and src_lo < _int(plan.service_addr) < src_hi
    assert plan.service_addr not in (plan.source_eid, plan.source_as.xtr_lan_ip)
    assert max(map(len, names)) <= 9, sorted(names, key=len)[-1]
    assert max(map(len, ifnames)) <= 15, sorted(ifnames, key=len)[-1]
    assert len(seen) == plan.params.total_clients


@pytest.mark.parametrize("ases", [1, 20, 200, 1000, 4000])
@pytest.mark.parametrize("audience", [
    {"clients": 1}, {"clients": 25, "client_hosts": "per-as"}, {"distribution": "uniform", "total": 100_000},
    {"distribution": "zipf", "total": 100_000}, {"distribution": "zipf", "total": 100_000, "zipf_s": 2.0},
    {"clients": 1, "client_hosts": "per-client", "core": "tree", "transit": 1},
])
def test_plan_invariants(ases, audience):
    plan = make_plan(topo_params({"ases": ases, **audience}), attackers=True)
    check_invariants(plan)
    rogue = _span(plan.client_ases[-1].eid_prefix)
    assert rogue[0] < _int(plan.rogue_ip) < rogue[1] and plan.rogue_ip not in {e for _a, _h, e in plan.clients()}


def test_listed_audience_with_a_huge_as():
    counts = [50_000, 30_000] + [20] * 998 + [0]   # 1,001 ASes, 99,960 clients: two need blocks above the /18 slot
    plan = make_plan(topo_params({"ases": 1001, "clients": ",".join(map(str, counts))}))
    check_invariants(plan)
    assert plan.client_ases[0].eid_prefix == "10.254.0.0/15" and plan.client_ases[1].eid_prefix == "10.253.0.0/16"
    assert plan.client_ases[2].eid_prefix == "10.0.192.0/18"  # slot 3 of /18s
    assert plan.client_ases[0].many_block == "10.255.0.0/16" and plan.client_ases[0].clients[-1][1] == "10.255.199.250"


def test_small_plans_keep_todays_addresses():
    plan = make_plan(topo_params({"ases": 3, "clients": 2}), attackers=True)
    a = plan.client_ases[1]
    assert (a.eid_prefix, a.xtr_lan_ip, a.rloc, a.core_ip, a.link_prefix, a.up_if) == (
        "10.2.0.0/16", "10.2.0.1", "172.16.2.2", "172.16.2.1", "172.16.2.0/24", "core-eth3")
    assert a.clients == [("h2x1", "10.2.1.1"), ("h2x2", "10.2.1.2")]
    assert (plan.source_eid, plan.service_addr, plan.rogue_ip, plan.ms_ip) == (
        "10.0.0.10", "10.0.255.254", "10.3.0.66", "172.17.0.2")
    many = make_plan(topo_params({"ases": 200, "clients": 300, "client_hosts": "per-as"})).client_ases[199]
    assert (many.eid_prefix, many.many_host_ip, many.many_block) == ("10.200.0.0/16", "10.200.0.2", "10.200.128.0/17")
    assert many.clients[250] == ("m200", "10.200.129.1")


def test_large_plans_scale_the_slots():
    assert [eid_slot_len(n) for n in (2, 201, 256, 257, 1001, 4001)] == [16, 16, 16, 17, 18, 20]
    assert [link_len(n) for n in (2, 256, 257, 1001, 4001)] == [24, 24, 25, 26, 28]
    assert needed_len(32_000, False) == 16 and needed_len(32_001, False) == 15 and needed_len(0, True) == 24
    plan = make_plan(topo_params({"ases": 1000, "clients": 100}))
    a = plan.client_ases[999]
    assert (a.eid_prefix, a.xtr_lan_ip, a.link_prefix, a.rloc, a.many_block) == (
        "10.250.0.0/18", "10.250.0.1", "172.16.250.0/26", "172.16.250.2", "10.250.32.0/19")
    assert (plan.source_eid, plan.service_addr) == ("10.0.0.10", "10.0.63.254")
    big = make_plan(topo_params({"ases": 4000, "clients": 25}))
    assert big.client_ases[-1].eid_prefix == "10.250.0.0/20" and big.client_ases[-1].link_prefix == "172.16.250.0/28"
    assert json.loads(json.dumps(big.to_dict()))["ases"][4000]["link_prefix"] == "172.16.250.0/28"


@pytest.mark.parametrize("values, words", [
    ({"ases": MAX_ASES + 1}, f"1..{MAX_PLAN_ASES}"),
    ({"ases": 10, "distribution": "zipf", "total": MAX_CLIENTS + 1}, "at most 100,000"),
    ({"ases": 2, "clients": "60000,60000"}, "clients in all"),
    ({"ases": 1, "clients": MAX_CLIENTS + 1}, "per AS"),
    ({"ases": 1000, "clients": ",".join(["1"] * 999 + ["1000"]), "client_hosts": "per-client"},
     "node name h1000x1000"),
    ({"ases": 4000, "clients": ",".join(["8333"] * 12 + ["0"] * 3988)}, "do not fit the EID block"),
])
def test_params_beyond_the_plan_are_one_line_errors(values, words):
    with pytest.raises(ConfigError) as err:
        topo_params(values)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_cli_beyond_the_plan_exit_2():
    res = corecast("check", "--set", "ases=4001")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "ases must be within 1..4000" in lines[0]
