"""Every bench script's command line is checked before it takes the testbed lock, builds a network or measures
anything (bench/args.py); a degenerate result never overwrites a committed docs/bench-results file."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.fixture(scope="module")
def bench_corecast():
    sys.path.insert(0, BENCH)
    try:
        yield importlib.import_module("bench_corecast")
    finally:
        sys.path.remove(BENCH)


@pytest.mark.parametrize("argv, flag", [
    (["--rounds", "0"], "--rounds"), (["--rounds", "-1"], "--rounds"), (["--seconds", "0"], "--seconds"),
    (["--seconds", "nan"], "--seconds"), (["--clients", "0"], "--clients"), (["--max-trials", "0"], "--max-trials"),
    (["--core-rounds", "-1"], "--core-rounds"), (["--mode", "foo"], "--mode"), (["--mode", ","], "--mode"),
])
def test_bad_arguments_exit_2_with_one_error_line(bench_corecast, capsys, argv, flag):
    """--rounds 0 ran the core rounds, took the lock, brought a network up and died with an IndexError."""
    with pytest.raises(SystemExit) as exc:
        bench_corecast.parse_args(argv)
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flag in errors[0]


def test_good_arguments_pass(bench_corecast):
    args = bench_corecast.parse_args(["--rounds", "2", "--mode", "all", "--core-rounds", "0"])
    assert args.rounds == 2 and args.cc_modes == ["corecast", "corecast-batch", "corecast-src"]


# --- every script in bench/: a bad value is exit 2 and one line, before any work, lock or network -------------

ROOT = os.path.dirname(BENCH)
BAD = [  # (script, argv, text the one error line names)
    ("bench_batch.py", ["--rounds", "0"], "--rounds"), ("bench_batch.py", ["--ases", "251"], "--ases"),
    ("bench_cluster_tunnel.py", ["--count", "0"], "--count"),
    ("bench_core_tree.py", ["--runs", "0"], "--runs"), ("bench_core_tree.py", ["--ases", "50,"], "--ases"),
    ("bench_corecast.py", ["--rounds", "0"], "--rounds"),
    ("bench_decode.py", ["--packets", "0"], "--packets"),
    ("bench_first_packet.py", ["--runs", "0"], "--runs"), ("bench_first_packet.py", ["--bad", "0"], "--bad"),
    ("bench_lispmc.py", ["--rounds", "0"], "--rounds"), ("bench_lispmc.py", ["--seconds", "nan"], "--seconds"),
    ("bench_lispmc.py", ["--etrs", "4,x"], "--etrs"),
    ("bench_lispmc_join.py", ["--rounds", "0"], "--rounds"),
    ("bench_lpm.py", ["--repeat", "0"], "--repeat"), ("bench_lpm.py", ["--prefixes", "0"], "--prefixes"),
    ("bench_mapserver.py", ["--rounds", "0"], "--rounds"), ("bench_mapserver.py", ["--timeout", "inf"], "--timeout"),
    ("bench_mapserver.py", ["--port", "70000"], "--port"), ("bench_mapserver.py", ["--server", "ms"], "--server"),
    ("bench_peer.py", ["--seconds", "-1"], "--seconds"), ("bench_peer.py", ["--peers", ""], "--peers"),
    ("bench_scale_memory.py", ["--client-procs", "0"], "--client-procs"),
    ("bench_scale_memory.py", ["--modes", "exec,spawn"], "--modes"),
    ("bench_scale_memory.py", ["--check", "20"], "--check"),
    ("bench_scale_memory.py", ["--ases", "5", "--client-procs", "6"], "--client-procs"),
    ("bench_topology.py", ["--runs", "0"], "--runs"), ("bench_topology.py", ["--check-runs", "-1"], "--check-runs"),
    ("bench_wire.py", ["--rounds", "0"], "--rounds"),
    ("bench_xtr.py", ["--max-trials", "0"], "--max-trials"), ("bench_xtr.py", ["--kernel-senders", "0"],
                                                               "--kernel-senders"),
    ("bench_xtr_core.py", ["--seconds", "0"], "--seconds"), ("bench_xtr_core.py", ["--clients", "0"], "--clients"),
    ("traffic.py", ["send", "1", "10.0.0.1", "nan", "5", "100", "5000", "6000"], "RATE"),
    ("traffic.py", ["recv", "0", "s", "r", "x"], "PORT"), ("traffic.py", ["flood"], "ROLE"),
]


def test_every_bench_script_is_covered():
    """A new bench script must join BAD (common.py, args.py and traffic_cc.py are libraries)."""
    scripts = {f for f in os.listdir(BENCH) if f.endswith(".py")} - {"common.py", "args.py", "traffic_cc.py"}
    assert scripts == {s for s, _, _ in BAD}


@pytest.mark.parametrize("script, argv, flag", BAD, ids=[f"{s}{' '.join(a)[:30]}" for s, a, _ in BAD])
def test_bench_script_refuses_a_bad_value_before_any_work(tmp_path, script, argv, flag):
    """bench_lpm --repeat 0 was a ValueError traceback; bench_lispmc --rounds 0 overwrote lispmc.json."""
    registry = tmp_path / "registry"
    env = dict(os.environ, CORECAST_REGISTRY=str(registry), CORECAST_LOCK_WAIT="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if "error:" in line or line.startswith("traffic:")]
    assert len(lines) == 1 and flag in lines[0], proc.stderr
    assert not registry.exists(), "the testbed lock's directory was touched"


# --- bench/args.py and the result-writing guard in bench/common.py --------------------------------------------

@pytest.fixture(scope="module")
def bench_args():
    sys.path.insert(0, BENCH)
    try:
        yield importlib.import_module("args"), importlib.import_module("common")
    finally:
        sys.path.remove(BENCH)


@pytest.mark.parametrize("make, text, value", [
    (lambda a: a.count(), "3", 3), (lambda a: a.count(0), "0", 0), (lambda a: a.seconds(), "0.1", 0.1),
    (lambda a: a.fraction(), "1", 1.0), (lambda a: a.count_list(1, 400), "4, 40,400", [4, 40, 400]),
    (lambda a: a.choice_list(("exec", "fork")), "fork,exec,fork", ["fork", "exec"]),
    (lambda a: a.ipv4, "192.0.2.1", "192.0.2.1"),
])
def test_checker_accepts(bench_args, make, text, value):
    assert make(bench_args[0])(text) == value


@pytest.mark.parametrize("make, text", [
    (lambda a: a.count(), "0"), (lambda a: a.count(), "1.5"), (lambda a: a.count(1, 5), "6"),
    (lambda a: a.count(0), "-1"), (lambda a: a.seconds(), "nan"), (lambda a: a.seconds(), "inf"),
    (lambda a: a.seconds(10), "11"), (lambda a: a.positive(), "0"), (lambda a: a.fraction(), "1.01"),
    (lambda a: a.fraction(), "nan"), (lambda a: a.count_list(), ""), (lambda a: a.count_list(), "4,"),
    (lambda a: a.count_list(), "4,0"), (lambda a: a.choice_list(("exec",)), "exec,"), (lambda a: a.ipv4, "1.2.3"),
])
def test_checker_refuses_with_one_line(bench_args, make, text):
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        make(bench_args[0])(text)
    assert "\n" not in str(exc.value) and repr(text) in str(exc.value)


def test_a_degenerate_result_never_replaces_the_committed_file(bench_args, tmp_path, monkeypatch, capsys):
    """bench_lispmc --rounds 0 wrote {"lispmc_itr_pkts_per_s": {"4": 0, ...}} over docs/bench-results/lispmc.json."""
    common = bench_args[1]
    monkeypatch.setattr(common, "RESULTS_DIR", str(tmp_path / "docs"))
    monkeypatch.setattr(common, "SCRATCH_DIR", str(tmp_path / "scratch"))
    empty = {"machine": common.machine_info(), "chunk_bytes": 1316, "lispmc_itr_pkts_per_s": {"4": 0, "40": 0},
             "corecast_itr_refs_per_s": 0, "runs": [], "ok": True}
    path = common.save_result("lispmc", empty)
    assert path == str(tmp_path / "scratch" / "lispmc-nothing-measured.json")
    assert not (tmp_path / "docs").exists() and "nothing was measured" in capsys.readouterr().err
    path = common.save_result("lispmc", dict(empty, corecast_itr_refs_per_s=120_000))
    assert path == str(tmp_path / "docs" / "lispmc.json") and os.path.exists(path)
    assert common.save_result("x", {"rate": 5.0}, is_measured=False).startswith(str(tmp_path / "scratch"))
