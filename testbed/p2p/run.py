"""One P2P stream on a running network (mode ``p2p``): peer hosts, the source with its tracker, the checks.

Called by :meth:`testbed.modes.p2p.P2PMode.stream` with a :class:`testbed.measure.Network`.
Peers run on the plan's client hosts (:func:`peer_hosts`): one ``nodes.peer`` daemon per host,
serving every EID of the host (``client_hosts=per-as``: the AS's many-clients host ``m<i>``
with its block routed as local; otherwise each client host with its own EID). The order
makes the link counters exact:

1. every client AS's border router learns every other's mapping (one ping from a host of
   each AS to one EID of every other AS), so no peer datagram waits in a map-cache miss;
2. link counters read; the source starts (its tracker binds before it is ready) with
   ``start_at`` a little later; the peer hosts start and join at once;
3. the stream ends; the peers play until ``stop_at`` (last chunk + B + slack), then send
   nothing (each host says ``quiet`` in its status file); the link counters are read once two
   reads agree (nothing left in the xTRs' queues); SIGTERM; each host writes its peers' results.

The stream starts :func:`start_lead` seconds after the configs are written, longer on a loaded
machine; if a peer host is still not up by then the stream fails in one line (a late peer
would miss the first chunks) instead of reporting a continuity that measures the load.

The row has the usual columns plus the P2P metrics (docs/p2p.md) and ``xas_wire_bytes``:
what the peers and the source say they sent across ASes, IP-encapsulated
(payload + 28 + 36 per datagram). Self-consistency (:mod:`testbed.p2p.selfcheck`, star and
tree cores): each (link, direction) must carry exactly what the senders' own counters
(by destination AS) put on the paths through it; ``links_self_mismatches`` counts those that
do not (0 expected). links.csv gets a row per (link, direction) whose ``model_bytes`` is that
expectation; ``model_core_bytes`` / ``model_interdomain_bytes`` are its value on the source
uplink / its sum (what the generic checks of :func:`experiments.common.check_rows` compare), the
analytical model (:mod:`testbed.p2p.model`) is in ``model_p2p_core_bytes`` and
``model_p2p_interdomain_bytes`` (chunk copies and control; ``model_p2p_chunk_bytes``: chunk copies
only), beside the measured split ``xas_chunk_copies`` / ``xas_chunk_wire_bytes`` (the rest of
``xas_wire_bytes`` is control). On a star core every datagram crosses two links, so
``interdomain_bytes == 2 * xas_wire_bytes``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from testbed.net.daemon import Daemon, SourceDaemon
from testbed.net.links import core_shape
from testbed.net.links import delta as link_delta
from testbed.nodeutil import read_status
from testbed.p2p.metrics import swarm_summary
from testbed.p2p.model import interdomain_bytes_per_chunk, source_uplink_bytes_per_chunk
from testbed.p2p.params import P2PParams
from testbed.p2p.selfcheck import WIRE, Flows, add_flows, expected_links
from testbed.wire.p2p import P2P_PORT, TRACKER_PORT

class PeerDaemon(Daemon):
    """A host of P2P peers (``nodes.peer``)."""

    program = "peer"



def peer_hosts(net: Any) -> list[tuple[Any, str, list[str]]]:
    """(AS plan, host name, EIDs) per host that serves peers: the many-clients host of a per-AS plan, else each
    client host (its own EID), in AS order."""
    out = []
    for a in net.plan.client_ases:
        by_host: dict[str, list[str]] = {}
        for host, eid in a.clients:
            by_host.setdefault(host, []).append(eid)
        out += [(a, host, eids) for host, eids in by_host.items()]
    return out


def warm_pairs(net: Any) -> None:
    """Resolve every client AS at every other's border router (one ping per pair); RuntimeError if one fails."""
    from testbed.net.check import ping_all
    ases = [a for a in net.plan.client_ases if a.clients]
    jobs = [(net.tb.node(a.clients[0][0]), [b.clients[0][1] for b in ases if b is not a]) for a in ases]
    jobs = [(n, t) for n, t in jobs if t]
    if not jobs:
        return
    for (node, targets), res in zip(jobs, ping_all(jobs, 2.0, 2)):
        missing = [t for t, ok in res.items() if not ok]
        if missing:
            raise RuntimeError(f"p2p warm-up: {node.name} cannot reach {missing[0]} through LISP")


def wait_quiet(peers: list[PeerDaemon], stop_at: float, limit_s: float = 30.0) -> None:
    """Wait until ``stop_at`` has passed and every peer host says it is quiet (sends nothing any more).

    A one-line DaemonError if a host died, RuntimeError if one is not quiet ``limit_s`` after ``stop_at``.
    """
    while True:
        dead = [p for p in peers if not p.alive()]
        if dead:
            raise dead[0].died_line("mid-stream")
        now = time.time()
        if now >= stop_at and all(read_status(p.config["status_file"]).get("state") == "quiet" for p in peers):
            return
        if now > stop_at + limit_s:
            raise RuntimeError(f"p2p: peer hosts still sending {limit_s:.0f} s after the playout end")
        time.sleep(0.1)


def settled_links(net: Any, before: dict, gap_s: float = 0.3, limit_s: float = 15.0) -> dict:
    """What crossed each inter-domain link since ``before``, once two reads ``gap_s`` apart agree on the
    LISP data (datagrams still queued in an xTR have arrived); the last read after ``limit_s``."""
    last = net.link_counters.read()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(gap_s)
        now = net.link_counters.read()
        settled = all((now[k].bytes, now[k].packets) == (c.bytes, c.packets) for k, c in last.items())
        last = now
        if settled:  # LISP data still; control (Map-Registers) may go on and is counted apart
            break
    return link_delta(before, last)


def start_lead(peers: int, hosts: int) -> float:
    """Seconds from now to the stream's start: time for the source and every peer host to start and join.

    About 1 s plus 10 ms per peer and 50 ms per host on an idle machine, times the load (the 1-minute load
    average per CPU, at least 1): process start-up slows down as the load grows, and a peer that joins after
    the first chunks were pushed would miss them (:func:`stream_p2p` raises rather than measure that).
    """
    load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    return (1.0 + 0.01 * peers + 0.05 * hosts) * min(load, 4.0)


def stream_p2p(net: Any, spec: Any, params: P2PParams,
               churn: dict[str, tuple[float | None, float | None]] | None = None,
               slack_s: float | None = None) -> dict[str, Any]:
    """Run one P2P stream of ``spec`` on ``net`` and return its row (see the module docstring).

    ``churn`` maps a peer EID to (join offset, leave offset) in seconds from the stream's start (None:
    join at once, never leave). ``records/<label>-p2p/startup.json`` gets every peer's startup delay by EID.
    """
    plan, tb, run = net.plan, net.tb, net.ctx.run
    hosts = peer_hosts(net)
    net.streams += 1
    tag = f"{net.label}-p2p"
    rec_dir = os.path.join(run.path, "records", tag)
    os.makedirs(rec_dir, exist_ok=True)
    rate = spec.bitrate * spec.speed / (8 * spec.chunk_bytes)
    warm_pairs(net)
    knobs = {k: getattr(params, k) for k in P2PParams.__dataclass_fields__}
    lead = start_lead(sum(len(eids) for _a, _h, eids in hosts), len(hosts))
    net._link_caps = None  # not an earlier stream's captures
    links0 = net._start_links(tag, "p2p")  # the link counters (installed on first use); captures with --keep-pcap
    t_start = time.time() + lead + 0.5
    stream_s = spec.chunks / rate
    if slack_s is None:  # playback starts once B s are held: a few buffer-map rounds after B in a big swarm
        slack_s = 1.0 + 4 * params.bm_period_s
    stop_at = t_start + stream_s + params.buffer_s + slack_s + params.request_timeout_s
    src_cfg = {"mode": "p2p", "eid": plan.source_eid, "src_port": P2P_PORT, "stream_id": 1,
               "chunk_bytes": spec.chunk_bytes, "bitrate": spec.bitrate, "speed": spec.speed, "chunks": spec.chunks,
               "content": spec.content, "start_at": t_start,
               "record_file": os.path.join(rec_dir, "source.csv"),
               "p2p": {"asn": 0, "tracker_port": TRACKER_PORT, "params": knobs, "seed": 1,
                       "linger_until": stop_at + 1.0}}  # no ICMP unreachable for the peers' last buffer maps
    source = SourceDaemon(tb.node(plan.source_host), f"{tag}-src", run.path, src_cfg)
    peers = []
    for a, host, eids in hosts:
        entries = []
        for eid in eids:
            e: dict[str, Any] = {"eid": eid, "port": P2P_PORT}
            join_off, leave_off = (churn or {}).get(eid, (None, None))
            if join_off is not None:
                e["join_at"] = t_start + join_off
            if leave_off is not None:
                e["leave_at"] = t_start + leave_off
            entries.append(e)
        cfg = {"asn": a.number, "tracker": {"addr": plan.source_eid, "port": TRACKER_PORT, "asn": 0},
               "stream_id": 1, "chunk_rate": rate, "chunk_bytes": spec.chunk_bytes, "params": knobs,
               "seed": a.number, "peers": entries, "stop_at": stop_at,
               "result_file": os.path.join(rec_dir, f"{host}.json")}
        peers.append(PeerDaemon(tb.node(host), f"{tag}-{host}", run.path, cfg))
    try:
        tb.start_daemons([source], timeout=60)
        tb.start_daemons(peers, timeout=30 + 0.02 * len(peers))
        margin = t_start - time.time()
        if margin < 0:  # a peer joining after the first chunks would miss them: say so rather than measure that
            raise RuntimeError(f"p2p: the peers were up {-margin:.1f} s after the stream's start (lead {lead:.1f} s; "
                               f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        deadline = max(time.time() + lead + stream_s * 3 + 30, stop_at + 30)
        while source.wait_exit(0.25) is None:
            if time.time() > deadline:
                raise RuntimeError(f"p2p source did not finish {spec.chunks} chunks in time")
        if source.proc.returncode != 0:
            raise source.died_line("mid-stream")
        wait_quiet(peers, stop_at)
        links = settled_links(net, links0)
    finally:
        tb.stop_daemons(peers)
        if getattr(net, "_link_caps", None) is not None:
            net._link_caps.stop()
    net.last_links = links
    row = p2p_row(net, spec, params, source, peers, links, rec_dir, peer_seconds=stop_at - (t_start - margin))
    row["start_margin_s"] = round(margin, 3)  # how long before the first chunk every peer host was up
    return row


def p2p_row(net: Any, spec: Any, params: P2PParams, source: SourceDaemon, peers: list[PeerDaemon],
            links: dict, rec_dir: str, peer_seconds: float = 0.0) -> dict[str, Any]:
    """The measured row of a P2P stream: delivery by digest, P2P metrics, links against the peers' counters.

    ``peer_seconds``: how long the peers exchanged buffer maps (from the hosts' start to the playout end),
    for the model's control term (testbed.p2p.model.control_bytes_per_chunk).
    """
    from testbed.stream.records import read_source_record
    plan = net.plan
    src = read_source_record(source.config["record_file"])
    digests = {int(s): f"{int(d):016x}" for s, d in zip(src.seqs, src.digests)}
    status = read_status(source.config["status_file"])
    kinds = status.get("by_kind", {})
    src_bytes = sum(v.get("bytes", 0) for v in kinds.values())
    src_packets = sum(v.get("datagrams", 0) for v in kinds.values())
    stats, per_as, by_eid = [], {}, {}
    flows: Flows = {}  # (from AS, to AS) -> [bytes, datagrams] sent across ASes, by the senders' own counters
    add_flows(flows, 0, status.get("tracker", {}).get("to_as", {}))
    corrupt = delivered = configured = 0
    for d in peers:
        res = read_status(d.config["result_file"]).get("peers", {})
        asn = d.config["asn"]
        configured += len(d.config["peers"])
        sent = per_as.setdefault(asn, [0, 0])
        for name, s in res.items():
            stats.append(s)
            by_eid[name.split(":")[0]] = s["startup_delay_s"]
            add_flows(flows, asn, s.get("xas_by_as", {}))
            sent[0] += s["xas_bytes"]
            sent[1] += s["xas_packets"]
            for seq, digest in s.get("played_digests", []):
                if digests.get(seq) == digest:
                    delivered += 1
                else:
                    corrupt += 1
    summary = swarm_summary(stats)
    shape = core_shape(plan)
    rate = spec.bitrate * spec.speed / (8 * spec.chunk_bytes)
    pushes, push_bytes = kinds.get("chunk", {}).get("datagrams", 0), kinds.get("chunk", {}).get("bytes", 0)
    xas_wire = src_bytes + WIRE * src_packets + sum(b + WIRE * n for b, n in per_as.values())
    interdomain = sum(c.bytes for c in links.values())
    expected, unplaced = expected_links(plan, flows, links)
    mismatches = sum(1 for key, c in links.items() if c.bytes != expected[key]) + int(unplaced > 0)
    # every byte the senders counted is on some path: flows add up to their own totals
    mismatches += int(sum(b + WIRE * n for b, n in flows.values()) != xas_wire)
    from testbed.interdomain import link_columns, write_link_rows
    from testbed.results import LINKS_CSV
    caps = getattr(net, "_link_caps", None)
    link_rows = write_link_rows(os.path.join(net.ctx.run.path, LINKS_CSV), net.link_counters.links, links, expected,
                                {"experiment": net.ctx.experiment, "point": net.label, "mode": "p2p",
                                 "stream": f"{net.streams}:{net.label}-p2p-{params.policy}-{params.upload:g}"},
                                caps.counts() if caps is not None else None)
    captured = {"links_capture_mismatches": link_columns(link_rows)["links_capture_mismatches"],
                "links_capture_dropped": caps.dropped if caps is not None else 0}
    params_row = plan.params
    k, j = params_row.total_clients, params_row.active_ases
    delays = sorted(s["startup_delay_s"] for s in stats if s["startup_delay_s"] is not None)
    row: dict[str, Any] = {
        "experiment": net.ctx.experiment, "mode": "p2p", "policy": params.policy, "upload": params.upload,
        "ases": len(plan.client_ases), "clients": k, "distribution": params_row.distribution, "gamma": round(k / j, 4) if j else 0.0,
        "capable_ases": sum(1 for c, n in zip(params_row.capable, params_row.clients_per_as) if c and n),
        "chunk_bytes": spec.chunk_bytes, "chunks": len(src), "point": net.label,
        "clients_per_as": " ".join(map(str, params_row.clients_per_as)), "active_ases": j,
        # the "model" columns the generic checks compare with (experiments.common.check_rows) are what the
        # links must carry by the nodes' own counters (P2P traffic is decided by the peers, not the network);
        # the analytical model of testbed.p2p.model is in the model_p2p_* columns
        "model_core_bytes": expected[shape.source_uplink], "model_interdomain_bytes": sum(expected.values()),
        "model_p2p_core_bytes": round(len(src) * source_uplink_bytes_per_chunk(params_row.clients_per_as,
                                                                             spec.chunk_bytes, params.fanout)),
        "model_p2p_interdomain_bytes": round(len(src) * interdomain_bytes_per_chunk(
            params_row.clients_per_as, params.policy, spec.chunk_bytes, params.fanout, links_per_copy=2,
            params=params, rate=rate, chunks=len(src), peer_seconds=peer_seconds)),
        "model_p2p_chunk_bytes": round(len(src) * interdomain_bytes_per_chunk(
            params_row.clients_per_as, params.policy, spec.chunk_bytes, params.fanout, params=params)),
        "chunk_rate": round(rate, 4), "peer_seconds": round(peer_seconds, 3),
        # what crossed ASes by the senders' counters, on the wire (x 2 links on a star): chunk copies and control
        "xas_chunk_copies": pushes + summary["xas_chunks"],
        "xas_chunk_wire_bytes": push_bytes + WIRE * pushes + summary["xas_chunk_bytes"] + WIRE * summary["xas_chunks"],
        "core_bytes": links[shape.source_uplink].bytes, "core_packets": links[shape.source_uplink].packets,
        "control_bytes": sum(c.control_bytes for c in links.values()),
        "interdomain_bytes": interdomain, "max_link_bytes": max((c.bytes for c in links.values()), default=0),
        "xas_wire_bytes": xas_wire, "links_self_mismatches": mismatches,
        "delivered_chunks": delivered, "expected_chunks": len(src) * configured, "corrupt_chunks": corrupt,
        "source_upload_bytes": kinds.get("chunk", {}).get("bytes", 0),
        "continuity": round(summary["continuity"], 6), "min_continuity": round(summary["min_continuity"], 6),
        "startup_delay_s": summary["startup_delay_s"], "median_startup_s": delays[len(delays) // 2] if delays else None,
        "lag_s": summary["lag_s"], "duplicates": summary["duplicates"], "peer_control_bytes": summary["control_bytes"],
        "peers_started": summary["started"], "played": summary["played"], "missed": summary["missed"],
        # neither played nor missed: not yet due when the peers stopped, before a late join or after a leave
        "unplayed_chunks": len(src) * configured - summary["played"] - summary["missed"],
        **captured,  # --keep-pcap: every link's capture against its counters, as in every mode
    }
    with open(os.path.join(rec_dir, "startup.json"), "w") as fh:
        json.dump(by_eid, fh)
    return row
