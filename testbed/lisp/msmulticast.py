"""(S,G) state of the Map-Server for signal-free LISP multicast (RFC 8378 sections 5 and 6), sans-I/O.

Receiver-site ETRs register an (S,G) EID-record (EID: Multicast Info LCAF,
:mod:`testbed.wire.lispctrl.lcaf`) whose one locator is an RLE naming their own
RLOC. :class:`MulticastTable` merges the registrations of all ETRs into one
replication list per (S,G) (RFC 8378 section 5: the Map-Server merges the
RLOC-records of the ETRs that registered the entry), answers (S,G)
Map-Requests with it as one RLE locator, and forgets an ETR's entry when it
deregisters (record TTL 0: its last receiver left) or when it is not refreshed
within ``expiry`` seconds.

Validation (:func:`check_sg_record`, called by
:func:`testbed.lisp.msregistry.check_register` after the site and HMAC checks
of docs/control-plane.md): the group is an IPv4 multicast address
(``register-sg-bad-group``), the record TTL is within the cap, the locator is
exactly one RLE with exactly one entry (``register-sg-bad-rle``: an ETR
registers itself, never others), and that RLOC lies in the site's RLOC space
(``register-rloc-outside``).
"""

from __future__ import annotations

import heapq
import socket
from dataclasses import dataclass

from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import ACTION_NATIVE_FORWARD, EidRecord, Locator, MapReply
from testbed.wire.lispctrl.lcaf import parse_rle, rle_text, sg_of_prefix, sg_prefix

SG_REPLY_TTL = 1
"""Minutes: record TTL of an (S,G) Map-Reply, the smallest RFC 9301 can express (the list changes often)."""


@dataclass
class SgRegistration:
    """What one (S,G) record of a Map-Register asks for: the ETR's RLOC in the (S,G) list, or its removal."""

    sg: tuple[str, str]
    rloc: str
    ttl: int
    record: EidRecord


def check_sg_record(rec: EidRecord, max_ttl: int, inside) -> SgRegistration | tuple[str, str]:
    """Validate one (S,G) record; ``inside(rloc_int) -> bool`` tests the site's RLOC space.

    Returns an :class:`SgRegistration` or (drop reason, detail); raises nothing."""
    sg = sg_of_prefix(rec.prefix)
    if sg is None:
        return "register-sg-bad-eid", rec.prefix[:60]
    if not 224 <= int(sg[1].split(".")[0]) <= 239:
        return "register-sg-bad-group", f"{sg[1]} is not IPv4 multicast"
    if rec.ttl > max_ttl:
        return "register-ttl-too-long", f"({sg[0]},{sg[1]}) ttl {rec.ttl} min > {max_ttl}"
    if len(rec.locators) != 1:
        return "register-sg-bad-rle", f"({sg[0]},{sg[1]}): {len(rec.locators)} locators, want one RLE"
    try:
        entries = parse_rle(rec.locators[0].rloc)
    except DecodeError as exc:
        return "register-sg-bad-rle", f"({sg[0]},{sg[1]}): {exc}"
    if len(entries) != 1:
        return "register-sg-bad-rle", f"({sg[0]},{sg[1]}): {len(entries)} RLE entries, want the ETR's own"
    rloc = entries[0][0]
    if not inside(int.from_bytes(socket.inet_aton(rloc), "big")):
        return "register-rloc-outside", f"({sg[0]},{sg[1]}) -> {rloc}"
    return SgRegistration(sg, rloc, rec.ttl, rec)


class MulticastTable:
    """Replication lists: (S,G) -> {ETR RLOC: (site, expires_at)}; ``expiry`` in seconds."""

    def __init__(self, expiry: float) -> None:
        self.expiry = float(expiry)
        self._lists: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
        self._heap: list[tuple[float, tuple[str, str], str]] = []
        self._replies: dict[tuple[str, str], tuple[bytes, EidRecord]] = {}

    def __len__(self) -> int:
        """Number of (S,G) entries with at least one ETR."""
        return len(self._lists)

    def apply(self, site: str, reg: SgRegistration, now: float) -> str:
        """Apply one validated registration; return the counter name (``sg-join``, ``sg-refresh``, ``sg-leave``,
        ``sg-leave-unknown``)."""
        entries = self._lists.get(reg.sg)
        if reg.ttl == 0:
            if not entries or reg.rloc not in entries:
                return "sg-leave-unknown"
            del entries[reg.rloc]
            if not entries:
                del self._lists[reg.sg]
            self._replies.pop(reg.sg, None)
            return "sg-leave"
        entries = self._lists.setdefault(reg.sg, {})
        known = reg.rloc in entries
        expires = now + self.expiry
        entries[reg.rloc] = (site, expires)
        heapq.heappush(self._heap, (expires, reg.sg, reg.rloc))
        if known:
            return "sg-refresh"
        self._replies.pop(reg.sg, None)
        return "sg-join"

    def expire(self, now: float) -> int:
        """Remove ETR entries not refreshed in time; return how many went."""
        gone = 0
        while self._heap and self._heap[0][0] <= now:
            when, sg, rloc = heapq.heappop(self._heap)
            entries = self._lists.get(sg)
            if entries and rloc in entries and entries[rloc][1] == when:
                del entries[rloc]
                if not entries:
                    del self._lists[sg]
                self._replies.pop(sg, None)
                gone += 1
        return gone

    def next_deadline(self) -> float:
        """When the next ETR entry expires (``inf`` if none)."""
        return self._heap[0][0] if self._heap else float("inf")

    def rlocs(self, sg: tuple[str, str]) -> list[str]:
        """The replication list of ``sg`` (sorted, empty if none)."""
        return sorted(self._lists.get(sg, {}), key=socket.inet_aton)

    def answer(self, sg: tuple[str, str]) -> tuple[bytes, EidRecord]:
        """(nonce-0 one-record Map-Reply, record) for ``sg``: one RLE locator with the whole list, or a
        negative reply (Natively-Forward, 1 minute: RFC 9301 section 8.2's unregistered answer) if no ETR."""
        cached = self._replies.get(sg)
        if cached is None:
            rlocs = self.rlocs(sg)
            prefix = sg_prefix(*sg)
            if rlocs:
                record = EidRecord(prefix, SG_REPLY_TTL, locators=[Locator(rle_text(rlocs))], authoritative=False)
            else:
                record = EidRecord(prefix, SG_REPLY_TTL, ACTION_NATIVE_FORWARD, True)
            cached = self._replies[sg] = (MapReply(0, [record]).encode(), record)
        return cached

    def summary(self) -> dict[str, dict]:
        """``{"S,G": {"rlocs": [...], "size": n, "sites": [...]}}`` for ``corecast stats ms``."""
        return {f"{s},{g}": {"rlocs": self.rlocs((s, g)), "size": len(entries),
                             "sites": sorted({site for site, _ in entries.values()})}
                for (s, g), entries in sorted(self._lists.items())}
