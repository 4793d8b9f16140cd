"""Memory per AS, component by component, with the daemons exec'd (one interpreter each) and forked (zygote).

One network of ``--ases`` client ASes, one receiver host per AS (``client_hosts=per-as``,
``clients`` = ases, so the paper topology's nodes per AS: the border router x_i and
the many-clients host m_i, plus one Linux bridge per AS LAN). In that one network:

1. ``network``: after ``Testbed.start()``: every node's shell (bash under ``mnexec``),
   summed USS/PSS from ``/proc/PID/smaps_rollup``; the kernel side (namespaces,
   veth pairs, bridges, routes) as the rise of ``Slab + KernelStack + PageTables +
   Percpu`` in ``/proc/meminfo``; the machine's ``MemTotal - MemAvailable`` rise.
2. For each launch mode in ``--modes`` (default ``exec,fork``, side by side): the
   map-server and every xTR started and registered (``testbed.session.start_lisp``),
   then one client program (``nodes.client``, 1 EID) on ``--client-procs`` hosts:
   per process class its USS, PSS and RSS (mean and sum), the zygote's, the time to
   register, the CPU seconds per second all idle xTRs use together (over 5 s), and the
   machine's used-memory rise; then every daemon stopped.

With ``--check ASES,CLIENTS`` it instead runs ``corecast check --set ases=ASES --set
clients=CLIENTS`` (what the CLI verb calls, in this process once the testbed lock is ours;
``--launch`` picks exec or fork) while
sampling ``/proc/meminfo`` every 0.5 s: the machine's used memory before, at its peak
and after, the check's own time lines, and what the teardown left: processes carrying
the run's ``CORECAST_RUN`` mark and root-namespace links with the run's
``corecast:<run id>`` alias. Saved as ``scale_check-ASES.json``.

First, in-process: the Python heap of a Map-Server core (tracemalloc) with the sites of
1,000 ASes configured, then all registered.

USS (private pages) is what one more daemon costs; PSS splits shared pages among
their sharers, so summed PSS is the class's real share of RAM. Run as root::

    .venv/bin/python bench/bench_scale_memory.py [--ases 100] [--modes exec,fork] [--client-procs 20]

Writes docs/bench-results/scale_memory.json; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import args as bench_args  # noqa: E402
import common  # noqa: E402

KIB = 1024


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    out = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, rest = line.split(":", 1)
            out[key] = int(rest.split()[0])
    return out


def used_kib(m: dict[str, int]) -> int:
    """Memory in use: MemTotal - MemAvailable (KiB)."""
    return m["MemTotal"] - m["MemAvailable"]


def kernel_kib(m: dict[str, int]) -> int:
    """Kernel objects of namespaces, links and sockets: Slab + KernelStack + PageTables + Percpu (KiB)."""
    return sum(m.get(k, 0) for k in ("Slab", "KernelStack", "PageTables", "Percpu"))


def rollup(pid: int) -> dict[str, int]:
    """USS (Private_Clean + Private_Dirty), PSS and RSS of a process, KiB ({} if it is gone)."""
    got: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    got[parts[0][:-1]] = int(parts[1])
    except OSError:
        return {}
    return {"uss": got.get("Private_Clean", 0) + got.get("Private_Dirty", 0), "pss": got.get("Pss", 0),
            "rss": got.get("Rss", 0)}


def summarize(pids: list[int]) -> dict[str, Any]:
    """Count, sum and mean (MiB) of USS/PSS/RSS over ``pids``."""
    rows = [r for r in (rollup(p) for p in pids) if r]
    n = len(rows) or 1
    out: dict[str, Any] = {"count": len(rows)}
    for key in ("uss", "pss", "rss"):
        total = sum(r[key] for r in rows)
        out[f"{key}_sum_mib"] = round(total / KIB, 1)
        out[f"{key}_mean_mib"] = round(total / n / KIB, 2)
    return out


def client_daemons(tb: Any, plan: Any, rundir: str, count: int, tag: str) -> list:
    """One ``nodes.client`` per many-clients host of the first ``count`` client ASes (1 EID each)."""
    from testbed.net.daemon import ClientDaemon
    out = []
    for a in plan.client_ases[:count]:
        host, eid = a.clients[0]
        cfg = {"port": 5004, "bind": "0.0.0.0", "eids": [eid],
               "record_file": os.path.join(rundir, "records", f"{tag}-{host}.bin")}
        out.append(ClientDaemon(tb.node(host), f"{tag}-{host}", rundir, cfg))
    os.makedirs(os.path.join(rundir, "records"), exist_ok=True)
    return out


def one_mode(tb: Any, plan: Any, rundir: str, mode: str, client_procs: int) -> dict[str, Any]:
    """Start LISP and the clients launched by ``mode`` (exec|fork), measure, stop them all."""
    from testbed.net import daemon as dmod
    from testbed.session import start_lisp
    os.environ["CORECAST_LAUNCH"] = mode
    m0 = meminfo()
    t0 = time.monotonic()
    lisp = start_lisp(tb, plan, rundir, {})
    t_lisp = time.monotonic() - t0
    clients = client_daemons(tb, plan, rundir, client_procs, f"c{mode}")
    t1 = time.monotonic()
    tb.start_daemons(clients, timeout=60 + 0.5 * len(clients))
    t_clients = time.monotonic() - t1
    time.sleep(2.0)  # let every daemon reach its steady loop (first status file written)
    m1 = meminfo()
    xtrs = [d.proc.pid for d in lisp if d.program == "xtr"]
    from testbed.measure import cpu_seconds
    c0, w0 = sum(cpu_seconds(p) or 0.0 for p in xtrs), time.monotonic()
    time.sleep(5.0)
    idle_cpu = (sum(cpu_seconds(p) or 0.0 for p in xtrs) - c0) / (time.monotonic() - w0)
    out: dict[str, Any] = {
        "mode": mode, "lisp_up_s": round(t_lisp, 2), "clients_up_s": round(t_clients, 2),
        "xtr": summarize(xtrs), "mapserver": summarize([lisp[0].proc.pid]),
        "client": summarize([d.proc.pid for d in clients]),
        "used_rise_mib": round((used_kib(m1) - used_kib(m0)) / KIB, 1),
        "kernel_rise_mib": round((kernel_kib(m1) - kernel_kib(m0)) / KIB, 1),
        "idle_xtr_cpu_per_s": round(idle_cpu, 3),
    }
    z = dmod._zygote
    if mode == "fork" and z is not None:
        out["zygote"] = summarize([z[2].pid])
    out["per_as_used_mib"] = round(out["used_rise_mib"] / len(plan.all_ases), 2)
    t2 = time.monotonic()
    tb.stop_daemons()
    dmod.close_zygote()
    out["stop_s"] = round(time.monotonic() - t2, 2)
    time.sleep(1.0)
    return out


def mapserver_table(ases: int) -> dict[str, Any]:
    """Python heap (tracemalloc) of a Map-Server core with ``ases + 1`` sites, configured and then registered
    (the plan's own config, rows restored as from its table file); KiB per site."""
    import tracemalloc
    from nodes.mapserver import load
    from testbed.addressing import make_plan
    from testbed.lisp.mapserver import MapServer
    from testbed.net.lisp import mapserver_config, site_keys
    from testbed.params import topo_params
    plan = make_plan(topo_params({"ases": ases, "clients": 1, "client_hosts": "per-as"}))
    cfg = mapserver_config(plan, "/nonexistent", site_keys(plan))
    cfg.pop("table_file")
    now = time.time()
    rows = [{"site": f"as{a.number}", "prefix": a.eid_prefix, "ttl_min": 1440, "expires_at": now + 180,
             "rlocs": [{"rloc": a.rloc, "priority": 1, "weight": 100, "corecast": True, "reachable": True}]}
            for a in plan.all_ases]
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    sites, opts = load(cfg)
    ms = MapServer(sites, **opts)
    t1 = tracemalloc.get_traced_memory()[0]
    loaded = ms.restore(rows, now)
    t2 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(plan.all_ases)
    return {"sites": n, "registered": loaded, "configured_kib_per_site": round((t1 - t0) / KIB / n, 2),
            "registered_kib_per_site": round((t2 - t1) / KIB / n, 2)}


def run(ases: int, modes: list[str], client_procs: int) -> dict[str, Any]:
    """The whole measurement in one network."""
    from testbed.addressing import make_plan
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    plan = make_plan(topo_params({"ases": ases, "clients": ases, "client_hosts": "per-as"}))
    rundir = common.scratch_rundir(f"scale-memory-{ases}")
    waited = common.take_lock()
    m0 = meminfo()
    tb = Testbed(plan, rundir)
    out: dict[str, Any] = {"ases": ases, "lock_wait_s": round(waited, 1)}
    try:
        t0 = time.monotonic()
        tb.start()
        out["net_up_s"] = round(time.monotonic() - t0, 2)
        time.sleep(1.0)
        m1 = meminfo()
        shells = [n.shell.pid for n in [*tb.net.hosts, *tb.net.switches] if n.shell is not None]
        out["nodes"], out["switches"] = len(tb.net.hosts), len(tb.net.switches)
        out["network"] = {
            "shells": summarize(shells),
            "kernel_rise_mib": round((kernel_kib(m1) - kernel_kib(m0)) / KIB, 1),
            "used_rise_mib": round((used_kib(m1) - used_kib(m0)) / KIB, 1),
        }
        out["network"]["per_as_used_mib"] = round(out["network"]["used_rise_mib"] / len(plan.all_ases), 2)
        out["runs"] = [one_mode(tb, plan, rundir, mode, client_procs) for mode in modes]
    finally:
        t1 = time.monotonic()
        tb.stop()
        out["net_down_s"] = round(time.monotonic() - t1, 2)
        time.sleep(1.0)
        out["left_after_teardown_mib"] = round((used_kib(meminfo()) - used_kib(m0)) / KIB, 1)
    return out


def corecast_links(run_id: str = "") -> set[str]:
    """Root-namespace links whose alias marks them as a testbed run's (``run_id``: that run's only)."""
    import subprocess
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=60).stdout
    want = f"alias corecast:{run_id}" + ("\n" if run_id else "")
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if want in line + "\n"}


def marked_processes(rundir: str) -> list[int]:
    """Pids whose environment carries ``CORECAST_RUN=rundir``."""
    mark = f"CORECAST_RUN={os.path.abspath(rundir)}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    if mark in fh.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found


class _Tee:
    """stdout that is also kept (the check's printed lines)."""

    def __init__(self, out: Any) -> None:
        self.out, self.lines = out, []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def run_check(ases: int, clients: int, launch: str) -> dict[str, Any]:
    """``corecast check`` at this size (in this process, as the CLI verb runs it, once the testbed lock is
    ours: no other network shares the machine), memory sampled; its printed timings and what it left behind."""
    import contextlib
    import threading
    from testbed.net import registry
    from testbed.session import check_topology
    ids: list[str] = []
    register = registry.register

    def spy(*args: Any, **kw: Any) -> Any:  # the check's run id, to find links it might leave
        got = register(*args, **kw)
        ids.append(os.environ.get(registry.ENV_ID, ""))
        return got
    registry.register = spy
    os.environ["CORECAST_LAUNCH"] = launch
    rundir = common.scratch_rundir(f"scale-check-{ases}-{launch}")
    waited = common.take_lock()
    time.sleep(1.0)
    base = used_kib(meminfo())
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - t0, used_kib(meminfo())))
            stop.wait(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    tee = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            code = check_topology([f"ases={ases}", f"clients={clients}"], lisp=True, out=rundir)
    finally:
        stop.set()
        th.join(5)
        registry.register = register
    wall = time.monotonic() - t0
    time.sleep(2.0)
    after = used_kib(meminfo())
    lines = "".join(tee.lines).splitlines()
    keep = [ln for ln in lines if ln.startswith(("network up", "LISP up", "check ", "ok ", "FAIL"))]
    peak_t, peak = max(samples, key=lambda s: s[1]) if samples else (0.0, base)
    return {"ases": ases, "clients_per_as": clients, "launch": launch, "exit": code,
            "lock_wait_s": round(waited, 1), "wall_s": round(wall, 1), "output": keep,
            "used_before_mib": round(base / KIB), "used_peak_mib": round(peak / KIB),
            "peak_rise_mib": round((peak - base) / KIB), "peak_at_s": round(peak_t, 1),
            "used_after_mib": round(after / KIB), "left_rise_mib": round((after - base) / KIB),
            "left_processes": len(marked_processes(rundir)),
            "run_id": ids[0] if ids else "", "left_links": sorted(corecast_links(ids[0])) if ids and ids[0] else None,
            "samples_mib": [(round(t, 1), round(v / KIB)) for t, v in samples[::4]]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ases", type=bench_args.count(1, 4000), default=100, help="client ASes (1..4000)")
    p.add_argument("--modes", type=bench_args.choice_list(("exec", "fork")), default="exec,fork",
                   help="launch modes side by side (exec, fork)")
    p.add_argument("--client-procs", type=bench_args.count(1, 4000), default=20,
                   help="client programs started (one per AS; 1..--ases)")
    p.add_argument("--check", help="ASES,CLIENTS: time and sample memory of corecast check at that size")
    p.add_argument("--launch", default="fork", choices=("fork", "exec"), help="with --check: launch mode")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    if args.client_procs > args.ases:
        p.error(f"--client-procs must be at most --ases ({args.ases}), got {args.client_procs}")
    if args.check:
        parts = args.check.split(",")
        if len(parts) != 2:
            p.error(f"--check must be ASES,CLIENTS, got {args.check!r}")
        try:
            args.check_size = (bench_args.count(1, 4000)(parts[0]), bench_args.count(1, 100_000)(parts[1]))
        except argparse.ArgumentTypeError as exc:
            p.error(f"--check ASES,CLIENTS (ASES 1..4000, CLIENTS 1..100000): {exc}")
    if not common.need_root():
        return 2
    common.lock_env()
    if args.check:
        import json
        ases, clients = args.check_size
        result = {"machine": common.machine_info(), **run_check(ases, clients, args.launch)}
        result["machine"]["loadavg_end"] = common.loadavg()
        print(json.dumps({k: v for k, v in result.items() if k != "samples_mib"}, indent=1))
        if not args.no_save:
            print("saved", common.save_result(f"scale_check-{ases}-{args.launch}", result))
        return 0 if result["exit"] == 0 else 1
    result = {"machine": common.machine_info(), "mapserver_table": mapserver_table(1000),
              **run(args.ases, args.modes, args.client_procs)}
    result["machine"]["loadavg_end"] = common.loadavg()
    import json
    print(json.dumps(result, indent=1))
    if not args.no_save:
        print("saved", common.save_result("scale_memory", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
