"""The committed P2P reference results (issue 14): complete, self-consistent, and showing the issue's claims."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd

from conftest import ROOT, corecast

REFERENCE = os.path.join(ROOT, "results", "reference")
NAMES = ["p2p", "p2p-upload", "channel-change"]


def _df(name: str) -> pd.DataFrame:
    run = json.load(open(os.path.join(REFERENCE, name, "run.json")))
    assert run["experiment"] == name and run["status"] == "complete"
    return pd.read_csv(os.path.join(REFERENCE, name, "measurements.csv"))


def test_p2p_reference_is_exact_and_locality_saves():
    df = _df("p2p")
    p2p = df[df["mode"] == "p2p"]
    base = df[df["mode"] != "p2p"]
    assert (p2p["links_self_mismatches"] == 0).all() and (p2p["corrupt_chunks"] == 0).all()
    assert (p2p["interdomain_bytes"] == 2 * p2p["xas_wire_bytes"]).all()
    assert (p2p["delivered_chunks"] == p2p["expected_chunks"]).all()
    assert (base["delivered_chunks"] == base["expected_chunks"]).all()
    assert (base["core_bytes"] == base["model_core_bytes"]).all()
    by = p2p.pivot_table(index="gamma", columns="policy", values="interdomain_bytes")
    assert (by.loc[by.index >= 5, "local"] < by.loc[by.index >= 5, "random"]).all()


def test_p2p_upload_reference_continuity_below_one_only_under_1x():
    df = _df("p2p-upload").sort_values("upload")
    assert list(df["upload"]) == [0.8, 1.0, 1.5, 3.0]
    assert df.iloc[0]["continuity"] < 1.0
    assert (df[df["upload"] >= 1.5]["continuity"] == 1.0).all()
    assert (df["links_self_mismatches"] == 0).all() and (df["corrupt_chunks"] == 0).all()


def test_channel_change_reference_p2p_slower_than_corecast():
    df = _df("channel-change")
    joins = df[df["row_kind"] == "join"]
    med = joins.groupby("mode")["join_delay_s"].median()
    assert set(med.index) == {"unicast", "corecast", "p2p"}
    assert med["p2p"] > 10 * med["corecast"]


def test_p2p_figures_rebuilt_from_the_csvs_alone(tmp_path):
    for name in NAMES:
        shutil.copytree(os.path.join(REFERENCE, name), tmp_path / name)
        for fig in (tmp_path / name / "figures").glob("*"):
            fig.unlink()
    res = corecast("figures", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    for name in NAMES:
        figs = list((tmp_path / name / "figures").glob("*"))
        assert any(f.suffix == ".png" and f.stat().st_size > 10_000 for f in figs), name
        assert any(f.suffix == ".pdf" and f.stat().st_size > 5_000 for f in figs), name
