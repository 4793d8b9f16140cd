"""CoreCast in the ITR, sans-I/O: DATA once per ETR, one REF per client (DESIGN section 3).

The streaming source S sends CoreCast messages as UDP to the ITR's service
address; the node program hands each UDP payload to
:meth:`CoreCastItr.on_service_message` with S's address and whether it arrived
on the xTR's EID-side LAN interface (IP_PKTINFO). With ``defence`` on (the
default) a message that did not is dropped ('cc-not-lan'): it came from the
core, from the xTR itself, or was decapsulated from LISP and written to the
TUN (an outsider's packet to the service address). Off only for the attack
experiment (docs/security.md).

* DATA from an allowed source: hash the chunk, cache it as the current chunk of
  (S, stream), replacing the previous one; forward nothing.
* REF: the hash must be the current chunk's ('no-chunk', 'stale-ref' otherwise);
  the destination EID is resolved through the map-cache (miss: RESOLVE and a
  bounded queue, as in :class:`testbed.lisp.dataplane.Itr`). A CoreCast-capable
  site gets, behind a LISP header with the N and C bits, the DATA first if its
  ETR does not hold this chunk yet (48+P bytes on the core), then the REF as
  received (68 bytes). A non-capable site gets the unicast packet the source
  would have sent, LISP-encapsulated like any unicast traffic (64+P bytes).

Batching (``batch_delay`` set, mode ``corecast-batch``, issue 15): a checked REF
with flag B (the source asks for batching) to a capable site is not sent alone but added to the open REF-LIST of (stream,
ETR RLOC) for its chunk and Source EID/port (DATA still goes first, at once).
A list is flushed when the next DATA of the stream arrives, when it holds
``ref_list_capacity(outer_mtu)`` entries, when a REF for another chunk or
source needs its ETR, or when no REF joined it for ``batch_delay`` seconds
(an idle timer: a burst of REFs stays in one list however long it lasts), or at
the latest ``10 x batch_delay`` after its first entry (:meth:`poll`;
:meth:`next_deadline` tells the node loop when). What batching adds to the
delivery delay is counted: 'list-hold-us' (sum over lists of the time from their
first entry to their flush, microseconds) and 'list-hold-max-us'.

A list is sent as a REF-MAP (type 4, a bitmap of the ETR's EIDs) when that is shorter.

REF-LIST or REF-MAP from the source (mode ``corecast-src``): the source resolved its
clients itself and names each list's ETR RLOC. The list's hash must be the
current chunk's and its Source EID allowed; the ITR sends the current DATA
first if the list's D flag asks, then the list as received, both to the named
RLOC: no map-cache lookup and no per-ETR state ('list-fwd', 'list-no-etr').

Which chunk each ETR holds is tracked per stream as ``{rloc: chunk generation}``:
that is the "set of ETRs that have the current chunk", reset implicitly when a new
chunk arrives, and it stays right when a queued REF of an older chunk is flushed
late (the old DATA is resent first, and the current one again on the next REF).
"""

from __future__ import annotations

import itertools
import struct

from testbed.lisp.corecast_etr import itr_max_chunk, unicast_packet
from testbed.lisp.dataplane import RESOLVE, SEND_RAW, Encapsulator, sum16
from testbed.lisp.pending import PendingQueues
from testbed.lisp.prefixes import mask, parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire.constants import CORECAST_HEADER, CORECAST_REF, LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.corecast import (FLAG_BATCH, FLAG_DATA_FIRST, FLAG_LAST_REF, REF_LIST_ENTRY, REF_LIST_HEADER,
                                   REF_MAP_HEADER, TYPE_DATA, TYPE_REF, TYPE_REF_LIST, TYPE_REF_MAP, VERSION,
                                   chunk_hash, compact_ref_list, error_reason, ref_list_capacity, ref_map_fault)
from testbed.wire.ipv4 import PROTO_UDP

_REF = struct.Struct("!BBHII8sIIHH")  # testbed.wire.corecast's REF, EIDs as integers
_DATA_HDR = struct.Struct("!BBHI")
_REF_FIRST = (VERSION << 4) | TYPE_REF
_DATA_FIRST = (VERSION << 4) | TYPE_DATA
_LIST_FIRST = (VERSION << 4) | TYPE_REF_LIST
_MAP_FIRST = (VERSION << 4) | TYPE_REF_MAP
_CC_FLAGS = LISP_FLAG_N | LISP_FLAG_C
_ENTRY = struct.Struct("!IH")
_LIST_TAIL = struct.Struct("!IHH")  # Source EID, Source Port, Count


class _OpenList:
    """A REF-LIST being filled for one (stream, ETR RLOC): its chunk, source, entries and start time."""

    __slots__ = ("cur", "src", "sport", "osport", "entries", "count", "since", "last")

    def __init__(self, cur: "_Chunk", src: int, sport: int, osport: int, since: float) -> None:
        self.cur, self.src, self.sport, self.osport, self.since = cur, src, sport, osport, since
        self.last = since
        self.entries = bytearray()
        self.count = 0


class _Chunk:
    """One chunk of a stream as received: generation, DATA message, hash, content, checksum sum."""

    __slots__ = ("gen", "msg", "digest", "chunk", "csum")

    def __init__(self, gen: int, msg: bytes, digest: bytes, chunk: bytes, csum: int) -> None:
        self.gen, self.msg, self.digest, self.chunk, self.csum = gen, msg, digest, chunk, csum


class _Stream:
    """A stream of one source: its current chunk, flow hash, and which chunk each ETR holds."""

    __slots__ = ("cur", "hash", "held")

    def __init__(self, cur: _Chunk, flow: int) -> None:
        self.cur = cur
        self.hash = flow
        self.held: dict[str, int] = {}


class CoreCastItr:
    """The CoreCast half of an ITR (see the module docstring).

    ``allowed_sources``: prefixes whose hosts may use the service; a REF's Source
    EID must be the sender or inside them too. ``max_streams`` bounds the cached
    streams (a new one evicts the oldest, 'stream-evicted'). A DATA whose chunk
    could not cross the core in either form (64 + P > ``outer_mtu``) is dropped.
    ``defence``: drop service messages that did not arrive on the LAN ('cc-not-lan').
    """

    def __init__(self, own_rloc: str, map_cache: MapCache, allowed_sources: list[str], queue_limit: int = 64, *,
                 outer_mtu: int = 1500, max_pending: int = 1024, pending_timeout: float = 5.0,
                 max_streams: int = 1024, encap: Encapsulator | None = None, defence: bool = True,
                 batch_delay: float | None = None) -> None:
        self.map_cache = map_cache
        self.encap = encap if encap is not None else Encapsulator(own_rloc, outer_mtu)
        self.allowed = tuple((net, mask(plen)) for net, plen in map(parse_prefix, allowed_sources))
        self.max_streams = max_streams
        self.defence = defence
        self.max_chunk = itr_max_chunk(self.encap.outer_mtu)
        if batch_delay is not None and batch_delay < 0:
            raise ValueError(f"batch_delay {batch_delay} < 0")
        self.batch_delay = batch_delay
        self.list_capacity = ref_list_capacity(self.encap.outer_mtu)
        self._lists: dict[tuple[int, str], _OpenList] = {}  # (id of the _Stream, ETR RLOC) -> open list
        self.counters: dict[str, int] = dict.fromkeys((
            "cc-not-lan", "data-in", "ref-in", "source-not-allowed", "ref-src-not-allowed", "chunk-too-big", "no-chunk",
            "stale-ref", "cache-hit", "cache-miss", "flushed", "negative", "no-rloc", "data-sent", "ref-sent",
            "unicast-sent", "stream-evicted", "decode-truncated", "decode-bad-version", "decode-bad-length",
            "decode-unknown-type", "list-sent", "list-entries", "list-in", "list-fwd", "list-no-etr", "data-repeat",
            "list-too-long", "list-hold-us", "list-hold-max-us"), 0)
        self.pending = PendingQueues(self.counters, queue_limit, max_pending, pending_timeout)
        self._streams: dict[tuple[bytes, int], _Stream] = {}
        self._source_ok: dict[bytes, bool] = {}
        self._gen = itertools.count(1)
        self._memo: tuple = (None, None, -1, None)  # (entry, its rlocs list, flow hash, RLOC): see _send
        self._now = 0.0

    def _allowed(self, addr: int) -> bool:
        """True if ``addr`` is inside an allowed source prefix."""
        for net, m in self.allowed:
            if addr & m == net:
                return True
        return False

    def on_service_message(self, msg: bytes | memoryview, src_ip_bytes4: bytes, now: float,
                           on_lan: bool = True) -> list[tuple]:
        """Handle one UDP payload received on the service address from ``src_ip_bytes4``.

        ``on_lan``: it arrived on the xTR's EID-side LAN interface (not the core, the TUN or lo).
        """
        if not on_lan and self.defence:
            self.counters["cc-not-lan"] += 1
            return []
        self._now = now
        ok = self._source_ok.get(src_ip_bytes4)
        if ok is None:
            if len(self._source_ok) >= 4096:
                self._source_ok.clear()
            ok = self._source_ok[bytes(src_ip_bytes4)] = (
                len(src_ip_bytes4) == 4 and self._allowed(int.from_bytes(src_ip_bytes4, "big")))
        if not ok:
            self.counters["source-not-allowed"] += 1
            return []
        n = len(msg)
        if n == CORECAST_REF and msg[0] == _REF_FIRST:
            return self._ref(msg, src_ip_bytes4, now)
        if n >= CORECAST_HEADER and msg[0] == _DATA_FIRST:
            return self._data(msg, src_ip_bytes4)
        if n > REF_LIST_HEADER and msg[0] == _LIST_FIRST:
            count = (msg[30] << 8) | msg[31]
            if count and n == REF_LIST_HEADER + REF_LIST_ENTRY * count:
                return self._src_list(msg, count, src_ip_bytes4)
        elif n > REF_MAP_HEADER and msg[0] == _MAP_FIRST and ref_map_fault(msg) is None:
            return self._src_list(msg, (msg[38] << 8) | msg[39], src_ip_bytes4)  # REF-MAP: same fields to byte 30
        key = "decode-" + error_reason(msg)
        self.counters[key] = self.counters.get(key, 0) + 1
        return []

    def _data(self, msg: bytes | memoryview, src4: bytes) -> list[tuple]:
        """A DATA: make its chunk the current one of (source, stream); flush the stream's open lists."""
        counters = self.counters
        counters["data-in"] += 1
        msg = bytes(msg)
        chunk = msg[CORECAST_HEADER:]
        if len(chunk) > self.max_chunk:
            counters["chunk-too-big"] += 1
            return []
        stream_id = _DATA_HDR.unpack_from(msg, 0)[3]
        cur = _Chunk(next(self._gen), msg, chunk_hash(chunk), chunk, sum16(chunk))
        key = (bytes(src4), stream_id)
        stream = self._streams.get(key)
        if stream is not None:
            out = self._flush_stream(stream) if self._lists else []
            stream.cur = cur
            return out
        out = []
        if len(self._streams) >= self.max_streams:
            old = self._streams.pop(next(iter(self._streams)))
            out = self._flush_stream(old) if self._lists else []
            counters["stream-evicted"] += 1
        self._streams[key] = _Stream(cur, hash((int.from_bytes(src4, "big"), stream_id)) & 0x7FFFFFFF)
        return out

    def _src_list(self, msg: bytes | memoryview, count: int, src4: bytes) -> list[tuple]:
        """A REF-LIST from the source naming its ETR: DATA first if flagged, then the list, to that RLOC."""
        counters = self.counters
        counters["list-in"] += 1
        if count > self.list_capacity:
            counters["list-too-long"] += 1
            return []
        stream = self._streams.get((src4, int.from_bytes(msg[4:8], "big")))
        if stream is None:
            counters["no-chunk"] += 1
            return []
        cur = stream.cur
        if cur.digest != msg[12:20]:
            counters["stale-ref"] += 1
            return []
        src = int.from_bytes(msg[24:28], "big")
        if src != int.from_bytes(src4, "big") and not self._allowed(src):
            counters["ref-src-not-allowed"] += 1
            return []
        etr = msg[20:24]
        if etr == b"\0\0\0\0":
            counters["list-no-etr"] += 1
            return []
        rloc = "%d.%d.%d.%d" % tuple(etr)
        encap = self.encap
        osport = 0xC000 | (stream.hash & 0x3FFF)
        out = []
        if msg[1] & FLAG_DATA_FIRST:  # at most once per ETR and chunk, as on the REF path (held)
            held = stream.held
            if held.get(rloc) == cur.gen:
                counters["data-repeat"] += 1
            else:
                if len(held) >= 4096:
                    held.clear()
                held[rloc] = cur.gen
                counters["data-sent"] += 1
                out.append((SEND_RAW, rloc, encap.header(rloc, len(cur.msg), osport, 0, 64, _CC_FLAGS) + cur.msg))
        body = bytes(msg)
        if body[1]:
            body = body[:1] + b"\0" + body[2:]  # the D flag is for the ITR only
        counters["list-fwd"] += 1
        counters["list-entries"] += count
        out.append((SEND_RAW, rloc, encap.header(rloc, len(body), osport, 0, 64, _CC_FLAGS) + body))
        return out

    def _list_message(self, lst: _OpenList, rloc: str) -> tuple:
        """The SEND_RAW action of an open list (LISP header, C bit, REF-LIST)."""
        cur = lst.cur
        msg = (bytes((_LIST_FIRST, 0, 0, 0)) + cur.msg[4:12] + cur.digest + bytes(map(int, rloc.split(".")))
               + _LIST_TAIL.pack(lst.src, lst.sport, lst.count) + lst.entries)
        msg = compact_ref_list(msg)  # the REF-MAP of the same destinations if shorter
        counters = self.counters
        counters["list-sent"] += 1
        counters["list-entries"] += lst.count
        hold = int((self._now - lst.since) * 1e6)
        counters["list-hold-us"] += hold
        if hold > counters["list-hold-max-us"]:
            counters["list-hold-max-us"] = hold
        return (SEND_RAW, rloc, self.encap.header(rloc, len(msg), lst.osport, 0, 64, _CC_FLAGS) + msg)

    def _flush_stream(self, stream: _Stream) -> list[tuple]:
        """Send and close every open list of ``stream``."""
        sid = id(stream)
        keys = [k for k, lst in self._lists.items() if k[0] == sid]
        return [self._list_message(self._lists.pop(k), k[1]) for k in keys]

    def next_deadline(self) -> float:
        """When :meth:`poll` next has a list to flush (monotonic seconds; inf if none is open)."""
        if not self._lists:
            return float("inf")
        delay = self.batch_delay or 0.0
        return min(min(lst.last + delay, lst.since + 10 * delay) for lst in self._lists.values())

    def poll(self, now: float) -> list[tuple]:
        """Flush the lists open for ``batch_delay`` seconds or more."""
        if not self._lists:
            return []
        self._now = now
        delay = self.batch_delay or 0.0
        keys = [k for k, lst in self._lists.items() if lst.last + delay <= now or lst.since + 10 * delay <= now]
        return [self._list_message(self._lists.pop(k), k[1]) for k in keys]

    def flush(self) -> list[tuple]:
        """Send every open list now (shutdown, tests)."""
        keys = list(self._lists)
        return [self._list_message(self._lists.pop(k), k[1]) for k in keys]

    def _ref(self, msg: bytes | memoryview, src4: bytes, now: float) -> list[tuple]:
        """A REF: check it against the current chunk, resolve the client's site, send."""
        counters = self.counters
        counters["ref-in"] += 1
        _f, _fl, _r, stream_id, _seq, digest, src, dst, sport, dport = _REF.unpack_from(msg, 0)
        stream = self._streams.get((src4, stream_id))
        if stream is None:
            counters["no-chunk"] += 1
            return []
        cur = stream.cur
        if cur.digest != digest:
            counters["stale-ref"] += 1
            return []
        if src != int.from_bytes(src4, "big") and not self._allowed(src):
            counters["ref-src-not-allowed"] += 1
            return []
        entry = self.map_cache.lookup(dst, now)
        if entry is None:
            counters["cache-miss"] += 1
            if self.pending.add(dst, (stream, cur, bytes(msg), src, sport, dport), now):
                return [(RESOLVE, dst)]
            return []
        counters["cache-hit"] += 1
        return self._send(entry, stream, cur, msg, src, dst, sport, dport)

    def _send(self, entry: MapEntry, stream: _Stream, cur: _Chunk, msg: bytes | memoryview, src: int, dst: int,
              sport: int, dport: int) -> list[tuple]:
        """Forward one checked REF along ``entry``: CoreCast to a capable site, unicast otherwise."""
        counters = self.counters
        if entry.negative:
            counters["negative"] += 1
            return []
        encap = self.encap
        memo = self._memo  # the last capable entry's choice: one REF per client, clients mostly behind one ETR
        if memo[0] is entry and memo[1] is entry.rlocs and memo[2] == stream.hash:
            rloc = memo[3]
        elif entry.corecast:
            rloc = entry.choose(stream.hash)
            if rloc is None:
                counters["no-rloc"] += 1
                return []
            self._memo = (entry, entry.rlocs, stream.hash, rloc)
        else:
            rloc = None
        if rloc is not None:
            osport = 0xC000 | (stream.hash & 0x3FFF)
            if self.batch_delay is not None and msg[1] & FLAG_BATCH:
                out = self._batch(stream, cur, rloc, osport, src, dst, sport, dport)
                if msg[1] & FLAG_LAST_REF and not len(self.pending):  # every REF of the chunk is in a list
                    out += self._flush_stream(stream)
                return out
            ref = (SEND_RAW, rloc, encap.header(rloc, CORECAST_REF, osport, 0, 64, _CC_FLAGS) + msg)
            counters["ref-sent"] += 1
            held = stream.held
            if held.get(rloc) == cur.gen:
                return [ref]
            if len(held) >= 4096:
                held.clear()
            held[rloc] = cur.gen
            counters["data-sent"] += 1
            return [(SEND_RAW, rloc, encap.header(rloc, len(cur.msg), osport, 0, 64, _CC_FLAGS) + cur.msg), ref]
        # not capable: exactly what the Itr would make of the source's unicast datagram
        h = hash((src, dst, PROTO_UDP, (sport << 16) | dport)) & 0x7FFFFFFF
        rloc = entry.choose(h)
        if rloc is None:
            counters["no-rloc"] += 1
            return []
        inner = unicast_packet(src, dst, sport, dport, cur.chunk, cur.csum)
        counters["unicast-sent"] += 1
        return [(SEND_RAW, rloc, encap.header(rloc, len(inner), 0xC000 | (h & 0x3FFF), 0, 64) + inner)]

    def _batch(self, stream: _Stream, cur: _Chunk, rloc: str, osport: int, src: int, dst: int, sport: int,
               dport: int) -> list[tuple]:
        """Add a checked REF to the open list of (stream, ``rloc``); DATA first if the ETR lacks the chunk."""
        out: list[tuple] = []
        key = (id(stream), rloc)
        lst = self._lists.get(key)
        if lst is not None and (lst.cur is not cur or lst.src != src or lst.sport != sport):
            out.append(self._list_message(self._lists.pop(key), rloc))  # before the ETR's chunk changes
            lst = None
        held = stream.held
        if held.get(rloc) != cur.gen:
            if len(held) >= 4096:
                held.clear()
            held[rloc] = cur.gen
            self.counters["data-sent"] += 1
            out.append((SEND_RAW, rloc, self.encap.header(rloc, len(cur.msg), osport, 0, 64, _CC_FLAGS) + cur.msg))
        if lst is None:
            lst = self._lists[key] = _OpenList(cur, src, sport, osport, self._now)
        lst.entries += _ENTRY.pack(dst, dport)
        lst.count += 1
        lst.last = self._now
        if lst.count >= self.list_capacity:
            out.append(self._list_message(self._lists.pop(key), rloc))
        return out

    def on_resolved(self, eid: int, entry: MapEntry | None, now: float) -> list[tuple]:
        """Send the REFs queued for ``eid`` (and other pending EIDs ``entry`` covers), or drop them.

        A queued REF keeps its chunk, so it is delivered even if newer chunks came meanwhile.
        """
        self._now = now
        actions: list[tuple] = []
        for one, (stream, cur, msg, src, sport, dport) in self.pending.release(eid, entry):
            self.counters["flushed"] += 1
            actions += self._send(entry, stream, cur, msg, src, one, sport, dport)
        return actions

    def expire(self, now: float) -> int:
        """Drop queued REFs waiting too long for a resolution; return how many."""
        return self.pending.expire(now)

    def __len__(self) -> int:
        return len(self._streams)
