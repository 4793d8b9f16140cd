"""Record files of the source and the clients, and the delivery check between them.

Source record (text, CSV after one header line)::

    # corecast-source-record v1 {"name": "src", "mode": "corecast", ...}
    kind,seq,time,length,digest,eid,port
    join,0,1700000000.100000,,,10.1.0.10,6000
    chunk,0,1700000000.100342,1316,8c5e0f2b9d0a7e11,,
    leave,57,1700000000.700120,,,10.1.0.10,6000

``chunk`` rows: every chunk sent (time = just before its first datagram,
digest = BLAKE2b-64 hex). ``join``/``leave`` rows: destination changes, ``seq``
is the first chunk they apply to (the initial clients join at seq 0).

Client record (binary): one header line
``corecast-client-record v1 {json}\\n`` then fixed 22-byte little-endian
records ``<d4sH8s``: arrival time (kernel timestamp, float seconds), destination
EID (4 bytes, network order), UDP payload length, BLAKE2b-64 digest of the
payload. 1,000 EIDs x 3,000 chunks make 66 MB; reading uses numpy.
"""

from __future__ import annotations

import bisect
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import IO, Iterable, Sequence

import numpy as np

from testbed.stream.destinations import Event

SOURCE_MAGIC = "# corecast-source-record v1 "
SOURCE_COLUMNS = "kind,seq,time,length,digest,eid,port"
CLIENT_MAGIC = b"corecast-client-record v1 "
CLIENT_RECORD = struct.Struct("<d4sH8s")
CLIENT_DTYPE = np.dtype([("t", "<f8"), ("eid", ">u4"), ("len", "<u2"), ("digest", ">u8")])
assert CLIENT_DTYPE.itemsize == CLIENT_RECORD.size


class RecordError(ValueError):
    """A record file is missing or malformed."""


def digest_int(digest: bytes) -> int:
    """Return the integer form (big-endian) of an 8-byte digest, as used in the numpy arrays."""
    return int.from_bytes(digest, "big")


# --------------------------------------------------------------------------- writing

def write_source_record(path: str, meta: dict, chunks: Sequence[tuple[int, float, int, bytes]],
                        events: Iterable[Event]) -> None:
    """Write the source record: ``chunks`` as (seq, send time, length, digest), then the events.

    Rows are ordered by seq (joins/leaves before the chunk they apply to). Written
    via a temp file and rename.
    """
    rows: list[tuple[int, int, str]] = []
    for ev in events:
        rows.append((ev.seq, 0, f"{ev.kind},{ev.seq},{ev.time:.6f},,,{ev.eid},{ev.port}"))
    for seq, t, length, digest in chunks:
        rows.append((seq, 1, f"chunk,{seq},{t:.6f},{length},{digest.hex()},,"))
    rows.sort(key=lambda r: (r[0], r[1]))
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(SOURCE_MAGIC + json.dumps(meta, sort_keys=True) + "\n")
        fh.write(SOURCE_COLUMNS + "\n")
        for row in rows:
            fh.write(row[2] + "\n")
    os.replace(tmp, path)


class ClientRecordWriter:
    """Append client records to a file as datagrams arrive (buffered; :meth:`close` flushes)."""

    def __init__(self, path: str, meta: dict, buffering: int = 1 << 20) -> None:
        self.path = path
        self._fh: IO[bytes] | None = open(path, "wb", buffering=buffering)
        self._fh.write(CLIENT_MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n")
        self._pack = CLIENT_RECORD.pack
        self.count = 0

    def add(self, t: float, eid: bytes, length: int, digest: bytes) -> None:
        """Record one datagram: arrival time, destination EID (4 raw bytes), length, 8-byte digest."""
        self._fh.write(self._pack(t, eid, length, digest))
        self.count += 1

    def flush(self) -> None:
        """Push buffered records to the file."""
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# --------------------------------------------------------------------------- reading

@dataclass
class SourceRecord:
    """What the source sent: parallel numpy arrays per chunk, and the destination events."""

    meta: dict
    seqs: np.ndarray
    times: np.ndarray
    lengths: np.ndarray
    digests: np.ndarray  # uint64, see digest_int
    events: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seqs)

    def events_of(self, eid: str) -> list[Event]:
        """Return the events of ``eid`` in order (indexed once, so 10,000 EIDs stay cheap)."""
        index = self.__dict__.get("_by_eid")
        if index is None:
            index = {}
            for ev in self.events:
                index.setdefault(ev.eid, []).append(ev)
            self.__dict__["_by_eid"] = index
        return index.get(eid, [])

    def expected_mask(self, eid: str, port: int | None = None) -> np.ndarray:
        """Return a boolean mask of the chunks sent to ``eid`` (and ``port`` if given)."""
        mask = np.zeros(len(self.seqs), dtype=bool)
        open_at: dict[int, int] = {}
        for ev in self.events_of(eid):
            if port is not None and ev.port != port:
                continue
            if ev.kind == "join":
                open_at[ev.port] = ev.seq
            elif ev.port in open_at:
                mask |= (self.seqs >= open_at.pop(ev.port)) & (self.seqs < ev.seq)
        for start in open_at.values():
            mask |= self.seqs >= start
        return mask

    def join_times(self, eid: str, port: int | None = None) -> list[float]:
        """Return the times ``eid`` joined (the initial clients at the stream start)."""
        return [ev.time for ev in self.events_of(eid) if ev.kind == "join" and (port is None or ev.port == port)]

    def destinations(self) -> list[tuple[str, int]]:
        """Return every (EID, port) that ever joined, in first-join order."""
        seen: dict[tuple[str, int], None] = {}
        for ev in self.events:
            if ev.kind == "join":
                seen.setdefault((ev.eid, ev.port), None)
        return list(seen)


def read_source_record(path: str) -> SourceRecord:
    """Read a source record file; raise :class:`RecordError` if it is not one."""
    try:
        with open(path) as fh:
            first = fh.readline()
            if not first.startswith(SOURCE_MAGIC):
                raise RecordError(f"{path} is not a source record")
            meta = json.loads(first[len(SOURCE_MAGIC):])
            if fh.readline().strip() != SOURCE_COLUMNS:
                raise RecordError(f"{path}: unexpected columns")
            seqs, times, lengths, digests, events = [], [], [], [], []
            for line in fh:
                kind, seq, t, length, digest, eid, port = line.rstrip("\n").split(",")
                if kind == "chunk":
                    seqs.append(int(seq))
                    times.append(float(t))
                    lengths.append(int(length))
                    digests.append(int(digest, 16))
                else:
                    events.append(Event(float(t), kind, eid, int(port), int(seq)))
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise RecordError(f"{path}: malformed ({exc})") from None
    return SourceRecord(meta, np.array(seqs, dtype=np.int64), np.array(times, dtype=np.float64),
                        np.array(lengths, dtype=np.int64), np.array(digests, dtype=np.uint64), events)


@dataclass
class Receipts:
    """Datagrams received for one EID, in arrival order."""

    times: np.ndarray
    lengths: np.ndarray
    digests: np.ndarray  # uint64

    def __len__(self) -> int:
        return len(self.times)


def read_client_file(path: str) -> tuple[dict, np.ndarray]:
    """Return (header meta, structured array of CLIENT_DTYPE) of one client record file.

    A trailing partial record (a killed client) is ignored.
    """
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
            if not first.startswith(CLIENT_MAGIC):
                raise RecordError(f"{path} is not a client record")
            meta = json.loads(first[len(CLIENT_MAGIC):])
            body = fh.read()
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise RecordError(f"{path}: malformed header ({exc})") from None
    usable = len(body) - len(body) % CLIENT_DTYPE.itemsize
    return meta, np.frombuffer(body[:usable], dtype=CLIENT_DTYPE)


def read_client_records(paths: str | Iterable[str]) -> dict[str, Receipts]:
    """Read one or more client record files; return the receipts per destination EID (dotted quad)."""
    if isinstance(paths, str):
        paths = [paths]
    arrays = [read_client_file(p)[1] for p in paths]
    if not arrays:
        return {}
    recs = np.concatenate(arrays)
    order = np.lexsort((recs["t"], recs["eid"]))
    recs = recs[order]
    out: dict[str, Receipts] = {}
    if len(recs) == 0:
        return out
    eids = recs["eid"]
    bounds = np.flatnonzero(np.diff(eids)) + 1
    for part in np.split(recs, bounds):
        eid = socket.inet_ntoa(int(part["eid"][0]).to_bytes(4, "big"))
        out[eid] = Receipts(part["t"].copy(), part["len"].astype(np.int64), part["digest"].astype(np.uint64))
    return out


# --------------------------------------------------------------------------- verification

@dataclass
class EidDelivery:
    """Delivery of the stream to one EID.

    ``delivered``: expected chunks received (each counted once, in order or not);
    ``out_of_order``: of those, received after a later chunk; ``lost`` = expected -
    delivered; ``corrupt``: datagrams whose digest the source never sent;
    ``duplicates``: extra copies of delivered chunks; ``unexpected``: chunks the
    source sent but not to this EID; ``exact``: the received digest sequence equals
    the expected one byte for byte; ``join_delays``: per join, (join time, first
    arrival at or after it, or None).
    """

    eid: str
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    corrupt: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    unexpected: int = 0
    received: int = 0
    exact: bool = False
    join_delays: list[tuple[float, float | None]] = field(default_factory=list)


@dataclass
class DeliveryReport:
    """Per-EID deliveries and their totals (the experiments' delivered/expected/corrupt columns)."""

    eids: dict[str, EidDelivery]
    extra_eids: list[str]

    def _sum(self, name: str) -> int:
        return sum(getattr(d, name) for d in self.eids.values())

    @property
    def expected_chunks(self) -> int:
        """Sum of expected chunks over the EIDs."""
        return self._sum("expected")

    @property
    def delivered_chunks(self) -> int:
        """Sum of delivered chunks."""
        return self._sum("delivered")

    @property
    def corrupt_chunks(self) -> int:
        """Sum of corrupt datagrams."""
        return self._sum("corrupt")

    @property
    def all_exact(self) -> bool:
        """True if every EID's digest sequence equals the source's, and no stray EID got traffic."""
        return all(d.exact for d in self.eids.values()) and not self.extra_eids

    def totals(self) -> dict:
        """Return the summed counters as a dict."""
        names = ("expected", "delivered", "lost", "corrupt", "out_of_order", "duplicates", "unexpected",
                 "received")
        out = {n: self._sum(n) for n in names}
        out.update(eids=len(self.eids), exact_eids=sum(d.exact for d in self.eids.values()),
                   extra_eids=len(self.extra_eids), all_exact=self.all_exact)
        return out

    def as_dict(self) -> dict:
        """Return totals and per-EID rows as JSON-able data."""
        return {"totals": self.totals(), "extra_eids": self.extra_eids,
                "eids": {e: vars(d).copy() for e, d in self.eids.items()}}


def first_arrival_after(receipts: Receipts, t: float) -> float | None:
    """Return the first arrival time >= ``t`` (receipts are in arrival order), or None."""
    i = int(np.searchsorted(receipts.times, t, side="left"))
    return float(receipts.times[i]) if i < len(receipts.times) else None


def _match(expected: np.ndarray, received: np.ndarray, sent: set[int], row: EidDelivery) -> None:
    """Align ``received`` digests against ``expected`` ones, filling ``row``'s counters."""
    if len(expected) == len(received) and np.array_equal(expected, received):
        row.delivered = len(expected)
        row.exact = True
        return
    positions: dict[int, list[int]] = {}
    for i, d in enumerate(expected.tolist()):
        positions.setdefault(d, []).append(i)
    matched = bytearray(len(expected))
    ptr = 0
    for d in received.tolist():
        plist = positions.get(d)
        if plist is None:
            if d in sent:
                row.unexpected += 1
            else:
                row.corrupt += 1
            continue
        i = bisect.bisect_left(plist, ptr)
        if i < len(plist):  # positions >= ptr are never matched yet
            p = plist[i]
            matched[p] = 1
            row.delivered += 1
            ptr = p + 1
            continue
        for p in reversed(plist):
            if not matched[p]:
                matched[p] = 1
                row.delivered += 1
                row.out_of_order += 1
                break
        else:
            row.duplicates += 1


def verify(source: SourceRecord, client_records_by_eid: dict[str, Receipts],
           expected_eids: Iterable[str], port: int | None = None) -> DeliveryReport:
    """Check every expected EID's receipts against what the source sent it.

    The chunks an EID should get follow from the source's join/leave events
    (restricted to ``port`` if given). EIDs with receipts but not in
    ``expected_eids`` are listed in ``extra_eids``.
    """
    sent = set(source.digests.tolist())
    empty = Receipts(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64))
    rows: dict[str, EidDelivery] = {}
    for eid in expected_eids:
        rec = client_records_by_eid.get(eid, empty)
        expected = source.digests[source.expected_mask(eid, port)]
        row = EidDelivery(eid, expected=len(expected), received=len(rec))
        _match(expected, rec.digests, sent, row)
        row.lost = row.expected - row.delivered
        row.join_delays = [(t, first_arrival_after(rec, t)) for t in source.join_times(eid, port)]
        rows[eid] = row
    extra = sorted(set(client_records_by_eid) - set(rows))
    return DeliveryReport(rows, extra)
