"""The zygote process of :mod:`testbed.net.launcher`: imports the node modules once, then forks node programs.

``python -m testbed.net.zygote SOCK_FD WATCH_FD MODULE...`` (started by
:class:`testbed.net.launcher.Zygote`). A forked child starts a new session, enters
the node's network and mount namespaces (``setns``), takes the daemon's log,
environment and watch pipe, and runs the node's ``main()``; the protocol on the
``SOCK_SEQPACKET`` pair is described in :mod:`testbed.net.launcher`.
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MAX_MSG = 1 << 20


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


def send_message(sock: socket.socket, obj: dict[str, Any], fds: list[int] | None = None) -> None:
    """One JSON message on the SOCK_SEQPACKET pair, with ``fds`` (SCM_RIGHTS)."""
    data = json.dumps(obj).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([data], anc)


def recv_message(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
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
    send_message(sock, {"ready": os.getpid(), "preloaded": [m for m in preload if m in sys.modules]})
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
                    req, fds = recv_message(sock)
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
            send_message(sock, {"id": rid, "error": str(exc)})
        except OSError:
            pass
        return
    finally:
        for fd in fds:
            os.close(fd)
    try:
        send_message(sock, {"id": rid, "pid": pid}, [pidfd])
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
            send_message(sock, {"exit": pid, "status": os.waitstatus_to_exitcode(status)})
        except OSError:
            pass


def main(argv: list[str]) -> int:
    """``python -m testbed.net.zygote SOCK_FD WATCH_FD MODULE...`` (started by :class:`Zygote`)."""
    if len(argv) < 2:
        print("usage: python -m testbed.net.zygote SOCK_FD WATCH_FD [MODULE...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the testbed's Ctrl-C is not ours: it closes us
    return serve(int(argv[0]), int(argv[1]), [a for a in argv[2:] if not a.startswith("--room=")])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
