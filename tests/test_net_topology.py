"""Namespace tests of the foundation (issue 2): check, scale, interruption and clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, corecast, leftovers
from nethelpers import wait_for

pytestmark = pytest.mark.net


def test_check_default_topology_with_lisp(tmp_path):
    res = corecast("check", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "4/4 reached" in out and "41/41 reached" in out and "check passed" in out
    assert "only LISP (UDP 4341/4342) between RLOCs" in out
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "complete" and run["summary"]["passed"] is True
    assert leftovers() == ([], [])


def test_check_without_lisp_eids_do_not_reach(tmp_path):
    res = corecast("check", "--no-lisp", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "EIDs of other ASes unreachable without LISP" in res.stdout and "0/4 reached (want 0)" in res.stdout


@pytest.mark.slow
def test_check_twenty_ases_over_a_hundred_hosts(tmp_path):
    res = corecast("check", "--set", "ases=20", "--set", "clients=5", "--out", str(tmp_path / "run"), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert "101/101 reached" in res.stdout and "20/20 reached" in res.stdout
    assert leftovers() == ([], [])


def _start_long_run(out: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "testbed", "run", "smoke", "--set", "chunks=200000",
                             "--set", "speed=1", "--out", out], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_streaming(out: str, proc: subprocess.Popen) -> None:
    state = os.path.join(out, "state")
    ok = wait_for(lambda: proc.poll() is None and os.path.isdir(state) and any(
        f.endswith("-src.ready") for f in os.listdir(state)), 120, 0.2)
    assert ok, f"the run never started streaming: {proc.communicate()[0] if proc.poll() is not None else ''}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_leaves_nothing_after_clean(tmp_path, sig):
    out = str(tmp_path / "run")
    proc = _start_long_run(out)
    try:
        _wait_streaming(out, proc)
        from testbed.net.clean import our_links
        assert our_links(), "the run should have bridges up while streaming"  # (leftovers() would wait for its lock)
        os.kill(proc.pid, sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        # Ctrl-C tears down by itself and marks the run incomplete
        assert proc.returncode == 130
        assert leftovers() == ([], [])
    res = corecast("clean")
    assert res.returncode == 0 and "corecast clean" in res.stdout
    assert leftovers() == ([], [])
    assert subprocess.run(["pgrep", "-f", f"--config {out}"], capture_output=True).stdout == b""
    run = json.loads(open(os.path.join(out, "run.json")).read())
    assert run["status"] == "incomplete"
    nxt = corecast("check", "--no-lisp", "--set", "ases=1", "--set", "clients=1", "--out", str(tmp_path / "next"))
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr


def test_cli_runs_commands_in_hosts_with_lisp_up():
    script = "x1 corecast lig 10.0.0.10\nsrc ping -c1 -W2 10.1.1.1\nexit\n"
    res = corecast("cli", "paper", "--set", "ases=1", "--set", "clients=1", input=script, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr  # Mininet's CLI prints host output through its logger (stderr)
    assert "10.0.0.0/16, via map-reply" in out and "CoreCast-capable: yes" in out
    assert "1 received" in out
    assert leftovers() == ([], [])
