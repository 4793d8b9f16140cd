"""``corecast clean``: remove what a crashed run left, and nothing that is not ours.

Ours means: processes whose environment carries ``CORECAST_RUN`` (every
Mininet shell, daemon and capture we start inherits it), Linux bridges named
``cc<N>`` and their ports, and root-namespace veth ends named after our nodes.
Interrupted runs still marked ``running`` are marked ``incomplete``.
Unlike ``mn -c`` this never touches other Mininet networks or ``/tmp/*.log``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

from testbed.net import registry
from testbed.nodeutil import write_json_atomic

OUR_LINK = re.compile(r"^(cc\d+(-eth\d+)?|(x\d+|core|ms|src|h\d+x\d+|m\d+)-eth\d+|x\d+-tun)$")


def our_processes() -> list[int]:
    """PIDs of processes started by a testbed run (not this process or its ancestors)."""
    exclude = set()
    pid = os.getpid()
    while pid > 1:
        exclude.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if (registry.ENV_MARK + "=").encode() in env:
            found.append(int(name))
    return found


def kill_processes(pids: list[int], grace: float = 2.0) -> int:
    """SIGTERM, then SIGKILL what is left after ``grace`` seconds; return how many there were."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(registry.pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def our_links() -> list[str]:
    """Names of root-namespace links that belong to the testbed."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@", 1)[0]
        if OUR_LINK.match(name):
            names.append(name)
    return names


def delete_links(names: list[str]) -> int:
    """Delete the given links (ports first, bridges last); return how many went away."""
    removed = 0
    for name in sorted(names, key=lambda n: re.fullmatch(r"cc\d+", n) is not None):
        res = subprocess.run(["ip", "link", "del", name], capture_output=True)
        removed += res.returncode == 0
    return removed


def mark_stale_runs() -> list[str]:
    """Mark runs whose orchestrator died as incomplete; drop their registry entries."""
    marked = []
    for entry in registry.entries():
        pid = int(entry.get("pid", 0))
        if pid and registry.pid_alive(pid) and pid != os.getpid():
            continue
        rundir = entry.get("rundir", "")
        path = os.path.join(rundir, "run.json")
        try:
            with open(path) as fh:
                run = json.load(fh)
            if run.get("status") == "running":
                run["status"] = "incomplete"
                run["error"] = "interrupted: the run's process died; cleaned up by 'corecast clean'"
                run.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                write_json_atomic(path, run)
                marked.append(rundir)
        except (OSError, ValueError):
            pass
        try:
            os.unlink(entry["_path"])
        except OSError:
            pass
    return marked


def clean(verbose: bool = True, force: bool = False) -> dict[str, int]:
    """Remove every leftover of ours; return counts of what was removed.

    A run still alive holds the testbed lock: then nothing is touched (Busy),
    unless ``force``, which stops that run too.
    """
    if not force:
        try:
            registry.acquire_lock(wait=2.0)
        except registry.Busy as exc:
            live = str(exc).split(";")[0]
            raise registry.Busy(f"{live}; nothing cleaned ('corecast clean --force' stops that run too)") from None
    try:
        return _clean(verbose)
    finally:
        registry.release_lock()


def _clean(verbose: bool) -> dict[str, int]:
    marked = mark_stale_runs()
    killed = kill_processes(our_processes())
    links = delete_links(our_links())
    left = our_links()
    if left:  # a bridge can need a second pass once its ports are gone
        links += delete_links(left)
    summary = {"processes": killed, "links": links, "runs_marked_incomplete": len(marked)}
    if verbose:
        print(f"corecast clean: killed {killed} processes, removed {links} links, "
              f"marked {len(marked)} interrupted runs incomplete")
        for rundir in marked:
            print(f"  incomplete: {rundir}")
    return summary
