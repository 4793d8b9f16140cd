"""The analytical model against hand-computed numbers (P = 1316 unless said)."""

import math

import pytest

from testbed import model
from testbed.model import (
    ModelPoint,
    asymptotic_savings,
    break_even_gamma,
    core_bytes_per_chunk,
    core_bytes_per_chunk_uniform,
    core_packets_per_chunk,
    group_counts,
    savings,
    savings_uniform,
    source_as_bytes_per_chunk,
    source_as_packets_per_chunk,
)

P = 1316


def test_packet_sizes_match_design_table():
    assert model.UNICAST_CORE_OVERHEAD + P == 1380
    assert model.DATA_CORE_OVERHEAD + P == 1364
    assert model.REF_CORE_BYTES == 68
    assert model.UNICAST_EDGE_OVERHEAD + P == 1344
    assert model.DATA_SOURCE_OVERHEAD + P == 1356
    assert model.REF_SOURCE_BYTES == 60


def test_unicast_core_is_1380_per_client():
    assert core_bytes_per_chunk("unicast", [10, 10, 10, 10], None, P) == 40 * 1380
    assert core_packets_per_chunk("unicast", [10, 10, 10, 10]) == 40


def test_corecast_core_default_topology():
    # 4 ASes x 10 clients: 4 DATA + 40 REF
    assert core_bytes_per_chunk("corecast", [10] * 4, [True] * 4, P) == 4 * 1364 + 40 * 68
    assert core_packets_per_chunk("corecast", [10] * 4, [True] * 4) == 44


def test_gamma_one_corecast_costs_more():
    uni = core_bytes_per_chunk("unicast", [1] * 7, None, P)
    cc = core_bytes_per_chunk("corecast", [1] * 7, None, P)
    assert uni == 7 * 1380
    assert cc == 7 * (1364 + 68)
    assert cc > uni
    assert savings([1] * 7, None, P) < 0
    assert savings_uniform(1, P) < 0


def test_gamma_ten_ratio_below_one_fifth():
    uni = core_bytes_per_chunk("unicast", [10] * 5, None, P)
    cc = core_bytes_per_chunk("corecast", [10] * 5, None, P)
    assert cc / uni < 0.2
    assert cc == 5 * (1364 + 680)
    assert savings_uniform(10, P) == pytest.approx(1 - 2044 / 13800)


def test_gamma_hundred():
    assert savings_uniform(100, P) == pytest.approx(1 - 8164 / 138000)


def test_mixed_capable():
    clients = [3, 5, 0, 4]
    capable = [True, False, True, False]
    # j_c = 1 (the empty capable AS gets nothing), k_c = 3, k_n = 9
    assert core_bytes_per_chunk("corecast", clients, capable, P) == 1364 + 3 * 68 + 9 * 1380
    assert core_packets_per_chunk("corecast", clients, capable) == 1 + 3 + 9
    assert core_bytes_per_chunk("unicast", clients, capable, P) == 12 * 1380
    g = group_counts(clients, capable)
    assert (g.k, g.j, g.ases, g.capable_ases, g.j_c, g.k_c, g.k_n) == (12, 3, 4, 2, 1, 3, 9)
    assert g.gamma == 4.0


def test_no_capable_as_equals_unicast():
    clients = [4, 6]
    assert core_bytes_per_chunk("corecast", clients, [False, False], P) == \
        core_bytes_per_chunk("unicast", clients, [False, False], P)
    assert savings(clients, [False, False], P) == 0.0


def test_source_as_bytes():
    assert source_as_bytes_per_chunk("unicast", [10] * 4, None, P) == 40 * 1344
    assert source_as_bytes_per_chunk("corecast", [10] * 4, None, P) == 1356 + 40 * 60
    # REFs go for every client, capable AS or not
    assert source_as_bytes_per_chunk("corecast", [2, 3], [True, False], P) == 1356 + 5 * 60
    assert source_as_packets_per_chunk("corecast", [2, 3]) == 6
    assert source_as_packets_per_chunk("unicast", [2, 3]) == 5


def test_break_even_gamma():
    g = break_even_gamma(P)
    assert g == pytest.approx(1364 / 1312)
    assert savings_uniform(g, P) == pytest.approx(0.0, abs=1e-12)
    assert savings_uniform(g * 0.99, P) < 0 < savings_uniform(g * 1.01, P)
    assert break_even_gamma(1200) == pytest.approx(1248 / 1196)


def test_asymptote_and_monotone():
    lim = asymptotic_savings(P)
    assert lim == pytest.approx(1 - 68 / 1380)
    vals = [savings_uniform(g, P) for g in (1, 2, 5, 10, 100, 1000)]
    assert vals == sorted(vals)
    assert vals[-1] < lim


def test_partial_deployment_scales_savings():
    for f in (0.0, 0.25, 0.5, 1.0):
        assert savings_uniform(10, P, f) == pytest.approx(f * savings_uniform(10, P))
    # closed form agrees with the list form: 4 ASes x 10, 1 capable
    exact = core_bytes_per_chunk("corecast", [10] * 4, [True, False, False, False], P)
    assert core_bytes_per_chunk_uniform("corecast", 10, P, ases=4, capable_fraction=0.25) == pytest.approx(exact)


def test_uniform_closed_form_matches_lists():
    for j, g in ((1, 1), (3, 7), (10, 100)):
        for mode in model.MODES:
            assert core_bytes_per_chunk_uniform(mode, g, P, ases=j) == core_bytes_per_chunk(mode, [g] * j, None, P)


def test_model_point_row():
    p = ModelPoint("corecast", [10, 10, 10, 10], chunk_bytes=P, chunks=100)
    assert p.core_bytes == 100 * (4 * 1364 + 40 * 68)
    assert p.core_packets == 4400
    assert p.gamma == 10.0
    row = p.row()
    assert row["model_core_bytes"] == p.core_bytes
    assert (row["ases"], row["capable_ases"], row["clients"], row["expected_chunks"]) == (4, 4, 40, 4000)
    u = ModelPoint("unicast", (10, 10, 10, 10), chunk_bytes=P, chunks=100)
    assert u.core_bytes == 100 * 40 * 1380
    assert math.isclose(p.savings, 1 - p.core_bytes / u.core_bytes)


@pytest.mark.parametrize("args", [
    ("multicast", [1], None, P),
    ("unicast", [1, 2], [True], P),
    ("unicast", [-1], None, P),
    ("unicast", [1.5], None, P),
    ("unicast", [1], None, 0),
])
def test_bad_input_raises_valueerror(args):
    with pytest.raises(ValueError):
        core_bytes_per_chunk(*args)


def test_no_clients():
    assert savings([0, 0], None, P) == 0.0
    assert group_counts([0, 0]).gamma == 0.0
    assert source_as_bytes_per_chunk("corecast", [0], None, P) == 1356


# ---------------------------------------------------------------- every inter-domain link (issue 12)
from testbed.model import (  # noqa: E402
    CoreShape,
    interdomain_bytes,
    link_bytes_per_chunk,
    link_packets_per_chunk,
    link_totals,
    max_link_bytes,
)


def test_star_core_shape():
    shape = CoreShape.star(2)
    assert shape.links == ("x0-core", "x1-core", "x2-core")
    assert shape.paths == ((("x0-core", "up"), ("x1-core", "down")), (("x0-core", "up"), ("x2-core", "down")))
    assert shape.source_uplink == ("x0-core", "up")
    assert shape.keys()[:3] == [("x0-core", "up"), ("x0-core", "down"), ("x1-core", "up")]
    with pytest.raises(ValueError):
        CoreShape.star(-1)


def test_unicast_links_default_topology():
    links = link_bytes_per_chunk("unicast", [10] * 4, None, P)
    assert links[("x0-core", "up")] == 40 * 1380 == 55200
    assert all(links[(f"x{i}-core", "down")] == 13800 for i in range(1, 5))
    assert all(links[(f"x{i}-core", "up")] == 0 for i in range(1, 5)) and links[("x0-core", "down")] == 0
    assert len(links) == 10
    assert interdomain_bytes(links) == 110400 and max_link_bytes(links) == 55200


def test_corecast_links_default_topology():
    links = link_bytes_per_chunk("corecast", [10] * 4, None, P)
    assert links[("x0-core", "up")] == 8176
    assert all(links[(f"x{i}-core", "down")] == 1364 + 680 for i in range(1, 5))
    assert interdomain_bytes(links) == 2 * 8176 and max_link_bytes(links) == 8176
    pk = link_packets_per_chunk("corecast", [10] * 4)
    assert pk[("x0-core", "up")] == 44 and pk[("x1-core", "down")] == 11


def test_links_mixed_deployment_and_empty_as():
    # AS1 capable with 3, AS2 non-capable with 3, AS3 capable and empty
    links = link_bytes_per_chunk("corecast", [3, 3, 0], [True, False, True], P)
    assert links[("x1-core", "down")] == 1364 + 3 * 68
    assert links[("x2-core", "down")] == 3 * 1380
    assert links[("x3-core", "down")] == 0
    assert links[("x0-core", "up")] == core_bytes_per_chunk("corecast", [3, 3, 0], [True, False, True], P)
    assert link_packets_per_chunk("corecast", [3, 3, 0], [True, False, True])[("x2-core", "down")] == 3


POINT_TO_POINT = [m for m in model.MODES if type(model.MODELS[m]).link_bytes is model.ModeModel.link_bytes]
"""Modes whose copies go from the source's ITR straight to each ETR (no replication inside the core)."""


@pytest.mark.parametrize("mode", POINT_TO_POINT)
@pytest.mark.parametrize("counts", [[1], [10] * 4, [5, 0, 7], [97, 1, 1, 1]])
def test_star_interdomain_is_twice_the_uplink_and_the_uplink_is_busiest(mode, counts):
    links = link_bytes_per_chunk(mode, counts, None, P)
    up = core_bytes_per_chunk(mode, counts, None, P)
    assert links[("x0-core", "up")] == up
    assert interdomain_bytes(links) == 2 * up
    assert max_link_bytes(links) == up
    assert sum(v for (name, d), v in links.items() if d == "down") == up


def test_link_model_on_a_two_level_core():
    # source behind t1; AS1 behind t1, AS2 behind t2: AS2's copies also cross t1-core and t2-core
    shape = CoreShape(links=("x0-t1", "x1-t1", "x2-t2", "t1-core", "t2-core"),
                      paths=((("x0-t1", "up"), ("x1-t1", "down")),
                             (("x0-t1", "up"), ("t1-core", "up"), ("t2-core", "down"), ("x2-t2", "down"))))
    links = link_bytes_per_chunk("unicast", [2, 3], None, P, shape)
    assert links[("t1-core", "up")] == links[("t2-core", "down")] == 3 * 1380
    assert interdomain_bytes(links) == 5 * 1380 + 2 * 1380 + 3 * 3 * 1380
    with pytest.raises(ValueError, match="paths"):
        link_bytes_per_chunk("unicast", [1, 1, 1], None, P, shape)


def test_link_totals_follow_the_audience():
    tot = link_totals("corecast", [(3, [1, 0]), (4, [2, 1])], None, P)
    assert tot[("x1-core", "down")] == 3 * (1364 + 68) + 4 * (1364 + 136)
    assert tot[("x2-core", "down")] == 4 * (1364 + 68)
    assert tot[("x0-core", "up")] == tot[("x1-core", "down")] + tot[("x2-core", "down")]


def test_model_point_link_columns():
    p = ModelPoint("corecast", (10, 10, 10, 10), chunk_bytes=P, chunks=100)
    row = p.row()
    assert row["model_interdomain_bytes"] == 2 * p.core_bytes == p.interdomain_bytes
    assert row["model_max_link_bytes"] == p.core_bytes == p.max_link_bytes
    assert p.link_bytes[("x3-core", "down")] == 100 * 2044


def test_unknown_mode_for_links():
    with pytest.raises(ValueError, match="unknown mode"):
        link_bytes_per_chunk("ipmc-x", [1], None, P)
    with pytest.raises(ValueError):
        link_bytes_per_chunk("unicast", [1], None, 0)


def test_ipmc_one_copy_per_link_of_the_distribution_tree():
    assert "unicast" in POINT_TO_POINT and "corecast" in POINT_TO_POINT and "ipmc" not in POINT_TO_POINT
    star = link_bytes_per_chunk("ipmc", [10, 0, 3], None, P)
    assert star[("x0-core", "up")] == star[("x1-core", "down")] == star[("x3-core", "down")] == 28 + P == 1344
    assert star[("x2-core", "down")] == 0 and interdomain_bytes(star) == 3 * 1344 and max_link_bytes(star) == 1344
    assert link_packets_per_chunk("ipmc", [10, 0, 3])[("x3-core", "down")] == 1
    shape = CoreShape(links=("x0-core", "x1-t1", "x2-t2", "x3-t1", "t1-core", "t2-core"),
                      paths=((("x0-core", "up"), ("t1-core", "down"), ("x1-t1", "down")),
                             (("x0-core", "up"), ("t2-core", "down"), ("x2-t2", "down")),
                             (("x0-core", "up"), ("t1-core", "down"), ("x3-t1", "down"))))
    tree = link_bytes_per_chunk("ipmc", [2, 1, 5], None, P, shape)
    assert tree[("t1-core", "down")] == 1344  # one copy feeds both ASes behind t1: the branch point is t1
    assert interdomain_bytes(tree) == 6 * 1344
    uni = link_bytes_per_chunk("unicast", [2, 1, 5], None, P, shape)
    assert interdomain_bytes(uni) == 3 * 8 * 1380
    assert core_bytes_per_chunk("ipmc", [10] * 4, None, P) == 1344 and core_packets_per_chunk("ipmc", [10] * 4) == 1
    assert core_bytes_per_chunk("ipmc", [0, 0], None, P) == 0
    assert core_bytes_per_chunk_uniform("ipmc", 100, P, ases=10) == 1344.0
    assert source_as_bytes_per_chunk("ipmc", [10] * 4, None, P) == 1344
    assert source_as_packets_per_chunk("ipmc", [10] * 4) == 1
