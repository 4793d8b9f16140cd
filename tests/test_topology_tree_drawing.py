"""The topology drawing of a tree core: transit routers drawn, DATA/REF paths through each AS's transit router."""

from __future__ import annotations

from experiments.topology import build_graph, core_path
from testbed.addressing import make_plan
from testbed.params import topo_params
from testbed.topodraw import draw_topology


def _links(plan):
    links = [(plan.ms, plan.core), (plan.source_as.xtr, plan.core), (plan.source_host, plan.source_as.switch)]
    links += [(t.name, plan.core) for t in plan.transit]
    for a in plan.all_ases:
        links.append((a.xtr, a.switch))
        if a.number:
            links.append((a.xtr, a.upstream))
        links += [(h, a.switch) for h, _ in a.clients]
    return links


def test_tree_graph_has_transit_routers_and_paths_through_them(tmp_path):
    plan = make_plan(topo_params({"ases": 4, "clients": 2, "core": "tree", "transit": 2}))
    graph = build_graph(plan, _links(plan), {a.eid_prefix: True for a in plan.all_ases})
    kinds = {n["name"]: n["kind"] for n in graph["nodes"]}
    assert sorted(n for n, k in kinds.items() if k == "transit") == ["t1", "t2"]
    for a in plan.client_ases:
        assert core_path(plan, a) == ["core", a.upstream]
        assert ["src", "x0", "core", a.upstream, a.xtr] in graph["paths"]["data"]
    written = draw_topology(graph, str(tmp_path / "topology"))
    assert [p.rsplit(".", 1)[1] for p in written] == ["png", "pdf"]


def test_star_paths_cross_the_one_core_router():
    plan = make_plan(topo_params({"ases": 2, "clients": 1}))
    assert all(core_path(plan, a) == ["core"] for a in plan.client_ases)
