"""Reachability checks of a running testbed, printed as a table.

* every host reaches its AS's border router (EID LAN);
* every border router reaches every other border router and the mapping host
  over RLOC space;
* without LISP, EIDs of different ASes must NOT reach each other;
  with the xTRs running (``lisp=True``) they must, by ping and by UDP.
Pings from one node run in parallel inside one shell command.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from testbed.addressing import AddressPlan


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


def ping_many(node: Any, targets: list[str], wait: float = 1.0, count: int = 1) -> dict[str, bool]:
    """Ping every target from ``node`` at once; return target -> reached."""
    if not targets:
        return {}
    script = " ".join(
        f"(ping -n -q -c {count} -W {wait:g} {t} >/dev/null 2>&1 && echo OK {t} || echo NO {t}) &" for t in targets
    )
    out = node.cmd(f"{script} wait")
    result = {t: False for t in targets}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in result:
            result[parts[1]] = parts[0] == "OK"
    return result


def udp_echo(server: Any, server_ip: str, client: Any, port: int = 7777, timeout: float = 3.0) -> bool:
    """Send one UDP datagram from ``client`` to ``server_ip`` and get the echo back (python one-liners)."""
    srv = server.popen([sys.executable, "-c", (
        "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.bind(('{server_ip}',{port}));s.settimeout({timeout});print('ready',flush=True);"
        "d,a=s.recvfrom(2048);s.sendto(d,a)")], stdout=-1, stderr=-1, text=True)
    try:
        srv.stdout.readline()
        out = client.cmd(f"{sys.executable} -c \"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                         f"s.settimeout({timeout});s.sendto(b'corecast-check',('{server_ip}',{port}));"
                         "print('ECHO' if s.recvfrom(2048)[0]==b'corecast-check' else 'BAD')\" 2>&1")
        return "ECHO" in out
    finally:
        srv.kill()
        srv.wait()


def _row(what: str, results: dict[str, bool], expect: bool, label: str) -> CheckRow:
    fails = [f"{label}->{t}" for t, ok in results.items() if ok != expect]
    return CheckRow(what, sum(results.values()), len(results), expect, fails)


def run_checks(tb: Any, plan: AddressPlan, lisp: bool = False) -> list[CheckRow]:
    """Probe the network of ``tb`` and return the table rows."""
    rows: list[CheckRow] = []
    hosts_ok, hosts_total, host_fail = 0, 0, []
    for a in plan.all_ases:
        hosts = sorted({h for h, _ in a.clients} | ({plan.source_host} if a.number == 0 else set()))
        for h in hosts:
            res = ping_many(tb.node(h), [a.xtr_lan_ip])
            hosts_total += 1
            hosts_ok += res[a.xtr_lan_ip]
            host_fail += [f"{h}->{a.xtr}"] if not res[a.xtr_lan_ip] else []
    rows.append(CheckRow("hosts reach their border router", hosts_ok, hosts_total, True, host_fail))
    rlocs = [a.rloc for a in plan.all_ases]
    ok = total = 0
    fails: list[str] = []
    for a in plan.all_ases:
        res = ping_many(tb.node(a.xtr), [r for r in rlocs if r != a.rloc] + [plan.ms_ip])
        ok += sum(res.values())
        total += len(res)
        fails += [f"{a.xtr}->{t}" for t, v in res.items() if not v]
    rows.append(CheckRow("border routers reach each other and the mapping host (RLOC)", ok, total, True, fails))
    targets = [a.clients[0][1] for a in plan.client_ases if a.clients]
    cross = ping_many(tb.node(plan.source_host), targets, wait=2.0 if lisp else 1.0, count=3 if lisp else 1)
    if lisp:
        rows.append(_row("EIDs of other ASes reachable through LISP (ping)", cross, True, plan.source_host))
        udp = {}
        for a in plan.client_ases:
            if a.clients:
                host, eid = a.clients[0]
                udp[eid] = udp_echo(tb.node(host), eid, tb.node(plan.source_host))
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
