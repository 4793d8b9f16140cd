"""The research experiments' parameters: defaults valid, bad values one-line ConfigErrors, sweep points right.

No network is brought up here: only DEFAULTS, validate() and points().
"""

from __future__ import annotations

import pytest

from experiments import EXPERIMENTS, clients, deployment, distribution, gamma, join, load, topology
from experiments.common import parse_list, stream_speed
from testbed import model
from testbed.addressing import make_plan
from testbed.experiment import parse_experiment_params
from testbed.nodeutil import ConfigError
from testbed.params import topo_params

RESEARCH = ["gamma", "clients", "deployment", "distribution", "load", "join", "topology"]


def params(module, *sets: str) -> dict:
    return parse_experiment_params(module, list(sets))


def test_every_experiment_is_registered_with_a_description_and_defaults():
    for name in RESEARCH:
        mod = EXPERIMENTS[name]
        assert mod.DESCRIPTION and "\n" not in mod.DESCRIPTION
        assert callable(mod.run)
        params(mod)  # the defaults are valid


@pytest.mark.parametrize("name,sets,needle", [
    ("gamma", ["gammas=0.5,2"], "gammas"),
    ("gamma", ["gammas=1,x"], "gammas"),
    ("gamma", ["gammas=2,2"], "twice"),
    ("gamma", ["clients=5"], "sweep"),
    ("gamma", ["chunks=0"], "chunks"),
    ("gamma", ["chunks=1.5"], "whole number"),
    ("gamma", ["max_pps=-3"], "negative"),
    ("gamma", ["speed=fast"], "number"),
    ("gamma", ["chunk_bytes=100"], "chunk_bytes"),
    ("gamma", ["content=live"], "content"),
    ("gamma", ["ases=0"], "ases"),
    ("gamma", ["nonsense=1"], "unknown parameter"),
    ("clients", ["ks=3,10"], "ks"),  # fewer clients than ASes
    ("clients", ["ks=10.5"], "whole"),
    ("clients", ["total=100"], "sweep"),
    ("deployment", ["fractions=0,1.5"], "fractions"),
    ("deployment", ["fractions=0.5,0.52"], "same number"),
    ("deployment", ["capable=0.5"], "sweep"),
    ("distribution", ["distributions=uniform,pareto"], "distributions"),
    ("distribution", ["total=5"], "without clients"),
    ("distribution", ["total=0"], "total"),
    ("distribution", ["capable_fractions=2"], "capable_fractions"),
    ("distribution", ["zipf_s=-1"], "zipf_s"),
    ("load", ["lengths=0"], "lengths"),
    ("load", ["seconds=0"], "seconds"),
    ("load", ["length_clients=2"], "length_clients"),
    ("join", ["reps=0"], "reps"),
    ("join", ["reps=500"], "reps"),
    ("join", ["gap_s=0.001"], "gap_s"),
    ("join", ["ases=3"], "reps=N"),
    ("topology", ["ases=50"], "ases"),
    ("topology", ["capable=9"], "capable"),
])
def test_bad_values_are_one_line_config_errors(name, sets, needle):
    with pytest.raises(ConfigError) as info:
        params(EXPERIMENTS[name], *sets)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_parse_list():
    assert parse_list("1,2.5, 10", "x") == [1.0, 2.5, 10.0]
    assert parse_list(7, "x", int) == [7]
    with pytest.raises(ConfigError):
        parse_list("", "x")
    with pytest.raises(ConfigError):
        parse_list(True, "x")
    with pytest.raises(ConfigError):
        parse_list("1,5", "x", int, 2, 10)


def test_stream_speed_caps_the_datagram_rate():
    p = {"bitrate": 1_000_000, "chunk_bytes": 1316, "speed": 10.0, "max_pps": 15000}
    rate = 1_000_000 / (8 * 1316)
    assert stream_speed(p, 11) == 10.0  # 950 chunks/s x 11 = 10,450 datagrams/s: under the cap
    slow = stream_speed(p, 1001)
    assert slow * rate * 1001 == pytest.approx(15000, rel=1e-3)
    for n in (2, 50, 1001):
        assert stream_speed(p, n) * rate * n <= 15000 * 1.001 or stream_speed(p, n) == 10.0


def test_gamma_points_reach_100_with_1000_clients():
    p = params(gamma)
    pts = gamma.points(p)
    assert [round(topo_params(pt.topo).total_clients / 10, 2) for pt in pts] == sorted(p["gammas"])
    last = topo_params(pts[-1].topo)
    assert last.total_clients >= 1000 and last.active_ases == 10
    assert last.total_clients / last.active_ases >= 100
    first = topo_params(pts[0].topo)
    assert first.clients_per_as == [1] * 10  # gamma = 1: detrimental per the model
    assert model.savings(first.clients_per_as, None, 1316) < 0
    for pt in pts:  # the source never sends more than max_pps datagrams per second
        k = topo_params(pt.topo).total_clients
        assert pt.speed * 1_000_000 / (8 * 1316) * (k + 1) <= p["max_pps"] * 1.001
    assert make_plan(last).client_ases[0].many_host  # per-as receivers for large k


def test_gamma_custom_list_and_fractional_gamma():
    pts = gamma.points(params(gamma, "gammas=2.5,1", "ases=4"))
    assert [topo_params(pt.topo).clients_per_as for pt in pts] == [[1, 1, 1, 1], [3, 3, 2, 2]]


def test_clients_points_keep_j_fixed():
    pts = clients.points(params(clients))
    tp = [topo_params(pt.topo) for pt in pts]
    assert [t.total_clients for t in tp] == [5, 10, 25, 50, 100, 250, 500, 1000]
    assert {t.active_ases for t in tp} == {5}


def test_deployment_points_cover_0_to_100_percent():
    pts = deployment.points(params(deployment))
    caps = [sum(topo_params(pt.topo).capable) for pt in pts]
    assert caps == list(range(0, 11))
    assert pts[0].row["capable_fraction"] == 0 and pts[-1].row["capable_fraction"] == 1
    assert {topo_params(pt.topo).total_clients for pt in pts} == {100}


def test_distribution_points_equal_k_and_j():
    pts = distribution.points(params(distribution))
    tp = [topo_params(pt.topo) for pt in pts]
    assert [pt.row["distribution"] for pt in pts] == ["uniform", "zipf s=1", "uniform (50 % capable)",
                                                      "zipf s=1 (50 % capable)"]
    assert {t.total_clients for t in tp} == {200} and {t.active_ases for t in tp} == {10}
    uniform, zipf = tp[0].clients_per_as, tp[1].clients_per_as
    assert uniform == [20] * 10 and max(zipf) > 2 * max(uniform)
    # full deployment: same k and j, so the model's savings are equal; at 50 % Zipf (popular ASes capable) saves more
    assert model.savings(uniform, None, 1316) == pytest.approx(model.savings(zipf, None, 1316))
    assert model.savings(tp[3].clients_per_as, tp[3].capable, 1316) > model.savings(uniform, tp[2].capable, 1316)


def test_load_points_share_one_chunk_rate():
    p = params(load)
    pts = load.points(p)
    ks = [pt for pt in pts if pt.row["sweep"] == "k"]
    assert [topo_params(pt.topo).total_clients for pt in ks] == [40, 100, 200, 400, 800]
    assert len({pt.speed for pt in ks}) == 1 and len({pt.chunks for pt in ks}) == 1
    rate = 1_000_000 / (8 * 1316)
    assert ks[0].chunks == round(p["seconds"] * rate * ks[0].speed)
    length = [pt for pt in pts if pt.row["sweep"] == "length"]
    assert len(length) == 1 and topo_params(length[0].topo).total_clients == 100


def test_join_topology_and_schedule():
    p = params(join, "reps=3")
    topo = join.topology(p)
    plan = make_plan(topo_params({**topo, "client_hosts": "per-as"}))
    assert [len(a.clients) for a in plan.client_ases] == [4, 1, 1, 1]
    sched = join.join_schedule(plan, 3)
    assert [c for c, _e in sched] == ["warm", "cold"] * 3
    warm = [e for c, e in sched if c == "warm"]
    cold = [e for c, e in sched if c == "cold"]
    assert all(e.startswith("10.1.") for e in warm) and plan.client_ases[0].clients[0][1] not in warm
    assert [e.split(".")[1] for e in cold] == ["2", "3", "4"]
    assert [pt.modes for pt in join.points(p)] == [("unicast",), ("corecast",)]
    assert join.stream_chunks(p) >= (p["lead_s"] + 6 * p["gap_s"]) * 1_000_000 / (8 * 1316)


def test_join_model_counts_clients_from_their_join():
    import numpy as np

    from testbed.stream.destinations import Event
    from testbed.stream.records import SourceRecord
    plan = make_plan(topo_params({"ases": 2, "clients": "2,1", "client_hosts": "per-as"}))
    (e1, e2), e3 = [e for _h, e in plan.client_ases[0].clients], plan.client_ases[1].clients[0][1]
    seqs = np.arange(10)
    rec = SourceRecord({}, seqs, seqs * 0.01, np.full(10, 1316), np.arange(10, dtype=np.uint64),
                       [Event(0.0, "join", e1, 6000, 0), Event(0.03, "join", e2, 6000, 3),
                        Event(0.07, "join", e3, 6000, 7)])
    for mode in ("unicast", "corecast"):
        want = 3 * model.core_bytes_per_chunk(mode, [1, 0], None, 1316) \
            + 4 * model.core_bytes_per_chunk(mode, [2, 0], None, 1316) \
            + 3 * model.core_bytes_per_chunk(mode, [2, 1], None, 1316)
        assert join.join_model_bytes(mode, plan, rec, 1316) == want


def test_topology_graph_folds_switches_and_marks_paths():
    from topologies.paper import PaperTopo
    plan = make_plan(topo_params({"ases": 3, "clients": 2, "capable": "1,2"}))
    links = PaperTopo(plan=plan).links()
    registered = {a.eid_prefix: a.capable for a in plan.all_ases}
    g = topology.build_graph(plan, links, registered)
    kinds = {n["name"]: n["kind"] for n in g["nodes"]}
    assert "switch" not in kinds.values()
    assert kinds["src"] == "source" and kinds["core"] == "core" and kinds["ms"] == "ms"
    assert sum(k == "client" for k in kinds.values()) == 6 and sum(k == "xtr" for k in kinds.values()) == 4
    assert ["h1x1", "x1"] in g["links"] and ["src", "x0"] in g["links"]
    assert g["capable"] == ["AS1 10.1.0.0/16", "AS2 10.2.0.0/16"]
    assert ["src", "x0", "core", "x1"] in g["paths"]["data"]
    assert not any(p[-1] == "x3" for p in g["paths"]["data"])  # non-capable: full unicast chunks
    assert ["x0", "core", "x3", "h3x1"] in g["paths"]["unicast"]
