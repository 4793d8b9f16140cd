"""Bring an emulated network up on Mininet, run daemons in it, and tear everything down.

```python
with Testbed(plan, rundir) as tb:
    tb.start_daemons([...])
    ...
```
Teardown runs in ``finally``: daemons, captures, then Mininet, then any process
of the run still alive among our children; an exception or Ctrl-C mid-run leaves
nothing behind. While it tears down, SIGINT and SIGTERM are held back (a second
Ctrl-C cannot cut the teardown short) and delivered as KeyboardInterrupt once it is
done; node shells are in ``quiet`` mode (a failing command is logged, not raised).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from mininet.log import setLogLevel
from mininet.net import Mininet

from testbed.addressing import AddressPlan
from testbed.net import registry
from testbed.net.clean import links_with_alias
from testbed.net.daemon import Daemon, close_zygote, stop_all, wait_all_ready
from testbed.net.nodeclasses import MarkedBridge, MarkedLink
from testbed.nodeutil import write_json_atomic
from topologies.paper import PaperTopo

log = logging.getLogger("corecast.net")


def default_switch_class() -> type:
    """OVSBridge where Open vSwitch really works here, else Linux bridges (no controller either way)."""
    if shutil.which("ovs-vsctl") and os.path.isdir("/sys/module/openvswitch"):
        from mininet.node import OVSBridge
        return OVSBridge
    return MarkedBridge


class Testbed:
    """A running emulated network for one plan, with its daemons."""

    def __init__(self, plan: AddressPlan, rundir: str, topo_cls: type = PaperTopo,
                 switch_cls: type | None = None) -> None:
        self.plan = plan
        self.rundir = rundir
        self.topo_cls = topo_cls
        self.switch_cls = switch_cls or default_switch_class()
        self.servers = cluster_servers()  # env CORECAST_SERVERS (corecast run --servers): testbed.net.cluster
        self.net: Mininet | None = None
        self.daemons: list[Daemon] = []
        self.captures: list = []

    def __enter__(self) -> "Testbed":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Build and start the network, and write the plan into the run directory."""
        os.makedirs(self.rundir, exist_ok=True)
        registry.acquire_lock()
        registry.register(self.rundir)
        write_json_atomic(os.path.join(self.rundir, "plan.json"), self.plan.to_dict())
        setLogLevel(os.environ.get("CORECAST_MININET_LOG", "error"))
        if self.servers:  # whole ASes per server on Mininet's cluster edition
            from testbed.net import cluster
            topo = self.topo_cls(plan=self.plan, router_cls=cluster.ClusterRouter, host_cls=cluster.ClusterHost)
            self.net = cluster.build(topo, self.plan, self.servers, self.rundir)
            return
        topo = self.topo_cls(plan=self.plan)
        self.net = Mininet(topo=topo, switch=self.switch_cls, link=MarkedLink, controller=None,
                           autoSetMacs=False, build=False, waitConnected=False)
        self.net.build()
        self.net.start()

    def node(self, name: str):
        """The Mininet node called ``name``."""
        assert self.net is not None
        return self.net[name]

    def start_daemons(self, daemons: list[Daemon], timeout: float = 30.0) -> None:
        """Start every daemon, then wait until all are ready (or one died)."""
        for d in daemons:
            self.daemons.append(d)
            d.start()
        wait_all_ready(daemons, timeout)

    def stop_daemons(self, daemons: list[Daemon] | None = None, timeout: float = 30.0) -> None:
        """Stop the given daemons (default: all): SIGTERM to all at once, then wait, then SIGKILL."""
        targets = list(reversed(daemons if daemons is not None else self.daemons))
        stop_all(targets, timeout)
        for d in targets:
            if d in self.daemons:
                self.daemons.remove(d)

    def stop(self) -> None:
        """Stop daemons, captures and the network; safe to call twice; Ctrl-C waits until it is done."""
        with _SignalsHeld() as held:
            self._teardown()
        if held.got and sys.exc_info()[0] is None:
            raise KeyboardInterrupt(f"signal {held.got} during teardown")

    def _teardown(self) -> None:
        try:
            try:
                self.stop_daemons()
            finally:
                close_zygote()  # a daemon it forked that is still running is SIGKILLed
            for cap in reversed(self.captures):
                try:
                    cap.stop()
                except Exception as exc:
                    log.warning("stopping capture: %s", exc)
            self.captures.clear()
        finally:
            net, self.net = self.net, None
            try:
                if self.servers:
                    from testbed.net import cluster
                    cluster.stop(net)
                elif net is not None:
                    stop_network(net)
            finally:
                kill_our_children()
                registry.unregister()
                registry.release_lock()


def cluster_servers() -> list[str]:
    """The servers of env ``CORECAST_SERVERS`` (comma-separated; empty: this machine only)."""
    text = os.environ.get("CORECAST_SERVERS", "").strip()
    if not text:
        return []
    from testbed.net.cluster import parse_servers
    return parse_servers(text)


def stop_network(net: Mininet, timeout: float = 30.0) -> None:
    """Tear a Mininet network down without a shell round trip per link.

    Mininet's ``net.stop()`` deletes every link with two node commands and every
    bridge with two more (about 1,600 round trips at 200 ASes). Here: every node
    shell gets SIGHUP at once (its network namespace, and with it every veth pair
    with an end inside, goes away), the bridges and root-namespace veth ends are
    deleted in one ``ip link del group N`` (the run's link group), and any link still
    carrying this run's alias is deleted and waited for (at most ``timeout`` s). Networks with other switch classes use
    ``net.stop()``; node commands are in ``quiet`` mode either way.
    """
    nodes = [*net.hosts, *net.switches]
    for node in nodes:
        node.quiet = True
    if not all(isinstance(sw, MarkedBridge) for sw in net.switches):
        net.stop()
        return
    for node in nodes:
        if node.shell is not None and node.shell.poll() is None:
            try:
                os.killpg(node.shell.pid, signal.SIGHUP)
            except (ProcessLookupError, PermissionError):
                pass
    group = registry.link_group()
    if group:  # every bridge and root-namespace veth end of the run, in one call
        subprocess.run(["ip", "link", "del", "group", str(group)], capture_output=True, timeout=60)
    for node in nodes:
        node.terminate()  # waits (bounded) for the shell to exit
    alias = registry.link_alias()
    deadline = time.monotonic() + timeout
    while alias:
        left = [n for n, a in links_with_alias() if a == alias]
        if not left:
            break
        if time.monotonic() > deadline:
            log.warning("teardown: %d links of the run still present, e.g. %s", len(left), left[0])
            break
        _ip_batch([f"link del {n}" for n in left])
        time.sleep(0.05)


def _ip_batch(lines: list[str]) -> None:
    """Run ``ip -force -batch -`` on ``lines`` (errors ignored: a link may already be gone)."""
    if lines:
        subprocess.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                       capture_output=True, timeout=60)


class _SignalsHeld:
    """Hold SIGINT and SIGTERM back for a block (main thread only); ``got`` is the last one that came."""

    def __init__(self) -> None:
        self.got: int | None = None
        self._old: dict[int, object] = {}

    def _hold(self, signum: int, _frame: object) -> None:
        self.got = signum

    def __enter__(self) -> "_SignalsHeld":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._hold)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def kill_our_children() -> int:
    """SIGKILL every process (but this one) that carries this run's id: a shell or daemon Mininet lost track
    of (e.g. one whose start a Ctrl-C cut short), or a command a node shell was running when the run was
    interrupted, orphaned once its shell exited (a process that ignores SIGHUP, as everything started under
    ``nohup`` does, survives the shells' SIGHUP); return how many. The run id is the proof that it is ours."""
    rid = registry.run_id()
    if not rid:
        return 0
    me, mark = os.getpid(), f"{registry.ENV_ID}={rid}".encode()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if mark not in fh.read().split(b"\0"):
                    continue
            pid = int(name)
            with open(f"/proc/{name}/stat") as fh:
                child = int(fh.read().rsplit(")", 1)[1].split()[1]) == me
            os.killpg(pid, signal.SIGKILL) if child and os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
            killed += 1
        except (OSError, ValueError, IndexError):
            continue
    if killed:
        log.warning("teardown: killed %d leftover processes of the run", killed)
    return killed
