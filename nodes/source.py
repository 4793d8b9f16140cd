"""The streaming source S: ``python -m nodes.source --config FILE``.

Cuts live MPEG-TS (ffmpeg test pattern or a file) into chunks, paces them at
the stream's rate with an absolute-deadline pacer, and sends each chunk to the
current destination list in mode ``unicast`` or ``corecast``. Clients join
and leave through a line protocol on a UDP or Unix socket
(:mod:`testbed.stream.destinations`). Writes the record of every chunk and
destination change at exit (also on SIGTERM). See docs/streaming.md.

Also a control client: ``python -m nodes.source --control TARGET 'join 10.1.0.10 6000' ...``
(TARGET is ``ADDR:PORT`` for UDP or a Unix socket path); prints the replies.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass

from testbed.nodeutil import ConfigError, StopFlag, mark_ready, node_main, setup_logging, write_status_file
from testbed.schemas import parse
from testbed.schemas.source import SourceSchema
from testbed.stream.control import ControlServer, control_request
from testbed.stream.content import ContentError, FfmpegProducer, Producer, make_producer
from testbed.stream.destinations import ControlProtocol, Destinations
from testbed.stream.p2psend import P2PSender
from testbed.stream.pacer import Pacer, chunk_rate
from testbed.stream.records import write_source_record
from testbed.stream.sender import Sender
from testbed.stream.srcmap import MapperSocket, SourceMapper
from testbed.wire.corecast import chunk_hash

SNDBUF = 8 << 20


@dataclass
class SourceConfig:
    """A checked source configuration (see docs/streaming.md for the keys)."""

    name: str
    mode: str
    eid: str
    src_port: int
    stream_id: int
    chunk_bytes: int
    bitrate: int
    speed: float
    chunks: int | None
    content: str
    service: tuple[str, int] | None
    clients: list[tuple[str, int]]
    control_udp: tuple[str, int] | None
    control_socket: str | None
    start_at: float | None
    record_file: str | None
    sent_file: str | None
    status_file: str | None
    stall_timeout: float
    p2p: dict | None = None
    map_resolver: str | None = None
    max_pps: float | None = None


def parse_config(cfg: dict) -> SourceConfig:
    """Check a source config dict against :class:`testbed.schemas.source.SourceSchema`; ConfigError (one line)."""
    c = parse(SourceSchema, cfg)
    chunks = c.chunks
    if c.duration_s is not None:
        chunks = max(1, round(c.duration_s * chunk_rate(c.bitrate, c.chunk_bytes)))
    service = (c.service.addr, c.service.port) if c.service is not None else None
    control = (c.control.addr, c.control.port) if c.control is not None else None
    return SourceConfig(c.name, c.mode, c.eid, c.src_port, c.stream_id, c.chunk_bytes, c.bitrate, c.speed, chunks,
                        c.content, service, list(c.clients), control, c.control_socket, c.start_at, c.record_file,
                        c.sent_file, c.status_file, c.stall_timeout_s,
                        c.p2p.model_dump() if c.p2p is not None else None, c.map_resolver, c.max_pps)


MULTICAST_TTL = 64
"""IP TTL of the lispmc stream's multicast datagrams (the default, 1, never leaves the source's LAN)."""


class SourceNode:
    """The source's socket loop around the sans-I/O pieces."""

    def __init__(self, conf: SourceConfig, log: logging.Logger, stop: StopFlag) -> None:
        self.conf = conf
        self.log = log
        self.stop = stop
        self.rate = chunk_rate(conf.bitrate, conf.chunk_bytes, conf.speed)
        self.destinations = Destinations()
        if conf.mode == "p2p":  # the tracker and the push (testbed/stream/p2psend.py, docs/p2p.md)
            self.sender = P2PSender(src_eid=conf.eid, stream_id=conf.stream_id, settings=conf.p2p)
        else:
            self.sender = Sender(conf.mode, src_eid=conf.eid, src_port=conf.src_port, stream_id=conf.stream_id,
                                 service=conf.service)
        self.mapper: MapperSocket | None = None
        if conf.mode == "corecast-src":  # the source reads the mapping system itself (testbed/stream/srcmap.py)
            self.mapper = MapperSocket(SourceMapper(conf.eid, conf.map_resolver, conf.stream_id), conf.eid)
            self.sender.resolve = self.mapper.group
        self.pacer: Pacer | None = None
        self.protocol = ControlProtocol(self.destinations, self.next_seq)
        self.control = ControlServer(self.protocol, log)
        self.sock: socket.socket | None = None
        self.producer: Producer | None = None
        self._first = b""
        self.chunks: list[tuple[int, float, int, bytes]] = []
        self.state = "starting"
        self.error = ""
        self.status_errors = 0  # status file writes that failed (its directory removed or unwritable)
        self.send_errors: dict[str, int] = {}
        self.started: float | None = None
        self._sent_fh = None

    def next_seq(self) -> int:
        """Sequence number of the next chunk to be sent."""
        return self.pacer.index if self.pacer else 0

    def open(self) -> dict:
        """Bind every socket; return ready-file info. Raise ConfigError if an address is unusable."""
        conf = self.conf
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            self.sock.bind((conf.eid, conf.src_port))
            if conf.mode in ("lispmc", "ipmc"):  # the ITR or the routers forward (S,G); TTL 1 would stay on the LAN
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
            info: dict = {"eid": conf.eid, "src_port": conf.src_port}
            if conf.mode == "p2p":
                info["tracker_port"] = self.sender.open()
            if self.mapper is not None:
                self.mapper.open()
            if conf.control_udp:
                info["control_port"] = self.control.open_udp(*conf.control_udp)
                info["control_addr"] = conf.control_udp[0]
            if conf.control_socket:
                self.control.open_unix(conf.control_socket)
                info["control_socket"] = conf.control_socket
        except OSError as exc:
            raise ConfigError(f"cannot bind: {exc.strerror or exc}") from None
        if conf.sent_file:
            self._sent_fh = open(conf.sent_file, "wb")
        info["chunk_rate"] = self.rate
        info["chunks"] = conf.chunks
        return info

    def status(self) -> dict:
        """Return the status-file contents."""
        c = self.sender.counters.as_dict()
        pacer = self.pacer
        c.update(name=self.conf.name, mode=self.conf.mode, state=self.state, error=self.error,
                 time=time.time(), started=self.started, chunk_rate=self.rate, target_chunks=self.conf.chunks,
                 destinations=len(self.destinations), content=self.producer.description if self.producer else "",
                 late_chunks=pacer.late if pacer else 0, max_late_s=round(pacer.max_late, 6) if pacer else 0.0,
                 send_errors=dict(self.send_errors), control=dict(self.protocol.counters))
        if isinstance(self.sender, P2PSender):
            c["tracker"] = self.sender.status()
        return c

    def write_status(self) -> None:
        """Write the status file if configured."""
        if self.conf.status_file and not write_status_file(self.conf.status_file, self.status()):
            self.status_errors += 1

    def _send_chunk(self, seq: int, chunk: bytes) -> None:
        """Send one chunk's datagrams (DATA, REFs, copies...), spread at ``max_pps`` if set.

        With ``max_pps`` the datagrams leave in slices of about 1 ms, each no earlier than
        ``i / max_pps`` s after the first: a chunk of 100,001 datagrams is not one burst that
        overflows the ITR's service socket. A stop signal sends the rest of the chunk unpaced
        (whole chunks only).
        """
        digest = chunk_hash(chunk)
        grams = self.sender.datagrams(seq, chunk, self.destinations.items(), digest)
        sendto = self.sock.sendto
        now = time.time()
        cap = self.conf.max_pps
        step = max(1, int(cap // 1000)) if cap else 0
        t0 = time.monotonic()
        for i, (payload, addr, port) in enumerate(grams):
            if step and i and i % step == 0 and not self.stop.is_set():
                ahead = t0 + i / cap - time.monotonic()
                while ahead > 0 and not self.stop.is_set():  # a stop signal ends the wait within 0.1 s
                    time.sleep(min(ahead, 0.1))
                    ahead = t0 + i / cap - time.monotonic()
            try:
                sendto(payload, (addr, port))
            except OSError as exc:
                key = os.strerror(exc.errno) if exc.errno else str(exc)
                self.send_errors[key] = self.send_errors.get(key, 0) + 1
        self.pacer.sent(now)
        self.chunks.append((seq, now, len(chunk), digest))
        if self._sent_fh:
            self._sent_fh.write(chunk)

    def prepare(self) -> int:
        """Start the content and wait for its first chunk (before the ready file); 0 or an exit code."""
        conf = self.conf
        self.producer = make_producer(conf.content, conf.bitrate, conf.chunk_bytes)
        try:
            self.producer.start()
            self._first = self.producer.read_chunk(conf.stall_timeout + 5.0)  # ffmpeg start-up
        except ContentError as exc:
            return self._content_failed("content-stalled", str(exc))
        if not self._first:
            return self._content_failed("content-ended", "content is empty" + self._exit_info())
        return 0

    def run(self) -> int:
        """Stream until the last chunk, a stop signal, or a content failure; return the exit code."""
        conf, log = self.conf, self.log
        first = self._first
        now = time.time()
        start = now
        if conf.start_at is not None:
            if conf.start_at < now - 0.1:
                log.warning("start_at is %.3f s in the past; starting now", now - conf.start_at)
            start = max(conf.start_at, now)
        self.pacer = Pacer(self.rate, start)
        for eid, port in conf.clients:
            self.destinations.join(eid, port, start, 0)
        if self.mapper is not None:  # resolve the first clients before the first chunk (bounded)
            left = self.mapper.warm(list(self.destinations.items()), min(10.0, max(3.0, start - now)))
            log.info("corecast-src: %d of %d clients resolved before the stream", len(conf.clients) - left,
                     len(conf.clients))
        self.state = "waiting" if start > now else "streaming"
        log.info("streaming %s, %s mode, %d clients, %.2f chunks/s, %s chunks, start in %.3f s",
                 self.producer.description, conf.mode, len(conf.clients), self.rate,
                 conf.chunks if conf.chunks is not None else "unlimited", start - now)
        next_status = now
        pending: bytes | None = first
        while True:
            now = time.time()
            if now >= next_status:
                self.write_status()
                next_status = now + 1.0
            if self.stop.is_set():
                self.state = "stopped"
                log.info("stop signal: stopping after %d chunks", self.pacer.index)
                break
            if conf.chunks is not None and self.pacer.index >= conf.chunks:
                self.state = "done"
                break
            delay = self.pacer.delay(now)
            if delay > 0:
                self.control.poll(min(delay, 0.1, max(next_status - now, 0.0)))
                continue
            self.control.poll(0)
            if self.started is None:
                self.started = now
                self.state = "streaming"
            if pending is None:
                try:
                    pending = self.producer.read_chunk(conf.stall_timeout)
                except ContentError as exc:
                    return self._content_failed("content-stalled", str(exc))
            if not pending:
                if conf.chunks is None and conf.content.startswith("file:"):
                    self.state = "done"
                    log.info("end of %s after %d chunks", conf.content, self.pacer.index)
                    break
                return self._content_failed(
                    "content-ended", f"content ended after {self.pacer.index} chunks" + self._exit_info())
            self._send_chunk(self.pacer.index, pending)
            pending = None
        linger = (conf.p2p or {}).get("linger_until")
        if self.state == "done" and linger:  # p2p: the sockets stay open (and unread) until the peers stop
            while time.time() < linger and not self.stop.is_set():
                self.control.poll(min(0.2, max(0.0, linger - time.time())))
        log.info("%s: %d chunks, %d datagrams, %d bytes, %d late (max %.3f s), send errors %s",
                 self.state, self.sender.counters.chunks, self.sender.counters.datagrams,
                 self.sender.counters.bytes, self.pacer.late, self.pacer.max_late, self.send_errors or "none")
        return 0

    def _exit_info(self) -> str:
        if isinstance(self.producer, FfmpegProducer):
            return f" ({self.producer.exit_info()})"
        return ""

    def _content_failed(self, state: str, message: str) -> int:
        self.state = state
        self.error = message
        self.log.error("%s: %s", state, message)
        return 1

    def close(self) -> None:
        """Stop the producer, write the record and final status, close sockets."""
        if self.producer is not None:
            self.producer.close()
        if self.mapper is not None:
            self.mapper.close()
        if self._sent_fh:
            self._sent_fh.close()
        conf = self.conf
        if conf.record_file:
            meta = {"name": conf.name, "mode": conf.mode, "stream_id": conf.stream_id, "eid": conf.eid,
                    "src_port": conf.src_port, "chunk_bytes": conf.chunk_bytes, "bitrate": conf.bitrate,
                    "speed": conf.speed, "content": conf.content, "state": self.state}
            write_source_record(conf.record_file, meta, self.chunks, self.destinations.events)
        self.write_status()
        if self.status_errors:
            self.log.warning("status file %s: %d writes failed", conf.status_file, self.status_errors)
        self.control.close()
        if isinstance(self.sender, P2PSender):
            self.sender.close()
        if self.sock:
            self.sock.close()


def run(cfg: dict) -> int:
    """Run the source from a config dict; return the exit code."""
    conf = parse_config(cfg)
    log = setup_logging(conf.name, cfg.get("log_level", "info"))
    stop = StopFlag()
    node = SourceNode(conf, log, stop)
    try:
        try:
            info = node.open()
        except ConfigError as exc:
            node.state, node.error = "failed", str(exc)
            raise
        code = node.prepare()
        if code:
            return code
        mark_ready(cfg, **info)
        return node.run()
    finally:
        node.close()


def main() -> None:
    """Entry point: run the source, or act as a control client with ``--control``."""
    if len(sys.argv) >= 2 and sys.argv[1] == "--control":
        if len(sys.argv) < 4:
            print("usage: python -m nodes.source --control ADDR:PORT|PATH COMMAND...", file=sys.stderr)
            sys.exit(2)
        try:
            replies = control_request(sys.argv[2], sys.argv[3:])
        except (OSError, ValueError) as exc:
            print(f"source control: {exc}", file=sys.stderr)
            sys.exit(1)
        print("\n".join(replies))
        sys.exit(0 if all(r.startswith("ok") for r in replies) else 1)
    node_main("source", run)


if __name__ == "__main__":
    main()
