"""One stream measured on a running network: the core of ``corecast run``.

:class:`Network` brings one topology up with LISP running; :meth:`Network.stream`
runs one stream in one mode and returns the measured row: the capture on the
source ITR's core-facing interface counted by message type, the model's
prediction, the clients' delivery checked digest by digest against the source,
interface counters and CPU times. :mod:`testbed.experiment` drives it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from testbed.addressing import AddressPlan, make_plan
from testbed.datamatch import capture_filter
from testbed.interdomain import link_columns, model_link_bytes, write_link_rows
from testbed.measure_support import DROP_COUNTERS, StreamHelper, count_drops, cpu_seconds, rss_kib  # noqa: F401
from testbed.modes import Mode, get_mode
from testbed.net.capture import Capture, capture_comment, read_counters
from testbed.net.daemon import ClientDaemon, Daemon, SourceDaemon, first_dead
from testbed.net.links import LinkCaptures, LinkCounters, core_shape, interdomain_links
from testbed.net.links import delta as link_delta
from testbed.net.lisp import STATUS_ASES
from testbed.net.network import Testbed
from testbed.nodeutil import read_status
from testbed.params import topo_params
from testbed.results import LINKS_CSV
from testbed.routerstate import router_state


class RunContext(Protocol):
    """What a :class:`Network` needs from its caller (:class:`testbed.experiment.Context` is one)."""

    experiment: str
    run: Any  # testbed.results.RunDir
    keep_pcap: bool
    keep_records: bool

    def sub_progress(self, total: float, label: str, unit: str = "") -> Any:
        """A progress bar (context manager with ``update(n)``)."""

CLIENT_PORT = 6000
SOURCE_PORT = 5000


@dataclass
class StreamSpec:
    """One stream to measure, in a delivery mode given by name or as a :class:`~testbed.modes.Mode` class."""

    mode: str | type[Mode]
    chunks: int
    chunk_bytes: int = 1316
    bitrate: int = 1_000_000
    speed: float = 1.0
    content: str = "ffmpeg"
    extra: dict[str, Any] = field(default_factory=dict)
    """More: ``source`` (keys of the source config), ``client`` (keys of every client config), ``player``,
    ``audience`` (``f(source_record, receipts, client_daemons) -> source_record``: adds the joins of clients
    that join by themselves, e.g. (S,G) joins timed by the compare experiment, before delivery and the model)."""
    mode_cls: type[Mode] = field(init=False, repr=False)
    """The mode's class (``mode`` becomes its name); ConfigError for an unknown name."""

    def __post_init__(self) -> None:
        self.mode_cls = get_mode(self.mode)
        self.mode = self.mode_cls.name


class Network:
    """A topology up with LISP running, ready to carry streams."""

    def __init__(self, ctx: RunContext, values: dict[str, Any], label: str,
                 warm_ases: Iterable[int] | None = None) -> None:
        self.ctx = ctx
        self.values = values
        self.label = label
        self.plan: AddressPlan = make_plan(topo_params(values))
        self.tb = Testbed(self.plan, ctx.run.path)
        self.lisp: list[Daemon] = []
        self.streams = 0
        self._clients: list[ClientDaemon] = []
        self.warm_ases = None if warm_ases is None else set(warm_ases)
        """Client ASes resolved at the source ITR before the first stream (None: every client AS)."""
        self.last_report = None
        """The delivery report (testbed.stream.records.DeliveryReport) of the last stream."""
        self.last_source_record = None
        """The source record (testbed.stream.records.SourceRecord) of the last stream."""
        self.modes: dict[type[Mode], Mode] = {}
        """The modes started on this network (one instance per mode class)."""
        self.link_counters = None
        """testbed.net.links.LinkCounters of every inter-domain link (installed at the first stream)."""
        self.last_links: dict = {}
        """Per (link, direction), what crossed it during the last stream (testbed.net.links.LinkCount)."""

    def __enter__(self) -> "Network":
        from testbed.session import start_lisp
        self.tb.__enter__()
        try:
            self.lisp = start_lisp(self.tb, self.plan, self.ctx.run.path, self.values)
            self.warm_up()
        except BaseException:
            self.tb.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.tb.stop()

    def xtr(self, as_number: int) -> Daemon:
        """The xTR daemon of an AS."""
        return next(d for d in self.lisp if d.name == f"x{as_number}")

    def warm_up(self) -> None:
        """Resolve the client ASes at the source ITR (one ping each), so streams start on a warm map-cache.

        Only the ASes in ``warm_ases`` if it was given (the others stay cold: their first
        packet waits for a Map-Request), else every client AS with clients.
        """
        from testbed.net.check import ping_many
        targets = [a.clients[0][1] for a in self.plan.client_ases
                   if a.clients and (self.warm_ases is None or a.number in self.warm_ases)]
        if not targets:
            return
        res = ping_many(self.tb.node(self.plan.source_host), targets, wait=2.0, count=2)
        missing = [t for t, ok in res.items() if not ok]
        if missing:
            raise RuntimeError(f"warm-up: {len(missing)} client ASes unreachable through LISP, e.g. {missing[0]}")

    def client_daemons(self, tag: str, port: int, player: bool | str = False,
                       extra: dict[str, Any] | None = None) -> list[ClientDaemon]:
        """Receiver daemons for every client: one per host (a host may serve many EIDs).

        With ``player``, the first host serving a single EID also plays the stream
        through ffmpeg, or VLC with ``player="vlc"`` (its decodable frames are counted at the end).
        """
        by_host: dict[str, list[str]] = {}
        for _as, host, eid in self.plan.clients():
            by_host.setdefault(host, []).append(eid)
        rec_dir = os.path.join(self.ctx.run.path, "records", tag)
        os.makedirs(rec_dir, exist_ok=True)
        daemons = []
        ases = len(self.plan.all_ases)  # above STATUS_ASES ASes, status files are written less often
        every = 1.0 if ases <= STATUS_ASES else ases / STATUS_ASES
        for host, eids in by_host.items():
            cfg: dict[str, Any] = {"port": port, "bind": "0.0.0.0", "eids": eids, "status_interval_s": every,
                                   "record_file": os.path.join(rec_dir, f"{host}.bin"), **(extra or {})}
            if player and len(eids) == 1:
                cfg.update(player=True, player_mode="pipe", player_file=os.path.join(rec_dir, f"{host}-player.ts"),
                           player_app="vlc" if player == "vlc" else "ffmpeg")
                player = False
            daemons.append(ClientDaemon(self.tb.node(host), f"{tag}-{host}", self.ctx.run.path, cfg))
        return daemons

    def stream(self, spec: StreamSpec, during: Callable[[SourceDaemon], None] | None = None) -> dict[str, Any]:
        """Run one stream in ``spec.mode`` and return its measured row.

        ``during(source)``, if given, runs in a thread once the source is ready (e.g. to
        join clients through its control socket); the stream waits for it, and an
        exception it raises is raised here. A mode that runs its own stream (its
        :meth:`~testbed.modes.Mode.run_stream` returns a row, as ``p2p`` does) runs it
        instead of the per-client stream below.
        """
        own = self.mode(spec.mode_cls).run_stream(spec, during)
        if own is not None:
            return own
        self.streams += 1
        tag = f"{self.label}-{spec.mode}"
        run = self.ctx.run
        plan = self.plan
        clients = self._clients = self.client_daemons(tag, CLIENT_PORT, player=spec.extra.get("player") or False,
                                                      extra={**self.mode(spec.mode_cls).client_config(),
                                                             **spec.extra.get("client", {})})
        self.tb.start_daemons(clients, timeout=30 + 0.1 * len(clients))
        cap = self._link_caps = None
        try:
            self.mode(spec.mode_cls)
            pcap = os.path.join(run.path, "pcap", f"{tag}-x0-core.pcap")
            comment = capture_comment(run.path, spec.mode, plan.source_as.xtr, plan.source_as.core_if,
                                      point=self.label) if self.ctx.keep_pcap else None
            cap = Capture(self.tb.node(plan.source_as.xtr), plan.source_as.core_if, pcap,
                          bpf=capture_filter(getattr(self.tb, "link_data", ())), direction="out",
                          snaplen=getattr(self.ctx, "snaplen", 128), comment=comment)
            cap.start()
            self.tb.captures.append(cap)
            links0 = self._start_links(tag, spec.mode)
            x0 = self.xtr(0)
            etrs = [self.xtr(a.number) for a in plan.client_ases if a.clients]
            cpu0 = {d.name: cpu_seconds(d.proc.pid) for d in [x0, *etrs]}
            ctr0 = read_counters(self.tb.node(plan.source_as.xtr), plan.source_as.core_if)
            if getattr(self.ctx, "live", None) is not None:  # --live: the uplink's bytes count from here
                self.ctx.live.begin(tag, ctr0.tx_bytes)
            source = self._source(tag, spec)
            t0 = time.monotonic()
            self.tb.start_daemons([source])
            helper = StreamHelper(during, source) if during is not None else None
            try:
                self._wait_source(source, spec)
            except BaseException:
                if helper is not None:
                    helper.finish(timeout=1.0, reraise=False)
                raise
            if helper is not None:
                helper.finish()
            stream_s = time.monotonic() - t0
            self._drain(clients, spec)
            self._state = router_state(self.tb.daemons)[0]  # the state_* columns, clients still joined
            ctr1 = read_counters(self.tb.node(plan.source_as.xtr), plan.source_as.core_if)
            self.last_links = link_delta(links0, self.link_counters.read())
            cpu1 = {d.name: cpu_seconds(d.proc.pid) for d in [x0, *etrs]}
            rss = {d.name: rss_kib(d.proc.pid) for d in [x0, *etrs]}
        finally:
            self.tb.stop_daemons(clients)
            if self._link_caps is not None:
                self._link_caps.stop()
            if cap is not None:
                cap.stop()
                if cap in self.tb.captures:
                    self.tb.captures.remove(cap)
        return self._row(spec, tag, source, cap, ctr0, ctr1, cpu0, cpu1, rss, stream_s, x0, etrs)

    def mode(self, cls: type[Mode]) -> Mode:
        """The network's instance of a mode class, started (:meth:`Mode.start`) on first use."""
        if cls not in self.modes:
            mode = cls(self)
            mode.start()
            self.modes[cls] = mode
        return self.modes[cls]

    def _start_links(self, tag: str, mode: str) -> dict:
        """Counters of every inter-domain link read now (installed on first use); captures too with --keep-pcap."""
        if self.link_counters is None:
            self.link_counters = LinkCounters(self.tb, interdomain_links(self.plan))
            self.link_counters.install()
        if self.ctx.keep_pcap:
            self._link_caps = LinkCaptures(self.tb, self.link_counters.links, self.ctx.run.pcap, tag,
                                           snaplen=getattr(self.ctx, "snaplen", 0),
                                           label={"run": self.ctx.run.path, "mode": mode, "point": self.label})
            self._link_caps.start()
        return self.link_counters.read()

    def _player_frames(self, tag: str, source: SourceDaemon) -> dict[str, Any]:
        """Decodable frames the player client recorded, and those in what the source sent (ffprobe)."""
        from testbed.stream.content import count_frames
        players = [c for c in self._clients if c.config.get("player")]
        frames = read_status(players[0].config["status_file"]).get("frames") if players else None
        return {"player_frames": frames if frames is not None else -1,
                "source_frames": count_frames(source.config["sent_file"])}

    def _source(self, tag: str, spec: StreamSpec) -> SourceDaemon:
        plan = self.plan
        cfg = {
            "eid": plan.source_eid, "src_port": SOURCE_PORT, "stream_id": 1,
            "chunk_bytes": spec.chunk_bytes, "bitrate": spec.bitrate, "speed": spec.speed, "chunks": spec.chunks,
            "content": spec.content, "service": {"addr": plan.service_addr, "port": 4340},
            "clients": [[eid, CLIENT_PORT] for _a, _h, eid in plan.clients()],
            "record_file": os.path.join(self.ctx.run.path, "records", tag, "source.csv"),
            "control": {"addr": "127.0.0.1", "port": 0},
        }
        cfg.update(self.mode(spec.mode_cls).source_config())   # after the defaults: a mode may replace them
        if spec.extra.get("player"):
            cfg["sent_file"] = os.path.join(self.ctx.run.path, "records", tag, "sent.ts")
        cfg.update(spec.extra.get("source", {}))
        return SourceDaemon(self.tb.node(plan.source_host), f"{tag}-src", self.ctx.run.path, cfg)

    def _wait_source(self, source: SourceDaemon, spec: StreamSpec) -> None:
        seconds = spec.chunks * spec.chunk_bytes * 8 / (spec.bitrate * spec.speed)
        deadline = time.monotonic() + seconds * 3 + 30
        with self.ctx.sub_progress(spec.chunks, f"{spec.mode} stream", unit="chunks sent") as bar:
            while True:
                code = source.wait_exit(0.25)
                status = read_status(source.config["status_file"])
                bar.update(status.get("chunks", status.get("chunks_sent", 0)) or 0)
                if getattr(self.ctx, "live", None) is not None:  # corecast run --live (testbed.live)
                    self.ctx.live.tick(self, spec, status, final=code is not None)
                if code is not None:
                    if code != 0:
                        raise source.died_line("mid-stream")
                    bar.update(spec.chunks)
                    return
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"source did not finish {spec.chunks} chunks within {seconds * 3 + 30:.0f} s")

    def _check_alive(self) -> None:
        """Raise a one-line DaemonError naming the first daemon of the network that died (map-server, xTR, client)."""
        dead = first_dead([d for d in self.tb.daemons  # a source that exited 0 finished its stream
                           if not (isinstance(d, SourceDaemon) and d.proc is not None and d.proc.poll() == 0)])
        if dead is not None:
            raise dead.died_line("mid-stream")

    def _drain(self, clients: list[ClientDaemon], spec: StreamSpec, quiet: float = 0.5, limit: float = 10.0) -> None:
        """Wait until the clients stop receiving (all expected datagrams in, or quiet for ``quiet`` s)."""
        expected = spec.chunks * len(self.plan.clients())
        last, last_change = -1, time.monotonic()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self._check_alive()
            got = sum(int(read_status(c.config["status_file"]).get("received", 0)) for c in clients)
            now = time.monotonic()
            if got >= expected:
                return
            if got != last:
                last, last_change = got, now
            elif now - last_change > quiet:
                return
            time.sleep(0.1)

    def _row(self, spec: StreamSpec, tag: str, source: SourceDaemon, cap: Capture, ctr0, ctr1,
             cpu0: dict, cpu1: dict, rss: dict, stream_s: float, x0: Daemon, etrs: list[Daemon]) -> dict[str, Any]:
        from testbed.decode import count_capture
        from testbed.stream.records import read_client_records, read_source_record, verify
        plan, params = self.plan, self.plan.params
        totals = count_capture(cap.path, getattr(self.tb, "link_data", ()))  # LISP data + modes' own data
        rec_dir = os.path.join(self.ctx.run.path, "records", tag)
        src_rec = read_source_record(source.config["record_file"])
        receipts = read_client_records([os.path.join(rec_dir, f) for f in sorted(os.listdir(rec_dir))
                                        if f.endswith(".bin")])
        if spec.extra.get("audience") is not None:  # joins the source never heard of ((S,G) joins by clients)
            src_rec = spec.extra["audience"](src_rec, receipts, self._clients)
        report = verify(src_rec, receipts, [eid for _a, _h, eid in plan.clients()], port=CLIENT_PORT)
        self.last_report, self.last_source_record = report, src_rec
        counts = params.clients_per_as
        k, j = params.total_clients, params.active_ases
        chunks_sent = len(src_rec)
        model_links = model_link_bytes(plan, spec.mode_cls.model, spec.chunk_bytes, src_rec)
        model_bytes = model_links[core_shape(plan).source_uplink]
        packets = totals.packets
        if_bytes = (ctr1.tx_bytes - ctr0.tx_bytes) - 14 * (ctr1.tx_packets - ctr0.tx_packets)
        itr_status = read_status(x0.config["status_file"])
        row: dict[str, Any] = {
            "experiment": self.ctx.experiment, "mode": spec.mode, "ases": len(plan.client_ases),
            "capable_ases": sum(1 for c, n in zip(params.capable, counts) if c and n),
            "clients": k, "gamma": round(k / j, 4) if j else 0.0, "chunk_bytes": spec.chunk_bytes,
            "chunks": chunks_sent, "core_bytes": totals.data_bytes,
            "core_packets": totals.data_packets, "control_bytes": totals.control_bytes, "model_core_bytes": model_bytes,
            "delivered_chunks": report.delivered_chunks, "expected_chunks": report.expected_chunks,
            "corrupt_chunks": report.corrupt_chunks,
            "point": self.label, "active_ases": j, "distribution": params.distribution,
            "clients_per_as": " ".join(map(str, counts)),
            "unicast_packets": packets["lisp-unicast"], "data_packets": packets["corecast-data"],
            "ref_packets": packets["corecast-ref"], "control_packets": packets["lisp-control"],
            "iface_ip_bytes": if_bytes, "capture_dropped": cap.dropped,
            "all_exact": report.all_exact, "stream_s": round(stream_s, 3),
            "itr_cpu_s": round(cpu1[x0.name] - cpu0[x0.name], 3),
            "etr_cpu_s": round(sum(cpu1[d.name] - cpu0[d.name] for d in etrs), 3),
            "itr_rss_kib": rss[x0.name], "etr_rss_kib_max": max((rss[d.name] for d in etrs), default=0),
            "itr_drops": count_drops(itr_status),
            "etr_drops": sum(count_drops(read_status(d.config["status_file"])) for d in etrs),
        }
        row.update(self._state)  # testbed.routerstate: read at the stream's end, before the clients leave
        caps = self._link_caps.counts() if self._link_caps is not None else {}
        row.update(link_columns(write_link_rows(
            os.path.join(self.ctx.run.path, LINKS_CSV), self.link_counters.links, self.last_links, model_links,
            {"experiment": self.ctx.experiment, "point": self.label, "mode": spec.mode,
             "stream": f"{self.streams}:{tag}"}, caps)))
        uplink = self.last_links[core_shape(plan).source_uplink]
        row["links_capture_mismatches"] += int((uplink.bytes, uplink.packets)  # every mode: ipmc's data too
                                              != (totals.data_bytes, totals.data_packets))
        row["links_capture_dropped"] = self._link_caps.dropped if self._link_caps is not None else 0
        if spec.extra.get("player"):
            row.update(self._player_frames(tag, source))
        if not self.ctx.keep_pcap:
            os.unlink(cap.path)
        if not self.ctx.keep_records:
            shutil.rmtree(rec_dir, ignore_errors=True)
        return row
