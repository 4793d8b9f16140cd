"""The committed reference results: complete runs whose figures ``corecast figures`` rebuilds from the CSVs alone."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from conftest import ROOT, corecast

REFERENCE = os.path.join(ROOT, "results", "reference")
EXPERIMENTS = ["demo", "smoke", "gamma", "clients", "deployment", "distribution", "load", "join", "topology",
               "attack", "compare", "loss"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_reference_run_complete_and_exact(name):
    run_dir = os.path.join(REFERENCE, name)
    run = json.load(open(os.path.join(run_dir, "run.json")))
    assert run["experiment"] == name and run["status"] == "complete"
    if name == "topology":  # no stream: the graph it draws is stored instead
        assert json.load(open(os.path.join(run_dir, "topology.json")))["nodes"]
        return
    df = pd.read_csv(os.path.join(run_dir, "measurements.csv"))
    streams = df[df["expected_chunks"] > 0]
    if name == "attack":  # streams that must be whole: attacks 1-7 with the defence on, all with on+sav
        streams = streams[((streams["row_kind"] == "stream") & (streams["defence"] == "on"))
                          | (streams["defence"] == "on+sav")]
    if name == "compare":  # join rows are per joined client (as in join)
        streams = streams[streams["part"] == "bytes"]
    if name == "loss":  # with loss, missing chunks are results; at loss 0 every chunk arrives
        streams = streams[streams["loss_permille"] == 0]
    assert len(streams) > 0
    assert (streams["corrupt_chunks"] == 0).all()
    if name != "join":  # join rows are per joined client, each with its own expected count
        assert (streams["delivered_chunks"] == streams["expected_chunks"]).all()
        assert (streams["core_bytes"] == streams["model_core_bytes"]).all()


def test_figures_rebuilt_from_reference_alone(tmp_path):
    copy = tmp_path / "reference"
    shutil.copytree(REFERENCE, copy)
    for fig in copy.glob("*/figures/*"):
        fig.unlink()
    res = corecast("figures", str(copy))
    assert res.returncode == 0, res.stdout + res.stderr
    for name in EXPERIMENTS:
        figs = list((copy / name / "figures").glob("*"))
        assert any(f.suffix == ".png" and f.stat().st_size > 10_000 for f in figs), name
        assert any(f.suffix == ".pdf" and f.stat().st_size > 5_000 for f in figs), name


def test_gamma_reference_shows_the_papers_claims():
    df = pd.read_csv(os.path.join(REFERENCE, "gamma", "measurements.csv"))
    by = df.pivot_table(index="gamma", columns="mode", values="core_bytes")
    assert by.loc[1.0, "corecast"] > by.loc[1.0, "unicast"]          # gamma = 1 is detrimental
    assert by.loc[10.0, "corecast"] < 0.2 * by.loc[10.0, "unicast"]
    assert by.index.max() >= 100 and df["clients"].max() >= 1000


def test_attack_reference_shows_what_the_defence_buys():
    df = pd.read_csv(os.path.join(REFERENCE, "attack", "measurements.csv"))
    attacks = df[df["row_kind"] == "attack"].pivot_table(index="attack", columns="defence", values="reached_packets")
    assert len(attacks) == 8
    assert (attacks.drop(index="forged-spoof")["on"] == 0).all()  # forged-spoof: open (docs/security.md)
    assert (attacks["on+sav"] == 0).all() and (attacks["off"] > 0).all()
    amp = df[df["row_kind"] == "attack"].pivot_table(index="attack", columns="defence", values="amplification")
    assert amp.loc["etr-outsider", "off"] > 16 and amp.loc["oversized", "off"] > 90


def test_compare_reference_reaches_k_1000_on_both_cores():
    df = pd.read_csv(os.path.join(REFERENCE, "compare", "measurements.csv"))
    b = df[df["part"] == "bytes"]
    assert set(b["core"]) == {"star", "tree"} and b["clients"].max() >= 1000
    assert {"unicast", "corecast"} <= set(b["mode"])
    assert (b["interdomain_bytes"] == b["model_interdomain_bytes"]).all()
    j = df[df["part"] == "join"]
    assert {"cold", "warm"} <= set(j["cache"]) and j["join_delay_s"].notna().all()
    assert set(j["mode"]) == set(b["mode"])  # every mode's join delay, (S,G) joins (lispmc, ipmc) included
    sg = j[j["mode"].isin(["lispmc", "ipmc"])]
    assert len(sg) == 12 and (sg["eid_delivered"] == sg["eid_expected"]).all() and (sg["graft_extra_bytes"] >= 0).all()


def test_loss_reference_shows_corecast_losses_shared_within_an_as():
    df = pd.read_csv(os.path.join(REFERENCE, "loss", "measurements.csv"))
    assert sorted(set(df["loss_permille"])) == [0, 1, 10, 50] and (df["corrupt_chunks"] == 0).all()
    five = df[df["loss_permille"] == 50].set_index("mode")
    assert five.loc["corecast", "corr_within_as"] > 0.3 > abs(five.loc["unicast", "corr_within_as"])
    assert five.loc["corecast", "client_loss_mean"] > 1.5 * five.loc["unicast", "client_loss_mean"]
    per = pd.read_csv(os.path.join(REFERENCE, "loss", "loss_clients.csv"))
    assert (per[per["loss_permille"] == 0]["lost"] == 0).all()
