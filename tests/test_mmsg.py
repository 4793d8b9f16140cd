"""Batched datagram I/O (testbed/net/mmsg.py): recvmmsg/sendmmsg and the plain fallback give the same results.

Loopback UDP sockets in this process (no namespace, no lock): ordering, partial
batches, EAGAIN, truncation and refused datagrams counted, the fallback chosen at start.
"""

from __future__ import annotations

import socket

import pytest

from testbed.net import mmsg
from testbed.net.mmsg import BatchReceiver, BatchSender

MODES = ["plain"] + (["mmsg"] if mmsg.available() else [])


@pytest.fixture
def pair():
    """(receiver socket, non-blocking, on 127.0.0.1; sender socket); closed afterwards."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    yield rx, tx
    rx.close()
    tx.close()


def drain(r: BatchReceiver) -> list[list[bytes]]:
    """Every batch :meth:`recv` returns until it returns none (the payloads copied out)."""
    out = []
    while True:
        got = r.recv()
        if not got:
            return out
        out.append([bytes(p) for p, _src, _port in got])


@pytest.mark.parametrize("mode", MODES)
def test_receiver_keeps_order_and_splits_partial_batches(pair, mode):
    rx, tx = pair
    port = rx.getsockname()[1]
    for i in range(10):
        tx.sendto(bytes([i]) * (i + 1), ("127.0.0.1", port))
    r = BatchReceiver(rx, batch=4, slot=2048, mode=mode)
    assert r.mmsg is (mode == "mmsg")
    batches = drain(r)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [p for b in batches for p in b] == [bytes([i]) * (i + 1) for i in range(10)]
    assert r.counters["datagrams"] == 10 and r.counters["truncated"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_receiver_reports_source_address_and_eagain(pair, mode):
    rx, tx = pair
    r = BatchReceiver(rx, batch=8, slot=2048, mode=mode)
    assert r.recv() == []  # nothing waiting: EAGAIN is an empty batch, not an error
    tx.sendto(b"hello", rx.getsockname())
    got = r.recv()
    assert [(bytes(p), src, port) for p, src, port in got] == [
        (b"hello", socket.inet_aton("127.0.0.1"), tx.getsockname()[1])]
    assert r.recv() == []
    r.close()


@pytest.mark.parametrize("mode", MODES)
def test_receiver_counts_and_drops_truncated(pair, mode):
    rx, tx = pair
    for data in (b"a" * 10, b"b" * 100, b"c" * 64):
        tx.sendto(data, rx.getsockname())
    r = BatchReceiver(rx, batch=8, slot=64, mode=mode)
    assert [p for b in drain(r) for p in b] == [b"a" * 10, b"c" * 64]
    assert r.counters["truncated"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_sender_batches_in_order_and_flushes_partial(pair, mode):
    rx, tx = pair
    s = BatchSender(tx, batch=4, slot=2048, mode=mode, port=rx.getsockname()[1])
    buf = bytearray(b"x")
    for i in range(6):
        buf[0] = i
        s.add(buf, "127.0.0.1")  # copied at once: reusing buf must not change what is sent
    assert s.pending == 2  # the first four went when the batch filled
    r = BatchReceiver(rx, batch=16, slot=2048, mode=mode)
    assert [p for b in drain(r) for p in b] == [bytes([i]) for i in range(4)]
    assert s.flush() == 2 and s.pending == 0 and s.flush() == 0
    assert [p for b in drain(r) for p in b] == [bytes([4]), bytes([5])]
    assert s.counters["datagrams"] == 6 and s.counters["send-error"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_sender_counts_refused_and_too_big_and_sends_the_rest(pair, mode):
    rx, tx = pair
    s = BatchSender(tx, batch=8, slot=256, mode=mode, port=rx.getsockname()[1])
    s.add(b"one", "127.0.0.1")
    s.add(b"refused", "255.255.255.255")  # broadcast without SO_BROADCAST: EACCES
    s.add(b"y" * 300, "127.0.0.1")  # longer than the slot
    s.add(b"two", "127.0.0.1")
    s.add(b"elsewhere", "127.0.0.1", tx.getsockname()[1])  # a port of its own: to the sender's socket
    assert s.flush() == 3
    assert s.counters["send-error"] == 1 and s.counters["too-big"] == 1
    r = BatchReceiver(rx, batch=8, slot=2048, mode=mode)
    assert [p for b in drain(r) for p in b] == [b"one", b"two"]
    tx.setblocking(False)
    assert tx.recvfrom(64) == (b"elsewhere", tx.getsockname())
    with pytest.raises(OSError):
        s.add(b"z", "not-an-address")
    s.close()


def test_mode_is_checked_and_chosen_at_start(pair, monkeypatch):
    rx, _tx = pair
    with pytest.raises(ValueError, match="batch I/O mode"):
        BatchReceiver(rx, mode="fast")
    with pytest.raises(ValueError, match="batch"):
        BatchReceiver(rx, batch=0)
    monkeypatch.setattr(mmsg, "available", lambda: False)
    assert BatchReceiver(rx, batch=2, slot=64, mode="auto").mmsg is False  # the fallback, no error
    with pytest.raises(OSError, match="not available"):
        BatchSender(rx, batch=2, slot=64, mode="mmsg")


def test_large_slots_cost_only_touched_pages(pair):
    """64 KiB per slot is virtual: a batch of 1,024 slots maps 64 MiB without making it resident."""
    rx, _tx = pair

    def resident() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    before = resident()
    r = BatchReceiver(rx, batch=1024, mode="plain")
    assert len(r.arrays.buf) == 1024 * mmsg.SLOT
    assert resident() - before < 16 << 20
    r.close()
