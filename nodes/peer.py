"""A host of P2P live-streaming peers: ``python -m nodes.peer --config FILE`` (docs/p2p.md).

One process hosts many peers of one AS, each a :class:`testbed.p2p.peer.PeerCore` with its
own UDP socket bound to its own EID (the host has the AS's peer block routed as local,
``ip route add local BLOCK dev lo``, like the many-clients host). The loop waits on every
socket with a deadline (the earliest ``next_wakeup`` of any peer, at most 0.1 s), feeds
each datagram to its peer's core and sends what the core returns; per-peer upload limits
are the cores' token buckets. Peers join at their ``join_at`` (default: at once) and leave
at ``leave_at`` (default: never); after ``stop_at`` nothing is sent any more. At exit (SIGTERM) ``result_file`` gets every peer's
metrics and the digest of every chunk it played: ``{"peers": {"EID:port": {...stats,
"played_digests": [[seq, "hash hex"], ...]}}}``; the status file has the swarm summary each second.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time

from testbed.nodeutil import (ConfigError, StopFlag, mark_ready, node_main, setup_logging, write_json_atomic,
                              write_status_file)
from testbed.p2p.metrics import swarm_summary
from testbed.p2p.params import P2PParams
from testbed.p2p.peer import PeerCore
from testbed.schemas import parse
from testbed.schemas.peer import PeerSchema

DRAIN = 64
"""Datagrams read from one socket per wake-up at most (fairness between peers)."""
MAX_WAIT = 0.1
"""Longest wait on the sockets (s): stop signals and join times are seen within it."""


class Hosted:
    """One hosted peer: its core, socket, and join/leave times."""

    __slots__ = ("core", "sock", "join_at", "leave_at", "joined", "send_errors")

    def __init__(self, core: PeerCore, sock: socket.socket, join_at: float | None, leave_at: float | None) -> None:
        self.core, self.sock, self.join_at, self.leave_at = core, sock, join_at, leave_at
        self.joined = False
        self.send_errors = 0


class PeerHost:
    """The socket loop around many peer cores."""

    def __init__(self, cfg: PeerSchema, log: logging.Logger, stop: StopFlag) -> None:
        self.cfg, self.log, self.stop = cfg, log, stop
        self.params = P2PParams(**cfg.params.model_dump())
        self.peers: list[Hosted] = []
        self.sel = selectors.DefaultSelector()
        self.state = "starting"
        self.status_errors = 0  # status file writes that failed (its directory removed or unwritable)

    def open(self) -> dict:
        """Bind one socket per peer; ConfigError (one line) if an EID cannot be bound."""
        c = self.cfg
        tracker = (c.tracker.addr, c.tracker.port)
        for i, entry in enumerate(c.peers):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, c.rcvbuf)
                sock.bind((entry.eid, entry.port))
            except OSError as exc:
                sock.close()
                raise ConfigError(f"cannot bind {entry.eid}:{entry.port}: {exc.strerror or exc}") from None
            sock.setblocking(False)
            core = PeerCore((entry.eid, entry.port), asn=c.asn, tracker=tracker, tracker_asn=c.tracker.asn,
                            chunk_rate=c.chunk_rate, chunk_bytes=c.chunk_bytes, params=self.params,
                            stream_id=c.stream_id, seed=c.seed * 1_000_003 + i)
            hosted = Hosted(core, sock, entry.join_at, entry.leave_at)
            self.peers.append(hosted)
            self.sel.register(sock, selectors.EVENT_READ, hosted)
        return {"peers": len(self.peers), "asn": c.asn}

    def _send(self, h: Hosted, out: list) -> None:
        sendto = h.sock.sendto
        for payload, dst in out:
            try:
                sendto(payload, dst)
            except OSError:
                h.send_errors += 1

    def status(self) -> dict:
        """The status file: state and the swarm summary of the hosted peers."""
        return {"name": self.cfg.name, "state": self.state, "time": time.time(),
                "joined": sum(1 for h in self.peers if h.joined),
                "summary": swarm_summary([h.core.stats() for h in self.peers])}

    def run(self) -> int:
        """Serve until SIGTERM; return the exit code."""
        self.state = "running"
        next_status = 0.0
        peers = self.peers
        stop_at = self.cfg.stop_at if self.cfg.stop_at is not None else float("inf")
        while not self.stop.is_set():
            now = time.time()
            wake = now + MAX_WAIT
            if now >= stop_at:
                self._quiet()
                continue
            for h in peers:
                core = h.core
                if not h.joined:
                    if h.join_at is None or h.join_at <= now:
                        h.joined = True
                        self._send(h, core.start(now))
                    else:
                        wake = min(wake, h.join_at)
                        continue
                if h.leave_at is not None and h.leave_at <= now and core.state != "left":
                    self._send(h, core.leave(now))
                    continue
                t = core.next_wakeup()
                if t <= now:
                    self._send(h, core.tick(now))
                    t = core.next_wakeup()
                if t < wake:
                    wake = t
            if now >= next_status:  # every second, status file or not (else the wait below would be 0)
                if self.cfg.status_file and not write_status_file(self.cfg.status_file, self.status()):
                    self.status_errors += 1
                next_status = now + 1.0
            for key, _ in self.sel.select(max(0.0, min(wake, next_status) - time.time())):
                h = key.data
                recv = h.sock.recvfrom
                for _ in range(DRAIN):
                    try:
                        data, src = recv(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue  # e.g. ICMP errors reported on the socket
                    self._send(h, h.core.receive(time.time(), data, src))
        return 0

    def _quiet(self) -> None:
        """After ``stop_at``: read and discard until SIGTERM (nothing sent, counters frozen)."""
        if self.state != "quiet":
            self.state = "quiet"
            if self.cfg.status_file and not write_status_file(self.cfg.status_file, self.status()):
                self.status_errors += 1
        for key, _ in self.sel.select(MAX_WAIT):
            for _ in range(DRAIN):
                try:
                    key.data.sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue

    def close(self) -> None:
        """Write the result file and the final status; close the sockets."""
        self.state = "stopped"
        c = self.cfg
        if c.result_file:
            out = {}
            for h in self.peers:
                s = h.core.stats()
                s["send_errors"] = h.send_errors
                s["played_digests"] = [[seq, d.hex()] for seq, d in h.core.played]
                s["asn"] = c.asn
                out[f"{h.core.me[0]}:{h.core.me[1]}"] = s
            write_json_atomic(c.result_file, {"name": c.name, "asn": c.asn, "peers": out})
        if c.status_file and not write_status_file(c.status_file, self.status()):
            self.status_errors += 1
        if self.status_errors:
            self.log.warning("status file %s: %d writes failed", c.status_file, self.status_errors)
        for h in self.peers:
            try:
                self.sel.unregister(h.sock)
            except (KeyError, ValueError):
                pass
            h.sock.close()
        self.log.info("stopped: %d peers", len(self.peers))


def run(cfg: dict) -> int:
    """Run the peer host from a config dict; return the exit code."""
    conf = parse(PeerSchema, cfg)
    log = setup_logging(conf.name, conf.log_level)
    stop = StopFlag()
    host = PeerHost(conf, log, stop)
    try:
        info = host.open()
        mark_ready(cfg, **info)
        return host.run()
    finally:
        host.close()


def main() -> None:
    """Entry point of ``python -m nodes.peer`` (and of a child forked by testbed.net.launcher)."""
    node_main("peer", run)


if __name__ == "__main__":
    main()
