"""The batch experiment's reference results (issue 15): complete, exact, the floor ratios, figure rebuilt."""

import json
import os
import shutil

import pandas as pd

from conftest import ROOT, corecast

RUN = os.path.join(ROOT, "results", "reference", "batch")


def test_batch_reference_is_complete_exact_and_near_the_floor():
    run = json.load(open(os.path.join(RUN, "run.json")))
    assert run["experiment"] == "batch" and run["status"] == "complete"
    df = pd.read_csv(os.path.join(RUN, "measurements.csv"))
    assert set(df["mode"]) == {"unicast", "corecast", "corecast-batch", "corecast-src"}
    assert (df["delivered_chunks"] == df["expected_chunks"]).all() and (df["corrupt_chunks"] == 0).all()
    assert (df["core_bytes"] == df["model_core_bytes"]).all()
    src = df[df["mode"] == "corecast-src"].set_index("gamma")
    ratio = src["core_bytes"] / src["chunks"] / (src["active_ases"] * (48 + src["chunk_bytes"]))
    # one DATA and one REF-MAP per ETR (36 + 40 + ceil(gamma / 8) bytes): within 1.10x of the floor (docs/model.md)
    assert round(ratio[10.0], 3) == 1.057 and ratio[10.0] <= 1.10
    assert round(ratio[100.0], 3) == 1.065 and ratio[100.0] <= 1.10
    refs = df[(df["mode"] == "corecast-src") & (df["gamma"] == 100.0)].iloc[0]
    assert refs["ref_packets"] == refs["chunks"] * refs["active_ases"]  # one REF-MAP per ETR per chunk


def test_batch_figure_rebuilt_from_the_reference_alone(tmp_path):
    copy = tmp_path / "batch"
    shutil.copytree(RUN, copy, ignore=shutil.ignore_patterns("figures"))
    res = corecast("figures", str(copy), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (copy / "figures" / "batch.png").stat().st_size > 10_000
