"""The CoreCast source role of bench/traffic.py (``cc-send``): DATA and REFs, or REF lists, to an ITR's service.

Runs inside a Mininet node, like traffic.py (stdlib + testbed.wire + testbed.net.mmsg only).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from traffic import CLIENT_PORT, SOURCE_PORT, TRIAL, read_targets


def role_cc_send(trial: int, service: str, port: int, rate: float, refs: int, targets: str, src_eid: str,
                 size: int, batch: bool = False, mode: str = "corecast") -> dict[str, Any]:
    """CoreCast source: per chunk one DATA, then one REF per client; ``rate`` REFs/s, ``refs`` REFs in all.

    Clients are ``targets`` (see :func:`read_targets`). Every round carries a new
    chunk (its first 4 bytes: the trial, then the sequence number), which the ITR
    must forward to the ETR once before the round's REFs.

    ``mode``: ``corecast`` (plain REFs), ``corecast-batch`` (REFs with flag B, the
    chunk's last with flag L: the ITR groups them into one list per ETR), or
    ``corecast-src:RLOC`` (the source sends, after the DATA, the clients as REF-LIST
    or REF-MAP messages naming ETR ``RLOC``, the first with flag D: the ITR forwards
    lists). ``rate`` and ``refs`` count client deliveries in every mode; with lists a
    chunk's messages leave at once when its deliveries are due.
    """
    if mode.startswith("corecast-src:"):
        return _cc_send_lists(trial, service, port, rate, refs, targets, src_eid, size, mode.split(":", 1)[1])
    from testbed.wire import corecast as cc
    ref_flags = cc.FLAG_BATCH if mode == "corecast-batch" else 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.connect((service, port))
    send = s.send
    tx = None
    if batch:
        from testbed.net.mmsg import BatchSender
        tx = BatchSender(s, 64, 2048, port=port)

        def send_batched(data: bytes | bytearray) -> None:
            tx.add(data, service)
        send = send_batched
    src4 = socket.inet_aton(src_eid)
    dsts = [socket.inet_aton(a) for a in read_targets(targets)]
    clients = len(dsts)
    stream = 7000 + trial
    buf = bytearray(32)
    clock, sleep = time.perf_counter, time.sleep
    sent = datas = errors = seq = 0
    t0 = clock()
    while sent < refs:
        seq += 1
        chunk = TRIAL.pack(trial) + seq.to_bytes(4, "big") + bytes(size - 8)
        digest = cc.chunk_hash(chunk)
        try:
            send(cc.encode_data(stream, seq, chunk))
            datas += 1
        except OSError:
            errors += 1
        round_end = min(refs, sent + clients)
        i = 0
        while sent < round_end:
            due = round_end if rate <= 0 else min(round_end, int((clock() - t0) * rate) + 1)
            if due <= sent:
                sleep(0.0002)
                continue
            for _ in range(min(due - sent, 64)):
                cc.pack_ref_into(buf, 0, stream, seq, digest, src4, dsts[i], SOURCE_PORT, CLIENT_PORT,
                                 ref_flags | (cc.FLAG_LAST_REF if ref_flags and sent + 1 == round_end else 0))
                try:
                    send(buf)
                except OSError:
                    errors += 1
                i += 1
                sent += 1
            if tx is not None:
                tx.flush()
    if tx is not None:
        errors += tx.counters["send-error"]
    elapsed = clock() - t0
    return {"sent": sent - errors, "data_sent": datas, "send_errors": errors, "seconds": elapsed,
            "achieved": (sent - errors) / elapsed}


def _cc_send_lists(trial: int, service: str, port: int, rate: float, refs: int, targets: str, src_eid: str,
                   size: int, etr: str) -> dict[str, Any]:
    """:func:`role_cc_send` in mode ``corecast-src``: per chunk a DATA and the REF lists for ETR ``etr``."""
    from testbed.wire import corecast as cc
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.connect((service, port))
    src4, etr4 = socket.inet_aton(src_eid), socket.inet_aton(etr)
    entries = [(socket.inet_aton(a), CLIENT_PORT) for a in read_targets(targets)]
    clients, capacity, stream = len(entries), cc.ref_list_capacity(), 7000 + trial
    clock, sleep = time.perf_counter, time.sleep
    sent = datas = lists = errors = seq = 0
    t0 = clock()
    while sent < refs:
        seq += 1
        n = min(clients, refs - sent)
        while rate > 0 and (clock() - t0) * rate < sent + n:
            sleep(0.0002)
        chunk = TRIAL.pack(trial) + seq.to_bytes(4, "big") + bytes(size - 8)
        msgs = [cc.encode_data(stream, seq, chunk)] + cc.encode_ref_messages(
            stream, seq, cc.chunk_hash(chunk), etr4, src4, SOURCE_PORT, entries[:n], capacity, cc.FLAG_DATA_FIRST)
        try:
            for m in msgs:
                s.send(m)
            datas += 1
            lists += len(msgs) - 1
            sent += n
        except OSError:
            errors += n
            sent += n
    elapsed = clock() - t0
    return {"sent": sent - errors, "data_sent": datas, "lists_sent": lists, "send_errors": errors,
            "seconds": elapsed, "achieved": (sent - errors) / elapsed}
