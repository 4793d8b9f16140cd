"""The zygote launcher (testbed.net.launcher): a forked child runs in the node's namespaces, reports its exit
status and signals like Popen, dies with the testbed process, and a Daemon forked by it is ready or reported
dead as before. Needs root (network and mount namespaces made with unshare), no Mininet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from testbed.net import daemon as daemon_mod
from testbed.net.daemon import DaemonError, MapServerDaemon, parent_watch_fd, watch_env
from testbed.net.launcher import ForkedProcess, Zygote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare (namespaces)")


def wait_until(pred, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def holder():
    """A process in its own network and mount namespaces (loopback up, its own /sys), like a Mininet node shell (mnexec -n)."""
    proc = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private", "sh", "-c",
                             "ip link set lo up && mount -t sysfs sysfs /sys && echo up && exec sleep 600"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def zyg():
    env = dict(os.environ, PYTHONPATH=ROOT)
    z = Zygote(preload=("nodes.mapserver",), cwd=ROOT, env=env)
    try:
        yield z
    finally:
        z.close()


def script(tmp_path, body: str) -> str:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def spawn(z: Zygote, tmp_path, path: str, ns_pid, argv=("prog",), env=None) -> ForkedProcess:
    with open(tmp_path / "prog.log", "ab") as log:
        return z.spawn(list(argv), log.fileno(), dict(env or os.environ), ROOT, ns_pid, path=path)


REPORT = """
    import json, os, sys
    out = {"net": os.readlink("/proc/self/ns/net"), "mnt": os.readlink("/proc/self/ns/mnt"),
           "sid": os.getsid(0), "pid": os.getpid(), "argv": sys.argv, "env": os.environ.get("PROBE"),
           "cwd": os.getcwd(), "ifaces": sorted(os.listdir("/sys/class/net"))}
    open(sys.argv[1], "w").write(json.dumps(out))
    print("reported", flush=True)
"""


def test_child_runs_in_the_node_namespaces(zyg, holder, tmp_path):
    out = tmp_path / "out.json"
    child = spawn(zyg, tmp_path, script(tmp_path, REPORT), holder, ("prog", str(out)), dict(os.environ, PROBE="x"))
    assert child.wait(30) == 0
    got = json.loads(out.read_text())
    assert got["net"] == os.readlink(f"/proc/{holder}/ns/net") != os.readlink("/proc/self/ns/net")
    assert got["mnt"] == os.readlink(f"/proc/{holder}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert got["ifaces"] == ["lo"]  # /sys of the node's mount namespace shows the node's interfaces
    assert got["sid"] == got["pid"] == child.pid  # its own session, like mnexec -d
    assert got["argv"][1:] == [str(out)] and got["env"] == "x" and got["cwd"] == ROOT
    assert (tmp_path / "prog.log").read_text() == "reported\n"


def test_exit_status_signals_and_tracebacks_as_popen(zyg, tmp_path):
    sleeper = spawn(zyg, tmp_path, script(tmp_path, "import time\nwhile True: time.sleep(0.05)\n"), None)
    assert sleeper.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(0.2)
    sleeper.send_signal(signal.SIGTERM)
    assert sleeper.wait(30) == -signal.SIGTERM
    sleeper.kill()  # once ended, a signal is a no-op
    three = spawn(zyg, tmp_path, script(tmp_path, "import sys\nsys.exit(3)\n"), None)
    assert three.wait(30) == 3
    boom = spawn(zyg, tmp_path, script(tmp_path, "raise RuntimeError('boom here')\n"), None)
    assert boom.wait(30) == 1
    assert "RuntimeError: boom here" in (tmp_path / "prog.log").read_text()


def test_namespace_that_cannot_be_entered_is_an_early_death(zyg, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    child = spawn(zyg, tmp_path, script(tmp_path, "print('must not run')\n"), gone.pid)
    assert child.wait(30) == 127
    log = (tmp_path / "prog.log").read_text()
    assert log.startswith(f"launcher: cannot enter the namespaces of pid {gone.pid}") and "must not run" not in log


DRIVER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from testbed.net.daemon import parent_watch_fd, watch_env
    from testbed.net.launcher import Zygote
    env = dict(os.environ)
    fds = watch_env(env)
    z = Zygote(preload=(), cwd=sys.argv[2], env=env, pass_fds=fds)
    log = os.open(os.path.join(sys.argv[1], "child.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    prog = os.path.join(sys.argv[1], "child.py")
    open(prog, "w").write("import time\\nfrom testbed.nodeutil import die_with_parent\\ndie_with_parent()\\n"
                          "while True: time.sleep(0.05)\\n")
    c = z.spawn(["child"], log, env, sys.argv[2], None, path=prog, watch_fd=fds[0])
    print(c.pid, z.pid, flush=True)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_children_and_zygote_die_when_the_testbed_process_is_killed(tmp_path):
    drv = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), ROOT], stdout=subprocess.PIPE,
                           text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        child, zpid = (int(x) for x in drv.stdout.readline().split())
        assert alive(child) and alive(zpid)
        drv.send_signal(signal.SIGKILL)
        drv.wait(10)
        assert wait_until(lambda: not alive(child) and not alive(zpid), 60), "a forked daemon outlived the testbed"
    finally:
        if drv.poll() is None:
            drv.kill()
            drv.wait()


def test_closing_the_zygote_kills_what_it_forked(tmp_path):
    z = Zygote(preload=(), cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    child = spawn(z, tmp_path, script(tmp_path, "import time\nwhile True: time.sleep(0.05)\n"), None)
    z.close()
    assert child.returncode == -signal.SIGKILL
    assert wait_until(lambda: not alive(child.pid), 60) and z.proc.returncode == 0


class NsNode:
    """A stand-in for a Mininet node: a name and the pid of a process in the node's namespaces."""

    def __init__(self, pid: int) -> None:
        self.name, self.pid, self.inNamespace = "ms", pid, True


def ms_config(tmp_path, **over) -> dict:
    cfg = {"listen": "127.0.0.1", "port": 0, "expiry_s": 60, "negative_ttl_min": 15,
           "sites": [{"name": "as1", "key": "k" * 16, "algorithms": ["sha256"], "prefixes": ["10.1.0.0/16"]}],
           "table_file": str(tmp_path / "ms.table.json")}
    cfg.update(over)
    return cfg


def test_daemon_forked_into_a_node_is_ready_then_stops(holder, tmp_path, monkeypatch):
    monkeypatch.setenv("CORECAST_LAUNCH", "fork")
    d = MapServerDaemon(NsNode(holder), "ms", str(tmp_path), ms_config(tmp_path))
    assert d.forkable()
    try:
        d.start()
        assert isinstance(d.proc, ForkedProcess)
        d.wait_ready(60)
        assert os.readlink(f"/proc/{d.proc.pid}/ns/net") == os.readlink(f"/proc/{holder}/ns/net")
        with open(f"/proc/{d.proc.pid}/cmdline", "rb") as fh:  # ps and pgrep -f see the program, not the zygote
            assert fh.read().rstrip(b"\0").split(b"\0") == [x.encode() for x in d.command()]
        with open(f"/proc/{d.proc.pid}/environ", "rb") as fh:  # the zygote's environment: the run's mark
            assert fh.read() is not None
        assert d.stop(20) == 0  # SIGTERM: the program's own clean exit
        assert not d.alive()
    finally:
        daemon_mod.close_zygote()


def test_daemon_forked_with_a_bad_config_is_reported_with_its_log(holder, tmp_path, monkeypatch):
    monkeypatch.setenv("CORECAST_LAUNCH", "fork")
    d = MapServerDaemon(NsNode(holder), "ms", str(tmp_path), ms_config(tmp_path, expiry_s="soon"))
    try:
        d.start()
        with pytest.raises(DaemonError) as err:
            d.wait_ready(60)
        msg = str(err.value)
        assert msg.startswith("ms (mapserver) exited with status 2; last lines of ")
        assert "mapserver: " in msg and "Traceback" not in msg
    finally:
        daemon_mod.close_zygote()


def test_exec_mode_and_own_commands_are_not_forked(holder, tmp_path, monkeypatch):
    monkeypatch.setenv("CORECAST_LAUNCH", "exec")
    assert not MapServerDaemon(NsNode(holder), "ms", str(tmp_path), {}).forkable()
    monkeypatch.setenv("CORECAST_LAUNCH", "fork")
    assert MapServerDaemon(NsNode(holder), "ms", str(tmp_path), {}).forkable()

    class Own(MapServerDaemon):
        def command(self) -> list[str]:
            return ["true"]
    assert not Own(NsNode(holder), "ms", str(tmp_path), {}).forkable()
    assert parent_watch_fd() == watch_env({})[0]


def test_a_zygote_that_cannot_start_is_a_one_line_daemon_error(holder, tmp_path, monkeypatch):
    from testbed.net.launcher import LauncherError

    def broken(env):
        raise LauncherError("the zygote did not become ready within 60 s")
    monkeypatch.setenv("CORECAST_LAUNCH", "fork")
    monkeypatch.setattr(daemon_mod, "zygote", broken)
    d = MapServerDaemon(NsNode(holder), "ms", str(tmp_path), ms_config(tmp_path))
    with pytest.raises(DaemonError) as err:
        d.start()
    assert str(err.value) == "ms (mapserver) could not be started: the zygote did not become ready within 60 s"
    assert d.proc is None
