"""The corecast CLI outside namespaces: help on every verb, list, stats, decode errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, corecast
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
    modes = {line.split()[1] for line in out if line.startswith("mode ")}
    assert {"unicast", "corecast", "corecast-batch", "corecast-src", "lispmc", "ipmc"} <= modes


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


def test_decode_into_a_closed_pipe_is_quiet_and_exits_0(tmp_path):
    """`corecast decode F --detail | head -1`: the reader leaves early; no 'Broken pipe' error, exit 0."""
    import struct

    from scapy.all import IP, UDP, Raw, raw
    pcap = tmp_path / "many.pcap"
    data = raw(IP(src="172.16.0.2", dst="172.16.1.2") / UDP(sport=4341, dport=4341) / Raw(bytes(1308)))
    record = struct.pack("<IIII", 1, 0, len(data), len(data)) + data
    with open(pcap, "wb") as fh:  # what scapy's wrpcap writes (linktype 228, IPv4), without building 20,000
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 228) + record * 20000)  # (40 s on load)
    proc = subprocess.Popen([sys.executable, "-m", "testbed", "decode", str(pcap), "--detail"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # like head -1
    _out, err = proc.communicate(timeout=300)  # a deadline on the reader's side too
    err = err.decode()
    assert proc.returncode == 0 and b"lisp-unicast" in first
    assert "Broken pipe" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("verb", ["check", "cli"])
def test_bad_servers_in_the_environment_fail_before_waiting_for_the_lock(verb, tmp_path, monkeypatch):
    """Review: CORECAST_SERVERS=",," corecast check waited for the testbed lock before saying the list was bad.

    The lock is a private registry's (CORECAST_REGISTRY), held by this test: the machine-wide lock may be
    another run's for an hour, and taking it here made this test wait for that run (it must not depend on
    the machine being idle). A CLI that waits for the lock first still fails: 120 s < 1800 s."""
    import os

    from testbed.net import registry
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    registry.acquire_lock(wait=0)  # "another run is active": our private lock, free until now
    try:
        env = dict(os.environ, CORECAST_SERVERS=",,", CORECAST_LOCK_WAIT="1800", CORECAST_REGISTRY=str(tmp_path))
        res = corecast(verb, env=env, timeout=120)
    finally:
        registry.release_lock()
    assert res.returncode == 2 and res.stderr.strip() == "corecast: --servers: empty server name in ',,'"
