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

import array
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
PRELOAD = ("nodes.xtr", "nodes.mapserver", "nodes.client", "nodes.source", "nodes.peer", "nodes.attacker")
"""Node modules the zygote imports before it forks anything."""
START_TIMEOUT = 60.0
"""Seconds the zygote may take to import the node modules and say it is ready."""
REPLY_TIMEOUT = 30.0
"""Seconds a spawn request may wait for its reply."""
MAX_MSG = 1 << 20


class LauncherError(RuntimeError):
    """The zygote could not be started or stopped answering (one line)."""


# -- zygote side -------------------------------------------------------------------------------------------------

def _setns(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):
            os.setns(fd, nstype)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def enter_namespaces(ns_pid: int) -> None:
    """Join the network and mount namespaces of process ``ns_pid`` (OSError if it is gone or not allowed)."""
    own = os.readlink("/proc/self/ns/mnt")
    _setns(f"/proc/{ns_pid}/ns/net", CLONE_NEWNET)
    if os.readlink(f"/proc/{ns_pid}/ns/mnt") != own:
        _setns(f"/proc/{ns_pid}/ns/mnt", CLONE_NEWNS)


_cmdline_buf: Any = None


ROOM = 1024
"""Bytes of padding on the zygote's command line, room for a child's own (see :func:`set_cmdline`)."""


def set_cmdline(argv: list[str]) -> bool:
    """Make ``/proc/self/cmdline`` (what ps and ``pgrep -f`` read) show ``argv`` instead of the zygote's
    command line; True if it does.

    First ``prctl(PR_SET_MM, PR_SET_MM_ARG_START/END)`` on a buffer kept for the process's
    life (needs CAP_SYS_RESOURCE in the initial user namespace); else the inherited argument
    area (``/proc/self/stat`` fields arg_start, arg_end; the zygote pads it with
    :data:`ROOM` bytes) is overwritten in place, NUL-padded (a longer ``argv`` is cut).
    """
    global _cmdline_buf
    data = b"\0".join(a.encode() for a in argv) + b"\0"
    buf = ctypes.create_string_buffer(data, len(data))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    start = ctypes.addressof(buf)
    # PR_SET_MM = 35: ARG_START (8) first, the new buffer lies below the stack, so start <= end holds throughout
    if libc.prctl(35, 8, start, 0, 0) == 0 and libc.prctl(35, 9, start + len(data), 0, 0) == 0:
        _cmdline_buf = buf
        return True
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        arg_start, arg_end = int(fields[45]), int(fields[46])
    except (OSError, ValueError, IndexError):
        return False
    size = arg_end - arg_start
    if size <= 1:
        return False
    ctypes.memmove(arg_start, data[:size - 1].ljust(size, b"\0"), size)
    return True


def _child(req: dict[str, Any], fds: list[int], keep: set[int]) -> None:
    """Run in the forked child: never returns (``os._exit``)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in keep:
            os.close(fd)
        log_fd = fds[0]
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        try:
            if req.get("ns_pid"):
                enter_namespaces(int(req["ns_pid"]))
            os.chdir(req.get("cwd") or "/")
        except OSError as exc:
            print(f"launcher: cannot enter the namespaces of pid {req.get('ns_pid')}: {exc}", file=sys.stderr)
            os._exit(127)
        os.environ.clear()
        os.environ.update(req.get("env") or {})
        if len(fds) > 1:  # the testbed's watch pipe, under the number it has here
            os.environ["CORECAST_PARENT_FD"] = f"{fds[1]}:{os.fstat(fds[1]).st_ino}"
        sys.argv = list(req.get("argv") or ["node"])
        if req.get("cmdline"):
            set_cmdline([str(a) for a in req["cmdline"]])
        try:
            if req.get("path"):
                import runpy
                runpy.run_path(req["path"], run_name="__main__")
            else:
                import importlib
                mod = importlib.import_module(req["module"])
                if hasattr(mod, "main"):
                    mod.main()
                else:  # a node whose __main__ block is node_main(NAME, run)
                    from testbed.nodeutil import node_main
                    node_main(req["module"].rsplit(".", 1)[-1], mod.run)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(code & 0xFF)


def _send(sock: socket.socket, obj: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([data], anc)


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the fds it carried; (None, []) at end of file."""
    fds = array.array("i")
    data, anc, _flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(blob[:len(blob) - len(blob) % fds.itemsize])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


def serve(sock_fd: int, watch_fd: int, preload: list[str]) -> int:
    """The zygote's loop: import ``preload``, say ready, fork on request, report exits; returns at EOF."""
    import gc
    import importlib
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the child imports it again and logs the real error
            print(f"launcher: preload of {name} failed: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # children do not touch (and so do not copy) the pages of every imported object
    sock = socket.socket(fileno=sock_fd)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()
    _send(sock, {"ready": os.getpid(), "preloaded": [m for m in preload if m in sys.modules]})
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    if watch_fd >= 0:
        poller.register(watch_fd, select.POLLIN)
    running = True
    while running:
        try:
            events = poller.poll(1000)
        except InterruptedError:
            events = []
        for fd, _ev in events:
            if fd == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            elif fd == watch_fd:
                running = False  # the testbed process is gone
            elif fd == sock.fileno():
                try:
                    req, fds = _recv(sock)
                except (OSError, ValueError):
                    req, fds = None, []
                if req is None:
                    running = False
                    continue
                _spawn(sock, req, fds, children, {sock.fileno(), wake_r, wake_w})
        _reap(sock, children)
    for pid in list(children):  # EOF: the testbed closed us, or died; no child outlives the zygote
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        _reap(sock, children)
        time.sleep(0.02)
    return 0


def _spawn(sock: socket.socket, req: dict[str, Any], fds: list[int], children: set[int],
           keep: set[int]) -> None:
    rid = req.get("id")
    pidfd = -1
    try:
        if req.get("op") != "spawn" or not fds:
            raise ValueError("a spawn request needs op=spawn and a log fd")
        pid = os.fork()
        if pid == 0:
            _child(req, fds, keep)
        children.add(pid)
        pidfd = os.pidfd_open(pid)  # not reaped before this: only this loop reaps
    except (OSError, ValueError) as exc:
        try:
            _send(sock, {"id": rid, "error": str(exc)})
        except OSError:
            pass
        return
    finally:
        for fd in fds:
            os.close(fd)
    try:
        _send(sock, {"id": rid, "pid": pid}, [pidfd])
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        try:
            _send(sock, {"exit": pid, "status": os.waitstatus_to_exitcode(status)})
        except OSError:
            pass


# -- testbed side ------------------------------------------------------------------------------------------------

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
                [sys.executable, "-m", "testbed.net.launcher", str(theirs.fileno()), str(watch), *preload,
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
                    msg, fds = _recv(self.sock)
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
                _send(self.sock, req, [log_fd] + ([watch_fd] if watch_fd is not None else []))
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


def main(argv: list[str]) -> int:
    """``python -m testbed.net.launcher SOCK_FD WATCH_FD MODULE...`` (started by :class:`Zygote`)."""
    if len(argv) < 2:
        print("usage: python -m testbed.net.launcher SOCK_FD WATCH_FD [MODULE...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the testbed's Ctrl-C is not ours: it closes us
    return serve(int(argv[0]), int(argv[1]), [a for a in argv[2:] if not a.startswith("--room=")])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
