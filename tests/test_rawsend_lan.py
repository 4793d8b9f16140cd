"""The ETR's LAN fast path (testbed/net/lanpath.py, nodes/xtr_io.py LanSender, mmsg ``add_forward``).

Pure parts without any namespace: the table parsers, the per-packet decision (what
must stay on the TUN path), the forwarded bytes. One end-to-end check in a private
network namespace made with ``unshare --net`` (no Mininet, not the testbed lock): a
veth pair stands for the LAN, a TUN device for the xTR's; the same packets go once
through the TUN (the kernel forwards them) and once through the LanSender, and the
frames captured on the other end of the LAN must be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest

from testbed.lisp.corecast_etr import unicast_packet
from testbed.lisp.dataplane import WRITE_TUN, sum16
from testbed.net.lanpath import LanPath, parse_neighbours, parse_routes, parse_special
from testbed.net.mmsg import BatchSender
from testbed.wire.ipv4 import build_ipv4_udp, checksum16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
x1-eth0\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
x1-eth0\t0080010A\t0200010A\t0003\t0\t0\t0\t0080FFFF\t0\t0\t0
x1-tun\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
x1-eth1\t000010AE\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
*\t0000050A\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.1.0.2         0x1         0x2         02:00:00:00:01:02     *        x1-eth0
10.1.0.3         0x1         0x0         00:00:00:00:00:00     *        x1-eth0
10.1.0.4         0x1         0x6         02:00:00:00:01:04     *        x1-eth0
174.16.1.1       0x1         0x2         02:00:00:00:09:09     *        x1-eth1
"""
TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.1.0.0
        /16 link UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.1.0.1
        /32 host LOCAL
     |-- 10.1.255.254
        /32 host LOCAL
     |-- 10.1.255.255
        /32 link BROADCAST
"""


def ip(a: str) -> int:
    return int.from_bytes(socket.inet_aton(a), "big")


def path() -> LanPath:
    p = LanPath("x1-eth0", 7, 1500, "x1-tun")
    assert p.update(ROUTES, ARP, TRIE)
    return p


def pkt(src: str, dst: str, ttl: int = 64, size: int = 1316) -> bytes:
    b = bytearray(build_ipv4_udp(socket.inet_aton(src), socket.inet_aton(dst), 5000, 6000, bytes(size)))
    b[8] = ttl
    b[10:12] = b"\0\0"
    struct.pack_into("!H", b, 10, checksum16(b[:20]))
    return bytes(b)


def test_tables_parse():
    routes = parse_routes(ROUTES)
    assert (ip("10.1.128.0"), ip("255.255.128.0"), ip("10.1.0.2"), "x1-eth0", 0, 3) in routes
    assert len(routes) == 5
    assert parse_neighbours(ARP, "x1-eth0") == {ip("10.1.0.2"): bytes.fromhex("020000000102"),
                                                ip("10.1.0.4"): bytes.fromhex("020000000104")}  # 0x0: incomplete
    assert parse_special(TRIE) == {ip("10.1.0.1"), ip("10.1.255.254"), ip("10.1.255.255")}
    assert parse_routes("header\nbad line\nx 0000zz0A 00000000 0001 0 0 0 0000FFFF\n") == []


def test_fast_path_decisions():
    p = path()
    head = struct.pack("=H", socket.AF_PACKET) + b"\x08\x00" + struct.pack("=iHBB", 7, 1, 0, 6)
    # via the gateway 10.1.0.2 (route 10.1.128.0/17), and on-link to a permanent neighbour
    assert p.destination(pkt("10.0.0.10", "10.1.130.5")) == (
        head + bytes.fromhex("020000000102") + b"\0\0", ("x1-eth0", 0x0800, 0, 1, bytes.fromhex("020000000102")))
    assert p.destination(memoryview(pkt("10.0.0.10", "10.1.0.4")))[0][12:18] == bytes.fromhex("020000000104")
    stays = {
        "the service address (local)": pkt("10.0.0.10", "10.1.255.254"),
        "the LAN address (local)": pkt("10.0.0.10", "10.1.0.1"),
        "the LAN broadcast": pkt("10.0.0.10", "10.1.255.255"),
        "a neighbour not resolved": pkt("10.0.0.10", "10.1.0.3"),
        "no neighbour entry": pkt("10.0.0.10", "10.1.0.9"),
        "a reject route": pkt("10.0.0.10", "10.5.0.1"),
        "another interface": pkt("10.0.0.10", "174.16.1.1"),
        "multicast": pkt("10.0.0.10", "232.1.1.1"),
        "TTL 1": pkt("10.0.0.10", "10.1.130.5", ttl=1),
        "too big for the LAN": pkt("10.0.0.10", "10.1.130.5", size=1500),
        "a spoofed LAN source (strict RPF)": pkt("10.1.0.77", "10.1.130.5"),
        "a local source": pkt("10.1.0.1", "10.1.130.5"),
        "a martian source": pkt("127.0.0.1", "10.1.130.5"),
        "a source routed nowhere": pkt("192.0.2.1", "10.1.130.5"),
    }
    for why, p_ in stays.items():
        assert p.destination(p_) is None, why
    good = bytearray(pkt("10.0.0.10", "10.1.130.5"))
    for why, (off, val) in {"bad checksum": (11, good[11] ^ 1), "options": (0, 0x46), "fragment": (7, 1),
                            "more fragments": (6, 0x20), "IPv6": (0, 0x60)}.items():
        bad = bytearray(good)
        bad[off] = val
        assert p.destination(bytes(bad)) is None, why
    assert p.destination(bytes(good[:19])) is None
    assert p.destination(bytes(good) + b"x") is None  # total length shorter than the packet
    assert p.destination(bytes(good)) is not None  # the cached answers did not change
    assert not p.update(ROUTES, ARP, TRIE)  # same tables: caches kept
    assert p.update(ROUTES, ARP.replace("0x2 ", "0x0 ", 1), TRIE)  # the gateway's entry went
    assert p.destination(bytes(good)) is None


@pytest.mark.parametrize("mode", ["mmsg", "plain"])
def test_add_forward_does_what_the_kernel_forwarding_does(mode):
    class Sock:
        def __init__(self):
            self.sent = []

        def fileno(self):
            return -1

        def sendto(self, data, addr):
            self.sent.append((bytes(data), addr))

    sock = Sock()
    tx = BatchSender(sock, 4, mode="plain", namelen=20)  # the plain path keeps what it sends
    packets = [pkt("10.0.0.10", "10.1.130.5", ttl=t) for t in (64, 2, 255)]
    packets.append(unicast_packet(ip("10.0.0.10"), ip("10.1.130.6"), 5000, 6000, bytes(100), sum16(bytes(100))))
    # a header whose checksum is 0xFEFF before and would overflow to 0xFFFF without the end-around carry
    for data in packets:
        tx.add_forward(data, bytes(20), ("x", 0x800))
    assert tx.pending == 0 and len(sock.sent) == 4  # the batch of 4 went by itself
    for (got, addr), orig in zip(sock.sent, packets):
        assert got[8] == orig[8] - 1 and got[:8] == orig[:8] and got[12:] == orig[12:] and addr == ("x", 0x800)
        assert checksum16(got[:10] + b"\0\0" + got[12:20]) == struct.unpack("!H", got[10:12])[0]
    if mode == "mmsg":  # the batched path writes the same bytes into its slots
        tx2 = BatchSender(sock, 8, mode="auto", namelen=20)
        for data in packets:
            tx2.add_forward(data, bytes(range(20)), None)
        a = tx2.arrays
        for i, (got, _addr) in enumerate(sock.sent):
            assert bytes(a.view[i * a.slot:i * a.slot + len(got)]) == got
        assert bytes(a.name_view[20:40]) == bytes(range(20))
        tx2.pending = 0  # nothing is sent on the fake socket


def test_checksum_carry_matches_ip_decrease_ttl():
    def kernel(ck: int) -> int:  # include/net/ip.h ip_decrease_ttl
        ck += 0x0100
        return (ck + (ck >= 0xFFFF)) & 0xFFFF

    class Sock:
        sent: list = []

        def fileno(self):
            return -1

        def sendto(self, data, addr):
            self.sent.append(bytes(data))

    for ck in (0x0000, 0x1234, 0xFEFE, 0xFEFF, 0xFF00, 0xFFFE):
        tx = BatchSender(Sock(), 1, mode="plain", namelen=20)
        hdr = bytearray(pkt("10.0.0.10", "10.1.130.5", size=0))
        hdr[10:12] = ck.to_bytes(2, "big")
        tx.add_forward(bytes(hdr), bytes(20), None)
        assert int.from_bytes(Sock.sent[-1][10:12], "big") == kernel(ck), hex(ck)


CHILD = r"""
import json, os, select, socket, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from nodes.xtr_io import LanSender, open_tun
from testbed.lisp.corecast_etr import unicast_packet
from testbed.lisp.dataplane import sum16
from testbed.wire.ipv4 import build_ipv4_udp

def sh(cmd):
    subprocess.run(cmd.split(), check=True, capture_output=True)

for i in ("all", "default"):
    with open(f"/proc/sys/net/ipv6/conf/{i}/disable_ipv6", "w") as f:
        f.write("1")
sh("ip link set lo up")
sh("ip link add lp0 type veth peer name lp1")
tun = open_tun("t0")
for c in ("ip link set lp0 up", "ip link set lp1 up", "ip link set t0 up", "ip addr add 10.1.0.1/16 dev lp0",
          "ip addr add 10.1.255.254/32 dev lp0", "ip route add 10.0.0.0/16 dev t0",
          "ip route add 10.1.128.0/17 via 10.1.0.2"):
    sh(c)
with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
    f.write("1")
with open("/proc/sys/net/ipv4/conf/lp1/forwarding", "w") as f:  # lp1 is the far end: it must not send back
    f.write("0")
mac1 = bytes.fromhex("020000000102")  # sysfs is the parent namespace's: set the MAC instead of reading it
sh(f"ip link set lp1 address {mac1.hex(':')}")
sh(f"ip neigh replace 10.1.0.2 lladdr {mac1.hex(':')} dev lp0 nud permanent")
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
cap.bind(("lp1", 3))
cap.setblocking(False)

def frames(n, deadline=30.0):
    # the n frames expected (forwarding is asynchronous: late on a loaded machine), then 0.2 s more for extras
    out, end = [], time.monotonic() + deadline
    while time.monotonic() < end:
        r, _, _ = select.select([cap], [], [], 0.2)
        if not r:
            if len(out) >= n:
                break
            continue
        while True:
            try:
                f = cap.recv(65536)
            except BlockingIOError:
                break
            if f[12:14] == b"\x08\x00" and f[14 + 9] == 17:
                out.append(f)
    return out

lan = LanSender("lp0", "t0", 8)
A = lambda s: int.from_bytes(socket.inet_aton(s), "big")
pkts = [unicast_packet(A("10.0.0.10"), A("10.1.130.5"), 5000, 6000, bytes(range(200)) * 6, sum16(bytes(range(200)) * 6)),
        bytearray(build_ipv4_udp(socket.inet_aton("10.0.0.10"), socket.inet_aton("10.1.130.6"), 7, 8, b"u" * 500))]
p = pkts[1]
p[4:8] = struct.pack("!HH", 0x1234, 0x4000)  # ID 0x1234, DF
p[8] = 17
p[10:12] = b"\0\0"
s = 0
for i in range(0, 20, 2):
    s += p[i] << 8 | p[i + 1]
s = (s & 0xFFFF) + (s >> 16)
p[10:12] = struct.pack("!H", ~s & 0xFFFF)
pkts[1] = bytes(p)
for q in pkts:
    os.write(tun, q)
via_tun = frames(len(pkts))
took = [lan.send(q) for q in pkts]
lan.tx.flush()
via_lan = frames(len(pkts))
svc = unicast_packet(A("10.0.0.10"), A("10.1.255.254"), 5000, 4340, b"x", sum16(b"x"))
spoof = unicast_packet(A("10.1.0.9"), A("10.1.130.5"), 5000, 6000, b"x", sum16(b"x"))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.sendto(pkts[0], ("10.1.130.5", 0))
via_raw = frames(1)
print(json.dumps({"tun": [f.hex() for f in via_tun], "lan": [f.hex() for f in via_lan], "took": took,
                  "raw": [f.hex() for f in via_raw],
                  "service": lan.send(svc), "spoof": lan.send(spoof), "counters": lan.tx.counters}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_lan_frames_equal_the_kernels_forwarding_in_a_private_namespace(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    res = subprocess.run(["unshare", "--net", sys.executable, str(script), ROOT], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["took"] == [True, True]
    assert len(out["tun"]) == 2 and out["lan"] == out["tun"]  # same frames, byte for byte
    first = bytes.fromhex(out["tun"][0])
    assert first[14 + 8] == 63 and first[14 + 4:14 + 6] == b"\0\0"  # TTL 64 - 1, ID 0 kept
    assert out["service"] is False and out["spoof"] is False
    assert out["counters"]["datagrams"] == 2 and out["counters"]["send-error"] == 0
    # why not a raw IP socket: the kernel gives the ID-0, DF-clear datagram an ID of its own
    raw = bytes.fromhex(out["raw"][0])
    assert raw[14 + 4:14 + 6] != b"\0\0"


def test_xtr_keeps_local_destinations_on_the_tun():
    from nodes import xtr
    from nodes.xtr_io import LanSender
    node = xtr.XtrNode(xtr.load({"rloc": "174.16.1.2", "map_server": "174.16.255.2", "map_resolver": "174.16.255.2",
                                 "key": "k", "tun": "x1-tun", "eid_block": "10.0.0.0/8",
                                 "eid_prefixes": ["10.1.0.0/16"], "lan_if": "x1-eth0", "lispmc": False}))
    tun, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    kernel.setblocking(False)
    node.tun = tun.fileno()
    lan = LanSender.__new__(LanSender)
    lan.path = path()

    class Tx:
        pending = 0
        counters = {"datagrams": 0, "send-error": 0}
        got: list = []

        def add_forward(self, data, name, addr):
            self.got.append(bytes(data))

    lan.tx = Tx()
    node.lan = lan
    fast, local = pkt("10.0.0.10", "10.1.130.5"), pkt("10.0.0.10", "10.1.255.254")
    node.do([(WRITE_TUN, fast), (WRITE_TUN, local)], 1.0)
    assert Tx.got == [fast]
    assert kernel.recv(65536) == local and node.io["tun-write"] == 1


def test_lan_send_is_off_by_default_and_needs_batching():
    """Off by default (docs/benchmarks.md: no faster, more CPU per delivery); a config can turn it on."""
    from nodes import xtr
    cfg = {"rloc": "174.16.1.2", "map_server": "174.16.255.2", "map_resolver": "174.16.255.2", "key": "k",
           "tun": "x1-tun", "eid_block": "10.0.0.0/8", "eid_prefixes": ["10.1.0.0/16"], "lan_if": "x1-eth0"}
    assert xtr.load(cfg)["lan_send"] is False
    assert xtr.load(dict(cfg, lan_send=True))["lan_send"] is True
    node = xtr.XtrNode(xtr.load(dict(cfg, lan_send=True, lispmc=False)))
    assert node.lan is None  # opened by setup(), with io_batch > 0, never before


def test_lan_send_without_lan_if_or_batching_is_a_config_error():
    """Review: lan_send true was silently ignored without lan_if or with io_batch 0; now one line naming it."""
    from nodes import xtr
    from testbed.nodeutil import ConfigError
    cfg = {"rloc": "174.16.1.2", "map_server": "174.16.255.2", "map_resolver": "174.16.255.2", "key": "k",
           "tun": "x1-tun", "eid_block": "10.0.0.0/8", "eid_prefixes": ["10.1.0.0/16"], "lan_if": "x1-eth0"}
    no_lan = {k: v for k, v in cfg.items() if k != "lan_if"}
    for bad, why in ((dict(no_lan, lan_send=True), "needs lan_if"), (dict(cfg, lan_send=True, io_batch=0), "io_batch")):
        with pytest.raises(ConfigError, match=why) as err:
            xtr.load(bad)
        assert "\n" not in str(err.value)
    assert xtr.load(dict(no_lan, lan_send=False))["lan_send"] is False and xtr.load(dict(cfg, io_batch=0))
