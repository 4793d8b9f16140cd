"""Mininet node, switch and link classes: nodes configure themselves in ``config()``, every shell
command has a deadline, and every root-namespace link carries the run's mark.

* :class:`DeadlineShell` (mixed into every node class we use): ``cmd()`` refuses a
  command longer than :data:`~testbed.net.nodecmd.MAX_SHELL_COMMAND` bytes (a node's
  shell reads through a terminal that cuts lines at 4,095 bytes and would then never
  answer), waits at most ``timeout`` seconds (default ``CORECAST_CMD_TIMEOUT``, 60 s),
  and after a Ctrl-C or a timeout kills the pending command (the shell's descendants:
  the shell has no controlling terminal, so a written ^C does nothing) and
  resynchronises the shell on a fresh marker before the next command (Mininet itself
  asserts, or waits for ever). During
  teardown (``quiet``) a failing command is logged and returns ``''``.
* :class:`MarkedLink` and :class:`MarkedBridge` set the interface alias
  (``/sys/class/net/NAME/ifalias``) of every link they create in the root network
  namespace to ``corecast:<run id>``, which ``corecast clean`` takes as proof of
  ownership, and put it in the run's link group (teardown deletes them all at once).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import time

from mininet.link import Link
from mininet.node import Host, Node
from mininet.nodelib import LinuxBridge

from testbed.net import registry
from testbed.net.nodecmd import DEFAULT_SHELL_TIMEOUT, MAX_SHELL_COMMAND, NodeCommandError, describe

log = logging.getLogger("corecast.net")


def _command_text(args: tuple) -> str:
    if len(args) == 1 and isinstance(args[0], list):
        args = tuple(args[0])
    return " ".join(str(a) for a in args)


class DeadlineShell:
    """Mixin for Mininet nodes: bounded, deadline-guarded ``cmd()`` and a shell that survives Ctrl-C."""

    quiet = False
    """Teardown mode: a command that fails or times out is logged and returns ''."""

    _broken: str | None = None

    def cmd(self, *args, **kwargs):  # type: ignore[override]
        """Run a shell command and return its output; NodeCommandError if too long, too slow or shell gone."""
        timeout = kwargs.pop("timeout", None) or DEFAULT_SHELL_TIMEOUT
        text = _command_text(args)
        size = len(text.encode())
        if size > MAX_SHELL_COMMAND:
            raise NodeCommandError(f"{self.name}: a command of {size} bytes is longer than a node shell may take "
                                   f"({MAX_SHELL_COMMAND}); run it with run_in_node (popen) instead")
        try:
            self._usable_shell()
            self.sendCmd(*args, **kwargs)
            return self.waitOutput(kwargs.get("verbose", False), timeout=timeout)
        except NodeCommandError as exc:
            if self.quiet:
                log.debug("teardown: %s", exc)
                return ""
            raise

    def _usable_shell(self) -> None:
        if not self.shell or self.shell.poll() is not None:
            raise NodeCommandError(f"{self.name}: its shell is gone")
        if self._broken:
            raise NodeCommandError(self._broken)
        if self.waiting:  # left so by a Ctrl-C or a timeout
            self.resync()
            if self._broken:
                raise NodeCommandError(self._broken)

    def sendCmd(self, *args, **kwargs):  # type: ignore[override]
        """Mininet's sendCmd, after resynchronising a shell left waiting by an interrupted command."""
        if self.waiting and self.shell and not self._broken:
            self.resync()
        if self.waiting:
            raise NodeCommandError(self._broken or f"{self.name}: its shell is still busy")
        return super().sendCmd(*args, **kwargs)

    def waitOutput(self, verbose: bool = False, findPid: bool = True, timeout: float | None = None) -> str:  # type: ignore[override]
        """Output of the pending command, waiting at most ``timeout`` s (then the command is interrupted)."""
        limit = timeout or DEFAULT_SHELL_TIMEOUT
        deadline = time.monotonic() + limit
        output = ""
        while self.waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                cmd = self.lastCmd
                self.resync()
                raise NodeCommandError(f"{self.name}: '{describe(cmd or '')}' did not finish within {limit:g} s")
            if self.shell is None or self.shell.poll() is not None:
                raise NodeCommandError(f"{self.name}: its shell died during '{describe(self.lastCmd or '')}'")
            # Mininet's own poller also waits for POLLOUT, which a pty always has: its timeout never works
            if self.readbuf or self._input_poller().poll(int(min(left, 0.5) * 1000) + 1):
                output += self.monitor(findPid=findPid)
        return output

    def _input_poller(self) -> select.poll:
        poller = getattr(self, "_poll_in", None)
        if poller is None or getattr(self, "_poll_fd", None) != self.stdout.fileno():
            poller = select.poll()
            poller.register(self.stdout.fileno(), select.POLLIN | select.POLLPRI)
            self._poll_in, self._poll_fd = poller, self.stdout.fileno()
        return poller

    def cleanup(self) -> None:
        """Mininet's cleanup, but the wait for the shell to exit is bounded (5 s, then SIGKILL)."""
        shell = self.shell
        if shell is None or not self.waitExited:
            super().cleanup()
            return
        self.waitExited = False
        super().cleanup()
        try:
            shell.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(shell.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                shell.wait(5)
            except subprocess.TimeoutExpired:
                log.warning("%s: its shell (pid %d) does not exit", self.name, shell.pid)

    def resync(self, timeout: float = 10.0) -> None:
        """Kill whatever the shell runs, then read up to a fresh marker; else mark the shell broken.

        ``timeout`` (s) only bounds a shell that does not answer: a live one answers in milliseconds,
        but a loaded 2-core CI machine once missed the former 3 s (with a late-forked command)."""
        if not self.shell or self.shell.poll() is not None:
            self.waiting = False
            self._broken = f"{self.name}: its shell is gone"
            return
        marker = f"corecast-resync-{os.urandom(4).hex()}"
        _kill_descendants(self.shell.pid)  # the shell has no controlling terminal: a written ^C would do nothing
        try:
            self.write(f"echo {marker}\n")
        except OSError:
            self._broken = f"{self.name}: its shell does not take input"
            return
        fd = self.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        buf = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poller.poll(100):
                try:
                    buf += os.read(fd, 4096).decode(errors="replace")
                except OSError:
                    break
                at = buf.find(marker)
                if at >= 0 and chr(127) in buf[at:]:
                    self.readbuf = ""
                    self.waiting = False
                    return
            # on a loaded machine the shell may fork the interrupted command only now: keep killing
            # its children until the marker (a builtin, no child of its own) comes back
            _kill_descendants(self.shell.pid)
        self._broken = f"{self.name}: its shell does not answer (interrupted command: '{describe(self.lastCmd or '')}')"


def _kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` (not ``pid`` itself), found through /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    todo, found = list(children.get(pid, [])), []
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    for p in found:
        try:
            os.kill(p, 9)
        except (ProcessLookupError, PermissionError):
            pass


def _mark(name: str, alias: str, group: int) -> None:
    """Set a root-namespace link's alias and group (sysfs where it shows our namespace, else ``ip link``)."""
    try:
        with open(f"/sys/class/net/{name}/ifindex") as fh:
            same_ns = int(fh.read()) == socket.if_nametoindex(name)
    except (OSError, ValueError):
        same_ns = False
    if same_ns:
        try:
            with open(f"/sys/class/net/{name}/ifalias", "w") as fh:
                fh.write(alias)
            with open(f"/sys/class/net/{name}/netdev_group", "w") as fh:
                fh.write(str(group))
            return
        except OSError:
            pass
    subprocess.run(["ip", "link", "set", "dev", name, "alias", alias, "group", str(group)],
                   capture_output=True, timeout=10)


def mark_link(name: str) -> None:
    """Mark a root-namespace link as the current run's: alias ``corecast:<run id>`` (the proof of
    ownership ``corecast clean`` reads) and the run's link group (for a one-call teardown)."""
    alias, group = registry.link_alias(), registry.link_group()
    if alias and group:
        _mark(name, alias, group)


class MarkedLink(Link):
    """A veth link whose root-namespace ends carry the run's alias (see :func:`mark_link`)."""

    @classmethod
    def makeIntfPair(cls, intfname1, intfname2, addr1=None, addr2=None, node1=None, node2=None,
                     deleteIntfs=True):  # type: ignore[override]
        """Create the pair, then mark the ends that live in the root namespace."""
        result = super().makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs=deleteIntfs)
        for name, node in ((intfname1, node1), (intfname2, node2)):
            if node is not None and not node.inNamespace:
                mark_link(name)
        return result


class MarkedBridge(DeadlineShell, LinuxBridge):
    """Mininet's Linux bridge, marked as the run's and with deadline-guarded shell commands."""

    def start(self, controllers) -> None:  # type: ignore[override]
        """Create the bridge, then mark it."""
        super().start(controllers)
        mark_link(self.name)


class LinuxRouter(DeadlineShell, Node):
    """A node that forwards IPv4 (border routers, the core).

    Params: ``routes``, a list of ``(prefix, via)`` static routes added after the
    interfaces are up. Reverse-path filtering is off, since LISP and CoreCast
    packets written into a TUN device carry sources routed elsewhere.
    """

    def config(self, routes: list[tuple[str, str]] | None = None, **params):  # type: ignore[override]
        """Enable forwarding and add the static routes."""
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        self.cmd("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        for prefix, via in routes or []:
            self.cmd(f"ip route replace {prefix} via {via}")
        return result


class EidHost(DeadlineShell, Host):
    """An end host in an AS: default route to its border router.

    Params: ``gateway`` (the border router's LAN address) and optional
    ``local_block``: a prefix the kernel accepts as local (``ip route add local
    ... dev lo``), so one receiver process can serve thousands of client EIDs.
    """

    def config(self, gateway: str | None = None, local_block: str | None = None, **params):  # type: ignore[override]
        """Add the default route and the local client block."""
        result = super().config(**params)
        if gateway:
            self.cmd(f"ip route replace default via {gateway}")
        if local_block:
            self.cmd(f"ip route replace local {local_block} dev lo")
        self.cmd("sysctl -qw net.core.rmem_max=33554432 net.core.wmem_max=33554432")
        return result
