"""The corecast CLI outside namespaces: help on every verb, list, stats, decode errors."""

from __future__ import annotations

import json

import pytest

from conftest import corecast
from testbed.cli import VERBS


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb):
    res = corecast(verb, "--help")
    assert res.returncode == 0 and "usage: corecast" in res.stdout


def test_list_names_topologies_and_experiments():
    out = corecast("list", check=True).stdout.splitlines()
    names = {line.split()[1] for line in out}
    assert {"paper", "demo", "smoke", "gamma", "clients", "deployment", "distribution", "load", "join",
            "topology"} <= names


def test_stats_prints_a_daemons_counters(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "x0.status.json").write_text(json.dumps({"itr": {"encapsulated": 42}}))
    res = corecast("stats", "x0", "--run", str(tmp_path), check=True)
    assert json.loads(res.stdout)["itr"]["encapsulated"] == 42
    res = corecast("stats", "x9", "--run", str(tmp_path))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "x9" in res.stderr


def test_decode_missing_file_is_one_line(tmp_path):
    res = corecast("decode", str(tmp_path / "nope.pcap"))
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
