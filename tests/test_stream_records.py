"""Record files and the delivery check: loss, corruption, reordering, joins and leaves."""

import socket

import numpy as np
import pytest

from testbed.stream.destinations import Event
from testbed.stream.records import (
    CLIENT_RECORD,
    ClientRecordWriter,
    RecordError,
    first_arrival_after,
    read_client_file,
    read_client_records,
    read_source_record,
    verify,
    write_source_record,
)
from testbed.wire.corecast import chunk_hash

A, B, C = "10.1.0.10", "10.1.0.11", "10.2.0.10"


def make_chunks(n):
    return [bytes([i % 256]) * 1316 for i in range(n)]


def write_source(path, chunks, events):
    rows = [(i, 1000.0 + i * 0.01, len(c), chunk_hash(c)) for i, c in enumerate(chunks)]
    write_source_record(str(path), {"name": "src", "mode": "unicast"}, rows, events)
    return read_source_record(str(path))


def write_client(path, receipts):
    """receipts: list of (eid, time, payload)."""
    w = ClientRecordWriter(str(path), {"name": "cl"})
    for eid, t, payload in receipts:
        w.add(t, socket.inet_aton(eid), len(payload), chunk_hash(payload))
    w.close()
    return read_client_records(str(path))


@pytest.fixture
def chunks():
    return make_chunks(10)


@pytest.fixture
def source(tmp_path, chunks):
    return write_source(tmp_path / "src.rec", chunks, [Event(999.0, "join", A, 6000, 0),
                                                        Event(999.0, "join", B, 6000, 0)])


def test_source_record_round_trip(source, chunks):
    assert len(source) == 10
    assert source.meta == {"name": "src", "mode": "unicast"}
    assert source.seqs.tolist() == list(range(10))
    assert source.lengths.tolist() == [1316] * 10
    assert source.digests[3] == int.from_bytes(chunk_hash(chunks[3]), "big")
    assert source.times[2] == pytest.approx(1000.02)
    assert source.destinations() == [(A, 6000), (B, 6000)]


def test_exact_delivery(tmp_path, source, chunks):
    recs = write_client(tmp_path / "c.rec", [(e, 1000.0 + i * 0.01 + 0.001, c)
                                             for i, c in enumerate(chunks) for e in (A, B)])
    report = verify(source, recs, [A, B])
    assert report.all_exact
    assert report.expected_chunks == 20 and report.delivered_chunks == 20 and report.corrupt_chunks == 0
    row = report.eids[A]
    assert (row.lost, row.out_of_order, row.duplicates, row.received) == (0, 0, 0, 10)
    assert row.join_delays == [(999.0, pytest.approx(1000.001))]


def test_loss_corruption_reorder_duplicate(tmp_path, source, chunks):
    bad = bytearray(chunks[5])
    bad[100] ^= 1
    order = [0, 1, 3, 2, 4, 4, 6, 7, 8]               # 2 after 3, 4 twice, 5 corrupt, 9 lost
    receipts = [(A, 1000.0 + k * 0.01, chunks[i]) for k, i in enumerate(order)]
    receipts.insert(6, (A, 1000.055, bytes(bad)))
    receipts += [(B, 1000.0 + i * 0.01, c) for i, c in enumerate(chunks)]
    recs = write_client(tmp_path / "c.rec", receipts)
    report = verify(source, recs, [A, B])
    a = report.eids[A]
    assert a.expected == 10
    assert a.delivered == 8                          # 0..4, 6, 7, 8
    assert a.lost == 2                               # 5 (arrived corrupt) and 9
    assert a.corrupt == 1
    assert a.out_of_order == 1
    assert a.duplicates == 1
    assert not a.exact
    assert report.eids[B].exact
    assert not report.all_exact
    t = report.totals()
    assert (t["expected"], t["delivered"], t["corrupt"], t["exact_eids"]) == (20, 18, 1, 1)


def test_missing_and_extra_eids(tmp_path, source, chunks):
    recs = write_client(tmp_path / "c.rec", [(A, 1000.0 + i, c) for i, c in enumerate(chunks)] +
                        [(C, 1000.0, chunks[0])])
    report = verify(source, recs, [A, B])
    assert report.eids[B].lost == 10 and report.eids[B].received == 0
    assert report.eids[B].join_delays == [(999.0, None)]
    assert report.extra_eids == [C]
    assert not report.all_exact


def test_join_and_leave_define_expected_chunks(tmp_path, chunks):
    events = [Event(999.0, "join", A, 6000, 0), Event(1000.035, "leave", A, 6000, 4),
              Event(1000.055, "join", B, 6000, 6), Event(1000.075, "leave", B, 6000, 8),
              Event(1000.085, "join", B, 6000, 9)]
    src = write_source(tmp_path / "s.rec", chunks, events)
    assert np.flatnonzero(src.expected_mask(A)).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(src.expected_mask(B)).tolist() == [6, 7, 9]
    assert src.expected_mask(B, port=7000).sum() == 0
    receipts = [(A, 1000.0 + i * 0.01 + 0.0005, chunks[i]) for i in range(4)]
    receipts += [(B, 1000.0 + i * 0.01 + 0.0005, chunks[i]) for i in (6, 7, 9)]
    receipts.append((B, 1000.0405, chunks[4]))      # sent, but not to B
    report = verify(src, write_client(tmp_path / "c.rec", receipts), [A, B])
    assert report.eids[A].exact and report.eids[A].expected == 4
    b = report.eids[B]
    assert (b.expected, b.delivered, b.unexpected, b.corrupt) == (3, 3, 1, 0)
    assert [d for _, d in b.join_delays] == [pytest.approx(1000.0605), pytest.approx(1000.0905)]


def test_repeated_chunk_contents(tmp_path):
    """Identical chunks (e.g. all null TS packets) must not confuse loss counting."""
    chunks = [b"\x01" * 1316, b"\xff" * 1316, b"\xff" * 1316, b"\x02" * 1316, b"\xff" * 1316]
    src = write_source(tmp_path / "s.rec", chunks, [Event(0.0, "join", A, 6000, 0)])
    recv = [chunks[i] for i in (0, 1, 3, 4)]          # one of the \xff chunks lost
    report = verify(src, write_client(tmp_path / "c.rec", [(A, 1.0 + i, c) for i, c in enumerate(recv)]), [A])
    a = report.eids[A]
    assert (a.delivered, a.lost, a.out_of_order, a.duplicates, a.corrupt) == (4, 1, 0, 0, 0)


def test_client_file_partial_record_and_merge(tmp_path, chunks):
    p1, p2 = tmp_path / "c1.rec", tmp_path / "c2.rec"
    write_client(p1, [(A, 5.0, chunks[1]), (B, 1.0, chunks[0])])
    write_client(p2, [(A, 2.0, chunks[0])])
    with open(p1, "ab") as fh:
        fh.write(b"\x00" * (CLIENT_RECORD.size - 3))     # a killed client's half-written record
    meta, arr = read_client_file(str(p1))
    assert meta == {"name": "cl"} and len(arr) == 2
    recs = read_client_records([str(p1), str(p2)])
    assert sorted(recs) == [A, B]
    assert recs[A].times.tolist() == [2.0, 5.0]        # merged in arrival-time order
    assert first_arrival_after(recs[A], 3.0) == 5.0
    assert first_arrival_after(recs[A], 6.0) is None


def test_bad_files(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello\n")
    with pytest.raises(RecordError):
        read_source_record(str(junk))
    with pytest.raises(RecordError):
        read_client_records(str(junk))
    with pytest.raises(RecordError):
        read_source_record(str(tmp_path / "missing"))
    assert read_client_records([]) == {}


def test_client_record_size_for_a_large_run(tmp_path):
    """1,000 EIDs x 3,000 chunks: 22 bytes a datagram, so 66 MB; here a slice of it."""
    assert CLIENT_RECORD.size == 22
    w = ClientRecordWriter(str(tmp_path / "big.rec"), {})
    digest = chunk_hash(b"x")
    for i in range(20_000):
        w.add(1.0 + i, socket.inet_aton(f"10.1.{i % 1000 // 250}.{i % 250 + 1}"), 1316, digest)
    w.close()
    recs = read_client_records(str(tmp_path / "big.rec"))
    assert len(recs) == 1000 and all(len(r) == 20 for r in recs.values())
