"""The testbed's own robustness without a network (issue 11, items 10, 12, 13, 16).

* node commands: every wait has a deadline and ends in a one-line NodeCommandError,
  the process group is killed; long target lists go through argv, not a shell line;
* daemons die with the testbed process whatever thread started them, and outlive
  the thread (the parent-watch pipe, not PR_SET_PDEATHSIG);
* the registry tells a dead owner from a live one (pid reuse, other pid namespace);
* a daemon found dead gives one line naming it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from testbed.net import registry
from testbed.net.check import PROBE_SH, ping_all, rloc_targets, spread
from testbed.net.daemon import Daemon, first_dead
from testbed.net.nodecmd import NodeCommandError, run_in_node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LocalNode:
    """Stands in for a Mininet node: popen in this namespace, in a new session like ``mnexec -d``."""

    name = "local"

    def popen(self, argv, **kw):
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(argv, **kw)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


# -- node commands ---------------------------------------------------------------------------------------------

def _sleepers(arg: str) -> list[int]:
    """PIDs of live ``sleep ARG`` processes (ARG unique to a test: found even if no pid file was written)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if fh.read().split(b"\0")[:2] == [b"sleep", arg.encode()] and alive(int(name)):
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def test_run_in_node_deadline_is_one_line_and_kills_the_group(tmp_path):
    """The 2 s deadline gives sh time to fork its child even on a loaded machine (0.5 s did not always:
    no pid file, no child to check); the child is also found by its unique argument, pid file or not."""
    pidfile = tmp_path / "child.pid"
    arg = f"{290 + os.getpid() % 10}.{time.monotonic_ns() % 10**6:06d}"  # sleep ~5 min, a unique argv
    t0 = time.monotonic()
    with pytest.raises(NodeCommandError) as err:
        run_in_node(LocalNode(), ["sh", "-c", f"sleep {arg} & echo $! > {pidfile}; wait"], timeout=2)
    assert time.monotonic() - t0 < 120, "the deadline did not bound the wait"  # the command takes ~300 s
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"local: 'sh -c sleep {arg}") and "within 2 s" in msg
    if pidfile.exists() and pidfile.read_text().strip():
        child = int(pidfile.read_text())
        assert wait_until(lambda: not alive(child), 30), "the command's children must die with it"
    assert wait_until(lambda: not _sleepers(arg), 30), "the command's children must die with it"


def test_run_in_node_returns_output_and_status():
    res = run_in_node(LocalNode(), ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")


def test_ping_probe_takes_a_thousand_targets_as_arguments():
    """The RLOC check's targets go through execve: 1,000 targets (~14 kB) do not hit the 4,095-byte line limit."""
    targets = [f"127.0.{i // 250}.{1 + i % 250}" for i in range(1000)]
    assert len(" ".join(targets)) > 4095
    fake = PROBE_SH.replace("ping -n -q", "true")  # the probe's shape, without 1,000 pings
    res = run_in_node(LocalNode(), ["sh", "-c", fake, "probe", "1", "1", *targets], timeout=60)
    lines = res.stdout.split("\n")
    assert sorted(ln.split()[1] for ln in lines if ln) == sorted(targets)
    assert all(ln.startswith("OK ") for ln in lines if ln)


def test_ping_all_reports_reached_and_unreached():
    res = ping_all([(LocalNode(), ["127.0.0.1"]), (LocalNode(), ["198.51.100.77"])], wait=1)
    assert res == [{"127.0.0.1": True}, {"198.51.100.77": False}]


def test_rloc_check_is_linear_in_the_ases():
    from testbed.addressing import make_plan
    from testbed.params import topo_params
    plan = make_plan(topo_params({"ases": 200, "clients": 1}))
    targets = rloc_targets(plan)
    total = sum(len(t) for t in targets.values())
    n = len(plan.all_ases)
    assert total < 6 * n  # all pairs would be n * n = 40,401
    assert set(targets["x0"]) == {a.rloc for a in plan.all_ases[1:]} | {plan.ms_ip}
    assert all(plan.ms_ip in t and plan.source_as.rloc in t for x, t in targets.items() if x != "x0")
    reached = {t for ts in targets.values() for t in ts}
    assert reached == {a.rloc for a in plan.all_ases} | {plan.ms_ip}  # every RLOC is pinged by someone
    assert spread(list(range(200)), 8) == [0, 28, 57, 85, 114, 142, 171, 199]


# -- daemons die with the testbed process, whatever thread started them ------------------------------------------

SLEEPER = textwrap.dedent("""
    import time
    from testbed.nodeutil import StopFlag, mark_ready, node_main
    def run(cfg):
        stop = StopFlag()
        mark_ready(cfg)
        while not stop.is_set():
            time.sleep(0.05)
        return 0
    node_main("sleeper", run)
""")


class SleeperDaemon(Daemon):
    """A node program that only waits for SIGTERM (started through node_main like every node)."""

    program = "sleeper"

    def command(self) -> list[str]:
        return [sys.executable, "-c", SLEEPER, "--config", self.config_path]


def test_daemon_started_from_a_thread_outlives_the_thread(tmp_path):
    d = SleeperDaemon(LocalNode(), "sleeper", str(tmp_path), {})
    t = threading.Thread(target=lambda: (d.start(), d.wait_ready(60)))
    t.start()
    t.join(90)
    assert not t.is_alive()
    try:
        time.sleep(1.0)  # PR_SET_PDEATHSIG would have fired when the thread ended
        assert d.alive(), f"the daemon died with the thread that started it: {d.died_error()}"
        assert first_dead([d]) is None
    finally:
        d.stop()
    assert first_dead([d]) is d


DRIVER = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, sys.argv[2])
    from test_node_lifecycle import LocalNode, SleeperDaemon
    d = SleeperDaemon(LocalNode(), "sleeper", sys.argv[1], {})
    t = threading.Thread(target=lambda: (d.start(), d.wait_ready(60)))
    t.start(); t.join()
    print(d.proc.pid, flush=True)
    time.sleep(600)
""")


def test_daemon_dies_when_the_testbed_process_is_killed(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    drv = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), os.path.dirname(__file__)],
                           stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        pid = int(drv.stdout.readline())
        assert alive(pid)
        drv.send_signal(signal.SIGKILL)
        drv.wait(30)
        assert wait_until(lambda: not alive(pid), 30), "the daemon outlived the killed testbed process"
    finally:
        if drv.poll() is None:
            drv.kill()
            drv.wait()


def test_dead_daemon_is_named_in_one_line(tmp_path):
    d = SleeperDaemon(LocalNode(), "ms", str(tmp_path), {})
    d.program = "mapserver"
    d.start()
    d.wait_ready(60)
    d.proc.kill()
    d.proc.wait(30)
    msg = str(d.died_line("mid-stream"))
    assert msg.startswith("ms (mapserver) died mid-stream (killed by signal 9); see ")
    assert "\n" not in msg


# -- the registry proves who is alive --------------------------------------------------------------------------

def test_owner_state_tells_dead_reused_and_foreign_owners():
    me = {"pid": os.getpid(), **registry.identity()}
    assert registry.owner_state(me) == "alive"
    assert registry.owner_state({**me, "starttime": me["starttime"] - 1}) == "dead"  # the pid was reused
    assert registry.owner_state({**me, "pid_ns": 1}) == "unknown"  # another pid namespace wrote it
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert registry.owner_state({"pid": gone.pid, "starttime": 1, "pid_ns": me["pid_ns"]}) == "dead"


def test_register_records_owner_and_marks_children(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    path = registry.register(str(tmp_path / "run"))
    try:
        entry = json.loads(open(path).read())
        assert entry["pid"] == os.getpid() and entry["id"] == registry.run_id()
        assert entry["mnt_ns"] == os.stat("/proc/self/ns/mnt").st_ino
        assert entry["starttime"] == registry.proc_starttime(os.getpid())
        assert registry.link_alias() == "corecast:" + entry["id"]
        env = subprocess.run(["sh", "-c", "echo $CORECAST_RUN_ID"], capture_output=True, text=True).stdout.strip()
        assert env == entry["id"]
    finally:
        registry.unregister()
    assert not os.path.exists(path) and registry.run_id() is None


# -- a Mininet node's shell: bounded commands, deadlines, Ctrl-C -----------------------------------------------

@pytest.fixture
def shell_node():
    from mininet.node import Node

    from testbed.net.nodeclasses import DeadlineShell

    class ShellNode(DeadlineShell, Node):
        pass

    node = ShellNode("lifeshell", inNamespace=False)
    try:
        yield node
    finally:
        node.terminate()


@pytest.mark.net
def test_shell_refuses_a_command_longer_than_a_terminal_line(shell_node):
    long_cmd = "echo " + " ".join(f"172.16.{i // 250}.{i % 250}" for i in range(1600))  # ~19 kB, the old RLOC check
    with pytest.raises(NodeCommandError) as err:
        shell_node.cmd(long_cmd)
    assert "\n" not in str(err.value) and "run_in_node" in str(err.value)
    assert shell_node.cmd("echo still-here").strip() == "still-here"


@pytest.mark.net
def test_shell_command_deadline_then_the_shell_still_works(shell_node):
    t0 = time.monotonic()
    with pytest.raises(NodeCommandError) as err:
        shell_node.cmd("sleep 300", timeout=0.5)
    assert time.monotonic() - t0 < 120  # the deadline bounded the wait (the command takes 300 s); loose for load
    assert str(err.value) == "lifeshell: 'sleep 300' did not finish within 0.5 s"
    assert shell_node.cmd("echo after-timeout").strip() == "after-timeout"


@pytest.mark.net
def test_shell_left_waiting_by_ctrl_c_is_resynchronised(shell_node):
    """What a Ctrl-C leaves: a command sent, its output never read (Mininet then asserted in sendCmd)."""
    shell_node.sendCmd("sleep 300")
    assert shell_node.waiting
    t0 = time.monotonic()
    assert shell_node.cmd("echo resynced").strip() == "resynced"
    assert time.monotonic() - t0 < 120 and not shell_node.waiting  # not the 300 s of the sleep; loose for load


@pytest.mark.net
def test_resync_also_kills_a_command_the_shell_forks_late(shell_node):
    """CI saw this: under load the shell had not forked the interrupted command when resync killed its
    children, so the command ran on and the marker never came back within 3 s. A command list is that
    race made certain: the second sleep is forked after the first is killed."""
    shell_node.sendCmd("sleep 0.3; sleep 300")
    t0 = time.monotonic()
    assert shell_node.cmd("echo resynced").strip() == "resynced"
    assert time.monotonic() - t0 < 120 and not shell_node.waiting  # not the 300 s of the sleep; loose for load


@pytest.mark.net
def test_quiet_shell_returns_empty_instead_of_raising(shell_node):
    shell_node.quiet = True
    assert shell_node.cmd("sleep 30", timeout=0.3) == ""


def test_measure_does_not_import_experiment():
    """testbed.experiment drives testbed.measure; measure only needs a RunContext protocol (no import cycle)."""
    import ast
    tree = ast.parse(open(os.path.join(ROOT, "testbed", "measure.py")).read())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "testbed.experiment" not in names
    from testbed.experiment import Context
    from testbed.measure import RunContext
    assert all(hasattr(Context, m) for m in ("sub_progress",)) and RunContext.__name__ == "RunContext"


def test_clean_force_stops_live_runs_sigterm_first_then_sigkill(tmp_path, monkeypatch):
    from testbed.net import clean as C
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time, sys; "
                                 "signal.signal(signal.SIGTERM, lambda *a: None); print('ok', flush=True); "
                                 "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ok"
    try:
        for p in (polite, stubborn):
            with open(tmp_path / f"{p.pid}.json", "w") as fh:
                json.dump({"pid": p.pid, "rundir": str(tmp_path), "id": f"id{p.pid}", **registry.identity(p.pid)}, fh)
        t0 = time.monotonic()
        stopped = C.stop_live_runs(wait=3.0)  # the polite one needs CPU to die of SIGTERM: 3 s on a loaded machine
        assert sorted(e["pid"] for e in stopped) == sorted([polite.pid, stubborn.pid])
        assert polite.wait(30) == -signal.SIGTERM and stubborn.wait(30) == -signal.SIGKILL
        assert time.monotonic() - t0 < 60  # the stubborn one did not keep it waiting for its 60 s
    finally:
        for p in (polite, stubborn):
            if p.poll() is None:
                p.kill()
                p.wait()
