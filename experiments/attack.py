"""attack: replay the attacks of docs/security.md on a live CoreCast network; amplification per attack.

The paper topology gets two attackers (``testbed.addressing``, ``attackers=True``):
``outsider``, a host on the core that reaches every RLOC, and ``rogue``, a
non-client host on the LAN of the last client AS. A legitimate CoreCast stream
runs to every client meanwhile; the attacks run one after the other while it
streams, each from ``nodes/attacker.py`` (datagrams of ``testbed.attack``):

1. ``etr-outsider``  DATA + REFs with the C bit straight to AS 1's ETR RLOC
2. ``etr-rogue``     the same from the rogue host of another client AS
3. ``oversized``     the same with a ``big_chunk``-byte chunk
4. ``spoofed-eid``   REFs whose Source EIDs are another AS's host and a non-EID,
   outer source spoofed to the source ITR's RLOC (a vouched-for ITR)
5. ``service-rogue`` DATA + REFs to the ITR service 10.0.255.254:4340 from the
   rogue host with IP source 10.0.0.10 (through LISP: x_j encapsulates to x0)
6. ``service-core``  the same from the outsider, LISP-encapsulated to x0's RLOC
7. ``forged-live``   forged DATA + REFs into the live stream (its stream ID,
   Source EID and ports) from the outsider's own address
8. ``forged-spoof``  the same with the outer source spoofed to x0's RLOC (raw
   socket): the attack the defence leaves open (docs/security.md); it runs
   during a second stream, so that the first one checks that attacks 1-7 cost
   the legitimate stream nothing

Per attack a row: datagrams and bytes sent, datagrams and bytes that reached
clients (captures on every client LAN, told apart by the attack's marker),
amplification = bytes reaching clients / bytes sent, and the xTR counters that
rose meanwhile (``drop_counters``). ``defence`` lists the settings, each in its own
network: ``off`` (the xTRs' ``corecast_defence`` off), ``on`` (the data-plane defence),
``on+sav`` (``sav`` on the command line: the defence plus source address validation,
BCP 38 strict uRPF, in every router: :mod:`testbed.net.sav`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

from experiments.common import check_common, chunk_rate
from testbed.attack import drop_deltas, fresh_statuses
from testbed.net.daemon import Daemon
from testbed.nodeutil import ConfigError, read_status

DESCRIPTION = ("security: 8 attacks (outsider on the core, rogue host in a client AS) during a live CoreCast "
               "stream; defence off, on, on + source address validation; amplification per attack")
DEFAULTS: dict[str, Any] = {
    "ases": 2, "clients": 2, "defence": "off,on,sav", "refs": 100, "big_chunk": 65000, "forged_rounds": 20,
    "rate_pps": 2000, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 1.0, "lead_s": 1.0, "max_stream_s": 60.0,
    "content": "file",
}
ATTACK_PORT = 7000
"""Attack N sends its REFs to client port 7000 + N (forged-live: the stream's own port)."""
STREAM_BASE = 0xA77A0000
"""Attack N uses stream ID STREAM_BASE + N (forged-live: the stream's own ID)."""


@dataclass(frozen=True)
class Attack:
    """One attack: its number, name, attacking host (plan attribute), whether it spoofs an RLOC, spec maker."""

    id: int
    name: str
    host: str
    spoofs_rloc: bool
    spec: Callable[[Any, dict[str, Any]], tuple[dict[str, Any], dict[str, Any] | None]]
    """(plan, params) -> (testbed.attack spec, warm-up place or None)."""


def _as1(plan: Any) -> list[str]:
    return [eid for _h, eid in plan.client_ases[0].clients]


def _etr_spec(aid: int, plan: Any, p: dict[str, Any], **over: Any) -> dict[str, Any]:
    spec = {"kind": "etr", "id": aid, "target": plan.client_ases[0].rloc, "spoof": None,
            "stream_id": STREAM_BASE + aid, "chunk_bytes": p["chunk_bytes"], "src_eids": [plan.source_eid],
            "dst_eids": _as1(plan), "sport": 5000, "dport": ATTACK_PORT + aid, "refs": p["refs"]}
    spec.update(over)
    return spec


def _service_spec(aid: int, plan: Any, p: dict[str, Any], via: str) -> dict[str, Any]:
    return {"kind": "service", "id": aid, "via": via, "service": plan.service_addr, "port": 4340,
            "claimed_src": plan.source_eid, "target": plan.source_as.rloc, "stream_id": STREAM_BASE + aid,
            "chunk_bytes": p["chunk_bytes"], "dst_eids": [eid for _a, _h, eid in plan.clients()],
            "sport": 5000, "dport": ATTACK_PORT + aid, "refs": p["refs"]}


def _forged_live(aid: int, plan: Any, p: dict[str, Any], spoof: str | None) -> tuple[dict[str, Any], None]:
    """Forged chunks for the live stream: its stream ID 1, Source EID and ports, AS 1's clients."""
    from testbed.measure import CLIENT_PORT, SOURCE_PORT
    clients = _as1(plan)
    return _etr_spec(aid, plan, p, spoof=spoof, stream_id=1, dport=CLIENT_PORT, sport=SOURCE_PORT,
                     refs=len(clients), rounds=p["forged_rounds"], seq=1), None


ATTACKS = [
    Attack(1, "etr-outsider", "outsider", False, lambda plan, p: (_etr_spec(1, plan, p), None)),
    Attack(2, "etr-rogue", "rogue", False, lambda plan, p: (_etr_spec(2, plan, p), None)),
    Attack(3, "oversized", "outsider", False,
           lambda plan, p: (_etr_spec(3, plan, p, chunk_bytes=p["big_chunk"]), None)),
    Attack(4, "spoofed-eid", "outsider", True, lambda plan, p: (_etr_spec(
        4, plan, p, spoof=plan.source_as.rloc, src_eids=[plan.client_ases[-1].xtr_lan_ip, "192.0.2.1"]), None)),
    Attack(5, "service-rogue", "rogue", False, lambda plan, p: (
        _service_spec(5, plan, p, "raw"), {"dst": plan.service_addr, "port": 4340})),
    Attack(6, "service-core", "outsider", False, lambda plan, p: (_service_spec(6, plan, p, "lisp"), None)),
    Attack(7, "forged-live", "outsider", False, lambda plan, p: _forged_live(7, plan, p, None)),
    Attack(8, "forged-spoof", "outsider", True, lambda plan, p: _forged_live(8, plan, p, plan.source_as.rloc)),
]
OPEN = frozenset(("forged-spoof",))
"""Attacks the defence does not claim to stop (an outer source spoofed to a vouched ITR's RLOC)."""


class AttackerDaemon(Daemon):
    """``nodes/attacker.py`` in the attacking host: one attack, then it exits."""

    program = "attacker"


SETTINGS = ("off", "on", "on+sav")
"""The defence settings, in the order the figure shows them."""


def defences(value: Any) -> list[str]:
    """The ``defence`` parameter as a list of settings (off, on, on+sav); ConfigError.

    Accepts true/false, on/off, sav (= on+sav), both (= on,off) and comma-separated lists.
    """
    if value is True or value is False:
        return ["on" if value else "off"]
    items = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    if items == ["both"]:
        items = ["on", "off"]
    mapping = {"on": "on", "true": "on", "yes": "on", "off": "off", "false": "off", "no": "off", "sav": "on+sav",
               "on+sav": "on+sav"}
    if not items or any(i not in mapping for i in items):
        raise ConfigError(f"defence must list off, on or sav (e.g. off,on,sav), got '{value}'")
    return list(dict.fromkeys(mapping[i] for i in items))


def validate(params: dict[str, Any]) -> None:
    """Check the parameters (two client ASes at least: the rogue attacks another AS)."""
    check_common(params)
    params["defence"] = ",".join(d.replace("on+sav", "sav") for d in defences(params["defence"]))
    if params.get("core", "star") != "star":
        raise ConfigError("the attack experiment runs on the star core (core=star): its attackers hang off the "
                          "root router")
    if params["ases"] < 2:
        raise ConfigError("ases must be at least 2: the rogue host's AS is not the one attacked")
    for key, low, high in (("refs", 1, 5000), ("big_chunk", 1500, 65487), ("forged_rounds", 1, 1000),
                           ("rate_pps", 10, 100_000), ("max_stream_s", 10, 600)):
        if not low <= params[key] <= high:
            raise ConfigError(f"{key} must be within {low}..{high}, got {params[key]}")



def _launch(net: Any, attack: Attack, defence: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one attack from its host and wait for it; return what it sent."""
    plan = net.plan
    spec, warm = attack.spec(plan, params)
    cfg: dict[str, Any] = {"spec": spec, "rate_pps": params["rate_pps"], "deadline_s": 60}
    if attack.name.startswith("forged-"):  # one round (DATA + its REFs) at a time, 20 rounds a second
        cfg.update(burst=spec["refs"] + 1, rate_pps=20)
    if warm:
        cfg.update(warmup=warm, warmup_s=0.5)
    host = getattr(plan, attack.host)
    d = AttackerDaemon(net.tb.node(host), f"atk-{defence.replace('+', '-')}-{attack.id}", net.ctx.run.path, cfg)
    d.start()
    code = d.wait_exit(75)
    if code is None:
        d.stop()
        raise RuntimeError(f"attacker {attack.name} did not finish within 75 s")
    if code != 0:
        raise d.died_error()
    sent = read_status(d.config["status_file"])
    return {"attacker": host, "sent_packets": int(sent.get("packets", 0)), "sent_bytes": int(sent.get("bytes", 0)),
            "send_errors": int(sent.get("errors", 0))}


def _counters(net: Any, xtrs: dict[str, str], sav: bool) -> dict[str, dict]:
    """Fresh xTR status files, plus each router's source-address-validation drops (``{"sav": {"sav-drop": n}}``)."""
    got = fresh_statuses(xtrs, time.time())
    if sav:
        from testbed.net.sav import read_drops, routers
        for name, (packets, _bytes) in read_drops(net.tb, routers(net.plan)).items():
            got.setdefault(name, {})["sav"] = {"sav-drop": packets}
    return got


def _attacker(net: Any, defence: str, params: dict[str, Any], results: dict[int, dict[str, Any]],
              attacks: list[Attack]):
    """The stream's ``during`` function: the attacks in turn, then stop the source."""
    xtrs = {d.name: d.config["status_file"] for d in net.lisp[1:]}
    sav = defence == "on+sav"

    def during(source: Daemon) -> None:
        try:
            attack_all(source)
        finally:
            if source.alive():
                source.proc.send_signal(signal.SIGTERM)  # the stream has served its purpose

    def attack_all(source: Daemon) -> None:
        time.sleep(params["lead_s"])
        before = _counters(net, xtrs, sav)
        wrong = [n for n in xtrs if before[n].get("corecast_defence") is not (defence != "off")]
        if wrong:
            raise RuntimeError(f"{', '.join(wrong)} do not run with the defence {defence}")
        for attack in attacks:
            sent = _launch(net, attack, defence, params)
            time.sleep(0.3)  # let the last datagrams be delivered and counted
            after = _counters(net, xtrs, sav)
            drops = drop_deltas(before, after)
            results[attack.id] = {**sent, "drop_counters": json.dumps(drops, sort_keys=True),
                                  "caught_by": " ".join(sorted({k.split(".", 2)[2] for k in drops}))}
            print(f"  {attack.name:<14} sent {sent['sent_packets']:>5} datagrams {sent['sent_bytes']:>9} B; "
                  f"drops {drops or '-'}", flush=True)
            before = after
    return during


def _captures(net: Any, label: str) -> list:
    """Start a capture on every client AS's LAN (the xTR's LAN side, towards the clients)."""
    from testbed.net.capture import Capture
    caps = []
    for a in net.plan.client_ases:
        path = os.path.join(net.ctx.run.path, "pcap", f"{label}-{a.xtr}-lan.pcap")
        cap = Capture(net.tb.node(a.xtr), a.lan_if, path, bpf="ip", direction="out", snaplen=96)
        cap.start()
        net.tb.captures.append(cap)
        caps.append(cap)
    return caps


def run_defence(ctx: Any, defence: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One network with the defence on or off: the two stream rows (attacks 1-7, then the OPEN
    ones) and one row per attack."""
    from testbed.addressing import make_plan
    from testbed.attack import count_delivered
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    p = ctx.params
    label = f"defence-{defence.replace('+', '-')}"
    net = ctx.network(label, defence="off" if defence == "off" else "on")
    net.plan = make_plan(topo_params(net.values), attackers=True)  # the same plan plus the two attackers
    net.tb = Testbed(net.plan, ctx.run.path)
    results: dict[int, dict[str, Any]] = {}
    chunks = math.ceil(p["max_stream_s"] * chunk_rate(p) * p["speed"])
    guarded = [a for a in ATTACKS if a.name not in OPEN]
    with net:
        if defence == "on+sav":
            from testbed.net.sav import install, routers
            install(net.tb, routers(net.plan))
        caps = _captures(net, label)
        try:
            stream = net.stream(ctx.spec("corecast", chunks=chunks),
                                during=_attacker(net, defence, p, results, guarded))
            net.label = f"{label}-open"  # the second stream's records, daemons and row get their own names
            second = net.stream(ctx.spec("corecast", chunks=chunks),
                                during=_attacker(net, defence, p, results, [a for a in ATTACKS if a.name in OPEN]))
        finally:
            for cap in caps:
                cap.stop()
                net.tb.captures.remove(cap)
        reached = count_delivered([c.path for c in caps])
        dropped = sum(c.dropped for c in caps)
    if not ctx.keep_pcap:
        for cap in caps:
            os.unlink(cap.path)
    stream.update(defence=defence, row_kind="stream", attack="", capture_dropped=stream.get("capture_dropped", 0)
                  + dropped)
    second.update(defence=defence, row_kind="stream-open", attack=",".join(sorted(OPEN)))
    rows = []
    for attack in ATTACKS:
        got = reached.get(attack.id, {"datagrams": 0, "bytes": 0, "fragments": 0})
        r = results.get(attack.id, {})
        sent_bytes = r.get("sent_bytes", 0)
        rows.append({
            "experiment": ctx.experiment, "mode": "corecast", "ases": stream["ases"],
            "capable_ases": stream["capable_ases"], "clients": stream["clients"], "gamma": stream["gamma"],
            "chunk_bytes": p["big_chunk"] if attack.name == "oversized" else p["chunk_bytes"], "chunks": 0,
            "core_bytes": None, "core_packets": None, "control_bytes": None, "model_core_bytes": None,
            "delivered_chunks": 0, "expected_chunks": 0, "corrupt_chunks": 0, "point": label,
            "row_kind": "attack", "defence": defence, "attack": attack.name, "attack_id": attack.id,
            "spoofs_rloc": attack.spoofs_rloc, "attacker": r.get("attacker", attack.host),
            "sent_packets": r.get("sent_packets", 0), "sent_bytes": sent_bytes,
            "send_errors": r.get("send_errors", 0), "reached_packets": got["datagrams"],
            "reached_bytes": got["bytes"], "reached_fragments": got["fragments"],
            "amplification": round(got["bytes"] / sent_bytes, 4) if sent_bytes else None,
            "drop_counters": r.get("drop_counters", "{}"), "caught_by": r.get("caught_by", ""),
            "lan_capture_dropped": dropped})
    return [stream, second], rows


def problems_of(stream: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """What fails the run: an attack that never ran; with the defence on, any attack not in OPEN
    reaching a client (with on+sav: any attack at all), or the legitimate stream of attacks 1-7 not
    delivered whole and intact (or off its model)."""
    out = []
    for r in rows:
        where = f"defence {r['defence']}, {r['attack']}"
        if not r["sent_packets"]:
            out.append(f"{where}: the attacker sent nothing")
        if r["defence"] != "off" and r["reached_packets"] and not (r["defence"] == "on" and r["attack"] in OPEN):
            out.append(f"{where}: {r['reached_packets']} datagrams ({r['reached_bytes']} B) reached clients")
        if r["lan_capture_dropped"]:
            out.append(f"{where}: the client-LAN captures dropped {r['lan_capture_dropped']} packets")
    if stream["defence"] != "off":
        out += stream_problems(stream)
    return out


def stream_problems(s: dict[str, Any]) -> list[str]:
    """The legitimate stream of attacks 1-7 with the defence on: whole, intact, on its model at x0's uplink.

    Only the source AS's uplink is compared with the model: the other inter-domain
    links also carry the attacks (dropped at the ETRs, after crossing them).
    """
    where = f"{s['point']} legitimate stream"
    out = []
    if s["delivered_chunks"] != s["expected_chunks"]:
        out.append(f"{where}: delivered {s['delivered_chunks']} of {s['expected_chunks']} chunks")
    if s["corrupt_chunks"]:
        out.append(f"{where}: {s['corrupt_chunks']} corrupt chunks")
    if s["core_bytes"] != s["model_core_bytes"]:
        out.append(f"{where}: core bytes {s['core_bytes']} vs model {s['model_core_bytes']}")
    if s.get("capture_dropped"):
        out.append(f"{where}: the captures dropped {s['capture_dropped']} packets")
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per attack: sent, reached, amplification, the counters that caught it."""
    head = f"{'defence':<8} {'attack':<14} {'sent':>6} {'sent B':>9} {'reached':>8} {'reached B':>10} " \
           f"{'ampl.':>8}  caught by"
    lines = [head, "-" * len(head)]
    for r in rows:
        amp = f"{r['amplification']:8.2f}" if r["amplification"] is not None else f"{'-':>8}"
        lines.append(f"{r['defence']:<8} {r['attack']:<14} {r['sent_packets']:>6} {r['sent_bytes']:>9} "
                     f"{r['reached_packets']:>8} {r['reached_bytes']:>10} {amp}  {r['caught_by'] or '-'}")
    return "\n".join(lines)


def run(ctx: Any) -> int:
    """Each defence setting in its own network; rows, table, verdict."""
    all_rows, problems, streams = [], [], []
    for defence in ctx.points(defences(ctx.params["defence"]), label="defence settings"):
        try:
            (stream, second), rows = run_defence(ctx, defence)
        except Exception as exc:  # keep the other setting
            reason = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(f"defence {defence}: {type(exc).__name__}: {reason}")
            print(f"POINT FAILED: {problems[-1]}", flush=True)
            continue
        ctx.record(stream)
        ctx.record(second)
        for r in rows:
            ctx.record(r)
        streams.append(stream)
        all_rows += rows
        problems += problems_of(stream, rows)
        if defence == "on+sav":
            problems += stream_problems(second)
        print(f"defence {defence}: legitimate stream delivered {stream['delivered_chunks']}/"
              f"{stream['expected_chunks']} chunks, {stream['corrupt_chunks']} corrupt; during the spoofed "
              f"attack {second['delivered_chunks']}/{second['expected_chunks']}, {second['corrupt_chunks']} "
              "corrupt", flush=True)
        for r in rows:
            if r["defence"] == "on" and r["attack"] in OPEN and r["reached_packets"]:
                print(f"OPEN: defence on, {r['attack']}: {r['reached_packets']} forged datagrams reached clients "
                      "(an outer source spoofed to a vouched ITR's RLOC; see docs/security.md)", flush=True)
    print(format_table(all_rows))
    opened = [r for r in all_rows if r["defence"] == "on" and r["attack"] in OPEN and r["reached_packets"]]
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print("defence on: no attack but the open ones reached a client (on+sav: none at all), and the "
              "legitimate stream arrived whole and intact")
    ctx.run.update(summary={
        "problems": problems,
        "open": [f"{r['attack']}: {r['reached_packets']} datagrams reached clients" for r in opened],
        "amplification": {f"{r['defence']}/{r['attack']}": r["amplification"] for r in all_rows},
        "streams": {s["defence"]: {"delivered": s["delivered_chunks"], "expected": s["expected_chunks"],
                                   "corrupt": s["corrupt_chunks"]} for s in streams}})
    return 1 if problems else 0
