"""bench/bench_corecast.py's command line is checked before it takes the testbed lock or builds a network."""

from __future__ import annotations

import importlib
import os
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
