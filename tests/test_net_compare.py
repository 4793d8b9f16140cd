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


def test_compare_times_sg_joins_of_lispmc_and_ipmc(tmp_path):
    """lispmc and ipmc: the clients' own (S,G) joins timed cold and warm (they used to be skipped).

    One warm join (a second host of AS 1, whose LAN already carries the channel) and one cold
    join (the first receiver of AS 2) per mode: each got its first chunk, every chunk from then
    on arrived intact, and the stream's bytes equal the model fed with that audience.
    """
    out = tmp_path / "compare"
    res = corecast("run", "compare", "--set", "ases=2", "--set", "gammas=1", "--set", "cores=star",
                   "--set", "chunks=5", "--set", "join_reps=1", "--set", "modes=lispmc,ipmc",
                   "--out", str(out), timeout=2400)  # up to CORECAST_LOCK_WAIT (1800 s) for the lock, then ~40 s
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "SKIPPED" not in res.stdout
    df = pd.read_csv(out / "measurements.csv")
    j = df[df["part"] == "join"]
    assert sorted(zip(j["mode"], j["cache"])) == [("ipmc", "cold"), ("ipmc", "warm"), ("lispmc", "cold"),
                                                   ("lispmc", "warm")]
    assert j["join_delay_s"].notna().all() and (j["join_delay_s"] > 0).all()
    assert (j["transit_s"] >= 0).all()  # (wait_s may be < 0: a chunk already in flight at the join)
    assert (j["eid_delivered"] == j["eid_expected"]).all() and (j["eid_expected"] > 0).all()
    assert (j["delivered_chunks"] == j["expected_chunks"]).all() and (j["corrupt_chunks"] == 0).all()
    assert (j["core_bytes"] == j["model_core_bytes"]).all()
    assert (j["graft_extra_bytes"] >= 0).all() and (j["graft_extra_bytes"] <= 64 + 1316).all()  # one cold join
    assert leftovers() == ([], [])
