"""Sockets of signal-free LISP multicast (RFC 8378) for the xTR (``nodes/xtr.py``), around the sans-I/O cores.

* ITR side: a packet socket (AF_PACKET, SOCK_DGRAM) on the LAN interface with a
  classic BPF filter that passes IPv4 packets to the SSM range 232/8 only, so the
  ITR sees the source's multicast whatever its memberships, at no cost to other
  traffic. Copies go out through the xTR's raw socket like any LISP packet.
* ETR side: a raw IGMP socket bound to the LAN interface, member of 224.0.0.22
  (where IGMPv3 reports go), read by :class:`MulticastEtr`; and a raw socket
  (IP_HDRINCL) bound to the LAN with IP_MULTICAST_IF set and loopback off, that
  puts each decapsulated (S,G) packet on the LAN once, unchanged.

The LAN bridges run IGMP snooping with no querier, so they flood multicast to every
port: receivers see the ETR's copy, the ETR sees the reports, the ITR sees the source.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
from typing import Any

from testbed.lisp.multicast_etr import MulticastEtr
from testbed.lisp.multicast_itr import MulticastItr

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SIOCGIFADDR = 0x8915
IGMPV3_ROUTERS = "224.0.0.22"
BATCH = 64


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_first_octet_filter(sock: socket.socket, octet: int) -> None:
    """Attach a classic BPF program passing only IPv4 packets whose destination's first byte is ``octet``.

    ``ldb [16]; jeq #octet, accept, drop`` on the network header (what a SOCK_DGRAM packet socket sees)."""
    prog = (_SockFilter * 3)(_SockFilter(0x30, 0, 0, 16), _SockFilter(0x15, 0, 1, octet),
                             _SockFilter(0x06, 0, 0, 0xFFFF))
    prog = (_SockFilter * 4)(*prog, _SockFilter(0x06, 0, 0, 0))
    fprog = _SockFprog(4, ctypes.cast(prog, ctypes.POINTER(_SockFilter)))
    # the kernel copies the program during setsockopt: ``prog`` only has to live until it returns
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(ctypes.string_at(ctypes.addressof(fprog),
                                                                                ctypes.sizeof(fprog))))


def if_addr(sock: socket.socket, ifname: str) -> str:
    """The IPv4 address of interface ``ifname`` (SIOCGIFADDR); OSError if it has none."""
    res = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
    return socket.inet_ntoa(res[20:24])


class LispMcIo:
    """The ITR's LAN tap, the ETR's IGMP listener and LAN sender, wired to the cores."""

    def __init__(self, cfg: dict[str, Any], encap: Any, log: Any) -> None:
        self.cfg, self.log = cfg, log
        self.lan_if = cfg["lan_if"]
        self.itr = MulticastItr(rloc=cfg["rloc"], map_resolver=cfg["map_resolver"], encap=encap,
                                refresh_s=float(cfg.get("lispmc_refresh_s", 0.5)),
                                request_timeout=float(cfg.get("request_timeout_s", 1.0)))
        self.etr = MulticastEtr(rloc=cfg["rloc"], eid_prefixes=cfg["eid_prefixes"], map_server=cfg["map_server"],
                                key=cfg["key"].encode(), alg_id=int(cfg.get("alg_id", 2)),
                                corecast=bool(cfg.get("corecast", False)),
                                refresh_s=float(cfg.get("lispmc_register_s", 10.0)))
        self.io = {"lan-tap-in": 0, "igmp-in": 0, "lan-sent": 0, "lan-send-error": 0}

    def setup(self) -> None:
        """Open the three sockets (root, in the xTR's namespace)."""
        self.tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        attach_first_octet_filter(self.tap, 232)
        self.tap.bind((self.lan_if, ETH_P_IP))
        self.tap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.tap.setblocking(False)
        self.igmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
        self.igmp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.lan_if.encode())
        lan_addr = if_addr(self.igmp, self.lan_if)
        self.igmp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton(IGMPV3_ROUTERS) + socket.inet_aton(lan_addr))
        self.igmp.setblocking(False)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.lan_if.encode())
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(lan_addr))
        self.out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        self.out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.fds = {self.tap.fileno(): self._on_tap, self.igmp.fileno(): self._on_igmp}

    def next_deadline(self) -> float:
        """The cores' next timer."""
        return min(self.itr.next_deadline(), self.etr.next_deadline())

    def on_timer(self, now: float, node: Any) -> None:
        """Map-Requests due at the ITR, refresh registers due at the ETR."""
        node.send_control(self.itr.on_timer(now) + self.etr.on_timer(now))

    def on_control(self, msg: bytes, now: float, node: Any) -> bool:
        """Offer a control datagram to the ITR (its (S,G) Map-Replies); True if it took it."""
        if len(msg) < 12 or msg[0] >> 4 != 2:
            return False
        from testbed.wire.errors import DecodeError
        from testbed.wire.lispctrl import decode_control
        try:
            reply = decode_control(msg)
        except DecodeError:
            return False
        actions = self.itr.on_reply(reply, now)
        if actions is None:
            return False
        node.do(actions, now)
        return True

    def on_readable(self, fd: int, now: float, node: Any) -> None:
        """Drain the socket ``fd``."""
        self.fds[fd](now, node)

    def _on_tap(self, now: float, node: Any) -> None:
        for _ in range(BATCH):
            try:
                pkt, addr = self.tap.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            self.io["lan-tap-in"] += 1
            node.do(self.itr.on_lan_packet(pkt, now), now)

    def _on_igmp(self, now: float, node: Any) -> None:
        for _ in range(BATCH):
            try:
                pkt = self.igmp.recv(65536)
            except BlockingIOError:
                break
            self.io["igmp-in"] += 1
            node.send_control(self.etr.on_igmp(pkt, now))

    def send_lan(self, pkt: bytes | memoryview) -> None:
        """Put one (S,G) packet on the LAN (IP_HDRINCL: the source's header unchanged)."""
        try:
            self.out.sendto(pkt, (socket.inet_ntoa(bytes(pkt[16:20])), 0))
            self.io["lan-sent"] += 1
        except OSError:
            self.io["lan-send-error"] += 1

    def status(self) -> dict[str, Any]:
        """Counters and state: the ITR's replication lists and the ETR's receivers per (S,G)."""
        return {"io": self.io, "itr": self.itr.counters, "etr": self.etr.counters,
                "replication_lists": self.itr.state(), "receivers": self.etr.state(),
                "etr_events": self.etr.events[-50:], "itr_changes": self.itr.changes[-50:]}
