"""CoreCast REF-LIST and REF-MAP messages in the ETR (a mixin of :class:`testbed.lisp.corecast_etr.CoreCastEtr`).

REF-LIST (type 3, issue 15): expanded into one unicast datagram per entry, each
what the REF (hash, Source EID, entry's EID, Source Port, entry's port) would
give, after the same checks, made once per list (vouched ITR for the Source
EID, the cached chunk's hash) and per entry (destination EID ours). Bounded so
that a list is never a bigger amplifier than the REFs it replaces: more than
``max_list`` entries (default: what fits one outer packet, 238) drops the list
('cc-list-too-long'); per (ITR, stream, chunk) each (Destination EID, port) is
expanded from lists at most once ('cc-list-repeat': a repeated entry or list
gives nothing, where each repeated REF costs its sender 68 bytes), and at most
``max_list_fanout`` destinations per chunk in all.

REF-MAP (type 4, the compact REF-LIST): a checked bitmap (testbed.wire.corecast.ref_map_fault:
malformed ones count 'decode-bad-length', 'decode-bad-count', 'decode-bad-bitmap' or
'decode-bad-range') is the REF-LIST of its set bits, under the same bounds: Count (bits set,
checked against the bitmap) at most ``max_list``, Length at most ``max_map_bits`` (default what
fits one outer packet, 11,392), else 'cc-list-too-long'; each set bit outside our prefixes counts
'foreign-eid'. So N bits set give at most N datagrams: never more than the N REFs it replaces.
"""

from __future__ import annotations

import struct

from testbed.lisp.dataplane import RESOLVE
from testbed.wire.corecast import REF_LIST_ENTRY, REF_LIST_HEADER, REF_MAP_HEADER, ref_map_eids

_MAP = struct.Struct("!BBHII8s4sIHHIHH")  # testbed.wire.corecast's REF-MAP header, EIDs as integers
_LIST = struct.Struct("!BBHII8s4sIHH")  # testbed.wire.corecast's REF-LIST header, Source EID as an integer
_ENTRY = struct.Struct("!IH")


class RefListExpansion:
    """REF-LIST / REF-MAP parsing and vouching; the host class gives ``counters``, ``prefixes``, ``max_list``,
    ``max_map_bits``, ``max_list_fanout``, ``map_cache``, ``pending``, ``_streams``, ``_quarantine``, ``_expand``,
    ``_check``, ``_reject`` and ``_ask`` (see :class:`testbed.lisp.corecast_etr.CoreCastEtr`)."""

    def _ref_list(self, msg: bytes | memoryview, count: int, itr_rloc: str, now: float) -> list[tuple]:
        """A REF-LIST of ``count`` entries: the REF checks once, then one unicast datagram per new entry of ours."""
        counters = self.counters
        counters["list-in"] += 1
        counters["list-entries"] += count
        if count > self.max_list:
            counters["cc-list-too-long"] += 1
            return []
        _f, _fl, _r, stream, _seq, digest, _etr, src, sport, _n = _LIST.unpack_from(msg, 0)
        entries = (_ENTRY.unpack_from(msg, off)
                   for off in range(REF_LIST_HEADER, REF_LIST_HEADER + REF_LIST_ENTRY * count, REF_LIST_ENTRY))
        return self._expand(stream, digest, src, sport, self._ours(entries), itr_rloc, now)

    def _ref_map(self, msg: bytes | memoryview, itr_rloc: str, now: float) -> list[tuple]:
        """A checked REF-MAP: the REF-LIST of its set bits, with the REF-LIST's bounds (Count <= ``max_list``,
        Length <= ``max_map_bits``, 'cc-list-too-long') and checks; N bits set give at most N datagrams."""
        counters = self.counters
        _f, _fl, _r, stream, _seq, digest, _etr, src, sport, dport, base, length, count = _MAP.unpack_from(msg, 0)
        counters["map-in"] += 1
        counters["list-entries"] += count
        if count > self.max_list or length > self.max_map_bits:
            counters["cc-list-too-long"] += 1
            return []
        last = base + length - 1
        for net, m in self.prefixes:  # the whole range inside one prefix of ours: every bit is ours
            if base & m == net and last & m == net:
                ours = [(dst, dport) for dst in ref_map_eids(msg[REF_MAP_HEADER:], base)]
                break
        else:
            ours = self._ours((dst, dport) for dst in ref_map_eids(msg[REF_MAP_HEADER:], base))
        return self._expand(stream, digest, src, sport, ours, itr_rloc, now)

    def _ours(self, entries) -> list[tuple[int, int]]:
        """The (Destination EID, port) ``entries`` inside our prefixes; each other one counts 'foreign-eid'."""
        ours = []
        prefixes = self.prefixes
        for dst, dport in entries:
            for net, m in prefixes:
                if dst & m == net:
                    ours.append((dst, dport))
                    break
            else:
                self.counters["foreign-eid"] += 1
        return ours

    def _check_list(self, itr_rloc: str, stream: int, digest: bytes, src: int, sport: int,
                    ours: list[tuple[int, int]], now: float) -> list[tuple] | None:
        """:meth:`_check` for a REF-LIST's entries ``ours``: None if ``itr_rloc`` is vouched for ``src``.

        On a map-cache miss every entry not yet expanded or queued for this chunk waits in the bounded queue of
        ``src`` (with the chunk); a repeated one counts 'cc-list-repeat', as after the reply.
        """
        entry = self.map_cache.lookup(src, now)
        if entry is not None:
            if not entry.vouches(itr_rloc):
                self._reject(itr_rloc, now, len(ours))
                return []
            return self._check(itr_rloc, stream, digest, src, ours[0][0], sport, ours[0][1], now)
        key = (itr_rloc, stream)
        snap = self._streams.get(key)
        if snap is None or snap.digest != digest:
            snap = self._quarantine.get(key)
            if snap is None or snap.digest != digest:
                self.counters["no-chunk"] += len(ours)
                return self._ask(src, now)
        listed = snap.listed  # queued entries count as expanded: a repeat before the reply gives nothing more
        if listed is None:
            listed = snap.listed = set()
        first = False
        for dst, dport in ours:
            if (dst, dport) in listed or len(listed) >= self.max_list_fanout:
                self.counters["cc-list-repeat"] += 1
                continue
            listed.add((dst, dport))
            first |= self.pending.add(src, (itr_rloc, snap, dst, sport, dport), now)
        return [(RESOLVE, src)] if first else []
