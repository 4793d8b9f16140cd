"""``corecast run --servers`` on Mininet's cluster edition (issue 16 item 6), on two loopback "servers".

The namespace test starts its own sshd (tests/sshd_loopback.py: loopback only, keys made for it),
runs the smoke experiment locally and across 127.0.0.1 and 127.0.0.2, and asserts the same
core bytes, per-link bytes and delivery; then that no tunnel, node process or sshd session is left.
The other tests check ``--servers`` values and the placement rule without a network.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import pytest

from conftest import corecast, leftovers
from testbed.addressing import make_plan
from testbed.net.cluster import parse_servers, placement
from testbed.nodeutil import ConfigError
from testbed.params import topo_params

COMPARED = ("mode", "core_bytes", "core_packets", "control_bytes", "model_core_bytes", "delivered_chunks",
            "expected_chunks", "corrupt_chunks", "interdomain_bytes", "max_link_bytes")


def _rows(path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1", "at least two servers"),
    ("127.0.0.1,", "empty server name"),
    (",a", "empty server name"),
    ("a,a", "'a' is given twice"),
    ("a,b c", "'b c' is not a host name"),
    ("a,-x", "'-x' is not a host name"),
    ("a,999.1.2.3", "'999.1.2.3' is not a host name"),
    ("a,root@", "'root@' is not a host name"),
])
def test_bad_servers_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_servers(text)


def test_good_servers_parse():
    assert parse_servers(" 127.0.0.1, root@127.0.0.2 ,srv-b.example.org") == [
        "127.0.0.1", "root@127.0.0.2", "srv-b.example.org"]


def test_cli_rejects_bad_servers_in_one_line_before_any_run_directory(tmp_path):
    out = tmp_path / "never"
    res = corecast("run", "smoke", "--servers", "127.0.0.1,,x", "--out", str(out), timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "--servers: empty server name" in res.stderr
    assert not out.exists()


def test_placement_keeps_whole_ases_and_the_source_side_on_the_first_server():
    plan = make_plan(topo_params({"ases": 3, "clients": 2}))
    where = placement(plan, ["s1", "s2"])
    assert where[plan.core] == where[plan.ms] == where[plan.source_host] == where["x0"] == where["cc0"] == "s1"
    for a in plan.client_ases:  # AS i on servers[i % 2], with its bridge and every client host
        expected = ["s1", "s2"][a.number % 2]
        assert {where[a.xtr], where[a.switch], *(where[h] for h, _ in a.clients)} == {expected}
    assert set(where) >= {n for n in [plan.core, plan.ms, plan.source_host]}


def test_an_unreachable_server_is_one_line(tmp_path, monkeypatch):
    from testbed.net.cluster_ssh import Ssh
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host *\n  Port 1\n  ConnectTimeout 5\n  StrictHostKeyChecking yes\n"
                   f"  UserKnownHostsFile {tmp_path}/none\n")
    monkeypatch.setenv("CORECAST_SSH_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="cannot reach server '127.0.0.1' by SSH as root") as err:
        Ssh("127.0.0.1", str(tmp_path)).start_master()
    assert "\n" not in str(err.value)


def test_reaper_usage_is_one_line_exit_2():
    from testbed.net.cluster_ssh import main
    assert main(["reap", "abc"]) == 2 and main(["reap", "abc", "x"]) == 2


@pytest.mark.net
def test_smoke_across_two_loopback_servers_matches_the_local_run(tmp_path):
    from sshd_loopback import LoopbackSshd
    if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("no sshd: scripts/setup.sh installs openssh-server")
    env = {**os.environ, "CORECAST_LOCK_WAIT": os.environ.get("CORECAST_LOCK_WAIT", "1800")}
    local = tmp_path / "local"
    res = corecast("run", "smoke", "--out", str(local), timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]

    os.makedirs(tmp_path / "ssh")
    sshd = LoopbackSshd(str(tmp_path / "ssh")).start()
    try:
        remote = tmp_path / "cluster"
        res = corecast("run", "smoke", "--servers", "127.0.0.1,127.0.0.2", "--out", str(remote), timeout=900,
                       env={**env, "CORECAST_SSH_CONFIG": sshd.ssh_config})
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
        assert sshd.session_pids() == []  # every SSH session of the run ended with it
    finally:
        sshd.stop()

    mine, theirs = _rows(remote / "measurements.csv"), _rows(local / "measurements.csv")
    assert len(mine) == len(theirs) == 2
    for a, b in zip(mine, theirs):
        assert {k: a[k] for k in COMPARED} == {k: b[k] for k in COMPARED}
        assert a["delivered_chunks"] == a["expected_chunks"] and a["corrupt_chunks"] == "0"
    assert _rows(remote / "links.csv") == _rows(local / "links.csv")  # per link, stream and direction

    cl = json.loads((remote / "cluster.json").read_text())
    assert cl["servers"] == ["127.0.0.1", "127.0.0.2"]
    assert cl["placement"]["x1"] == cl["placement"]["h1x1"] == "127.0.0.2"
    assert cl["placement"]["x0"] == cl["placement"]["core"] == cl["placement"]["x2"] == "127.0.0.1"
    plan = json.loads((remote / "plan.json").read_text())
    x1 = next(a for a in plan["ases"] if a["xtr"] == "x1")
    assert [t["ends"][0] for t in cl["tunnels"]] == [f"x1:{x1['core_if']}"]  # the one inter-server link
    assert json.loads((remote / "run.json").read_text())["status"] == "complete"

    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert [ln for ln in links.splitlines() if ": tap7" in ln] == []  # no tunnel end in the root namespace
    assert leftovers() == ([], [])  # no link named like ours, no process carrying a run's mark


@pytest.mark.net
def test_tree_core_across_two_loopback_servers_is_on_the_model_link_by_link(tmp_path):
    """core=tree (FRR-routed transit routers) across two loopback servers: every inter-domain link's bytes equal
    the model's, every chunk delivered, the transit routers with the core on the first server, nothing left."""
    from sshd_loopback import LoopbackSshd
    env = {**os.environ, "CORECAST_LOCK_WAIT": os.environ.get("CORECAST_LOCK_WAIT", "1800")}
    os.makedirs(tmp_path / "ssh")
    sshd = LoopbackSshd(str(tmp_path / "ssh")).start()
    try:
        out = tmp_path / "tree"
        res = corecast("run", "smoke", "--set", "core=tree", "--servers", "127.0.0.1,127.0.0.2", "--out", str(out),
                       timeout=900, env={**env, "CORECAST_SSH_CONFIG": sshd.ssh_config})
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
        assert sshd.session_pids() == []
    finally:
        sshd.stop()
    rows = _rows(out / "measurements.csv")
    assert [r["mode"] for r in rows] == ["unicast", "corecast"]
    assert all(r["delivered_chunks"] == r["expected_chunks"] and r["corrupt_chunks"] == "0" for r in rows)
    links = _rows(out / "links.csv")
    transit = {r["link"] for r in links if r["link"].startswith("t")}
    assert transit == {"t1-core", "t2-core"}  # the tree's own links are measured too
    assert all(r["bytes"] == r["model_bytes"] for r in links) and sum(int(r["bytes"]) for r in links) > 0
    cl = json.loads((out / "cluster.json").read_text())
    assert cl["placement"]["t1"] == cl["placement"]["t2"] == cl["placement"]["core"] == "127.0.0.1"
    assert cl["placement"]["x1"] == "127.0.0.2" and [t["ends"][1] for t in cl["tunnels"]] == ["t1:t1-x1"]
    assert leftovers() == ([], [])


def _run_processes(rid: str) -> list[int]:
    """Processes carrying ``CORECAST_RUN_ID=rid`` (node shells, daemons, tunnel clients of that run)."""
    mark, out = f"CORECAST_RUN_ID={rid}".encode(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    if mark in fh.read().split(b"\0"):
                        out.append(int(name))
            except OSError:
                pass
    return out


@pytest.mark.net
def test_clean_removes_what_a_killed_cluster_run_left(tmp_path):
    """SIGKILL a cluster run (AS 1 on 127.0.0.2 behind a tunnel) once its xTRs are registered:
    ``corecast clean`` leaves no process of the run, no tunnel, no bridge and no SSH session."""
    import signal
    import sys

    from conftest import ROOT
    from nethelpers import wait_for
    from sshd_loopback import LoopbackSshd
    from testbed.net import registry
    from testbed.net.clean import clean
    os.makedirs(tmp_path / "ssh")
    sshd = LoopbackSshd(str(tmp_path / "ssh")).start()
    out = str(tmp_path / "run")
    env = {**os.environ, "CORECAST_SERVERS": "127.0.0.1,127.0.0.2", "CORECAST_SSH_CONFIG": sshd.ssh_config}
    proc = None
    try:
        registry.acquire_lock(wait=1800)  # held by this test throughout: the dead run cannot clash with anyone
        try:
            proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "run_driver.py"), out, "hold",
                                     "--lisp", "--lock-fd", str(registry._lock_fd)], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    pass_fds=(registry._lock_fd,))
            line = proc.stdout.readline()  # printed once the map-server and both xTRs are registered
            assert line.startswith("{"), line + proc.stderr.read()[-3000:]
            rid = json.loads(line)["run_id"]
            cl = json.loads(open(os.path.join(out, "cluster.json")).read())
            assert cl["placement"]["x1"] == "127.0.0.2" and len(cl["tunnels"]) == 1
            assert _run_processes(rid)  # remote node shells, daemons and the tunnel client are running
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            summary = clean(verbose=False)  # what 'corecast clean' runs (the lock is this test's already)
            assert summary["runs_marked_incomplete"] == 1
            assert wait_for(lambda: not _run_processes(rid), 60), _run_processes(rid)
        finally:
            registry.release_lock()
        assert wait_for(lambda: sshd.session_pids() == [], 60), sshd.session_pids()
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        assert [ln for ln in links.splitlines() if ": tap7" in ln or f"corecast:{rid}" in ln] == []
        assert json.loads(open(os.path.join(out, "run.json")).read())["status"] == "incomplete"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        sshd.stop()
    assert leftovers() == ([], [])
