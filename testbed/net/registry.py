"""Which testbed runs are active on this machine, so ``corecast clean`` can prove what a crash left.

An active run has a file ``/run/corecast/<pid>.json`` (env ``CORECAST_REGISTRY``
moves the directory) recording its owner: pid, the owner's start time (clock
ticks since boot, so a reused pid is told apart), its mount, pid and network
namespace inodes, and a random run id. Every process the run starts inherits
``CORECAST_RUN=<run directory>`` and ``CORECAST_RUN_ID=<run id>``, and every link
it creates in the root network namespace carries the alias ``corecast:<run id>``.
A process or link is ours only if its id names an entry of *this* registry, and a
process only if it also shares our pid namespace and sees this same registry
directory (a container's own ``/run/corecast`` is another directory): see
:mod:`testbed.net.clean`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from typing import Iterator

from testbed.nodeutil import write_json_atomic

REGISTRY_DIR = os.environ.get("CORECAST_REGISTRY", "/run/corecast")
ENV_MARK = "CORECAST_RUN"
ENV_ID = "CORECAST_RUN_ID"
ALIAS_PREFIX = "corecast:"


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
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _lock_fd = fd
            return
        except BlockingIOError:
            if not told and wait > 0 and sys.stderr.isatty():  # a user at a terminal learns why nothing happens
                others = [e for e in entries() if owner_state(e) == "alive"]
                who = f" (pid {others[0]['pid']}, {others[0]['rundir']})" if others else ""
                print(f"corecast: another testbed run is active{who}; waiting up to {wait:g} s for it "
                      "(CORECAST_LOCK_WAIT)", file=sys.stderr, flush=True)
            told = True
            if time.monotonic() >= deadline:
                os.close(fd)
                others = [e for e in entries() if owner_state(e) == "alive"]
                who = f" (pid {others[0]['pid']}, {others[0]['rundir']})" if others else ""
                raise Busy(f"another testbed run is active{who}; wait for it, or stop it and run 'corecast clean'")
            time.sleep(0.2)


_pinned = False
"""True while :func:`holding_lock` keeps the lock for a whole multi-network run."""


@contextlib.contextmanager
def holding_lock(wait: float | None = None) -> Iterator[None]:
    """Hold the lock for a whole run of several networks (an experiment's points): taken at once, or
    :class:`Busy` before anything is made; :func:`release_lock` between networks keeps it."""
    global _pinned
    acquire_lock(wait)
    _pinned = True
    try:
        yield
    finally:
        _pinned = False
        release_lock()


def release_lock() -> None:
    """Release the machine-wide lock (not while :func:`holding_lock` keeps it)."""
    global _lock_fd
    if _pinned:
        return
    if _lock_fd is not None:
        os.close(_lock_fd)
        _lock_fd = None


def proc_starttime(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (/proc/PID/stat field 22), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def ns_inode(pid: int | str, kind: str) -> int | None:
    """Inode of a process's namespace of ``kind`` (mnt, pid, net), None if unreadable."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def identity(pid: int | str = "self") -> dict:
    """What an entry records about its owner: start time and namespace inodes."""
    return {"starttime": proc_starttime(os.getpid() if pid == "self" else int(pid)),
            "mnt_ns": ns_inode(pid, "mnt"), "pid_ns": ns_inode(pid, "pid"), "net_ns": ns_inode(pid, "net")}


def register(rundir: str) -> str:
    """Record this process as running ``rundir`` under a fresh run id; return the registry file path."""
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    path = os.path.join(REGISTRY_DIR, f"{os.getpid()}.json")
    run_id = secrets.token_hex(8)
    write_json_atomic(path, {"pid": os.getpid(), "rundir": os.path.abspath(rundir), "started": time.time(),
                             "id": run_id, **identity()})
    os.environ[ENV_MARK] = os.path.abspath(rundir)
    os.environ[ENV_ID] = run_id
    return path


def run_id() -> str | None:
    """The id of the run this process registered (None outside a run)."""
    return os.environ.get(ENV_ID) or None


def link_alias() -> str | None:
    """The alias our root-namespace links carry (None outside a run)."""
    rid = run_id()
    return ALIAS_PREFIX + rid if rid else None


def link_group() -> int | None:
    """The link group (``ip link ... group N``) of our root-namespace links, derived from the run id.

    Only a speed-up: teardown deletes every link of the run with one ``ip link del group N``;
    ownership is proven by the alias, never by the group.
    """
    rid = run_id()
    return 0x40000000 | int(rid[:7], 16) if rid else None


def unregister() -> None:
    """Forget this process's entry and stop marking new children as ours."""
    os.environ.pop(ENV_MARK, None)
    os.environ.pop(ENV_ID, None)
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
            if not isinstance(entry, dict):
                continue
            entry["_path"] = path
            out.append(entry)
        except (OSError, ValueError):
            continue
    return out


def owner_state(entry: dict) -> str:
    """``alive``, ``dead`` or ``unknown`` (another pid namespace wrote it: we cannot judge its pid).

    Alive means a process with the recorded pid and the recorded start time exists;
    an entry of the older format (no start time) is alive while its pid is.
    """
    pid = int(entry.get("pid", 0) or 0)
    if pid <= 0:
        return "dead"
    if entry.get("pid_ns") is not None and entry.get("pid_ns") != ns_inode("self", "pid"):
        return "unknown"
    if entry.get("starttime") is None:
        return "alive" if pid_alive(pid) else "dead"
    return "alive" if proc_starttime(pid) == entry["starttime"] else "dead"


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
