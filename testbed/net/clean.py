"""``corecast clean``: remove what a crashed run left, and nothing that is not provably ours.

The registry (:mod:`testbed.net.registry`) is the only proof of ownership. For
every entry whose owner is dead (no process with its pid *and* start time):

* a process is killed only if its environment carries that entry's run id
  (``CORECAST_RUN_ID``), it is in our pid namespace, and it sees this same
  registry directory (``/proc/PID/root`` resolves it to the same file): a run in a
  container, or in any mount namespace with its own ``/run/corecast``, is never
  touched, even though its processes carry the same kind of mark;
* a root-namespace link is deleted only if its alias is ``corecast:<that run id>``;
* the run is marked ``incomplete`` in its run.json and the entry removed.

Links named like ours but proven by no entry are reported, not deleted (the next
run replaces them). Unlike ``mn -c`` this never touches other Mininet networks or
``/tmp/*.log``. A live run holds the testbed lock: then nothing is touched, unless
``--force``, which sends that run SIGTERM (it tears itself down) and cleans what is left.
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

OUR_LINK = re.compile(r"^(cc\d+(-eth\d+)?|(x\d+|core|ms|src|h\d+x\d+|m\d+|outsider|rogue)-eth\d+|x\d+-tun)$")


def _ancestors() -> set[int]:
    exclude = set()
    pid = os.getpid()
    while pid > 1:
        exclude.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return exclude


def _marks(pid: int) -> tuple[bool, str | None]:
    """(carries CORECAST_RUN, its CORECAST_RUN_ID or None) of a process."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read().split(b"\0")
    except OSError:
        return False, None
    marked, rid = False, None
    for item in env:
        if item.startswith(registry.ENV_MARK.encode() + b"="):
            marked = True
        elif item.startswith(registry.ENV_ID.encode() + b"="):
            rid = item.split(b"=", 1)[1].decode(errors="replace")
    return marked, rid


def _registry_stat() -> tuple[int, int] | None:
    try:
        st = os.stat(registry.REGISTRY_DIR)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_world(pid: int, mine: tuple[int, int] | None = None) -> bool:
    """True if ``pid`` shares our pid namespace and sees our registry directory as the same file."""
    if registry.ns_inode(pid, "pid") != registry.ns_inode("self", "pid"):
        return False
    mine = mine or _registry_stat()
    try:
        st = os.stat(f"/proc/{pid}/root{registry.REGISTRY_DIR}")
    except OSError:
        return False
    return mine is not None and (st.st_dev, st.st_ino) == mine


def marked_processes(foreign: list[int] | None = None) -> list[tuple[int, str | None]]:
    """(pid, run id) of every process in our world carrying our mark (not this process or its ancestors).

    Marked processes of other worlds (another pid namespace, or another registry
    directory: a container) are appended to ``foreign`` if given.
    """
    exclude = _ancestors()
    mine = _registry_stat()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        marked, rid = _marks(int(name))
        if not marked:
            continue
        if same_world(int(name), mine):
            found.append((int(name), rid))
        elif foreign is not None:
            foreign.append(int(name))
    return found


def our_processes() -> list[int]:
    """PIDs of processes started by a testbed run of this registry's world (for leftover checks)."""
    return [pid for pid, _rid in marked_processes()]


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


def links_with_alias() -> list[tuple[str, str]]:
    """(name, alias or '') of every link in this network namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    links = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        name = parts[1].strip().split("@", 1)[0]
        m = re.search(r"\balias (\S+)", parts[2])
        links.append((name, m.group(1) if m else ""))
    return links


def our_links() -> list[str]:
    """Names of root-namespace links named like the testbed's (for leftover checks)."""
    return [name for name, _alias in links_with_alias() if OUR_LINK.match(name)]


def delete_links(names: list[str]) -> int:
    """Delete the given links (ports first, bridges last); return how many went away."""
    removed = 0
    for name in sorted(names, key=lambda n: re.fullmatch(r"cc\d+", n) is not None):
        res = subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
        removed += res.returncode == 0
    return removed


def mark_incomplete(entry: dict) -> bool:
    """Mark the entry's run incomplete if it is still 'running'; return True if marked."""
    path = os.path.join(entry.get("rundir", ""), "run.json")
    try:
        with open(path) as fh:
            run = json.load(fh)
        if run.get("status") != "running":
            return False
        run["status"] = "incomplete"
        run["error"] = "interrupted: the run's process died; cleaned up by 'corecast clean'"
        run.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json_atomic(path, run)
        return True
    except (OSError, ValueError, AttributeError):
        return False


def stop_live_runs(wait: float = 60.0) -> list[dict]:
    """SIGTERM the owners of live runs of this registry (they tear down by themselves); SIGKILL any that
    is still alive after ``wait`` seconds."""
    live = [e for e in registry.entries() if registry.owner_state(e) == "alive" and int(e["pid"]) != os.getpid()]
    for e in live:
        try:
            os.kill(int(e["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(registry.owner_state(e) == "alive" for e in live):
        time.sleep(0.1)
    for e in live:  # a run that did not tear down in time is killed; its leftovers are cleaned next
        if registry.owner_state(e) == "alive":
            try:
                os.kill(int(e["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return live


def clean(verbose: bool = True, force: bool = False) -> dict[str, int]:
    """Remove every leftover the registry proves ours; return counts of what was removed.

    A run still alive holds the testbed lock: then nothing is touched (Busy),
    unless ``force``, which stops that run first. The lock is waited for up to
    ``CORECAST_LOCK_WAIT`` seconds (at least 2).
    """
    if force:
        stop_live_runs()
    try:
        registry.acquire_lock(wait=max(2.0, float(os.environ.get("CORECAST_LOCK_WAIT", "0") or 0)))
    except registry.Busy as exc:
        live = str(exc).split(";")[0]
        raise registry.Busy(f"{live}; nothing cleaned ('corecast clean --force' stops that run too)") from None
    try:
        return _clean(verbose)
    finally:
        registry.release_lock()


def _clean(verbose: bool) -> dict[str, int]:
    dead = [e for e in registry.entries() if registry.owner_state(e) == "dead"]
    dead_ids = {str(e["id"]) for e in dead if e.get("id")}
    elsewhere: list[int] = []
    marked = marked_processes(elsewhere)
    victims = [pid for pid, rid in marked if rid in dead_ids]
    unproven = [pid for pid, rid in marked if rid not in dead_ids]
    killed = kill_processes(victims)
    aliases = {registry.ALIAS_PREFIX + i for i in dead_ids}
    links = delete_links([n for n, a in links_with_alias() if a in aliases])
    left = [n for n, a in links_with_alias() if a in aliases]
    if left:  # a bridge can need a second pass once its ports are gone
        links += delete_links(left)
    runs = []
    for e in dead:
        if mark_incomplete(e):
            runs.append(e.get("rundir", ""))
        try:
            os.unlink(e["_path"])
        except OSError:
            pass
    alive_ids = {str(e.get("id")) for e in registry.entries() if registry.owner_state(e) == "alive"}
    foreign = [pid for pid in unproven if registry.ns_inode(pid, "pid") is not None]
    unproven_links = [n for n, a in links_with_alias() if OUR_LINK.match(n) and a not in aliases
                      and a[len(registry.ALIAS_PREFIX):] not in alive_ids]
    summary = {"processes": killed, "links": links, "runs_marked_incomplete": len(runs),
               "processes_not_proven": len([p for p in foreign if _marks(p)[1] not in alive_ids]),
               "links_not_proven": len(unproven_links), "processes_other_namespaces": len(elsewhere)}
    if verbose:
        print(f"corecast clean: killed {killed} processes, removed {links} links, "
              f"marked {len(runs)} interrupted runs incomplete")
        for rundir in runs:
            print(f"  incomplete: {rundir}")
        if summary["processes_not_proven"] or unproven_links:
            print(f"  left alone: {summary['processes_not_proven']} marked processes and {len(unproven_links)} links "
                  f"named like ours that no dead run of {registry.REGISTRY_DIR} owns"
                  + (f" (e.g. {unproven_links[0]})" if unproven_links else ""))
        if elsewhere:
            print(f"  left alone: {len(elsewhere)} processes of runs with another registry (another mount or pid "
                  f"namespace, e.g. a container)")
    return summary
