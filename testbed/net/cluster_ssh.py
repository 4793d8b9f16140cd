"""SSH for the cluster edition (:mod:`testbed.net.cluster`): one master connection per server, remote
programs that can be signalled, and the reaper teardown runs on every server.

* :class:`Ssh`: ``ssh`` to one server through a master connection this process owns
  (``ControlMaster``, socket in ``RUNDIR/state/ssh/``); ``CORECAST_SSH_CONFIG`` names an
  ``ssh_config`` file (``ssh -F``) used on every hop; ``BatchMode=yes`` (a prompt is an error).
* :class:`RemotePopen`: the local ``ssh`` of a program started on a server; a signal goes to the
  remote process group (its pid file), not only to the local client.
* :func:`reap` (``python -m testbed.net.cluster_ssh reap RUN_ID GROUP``, run on each server by
  teardown, or by hand after a crash): kill the processes carrying the run id, delete the links
  carrying the run's alias.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

from testbed.net import registry
from testbed.nodeutil import ConfigError

SSH_CONFIG_ENV = "CORECAST_SSH_CONFIG"
"""Env: an ssh_config file for every SSH hop (``ssh -F``); default: the user's own."""

SSH_TIMEOUT = 30.0
"""Deadline (s) of one SSH command (connection set-up included)."""

class Ssh:
    """SSH to one server through a master connection this process owns (``ControlMaster``)."""

    def __init__(self, server: str, ctl_dir: str) -> None:
        self.server = server
        self.ctl = os.path.join(ctl_dir, f"{len(os.listdir(ctl_dir))}.sock")
        self.master: subprocess.Popen | None = None

    @staticmethod
    def base() -> list[str]:
        """ssh with our options: batch mode, the config file of ``CORECAST_SSH_CONFIG`` if set."""
        argv = ["ssh", "-q", "-o", "BatchMode=yes"]
        cfg = os.environ.get(SSH_CONFIG_ENV)
        return argv + (["-F", cfg] if cfg else [])

    def argv(self, command: str, tty: bool = False) -> list[str]:
        """The local argv that runs ``command`` (a shell string) on the server, through the master."""
        return [*self.base(), "-o", "ControlMaster=no", "-S", self.ctl, *(["-tt"] if tty else ["-T"]),
                self.server, command]

    def start_master(self) -> None:
        """Open the master connection (a child of ours; dies with this thread's process: PDEATHSIG)."""
        argv = [*self.base(), "-M", "-N", "-S", self.ctl, "-o", "ControlPersist=no", self.server]
        self.master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, preexec_fn=_die_with_us, env=_unmarked_env())
        deadline = time.monotonic() + SSH_TIMEOUT
        while not os.path.exists(self.ctl):
            if self.master.poll() is not None:
                err = (self.master.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                raise ConfigError(f"cannot reach server '{self.server}' by SSH as root"
                                  + (f": {err[-1]}" if err else " (check keys, port and known_hosts)"))
            if time.monotonic() > deadline:
                self.stop_master()
                raise ConfigError(f"server '{self.server}': no SSH connection within {SSH_TIMEOUT:g} s")
            time.sleep(0.02)

    def run(self, command: str, timeout: float = SSH_TIMEOUT, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``command`` on the server; its CompletedProcess (text); NodeCommandError-like RuntimeError on timeout."""
        try:
            return subprocess.run(self.argv(command), input=input, capture_output=True, text=True, timeout=timeout,
                                  env=_unmarked_env())
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.server}: '{command[:60]}' did not finish within {timeout:g} s") from None

    def stop_master(self) -> None:
        """Close the master connection (every session through it ends)."""
        if self.master is None:
            return
        subprocess.run([*self.base(), "-S", self.ctl, "-O", "exit", self.server], capture_output=True, timeout=10)
        try:
            self.master.wait(5)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait(5)
        self.master = None


def _die_with_us() -> None:
    """preexec: SIGTERM this child when the thread that forked it ends (prctl PR_SET_PDEATHSIG)."""
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


CONNECTIONS: dict[str, Ssh] = {}
"""server -> its :class:`Ssh` while a cluster network is up (set by :func:`testbed.net.cluster.open_connections`)."""


class RemotePopen(subprocess.Popen):
    """Popen of the local ``ssh`` that runs a program on a server; signals go to the remote process group."""

    ssh: Ssh
    pidfile: str

    def send_signal(self, sig: int) -> None:  # type: ignore[override]
        """Signal the remote program's process group (its pid file), not only the local ssh."""
        if self.poll() is not None:
            return
        try:
            self.ssh.run(f"p=$(cat {shlex.quote(self.pidfile)} 2>/dev/null) && kill -{int(sig)} -- -$p 2>/dev/null "
                         f"|| kill -{int(sig)} $p 2>/dev/null", timeout=10)
        except RuntimeError:
            pass
        if sig == signal.SIGKILL:
            super().send_signal(sig)

    def terminate(self) -> None:  # type: ignore[override]
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:  # type: ignore[override]
        self.send_signal(signal.SIGKILL)


def _marks() -> list[str]:
    """``K=V`` items of the run's environment mark, for ``env`` on a server (ssh carries no environment)."""
    return [f"{k}={os.environ[k]}" for k in (registry.ENV_MARK, registry.ENV_ID) if os.environ.get(k)]


def _unmarked_env() -> dict[str, str]:
    """Our environment without the run's mark: a local ``ssh`` is not a process of the run on any server
    (on a loopback "server" the reaper would otherwise kill the connection it runs through)."""
    return {k: v for k, v in os.environ.items() if k not in (registry.ENV_MARK, registry.ENV_ID)}


def reap(rid: str, group: int) -> tuple[int, int]:
    """On a server: SIGKILL every process carrying ``CORECAST_RUN_ID=rid`` (not ourselves nor our
    ancestors), then delete every root-namespace link with the run's alias; (processes, links)."""
    from testbed.net.clean import _ancestors, links_with_alias
    mark = f"{registry.ENV_ID}={rid}".encode()
    mine = _ancestors()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in mine:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if mark not in fh.read().split(b"\0"):
                    continue
            os.kill(int(name), signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    if group:
        subprocess.run(["ip", "link", "del", "group", str(group)], capture_output=True, timeout=60)
    alias = registry.ALIAS_PREFIX + rid
    links = [n for n, a in links_with_alias() if a == alias]
    for n in links:
        subprocess.run(["ip", "link", "del", n], capture_output=True, timeout=10)
    return killed, len(links)


def main(argv: list[str]) -> int:
    """``python -m testbed.net.cluster_ssh reap RUN_ID GROUP`` (run on a server by teardown)."""
    if len(argv) != 3 or argv[0] != "reap" or not argv[2].isdigit():
        print("usage: python -m testbed.net.cluster_ssh reap RUN_ID GROUP", file=sys.stderr)
        return 2
    killed, links = reap(argv[1], int(argv[2]))
    print(f"reaped {killed} processes, {links} links")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
