"""Bounded per-EID queues of items waiting for a map-cache resolution (RFC 9300 section 6 leaves
the ITR's behaviour on a miss open; we queue a few packets rather than drop them).

Used by the ITR (:class:`testbed.lisp.dataplane.Itr`), the CoreCast ITR (REFs for
a client EID) and the CoreCast ETR (REFs waiting for their Source EID's mapping).
"""

from __future__ import annotations

from collections import deque

from testbed.lisp.prefixes import mask
from testbed.lisp.mapcache import MapEntry


class PendingQueues:
    """Per-EID bounded queues of items waiting for a map-cache resolution.

    Beyond ``limit`` items per EID the oldest is dropped ('queue-overflow'); beyond
    ``max_eids`` pending EIDs a new EID's item is dropped ('pending-overflow');
    queues older than ``timeout`` seconds are dropped by :meth:`expire` ('unresolved').
    Every counter name gets ``prefix`` in front (e.g. 'cc-ref-' gives 'cc-ref-queued').
    """

    __slots__ = ("limit", "max_eids", "timeout", "counters", "_q", "_queued", "_overflow", "_pending_overflow",
                 "_unresolved")

    def __init__(self, counters: dict[str, int], limit: int = 64, max_eids: int = 1024,
                 timeout: float = 5.0, prefix: str = "") -> None:
        if limit < 1 or max_eids < 1:
            raise ValueError("queue limits must be positive")
        self.limit, self.max_eids, self.timeout, self.counters = limit, max_eids, timeout, counters
        self._q: dict[int, tuple[float, deque]] = {}
        self._queued, self._overflow, self._pending_overflow, self._unresolved = names = tuple(
            prefix + name for name in ("queued", "queue-overflow", "pending-overflow", "unresolved"))
        for name in names:
            counters.setdefault(name, 0)

    def __len__(self) -> int:
        return len(self._q)

    def __contains__(self, eid: int) -> bool:
        return eid in self._q

    def add(self, eid: int, item: object, now: float) -> bool:
        """Queue ``item`` for ``eid``; return True if ``eid`` was not pending (emit RESOLVE)."""
        got = self._q.get(eid)
        if got is None:
            if len(self._q) >= self.max_eids:
                self.counters[self._pending_overflow] += 1
                return False
            self._q[eid] = (now, deque((item,)))
            self.counters[self._queued] += 1
            return True
        queue = got[1]
        if len(queue) >= self.limit:
            queue.popleft()
            self.counters[self._overflow] += 1
        queue.append(item)
        self.counters[self._queued] += 1
        return False

    def pop(self, eid: int) -> deque | None:
        """Remove and return the queue of ``eid`` (None if nothing is pending for it)."""
        got = self._q.pop(eid, None)
        return None if got is None else got[1]

    def covered(self, prefix: int, plen: int) -> list[int]:
        """Return the pending EIDs inside ``prefix/plen``."""
        m = mask(plen)
        return [eid for eid in self._q if eid & m == prefix]

    def release(self, eid: int, entry: MapEntry | None) -> list[tuple[int, object]]:
        """Take the items queued for ``eid`` and for the other pending EIDs ``entry`` covers.

        With no entry or a negative one, ``eid``'s items are dropped ('unresolved') and
        nothing is returned; otherwise (eid, item) pairs come back in queue order.
        """
        if entry is None or entry.negative:
            queue = self.pop(eid)
            if queue is not None:
                self.counters[self._unresolved] += len(queue)
            return []
        out: list[tuple[int, object]] = []
        for one in [eid] + [e for e in self.covered(entry.prefix, entry.plen) if e != eid]:
            queue = self.pop(one)
            if queue is not None:
                out += [(one, item) for item in queue]
        return out

    def expire(self, now: float) -> int:
        """Drop the queues pending for longer than ``timeout``; return how many items were dropped."""
        dead = [eid for eid, (since, _q) in self._q.items() if now - since > self.timeout]
        dropped = 0
        for eid in dead:
            dropped += len(self._q.pop(eid)[1])
        self.counters[self._unresolved] += dropped
        return dropped
