"""Figures from synthetic measurements: every experiment's plotter, the topology drawing, `corecast figures`."""

import json
import os
from pathlib import Path
import random

import pandas as pd
import pytest

from testbed import figures
from testbed.figures import PLOTTERS, FigureError, draw_topology, figures_command, paired_savings
from testbed.model import ModelPoint
from testbed.results import REQUIRED_COLUMNS, Measurements, RunDir


def _row(exp, mode, clients, capable=None, chunks=100, noise=0.0, **extra):
    mp = ModelPoint(mode, tuple(clients), tuple(capable or ()), 1316, chunks)
    r = {c: None for c in REQUIRED_COLUMNS}
    r.update(mp.row())
    r.update(experiment=exp, core_bytes=int(mp.core_bytes * (1 + noise)), core_packets=mp.core_packets,
             control_bytes=500, delivered_chunks=mp.chunks * mp.counts.k, corrupt_chunks=0)
    r.update(extra)
    return r


def _p2p(exp, clients, **extra):
    """A P2P row (issue 14): a unicast model row relabelled, with the P2P columns."""
    r = _row(exp, "unicast", clients, **extra)
    r["mode"] = "p2p"
    return r


def synthetic(name: str) -> pd.DataFrame:
    rnd = random.Random(1)
    both = ("unicast", "corecast")
    if name in ("demo", "smoke"):
        rows = [_row(name, m, [10] * 4, chunks=2850) for m in both]
    elif name == "gamma":
        rows = [_row(name, m, [g] * 10, noise=rnd.uniform(-.002, .002)) for g in (1, 2, 10, 100) for m in both]
    elif name == "clients":
        rows = [_row(name, m, [k // 4] * 4) for k in (4, 40, 160) for m in both]
    elif name == "deployment":
        rows = [_row(name, "unicast", [10] * 4)] + \
            [_row(name, "corecast", [10] * 4, [i < c for i in range(4)]) for c in range(5)]
    elif name == "distribution":
        rows = [_row(name, m, s, distribution=d) for d, s in (("uniform", [25] * 4), ("zipf", [60, 30, 10, 0]))
                for m in both]
    elif name == "load":
        rows = [_row(name, m, [k // 10] * 10, sweep="clients", duration_s=10, itr_pps=k * 95, etr_pps=k * 9.5,
                     cpu_itr_s=k * .002, cpu_etr_s=k * .0005, rss_itr_kb=30000, rss_etr_kb=28000)
                for m in both for k in (10, 100)]
        rows += [_row(name, m, [10] * 10, sweep="length", duration_s=s, itr_pps=950, etr_pps=95, cpu_itr_s=s * .01,
                      cpu_etr_s=s * .002, rss_itr_kb=30000 + s, rss_etr_kb=28000) for m in both for s in (10, 60)]
    elif name == "join":
        rows = [_row(name, m, [10] * 4, cache=c, join_delay_s=(0.12 if c == "cold" else 0.02) + rnd.uniform(0, .03))
                for m in both for c in ("cold", "warm") for _ in range(5)]
    elif name == "attack":
        rows = [_row(name, "corecast", [2, 2], row_kind="stream", defence=d, attack="") for d in ("on", "off")]
        rows += [_row(name, "corecast", [2, 2], chunks=0, row_kind="attack", defence=d, attack=a,
                      amplification=0.0 if d == "on" else amp) for d in ("on", "off")
                 for a, amp in (("etr-outsider", 16.5), ("oversized", 905.1), ("forged-live", 1.8))]
    elif name == "p2p":  # issue 14: baselines and P2P (testbed.figures_p2p)
        rows = [_row(name, m, [g] * 3, interdomain_bytes=2 * g * 3 * 1380 * 100, clients_per_as=f"{g} {g} {g}")
                for g in (2, 10) for m in both]
        rows += [_p2p(name, [g] * 3, policy=pol, upload=2.0, clients_per_as=f"{g} {g} {g}",
                      core_bytes=4 * 1404 * 100, interdomain_bytes=(0.7 if pol == "random" else 0.2) * g * 3 * 2808 * 100)
                 for g in (2, 10) for pol in ("random", "local")]
    elif name == "p2p-upload":
        rows = [_p2p(name, [10] * 3, policy="random", upload=u, continuity=min(1.0, (0.8 * u + .13)),
                     min_continuity=min(1.0, 0.6 * u), median_startup_s=2.5 + 1 / u) for u in (0.8, 1, 1.5, 3)]
    elif name == "channel-change":
        rows = [(_p2p if m == "p2p" else lambda *a, **k: _row(a[0], m, *a[1:], **k))(
            name, [10] * 3, join_delay_s=(12 if m == "p2p" else 0.02) + rnd.uniform(0, 3 if m == "p2p"
                                                                                               else .03))
                for m in ("unicast", "corecast", "p2p") for _ in range(8)]
    elif name == "compare":  # issue 12: modes x gamma on two cores, joins, router state (testbed.figures_compare)
        rows = [_row(name, m, [g] * 4, part="bytes", core=c, interdomain_bytes=2 * g * 4 * 1380 * 100,
                     model_interdomain_bytes=2 * g * 4 * 1380 * 100, state_map_cache=5, state_cc_chunks=5,
                     state_repl_entries=0, state_mroutes=0) for c in ("star", "tree") for g in (1, 10) for m in both]
        rows += [_row(name, m, [10] * 4, part="join", cache=c, join_delay_s=0.01, interdomain_bytes=1,
                      model_interdomain_bytes=1) for m in both for c in ("cold", "warm")]
    elif name == "loss":  # issue 12: per-client loss and its correlation against the loss rate
        rows = [_row(name, m, [10] * 4, loss_permille=lp, client_loss_mean=lp / 1000, client_loss_min=0.0,
                     client_loss_max=lp / 500, model_client_loss=lp / 1000, corr_within_as=0.5, corr_across_as=0.0,
                     model_corr_within=0.5) for m in both for lp in (0, 1, 10, 50)]
    elif name == "batch":  # issue 15: REF-LISTs against gamma (testbed.figures_batch)
        rows = [_row(name, m, [g] * 2, active_ases=2) for g in (1, 10, 100)
                for m in ("unicast", "corecast", "corecast-batch", "corecast-src")]
    elif name == "scale":  # issue 16: bring-up, memory, ITR CPU against j and k (testbed.figures_scale)
        rows = [_row(name, "corecast", [g] * j, point=f"j{j}-g{g}", j=j, target_gamma=g, bringup_s=0.1 * j,
                     teardown_s=0.02 * j, mem_delta_mib=15.0 * j, itr_cpu_s=1e-5 * g * j * 100, stream_s=2.0,
                     speed=0.5) for j in (2, 10) for g in (10, 100)]
    else:
        raise KeyError(name)
    return pd.DataFrame(rows)


def _nonempty(paths):
    assert [os.path.splitext(p)[1] for p in paths] == [".png", ".pdf"]
    for p in paths:
        assert os.path.getsize(p) > 1000, p
    with open(paths[0], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths[1], "rb") as fh:
        assert fh.read(5) == b"%PDF-"


@pytest.mark.parametrize("name", sorted(PLOTTERS))
def test_each_plotter_writes_png_and_pdf(tmp_path, name):
    paths = PLOTTERS[name](synthetic(name), {"experiment": name}, str(tmp_path / "figures"))
    assert [os.path.basename(p) for p in paths] == [f"{name}.png", f"{name}.pdf"]
    _nonempty(paths)


def test_plotters_cover_the_issue_experiments():
    assert {"demo", "gamma", "clients", "deployment", "distribution", "load", "join"} <= set(PLOTTERS)


def test_paired_savings_matches_model():
    df = synthetic("gamma")
    s = paired_savings(df, ["gamma", "clients", "chunk_bytes"]).set_index("gamma")
    assert s.loc[1.0, "model_savings"] == pytest.approx(1 - 1432 / 1380)
    assert s.loc[10.0, "model_savings"] == pytest.approx(1 - 2044 / 13800)
    assert (s["savings"] - s["model_savings"]).abs().max() < 0.01
    d = paired_savings(synthetic("deployment"), ["clients", "ases", "chunk_bytes"], ("capable_ases",))
    assert d.set_index("capable_ases")["model_savings"][0] == pytest.approx(0.0)


def test_missing_column_is_a_figure_error(tmp_path):
    with pytest.raises(FigureError, match="core_bytes"):
        figures.plot_demo(synthetic("demo").drop(columns=["core_bytes"]), {}, str(tmp_path))
    with pytest.raises(FigureError):
        figures.plot_join(synthetic("demo"), {}, str(tmp_path))
    with pytest.raises(FigureError, match="no measured points"):
        figures.plot_clients(synthetic("clients").iloc[0:0], {}, str(tmp_path))


def _graph(nas, k):
    nodes = [{"name": "src", "kind": "source", "as": "AS0"}, {"name": "x0", "kind": "xtr", "as": "AS0"},
             {"name": "c0", "kind": "core", "as": None}, {"name": "ms", "kind": "ms", "as": None}]
    links = [["src", "x0"], ["x0", "c0"], ["ms", "c0"]]
    for a in range(1, nas + 1):
        nodes += [{"name": f"x{a}", "kind": "xtr", "as": f"AS{a}"}, {"name": f"s{a}", "kind": "switch", "as": f"AS{a}"}]
        nodes += [{"name": f"h{a}_{i}", "kind": "client", "as": f"AS{a}"} for i in range(k)]
        links += [[f"x{a}", "c0"], [f"s{a}", f"x{a}"]] + [[f"h{a}_{i}", f"s{a}"] for i in range(k)]
    return {"nodes": nodes, "links": links, "capable": ["AS1"],
            "paths": {"data": ["src", "x0", "c0", "x1", "s1", "h1_0"], "ref": [["src", "x0", "c0", "x1"], ["x1", "s1", "h1_9"]]}}


@pytest.mark.parametrize("nas,k", [(4, 10), (20, 3), (1, 1)])
def test_draw_topology(tmp_path, nas, k):
    _nonempty(draw_topology(_graph(nas, k), str(tmp_path / "fig" / "topology")))


def test_draw_topology_rejects_bad_graph(tmp_path):
    with pytest.raises(ValueError):
        draw_topology({"links": []}, str(tmp_path / "t"))


def _store_run(root, name, df=None):
    run = RunDir.create(name, {"synthetic": True}, root=str(root))
    if df is not None:
        Measurements(run.measurements_path).extend(df.to_dict("records"))
    run.mark("complete")
    return run


def test_figures_command_on_tree(tmp_path, capsys):
    runs = {name: _store_run(tmp_path, name, synthetic(name)) for name in ("demo", "gamma")}
    _store_run(tmp_path, "topology", synthetic("demo"))  # no plotter here: skipped, not an error
    assert figures_command(str(tmp_path)) == 0
    out = capsys.readouterr().out.splitlines()
    for name, run in runs.items():
        for ext in ("png", "pdf"):
            path = os.path.join(run.figures, f"{name}.{ext}")
            assert path in out and os.path.getsize(path) > 1000
    assert any(line.startswith("skipped") and "topology" in line for line in out)
    assert len(out) == 5


def test_figures_command_bad_run_returns_1(tmp_path, capsys):
    _store_run(tmp_path, "demo")  # no measurements.csv
    assert figures_command(str(tmp_path)) == 1
    assert "no measurements.csv" in capsys.readouterr().out


def test_figures_command_missing_dir(tmp_path, capsys):
    assert figures_command(str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and len(err.strip().splitlines()) == 1


def test_figures_command_on_a_file_or_an_empty_dir_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert figures_command(str(tmp_path / "file")) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert figures_command(str(tmp_path / "empty")) == 2
    err = capsys.readouterr().err
    assert "no run directories" in err and len(err.strip().splitlines()) == 1


def test_run_json_of_stored_run_is_valid(tmp_path):
    run = _store_run(tmp_path, "demo", synthetic("demo"))
    info = json.loads(Path(run.run_json).read_text())
    assert info["status"] == "complete"
    assert pd.read_csv(run.measurements_path)["core_bytes"].tolist() == synthetic("demo")["core_bytes"].tolist()


def test_figures_command_draws_stored_topology(tmp_path, capsys):
    run = _store_run(tmp_path, "topology")  # the topology experiment: a graph, no measurements
    Path(run.path, "topology.json").write_text(json.dumps(_graph(3, 4)))
    assert figures_command(str(tmp_path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [os.path.join(run.figures, "topology.png"), os.path.join(run.figures, "topology.pdf")]
    Path(run.path, "topology.json").write_text("{broken")
    assert figures_command(str(tmp_path)) == 1


def test_load_with_engine_column_names(tmp_path):
    """The engine's names: stream_s, itr_cpu_s, etr_cpu_s, itr_rss_kib; rates derived from packets."""
    rows = [_row("load", m, [k] * 4, chunks=100, stream_s=10.0, itr_cpu_s=0.01 * k, etr_cpu_s=0.002 * k,
                 itr_rss_kib=30000, etr_rss_kib_max=28000) for m in ("unicast", "corecast") for k in (1, 10)]
    df = pd.DataFrame(rows)
    from testbed.figures_load import _load_columns
    d, dur, pps, cpu, rss = _load_columns(df)
    assert dur == "stream_s"
    assert cpu == ["itr_cpu_s", "etr_cpu_s"] and rss == ["itr_rss_kib", "etr_rss_kib_max"]
    uni40 = d[(d["mode"] == "unicast") & (d["clients"] == 40)].iloc[0]
    assert uni40[pps[0]] == pytest.approx(4000 / 10)       # 100 chunks x 40 clients in 10 s
    cc40 = d[(d["mode"] == "corecast") & (d["clients"] == 40)].iloc[0]
    assert cc40[pps[0]] == pytest.approx(4400 / 10)        # 4 DATA + 40 REF per chunk
    _nonempty(figures.plot_load(df, {"experiment": "load"}, str(tmp_path)))


def test_public_names_exist_and_stay_importable_from_figures():
    # __all__ listed plot_smoke, plot_p2p, plot_channel-change...: `from testbed.figures import *` raised
    namespace: dict = {}
    exec("from testbed.figures import *", namespace)
    assert {"PLOTTERS", "FigureError", "paired_savings", "plot_run", "plot_demo", "plot_gamma", "COLORS"} <= set(namespace)
    from testbed import figures_common, figures_traffic
    assert figures.FigureError is figures_common.FigureError and figures.plot_gamma is figures_traffic.plot_gamma
    assert figures.PLOTTERS["smoke"] is figures_traffic.plot_demo
