"""The LISP xTR (ITR + ETR) with the CoreCast extension: ``python -m nodes.xtr --config FILE``.

A thin I/O loop around the sans-I/O cores of :mod:`testbed.lisp`:

* EID side: a TUN device; routes for the EID block point into it (the AS's own
  /16 stays on the LAN, being more specific). Packets read from it go to the
  ITR; packets the ETR decapsulates (or rebuilds from CoreCast REFs) are written
  to it and delivered by the kernel.
* RLOC side: a UDP socket on 4341 (LISP data in), a raw IP socket (LISP data
  out, so the outer UDP source port can follow the inner flow), a UDP socket on
  4342 (control), and in the source AS the CoreCast service socket.

CoreCast defence (docs/security.md): ``corecast_defence`` (bool, default true)
turns on the ETR's vouching of CoreCast ITRs through the map-cache, its chunk
cap ``corecast_max_chunk`` (bytes, default the ITR's limit, outer MTU - 64) and
quarantine ``corecast_quarantine`` (chunks, default 64), and the service's
check that messages arrive on ``lan_if``: the service socket is bound to that
device (SO_BINDTODEVICE) and a second socket on the same address and port,
bound to no device, receives what arrives anywhere else (the TUN, the core) so
the core counts it ('cc-not-lan'); false only for the attack experiment.

System calls (``io_batch``, default 64): the data and service sockets are read
with ``recvmmsg`` and the raw socket written with ``sendmmsg``, up to
``io_batch`` datagrams a call (testbed/net/mmsg.py); raw sends are queued in
order and flushed when a batch is full and before the loop waits again.
``io_batch`` 0 keeps the plain loop (one system call per datagram), the
previous implementation, for comparison (bench/bench_corecast.py ``--io``).

LAN fast path (``lan_send``, default false, with ``io_batch`` > 0 and ``lan_if``):
what the ETR delivers is forwarded by the xTR itself (TTL minus one, checksum
updated) and sent in batches on a packet socket on ``lan_if``, instead of one
TUN write each that the kernel forwards; the bytes on the LAN are the same.
Packets the kernel might treat differently (local or broadcast destinations,
such as the CoreCast service address; unknown neighbours; spoofed sources;
options, fragments, TTL 1) stay on the TUN path (testbed/net/lanpath.py).
Without a packet socket (no CAP_NET_RAW) everything takes the TUN path. Off by
default: on this VM it was no faster and cost the ETR more CPU per packet
(docs/benchmarks.md).

Config keys: see :func:`load`. Counters go to ``status_file`` every
``status_interval_s`` seconds (default 1) and at exit; the process is ready (``ready_file``) once its first Map-Register has
been acknowledged by a Map-Notify.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from typing import Any

from nodes.xtr_io import (BATCH, SERVICE_RCVBUF, BatchLoop, LanSender, open_tun, sh,  # noqa: F401 (re-exported)
                          udp_socket)
from testbed.lisp.corecast_etr import CoreCastEtr, itr_max_chunk
from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import RESOLVE, SEND_RAW, WRITE_TUN, Encapsulator, Etr, Itr
from testbed.lisp.mapcache import MapCache
from testbed.lisp.multicast_etr import SEND_MCAST
from testbed.lisp.xtrcontrol import XtrControl
from testbed.net.mmsg import BatchReceiver, BatchSender
from testbed.nodeutil import StatusWriter, StopFlag, mark_ready, node_main, setup_logging
from testbed.schemas import parse
from testbed.schemas.xtr import TUN_MTU, XtrConfig
from testbed.wire.constants import CORECAST_PORT, LISP_CONTROL_PORT, LISP_DATA_PORT



def load(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the xTR config against :class:`testbed.schemas.xtr.XtrConfig`; return it with defaults filled in.

    Raises ConfigError with a one-line reason naming the field.
    """
    return parse(XtrConfig, cfg).as_cfg()


class XtrNode(BatchLoop):
    """The running xTR: sockets, TUN and the cores, driven by :meth:`run`."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.log = setup_logging(cfg.get("name", "xtr"), cfg.get("log_level", "info"))
        rloc = cfg["rloc"]
        self.map_cache = MapCache()
        self.ctl = XtrControl(
            rloc=rloc, eid_prefixes=cfg["eid_prefixes"], map_server=cfg["map_server"],
            map_resolver=cfg["map_resolver"], key=cfg["key"].encode(), map_cache=self.map_cache,
            alg_id=int(cfg.get("alg_id", 2)), corecast=bool(cfg.get("corecast", False)),
            register_interval=float(cfg.get("register_interval_s", 60.0)),
            request_timeout=float(cfg.get("request_timeout_s", 1.0)),
            request_tries=int(cfg.get("request_tries", 3)))
        encap = Encapsulator(rloc, int(cfg.get("outer_mtu", 1500)))
        self.itr = Itr(rloc, self.map_cache, queue_limit=int(cfg.get("queue_limit", 64)), encap=encap)
        self.defence = bool(cfg.get("corecast_defence", True))
        cc_etr = (CoreCastEtr(cfg["eid_prefixes"], self.map_cache, defence=self.defence,
                              max_chunk=cfg.get("corecast_max_chunk") or itr_max_chunk(encap.outer_mtu),
                              quarantine=int(cfg.get("corecast_quarantine", 64)))
                  if cfg.get("corecast") else None)
        self.cc_etr = cc_etr
        self.etr = Etr(cfg["eid_prefixes"], corecast=cc_etr)
        svc = cfg.get("corecast_service")
        self.cc_itr = (CoreCastItr(rloc, self.map_cache, svc.get("allowed_sources", []),
                                   int(cfg.get("queue_limit", 64)), encap=encap, defence=self.defence,
                                   batch_delay=svc.get("batch_delay_s"))
                       if svc else None)
        self.service: socket.socket | None = None
        self.service_other: socket.socket | None = None
        self.lispmc = None  # signal-free multicast, RFC 8378 (nodes/lispmc_io.py)
        if cfg.get("lispmc", True) and cfg.get("lan_if"):
            from nodes.lispmc_io import LispMcIo
            self.lispmc = LispMcIo(cfg, encap, self.log)
            self.etr.multicast = self.lispmc.etr
        self.batch = int(cfg.get("io_batch", 64))
        self.tx: BatchSender | None = None
        self.rx: dict[int, BatchReceiver] = {}
        self._rloc_str: dict[bytes, str] = {}
        self.lan: LanSender | None = None
        self.io = {"tun-read": 0, "tun-write": 0, "tun-write-error": 0, "raw-sent": 0, "raw-send-error": 0,
                   "lan-sent": 0, "lan-send-error": 0, "lisp-in": 0, "control-in": 0, "control-out": 0,
                   "service-in": 0}
        self.started = time.time()

    # -------------------------------------------------------------- set-up
    def setup(self) -> None:
        """Create the TUN device and routes, and bind every socket."""
        cfg = self.cfg
        tun = cfg["tun"]
        self.tun = open_tun(tun)
        # IPv4 only: no IPv6 router solicitations or MLD reports from the kernel into the TUN
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{tun}.disable_ipv6=1"], capture_output=True)
        sh("ip", "link", "set", "dev", tun, "up", "mtu", str(cfg.get("tun_mtu", TUN_MTU)), "txqueuelen", "10000")
        sh("ip", "route", "replace", cfg["eid_block"], "dev", tun)
        for extra in cfg.get("tun_routes", []):
            sh("ip", "route", "replace", extra, "dev", tun)
        rloc = cfg["rloc"]
        self.data = udp_socket(rloc, LISP_DATA_PORT)
        self.control = udp_socket(rloc, int(cfg.get("control_port", LISP_CONTROL_PORT)))
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        if self.lispmc is not None:
            try:
                self.lispmc.setup()
            except OSError as exc:  # the unicast and CoreCast xTR must not depend on it
                self.log.warning("lispmc (RFC 8378) disabled: %s", exc)
                self.lispmc, self.etr.multicast = None, None
        svc = cfg.get("corecast_service")
        if svc:
            self.service_addr, port = svc["addr"], int(svc.get("port", CORECAST_PORT))
            sh("ip", "addr", "replace", f"{svc['addr']}/32", "dev", cfg["lan_if"])
            if self.defence:  # the LAN's socket, and one for whatever arrives elsewhere (counted drops)
                self.service = udp_socket(svc["addr"], port, SERVICE_RCVBUF, device=cfg["lan_if"])
                self.service_other = udp_socket(svc["addr"], port, 1 << 20)
            else:
                self.service = udp_socket(svc["addr"], port, SERVICE_RCVBUF)
        if self.batch:
            self.tx = BatchSender(self.raw, self.batch)
            for sock in (self.data, self.service, self.service_other):
                if sock is not None:
                    self.rx[sock.fileno()] = BatchReceiver(sock, self.batch)
            if cfg.get("lan_send", False) and cfg.get("lan_if"):
                try:
                    self.lan = LanSender(cfg["lan_if"], tun, self.batch)
                except OSError as exc:  # the TUN path still delivers everything
                    self.log.warning("LAN fast path disabled, delivering through %s: %s", tun, exc)

    def teardown(self) -> None:
        """Remove what :meth:`setup` added outside the process (the TUN goes with its fd)."""
        svc = self.cfg.get("corecast_service")
        if svc:
            subprocess.run(["ip", "addr", "del", f"{svc['addr']}/32", "dev", self.cfg["lan_if"]],
                           capture_output=True)

    # -------------------------------------------------------------- actions
    def do(self, actions: list[tuple], now: float) -> None:
        """Carry out data-plane actions."""
        for act in actions:
            kind = act[0]
            if kind == SEND_RAW:
                if self.tx is not None:
                    self.tx.add(act[2], act[1])
                    continue
                try:
                    self.raw.sendto(act[2], (act[1], 0))
                    self.io["raw-sent"] += 1
                except OSError:
                    self.io["raw-send-error"] += 1
            elif kind == WRITE_TUN:
                if self.lan is not None and self.lan.send(act[1]):
                    continue
                try:
                    os.write(self.tun, act[1])
                    self.io["tun-write"] += 1
                except OSError:
                    self.io["tun-write-error"] += 1
            elif kind == RESOLVE:
                self.send_control(self.ctl.request(act[1], now))
            elif kind == SEND_MCAST:
                self.lispmc.send_lan(act[1])

    def send_control(self, sends: list[tuple[bytes, str, int]]) -> None:
        """Send control messages from the control socket."""
        for payload, dst, port in sends:
            try:
                self.control.sendto(payload, (dst, port))
                self.io["control-out"] += 1
            except OSError as exc:
                self.log.warning("control send to %s:%s failed: %s", dst, port, exc)

    def resolved(self, items: list, now: float) -> None:
        """Flush (or drop) the packets waiting for resolved EIDs, in both ITRs."""
        for eid, entry in items:
            self.do(self.itr.on_resolved(eid, entry, now), now)
            if self.cc_itr is not None:
                self.do(self.cc_itr.on_resolved(eid, entry, now), now)
            if self.cc_etr is not None:
                self.do(self.cc_etr.on_resolved(eid, entry, now), now)

    # -------------------------------------------------------------- loop
    def status(self) -> dict[str, Any]:
        """All counters, for the status file."""
        self.flush()
        if self.rx:
            self.io["truncated"] = sum(r.counters["truncated"] for r in self.rx.values())
        out = {"name": self.cfg.get("name"), "time": time.time(), "uptime_s": time.time() - self.started,
               "registered": self.ctl.registered, "map_cache_entries": len(self.map_cache),
               "io": self.io, "control": self.ctl.counters, "itr": self.itr.counters, "etr": self.etr.counters,
               "corecast_defence": self.defence}
        if self.cc_itr is not None:
            out["corecast_itr"] = self.cc_itr.counters
        if self.cc_etr is not None:
            out["corecast_etr"] = self.cc_etr.counters
        if self.lispmc is not None:
            out["lispmc"] = self.lispmc.status()
        # CoreCast chunks held: one current chunk per stream at the ITR, per (ITR, stream) and quarantined at the ETR
        out["corecast_chunks"] = ((len(self.cc_itr) if self.cc_itr is not None else 0)
                                  + (len(self.cc_etr) + self.cc_etr.quarantined if self.cc_etr is not None else 0))
        return out

    def run(self, stop: StopFlag) -> None:
        """Serve until a stop signal."""
        tun, data, control, service = self.tun, self.data.fileno(), self.control.fileno(), self.service
        poller = select.epoll()
        poller.register(tun, select.EPOLLIN)
        poller.register(data, select.EPOLLIN)
        poller.register(control, select.EPOLLIN)
        if service is not None:
            poller.register(service.fileno(), select.EPOLLIN)
        other = self.service_other.fileno() if self.service_other is not None else -1
        if other >= 0:
            poller.register(other, select.EPOLLIN)
        mc_fds = self.lispmc.fds if self.lispmc is not None else {}
        for fd in mc_fds:
            poller.register(fd, select.EPOLLIN)
        now = time.monotonic()
        self.send_control(self.ctl.start(now))
        ready = False
        next_status = next_write = now
        status_every = float(self.cfg.get("status_interval_s", 1.0))
        buf = bytearray(65536)
        view = memoryview(buf)
        itr_in, etr_in = self.itr.on_tun_packet, self.etr.on_lisp_packet
        cc_in = self.cc_itr.on_service_message if self.cc_itr is not None else None
        status_file = self.cfg.get("status_file")
        writer = StatusWriter(status_file) if status_file else None  # a slow state directory never stalls the loop
        if self.cfg.get("nice"):
            os.setpriority(os.PRIO_PROCESS, 0, int(self.cfg["nice"]))
        batching = self.cc_itr is not None and self.cc_itr.batch_delay is not None
        while not stop.is_set():
            now = time.monotonic()
            deadline = min(self.ctl.next_deadline(), next_status)
            if batching:
                deadline = min(deadline, self.cc_itr.next_deadline())
            if mc_fds:
                deadline = min(deadline, self.lispmc.next_deadline())
            timeout = max(0.0, min(deadline - now, 0.5))
            self.flush()
            try:
                events = poller.poll(timeout)
            except InterruptedError:
                continue
            now = time.monotonic()
            for fd, _ev in events:
                if fd == tun:
                    for _ in range(BATCH):
                        try:
                            pkt = os.read(tun, 65536)
                        except BlockingIOError:
                            break
                        self.io["tun-read"] += 1
                        self.do(itr_in(pkt, now), now)
                elif self.rx and self.drain(fd, now):
                    pass
                elif fd == data:
                    recv = self.data.recvfrom_into
                    for _ in range(BATCH):
                        try:
                            n, addr = recv(buf)
                        except BlockingIOError:
                            break
                        self.io["lisp-in"] += 1
                        self.do(etr_in(view[:n], addr[0], now), now)
                elif fd == control:
                    for _ in range(BATCH):
                        try:
                            msg, addr = self.control.recvfrom(65536)
                        except BlockingIOError:
                            break
                        self.io["control-in"] += 1
                        if mc_fds and self.lispmc.on_control(msg, now, self):
                            continue
                        sends, done = self.ctl.on_control(msg, addr[0], addr[1], now)
                        self.send_control(sends)
                        self.resolved(done, now)
                elif fd in mc_fds:
                    self.lispmc.on_readable(fd, now, self)
                elif fd == other and cc_in is not None:
                    self.serve(self.service_other, cc_in, buf, view, now, False)
                elif service is not None and cc_in is not None:
                    self.serve(service, cc_in, buf, view, now, True)
            if batching and now >= self.cc_itr.next_deadline():
                self.do(self.cc_itr.poll(now), now)
            if mc_fds and now >= self.lispmc.next_deadline():
                self.lispmc.on_timer(now, self)
            if now >= self.ctl.next_deadline():
                sends, done = self.ctl.on_timer(now)
                self.send_control(sends)
                self.resolved(done, now)
            if not ready and self.ctl.registered:
                ready = True
                self.log.info("registered %s with RLOC %s at map-server %s", self.cfg["eid_prefixes"],
                              self.cfg["rloc"], self.cfg["map_server"])
                mark_ready(self.cfg, rloc=self.cfg["rloc"])
            if now >= next_status:
                next_status = now + 1.0
                self.itr.expire(now)
                if self.cc_itr is not None:
                    self.cc_itr.expire(now)
                if self.cc_etr is not None:
                    self.cc_etr.expire(now)
                self.map_cache.remove_expired(now)
                if self.lan is not None:
                    self.lan.refresh()
                if writer is not None and now >= next_write:
                    next_write = now + status_every
                    writer.submit(self.status())
        if writer is not None:
            writer.close(self.status())
            if writer.errors:
                self.log.warning("status file %s: %d writes failed", status_file, writer.errors)
        self.flush()


def run(cfg: dict[str, Any]) -> int:
    """Set up, serve until SIGTERM, tear down."""
    cfg = load(cfg)
    stop = StopFlag()
    node = XtrNode(cfg)
    try:
        node.setup()
        node.run(stop)
    finally:
        node.teardown()
    node.log.info("stopped: %s", {k: v for k, v in node.io.items() if v})
    return 0


if __name__ == "__main__":
    node_main("xtr", run)
