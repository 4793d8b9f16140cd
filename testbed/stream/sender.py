"""Per chunk, the datagrams the source sends, in mode ``unicast`` or ``corecast`` (sans-I/O).

* unicast: one UDP datagram per destination, payload = the chunk
  (IP total length 28 + P on the wire).
* corecast: one DATA message (12-byte header + chunk, 40 + P on the wire) to the
  ITR's CoreCast service address, then one 32-byte REF per destination
  (60 bytes on the wire) naming the chunk hash, the source EID/port and the
  client EID/port, also to the service address.

* corecast-batch (issue 15): as corecast, each REF with flag B (0x40): the ITR
  may batch the REFs of one chunk into one REF-LIST per ETR.
* corecast-src (issue 15): the DATA, then per capable ETR its REF-LISTs (split
  at 238 entries, each sent as a REF-MAP when that is shorter, the first with
  flag D, each naming the ETR's RLOC), all to the
  service address; REFs with flag B for clients not resolved yet; a unicast
  datagram per client of a non-capable site. The grouping comes from
  :attr:`Sender.resolve` (:meth:`testbed.stream.srcmap.MapperSocket.group`).
* lispmc (RFC 8378) and ipmc (native PIM-SSM): one datagram per chunk to the SSM group
  (``service`` is the group address and port), whatever the destinations: the network replicates.

All datagrams of a chunk are returned in the order they must go out.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Sequence

from testbed.wire.constants import CORECAST_PORT, IPV4_HEADER, UDP_HEADER
from testbed.wire.corecast import (FLAG_BATCH, FLAG_DATA_FIRST, FLAG_LAST_REF, chunk_hash, encode_data,
                                   encode_ref, encode_ref_messages, ref_list_capacity)

MODES = ("unicast", "corecast", "corecast-batch", "corecast-src", "lispmc", "ipmc")
Datagram = tuple[bytes, str, int]
"""(UDP payload, destination IP, destination UDP port)."""


@dataclass
class SenderCounters:
    """What a :class:`Sender` produced, by kind (``bytes`` are UDP payload bytes, ``ip_bytes`` IP total lengths)."""

    chunks: int = 0
    datagrams: int = 0
    bytes: int = 0
    ip_bytes: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, payload_len: int) -> None:
        """Count one datagram of ``kind`` with a UDP payload of ``payload_len`` bytes."""
        self.datagrams += 1
        self.bytes += payload_len
        self.ip_bytes += payload_len + IPV4_HEADER + UDP_HEADER
        row = self.by_kind.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += payload_len

    def as_dict(self) -> dict:
        """Return the counters as plain JSON-able data."""
        return {"chunks": self.chunks, "datagrams": self.datagrams, "bytes": self.bytes,
                "ip_bytes": self.ip_bytes,
                "by_kind": {k: {"datagrams": v[0], "bytes": v[1]} for k, v in self.by_kind.items()}}


class Sender:
    """Build the datagrams of each chunk for one stream."""

    def __init__(self, mode: str, *, src_eid: str, src_port: int, stream_id: int = 1,
                 service: tuple[str, int] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode != "unicast" and service is None:
            raise ValueError(f"{mode} mode needs the ITR's service address")
        self.ref_flags = FLAG_BATCH if mode in ("corecast-batch", "corecast-src") else 0
        self.resolve = None
        """corecast-src: destinations -> (lists by ETR RLOC, non-capable, unresolved) (see testbed.stream.srcmap)."""
        self.list_capacity = ref_list_capacity()
        self.mode = mode
        self.stream_id = stream_id
        self.src_eid = src_eid
        self.src_port = src_port
        self._src_raw = socket.inet_aton(src_eid)
        self.service = (service[0], int(service[1] or CORECAST_PORT)) if service else None
        self.counters = SenderCounters()
        self._raw_cache: dict[str, bytes] = {}

    def datagrams(self, seq: int, chunk: bytes, destinations: Sequence[tuple[str, int]],
                  digest: bytes | None = None) -> list[Datagram]:
        """Return the datagrams for chunk ``seq`` to ``destinations`` and count them.

        ``digest`` may pass a precomputed :func:`chunk_hash` of ``chunk``.
        """
        self.counters.chunks += 1
        if self.mode in ("lispmc", "ipmc"):
            self.counters.add("multicast", len(chunk))
            return [(chunk, *self.service)]
        if self.mode == "unicast":
            out = [(chunk, eid, port) for eid, port in destinations]
            for _ in out:
                self.counters.add("unicast", len(chunk))
            return out
        wire_seq = seq & 0xFFFFFFFF
        digest = digest if digest is not None else chunk_hash(chunk)
        addr, port = self.service
        data = encode_data(self.stream_id, wire_seq, chunk)
        out = [(data, addr, port)]
        self.counters.add("data", len(data))
        if self.mode == "corecast-src":
            if self.resolve is None:
                raise ValueError("corecast-src needs Sender.resolve")
            lists, unicast, destinations = self.resolve(destinations)
            for rloc, entries in lists.items():
                for msg in encode_ref_messages(self.stream_id, wire_seq, digest, socket.inet_aton(rloc),
                                               self._src_raw, self.src_port, entries, self.list_capacity,
                                               FLAG_DATA_FIRST):
                    out.append((msg, addr, port))
                    self.counters.add("ref-list", len(msg))
            for eid, dport in unicast:
                out.append((chunk, eid, dport))
                self.counters.add("unicast", len(chunk))
        cache = self._raw_cache
        flags = self.ref_flags
        last = len(destinations) - 1
        for i, (eid, dport) in enumerate(destinations):
            raw = cache.get(eid)
            if raw is None:
                raw = cache[eid] = socket.inet_aton(eid)
            if i == last and flags:  # batchable: the chunk's last REF lets the ITR send its lists at once
                flags |= FLAG_LAST_REF
            ref = encode_ref(self.stream_id, wire_seq, digest, self._src_raw, raw, self.src_port, dport, flags)
            out.append((ref, addr, port))
        if destinations:
            c = self.counters
            row = c.by_kind.setdefault("ref", [0, 0])
            n = len(destinations)
            row[0] += n
            row[1] += 32 * n
            c.datagrams += n
            c.bytes += 32 * n
            c.ip_bytes += (32 + IPV4_HEADER + UDP_HEADER) * n
        return out
