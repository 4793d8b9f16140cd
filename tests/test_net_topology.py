"""Namespace tests of the foundation (issue 2) and of the testbed's own robustness (issue 11, items 10-12):
check (linear, up to 200 ASes), interruption at several moments, and a clean-up that spares what is not ours."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, corecast, leftovers
from nethelpers import wait_for

pytestmark = pytest.mark.net

LOCKED = 2400
"""Seconds a CLI call may take here: up to CORECAST_LOCK_WAIT (1800 s) waiting for another network, then its work."""


def test_check_default_topology_with_lisp(tmp_path):
    res = corecast("check", "--out", str(tmp_path / "run"), timeout=LOCKED)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "4/4 reached" in out and "41/41 reached" in out and "check passed" in out
    assert "only LISP (UDP 4341/4342) between RLOCs" in out
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "complete" and run["summary"]["passed"] is True
    assert leftovers() == ([], [])


def test_check_without_lisp_eids_do_not_reach(tmp_path):
    res = corecast("check", "--no-lisp", "--out", str(tmp_path / "run"), timeout=LOCKED)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "EIDs of other ASes unreachable without LISP" in res.stdout and "0/4 reached (want 0)" in res.stdout


@pytest.mark.slow
def test_check_twenty_ases_over_a_hundred_hosts(tmp_path):
    res = corecast("check", "--set", "ases=20", "--set", "clients=5", "--out", str(tmp_path / "run"), timeout=LOCKED)
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
        f.endswith("-src.ready") for f in os.listdir(state)), LOCKED, 0.2)
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
    output = proc.stdout.read()
    if sig == signal.SIGINT:
        # Ctrl-C tears down by itself and marks the run incomplete
        assert proc.returncode == 130, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert leftovers() == ([], [])
    res = corecast("clean", timeout=LOCKED)
    assert res.returncode == 0 and "corecast clean" in res.stdout
    assert leftovers() == ([], [])
    assert subprocess.run(["pgrep", "-f", f"--config {out}"], capture_output=True).stdout == b""
    run = json.loads(open(os.path.join(out, "run.json")).read())
    assert run["status"] == "incomplete"
    nxt = corecast("check", "--no-lisp", "--set", "ases=1", "--set", "clients=1", "--out", str(tmp_path / "next"),
                   timeout=LOCKED)
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr


def test_cli_runs_commands_in_hosts_with_lisp_up():
    script = "x1 corecast lig 10.0.0.10\nsrc ping -c1 -W2 10.1.1.1\nexit\n"
    res = corecast("cli", "paper", "--set", "ases=1", "--set", "clients=1", input=script, timeout=LOCKED)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr  # Mininet's CLI prints host output through its logger (stderr)
    assert "10.0.0.0/16, via map-reply" in out and "CoreCast-capable: yes" in out
    assert "1 received" in out
    assert leftovers() == ([], [])


@pytest.mark.slow
def test_check_two_hundred_ases_is_linear_and_passes(tmp_path):
    """Issue 11 item 10: at 200 ASes the RLOC check once handed a router a 19 kB shell line and hung."""
    res = corecast("check", "--set", "ases=200", "--set", "clients=1", "--out", str(tmp_path / "run"), timeout=LOCKED)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    out = res.stdout
    assert "404 nodes" in out and "201 xTRs registered" in out and "check passed" in out
    assert "201/201 reached" in out and "200/200 reached" in out and "8/8 reached" in out
    rloc = next(ln for ln in out.splitlines() if "(RLOC)" in ln).split()
    ok, total = map(int, rloc[-2].split("/"))
    assert ok == total and total < 6 * 201  # linear: all pairs would be 40,401
    assert leftovers() == ([], [])


def _interrupt_and_wait(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_interrupted(proc: subprocess.Popen, out: str, err: str, rundir: str) -> None:
    assert proc.returncode == 130, out[-2000:] + err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert json.loads(open(os.path.join(rundir, "run.json")).read())["status"] == "incomplete"
    assert leftovers() == ([], [])


def test_ctrl_c_during_bring_up(tmp_path):
    """Issue 11 item 11: SIGINT while Mininet builds the network (node shell commands pending)."""
    out = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "testbed", "check", "--set", "ases=20", "--set", "clients=2",
                             "--out", out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(out, "plan.json")) or proc.poll() is not None, 1800, 0.02)
        assert proc.poll() is None
        time.sleep(0.5)  # inside Mininet's build: nodes being created and configured
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stdout, stderr = _interrupt_and_wait(proc)
    assert "network up" not in stdout, "the interrupt came too late to test the bring-up"
    _assert_interrupted(proc, stdout, stderr, out)


@pytest.mark.parametrize("sighup", ["default", "ignored"])
def test_ctrl_c_during_a_pending_node_command(tmp_path, sighup):
    """Issue 11 item 11: SIGINT while a node's shell runs a command (Mininet asserted in net.stop()).

    ``ignored``: the run started under ``nohup`` (SIGHUP ignored, inherited by every node shell and its
    commands). The shells' SIGHUP then left x0's ``sleep 60`` running, orphaned, after the teardown (two full
    suites run under nohup failed so); the teardown kills every process carrying the run's id."""
    out = str(tmp_path / "run")
    ignore = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if sighup == "ignored" else None
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "run_driver.py"), out, "pending"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "pending", line + proc.stderr.read()[-3000:]
        # the command is pending once x0's shell runs it (a fixed 0.5 s was not always enough under load)
        assert wait_for(lambda: _run_processes_named(out, [b"sleep", b"60"]) or proc.poll() is not None, 120, 0.05)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    t0 = time.monotonic()
    stdout, stderr = _interrupt_and_wait(proc)
    assert time.monotonic() - t0 < 60
    assert "interrupted" in stdout
    _assert_interrupted(proc, stdout, stderr, out)


def _run_processes_named(rundir: str, argv: list[bytes]) -> list[int]:
    """PIDs of processes with this exact argv that carry the run's mark (CORECAST_RUN=rundir)."""
    mark = b"CORECAST_RUN=" + os.path.abspath(rundir).encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if fh.read().rstrip(b"\0").split(b"\0") != argv:
                    continue
            with open(f"/proc/{name}/environ", "rb") as fh:
                if mark in fh.read().split(b"\0"):
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


PROOF_SCRIPT = r"""
import json, os, subprocess, sys
from testbed.net import registry, clean as C
gone = subprocess.Popen(["true"]); gone.wait()
entry = {"pid": gone.pid, "rundir": "/nonexistent", "id": "deadbeef", **registry.identity(), "starttime": 1}
json.dump(entry, open(os.path.join(registry.REGISTRY_DIR, f"{gone.pid}.json"), "w"))
for name, alias in (("cc7", "corecast:deadbeef"), ("cc8", "corecast:0ther"), ("cc9", "")):
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    if alias:
        subprocess.run(["ip", "link", "set", "dev", name, "alias", alias], check=True)
env = dict(os.environ, CORECAST_RUN="/nonexistent")
dead = subprocess.Popen(["sleep", "60"], env={**env, "CORECAST_RUN_ID": "deadbeef"})
other = subprocess.Popen(["sleep", "60"], env={**env, "CORECAST_RUN_ID": "0ther"})
import time
deadline = time.monotonic() + 60  # Popen returns once exec began; /proc/PID/environ is set a moment later
while not all(C._marks(p.pid)[0] for p in (dead, other)) and time.monotonic() < deadline:
    time.sleep(0.01)
summary = C.clean(verbose=False)
links = sorted({n for n, _a in C.links_with_alias()} & {"cc7", "cc8", "cc9"})
print(json.dumps({"summary": summary, "links": links, "dead": dead.poll() is not None,
                  "other": other.poll() is None, "entries": len(registry.entries())}))
other.kill()
"""


def test_clean_removes_only_what_the_registry_proves_ours():
    """Issue 11 item 12, isolated in its own mount and network namespaces: links by alias, processes by run id."""
    script = f"mount -t tmpfs tmpfs /run/corecast && exec {sys.executable} -c '{PROOF_SCRIPT}'"
    res = subprocess.run(["unshare", "-m", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["links"] == ["cc8", "cc9"]  # cc7 carried the dead run's alias; the others are not proven ours
    assert got["dead"] and got["other"]
    s = got["summary"]
    assert (s["processes"], s["links"], s["processes_not_proven"], s["links_not_proven"]) == (1, 1, 1, 2)
    assert got["entries"] == 0


def test_clean_spares_a_live_run_in_another_mount_namespace(tmp_path, monkeypatch):
    """Issue 11 item 12: a live run with its own /run/corecast survives 'corecast clean'; a dead run of ours is removed.

    The dead run's shells and daemons also die by themselves (terminal hang-up, parent-watch pipe), at a
    pace a loaded machine decides: clean's victims are recorded and compared with what was there, rather
    than counted against a snapshot taken after a fixed 1 s sleep."""
    from testbed.net import clean as clean_mod
    from testbed.net import registry
    from testbed.net.clean import clean, marked_processes, our_links
    victims: list[int] = []
    real_kill = clean_mod.kill_processes

    def recording_kill(pids: list[int], grace: float = 2.0) -> int:
        victims.extend(pids)
        return real_kill(pids, grace)
    monkeypatch.setattr(clean_mod, "kill_processes", recording_kill)
    driver = os.path.join(ROOT, "tests", "run_driver.py")
    other_out, our_out = str(tmp_path / "other"), str(tmp_path / "ours")
    # the other run: its own mount namespace (its own /run/corecast) and network namespace (no name clashes)
    script = (f"mount -t tmpfs tmpfs {registry.REGISTRY_DIR} && mount -t sysfs sysfs /sys && ip link set lo up && "
              f"exec {sys.executable} {driver} {other_out} hold --lisp")
    other = subprocess.Popen(["unshare", "-m", "-n", "sh", "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    ours = None
    try:
        line = other.stdout.readline()
        assert line.startswith("{"), line + other.stderr.read()[-3000:]
        theirs = json.loads(line)
        assert len(theirs["pids"]) >= 8  # 6 node shells, the map-server and 2 xTRs
        registry.acquire_lock(wait=1800)  # held by this test throughout: our dead run cannot clash with anyone
        try:
            ours = subprocess.Popen([sys.executable, driver, our_out, "hold", "--lisp", "--lock-fd",
                                     str(registry._lock_fd)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                    pass_fds=(registry._lock_fd,))
            mine = json.loads(ours.stdout.readline())
            assert our_links()
            ours.send_signal(signal.SIGKILL)
            ours.wait(30)
            left = [p for p, rid in marked_processes() if rid == mine["run_id"]]  # some are dying meanwhile
            summary = clean()  # what 'corecast clean' runs (the lock is this test's already)
        finally:
            registry.release_lock()
        assert all(_alive(p) for p in theirs["pids"]), "clean killed processes of a run it does not own"
        assert other.poll() is None
        assert summary["processes"] == len(victims) and set(victims) <= set(left)  # only the dead run's
        assert summary["runs_marked_incomplete"] == 1
        assert summary["processes_other_namespaces"] >= len(theirs["pids"])
        assert summary["links"] >= 2  # at least the bridges cc0 and cc1
        assert wait_for(lambda: not any(_alive(p) for p in mine["pids"] + left), 60), \
            [p for p in mine["pids"] + left if _alive(p)]  # SIGKILLed by clean, or died by themselves
        assert json.loads(open(os.path.join(our_out, "run.json")).read())["status"] == "incomplete"
        assert leftovers() == ([], [])
        out, err = _interrupt_and_wait(other, 120)  # the other run still tears down by itself
        assert other.returncode == 130 and "Traceback" not in err, err[-3000:]
        assert json.loads(open(os.path.join(other_out, "run.json")).read())["status"] == "incomplete"
    finally:
        for p in (other, ours):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
