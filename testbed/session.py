"""Bring a topology up for a user: ``corecast check``, ``corecast cli``, ``corecast stats``."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from testbed.addressing import AddressPlan, make_plan
from testbed.net.check import format_table, run_checks
from testbed.net.network import Testbed
from testbed.nodeutil import ConfigError
from testbed.params import TOPO_KEYS, check_stream, parse_sets, topo_params
from testbed.results import RunDir

LISP_KEYS = {"register_interval", "expiry"}


def plan_from_sets(sets: list[str], allowed: set[str] = TOPO_KEYS | LISP_KEYS) -> tuple[dict[str, Any], AddressPlan]:
    """Parse ``--set`` items, reject unknown keys, and compute the plan."""
    values = parse_sets(sets)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown parameter '{unknown[0]}' (known: {', '.join(sorted(allowed))})")
    check_stream({k: v for k, v in values.items() if k in LISP_KEYS})  # before anything is built
    return values, make_plan(topo_params(values))


def start_core_routing(tb: Testbed, plan: AddressPlan, rundir: str) -> list:
    """Route the core: FRR (zebra + ospfd, converged) on every router of a tree core; nothing for a star.

    Independent of LISP (the RLOC space must be routed with or without xTRs) and
    idempotent: if ``tb`` already runs FRR's ospfd (an earlier call), those daemons are
    returned and nothing new starts. Returns the FRR daemons (testbed.net.frr.FrrDaemon).
    """
    from testbed.net.frr import FrrDaemon, start_routing
    running = [d for d in tb.daemons if isinstance(d, FrrDaemon) and d.program in ("zebra", "ospfd")]
    if any(d.program == "ospfd" for d in running):
        return running
    return start_routing(tb, plan, rundir)


def start_lisp(tb: Testbed, plan: AddressPlan, rundir: str, values: dict[str, Any],
               xtr_extra: dict[str, Any] | None = None) -> list:
    """Start the map-server and every xTR; return the daemons (ready: registered).

    ``values["defence"]`` (on|off, the attack experiment's switch) sets every xTR's
    ``corecast_defence``; ``xtr_extra`` adds keys to every xTR config (benches).
    """
    from testbed.net.lisp import lisp_daemons
    start_core_routing(tb, plan, rundir)  # a tree core: FRR's OSPF converged before any xTR registers
    interval = float(values.get("register_interval", 60.0))
    expiry = values.get("expiry")
    extra = dict(xtr_extra or {})
    if "defence" in values:
        flag = {"on": True, "true": True, "off": False, "false": False}.get(str(values["defence"]).lower())
        if flag is None:
            raise ConfigError(f"defence must be on or off, not '{values['defence']}'")
        extra["corecast_defence"] = flag
    daemons = lisp_daemons(tb, plan, rundir, register_interval=interval,
                           expiry_s=float(expiry) if expiry is not None else None, xtr_extra=extra)
    tb.start_daemons(daemons[:1])
    tb.start_daemons(daemons[1:], timeout=30.0 + 0.2 * len(daemons))
    return daemons


def core_capture_check(tb: Testbed, plan: AddressPlan, rundir: str) -> tuple[bool, str]:
    """Capture x0's core interface during cross-AS pings: only UDP 4341/4342 between RLOCs may appear."""
    from testbed.net.capture import Capture, iter_ip_packets
    from testbed.net.check import ping_many
    path = os.path.join(rundir, "pcap", "check-core.pcap")
    cap = Capture(tb.node(plan.source_as.xtr), plan.source_as.core_if, path, bpf="ip", direction="inout")
    cap.start()
    try:
        targets = [a.clients[-1][1] for a in plan.client_ases if a.clients]
        ping_many(tb.node(plan.source_host), targets, wait=2.0, count=2)
    finally:
        cap.stop()
    import ipaddress
    rloc = ipaddress.ip_network(plan.rloc_block)
    bad = total = 0
    for src, dst, proto, sport, dport in iter_ip_packets(path):
        total += 1
        ok = (proto == 17 and (sport in (4341, 4342) or dport in (4341, 4342))
              and ipaddress.ip_address(src) in rloc and ipaddress.ip_address(dst) in rloc)
        bad += not ok
    os.unlink(path)
    return bad == 0 and total > 0, f"{total} packets on {plan.source_as.core_if}, {bad} not LISP between RLOCs"


def check_topology(sets: list[str], lisp: bool = True, out: str | None = None) -> int:
    """``corecast check``: up, verify, print, down. Returns 0 if every check passed."""
    values, plan = plan_from_sets(sets)
    run = RunDir.create("check", values, out=out)
    with run:
        from testbed.net import registry
        registry.acquire_lock()  # before the clock starts: waiting for another run is not bring-up time
        t0 = time.monotonic()
        with Testbed(plan, run.path) as tb:
            t_up = time.monotonic() - t0
            print(f"network up: {len(plan.client_ases)} client ASes, {plan.params.total_clients} clients, "
                  f"{len(tb.net.hosts)} nodes in {t_up:.1f} s", flush=True)
            routing = []
            if plan.transit:  # a tree core is routed by FRR with or without LISP
                t1 = time.monotonic()
                routing = start_core_routing(tb, plan, run.path)
                print(f"core routed: FRR (OSPF) on {len(plan.transit) + 1} core routers, converged in "
                      f"{time.monotonic() - t1:.1f} s", flush=True)
            if lisp:
                t1 = time.monotonic()
                start_lisp(tb, plan, run.path, values)
                print(f"LISP up: map-server and {len(plan.all_ases)} xTRs registered in "
                      f"{time.monotonic() - t1:.1f} s", flush=True)
            t2 = time.monotonic()
            rows = run_checks(tb, plan, lisp=lisp, routing=routing)
            extra = ""
            ok_core = True
            if lisp:
                ok_core, extra = core_capture_check(tb, plan, run.path)
            t_checks = time.monotonic() - t2
            t3 = time.monotonic()
        t_down = time.monotonic() - t3
        print(format_table(plan, rows))
        if lisp:
            print(f"{'ok' if ok_core else 'FAIL':<4} {'core capture holds only LISP (UDP 4341/4342) between RLOCs':<62} {extra}")
        passed = all(r.passed for r in rows) and ok_core
        run.update(summary={"passed": passed, "up_s": round(t_up, 3),
                            "rows": [{"what": r.what, "ok": r.ok, "total": r.total, "passed": r.passed} for r in rows]})
        print(f"check {'passed' if passed else 'FAILED'}; checks {t_checks:.1f} s, teardown {t_down:.1f} s, "
              f"total {time.monotonic() - t0:.1f} s; run directory {run.path}")
    return 0 if passed else 1


def interactive(sets: list[str], lisp: bool = True) -> int:
    """``corecast cli``: the topology with its daemons, in Mininet's CLI."""
    import sys
    from types import SimpleNamespace

    from mininet.cli import CLI
    from testbed.modes import parse_modes
    values, plan = plan_from_sets(sets, TOPO_KEYS | LISP_KEYS | {"modes"})
    modes = parse_modes(values["modes"]) if "modes" in values else ()  # ConfigError before anything is built
    # so that 'corecast' and our python resolve inside every host's shell
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    run = RunDir.create("cli", values)
    with run:
        with Testbed(plan, run.path) as tb:
            start_core_routing(tb, plan, run.path)  # with or without LISP
            if lisp:
                start_lisp(tb, plan, run.path, values)
                for cls in modes:  # what each mode's routers run (ipmc: pimd on every router)
                    mode = cls(SimpleNamespace(tb=tb, plan=plan, rundir=run.path, link_counters=None))
                    mode.start()
                    if plan.core in getattr(mode, "sockdirs", {}):
                        print(f"{mode.name}: FRR's view: {plan.core} vtysh --vty_socket {mode.sockdirs[plan.core]} "
                              f"-c 'show ip mroute' (every router's DIR: state/pim.json)")
            print(f"run directory {run.path}; logs in logs/, counters: corecast stats NODE; "
                  f"'corecast lig EID' works on the xTRs and ms (e.g. x1 corecast lig 10.0.0.10)")
            from mininet.log import setLogLevel
            setLogLevel("output")  # the CLI prints command output at this level
            CLI(tb.net)
    return 0


def _active_or_latest_run() -> str | None:
    from testbed.net import registry
    for entry in registry.entries():
        if registry.pid_alive(int(entry.get("pid", 0))):
            return entry.get("rundir")
    candidates = []
    for root, _dirs, files in os.walk("results"):
        if "run.json" in files and os.path.isdir(os.path.join(root, "state")):
            candidates.append((os.path.getmtime(os.path.join(root, "run.json")), root))
    return max(candidates)[1] if candidates else None


def show_stats(node: str, rundir: str | None) -> int:
    """``corecast stats NODE``: print a daemon's counters (status file) of a run."""
    rundir = rundir or _active_or_latest_run()
    if not rundir:
        raise ConfigError("no run found; give --run DIR")
    path = os.path.join(rundir, "state", f"{node}.status.json")
    try:
        with open(path) as fh:
            status = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"no status for '{node}' in {rundir}") from None
    print(json.dumps(status, indent=2, sort_keys=True))
    return 0
