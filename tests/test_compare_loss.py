"""Unit tests of the loss model, the loss rule, the router-state readers and the loss analysis (no namespaces)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from experiments.loss import correlations
from testbed import model
from testbed.net.loss import LossError, parse_counter, ruleset
from testbed.routerstate import count_mroutes, ms_state, xtr_state


def test_loss_model_corecast_shares_the_data_loss_within_an_as():
    p = 0.01
    cc = model.loss_prediction("corecast", p)
    assert cc.client_loss == pytest.approx(1 - (1 - p) ** 2)
    assert cc.both_lost == pytest.approx(p + (1 - p) * p * p)   # the DATA, or both REFs
    assert cc.corr_within == pytest.approx(0.4975, abs=1e-4)
    assert model.loss_prediction("unicast", p).corr_within == pytest.approx(0.0, abs=1e-12)
    assert model.loss_prediction("lispmc", p).corr_within == pytest.approx(1.0)
    assert model.loss_prediction("corecast-batch", 0.05).client_loss == pytest.approx(1 - 0.95 ** 2)
    assert model.loss_prediction("unicast", 0.01, hops=3).client_loss == pytest.approx(1 - 0.99 ** 3)
    assert math.isnan(model.loss_prediction("corecast", 0.0).corr_within)


def test_loss_model_rejects_bad_input():
    with pytest.raises(ValueError):
        model.loss_prediction("unicast", 1.5)
    with pytest.raises(KeyError, match="no loss model"):
        model.loss_prediction("carrier-pigeon", 0.1)


def test_ruleset_drops_udp_but_not_lisp_control():
    text = ruleset(50)
    assert "numgen random mod 1000 < 50" in text and "udp dport 4342 accept" in text and "udp sport 4342 accept" in text
    assert ruleset(0) == "add table inet cc_loss\ndelete table inet cc_loss\n"
    for bad in (-1, 1001, 2.5, True):
        with pytest.raises(ValueError):
            ruleset(bad)


def test_parse_counter():
    text = json.dumps({"nftables": [{"metainfo": {}}, {"counter": {"name": "lost", "packets": 7, "bytes": 900}}]})
    assert parse_counter(text) == 7
    with pytest.raises(LossError):
        parse_counter("not json")


def test_router_state_readers():
    st = {"map_cache_entries": 4, "corecast_chunks": 2,
          "lispmc": {"replication_lists": {"10.0.0.10,232.0.0.1": 3}, "receivers": {"a": 2, "b": 0}}}
    assert xtr_state(st) == {"map_cache": 4, "cc_chunks": 2, "repl_entries": 3, "etr_sg": 1}
    assert xtr_state({}) == {"map_cache": 0, "cc_chunks": 0, "repl_entries": 0, "etr_sg": 0}
    ms = {"registrations": 5, "multicast": {"10.0.0.10,232.0.0.1": {"size": 3, "rlocs": []}}}
    assert ms_state(ms) == {"ms_registrations": 5, "ms_sg": 1, "ms_repl": 3}
    mroute = {"232.0.0.1": {"10.0.0.10": {"iif": "eth0"}, "10.0.0.11": {"iif": "eth1"}}, "232.0.0.2": {}}
    assert count_mroutes(json.dumps(mroute)) == 2
    assert count_mroutes("garbage") == 0


def test_correlations_within_and_across():
    # clients 0, 1 in AS 1 lose the same chunks; client 2 in AS 2 loses other ones
    lost = np.array([[1, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1]], dtype=bool)
    cw, ca, nw, na = correlations(lost, [1, 1, 2], 100, 1)
    assert cw == pytest.approx(1.0) and nw == 1 and na == 2 and ca == pytest.approx(-0.5)
    cw, ca, nw, na = correlations(np.zeros((2, 5), dtype=bool), [1, 1], 100, 1)
    assert math.isnan(cw) and nw == 0


def test_figures_from_synthetic_rows(tmp_path):
    from testbed.figures_compare import plot_compare, plot_loss
    rows = []
    for core in ("star", "tree"):
        for g in (1, 10):
            for mode, per in (("unicast", 1400 * g), ("corecast", 1400 + 68 * g)):
                rows.append({"part": "bytes", "core": core, "mode": mode, "gamma": g, "chunks": 10,
                             "clients": 10 * g, "chunk_bytes": 1316, "active_ases": 10, "core_bytes": 10 * per,
                             "model_core_bytes": 10 * per, "interdomain_bytes": 20 * per,
                             "model_interdomain_bytes": 20 * per, "state_map_cache": 11, "state_cc_chunks": 11,
                             "state_mroutes": 0})
    rows += [{"part": "join", "mode": m, "cache": c, "join_delay_s": 0.01, "gamma": 1, "chunks": 10,
              "core_bytes": 1, "model_core_bytes": 1, "interdomain_bytes": 1, "model_interdomain_bytes": 1}
             for m in ("unicast", "corecast") for c in ("cold", "warm")]
    assert [p.endswith(("compare.png", "compare.pdf")) for p in plot_compare(pd.DataFrame(rows), {}, str(tmp_path))]
    loss = [{"mode": m, "loss_permille": lp, "client_loss_mean": lp / 1000, "client_loss_min": 0,
             "client_loss_max": lp / 500, "model_client_loss": lp / 1000, "corr_within_as": 0.5,
             "corr_across_as": 0.0, "model_corr_within": 0.5, "chunks": 100, "clients": 40}
            for m in ("unicast", "corecast") for lp in (0, 1, 10, 50)]
    paths = plot_loss(pd.DataFrame(loss), {}, str(tmp_path))
    assert all((tmp_path / p.split("/")[-1]).stat().st_size > 1000 for p in paths)
