"""The xTR's devices and sockets (nodes/xtr.py): the TUN, the UDP sockets, and the LAN fast path's packet socket.

I/O only; the decisions are in the sans-I/O cores (testbed/lisp/) and in
:class:`testbed.net.lanpath.LanPath`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
from typing import Any

from testbed.net.lanpath import LanPath, read_tables
from testbed.net.mmsg import BatchSender
from testbed.nodeutil import ConfigError

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFMTU = 0x8921
SO_RCVBUFFORCE = 33
SERVICE_RCVBUF = 64 << 20
"""Bytes of receive buffer asked for the ITR's CoreCast service socket (the kernel grants twice that): a
chunk for k clients arrives as k + 1 datagrams at once (scale: k = 100,000); pages are used only when queued."""
SOCKADDR_LL = 20
BATCH = 64  # packets drained from one socket before looking at the others (plain loop, io_batch 0)
DRAIN = 4  # recvmmsg calls on one readable socket before looking at the others (batched loop)


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


def if_mtu(name: str) -> int:
    """MTU of interface ``name`` in this network namespace (ioctl SIOCGIFMTU); OSError if there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s.fileno(), SIOCGIFMTU, struct.pack("16si12x", name.encode(), 0))
    return struct.unpack_from("i", got, 16)[0]


class LanSender:
    """The LAN fast path's I/O: a send-only ``AF_PACKET`` socket on ``lan_if``, batched, and its :class:`LanPath`.

    :meth:`send` queues a packet the path accepts (True) or leaves it to the caller's
    TUN write (False); :meth:`refresh` re-reads the namespace's tables. Raises OSError
    if the socket or the interface is not there (the caller then keeps the TUN path).
    Protocol 0: the socket receives nothing, so it costs nothing on the way in.
    """

    def __init__(self, lan_if: str, tun: str, batch: int) -> None:
        self.path = LanPath(lan_if, socket.if_nametoindex(lan_if), if_mtu(lan_if), tun)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.tx = BatchSender(self.sock, batch, namelen=SOCKADDR_LL)
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the route, neighbour and address tables; True if they changed."""
        return self.path.update(*read_tables())

    def send(self, pkt: Any) -> bool:
        """Queue ``pkt`` for the LAN if the fast path takes it (see testbed/net/lanpath.py); else False."""
        got = self.path.destination(pkt)
        if got is None:
            return False
        self.tx.add_forward(pkt, got[0], got[1])
        return True

    def close(self) -> None:
        """Send what is queued and close the socket."""
        self.tx.close()
        self.sock.close()


class BatchLoop:
    """The xTR's batched socket work (a mixin of nodes.xtr.XtrNode, which owns the sockets, cores and counters).

    :meth:`drain` reads the data or a service socket with recvmmsg, :meth:`flush`
    sends what the raw socket and the LAN fast path have queued, :meth:`serve` is the
    plain loop's service drain (``io_batch`` 0).
    """

    batch: int
    io: dict[str, int]
    rx: dict[int, Any]
    tx: BatchSender | None
    lan: LanSender | None

    def flush(self) -> None:
        """Send the queued raw datagrams (batched loop); their counters follow the sender's."""
        tx = self.tx
        if tx is not None:
            if tx.pending:
                tx.flush()
            self.io["raw-sent"], self.io["raw-send-error"] = tx.counters["datagrams"], tx.counters["send-error"]
        if self.lan is not None:
            tx = self.lan.tx
            if tx.pending:
                tx.flush()
            self.io["lan-sent"], self.io["lan-send-error"] = tx.counters["datagrams"], tx.counters["send-error"]

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
