"""Namespace tests of the compare and loss experiments (issue 12 items 5-7): tiny runs, < 60 s together."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import corecast, leftovers
from testbed.routerstate import COLUMNS

pytestmark = pytest.mark.net


def test_tiny_compare_has_bytes_state_and_join_rows(tmp_path):
    """Two modes, one gamma, star core: full delivery, bytes equal to the model, router-state columns filled."""
    out = tmp_path / "compare"
    res = corecast("run", "compare", "--set", "ases=2", "--set", "gammas=2", "--set", "cores=star",
                   "--set", "chunks=5", "--set", "join_reps=1", "--set", "modes=unicast,corecast",
                   "--out", str(out), timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    df = pd.read_csv(out / "measurements.csv")
    b = df[df["part"] == "bytes"]
    assert list(b["mode"]) == ["unicast", "corecast"] and set(b["core"]) == {"star"}
    assert (b["delivered_chunks"] == b["expected_chunks"]).all()
    assert (b["core_bytes"] == b["model_core_bytes"]).all()
    assert (b["interdomain_bytes"] == b["model_interdomain_bytes"]).all()
    assert set(COLUMNS) <= set(df.columns)
    cc = b[b["mode"] == "corecast"].iloc[0]
    assert cc["state_itr_map_cache"] >= 2          # both client ASes resolved at the source ITR
    assert cc["state_cc_chunks"] >= 3              # the ITR's current chunk + one per client ETR
    assert cc["state_ms_registrations"] >= 3       # x0, x1, x2 registered
    assert cc["state_mroutes"] == 0                # no pimd on a star core
    j = df[df["part"] == "join"]
    assert set(j["cache"]) == {"cold", "warm"} and j["join_delay_s"].notna().all()
    assert (out / "figures" / "compare.png").is_file()
    assert leftovers() == ([], [])


def test_tiny_loss_zero_delivers_all_five_percent_loses_some(tmp_path):
    """At loss 0 every chunk arrives; at 5 % some are lost, the run still passes, losses per client."""
    out = tmp_path / "loss"
    res = corecast("run", "loss", "--set", "ases=2", "--set", "clients=3", "--set", "losses=0,50",
                   "--set", "chunks=100", "--set", "modes=unicast,corecast", "--out", str(out), timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    df = pd.read_csv(out / "measurements.csv")
    assert len(df) == 4 and (df["corrupt_chunks"] == 0).all()
    zero, five = df[df["loss_permille"] == 0], df[df["loss_permille"] == 50]
    assert (zero["delivered_chunks"] == zero["expected_chunks"]).all() and (zero["dropped_datagrams"] == 0).all()
    assert (five["delivered_chunks"] < five["expected_chunks"]).all() and (five["dropped_datagrams"] > 0).all()
    assert (five["core_bytes"] == five["model_core_bytes"]).all()  # the source uplink is before the drops
    per = pd.read_csv(out / "loss_clients.csv")
    assert len(per) == 4 * 6 and (per[per["loss_permille"] == 0]["lost"] == 0).all()
    assert per[per["loss_permille"] == 50]["lost"].sum() > 0
    assert (out / "figures" / "loss.png").is_file()
    assert leftovers() == ([], [])
