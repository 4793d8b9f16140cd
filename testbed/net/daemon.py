"""One small class per program we run inside a host, IPMininet style.

A :class:`Daemon` renders its JSON config into the run directory, checks it
(dry run), starts ``python -m nodes.NAME --config FILE`` inside its Mininet
node with output to ``logs/NAME.log``, waits for its ready file (no fixed
sleeps), and stops it with SIGTERM then SIGKILL. A daemon that dies early is
reported with the tail of its log.

Daemons die with the testbed process, whatever thread started them: every daemon
gets the read end of a pipe (:func:`parent_watch_fd`, env ``CORECAST_PARENT_FD``)
whose only write end the testbed process holds and never writes; when that process
ends, however it ends (even SIGKILL), the kernel closes the write end, the daemon's
watch thread reads end-of-file and the daemon stops as on SIGTERM
(:func:`testbed.nodeutil.die_with_parent`). ``PR_SET_PDEATHSIG`` alone is not
enough: it fires when the *thread* that forked the child exits.

Node programs (``nodes.X``) are not exec'd one interpreter each but forked by the
run's zygote (:mod:`testbed.net.launcher`), which imported the node modules once:
the child enters the node's network and mount namespaces before it runs, so the
program sees exactly what ``mnexec -a`` would have given it, and ``self.proc`` is a
:class:`~testbed.net.launcher.ForkedProcess` with Popen's interface. Env
``CORECAST_LAUNCH=exec`` goes back to one ``python -m nodes.X`` per daemon (and
daemons with their own :meth:`Daemon.command`, FRR's, are always exec'd).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from testbed.nodeutil import write_json_atomic

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DaemonError(RuntimeError):
    """A daemon failed to start or died; the message names it and quotes its log."""


_watch: tuple[int, int, int] | None = None  # (owner pid, read fd, write fd)


def parent_watch_fd() -> int:
    """The read end of this process's parent-watch pipe (created once per process, never written)."""
    global _watch
    if _watch is None or _watch[0] != os.getpid():
        r, w = os.pipe()  # both close-on-exec: only the children we pass ``r`` to inherit it
        _watch = (os.getpid(), r, w)
    return _watch[1]


def watch_env(env: dict[str, str]) -> tuple[int, ...]:
    """Put the parent-watch fd into ``env`` (``CORECAST_PARENT_FD=FD:INODE``); return the fds to pass."""
    fd = parent_watch_fd()
    env["CORECAST_PARENT_FD"] = f"{fd}:{os.fstat(fd).st_ino}"
    return (fd,)


_zygote: tuple[int, str, Any] | None = None  # (owner pid, run id, Zygote)
_zygote_lock = threading.Lock()


def launch_mode() -> str:
    """How node programs start: ``fork`` (from the zygote, the default) or ``exec`` (env ``CORECAST_LAUNCH``)."""
    return "exec" if os.environ.get("CORECAST_LAUNCH", "fork").strip().lower() == "exec" else "fork"


def zygote(env: dict[str, str]) -> Any:
    """This process's zygote for the current run (started on first use, again if the run id changed)."""
    global _zygote
    from testbed.net import registry
    from testbed.net.launcher import Zygote
    rid = registry.run_id() or ""
    with _zygote_lock:
        if _zygote is not None and (_zygote[0] != os.getpid() or _zygote[1] != rid or not _zygote[2].alive()):
            old, _zygote = _zygote, None
            if old[0] == os.getpid():
                old[2].close()
        if _zygote is None:
            _zygote = (os.getpid(), rid, Zygote(cwd=PROJECT_ROOT, env=env, pass_fds=(parent_watch_fd(),)))
        return _zygote[2]


def close_zygote() -> None:
    """Stop this process's zygote (any child still running is SIGKILLed by it); no-op without one."""
    global _zygote
    with _zygote_lock:
        old, _zygote = _zygote, None
    if old is not None and old[0] == os.getpid():
        old[2].close()


def log_tail(path: str, lines: int = 12) -> str:
    """Return the last ``lines`` lines of a log file (empty if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Daemon:
    """A node program (``nodes.<program>``) run inside a Mininet node."""

    program = ""
    """Module under ``nodes/`` (set by subclasses)."""

    def __init__(self, node: Any, name: str, rundir: str, config: dict[str, Any]) -> None:
        self.node = node
        self.name = name
        self.rundir = rundir
        self.config = dict(config)
        self.config.setdefault("name", name)
        self.config.setdefault("ready_file", os.path.join(rundir, "state", f"{name}.ready"))
        self.config.setdefault("status_file", os.path.join(rundir, "state", f"{name}.status.json"))
        self.config.setdefault("log_level", "info")
        self.config_path = os.path.join(rundir, "config", f"{name}.json")
        self.log_path = os.path.join(rundir, "logs", f"{name}.log")
        self.proc: subprocess.Popen | None = None

    def render(self) -> str:
        """Write the config file into the run directory and return its path."""
        for sub in ("config", "logs", "state"):
            os.makedirs(os.path.join(self.rundir, sub), exist_ok=True)
        write_json_atomic(self.config_path, self.config)
        return self.config_path

    def dry_run(self) -> None:
        """Check the config without starting anything (subclasses validate their keys)."""

    def command(self) -> list[str]:
        """The command line run inside the node."""
        return [sys.executable, "-m", f"nodes.{self.program}", "--config", self.config_path]

    def start(self) -> None:
        """Render, check and launch the program inside the node (does not wait)."""
        self.render()
        self.dry_run()
        try:
            os.unlink(self.config["ready_file"])
        except FileNotFoundError:
            pass
        env = dict(os.environ)
        env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        fds = watch_env(env)
        log = open(self.log_path, "ab")
        try:
            if self.forkable():
                from testbed.net.launcher import LauncherError
                pid = getattr(self.node, "pid", None) if getattr(self.node, "inNamespace", True) else None
                try:
                    self.proc = zygote(env).spawn([f"nodes.{self.program}", *self.command()[3:]], log.fileno(), env,
                                                  PROJECT_ROOT, pid, module=f"nodes.{self.program}",
                                                  watch_fd=fds[0], cmdline=self.command())
                except LauncherError as exc:
                    raise DaemonError(f"{self.name} ({self.program}) could not be started: {exc}") from None
                return
            self.proc = self.node.popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env, pass_fds=fds)
        finally:
            log.close()

    def forkable(self) -> bool:
        """True if this daemon is forked by the zygote: a ``nodes.X`` program (the default
        :meth:`command`) in a node with a shell pid, unless ``CORECAST_LAUNCH=exec``."""
        return (launch_mode() == "fork" and type(self).command is Daemon.command
                and isinstance(getattr(self.node, "pid", None), int)
                and not getattr(self.node, "isRemote", False))  # a cluster node (testbed.net.cluster): ssh

    def alive(self) -> bool:
        """True while the program runs."""
        return self.proc is not None and self.proc.poll() is None

    def died_line(self, when: str = "") -> DaemonError:
        """A one-line error for a daemon found dead (``when``: e.g. 'mid-stream')."""
        code = self.proc.poll() if self.proc else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        last = log_tail(self.log_path, 1).strip()[-200:]
        return DaemonError(f"{self.name} ({self.program}) died{' ' + when if when else ''} ({how}); "
                           f"see {self.log_path}" + (f"; last line: {last}" if last else ""))

    def died_error(self) -> DaemonError:
        """An error describing an early exit, with the log's tail."""
        code = self.proc.poll() if self.proc else None
        return DaemonError(f"{self.name} ({self.program}) exited with status {code}; "
                           f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")

    def is_ready(self) -> bool:
        """True once the program wrote its ready file; raises DaemonError if it died."""
        if os.path.exists(self.config["ready_file"]):
            return True
        if not self.alive():
            raise self.died_error()
        return False

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until ready, polling; raise DaemonError on death or timeout."""
        wait_all_ready([self], timeout)

    def after_stop(self) -> None:
        """Remove what this daemon kept outside the run directory, once it is stopped (default: nothing)."""

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; return the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    print(f"corecast: {self.name} (pid {self.proc.pid}) did not die on SIGKILL", file=sys.stderr)
        self.after_stop()
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the program to end by itself; return its status or None on timeout."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def wait_all_ready(daemons: list[Daemon], timeout: float = 20.0) -> None:
    """Wait for every daemon's ready file; raise DaemonError naming the first that died or lagged."""
    deadline = time.monotonic() + timeout
    pending = list(daemons)
    delay = 0.005
    while pending:
        pending = [d for d in pending if not d.is_ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            d = pending[0]
            raise DaemonError(f"{d.name} ({d.program}) not ready after {timeout:.0f} s "
                              f"({len(pending)} daemons pending); last lines of {d.log_path}:\n{log_tail(d.log_path)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def first_dead(daemons: list[Daemon]) -> Daemon | None:
    """The first started daemon that is no longer running, or None."""
    return next((d for d in daemons if d.proc is not None and d.proc.poll() is not None), None)


STOP_PER_DAEMON = 0.02
"""Seconds :func:`stop_all` adds to its deadline per running daemon (1,000 xTRs writing their
last status file on 2 cores take longer than 5 s)."""


def stop_all(daemons: list[Daemon], timeout: float = 30.0) -> None:
    """Stop many daemons at once: SIGTERM to every one, wait up to ``timeout`` (plus
    :data:`STOP_PER_DAEMON` per running daemon) in all, SIGKILL the rest.

    The wait ends as soon as they have exited; its length only matters on a loaded machine, where a
    client finishing its player file and counting its frames with ffprobe could miss the former 5 s
    and be SIGKILLed with its record and status unwritten."""
    running = [d for d in daemons if d.proc is not None and d.proc.poll() is None]
    for d in running:
        try:
            d.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout + STOP_PER_DAEMON * len(running)
    for d in running:
        try:
            d.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            d.proc.kill()
            try:
                d.proc.wait(5)
            except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it, say so
                print(f"corecast: {d.name} (pid {d.proc.pid}) did not die on SIGKILL", file=sys.stderr)
    for d in daemons:
        d.after_stop()


class XtrDaemon(Daemon):
    """The LISP xTR with the CoreCast extension (``nodes.xtr``)."""

    program = "xtr"


class MapServerDaemon(Daemon):
    """The Map-Server/Map-Resolver (``nodes.mapserver``)."""

    program = "mapserver"


class SourceDaemon(Daemon):
    """The live streaming source S (``nodes.source``)."""

    program = "source"


class ClientDaemon(Daemon):
    """A receiver of the stream, one EID or many (``nodes.client``)."""

    program = "client"
