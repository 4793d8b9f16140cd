"""Router state per mode and router: what each router holds at the end of a stream.

Read from the daemons' status files (``state/<name>.status.json``, rewritten every
second by the xTRs and the Map-Server) and, where FRR's pimd runs, from FRR itself
(``vtysh -c 'show ip mroute json'`` through :func:`testbed.net.frr.vtysh`):

========================  ==================================================================
column                    what it counts (sum over routers unless said otherwise)
========================  ==================================================================
``state_map_cache``       map-cache entries in every xTR (RFC 9300 section 4)
``state_itr_map_cache``   map-cache entries in the source ITR (x0)
``state_cc_chunks``       CoreCast chunks held (ITR: one per stream; ETR: one per (ITR, stream)
                          plus quarantined ones)
``state_repl_entries``    RLOCs in the lispmc ITRs' replication lists (RFC 8378 section 4)
``state_etr_sg``          (S,G) entries with receivers at lispmc ETRs
``state_ms_registrations`` EID-prefix registrations in the Map-Server
``state_ms_sg``           (S,G) entries in the Map-Server; ``state_ms_repl``: RLOCs in their lists
``state_mroutes``         (S,G) multicast routes in FRR's pimd (0 when no pimd runs)
``state_max_router``      the largest per-router total of the counts above
========================  ==================================================================

The state is a level, not a flow: a network streams its modes one after the other,
so a mode's row also shows what earlier modes left behind (e.g. the map-cache entries
the warm-up resolved). :class:`testbed.measure.Network` takes the snapshot once the
clients have drained and before they leave (multicast state is still joined);
:func:`router_state` waits (deadline ``timeout``) until every status file was written
after the call.
"""

from __future__ import annotations

import json
import time
from typing import Any

COLUMNS = ("state_map_cache", "state_itr_map_cache", "state_cc_chunks", "state_repl_entries", "state_etr_sg",
           "state_ms_registrations", "state_ms_sg", "state_ms_repl", "state_mroutes", "state_max_router")
"""The router-state columns of measurements.csv, in order."""


def _read(path: str) -> dict:
    try:
        with open(path) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _fresh(daemons: list[Any], since: float, timeout: float) -> dict[str, dict]:
    """Status of each daemon, waiting until each file's ``time`` is at least ``since`` (or the deadline)."""
    deadline = time.monotonic() + timeout
    out: dict[str, dict] = {}
    while True:
        for d in daemons:
            if d.name not in out or out[d.name].get("time", 0) < since:
                out[d.name] = _read(d.config.get("status_file", ""))
        if all(s.get("time", 0) >= since for s in out.values()) or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def xtr_state(status: dict) -> dict[str, int]:
    """One xTR's state from its status file: map_cache, cc_chunks, repl_entries, etr_sg."""
    lispmc = status.get("lispmc") or {}
    lists = lispmc.get("replication_lists") or {}
    receivers = lispmc.get("receivers") or {}
    return {"map_cache": int(status.get("map_cache_entries") or 0),
            "cc_chunks": int(status.get("corecast_chunks") or 0),
            "repl_entries": sum(int(v) for v in lists.values() if isinstance(v, int)),
            "etr_sg": sum(1 for v in receivers.values() if v)}


def ms_state(status: dict) -> dict[str, int]:
    """The Map-Server's state: registrations, (S,G) entries and the RLOCs in their replication lists."""
    mc = status.get("multicast") or {}
    return {"ms_registrations": int(status.get("registrations") or 0), "ms_sg": len(mc),
            "ms_repl": sum(int((v or {}).get("size", 0)) for v in mc.values() if isinstance(v, dict))}


def count_mroutes(text: str) -> int:
    """(S,G) entries in FRR's ``show ip mroute json`` (``{group: {source: {...}}}``); 0 for unreadable text."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return 0
    n = 0
    for group, sources in (data.items() if isinstance(data, dict) else []):
        if isinstance(sources, dict) and "." in group:
            n += sum(1 for src, v in sources.items() if isinstance(v, dict) and ("." in src or src == "*"))
    return n


def frr_mroutes(daemons: list[Any]) -> dict[str, int]:
    """Per router running FRR's pimd, its mroute entries (the FRR hook; empty when no pimd runs)."""
    from testbed.net.frr import FrrError, vtysh
    out: dict[str, int] = {}
    for d in daemons:
        if getattr(d, "program", None) == "pimd" and getattr(d, "sockdir", None):
            try:
                out[d.router] = count_mroutes(vtysh(d.sockdir, "show ip mroute json", timeout=5.0))
            except FrrError:
                out[d.router] = 0
    return out


def router_state(daemons: list[Any], timeout: float = 2.5) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(columns, per router) for the network's daemons (xTRs named ``x<N>``, the Map-Server ``ms``, FRR daemons).

    ``columns`` has every name of :data:`COLUMNS`; ``per router`` maps a router name to its counts.
    """
    xtrs = [d for d in daemons if d.name[:1] == "x" and d.name[1:].isdigit()]
    ms = [d for d in daemons if d.name == "ms"]
    status = _fresh(xtrs + ms, time.time(), timeout)
    per: dict[str, dict[str, int]] = {d.name: xtr_state(status.get(d.name, {})) for d in xtrs}
    for d in ms:
        per[d.name] = ms_state(status.get(d.name, {}))
    for router, n in frr_mroutes(daemons).items():
        per.setdefault(router, {})["mroutes"] = n
    total = lambda key: sum(v.get(key, 0) for v in per.values())  # noqa: E731
    cols = {"state_map_cache": total("map_cache"),
            "state_itr_map_cache": per.get("x0", {}).get("map_cache", 0),
            "state_cc_chunks": total("cc_chunks"), "state_repl_entries": total("repl_entries"),
            "state_etr_sg": total("etr_sg"), "state_ms_registrations": total("ms_registrations"),
            "state_ms_sg": total("ms_sg"), "state_ms_repl": total("ms_repl"), "state_mroutes": total("mroutes"),
            "state_max_router": max((sum(v.values()) for v in per.values()), default=0)}
    return cols, per
