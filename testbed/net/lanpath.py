"""The ETR's LAN fast path: which packets a packet socket may deliver exactly as the kernel would forward them.

Without it the xTR writes every packet its ETR delivers (a decapsulated unicast
packet, a datagram rebuilt from a CoreCast REF) to its TUN device, one ``write``
each, and the kernel forwards it to the LAN: TTL minus one, header checksum
updated, next hop's MAC from the neighbour table. With it the xTR does the same
forwarding itself and hands the frames to an ``AF_PACKET`` socket on ``lan_if``
in batches (``sendmmsg``, testbed/net/mmsg.py ``BatchSender.add_forward``), so
the bytes on the LAN do not change.

Why not a raw IP socket (``IP_HDRINCL``): the kernel replaces an IP ID of 0 by a
fresh one when DF is clear (``raw_send_hdrinc`` -> ``ip_select_ident``), and a
datagram rebuilt from a REF has ID 0 and DF clear: the LAN bytes would change.

:class:`LanPath` is sans-I/O: it is given the namespace's tables as text
(``/proc/net/route``, ``/proc/net/arp``, ``/proc/net/fib_trie``: :func:`read_tables`)
and answers, per packet, with the packet socket's destination address or None
(the packet then stays on the TUN path and the kernel decides, as before). A
packet takes the fast path only if the kernel's forwarding would send it, unchanged
but for TTL and checksum, out of ``lan_if`` to a known neighbour:

* IPv4, no options, total length equal to the packet's, header checksum valid
  (the kernel drops a bad one), not a fragment, TTL above 1, at most ``mtu`` bytes;
* destination: not a local or broadcast address of the namespace (so nothing sent
  this way can reach the xTR's own sockets: the CoreCast service's LAN-only check
  stays whole, docs/security.md), not multicast, loopback or 0/8; its longest-prefix
  route (main table) leaves by ``lan_if``, and the next hop (the gateway, or the
  destination on-link) has a complete neighbour entry (ARP flag ``ATF_COM``) on it;
* source: not martian (0/8, 127/8, 224/3, a local or broadcast address) and routed
  back out of the TUN, which is what strict unicast RPF (testbed/net/sav.py, in
  prerouting) asks of a packet arriving from the TUN: a spoofed inner source stays on
  the TUN path, where the filter sees and counts it.

Decisions are cached per destination and per source and forgotten when
:meth:`LanPath.update` sees a table change (the node re-reads them every second):
a neighbour learnt by the TUN path's first packet is used from the next refresh
on. Assumptions, true in the testbed's xTR namespaces: no policy routing rules, no
multipath routes, no nftables rule in the forward hook.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = ["LanPath", "parse_routes", "parse_neighbours", "parse_special", "read_tables", "ETH_P_IP"]

ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
RTF_GATEWAY = 0x0002
RTF_REJECT = 0x0200
ATF_COM = 0x02
_HDR = struct.Struct("!BxH2xHB3xII")  # version/IHL, total length, fragment word, TTL, source, destination
_MAX_CACHE = 4096
_MISS = object()


def parse_routes(text: str) -> list[tuple[int, int, int, str, int, int]]:
    """``/proc/net/route`` -> [(network, mask, gateway, interface, metric, flags)], addresses as host ints.

    The file prints each ``__be32`` as the hex of its native (little-endian) value.
    Lines that do not parse are skipped.
    """
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            net, gw, flags, metric, mask = (int.from_bytes(bytes.fromhex(f[1]), "little"),
                                            int.from_bytes(bytes.fromhex(f[2]), "little"), int(f[3], 16),
                                            int(f[6]), int.from_bytes(bytes.fromhex(f[7]), "little"))
        except ValueError:
            continue
        out.append((net, mask, gw, f[0], metric, flags))
    return out


def parse_neighbours(text: str, iface: str) -> dict[int, bytes]:
    """``/proc/net/arp`` -> {address: 6-byte MAC} of the complete entries on ``iface``."""
    out = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 6 or f[5] != iface:
            continue
        try:
            if not int(f[2], 16) & ATF_COM:
                continue
            mac = bytes.fromhex(f[3].replace(":", ""))
            addr = int.from_bytes(socket.inet_aton(f[0]), "big")
        except (ValueError, OSError):
            continue
        if len(mac) == 6:
            out[addr] = mac
    return out


def parse_special(text: str) -> set[int]:
    """``/proc/net/fib_trie`` -> the namespace's local and broadcast addresses (``/32 host LOCAL``, ``link BROADCAST``)."""
    out: set[int] = set()
    last = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|--"):
            try:
                last = int.from_bytes(socket.inet_aton(s[3:].strip()), "big")
            except OSError:
                last = None
        elif last is not None and s.startswith("/32") and ("LOCAL" in s or "BROADCAST" in s):
            out.add(last)
    return out


def read_tables() -> tuple[str, str, str]:
    """This process's network namespace's route, ARP and FIB-trie tables as text (empty if unreadable)."""
    out = []
    for path in ("/proc/net/route", "/proc/net/arp", "/proc/net/fib_trie"):
        try:
            with open(path) as f:
                out.append(f.read())
        except OSError:
            out.append("")
    return out[0], out[1], out[2]


class LanPath:
    """Per-packet decision of the LAN fast path (see the module docstring).

    ``lan_if``/``ifindex``: the LAN interface; ``mtu``: its MTU (bytes); ``tun``: the
    TUN device's name (the interface a delivered packet's source must route back to).
    Until the first :meth:`update` every packet stays on the TUN path.
    """

    def __init__(self, lan_if: str, ifindex: int, mtu: int, tun: str) -> None:
        self.lan_if, self.ifindex, self.mtu, self.tun = lan_if, ifindex, mtu, tun
        self._tables: tuple[str, str, str] | None = None
        self.routes: list[tuple[int, int, int, str, int, int]] = []
        self.neighbours: dict[int, bytes] = {}
        self.special: set[int] = set()
        self._dst: dict[int, Any] = {}
        self._src: dict[int, bool] = {}
        self._head = struct.pack("=H", socket.AF_PACKET) + ETH_P_IP.to_bytes(2, "big") + struct.pack(
            "=iHBB", ifindex, ARPHRD_ETHER, 0, 6)

    def update(self, route_text: str, arp_text: str, trie_text: str) -> bool:
        """Take the namespace's tables; True (and the caches forgotten) if they changed."""
        tables = (route_text, arp_text, trie_text)
        if tables == self._tables:
            return False
        self._tables = tables
        routes = parse_routes(route_text)
        routes.sort(key=lambda r: (-bin(r[1]).count("1"), r[4]))  # longest prefix first, then lowest metric
        self.routes = routes
        self.neighbours = parse_neighbours(arp_text, self.lan_if)
        self.special = parse_special(trie_text)
        self._dst.clear()
        self._src.clear()
        return True

    def route(self, addr: int) -> tuple[str, int] | None:
        """(interface, next hop) of the longest-prefix route to ``addr``; None if none or a reject route."""
        for net, mask, gw, iface, _metric, flags in self.routes:
            if addr & mask == net:
                if flags & RTF_REJECT:
                    return None
                return iface, (gw if flags & RTF_GATEWAY else addr)
        return None

    def _martian(self, addr: int) -> bool:
        top = addr >> 24
        return top == 0 or top == 127 or top >= 224 or addr in self.special

    def _dst_lookup(self, dst: int) -> tuple[bytes, tuple] | None:
        got = None
        if not self._martian(dst):
            r = self.route(dst)
            if r is not None and r[0] == self.lan_if:
                mac = self.neighbours.get(r[1])
                if mac is not None and r[1] not in self.special:
                    got = (self._head + mac + b"\0\0", (self.lan_if, ETH_P_IP, 0, ARPHRD_ETHER, mac))
        if len(self._dst) >= _MAX_CACHE:
            self._dst.clear()
        self._dst[dst] = got
        return got

    def _src_lookup(self, src: int) -> bool:
        ok = False
        if not self._martian(src):
            r = self.route(src)
            ok = r is not None and r[0] == self.tun
        if len(self._src) >= _MAX_CACHE:
            self._src.clear()
        self._src[src] = ok
        return ok

    def destination(self, pkt: bytes | memoryview) -> tuple[bytes, tuple] | None:
        """(``sockaddr_ll`` bytes, ``sendto`` address) for ``pkt`` on the fast path, or None: the TUN path."""
        n = len(pkt)
        if n < 20 or n > self.mtu:
            return None
        vihl, total, frag, ttl, src, dst = _HDR.unpack_from(pkt)
        if vihl != 0x45 or total != n or ttl <= 1 or frag & 0x3FFF:
            return None
        got = self._dst.get(dst, _MISS)
        if got is _MISS:
            got = self._dst_lookup(dst)
        if got is None:
            return None
        ok = self._src.get(src)
        if ok is None:
            ok = self._src_lookup(src)
        if not ok or int.from_bytes(pkt[:20], "big") % 0xFFFF:  # a valid header's words sum to 0xFFFF
            return None
        return got
