"""topology: draw the emulated network as it runs, in the spirit of the paper's Figures 1 and 2.

Brings the paper topology up with LISP (map-server, xTRs registered, every client
AS resolved from the source by a ping through the tunnels), then builds the graph
from the live Mininet network (its nodes and links; each AS's LAN bridge is
folded into host-to-xTR links) and from the mapping system's registration table
(which ASes advertise CoreCast capability). The graph, with the paths a CoreCast
chunk takes (DATA once per capable ETR, a REF per client, full unicast packets to
clients and to non-capable ASes), is stored as ``topology.json`` in the run
directory and drawn to ``figures/topology.png``; ``corecast figures`` redraws it
from that file. No stream runs; measurements.csv stays absent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from testbed.nodeutil import ConfigError

DESCRIPTION = "a drawing of the live emulated network (ASes, xTRs, core, mapping system, DATA/REF paths); no stream"
DEFAULTS: dict[str, Any] = {"ases": 4, "clients": 3, "capable": 0.75, "client_hosts": "per-client"}


def validate(params: dict[str, Any]) -> None:
    """A drawing stays readable up to 8 client ASes and a few clients each."""
    if params["ases"] > 20:
        raise ConfigError(f"ases: at most 20 for a drawing, got {params['ases']}")


def as_label(a: Any) -> str:
    """An AS's name in the drawing: number and EID prefix."""
    return f"AS{a.number} {a.eid_prefix}"


def _kinds(plan: Any) -> dict[str, tuple[str, str | None]]:
    """Node name -> (kind, AS label) from the addressing plan."""
    kinds: dict[str, tuple[str, str | None]] = {plan.core: ("core", None), plan.ms: ("ms", None),
                                                plan.source_host: ("source", as_label(plan.source_as))}
    for a in plan.all_ases:
        label = as_label(a)
        kinds[a.xtr] = ("xtr", label)
        kinds[a.switch] = ("switch", label)
        for host, _eid in a.clients:
            kinds[host] = ("client", label)
    for t in getattr(plan, "transit", []) or []:  # a tree core's transit routers sit in the core too
        kinds[t.name] = ("transit", None)
    return kinds


def core_path(plan: Any, a: Any) -> list[str]:
    """The core routers from the source AS's xTR to client AS ``a``'s xTR: [core] on a star, [core, t<n>] on a tree."""
    up = getattr(a, "upstream", plan.core) or plan.core
    return [plan.core] if up == plan.core else [plan.core, up]


def live_links(net: Any) -> list[tuple[str, str]]:
    """The links of the running Mininet network as (node, node) name pairs."""
    return [(link.intf1.node.name, link.intf2.node.name) for link in net.links]


def fold_switches(links: list[tuple[str, str]], kinds: dict[str, tuple[str, str | None]]) -> list[list[str]]:
    """Replace each LAN bridge by links from its hosts to its xTR (the paper draws no switches)."""
    members: dict[str, list[str]] = {}
    out: list[list[str]] = []
    for a, b in links:
        sa, sb = kinds.get(a, ("", None))[0] == "switch", kinds.get(b, ("", None))[0] == "switch"
        if sa and not sb:
            members.setdefault(a, []).append(b)
        elif sb and not sa:
            members.setdefault(b, []).append(a)
        else:
            out.append([a, b])
    for nodes in members.values():
        xtrs = [n for n in nodes if kinds.get(n, ("", None))[0] == "xtr"]
        for x in xtrs:
            out += [[n, x] for n in nodes if n != x]
    return out


def build_graph(plan: Any, links: list[tuple[str, str]], registered: dict[str, bool]) -> dict[str, Any]:
    """The draw_topology graph: nodes, folded links, CoreCast paths, capable ASes.

    ``registered`` maps each registered EID prefix to its advertised CoreCast capability.
    """
    kinds = _kinds(plan)
    folded = fold_switches(links, kinds)
    present = {n for link in folded for n in link}
    nodes = [{"name": n, "kind": kinds.get(n, ("switch", None))[0], "as": kinds.get(n, ("switch", None))[1]}
             for n in sorted(present, key=lambda n: (kinds.get(n, ("z", ""))[1] or "", n))]
    for node in nodes:
        for a in plan.all_ases:
            if node["name"] == a.xtr:
                node["rloc"], node["eid_prefix"] = a.rloc, a.eid_prefix
    capable = [as_label(a) for a in plan.client_ases if registered.get(a.eid_prefix)]
    data, ref, uni = [], [], []
    src, x0 = plan.source_host, plan.source_as.xtr
    for a in plan.client_ases:
        if not a.clients:
            continue
        hosts = list(dict.fromkeys(h for h, _e in a.clients))
        via = core_path(plan, a)
        if registered.get(a.eid_prefix):
            data.append([src, x0, *via, a.xtr])
            ref.append([src, x0, *via, a.xtr])
            uni += [[a.xtr, h] for h in hosts]
        else:
            ref.append([src, x0])
            uni += [[x0, *via, a.xtr, h] for h in hosts]
    k, j = plan.params.total_clients, plan.params.active_ases
    return {"title": f"the emulated network: {j} client ASes, {k} clients, {len(capable)} CoreCast-capable "
                     f"(EIDs {plan.eid_block}, RLOCs {plan.rloc_block})",
            "nodes": nodes, "links": folded, "paths": {"data": data, "ref": ref, "unicast": uni},
            "capable": capable, "registered": registered, "plan": plan.to_dict()}


def registration_table(net: Any, timeout: float = 10.0) -> dict[str, bool]:
    """Ask the running map-server for its table (SIGUSR1) and return prefix -> CoreCast capability."""
    ms = net.lisp[0]
    path = ms.config.get("table_file") or os.path.join(net.ctx.run.path, "mapserver-table.json")
    t0 = time.time()
    ms.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                table = json.load(fh)
            if table.get("written_at", 0) >= t0:
                return {r["prefix"]: any(loc.get("corecast") for loc in r.get("rlocs", []))
                        for r in table.get("registrations", [])}
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the map-server did not write its table ({path}) within {timeout:.0f} s")


def run(ctx: Any) -> int:
    """Bring the network up, read it and the mapping system, store and draw the graph."""
    from testbed.figures import TOPOLOGY_JSON, plot_run
    from testbed.nodeutil import write_json_atomic
    with ctx.network("topology") as net:
        links = live_links(net.tb.net)
        registered = registration_table(net)
        graph = build_graph(net.plan, links, registered)
    write_json_atomic(os.path.join(ctx.run.path, TOPOLOGY_JSON), graph)
    for path in plot_run(ctx.run.path):
        print(f"figure: {path}")
    problems = []
    for a in net.plan.all_ases:
        if a.eid_prefix not in registered:
            problems.append(f"AS{a.number} ({a.eid_prefix}) is not registered with the map-server")
        elif a.number and registered[a.eid_prefix] != a.capable:
            problems.append(f"AS{a.number} advertises CoreCast={registered[a.eid_prefix]}, configured {a.capable}")
    print(f"{len(graph['nodes'])} nodes, {len(graph['links'])} links; registered: "
          + ", ".join(f"{p}{' (CoreCast)' if c else ''}" for p, c in sorted(registered.items())))
    for p in problems:
        print(f"CHECK FAILED: {p}")
    ctx.run.update(summary={"nodes": len(graph["nodes"]), "links": len(graph["links"]), "problems": problems})
    return 1 if problems else 0
