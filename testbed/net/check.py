"""Reachability checks of a running testbed, printed as a table; every check is linear in the ASes.

* every host reaches its AS's border router (EID LAN): one ping per host;
* RLOC space: every border router reaches the mapping host, the source AS's border
  router and its next :data:`RING` neighbours (AS numbers modulo the AS count), and
  the source AS's border router reaches every other one: about (RING + 3) pings per AS
  instead of all pairs;
* without LISP, EIDs of different ASes must NOT reach each other (the source pings one
  client EID per AS); with the xTRs running (``lisp=True``) they must, by ping (every
  client AS, in waves of :data:`WAVE` ASes) and by UDP (a sample of at most
  :data:`UDP_SAMPLE` ASes, spread evenly).

The rows that expect an answer ping once a second until the first one, up to
:data:`PATIENCE` s (through LISP, plus :data:`PATIENCE_PER_TARGET` per AS): on a loaded
machine one of 1,000 simultaneous first echoes can miss a single second, and a first
packet through LISP waits for its Map-Reply. The row that expects silence sends one echo.

Every probe runs through the node's ``popen`` (targets are arguments, never a long
shell line) with a deadline; a probe that overruns it raises
:class:`~testbed.net.nodecmd.NodeCommandError` (one line). Probes of different nodes
run in parallel, at most :data:`PARALLEL` processes at a time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from testbed.addressing import AddressPlan
from testbed.net.nodecmd import NodeCommandError, finish, kill_group, start_in_node

RING = 2
"""Other border routers each border router pings besides the mapping host and the source AS's."""
UDP_SAMPLE = 8
"""Client ASes probed by UDP echo (the ping row covers every AS)."""
PARALLEL = 48
"""Probe processes run at once."""

PROBE_SH = ('c=$1; w=$2; shift 2; for t in "$@"; do '
            '(ping -n -q -c "$c" -W "$w" "$t" >/dev/null 2>&1 && echo "OK $t" || echo "NO $t") & done; wait')
"""One probe process: ping every target (arguments) in parallel, print ``OK|NO target`` per target."""
PROBE_UNTIL_SH = ('d=$1; shift; for t in "$@"; do '
                  '(ping -n -q -c 1 -w "$d" "$t" >/dev/null 2>&1 && echo "OK $t" || echo "NO $t") & done; wait')
"""The patient probe: one echo a second to every target until it answers once or ``d`` seconds passed."""
WAVE = 100
"""EIDs the source pings through LISP at once: the check resolves the ASes in waves of this many, one
wave after the other (1,000 first packets at once overflow x0's queues and the Map-Server's and x0's
socket buffers on 2 cores; how many misses an ITR absorbs at once is a benchmark's question, not the check's)."""
PATIENCE = 10.0
PATIENCE_PER_TARGET = 0.02
"""The cross-AS ping through LISP waits up to PATIENCE + PATIENCE_PER_TARGET * ASes seconds per EID
(30 s at 1,000 ASes): the first echoes wait for Map-Replies, and 1,000 misses at once on 2 cores take time."""


@dataclass
class CheckRow:
    """One line of the table: what was tried, how many succeeded, what was expected."""

    what: str
    ok: int
    total: int
    expect_reach: bool = True
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True if every probe went the expected way."""
        return self.ok == self.total if self.expect_reach else self.ok == 0


PROBE_PER_TARGET = 0.05
"""Seconds a probe's deadline grows per target (x0 pings every other border router at once: 1,000
ping processes forked by one shell on 2 cores)."""


def _probe_deadline(count: int, wait: float, targets: int = 1) -> float:
    return count + wait + 30.0 + PROBE_PER_TARGET * targets


def _parse(out: str, targets: list[str]) -> dict[str, bool]:
    result = {t: False for t in targets}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in result:
            result[parts[1]] = parts[0] == "OK"
    return result


def ping_all(jobs: list[tuple[Any, list[str]]], wait: float = 1.0, count: int = 1,
             patience: float = 0.0, parallel: int = PARALLEL) -> list[dict[str, bool]]:
    """Ping each job's targets from its node; return target -> reached per job (same order).

    ``count`` echoes ``wait`` s apart; or, with ``patience`` > 0, one echo a second until
    the first reply or ``patience`` s (:data:`PROBE_UNTIL_SH`: quick when it works, patient
    with a first packet that waits for a Map-Reply). At most ``parallel`` (default
    :data:`PARALLEL`) probe processes at once; each has a deadline of ``count + wait + patience + 30 + 0.05 *
    targets`` s (NodeCommandError naming the node if it overruns).
    """
    results: list[dict[str, bool]] = [{} for _ in jobs]
    running: list[tuple[int, Any, float]] = []
    todo = [(i, node, targets) for i, (node, targets) in enumerate(jobs) if targets]

    def reap(entry: tuple[int, Any, float]) -> None:
        i, proc, deadline = entry
        node, targets = jobs[i]
        out = finish(proc, deadline - time.monotonic(), f"{node.name}: ping of {len(targets)} targets")
        results[i] = _parse(out, targets)

    try:
        for i, node, targets in todo:
            if len(running) >= max(1, parallel):
                reap(running.pop(0))
            if patience > 0:
                argv = ["sh", "-c", PROBE_UNTIL_SH, "probe", f"{max(1, round(patience))}", *targets]
            else:
                argv = ["sh", "-c", PROBE_SH, "probe", str(count), f"{wait:g}", *targets]
            proc = start_in_node(node, argv)
            running.append((i, proc, time.monotonic() + patience + _probe_deadline(count, wait, len(targets))))
        while running:
            reap(running.pop(0))
    except BaseException:
        for _i, proc, _d in running:
            kill_group(proc)
        raise
    return results


def ping_many(node: Any, targets: list[str], wait: float = 1.0, count: int = 1) -> dict[str, bool]:
    """Ping every target from ``node`` at once; return target -> reached."""
    return ping_all([(node, list(targets))], wait, count)[0]


ECHO_SERVER = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
               "s.bind((sys.argv[1],int(sys.argv[2])));s.settimeout(float(sys.argv[3]));print('ready',flush=True)\n"
               "while True:\n try:\n  d,a=s.recvfrom(2048)\n except OSError:\n  break\n s.sendto(d,a)")
ECHO_CLIENT = ("import socket,sys,time;port=int(sys.argv[1]);t=float(sys.argv[2]);ts=sys.argv[3:];"
               "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(0.2);end=time.monotonic()+t;got=set()\n"
               "while time.monotonic()<end and len(got)<len(ts):\n"
               " [s.sendto(b'corecast-check',(x,port)) for x in ts if x not in got]\n"
               " try:\n  d,a=s.recvfrom(2048)\n  got.add(a[0]) if d==b'corecast-check' else None\n"
               " except socket.timeout:\n  pass\n"
               "[print('ECHO',x) for x in sorted(got)]")


def udp_echo_many(pairs: list[tuple[Any, str]], client: Any, port: int = 7777, timeout: float = 5.0) -> dict[str, bool]:
    """Start one UDP echo server per (node, address), then send to all from ``client``; address -> echoed.

    The client resends every 0.2 s until each address answered or ``timeout`` passed
    (the first datagram to a new EID may wait for a Map-Reply).
    """
    servers = []
    try:
        for node, addr in pairs:
            servers.append(node.popen([sys.executable, "-c", ECHO_SERVER, addr, str(port), str(timeout + 10)],
                                      stdin=-3, stdout=-1, stderr=-3, text=True))
        for (node, _addr), srv in zip(pairs, servers):
            line = _readline(srv, 20.0)
            if line.strip() != "ready":
                raise NodeCommandError(f"{node.name}: the UDP echo server did not start")
        targets = [addr for _node, addr in pairs]
        proc = start_in_node(client, [sys.executable, "-c", ECHO_CLIENT, str(port), f"{timeout:g}", *targets])
        out = finish(proc, timeout + 30, f"{client.name}: UDP echo to {len(targets)} addresses")
        got = {line.split()[1] for line in out.splitlines() if line.startswith("ECHO ")}
        return {t: t in got for t in targets}
    finally:
        for srv in servers:
            kill_group(srv)


def _readline(proc: Any, timeout: float) -> str:
    """One line of a process's stdout, waiting at most ``timeout`` s ('' on timeout or EOF)."""
    import select
    poller = select.poll()  # not select(): a 400-node network has file descriptors above 1024
    poller.register(proc.stdout.fileno(), select.POLLIN)
    return proc.stdout.readline() if poller.poll(int(timeout * 1000)) else ""


def udp_echo(server: Any, server_ip: str, client: Any, port: int = 7777, timeout: float = 3.0) -> bool:
    """Send one UDP datagram from ``client`` to ``server_ip`` (served by ``server``) and get the echo back."""
    return udp_echo_many([(server, server_ip)], client, port, timeout)[server_ip]


def spread(items: list, n: int) -> list:
    """At most ``n`` items spread evenly over ``items`` (first and last included)."""
    if len(items) <= n:
        return list(items)
    step = (len(items) - 1) / (n - 1)
    return [items[round(k * step)] for k in range(n)]


def _row(what: str, results: dict[str, bool], expect: bool, label: str) -> CheckRow:
    fails = [f"{label}->{t}" for t, ok in results.items() if ok != expect]
    return CheckRow(what, sum(results.values()), len(results), expect, fails)


def rloc_targets(plan: AddressPlan) -> dict[str, list[str]]:
    """xTR name -> RLOC-space addresses it pings (the mapping host, x0's RLOC, RING neighbours; x0: all)."""
    ases = plan.all_ases
    n = len(ases)
    src = plan.source_as
    out = {}
    for i, a in enumerate(ases):
        if a.number == src.number:
            targets = [b.rloc for b in ases if b.number != a.number]
        else:
            targets = [src.rloc] + [ases[(i + k) % n].rloc for k in range(1, RING + 1)]
        seen: list[str] = []
        for t in [plan.ms_ip, *targets]:
            if t != a.rloc and t not in seen:
                seen.append(t)
        out[a.xtr] = seen
    return out


def routing_row(tb: Any, plan: AddressPlan, daemons: list[Any]) -> CheckRow:
    """A tree core's routing as FRR sees it now: per core router, its OSPF adjacencies Full and every RLOC
    subnet in its kernel table (:func:`testbed.net.frr.wait_converged`'s criteria, asked once)."""
    from testbed.net.frr import FrrError, expected_subnets, full_neighbors, kernel_routes, router_ids, vtysh
    ids, nets = router_ids(plan), expected_subnets(plan)
    want = {plan.core: {ids[t.name] for t in plan.transit}, **{t.name: {ids[plan.core]} for t in plan.transit}}
    sockdirs = {d.router: d.sockdir for d in daemons if getattr(d, "program", "") == "ospfd"}
    fails = []
    for router, nbrs in want.items():
        try:
            if router not in sockdirs:
                raise FrrError("no ospfd running")
            lacking = nbrs - full_neighbors(vtysh(sockdirs[router], "show ip ospf neighbor json"))
            missing = nets - kernel_routes(tb.node(router))
        except FrrError as exc:
            fails.append(f"{router}: {exc}")
            continue
        if lacking or missing:
            fails.append(f"{router}: {len(lacking)} adjacencies not Full, {len(missing)} RLOC subnets not routed")
    return CheckRow("tree core routed by FRR (OSPF Full, every RLOC subnet)",
                    len(want) - len(fails), len(want), True, fails)


def run_checks(tb: Any, plan: AddressPlan, lisp: bool = False, routing: list[Any] | None = None) -> list[CheckRow]:
    """Probe the network of ``tb`` and return the table rows.

    ``routing``: the FRR daemons routing a tree core (:func:`testbed.session.start_core_routing`);
    with a tree core, a first row says whether FRR holds every adjacency and route.
    """
    rows: list[CheckRow] = []
    if getattr(plan, "transit", None):
        rows.append(routing_row(tb, plan, routing or []))
    host_jobs = []
    for a in plan.all_ases:
        hosts = sorted({h for h, _ in a.clients} | ({plan.source_host} if a.number == 0 else set()))
        host_jobs += [(h, a) for h in hosts]
    res = ping_all([(tb.node(h), [a.xtr_lan_ip]) for h, a in host_jobs], patience=PATIENCE)
    fails = [f"{h}->{a.xtr}" for (h, a), r in zip(host_jobs, res) if not r[a.xtr_lan_ip]]
    rows.append(CheckRow("hosts reach their border router", len(host_jobs) - len(fails), len(host_jobs), True, fails))
    targets = rloc_targets(plan)
    res = ping_all([(tb.node(x), t) for x, t in targets.items()], patience=PATIENCE)
    ok = sum(sum(r.values()) for r in res)
    total = sum(len(r) for r in res)
    fails = [f"{x}->{t}" for x, r in zip(targets, res) for t, v in r.items() if not v]
    rows.append(CheckRow("border routers reach the mapping host and each other (RLOC)", ok, total, True, fails))
    eids = [a.clients[0][1] for a in plan.client_ases if a.clients]
    if lisp:
        src = tb.node(plan.source_host)
        waves = [eids[i:i + WAVE] for i in range(0, len(eids), WAVE)]
        cross = {}
        for got in ping_all([(src, w) for w in waves], patience=PATIENCE + PATIENCE_PER_TARGET * len(eids),
                            parallel=1):
            cross.update(got)
    else:
        cross = ping_many(tb.node(plan.source_host), eids, wait=1.0, count=1)
    if lisp:
        rows.append(_row("EIDs of other ASes reachable through LISP (ping)", cross, True, plan.source_host))
        sample = spread([a for a in plan.client_ases if a.clients], UDP_SAMPLE)
        udp = udp_echo_many([(tb.node(a.clients[0][0]), a.clients[0][1]) for a in sample], tb.node(plan.source_host))
        rows.append(_row("EIDs of other ASes reachable through LISP (UDP)", udp, True, plan.source_host))
    else:
        rows.append(_row("EIDs of other ASes unreachable without LISP", cross, False, plan.source_host))
    return rows


def format_table(plan: AddressPlan, rows: list[CheckRow]) -> str:
    """The per-AS summary and the check rows, as text."""
    lines = [f"{'AS':>4} {'xTR':<5} {'RLOC':<14} {'EID prefix':<14} {'clients':>7} {'capable':>7}"]
    for a in plan.all_ases:
        lines.append(f"{a.number:>4} {a.xtr:<5} {a.rloc:<14} {a.eid_prefix:<14} "
                     f"{(len(a.clients) if a.number else 1):>7} {('yes' if a.capable else 'no'):>7}")
    lines.append("")
    for r in rows:
        verdict = "ok" if r.passed else "FAIL"
        want = "reached" if r.expect_reach else "reached (want 0)"
        lines.append(f"{verdict:<4} {r.what:<62} {r.ok}/{r.total} {want}")
        for f in r.failures[:5]:
            lines.append(f"       unexpected: {f}")
    return "\n".join(lines)
