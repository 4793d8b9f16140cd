"""The xTR's batched loop (nodes/xtr.py ``drain``/``flush`` over testbed/net/mmsg.py), without namespaces.

The node's data and service sockets are loopback UDP sockets, its TUN a datagram
socketpair and its raw socket a UDP socket to a collector: a burst is read with
recvmmsg in batches, every packet handled in order, and what the ITR sends leaves in
order with sendmmsg when the batch fills or on flush. The namespace tests
(tests/test_net_corecast.py, test_net_lisp.py, test_net_batch.py) run the same loop
for real.
"""

from __future__ import annotations

import os
import socket

import pytest

from nodes import xtr
from testbed.lisp.mapcache import MapEntry
from testbed.net.mmsg import BatchReceiver, BatchSender
from testbed.wire import corecast as cc
from testbed.wire.ipv4 import build_ipv4_udp

BASE = {"rloc": "174.16.0.2", "map_server": "174.16.255.2", "map_resolver": "174.16.255.2", "key": "k",
        "tun": "x0-tun", "eid_block": "10.0.0.0/8", "eid_prefixes": ["10.0.0.0/16"], "lan_if": "x0-eth0",
        "lispmc": False}


def udp() -> socket.socket:
    """A non-blocking UDP socket on 127.0.0.1 (closed by the test's end with the process)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def drain_all(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock``."""
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


@pytest.mark.parametrize("mode", ["mmsg", "plain"])
def test_etr_burst_is_read_in_batches_and_written_to_the_tun_in_order(mode):
    node = xtr.XtrNode(xtr.load(dict(BASE, io_batch=8)))
    node.data = udp()
    node.rx = {node.data.fileno(): BatchReceiver(node.data, 8, mode=mode)}
    tun, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    kernel.setblocking(False)
    node.tun = tun.fileno()
    sender = udp()
    inner = [build_ipv4_udp(socket.inet_aton("10.9.0.1"), socket.inet_aton("10.0.1.5"), 5000, 6000,
                            i.to_bytes(2, "big") * 50) for i in range(30)]
    for pkt in inner:
        sender.sendto(bytes([0x80, 0, 0, 1, 0, 0, 0, 0]) + pkt, node.data.getsockname())
    assert node.drain(node.data.fileno(), 1.0)  # DRAIN recvmmsg calls of 8: 30 packets in 4 calls
    assert drain_all(kernel) == inner
    assert node.io["lisp-in"] == 30 and node.etr.counters["decapsulated"] == 30
    assert node.rx[node.data.fileno()].counters["calls"] == (4 if mode == "mmsg" else 31)  # plain: 1 per datagram
    assert not node.drain(12345, 1.0)  # not one of the batched sockets


@pytest.mark.parametrize("mode", ["mmsg", "plain"])
def test_itr_service_burst_leaves_in_order_through_the_batched_sender(mode):
    svc = {"addr": "127.0.0.1", "port": 4340, "allowed_sources": ["127.0.0.0/8"]}
    node = xtr.XtrNode(xtr.load(dict(BASE, io_batch=4, corecast=True, corecast_service=svc)))
    node.map_cache.install(MapEntry(0x0A010000, 16, [("127.0.0.1", 1, 100, True)], expires=1e12))
    node.service = udp()
    node.data = udp()
    node.rx = {node.service.fileno(): BatchReceiver(node.service, 4, mode=mode)}
    collector = udp()
    node.tx = BatchSender(udp(), 4, mode=mode, port=collector.getsockname()[1])  # stands for the raw socket
    chunk = bytes(range(200)) * 6
    src = socket.inet_aton("127.0.0.1")
    s = udp()
    s.sendto(cc.encode_data(3, 1, chunk), node.service.getsockname())
    refs = [cc.encode_ref(3, 1, cc.chunk_hash(chunk), src, bytes((10, 1, 0, i)), 5000, 6000) for i in range(1, 11)]
    for ref in refs:
        s.sendto(ref, node.service.getsockname())
    assert node.drain(node.service.fileno(), 1.0)  # 11 messages: 3 recvmmsg calls of up to 4
    node.flush()  # what the loop does before it waits again
    out = drain_all(collector)
    assert [len(p) for p in out] == [36 + 12 + len(chunk)] + [68] * 10
    assert [p[36:] for p in out[1:]] == refs  # behind the outer IPv4/UDP/LISP header, the REF as received
    assert out[0][36:] == cc.encode_data(3, 1, chunk)
    assert node.io["service-in"] == 11 and node.io["raw-sent"] == 11 and node.io["raw-send-error"] == 0
    assert node.cc_itr.counters["ref-sent"] == 10 and node.cc_itr.counters["data-sent"] == 1
    assert node.status()["io"]["truncated"] == 0


def test_xtr_sockets_get_the_receive_buffer_they_ask_for_beyond_rmem_max():
    """scale j = 500, gamma 100: the ITR's service socket asked for 32 MiB but a node's namespace cannot raise
    net.core.rmem_max (16 MiB here), so a chunk's 50,001 REFs overflowed it. As root the xTR forces it."""
    import socket as _socket

    from nodes.xtr import udp_socket
    s = udp_socket("127.0.0.1", 0, 32 << 20)
    try:
        got = s.getsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF)
    finally:
        s.close()
    if os.geteuid() == 0:
        assert got == 2 * (32 << 20)  # the kernel doubles what it grants (bookkeeping)
    else:
        assert got > 0
