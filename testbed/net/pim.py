"""Native IP multicast for mode ``ipmc``: FRR's pimd (PIM-SSM, RFC 7761 / RFC 4607) on every router.

Every router of the plan (each AS's border router ``x<i>``, the core router and,
with a tree core, the transit routers) runs FRR's ``pimd`` next to a ``zebra``
(:class:`testbed.net.frr.FrrDaemon`, one private runtime directory per router;
a tree core's routers already run zebra for OSPF, and their pimd joins it):
``ip pim`` on every interface of the router that joins it to another router or
to an AS LAN, ``ip igmp`` (version 3) on the client ASes' LAN interfaces. The SSM
range is FRR's default, 232.0.0.0/8. Configurations go to
``config/frr/<router>/pimd.conf`` (checked with ``--dryrun``), logs to
``logs/<router>-pimd.log``.

EIDs are not in the RLOC routing: for this mode the source EID (a /32, the only
address PIM-SSM's reverse-path lookups need) is routed natively by static kernel
routes, which zebra hands to pimd like any other route: in every core router
towards the source AS (a transit router via the root) and in every client border
router towards its core router (more specific than the EID block's route into the
xTR's TUN device). The source's own border router has it on its LAN.

The LISP xTRs keep running: their RFC 8378 (``lispmc``) taps see the same
SSM packets on the source's LAN and, once the ETRs have registered the clients'
IGMP joins, the source's ITR would replicate them LISP-encapsulated too. For the
stream of this mode the source's border router drops those copies before they
leave (:func:`lispmc_block_rule`, an nftables ``output`` rule matching the inner
destination :data:`GROUP`), so the only data on the links is native multicast; and
it forwards natively no other SSM group (lispmc's streams of the same network stay
LISP-only although pimd would join them too).

:func:`wait_pim` returns once FRR's own state says so (``show ip pim neighbor
json``: every router has its PIM neighbor on every inter-domain link); never a sleep.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from typing import Any

from testbed.net.daemon import DaemonError
from testbed.net.frr import FrrDaemon, FrrError, socket_dir, vtysh, zebra_conf
from testbed.nodeutil import write_json_atomic

GROUP = "232.2.2.2"
"""The SSM group of mode ``ipmc`` (232/8, RFC 4607), not lispmc's 232.1.1.1."""
PORT = 6000
"""The group's UDP port: the clients' port (testbed.measure.CLIENT_PORT)."""


def routers(plan: Any) -> list[str]:
    """Every router of the plan: border routers (source AS first), the core router, the transit routers."""
    return [a.xtr for a in plan.all_ases] + [plan.core] + [t.name for t in plan.transit]


def pim_interfaces(plan: Any) -> dict[str, list[tuple[str, bool]]]:
    """Per router, its interfaces that run PIM as (name, igmp): router links, and the AS LANs (IGMP on clients')."""
    out: dict[str, list[tuple[str, bool]]] = {r: [] for r in routers(plan)}
    for a in plan.all_ases:  # the upstream side's name comes from the plan (testbed.addressing)
        out[a.xtr] += [(a.core_if, False), (a.lan_if, a is not plan.source_as)]
        out[a.upstream].append((a.up_if, False))
    for t in plan.transit:
        out[plan.core].append((f"{plan.core}-{t.name}", False))
        out[t.name].append((t.root_if, False))
    return out


def pimd_conf(router: str, intfs: list[tuple[str, bool]]) -> str:
    """pimd's configuration: PIM (1 s hellos) on ``intfs``, IGMPv3 where flagged; SSM range the default 232/8."""
    lines = [f"hostname {router}", "!"]
    for intf, igmp in intfs:
        lines += [f"interface {intf}", " ip pim", " ip pim hello 1 4"]
        if igmp:
            lines += [" ip igmp", " ip igmp version 3", " ip igmp query-interval 10"]
        lines.append("!")
    return "\n".join(lines) + "\n"


def expected_neighbors(plan: Any) -> dict[str, set[str]]:
    """Per router, the PIM neighbor addresses it must see: the far end of each inter-domain link."""
    out: dict[str, set[str]] = {r: set() for r in routers(plan)}
    for a in plan.all_ases:
        out[a.xtr].add(a.core_ip)
        out[a.upstream].add(a.rloc)
    for t in plan.transit:
        out[plan.core].add(t.ip)
        out[t.name].add(t.root_ip)
    return out


def source_routes(plan: Any, source: str) -> dict[str, str]:
    """Per router, the next hop of its static route to the source EID ``source`` (the source's own AS: none)."""
    out = {plan.core: plan.source_as.rloc}
    out.update({t.name: t.root_ip for t in plan.transit})
    out.update({a.xtr: a.core_ip for a in plan.client_ases})
    return out


def lispmc_block_rule(plan: Any, group: str = GROUP) -> str:
    """nft script for the source's border router: drop LISP data (UDP 4341) whose inner destination is ``group``.

    The inner IPv4 destination sits 32 bytes into the outer UDP header (UDP 8 + LISP 8 + 16).
    """
    inner = int(ipaddress.IPv4Address(group))
    up = plan.source_as.core_if
    return ("table ip corecast_ipmc {\n"
            "  chain lisp_out { type filter hook output priority 0; policy accept;\n"
            f'    oifname "{up}" udp dport 4341 @th,256,32 {inner:#010x} counter drop\n  }}\n'
            "  chain mcast_fw { type filter hook forward priority 0; policy accept;\n"
            f'    oifname "{up}" ip daddr 232.0.0.0/8 ip daddr != {group} counter drop\n  }}\n}}\n')


def _existing_zebras(tb: Any) -> dict[str, FrrDaemon]:
    return {d.router: d for d in getattr(tb, "daemons", []) if isinstance(d, FrrDaemon) and d.program == "zebra"}


def _nft(node: Any, script: str, timeout: float = 15.0) -> None:
    proc = node.popen(["nft", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True)
    try:
        _out, err = proc.communicate(script, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise FrrError(f"nft in {node.name} did not finish within {timeout:g} s") from None
    if proc.returncode:
        raise FrrError(f"nft in {node.name} failed: {(err or '').strip()[:200]}")


def neighbors(text: str) -> set[str]:
    """PIM neighbor addresses in ``show ip pim neighbor json`` ({interface: {address: {...}}})."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return set()
    return {addr for per_if in data.values() if isinstance(per_if, dict) for addr in per_if}


def wait_pim(plan: Any, sockdirs: dict[str, str], daemons: list[FrrDaemon], timeout: float = 30.0) -> float:
    """Wait until every router has its PIM neighbor on every inter-domain link; return the seconds.

    FrrError naming the first router that lags at the deadline; DaemonError if a pimd died.
    """
    t0 = time.monotonic()
    want = expected_neighbors(plan)
    pending = dict.fromkeys(sockdirs, "not checked yet")
    while True:
        for d in daemons:
            if not d.alive():
                raise DaemonError(f"{d.name} died while PIM came up; see {d.log_path}")
        for router in list(pending):
            have = neighbors(vtysh(sockdirs[router], "show ip pim neighbor json"))
            if want[router] <= have:
                del pending[router]
            else:
                pending[router] = f"PIM neighbors {sorted(have)} of {sorted(want[router])}"
        if not pending:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            router, why = next(iter(pending.items()))
            raise FrrError(f"PIM not up after {timeout:g} s: {router}: {why}")
        time.sleep(0.2)


def start_pim(tb: Any, plan: Any, rundir: str, timeout: float = 30.0) -> dict[str, str]:
    """Route the source EID, start zebra (where none runs) and pimd on every router, wait for PIM neighbors.

    Returns each router's FRR socket directory (for :func:`testbed.net.frr.vtysh`); also written
    to ``state/pim.json``.
    """
    for router, via in source_routes(plan, plan.source_eid).items():
        tb.node(router).cmd(f"ip route replace {plan.source_eid}/32 via {via}")
    _nft(tb.node(plan.source_as.xtr), lispmc_block_rule(plan))
    zebras = _existing_zebras(tb)
    sockdirs = {r: d.sockdir for r, d in zebras.items()}
    new_zebras, pimds = [], []
    intfs = pim_interfaces(plan)
    for router in routers(plan):
        node = tb.node(router)
        if router not in sockdirs:
            sockdirs[router] = socket_dir(router)
            new_zebras.append(FrrDaemon(node, router, "zebra", rundir, sockdirs[router], zebra_conf(router)))
        pimds.append(FrrDaemon(node, router, "pimd", rundir, sockdirs[router], pimd_conf(router, intfs[router])))
    if new_zebras:
        tb.start_daemons(new_zebras, timeout=timeout)
    tb.start_daemons(pimds, timeout=timeout)
    seconds = wait_pim(plan, sockdirs, pimds, timeout)
    write_json_atomic(f"{rundir}/state/pim.json", {"routers": routers(plan), "group": GROUP,
                                                    "neighbors_up_s": round(seconds, 3), "sockets": sockdirs})
    return sockdirs


def joined(text: str, source: str, group: str = GROUP) -> bool:
    """True if ``show ip pim upstream json`` has (source, group) in state Joined."""
    try:
        entry = json.loads(text or "{}").get(group, {}).get(source, {})
    except (ValueError, AttributeError):
        return False
    return str(entry.get("joinState", "")).lower() == "joined"


def tree_routers(plan: Any, members: Any = None) -> list[str]:
    """The routers of the (S, G) distribution tree: the source's border router, the core routers on a path
    to a client AS with clients (or, given ``members``, to those AS numbers only), and those ASes' border routers."""
    members = [a for a in plan.client_ases
               if (a.clients or a.many_host) and (members is None or a.number in members)]
    out = [plan.source_as.xtr, plan.core]
    out += sorted({a.upstream for a in members} - {plan.core})
    return out + [a.xtr for a in members]


def wait_joined(plan: Any, sockdirs: dict[str, str], timeout: float = 20.0, group: str = GROUP,
                members: Any = None) -> float:
    """Wait until every router of the distribution tree (to ``members``' ASes, default every AS with clients)
    has (S, G) Joined upstream (FRR's view); return seconds.

    FrrError naming the first router that lags at the deadline.
    """
    t0 = time.monotonic()
    pending = list(tree_routers(plan, members))
    while True:
        pending = [r for r in pending
                   if not joined(vtysh(sockdirs[r], "show ip pim upstream json"), plan.source_eid, group)]
        if not pending:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise FrrError(f"({plan.source_eid}, {group}) not joined after {timeout:g} s at {pending[0]}")
        time.sleep(0.1)
