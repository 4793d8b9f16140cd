"""The scale experiment (issue 16 item 4): its parameters and figure without namespaces, and a tiny run
(j = 3 and 12 at gamma 2) through real namespaces so CI exercises the whole code path."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from conftest import corecast, leftovers
from experiments import EXPERIMENTS, scale
from testbed.experiment import parse_experiment_params
from testbed.nodeutil import ConfigError

COLUMNS = ("bringup_s", "teardown_s", "point_s", "mem_base_mib", "mem_peak_mib", "mem_delta_mib", "itr_cpu_s",
           "itr_cpu_pct", "warmup_delivered", "stream_s", "speed", "j", "target_gamma")


def test_default_points_reach_1000_ases_and_100000_clients():
    params = parse_experiment_params(EXPERIMENTS["scale"], [])
    pts = scale.points(params)
    assert [(p.topo["ases"], p.topo["total"]) for p in pts] == [
        (10, 100), (10, 1000), (100, 1000), (500, 5000), (100, 10_000), (1000, 10_000), (500, 50_000),
        (1000, 100_000)]
    big = pts[-1]
    assert big.label == "j1000-g100" and big.speed == round(15000 / (100_001 * 1_000_000 / (8 * 1316)), 4) > 0
    assert params["modes"] == "corecast" and params["chunks"] == 5


@pytest.mark.parametrize("sets, words", [
    (["js=10,20", "gammas=10000"], "at most 100,000"),
    (["js=4001"], "outside 1..4000"),
    (["js=10,10"], "twice"),
    (["ases=5"], "set by this experiment's sweep"),
    (["mem_interval_s=0"], "mem_interval_s"),
    (["gammas=0.5"], "outside 1"),
    (["warmup_chunks=101"], "warmup_chunks"),
])
def test_bad_parameters_are_one_line_errors(sets, words):
    with pytest.raises(ConfigError) as err:
        parse_experiment_params(EXPERIMENTS["scale"], sets)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_memory_peak_samples_proc_meminfo(tmp_path, monkeypatch):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       1048576 kB\nMemFree: 1 kB\nMemAvailable:    524288 kB\n")
    monkeypatch.setattr(scale, "MEMINFO", str(info))
    assert scale.used_mib() == 512.0
    with scale.MemoryPeak(0.05) as mem:
        info.write_text("MemTotal:       1048576 kB\nMemAvailable:    262144 kB\n")
        deadline = time.monotonic() + 30  # the sampler thread's turn (0.05 s idle; a fixed 0.5 s under load)
        while mem.peak < 768.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        info.write_text("MemTotal:       1048576 kB\nMemAvailable:    524288 kB\n")
    assert (mem.base, mem.peak) == (512.0, 768.0)
    info.write_text("garbage\n")
    assert scale.used_mib() == 0.0


def test_figure_from_rows(tmp_path):
    from testbed.figures_scale import plot_scale
    rows = []  # the first point's stream cost 0 CPU ticks (too short): panel (c) goes linear, no warning
    for j, g in ((10, 10), (10, 100), (100, 10), (100, 100)):
        k = j * g
        rows.append({"mode": "corecast", "point": f"j{j}-g{g}", "j": j, "target_gamma": g, "clients": k,
                     "chunks": 5, "bringup_s": 0.1 * j, "teardown_s": 0.05 * j, "mem_delta_mib": 3.0 * j,
                     "mem_peak_mib": 1000 + 3.0 * j, "itr_cpu_s": 1e-5 * k if k > 100 else 0.0, "stream_s": 2.0,
                     "core_bytes": 5 * (j * 1364 + k * 68), "model_core_bytes": 5 * (j * 1364 + k * 68),
                     "delivered_chunks": 5 * k, "expected_chunks": 5 * k, "speed": 0.5})
    paths = plot_scale(pd.DataFrame(rows), {}, str(tmp_path))
    assert sorted(p.rsplit(".", 1)[1] for p in paths) == ["pdf", "png"]
    assert all((tmp_path / f"scale.{e}").stat().st_size > 10_000 for e in ("png", "pdf"))


@pytest.mark.net
def test_tiny_scale_run_every_chunk_delivered_and_core_bytes_on_the_model(tmp_path):
    out = tmp_path / "scale"
    res = corecast("run", "scale", "--out", str(out), "--set", "js=3,12", "--set", "gammas=2", "--set", "chunks=3",
                   timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    df = pd.read_csv(out / "measurements.csv")
    assert list(df["point"]) == ["j3-g2", "j12-g2"] and list(df["mode"]) == ["corecast", "corecast"]
    assert list(df["clients"]) == [6, 24] and list(df["active_ases"]) == [3, 12]
    assert (df["delivered_chunks"] == df["expected_chunks"]).all() and list(df["expected_chunks"]) == [18, 72]
    assert (df["corrupt_chunks"] == 0).all()
    assert list(df["warmup_delivered"]) == list(df["warmup_expected"]) == [12, 48]  # 2 chunks, not recorded
    assert list(df["core_bytes"]) == list(df["model_core_bytes"]) == [3 * (3 * 1364 + 6 * 68), 3 * (12 * 1364 + 24 * 68)]
    for col in COLUMNS:
        assert df[col].notna().all(), col
    assert (df["bringup_s"] > 0).all() and (df["teardown_s"] > 0).all() and (df["itr_cpu_s"] >= 0).all()
    assert (df["mem_peak_mib"] >= df["mem_base_mib"]).all() and (df["mem_base_mib"] > 0).all()
    assert (df["point_s"] >= df["bringup_s"] + df["stream_s"]).all()
    assert (out / "figures" / "scale.png").stat().st_size > 10_000
    assert leftovers() == ([], [])
    again = corecast("figures", str(out), timeout=300)
    assert again.returncode == 0 and "scale.png" in again.stdout


def test_reference_runs_complete_exact_and_rebuild(tmp_path):
    import os
    import shutil
    from conftest import ROOT
    ref = os.path.join(ROOT, "results", "reference", "scale")
    runs = sorted(d for d in os.listdir(ref) if os.path.isfile(os.path.join(ref, d, "run.json")))
    assert {"small", "j1000", "j500g100", "j1000g100"} <= set(runs)  # j = 1,000 and k = 100,000 reached
    big = pd.read_csv(os.path.join(ref, "j1000g100", "measurements.csv"))
    assert (big["active_ases"] == 1000).all() and (big["clients"] == 100_000).all()
    for name in runs:
        run = json.loads(open(os.path.join(ref, name, "run.json")).read())
        assert run["experiment"] == "scale" and run["status"] == "complete", name
        df = pd.read_csv(os.path.join(ref, name, "measurements.csv"))
        assert (df["delivered_chunks"] == df["expected_chunks"]).all() and (df["corrupt_chunks"] == 0).all(), name
        assert (df["core_bytes"] == df["model_core_bytes"]).all(), name
        assert (df["bringup_s"] > 0).all() and (df["mem_peak_mib"] > df["mem_base_mib"]).all(), name
    copy = tmp_path / "scale"
    shutil.copytree(ref, copy)
    for fig in copy.glob("*/figures/*"):
        fig.unlink()
    res = corecast("figures", str(copy), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert all((copy / name / "figures" / "scale.png").stat().st_size > 10_000 for name in runs)
    assert (copy / "figures" / "scale.png").stat().st_size > 10_000  # every run's points together
    assert f"{copy}/figures/scale.png" in res.stdout
