"""Which testbed runs are active on this machine, so ``corecast clean`` can find what a crash left.

Every process we start inherits ``CORECAST_RUN=<run directory>`` in its
environment; an active run also has a file ``/run/corecast/<pid>.json``.
"""

from __future__ import annotations

import json
import os
import time

from testbed.nodeutil import write_json_atomic

REGISTRY_DIR = os.environ.get("CORECAST_REGISTRY", "/run/corecast")
ENV_MARK = "CORECAST_RUN"


class Busy(RuntimeError):
    """Another testbed run holds the machine-wide lock."""


_lock_fd: int | None = None


def acquire_lock(wait: float | None = None) -> None:
    """Take the machine-wide testbed lock (node and bridge names are global, so one network at a time).

    ``wait`` seconds (default: env ``CORECAST_LOCK_WAIT``, else 0) before :class:`Busy`.
    """
    import fcntl
    global _lock_fd
    if _lock_fd is not None:
        return
    if wait is None:
        wait = float(os.environ.get("CORECAST_LOCK_WAIT", "0"))
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    fd = os.open(os.path.join(REGISTRY_DIR, "testbed.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _lock_fd = fd
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                others = [e for e in entries() if pid_alive(int(e.get("pid", 0)))]
                who = f" (pid {others[0]['pid']}, {others[0]['rundir']})" if others else ""
                raise Busy(f"another testbed run is active{who}; wait for it, or stop it and run 'corecast clean'")
            time.sleep(0.2)


def release_lock() -> None:
    """Release the machine-wide lock."""
    global _lock_fd
    if _lock_fd is not None:
        os.close(_lock_fd)
        _lock_fd = None


def register(rundir: str) -> str:
    """Record this process as running ``rundir``; return the registry file path."""
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    path = os.path.join(REGISTRY_DIR, f"{os.getpid()}.json")
    write_json_atomic(path, {"pid": os.getpid(), "rundir": os.path.abspath(rundir), "started": time.time()})
    os.environ[ENV_MARK] = os.path.abspath(rundir)
    return path


def unregister() -> None:
    """Forget this process's entry and stop marking new children as ours."""
    os.environ.pop(ENV_MARK, None)
    try:
        os.unlink(os.path.join(REGISTRY_DIR, f"{os.getpid()}.json"))
    except FileNotFoundError:
        pass


def entries() -> list[dict]:
    """All registry entries (active or stale)."""
    out = []
    try:
        names = os.listdir(REGISTRY_DIR)
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(REGISTRY_DIR, name)
        try:
            with open(path) as fh:
                entry = json.load(fh)
            entry["_path"] = path
            out.append(entry)
        except (OSError, ValueError):
            continue
    return out


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
