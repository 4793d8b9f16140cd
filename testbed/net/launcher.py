"""A pre-forked "zygote" that starts node programs by ``fork`` instead of a fresh ``python -m nodes.X``.

Every node program used to be a new interpreter that imported the testbed again
(pydantic schemas, wire codecs, the LISP cores): about 0.3 s of CPU and 15 MB of
private memory per daemon, which at 1,000 ASes is 1,000 imports and 15 GB. The
zygote is one process per run (started in the root namespace, as a child of the
testbed process, carrying the run's ``CORECAST_RUN`` mark in its environment) that
imports the node modules once, freezes the garbage collector (so the children's
copy-on-write pages stay shared) and then forks one child per daemon. The child:

1. starts a new session (``setsid``, as ``mnexec -d`` does: it leads its own group);
2. enters the node's network and mount namespaces (``setns`` on
   ``/proc/<node shell pid>/ns/net`` and ``.../ns/mnt``, as ``mnexec -a`` does), so
   every router keeps its own namespace, interfaces, kernel routes and counters, and
   opens its sockets and TUN device only there;
3. points stdout/stderr at the daemon's log, stdin at ``/dev/null``, takes the
   daemon's environment (its ``CORECAST_PARENT_FD`` watch pipe, passed with the
   request, so it still dies with the testbed process) and runs the node's
   ``main()`` (or ``node_main(NAME, run)``) as ``python -m nodes.X --config FILE`` would; its exit status is
   the program's.

Protocol (``SOCK_SEQPACKET`` socket pair, one JSON object per message):
request ``{"op": "spawn", "id", "module" | "path", "argv", "env", "cwd", "ns_pid"}``
with the log and watch fds (SCM_RIGHTS); reply ``{"id", "pid"}`` with the child's
pidfd, or ``{"id", "error"}``; and, whenever a child ends, ``{"exit": pid,
"status": returncode}`` (negative: killed by that signal, as :class:`subprocess.Popen`).
:class:`ForkedProcess` is the testbed-side handle, with Popen's ``pid``,
``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate`` and ``kill``
(signals go through the pidfd: a reaped pid that the kernel reused is never hit).

Errors: a zygote that cannot start (or stops answering within
:data:`REPLY_TIMEOUT`) raises :class:`LauncherError` (one line); a child that cannot
enter its namespace writes one line to its log and exits 127, reported by the
daemon as an early death with the log's tail, like a program that failed to exec.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from testbed.net.zygote import ROOM, recv_message, send_message

PRELOAD = ("nodes.xtr", "nodes.mapserver", "nodes.client", "nodes.source", "nodes.peer", "nodes.attacker")
"""Node modules the zygote imports before it forks anything."""
START_TIMEOUT = 60.0
"""Seconds the zygote may take to import the node modules and say it is ready."""
REPLY_TIMEOUT = 30.0
"""Seconds a spawn request may wait for its reply."""


class LauncherError(RuntimeError):
    """The zygote could not be started or stopped answering (one line)."""


class ForkedProcess:
    """A daemon forked by the zygote, with the part of :class:`subprocess.Popen` that daemons use."""

    def __init__(self, zygote: "Zygote", pid: int, pidfd: int, args: list[str]) -> None:
        self.zygote = zygote
        self.pid = pid
        self.pidfd = pidfd
        self.args = args
        self.returncode: int | None = None

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        if self.returncode is None:
            self.zygote.pump(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit status; :class:`subprocess.TimeoutExpired` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            self.zygote.pump(min(left, 1.0))
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the process through its pidfd (nothing once it has ended)."""
        if self.returncode is not None or self.pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The testbed side of one zygote process: start it, ask it for children, read their exits."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD, cwd: str | None = None,
                 env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()) -> None:
        self.lock = threading.RLock()
        self.children: dict[int, ForkedProcess] = {}
        self.exits: dict[int, int] = {}
        self.replies: dict[int, tuple[dict[str, Any], list[int]]] = {}
        self.next_id = 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        watch = pass_fds[0] if pass_fds else -1
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.net.zygote", str(theirs.fileno()), str(watch), *preload,
                 "--room=" + "-" * ROOM],
                stdin=subprocess.DEVNULL, cwd=cwd, env=env, pass_fds=(theirs.fileno(), *pass_fds))
        except OSError as exc:
            ours.close()
            raise LauncherError(f"cannot start the zygote: {exc.strerror}") from None
        finally:
            theirs.close()
        msg = self._read(START_TIMEOUT, lambda: "ready" in self.info)
        if msg is None:
            self.close()
            raise LauncherError(f"the zygote did not become ready within {START_TIMEOUT:g} s")

    info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        """The zygote's own pid."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the zygote process runs and its socket is open."""
        return self.sock.fileno() >= 0 and self.proc.poll() is None

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "ready" in msg:
            self.info = msg
        elif "exit" in msg:
            pid, code = int(msg["exit"]), int(msg["status"])
            child = self.children.pop(pid, None)
            if child is not None:
                child._set_exit(code)
            else:
                self.exits[pid] = code
        elif "id" in msg:
            self.replies[int(msg["id"])] = (msg, fds)
            return
        for fd in fds:
            os.close(fd)

    def _lost(self) -> None:
        """The zygote is gone: every child it had is reported ended (status 255 if unknown)."""
        if self.sock.fileno() >= 0:
            self.sock.close()
        for child in list(self.children.values()):
            child._set_exit(255)
        self.children.clear()

    def pump(self, timeout: float) -> bool:
        """Read what the zygote sent within ``timeout`` s (exits, replies); False if it is gone."""
        with self.lock:
            if self.sock.fileno() < 0:
                return False
            poller = select.poll()
            poller.register(self.sock.fileno(), select.POLLIN)
            wait_ms = max(0, int(timeout * 1000))
            while poller.poll(wait_ms):
                try:
                    msg, fds = recv_message(self.sock)
                except (OSError, ValueError):
                    msg, fds = None, []
                if msg is None:
                    self._lost()
                    return False
                self._dispatch(msg, fds)
                wait_ms = 0
            return True

    def _read(self, timeout: float, done) -> bool | None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(min(left, 0.5)):
                return None
        return True

    def spawn(self, argv: list[str], log_fd: int, env: dict[str, str], cwd: str, ns_pid: int | None,
              module: str | None = None, path: str | None = None, watch_fd: int | None = None,
              cmdline: list[str] | None = None) -> ForkedProcess:
        """Fork a child that runs ``module.main()`` (or the script ``path``) with ``sys.argv = argv``,
        output to ``log_fd``, in the namespaces of ``ns_pid`` (None: the zygote's own); ``cmdline``: what its
        ``/proc/PID/cmdline`` shows (default: the zygote's)."""
        with self.lock:
            if not self.alive():
                raise LauncherError("the zygote is not running")
            rid, self.next_id = self.next_id, self.next_id + 1
            req = {"op": "spawn", "id": rid, "module": module, "path": path, "argv": argv, "env": env,
                   "cwd": cwd, "ns_pid": ns_pid, "cmdline": cmdline}
            try:
                send_message(self.sock, req, [log_fd] + ([watch_fd] if watch_fd is not None else []))
            except OSError as exc:
                raise LauncherError(f"the zygote does not take requests: {exc.strerror}") from None
            if self._read(REPLY_TIMEOUT, lambda: rid in self.replies) is None:
                raise LauncherError(f"the zygote did not answer a spawn within {REPLY_TIMEOUT:g} s")
            msg, fds = self.replies.pop(rid)
            if "error" in msg:
                for fd in fds:
                    os.close(fd)
                raise LauncherError(f"the zygote could not fork: {msg['error']}")
            pid = int(msg["pid"])
            child = ForkedProcess(self, pid, fds[0] if fds else -1, argv)
            if pid in self.exits:  # it ended before its reply was read
                child._set_exit(self.exits.pop(pid))
            else:
                self.children[pid] = child
            return child

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket (the zygote SIGKILLs any child left and exits), and wait for it (bounded)."""
        with self.lock:
            if self.sock.fileno() >= 0:
                self.sock.close()
            for child in list(self.children.values()):
                child.kill()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for child in list(self.children.values()):
            child._set_exit(-signal.SIGKILL)
        self.children.clear()
