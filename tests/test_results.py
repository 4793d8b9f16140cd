"""Run directories and measurements.csv: layout, run.json, status transitions, atomic writes."""

import json
import os
from pathlib import Path
import re

import pandas as pd
import pytest

from testbed.nodeutil import ConfigError
from testbed.results import (
    REQUIRED_COLUMNS,
    Measurements,
    RunDir,
    find_runs,
    latest_run,
    load_measurements,
)


def _row(**extra):
    row = {c: 0 for c in REQUIRED_COLUMNS}
    row.update(experiment="demo", mode="unicast", gamma=10.0)
    row.update(extra)
    return row


def _tmp_files(path):
    return [n for _d, _s, files in os.walk(path) for n in files if n.startswith(".tmp-")]


def test_create_layout_and_run_json(tmp_path):
    run = RunDir.create("demo", {"seconds": 30, "mode": ["unicast", "corecast"]}, root=str(tmp_path))
    rel = os.path.relpath(run.path, tmp_path)
    assert re.fullmatch(r"demo/\d{8}T\d{6}Z", rel), rel
    for sub in ("logs", "figures", "config"):
        assert os.path.isdir(os.path.join(run.path, sub))
    assert not os.path.exists(run.pcap)
    info = json.loads(Path(run.run_json).read_text())
    assert info["experiment"] == "demo"
    assert info["parameters"] == {"seconds": 30, "mode": ["unicast", "corecast"]}
    assert info["status"] == "running"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["started"])
    assert info["finished"] is None
    assert info["git"]["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", info["git"]["commit"])
    for key in ("python", "mininet", "kernel", "scapy"):
        assert key in info["versions"]
    assert info["versions"]["python"].count(".") == 2
    assert _tmp_files(tmp_path) == []


def test_same_second_gets_suffix(tmp_path):
    a = RunDir.create("x", {}, root=str(tmp_path))
    b = RunDir.create("x", {}, root=str(tmp_path))
    assert a.path != b.path
    assert os.path.isfile(a.run_json) and os.path.isfile(b.run_json)


def test_out_and_pcap(tmp_path):
    out = tmp_path / "mine"
    run = RunDir.create("gamma", {}, out=str(out), pcap=True)
    assert run.path == str(out)
    assert os.path.isdir(out / "pcap")
    with pytest.raises(ConfigError):
        RunDir.create("gamma", {}, out=str(out))


def test_context_complete(tmp_path):
    with RunDir.create("demo", {}, root=str(tmp_path)) as run:
        assert RunDir.open(run.path).status == "running"
    info = RunDir.open(run.path).info
    assert info["status"] == "complete"
    assert info["finished"] is not None and info["duration_s"] >= 0
    assert info["error"] is None


def test_context_keyboard_interrupt_incomplete_and_reraised(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with RunDir.create("demo", {}, root=str(tmp_path)) as run:
            raise KeyboardInterrupt
    assert RunDir.open(run.path).status == "incomplete"
    assert _tmp_files(tmp_path) == []


def test_context_exception_failed(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir.create("demo", {}, root=str(tmp_path)) as run:
            raise RuntimeError("tcpdump died\nsecond line")
    info = RunDir.open(run.path).info
    assert info["status"] == "failed"
    assert info["error"] == "RuntimeError: tcpdump died"


def test_explicit_mark_kept_on_normal_exit(tmp_path):
    with RunDir.create("demo", {}, root=str(tmp_path)) as run:
        run.mark("incomplete", error="stopped after point 3")
        run.update(summary={"points": 3})
    info = RunDir.open(run.path).info
    assert info["status"] == "incomplete"
    assert info["summary"] == {"points": 3}
    with pytest.raises(ValueError):
        run.mark("done")


def test_open_missing_or_bad(tmp_path):
    with pytest.raises(ConfigError):
        RunDir.open(str(tmp_path))
    (tmp_path / "run.json").write_text("{half")
    with pytest.raises(ConfigError):
        RunDir.open(str(tmp_path))


def test_measurements_columns_and_reload(tmp_path):
    path = tmp_path / "measurements.csv"
    m = Measurements(str(path))
    m.append(_row(point=1, core_bytes=55200))
    m.append(_row(mode="corecast", point=2, core_bytes=8176, cpu_itr_s=0.25, note=None))
    df = pd.read_csv(path)
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert list(df.columns[len(REQUIRED_COLUMNS):]) == ["point", "cpu_itr_s", "note"]
    assert df["core_bytes"].tolist() == [55200, 8176]
    assert df["mode"].tolist() == ["unicast", "corecast"]
    assert pd.isna(df.loc[0, "cpu_itr_s"]) and df.loc[1, "cpu_itr_s"] == 0.25
    assert df["gamma"].tolist() == [10.0, 10.0]
    assert load_measurements(str(tmp_path)).equals(df)
    assert m.frame().equals(df)
    assert _tmp_files(tmp_path) == []
    # reopening continues the same table
    m2 = Measurements(str(path))
    assert len(m2) == 2
    m2.append(_row(point=3))
    assert pd.read_csv(path)["point"].tolist() == [1, 2, 3]


def test_measurements_row_missing_required_column(tmp_path):
    m = Measurements(str(tmp_path / "m.csv"))
    row = _row()
    del row["core_bytes"]
    with pytest.raises(ValueError, match="core_bytes"):
        m.append(row)
    assert not (tmp_path / "m.csv").exists()


def test_measurements_file_whole_after_each_row(tmp_path):
    path = tmp_path / "m.csv"
    m = Measurements(str(path))
    for i in range(5):
        m.append(_row(point=i, clients_per_as=[i, i + 1]))
        lines = path.read_text().splitlines()
        assert len(lines) == i + 2
        assert all(line.count(",") >= len(REQUIRED_COLUMNS) for line in lines[1:])
    assert json.loads(pd.read_csv(path)["clients_per_as"][4]) == [4, 5]


def test_latest_run_and_find_runs(tmp_path):
    root = str(tmp_path)
    assert latest_run("gamma", root) is None
    base = tmp_path / "gamma"
    for name, status in (("20240101T000000Z", "complete"), ("20240102T000000Z", "failed"),
                         ("20240101T000000Z-2", "complete")):
        (base / name).mkdir(parents=True)
        (base / name / "run.json").write_text(json.dumps({"experiment": "gamma", "status": status}))
    (base / "20250101T000000Z").mkdir()  # no run.json: not a run
    assert latest_run("gamma", root) == str(base / "20240102T000000Z")
    assert latest_run("gamma", root, status="complete") == str(base / "20240101T000000Z-2")
    assert find_runs(root) == sorted(str(base / n) for n in
                                     ("20240101T000000Z", "20240101T000000Z-2", "20240102T000000Z"))
