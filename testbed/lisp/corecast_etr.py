"""CoreCast in the ETR, sans-I/O: turn REFs back into the unicast packets they stand for.

A LISP data packet with the C bit carries a CoreCast message (DESIGN section 3);
:class:`testbed.lisp.dataplane.Etr` hands it here with the outer source RLOC.

* DATA: hash the chunk and cache it as the current chunk of (ITR RLOC, stream),
  replacing the previous one: one chunk per (ITR, stream), memory stays flat.
* REF: if the destination EID is one of ours and the hash equals the cached chunk
  of (ITR, stream), return ``(WRITE_TUN, IP(src=Source EID, dst=Destination EID,
  TTL 64)/UDP(sport, dport, checksum)/chunk)``: byte for byte what
  ``testbed.wire.ipv4.build_ipv4_udp`` builds, i.e. what the source's unicast
  datagram looks like when the unicast ETR decapsulates it.

Defence (``defence=True``, the default; docs/security.md, "Data-plane defence"):
CoreCast is taken only from ITRs the mapping system vouches for. A REF is
expanded only if its outer source RLOC is a locator with the CoreCast flag of
the map-cache entry covering the REF's Source EID (:meth:`MapEntry.vouches`);
on a miss the REF waits in a bounded queue (with its chunk) and a
``(RESOLVE, source EID)`` action asks the mapping system. An RLOC vouched for
by some entry is a *vouched ITR* until that entry expires; DATA from any other
RLOC only enters a small separate quarantine (bounded in total and per RLOC)
and is promoted when a REF from that RLOC is vouched for. Chunks longer than
``max_chunk`` (default: what the ITR sends, outer MTU - 64) are dropped.
Drops by reason: 'cc-unknown-itr' (the Source EID's mapping does not list the
RLOC and the RLOC is no vouched ITR), 'cc-source-mismatch' (a vouched ITR, but
the Source EID is outside the prefixes that vouch for it), 'cc-chunk-too-long',
'cc-quarantine-evicted', 'cc-ref-queue-overflow', 'cc-ref-pending-overflow',
'cc-ref-unresolved'. ``defence=False`` is the old behaviour (no vouching, chunks
up to 65,507 bytes, 'chunk-too-big'), kept only for the attack experiment.

REF-LIST (type 3) and REF-MAP (type 4) messages: :mod:`testbed.lisp.corecast_etr_lists`.
"""

from __future__ import annotations

import struct

from testbed.lisp.corecast_etr_lists import RefListExpansion
from testbed.lisp.dataplane import RESOLVE, WRITE_TUN, sum16
from testbed.lisp.prefixes import mask, parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.lisp.pending import PendingQueues
from testbed.wire.constants import CORECAST_HEADER, CORECAST_REF, ENCAP_OVERHEAD, IPV4_HEADER, UDP_HEADER
from testbed.wire.corecast import (REF_LIST_ENTRY, REF_LIST_HEADER, REF_MAP_HEADER, TYPE_DATA, TYPE_REF,
                                   TYPE_REF_LIST, TYPE_REF_MAP, VERSION, chunk_hash, error_reason, ref_list_capacity,
                                   ref_map_capacity, ref_map_fault)
from testbed.wire.ipv4 import PROTO_UDP

# testbed.wire.corecast's REF layout with the EIDs as integers (packed back with "I": same bytes)
_REF = struct.Struct("!BBHII8sIIHH")
_DATA_HDR = struct.Struct("!BBHI")
_IPUDP = struct.Struct("!BBHHHBBHIIHHHH")
_REF_FIRST = (VERSION << 4) | TYPE_REF
_DATA_FIRST = (VERSION << 4) | TYPE_DATA
_LIST_FIRST = (VERSION << 4) | TYPE_REF_LIST
_MAP_FIRST = (VERSION << 4) | TYPE_REF_MAP
_IP_CONST = 0x4500 + (64 << 8) + PROTO_UDP  # version/IHL, TTL 64 / UDP: the fixed IP header words
_UDP_MAX_PAYLOAD = 0xFFFF - IPV4_HEADER - UDP_HEADER  # 65,507


def itr_max_chunk(outer_mtu: int = 1500) -> int:
    """The longest chunk a CoreCast ITR forwards (bytes): its unicast form must fit one outer packet.

    ``outer_mtu - 36 (encapsulation) - 28 (inner IPv4 + UDP)``: 1,436 for an outer MTU of 1,500.
    """
    return outer_mtu - ENCAP_OVERHEAD - IPV4_HEADER - UDP_HEADER


class _Chunk:
    """The current chunk of one (ITR, stream): its hash, bytes and checksum partial sum."""

    __slots__ = ("digest", "chunk", "csum", "seq", "listed")

    def __init__(self, digest: bytes, chunk: bytes, csum: int, seq: int) -> None:
        self.digest, self.chunk, self.csum, self.seq = digest, chunk, csum, seq
        self.listed: set[tuple[int, int]] | None = None  # (dst, dport) already expanded from REF-LISTs


def unicast_packet(src: int, dst: int, sport: int, dport: int, chunk: bytes, chunk_sum: int) -> bytes:
    """Return IP(src, dst, TTL 64, ID 0)/UDP(sport, dport)/chunk with both checksums.

    ``chunk_sum`` is :func:`testbed.lisp.dataplane.sum16` of ``chunk`` (computed once per chunk).
    """
    udp_len = UDP_HEADER + len(chunk)
    total = IPV4_HEADER + udp_len
    ip_r = (_IP_CONST + total + src + dst) % 0xFFFF
    udp_r = (src + dst + PROTO_UDP + udp_len + udp_len + sport + dport + chunk_sum) % 0xFFFF
    return _IPUDP.pack(0x45, 0, total, 0, 0, 64, PROTO_UDP, (0xFFFF - ip_r) % 0xFFFF, src, dst,
                       sport, dport, udp_len, 0xFFFF - udp_r) + chunk


class CoreCastEtr(RefListExpansion):
    """The CoreCast half of a capable ETR (see the module docstring).

    ``map_cache``: the xTR's map-cache (needed when ``defence`` is on).
    ``max_streams`` bounds the vouched (ITR, stream) cache and ``max_streams_per_itr``
    each ITR's share of it: a new stream beyond its ITR's share evicts that ITR's
    oldest stream, and beyond the whole bound the oldest stream of the ITR holding
    the most ('stream-evicted'), so no ITR, vouched or spoofing a vouched RLOC, can
    push another ITR's streams out. ``quarantine`` and
    ``quarantine_per_rloc`` bound the DATA held from RLOCs not vouched for;
    ``queue_limit`` (REFs per Source EID), ``max_pending`` (Source EIDs) and
    ``pending_timeout`` (s) bound the REFs waiting for a Map-Reply.
    Raises ValueError if ``defence`` is on without a map-cache or a bound is < 1.
    """

    def __init__(self, own_eid_prefixes: list[str], map_cache: MapCache | None = None, *, defence: bool = True,
                 max_chunk: int | None = None, max_streams: int = 4096, max_streams_per_itr: int = 64,
                 quarantine: int = 64,
                 quarantine_per_rloc: int = 8, queue_limit: int = 4096, max_pending: int = 16,
                 pending_timeout: float = 5.0, max_list: int | None = None, max_list_fanout: int = 65536,
                 max_map_bits: int | None = None) -> None:
        if defence and map_cache is None:
            raise ValueError("the CoreCast ETR defence needs the map-cache")
        if min(max_streams, max_streams_per_itr, quarantine, quarantine_per_rloc) < 1:
            raise ValueError("CoreCast ETR bounds must be positive")
        self.prefixes = tuple((net, mask(plen)) for net, plen in map(parse_prefix, own_eid_prefixes))
        self.map_cache = map_cache
        self.defence = defence
        self.max_chunk = _UDP_MAX_PAYLOAD if not defence else (itr_max_chunk() if max_chunk is None else max_chunk)
        if not 0 < self.max_chunk <= _UDP_MAX_PAYLOAD:
            raise ValueError(f"max_chunk {self.max_chunk} not in 1..{_UDP_MAX_PAYLOAD}")
        self.max_streams, self.max_streams_per_itr = max_streams, max_streams_per_itr
        self.max_list = ref_list_capacity() if max_list is None else max_list
        self.max_list_fanout = max_list_fanout
        self.max_map_bits = ref_map_capacity() if max_map_bits is None else max_map_bits
        if min(self.max_list, max_list_fanout, self.max_map_bits) < 1:
            raise ValueError("CoreCast ETR REF-LIST bounds must be positive")
        self.quarantine_max, self.quarantine_per_rloc = quarantine, quarantine_per_rloc
        self.counters: dict[str, int] = dict.fromkeys((
            "data-in", "ref-in", "delivered", "no-chunk", "hash-mismatch", "foreign-eid", "stream-evicted",
            "decode-truncated", "decode-bad-version", "decode-bad-length", "decode-unknown-type",
            "chunk-too-big", "cc-unknown-itr", "cc-source-mismatch", "cc-chunk-too-long", "cc-quarantined",
            "cc-quarantine-evicted", "cc-promoted", "cc-ref-flushed", "list-in", "list-entries", "cc-list-too-long",
            "cc-list-repeat", "cc-lookup-limited", "map-in"), 0)
        self.pending = PendingQueues(self.counters, queue_limit, max_pending, pending_timeout, prefix="cc-ref-")
        self._streams: dict[tuple[str, int], _Chunk] = {}
        self._itr_streams: dict[str, dict[tuple[str, int], None]] = {}  # ITR RLOC -> its streams, oldest first
        self._quarantine: dict[tuple[str, int], _Chunk] = {}
        self._vouched: dict[str, float] = {}  # ITR RLOC -> until when the mapping system vouches for it
        self._memo: dict[int, tuple[str, MapEntry]] = {}  # Source EID -> (ITR RLOC, the entry that vouched)
        self._memo_gen = -1
        self._asked: dict[int, float] = {}  # Source EID -> until when a no-chunk REF's lookup stands

    def __len__(self) -> int:
        return len(self._streams)

    def on_message(self, msg: bytes | memoryview, itr_rloc: str, now: float) -> list[tuple]:
        """Handle one CoreCast message (the LISP payload after the header) from ``itr_rloc``."""
        n = len(msg)
        if n == CORECAST_REF and msg[0] == _REF_FIRST:
            return self._ref(msg, itr_rloc, now)
        if n >= CORECAST_HEADER and msg[0] == _DATA_FIRST:
            return self._data(msg, itr_rloc, now)
        if n > REF_LIST_HEADER and msg[0] == _LIST_FIRST:
            count = (msg[30] << 8) | msg[31]
            if count and n == REF_LIST_HEADER + REF_LIST_ENTRY * count:
                return self._ref_list(msg, count, itr_rloc, now)
        elif n > REF_MAP_HEADER and msg[0] == _MAP_FIRST and ref_map_fault(msg) is None:
            return self._ref_map(msg, itr_rloc, now)
        self._bad(msg)
        return []

    def _expand(self, stream: int, digest: bytes, src: int, sport: int, ours: list[tuple[int, int]], itr_rloc: str,
                now: float) -> list[tuple]:
        """The destinations ``ours`` (EID, port) of a REF-LIST or REF-MAP, all inside our prefixes: vouch for the
        ITR once, then one unicast datagram per destination not yet expanded for this chunk."""
        counters = self.counters
        if not ours:
            return []
        if self.defence:
            gen = self.map_cache.gen
            if self._memo_gen != gen:
                self._memo.clear()
                self._memo_gen = gen
            memo = self._memo.get(src)
            if memo is None or memo[0] != itr_rloc or memo[1].expires <= now:
                held = self._check_list(itr_rloc, stream, digest, src, sport, ours, now)
                if held is not None:
                    return held
        cur = self._streams.get((itr_rloc, stream))
        if cur is None:
            counters["no-chunk"] += len(ours)
            return []
        if cur.digest != digest:
            counters["hash-mismatch"] += len(ours)
            return []
        listed = cur.listed
        if listed is None:
            listed = cur.listed = set()
        out = []
        chunk, csum = cur.chunk, cur.csum
        for dst, dport in ours:
            key = (dst, dport)
            if key in listed or len(listed) >= self.max_list_fanout:
                counters["cc-list-repeat"] += 1
                continue
            listed.add(key)
            out.append((WRITE_TUN, unicast_packet(src, dst, sport, dport, chunk, csum)))
        counters["delivered"] += len(out)
        return out

    def _ref(self, msg: bytes | memoryview, itr_rloc: str, now: float) -> list[tuple]:
        """A REF: rebuild the unicast packet if its ITR is vouched for and we hold its chunk."""
        counters = self.counters
        counters["ref-in"] += 1
        _f, _fl, _r, stream, _seq, digest, src, dst, sport, dport = _REF.unpack_from(msg, 0)
        for net, m in self.prefixes:
            if dst & m == net:
                break
        else:
            counters["foreign-eid"] += 1
            return []
        if self.defence:
            gen = self.map_cache.gen
            if self._memo_gen != gen:
                self._memo.clear()
                self._memo_gen = gen
            memo = self._memo.get(src)
            if memo is None or memo[0] != itr_rloc or memo[1].expires <= now:
                held = self._check(itr_rloc, stream, digest, src, dst, sport, dport, now)
                if held is not None:
                    return held
        cur = self._streams.get((itr_rloc, stream))
        if cur is None:
            counters["no-chunk"] += 1
            return []
        if cur.digest != digest:
            counters["hash-mismatch"] += 1
            return []
        counters["delivered"] += 1
        return [(WRITE_TUN, unicast_packet(src, dst, sport, dport, cur.chunk, cur.csum))]

    def _check(self, itr_rloc: str, stream: int, digest: bytes, src: int, dst: int, sport: int, dport: int,
               now: float) -> list[tuple] | None:
        """Vouch for ``itr_rloc`` as a CoreCast ITR of ``src``: None if it is, else the REF's actions.

        A map-cache miss queues the REF with its chunk (from the vouched cache or the
        quarantine) and asks for ``src``'s mapping. A REF with no chunk is not queued,
        but still asks (once per pending EID; the control plane deduplicates and caches
        replies, negative ones too): if a flood of quarantined DATA evicted a new
        stream's first chunk, the ITR is vouched for one round trip later all the same.
        """
        cache = self.map_cache
        entry = cache.lookup(src, now)
        if entry is None:
            key = (itr_rloc, stream)
            snap = self._streams.get(key)
            if snap is None or snap.digest != digest:
                snap = self._quarantine.get(key)
                if snap is None or snap.digest != digest:
                    self.counters["no-chunk"] += 1
                    return self._ask(src, now)
            if self.pending.add(src, (itr_rloc, snap, dst, sport, dport), now):
                return [(RESOLVE, src)]
            return []
        if not entry.vouches(itr_rloc):
            self._reject(itr_rloc, now)
            return []
        self._vouch(itr_rloc, entry.expires, now)
        if self._memo_gen != cache.gen:  # the lookup may have dropped expired entries
            self._memo.clear()
            self._memo_gen = cache.gen
        if len(self._memo) >= 65536:
            self._memo.clear()
        self._memo[src] = (itr_rloc, entry)
        return None

    def _reject(self, itr_rloc: str, now: float, n: int = 1) -> None:
        """Count ``n`` REFs the mapping system does not vouch for, by reason."""
        reason = "cc-source-mismatch" if self._vouched.get(itr_rloc, 0.0) > now else "cc-unknown-itr"
        self.counters[reason] += n

    def _vouch(self, itr_rloc: str, until: float, now: float) -> None:
        """Record that the mapping system vouches for ``itr_rloc`` until ``until``; promote its quarantine."""
        vouched = self._vouched
        old = vouched.get(itr_rloc, 0.0)
        if old >= until:
            return
        if old == 0.0 and len(vouched) >= 4096:
            vouched.clear()
            self._memo.clear()
        vouched[itr_rloc] = until
        if old > now:
            return
        for key in [k for k in self._quarantine if k[0] == itr_rloc]:
            self._store(key, self._quarantine.pop(key))
            self.counters["cc-promoted"] += 1

    def _ask(self, src: int, now: float) -> list[tuple]:
        """The lookup a REF without its chunk asks for ``src``: at most ``max_pending`` Source EIDs per
        ``pending_timeout`` seconds (an outsider's REFs naming fresh Source EIDs cannot make the ETR a
        Map-Request generator); beyond that counted 'cc-lookup-limited'."""
        if src in self.pending:
            return []
        asked = self._asked
        if asked.get(src, 0.0) > now:
            return []
        if len(asked) >= self.pending.max_eids:
            for eid in [e for e, until in asked.items() if until <= now]:
                del asked[eid]
            if len(asked) >= self.pending.max_eids:
                self.counters["cc-lookup-limited"] += 1
                return []
        asked[src] = now + self.pending.timeout
        return [(RESOLVE, src)]

    def _store(self, key: tuple[str, int], chunk: _Chunk) -> None:
        """Make ``chunk`` the current chunk of a vouched (ITR, stream)."""
        streams = self._streams
        if key not in streams:
            per_itr = self._itr_streams
            mine = per_itr.setdefault(key[0], {})
            if len(mine) >= self.max_streams_per_itr:
                self._evict(mine)
            elif len(streams) >= self.max_streams:
                self._evict(max(per_itr.values(), key=len))
            per_itr.setdefault(key[0], {})[key] = None  # ``mine`` may have emptied and gone
        streams[key] = chunk

    def _evict(self, owned: dict[tuple[str, int], None]) -> None:
        """Drop the oldest of the streams in ``owned`` (one ITR's) from the vouched cache."""
        old = next(iter(owned))
        del owned[old]
        del self._streams[old]
        if not owned:
            self._itr_streams.pop(old[0], None)
        self.counters["stream-evicted"] += 1

    def _data(self, msg: bytes | memoryview, itr_rloc: str, now: float) -> list[tuple]:
        """A DATA: cache its chunk as the current one of (ITR, stream), or quarantine it."""
        counters = self.counters
        counters["data-in"] += 1
        if len(msg) - CORECAST_HEADER > self.max_chunk:
            counters["cc-chunk-too-long" if self.defence else "chunk-too-big"] += 1
            return []
        chunk = bytes(msg[CORECAST_HEADER:])
        _f, _fl, _r, stream = _DATA_HDR.unpack_from(msg, 0)
        seq = int.from_bytes(msg[8:12], "big")
        cur = _Chunk(chunk_hash(chunk), chunk, sum16(chunk), seq)
        if self.defence and self._vouched.get(itr_rloc, 0.0) <= now:
            self._quarantine_put((itr_rloc, stream), cur)
        else:
            self._store((itr_rloc, stream), cur)
        return []

    def _quarantine_put(self, key: tuple[str, int], chunk: _Chunk) -> None:
        """Hold a chunk from an RLOC not (yet) vouched for; evict the oldest of that RLOC, or overall."""
        counters = self.counters
        counters["cc-quarantined"] += 1
        quarantine = self._quarantine
        if key not in quarantine:
            mine = [k for k in quarantine if k[0] == key[0]]
            if len(mine) >= self.quarantine_per_rloc:
                del quarantine[mine[0]]
                counters["cc-quarantine-evicted"] += 1
            elif len(quarantine) >= self.quarantine_max:
                del quarantine[next(iter(quarantine))]
                counters["cc-quarantine-evicted"] += 1
        else:
            del quarantine[key]  # re-insert: the newest chunk is the last evicted
        quarantine[key] = chunk

    def on_resolved(self, eid: int, entry: MapEntry | None, now: float) -> list[tuple]:
        """Expand the REFs queued for Source EID ``eid`` (and others ``entry`` covers) that it vouches for.

        A negative entry vouches for nobody ('cc-unknown-itr'); no entry at all
        (resolution given up) drops them as 'cc-ref-unresolved'.
        """
        counters = self.counters
        if entry is not None and entry.negative:
            queue = self.pending.pop(eid)
            if queue:
                for itr_rloc, *_rest in queue:
                    self._reject(itr_rloc, now)
            return []
        actions: list[tuple] = []
        for src, (itr_rloc, snap, dst, sport, dport) in self.pending.release(eid, entry):
            if not entry.vouches(itr_rloc):
                self._reject(itr_rloc, now)
                continue
            self._vouch(itr_rloc, entry.expires, now)
            counters["cc-ref-flushed"] += 1
            counters["delivered"] += 1
            actions.append((WRITE_TUN, unicast_packet(src, dst, sport, dport, snap.chunk, snap.csum)))
        return actions

    def expire(self, now: float) -> int:
        """Drop queued REFs waiting too long for a Map-Reply ('cc-ref-unresolved'); return how many."""
        return self.pending.expire(now)

    @property
    def quarantined(self) -> int:
        """How many chunks the quarantine holds."""
        return len(self._quarantine)

    def _bad(self, msg: bytes | memoryview) -> None:
        """Count a malformed message by its decode reason."""
        key = "decode-" + error_reason(msg)
        self.counters[key] = self.counters.get(key, 0) + 1
