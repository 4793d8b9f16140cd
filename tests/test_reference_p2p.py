"""The committed P2P reference results (issue 14): complete, self-consistent, and showing the issue's claims."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd

from conftest import ROOT, corecast

REFERENCE = os.path.join(ROOT, "results", "reference")
NAMES = ["p2p", "p2p-upload", "channel-change", "p2p-scale"]


def _df(name: str, experiment: str | None = None) -> pd.DataFrame:
    run = json.load(open(os.path.join(REFERENCE, name, "run.json")))
    assert run["experiment"] == (experiment or name) and run["status"] == "complete"
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


def test_p2p_reference_model_within_a_quarter_of_the_measured_points():
    """The model (chunk copies + control, docs/model.md "P2P") against every measured P2P point; the rows carry
    the senders' split of what crossed ASes (chunk copies and control), which must add up to the links' bytes."""
    p2p = _df("p2p").query("mode == 'p2p'")
    err = p2p["model_p2p_interdomain_bytes"] / p2p["interdomain_bytes"] - 1
    assert (err.abs() < 0.25).all(), err.tolist()
    assert (p2p["xas_chunk_wire_bytes"] < p2p["xas_wire_bytes"]).all()
    assert (p2p["model_p2p_chunk_bytes"] < p2p["model_p2p_interdomain_bytes"]).all()


def test_p2p_scale_reference_500_peers_in_20_ases():
    """Issue 14 acceptance item 4: 500 peers in 20 ASes (25 per peer host) in one run, every chunk played."""
    df = _df("p2p-scale", "p2p")
    assert list(df["policy"]) == ["random", "local"]
    assert (df["clients"] == 500).all() and (df["active_ases"] == 20).all() and (df["peers_started"] == 500).all()
    assert (df["continuity"] == 1.0).all() and (df["missed"] == 0).all()
    assert (df["delivered_chunks"] == df["expected_chunks"]).all() and (df["unplayed_chunks"] == 0).all()
    assert (df["links_self_mismatches"] == 0).all() and (df["corrupt_chunks"] == 0).all()
    assert (df["interdomain_bytes"] == 2 * df["xas_wire_bytes"]).all()
    random, local = df.iloc[0], df.iloc[1]
    assert local["interdomain_bytes"] < random["interdomain_bytes"]


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
