"""Namespace tests of CoreCast end to end (issue 6): both modes through real xTRs, byte for byte."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import corecast, leftovers

pytestmark = pytest.mark.net


def run_smoke(tmp_path, name: str, *sets: str) -> pd.DataFrame:
    """``corecast run smoke`` with extra --set items; it exits 0 only if every client got every chunk
    intact and measured core bytes equal the model. Returns the rows by mode."""
    out = tmp_path / name
    args = ["run", "smoke", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    res = corecast(*args, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    df = pd.read_csv(out / "measurements.csv").set_index("mode")
    assert leftovers() == ([], [])
    return df


def test_default_topology_both_modes_exact_and_gamma10_saves_over_80_percent(tmp_path):
    df = run_smoke(tmp_path, "default", "ases=4", "clients=10", "chunks=200", "speed=10")
    for mode in ("unicast", "corecast"):
        row = df.loc[mode]
        assert row.delivered_chunks == row.expected_chunks == 200 * 40
        assert row.corrupt_chunks == 0 and bool(row.all_exact)
        assert row.core_bytes == row.model_core_bytes
    assert df.loc["unicast", "core_bytes"] == 200 * 40 * (64 + 1316)
    assert df.loc["corecast", "core_bytes"] == 200 * (4 * (48 + 1316) + 40 * 68)
    assert df.loc["corecast", "core_bytes"] < 0.2 * df.loc["unicast", "core_bytes"]


def test_mixed_deployment_falls_back_to_unicast(tmp_path):
    df = run_smoke(tmp_path, "mixed", "ases=4", "clients=3", "capable=1,3", "chunks=150", "speed=10")
    cc = df.loc["corecast"]
    assert cc.data_packets == 150 * 2 and cc.ref_packets == 150 * 6 and cc.unicast_packets == 150 * 6
    assert cc.core_bytes == 150 * (2 * (48 + 1316) + 6 * 68 + 6 * (64 + 1316))
    assert cc.delivered_chunks == cc.expected_chunks == 150 * 12


def test_gamma_one_corecast_costs_more(tmp_path):
    df = run_smoke(tmp_path, "gamma1", "ases=3", "clients=1", "chunks=150", "speed=10")
    assert df.loc["corecast", "core_bytes"] > df.loc["unicast", "core_bytes"]


def test_many_clients_host_equals_host_per_client(tmp_path):
    a = run_smoke(tmp_path, "perclient", "ases=2", "clients=6", "chunks=100", "speed=10", "client_hosts=per-client")
    b = run_smoke(tmp_path, "peras", "ases=2", "clients=6", "chunks=100", "speed=10", "client_hosts=per-as")
    for mode in ("unicast", "corecast"):
        assert a.loc[mode, "core_bytes"] == b.loc[mode, "core_bytes"]
        assert a.loc[mode, "core_packets"] == b.loc[mode, "core_packets"]
        assert b.loc[mode, "delivered_chunks"] == b.loc[mode, "expected_chunks"] == 1200


def test_real_player_decodes_every_frame_through_corecast(tmp_path):
    df = run_smoke(tmp_path, "player", "ases=1", "clients=2", "chunks=250", "speed=4", "player=true",
                   "content=ffmpeg")
    for mode in ("unicast", "corecast"):
        assert df.loc[mode, "source_frames"] > 0
        assert df.loc[mode, "player_frames"] == df.loc[mode, "source_frames"]
