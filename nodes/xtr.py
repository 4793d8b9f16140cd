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

Config keys: see :func:`load`. Counters go to ``status_file`` every
``status_interval_s`` seconds (default 1) and at exit; the process is ready (``ready_file``) once its first Map-Register has
been acknowledged by a Map-Notify.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import subprocess
import time
from typing import Any

from testbed.lisp.corecast_etr import CoreCastEtr, itr_max_chunk
from testbed.lisp.corecast_itr import CoreCastItr
from testbed.lisp.dataplane import RESOLVE, SEND_RAW, WRITE_TUN, Encapsulator, Etr, Itr
from testbed.lisp.mapcache import MapCache
from testbed.lisp.multicast_etr import SEND_MCAST
from testbed.lisp.xtrcontrol import XtrControl
from testbed.net.mmsg import BatchReceiver, BatchSender
from testbed.nodeutil import ConfigError, StopFlag, mark_ready, node_main, setup_logging, write_json_atomic
from testbed.schemas import parse
from testbed.schemas.xtr import TUN_MTU, XtrConfig
from testbed.wire.constants import CORECAST_PORT, LISP_CONTROL_PORT, LISP_DATA_PORT

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
BATCH = 64  # packets drained from one socket before looking at the others (plain loop, io_batch 0)
DRAIN = 4  # recvmmsg calls on one readable socket before looking at the others (batched loop)


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the xTR config against :class:`testbed.schemas.xtr.XtrConfig`; return it with defaults filled in.

    Raises ConfigError with a one-line reason naming the field.
    """
    return parse(XtrConfig, cfg).as_cfg()


def open_tun(name: str) -> int:
    """Create TUN device ``name`` (no packet info header); return its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def sh(*args: str) -> None:
    """Run an ``ip`` command; raise ConfigError with its message on failure."""
    res = subprocess.run(list(args), capture_output=True, text=True)
    if res.returncode:
        raise ConfigError(f"'{' '.join(args)}' failed: {res.stderr.strip()}")


SO_RCVBUFFORCE = 33
SERVICE_RCVBUF = 64 << 20
"""Bytes of receive buffer asked for the ITR's CoreCast service socket (the kernel grants twice that): a
chunk for k clients arrives as k + 1 datagrams at once (scale: k = 100,000); pages are used only when queued."""


def udp_socket(addr: str, port: int, rcvbuf: int = 8 << 20, device: str | None = None) -> socket.socket:
    """A non-blocking UDP socket bound to (addr, port) with a large receive buffer.

    ``device``: receive only what arrives on that interface (SO_BINDTODEVICE). Of two
    sockets on one address and port, the kernel gives a datagram to the one bound to
    its arrival device, else to the unbound one (locally sent ones count as the
    address's own device).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if device is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    try:  # root: beyond net.core.rmem_max, which a node's network namespace cannot raise
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    s.bind((addr, port))
    s.setblocking(False)
    return s


class XtrNode:
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
        self.io = {"tun-read": 0, "tun-write": 0, "tun-write-error": 0, "raw-sent": 0, "raw-send-error": 0,
                   "lisp-in": 0, "control-in": 0, "control-out": 0, "service-in": 0}
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
    def flush(self) -> None:
        """Send the queued raw datagrams (batched loop); their counters follow the sender's."""
        tx = self.tx
        if tx is not None:
            if tx.pending:
                tx.flush()
            self.io["raw-sent"], self.io["raw-send-error"] = tx.counters["datagrams"], tx.counters["send-error"]

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

    def serve(self, sock: socket.socket, cc_in: Any, buf: bytearray, view: memoryview, now: float,
              on_lan: bool) -> None:
        """Drain a CoreCast service socket: the LAN's (``on_lan``) or the one for everything else."""
        recv = sock.recvfrom_into
        for _ in range(BATCH):
            try:
                n, addr = recv(buf)
            except BlockingIOError:
                break
            self.io["service-in"] += 1
            self.do(cc_in(view[:n], socket.inet_aton(addr[0]), now, on_lan), now)

    def drain(self, fd: int, now: float) -> bool:
        """Batched loop: read the data or a service socket ``fd`` with recvmmsg; False if ``fd`` is neither."""
        rx = self.rx.get(fd)
        if rx is None:
            return False
        batch, io, do = self.batch, self.io, self.do
        if fd == self.data.fileno():
            names, etr_in = self._rloc_str, self.etr.on_lisp_packet
            for _ in range(DRAIN):
                got = rx.recv()
                io["lisp-in"] += len(got)
                for payload, src4, _port in got:
                    src = names.get(src4)
                    if src is None:
                        if len(names) >= 4096:
                            names.clear()
                        src = names[src4] = socket.inet_ntoa(src4)
                    do(etr_in(payload, src, now), now)
                if len(got) < batch:
                    break
            return True
        if self.cc_itr is None:
            return True
        cc_in = self.cc_itr.on_service_message
        on_lan = self.service is not None and fd == self.service.fileno()
        for _ in range(DRAIN):
            got = rx.recv()
            io["service-in"] += len(got)
            for payload, src4, _port in got:
                do(cc_in(payload, src4, now, on_lan), now)
            if len(got) < batch:
                break
        return True

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
                if status_file and now >= next_write:
                    next_write = now + status_every
                    write_json_atomic(status_file, self.status())
        if status_file:
            write_json_atomic(status_file, self.status())
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
