"""Start the LISP layer of a plan: the map-server on the mapping host and an xTR per AS.

Config rendering lives here (one function per daemon) so node code never
hard-codes an address: everything comes from the :class:`AddressPlan`.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from testbed.addressing import AddressPlan, AsPlan
from testbed.net.daemon import MapServerDaemon, XtrDaemon
from testbed.wire.constants import CORECAST_PORT, LISP_CONTROL_PORT


def site_keys(plan: AddressPlan) -> dict[int, str]:
    """A fresh random authentication key per AS site (written only into the run's configs)."""
    return {a.number: secrets.token_hex(16) for a in plan.all_ases}


def mapserver_config(plan: AddressPlan, rundir: str, keys: dict[int, str], expiry_s: float = 180.0) -> dict[str, Any]:
    """The map-server's config: one site per AS, allowed to register its own EID block."""
    return {
        "listen": plan.ms_ip, "port": LISP_CONTROL_PORT, "expiry_s": expiry_s, "negative_ttl_min": 15,
        "rloc_prefixes": [plan.rloc_block], "max_ttl_min": 1440,
        "table_file": os.path.join(rundir, "mapserver-table.json"),
        "sites": [{"name": f"as{a.number}", "key": keys[a.number], "algorithms": ["sha256", "sha1"],
                   "prefixes": [a.eid_prefix]} for a in plan.all_ases],
    }


def xtr_config(plan: AddressPlan, a: AsPlan, keys: dict[int, str], register_interval: float = 60.0,
               **extra: Any) -> dict[str, Any]:
    """The config of AS ``a``'s xTR."""
    cfg: dict[str, Any] = {
        "as": a.number, "rloc": a.rloc, "eid_prefixes": [a.eid_prefix], "eid_block": plan.eid_block,
        "lan_if": a.lan_if, "core_if": a.core_if, "tun": f"{a.xtr}-tun",
        "map_server": plan.ms_ip, "map_resolver": plan.ms_ip, "control_port": LISP_CONTROL_PORT,
        "key": keys[a.number], "alg_id": 2, "register_interval_s": register_interval,
        "corecast": a.capable,
    }
    if a.number == 0:
        cfg["corecast_service"] = {"addr": plan.service_addr, "port": CORECAST_PORT,
                                   "allowed_sources": [f"{plan.source_eid}/32"]}
    cfg.update(extra)
    return cfg


STATUS_ASES = 100
"""Up to this many ASes every xTR writes its status file every second; above, x_i (i > 0) every
ases / STATUS_ASES seconds (10 s at 1,000 ASes), x0 still every second (live progress reads it).
The stream's clients follow the same rule (testbed.measure.Network.client_daemons)."""


ITR_NICE = -10
"""Above :data:`STATUS_ASES` ASes the source AS's xTR (the ITR every chunk crosses) runs at this nice value.

At 1,000 ASes two thousand processes (xTRs and receivers) share the two CPUs; the scheduler gives
each runnable one a fair share, and x0, which alone serves the whole stream (k + 1 datagrams per
chunk), fell behind its service socket at 15,000 datagrams/s with 10 % of a CPU. A router has its
own CPU in the network this emulates: the weight of nice -10 (about 9x) gives it back. The ETRs,
each serving gamma clients, need no such help."""


def itr_nice(plan: AddressPlan, a: AsPlan) -> int:
    """The nice value of AS ``a``'s xTR (see :data:`ITR_NICE`)."""
    return ITR_NICE if a.number == 0 and len(plan.all_ases) > STATUS_ASES else 0


def status_interval(plan: AddressPlan, a: AsPlan) -> float:
    """Seconds between status-file writes of AS ``a``'s xTR (see :data:`STATUS_ASES`)."""
    n = len(plan.all_ases)
    return 1.0 if a.number == 0 or n <= STATUS_ASES else n / STATUS_ASES


def lisp_daemons(tb: Any, plan: AddressPlan, rundir: str, register_interval: float = 60.0,
                 expiry_s: float | None = None, xtr_extra: dict[str, Any] | None = None) -> list:
    """The map-server and xTR daemons for ``plan`` (not started)."""
    keys = site_keys(plan)
    expiry = expiry_s if expiry_s is not None else 3 * register_interval
    daemons: list = [MapServerDaemon(tb.node(plan.ms), plan.ms, rundir, mapserver_config(plan, rundir, keys, expiry))]
    for a in plan.all_ases:
        cfg = xtr_config(plan, a, keys, register_interval, **(xtr_extra or {}))
        cfg.setdefault("status_interval_s", status_interval(plan, a))
        if itr_nice(plan, a):
            cfg.setdefault("nice", itr_nice(plan, a))
        daemons.append(XtrDaemon(tb.node(a.xtr), a.xtr, rundir, cfg))
    return daemons
