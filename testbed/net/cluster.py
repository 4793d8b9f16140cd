"""The paper topology over several servers on Mininet's cluster edition (``corecast run X --servers a,b``).

Built on ``mininet.examples.cluster``: :class:`CorecastCluster` is a ``MininetCluster``
whose placer (:class:`AsPlacer`) puts **whole ASes** on servers; the nodes are
``RemoteMixin`` nodes (each node's shell is ``ssh -tt SERVER mnexec -cn bash`` on its
server, its ``pid`` the remote one); links are ``RemoteLink`` s: a veth pair when both ends
are on one server, else the cluster edition's SSH Ethernet tunnel (``ssh -o Tunnel=ethernet
-w A:B``, run on the first end's server towards the second's: two tap devices, moved into the
nodes' namespaces and renamed to the link's interface names). The measured interfaces are
those inside the namespaces, so nft counters and captures see the emulated link's IP packets,
never the tunnel's SSH/TCP bytes on the servers' own network (docs/cluster.md).

Placement (:func:`placement`): the source AS (``x0``, its LAN bridge, ``src``), the mapping
host, the core router (and any transit router) on the first server; client AS *i* on
``servers[i % n]`` (round robin, so AS 1 is on the second server when there are two).

Every SSH command goes through one master connection per server (``ControlMaster``);
``CORECAST_SSH_CONFIG`` names an ``ssh_config`` file (``ssh -F``) used on every hop.
A node program started in a remote node (:meth:`RemoteShell.popen`) writes its remote pid
to ``RUNDIR/state/cluster/`` and carries the run's environment mark, so signals reach it
(:class:`RemotePopen`) and teardown, or ``python -m testbed.net.cluster_ssh reap``, kills what
is left. The run directory must be the same path on every server (shared file system).
GRE (the cluster edition's ``RemoteGRELink``) is not built into every kernel (not this
VM's: ``ip link add type gretap`` says "Unknown device type"), hence SSH tunnels.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import select
import shlex
import signal
import subprocess
import sys
from typing import Any

from mininet.examples.cluster import MininetCluster, Placer, RemoteLink, RemoteMixin
from mininet.link import Link
from mininet.net import Mininet

from testbed.net import registry
from testbed.net.cluster_ssh import CONNECTIONS, SSH_TIMEOUT, RemotePopen, Ssh, _marks, _unmarked_env
from testbed.net.nodeclasses import EidHost, LinuxRouter, MarkedBridge
from testbed.nodeutil import ConfigError, write_json_atomic

TAP_BASE = 7000
"""Tunnel tap devices are ``tap<TAP_BASE + 2*link + end>`` until renamed in their namespace."""

_SERVER = re.compile(r"^(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$")


def parse_servers(text: str) -> list[str]:
    """``--servers`` as a list: comma-separated SSH destinations (``host``, ``user@host``, an IPv4 address).

    ConfigError (one line) for an empty item, a duplicate, a bad name or fewer than two servers.
    """
    items = [s.strip() for s in str(text).split(",")]
    if len(items) < 2:
        raise ConfigError(f"--servers needs at least two servers, comma-separated (got '{text}')")
    seen: set[str] = set()
    for s in items:
        if not s:
            raise ConfigError(f"--servers: empty server name in '{text}'")
        if not _SERVER.match(s) or s.split("@")[-1].replace(".", "").isdigit() and not _ipv4(s.split("@")[-1]):
            raise ConfigError(f"--servers: '{s}' is not a host name, user@host or IPv4 address")
        if s in seen:
            raise ConfigError(f"--servers: '{s}' is given twice")
        seen.add(s)
    return items


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def placement(plan: Any, servers: list[str]) -> dict[str, str]:
    """Node name -> server: source AS, mapping host and core on ``servers[0]``; client AS i on ``servers[i % n]``."""
    first, n = servers[0], len(servers)
    out = {plan.core: first, plan.ms: first}
    for t in getattr(plan, "transit", []):
        out[t.name] = first
    for a in plan.all_ases:
        where = servers[a.number % n] if a.number else first
        out[a.xtr] = out[a.switch] = where
        if a.number == 0:
            out[plan.source_host] = where
        for host, _eid in a.clients:
            out[host] = where
        if a.many_host:
            out[a.many_host] = where
        if getattr(plan, "rogue", None) and a.number == getattr(plan, "rogue_as", -1):
            out[plan.rogue] = where
    if getattr(plan, "outsider", None):
        out[plan.outsider] = first
    return out


_seq = itertools.count()


class RemoteShell(RemoteMixin):
    """The cluster edition's remote node, with our SSH (master connection, no sudo as root) and a popen
    whose program runs on the node's server in its namespace and can be signalled there."""

    def __init__(self, name: str, server: str = "localhost", serverIP: str | None = None, **kwargs: Any) -> None:
        self.server = server
        self.serverIP = serverIP or server.split("@")[-1]
        self.user = None
        self.controlPath = False
        self.splitInit = False
        self.ssh = CONNECTIONS[server]
        self.dest = server
        self.sshcmd = self.ssh.argv("", tty=True)[:-1]
        self.isRemote = True
        self.shell, self.pid = None, None
        super(RemoteMixin, self).__init__(name, **kwargs)  # Node.__init__ (RemoteMixin's would call findUser)

    def _popen(self, cmd, sudo: bool = True, tt: bool = True, **params):  # type: ignore[override]
        """Run ``cmd`` (list) on the server (the shell: with a tty); no sudo: we are root there."""
        if isinstance(cmd, str):
            cmd = cmd.split()
        params.pop("preexec_fn", None)
        return subprocess.Popen(self.ssh.argv(shlex.join(["env", *_marks(), *cmd]), tty=tt),
                                start_new_session=True, env=_unmarked_env(), **params)

    def rcmd(self, command: str, timeout: float = SSH_TIMEOUT) -> str:  # type: ignore[override]
        """Run a shell command in the server's root namespace; its output (stdout and stderr)."""
        res = self.ssh.run(command, timeout=timeout)
        return (res.stdout + res.stderr).strip()

    def popen(self, *args, **kwargs):  # type: ignore[override]
        """A program in this node's namespace on its server (``mnexec -a PID``), as a :class:`RemotePopen`.

        ``env`` is passed for the ``CORECAST_*``/``PYTHON*``/``PATH`` variables (ssh carries no
        environment), ``cwd`` becomes a ``cd``; ``pass_fds`` cannot cross SSH and are dropped.
        """
        argv = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else (
            args[0].split() if len(args) == 1 else list(args))
        env = kwargs.pop("env", None) or dict(os.environ)
        cwd = kwargs.pop("cwd", None)
        for key in ("pass_fds", "mncmd", "preexec_fn", "close_fds", "start_new_session", "shell"):
            kwargs.pop(key, None)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        keep = {k: v for k, v in env.items() if k.startswith(("CORECAST_", "PYTHON", "PATH", "LANG", "LC_"))
                and k != "CORECAST_PARENT_FD"}
        piddir = os.path.join(_RUNDIR["path"], "state", "cluster")
        os.makedirs(piddir, exist_ok=True)
        pidfile = os.path.join(piddir, f"{self.name}-{os.getpid()}-{next(_seq)}.pid")
        inner = shlex.join(["env", *[f"{k}={v}" for k, v in keep.items()], "mnexec", "-a", str(self.pid), *argv])
        command = (f"{'cd ' + shlex.quote(cwd) + ' && ' if cwd else ''}echo $$ > {shlex.quote(pidfile)} && "
                   f"exec {inner}")
        proc = RemotePopen(self.ssh.argv(command), start_new_session=True, env=_unmarked_env(), **kwargs)
        proc.ssh, proc.pidfile = self.ssh, pidfile
        return proc


_RUNDIR: dict[str, str] = {}


class ClusterRouter(RemoteShell, LinuxRouter):
    """A router (border, core, transit) on a server."""


class ClusterHost(RemoteShell, EidHost):
    """An end host on a server."""


class ClusterBridge(RemoteShell, MarkedBridge):
    """An AS's LAN bridge in a server's root namespace, marked there as the run's."""

    def start(self, controllers) -> None:  # type: ignore[override]
        """Create the bridge (Mininet's LinuxBridge), then mark it on its server."""
        super(MarkedBridge, self).start(controllers)
        self.cmd(_mark_cmd(self.name))


def _mark_cmd(name: str) -> str:
    alias, group = registry.link_alias(), registry.link_group()
    return f"ip link set dev {name} alias {alias} group {group}" if alias and group else "true"


class ClusterLink(RemoteLink):
    """A veth pair on one server (root-namespace ends marked there), or the cluster edition's SSH
    Ethernet tunnel between two servers (tap devices marked, then moved and renamed)."""

    _links = itertools.count()

    def makeIntfPair(self, intfname1, intfname2, addr1=None, addr2=None, node1=None, node2=None,
                     deleteIntfs=True):  # type: ignore[override]
        node1 = self.node1 if node1 is None else node1
        node2 = self.node2 if node2 is None else node2
        if node1.server == node2.server:
            out = Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs=deleteIntfs)
            for name, node in ((intfname1, node1), (intfname2, node2)):
                if not node.inNamespace:
                    node.cmd(_mark_cmd(name))
            return out
        self.tunnel = self.makeTunnel(node1, node2, intfname1, intfname2, addr1, addr2)
        return self.tunnel

    def makeTunnel(self, node1, node2, intfname1, intfname2, addr1=None, addr2=None):  # type: ignore[override]
        """Two taps, an ``ssh -w`` between them run on node1's server, then each tap into its node."""
        n = next(self._links)
        taps = (TAP_BASE + 2 * n, TAP_BASE + 2 * n + 1)
        for node, tap in ((node1, taps[0]), (node2, taps[1])):
            out = node.rcmd(f"ip tuntap add dev tap{tap} mode tap && {_mark_cmd(f'tap{tap}')}")
            if out:
                raise RuntimeError(f"{node.server}: cannot create tap{tap}: {out}")
        hop = [*Ssh.base(), "-n", "-o", "Tunnel=ethernet", "-w", f"{taps[0]}:{taps[1]}", node2.server, "echo @"]
        cmd = shlex.join(["env", *_marks(), *hop])
        tunnel = subprocess.Popen(node1.ssh.argv(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True, env=_unmarked_env())
        ready, _, _ = select.select([tunnel.stdout], [], [], SSH_TIMEOUT)  # '@' once the tunnel is up
        first = tunnel.stdout.read(1) if ready else b""
        if first != b"@":
            if tunnel.poll() is None:
                os.killpg(tunnel.pid, signal.SIGKILL)
                tunnel.wait(5)
            err = (tunnel.stderr.read() or b"").decode(errors="replace").strip()
            raise RuntimeError(f"SSH tunnel {node1.server} -> {node2.server} did not come up: {err[-200:]}")
        TUNNELS.append({"ends": [f"{node1.name}:{intfname1}", f"{node2.name}:{intfname2}"],
                        "servers": [node1.server, node2.server], "kind": "ssh-ethernet"})
        for node, tap, name, addr in ((node1, taps[0], intfname1, addr1), (node2, taps[1], intfname2, addr2)):
            move = f" && ip link set tap{tap} netns {node.pid}" if node.inNamespace else ""
            out = node.rcmd(f"ip link set tap{tap} up{move}")
            out += node.cmd(f"ip link set tap{tap} name {name}" + (f" address {addr}" if addr else ""))
            if out.strip():
                raise RuntimeError(f"{node.name}: cannot set up tunnel end {name}: {out.strip()}")
        return tunnel

    def stop(self) -> None:  # type: ignore[override]
        if self.tunnel is not None:
            self.tunnel.terminate()
        Link.stop(self)
        self.tunnel = None


TUNNELS: list[dict[str, Any]] = []
"""The SSH tunnels of the network being built (written to ``cluster.json``)."""


class AsPlacer(Placer):
    """The cluster edition's placer interface over :func:`placement` (whole ASes per server)."""

    where: dict[str, str] = {}

    def place(self, node: str) -> str:  # type: ignore[override]
        return self.where.get(node, self.servers[0])


class CorecastCluster(MininetCluster):
    """``MininetCluster`` with our node classes, :class:`AsPlacer`, one SSH master per server, and
    no precheck by ``sudo`` (we are root on every server; :func:`precheck` checks SSH and the run directory)."""

    def __init__(self, *args, servers: list[str], where: dict[str, str], **kwargs: Any) -> None:
        self.servers = servers
        self.serverIP = {s: s.split("@")[-1] for s in servers}
        self.user = None
        self.connections = {}
        AsPlacer.where = where
        self.placement = AsPlacer
        self.cdir = None
        Mininet.__init__(self, *args, **kwargs)


def open_connections(servers: list[str], rundir: str) -> None:
    """A master connection to every server; ConfigError (one line) if one is unreachable or does not
    see ``rundir`` (the run directory must be the same path on every server)."""
    ctl_dir = os.path.join(rundir, "state", "ssh")
    os.makedirs(ctl_dir, exist_ok=True)
    _RUNDIR["path"] = rundir
    token = os.urandom(6).hex()
    probe = os.path.join(rundir, "state", "cluster-probe")
    with open(probe, "w") as fh:
        fh.write(token)
    try:
        for s in servers:
            ssh = CONNECTIONS[s] = Ssh(s, ctl_dir)
            ssh.start_master()
            res = ssh.run(f"cat {shlex.quote(probe)}; command -v mnexec >/dev/null || echo no-mnexec")
            if "no-mnexec" in res.stdout:
                raise ConfigError(f"server '{s}' has no mnexec (install Mininet there)")
            if res.stdout.strip() != token:
                raise ConfigError(f"server '{s}' does not see the run directory {rundir} (it must be shared, same path)")
    finally:
        os.unlink(probe)


def build(topo: Any, plan: Any, servers: list[str], rundir: str) -> Mininet:
    """Open the connections, then build and start the cluster network for ``topo`` (placement of ``plan``)."""
    open_connections(servers, rundir)
    where = placement(plan, servers)
    TUNNELS.clear()
    net = CorecastCluster(topo=topo, servers=servers, where=where, switch=ClusterBridge,
                          link=ClusterLink, controller=None, autoSetMacs=False, build=False, waitConnected=False)
    net.build()
    net.start()
    write_json_atomic(os.path.join(rundir, "cluster.json"),
                      {"servers": servers, "placement": where, "tunnels": list(TUNNELS),
                       "run_id": registry.run_id(), "link_group": registry.link_group()})
    return net


def reap_command(rid: str, group: int | None) -> str:
    """The shell command run on each server at teardown: kill our marked processes, delete our links."""
    return shlex.join([sys.executable, "-m", "testbed.net.cluster_ssh", "reap", rid, str(group or 0)])


def stop(net: Mininet | None) -> None:
    """Tear a cluster network down: node shells (SSH) and tunnels, then on every server whatever still
    carries the run's mark (processes, links), then the master connections."""
    rid, group = registry.run_id(), registry.link_group()
    try:
        if net is not None:
            for node in [*net.hosts, *net.switches]:
                node.quiet = True
                if node.shell is not None and node.shell.poll() is None:
                    try:
                        os.killpg(node.shell.pid, signal.SIGHUP)
                    except (ProcessLookupError, PermissionError):
                        pass
            for link in net.links:
                tun = getattr(link, "tunnel", None)
                if isinstance(tun, subprocess.Popen) and tun.poll() is None:
                    os.killpg(tun.pid, signal.SIGTERM)
            for node in [*net.hosts, *net.switches]:
                node.terminate()
        for ssh in CONNECTIONS.values():
            if rid and ssh.master is not None and ssh.master.poll() is None:
                try:
                    res = ssh.run(f"cd {shlex.quote(_PROJECT)} && {reap_command(rid, group)}", timeout=60)
                    if res.returncode:
                        print(f"corecast: teardown on {ssh.server}: {(res.stderr or res.stdout).strip()[-200:]}",
                              file=sys.stderr)
                except RuntimeError as exc:
                    print(f"corecast: teardown: {exc}", file=sys.stderr)
    finally:
        for ssh in CONNECTIONS.values():
            ssh.stop_master()
        CONNECTIONS.clear()


_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


