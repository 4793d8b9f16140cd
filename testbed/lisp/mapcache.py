"""The xTR's map-cache: EID-prefix -> RLOC set, with longest-prefix match and TTLs.

Entries come from Map-Replies (see :mod:`testbed.lisp.xtrcontrol`); the data
plane asks :meth:`MapCache.lookup` for every packet's destination EID and then
:meth:`MapEntry.choose` for the RLOC of the flow. Addresses are plain ``int``.

* Expired entries are never returned: :meth:`MapCache.lookup` drops them lazily
  and falls back to a covering unexpired entry (LPM over unexpired entries).
* Negative entries (from negative Map-Replies) are returned as they are, with
  ``negative=True`` and the reply's action, so the data plane can drop (or
  natively forward) without asking the mapping system again until they expire.
* Locator selection follows RFC 9300 section 6: the lowest priority below 255
  wins, and among the locators of that priority, traffic is split by weight,
  here deterministically by a flow hash (same flow, same RLOC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.lisp.prefixes import PrefixTable, format_prefix, mask

_HOT_MAX = 65536


@dataclass(slots=True)
class MapEntry:
    """One map-cache entry: an EID prefix and its locators (or a negative entry)."""

    prefix: int
    plen: int
    rlocs: list[tuple[str, int, int, bool]] = field(default_factory=list)
    """(RLOC dotted string, priority, weight, CoreCast-capable)."""
    expires: float = 0.0
    negative: bool = False
    action: int = 0

    def _best(self) -> list[tuple[str, int, int, bool]]:
        """Return the usable locators of the lowest priority (< 255)."""
        best = 256
        for _r, prio, _w, _c in self.rlocs:
            if prio < best:
                best = prio
        if best >= 255:
            return []
        return [loc for loc in self.rlocs if loc[1] == best]

    def choose(self, flow_hash: int) -> str | None:
        """Return the RLOC for a flow: best priority, weight-proportional by ``flow_hash``.

        None if the entry is negative or no locator has a priority below 255.
        If every best-priority locator has weight 0 they share traffic equally.
        """
        if self.negative:
            return None
        cands = self._best()
        if not cands:
            return None
        if len(cands) == 1:
            return cands[0][0]
        total = 0
        for loc in cands:
            total += loc[2]
        if total <= 0:
            return cands[flow_hash % len(cands)][0]
        pick = flow_hash % total
        for rloc, _p, weight, _c in cands:
            if pick < weight:
                return rloc
            pick -= weight
        return cands[-1][0]  # unreachable: the weights sum to total

    @property
    def corecast(self) -> bool:
        """True if every usable best-priority locator advertises CoreCast capability.

        "Every" rather than "any": a REF sent to a non-capable ETR would be lost,
        so a site whose ETRs disagree is treated as not capable.
        """
        if self.negative:
            return False
        cands = self._best()
        return bool(cands) and all(loc[3] for loc in cands)

    def vouches(self, rloc: str) -> bool:
        """True if ``rloc`` is one of this positive entry's locators with the CoreCast flag.

        This is how an ETR decides that the mapping system vouches for a CoreCast ITR:
        the site that owns the Source EID registered ``rloc`` as a CoreCast-capable
        locator (any priority: an ITR need not be the site's preferred ETR).
        """
        if self.negative:
            return False
        for loc in self.rlocs:
            if loc[0] == rloc and loc[3]:
                return True
        return False

    def covers(self, addr: int) -> bool:
        """True if ``addr`` is inside this entry's prefix."""
        return addr & mask(self.plen) == self.prefix

    def describe(self) -> str:
        """Return a one-line human summary (for logs)."""
        if self.negative:
            return f"{format_prefix(self.prefix, self.plen)} negative action={self.action}"
        locs = ", ".join(f"{r} p{p} w{w}{' cc' if c else ''}" for r, p, w, c in self.rlocs)
        return f"{format_prefix(self.prefix, self.plen)} -> {locs or '(no locators)'}"


class MapCache:
    """EID-prefix to :class:`MapEntry` map with longest-prefix match over unexpired entries.

    A small per-address dictionary in front of the trie makes repeated lookups
    of the same destination (the common case in the data plane) a dict hit; it
    is cleared whenever the set of entries changes. ``gen`` counts those changes
    (install, remove, expiry): a caller may memoise a lookup while ``gen`` holds.
    """

    __slots__ = ("_trie", "_hot", "gen")

    def __init__(self) -> None:
        self._trie: PrefixTable[MapEntry] = PrefixTable()
        self._hot: dict[int, MapEntry] = {}
        self.gen = 0

    def __len__(self) -> int:
        return len(self._trie)

    def lookup(self, addr: int, now: float) -> MapEntry | None:
        """Return the longest unexpired entry covering ``addr`` (negative ones included), or None."""
        entry = self._hot.get(addr)
        if entry is not None and entry.expires > now:
            return entry
        while True:
            found = self._trie.longest_match(addr)
            if found is None:
                return None
            entry = found[2]
            if entry.expires > now:
                if len(self._hot) >= _HOT_MAX:
                    self._hot.clear()
                self._hot[addr] = entry
                return entry
            self._trie.remove(entry.prefix, entry.plen)
            self._hot.clear()
            self.gen += 1

    def install(self, entry: MapEntry) -> None:
        """Add or replace the entry for ``entry.prefix/entry.plen``."""
        self._trie.insert(entry.prefix, entry.plen, entry)
        self._hot.clear()
        self.gen += 1

    def get(self, prefix: int, plen: int) -> MapEntry | None:
        """Return the entry stored at exactly ``prefix/plen`` (expired or not), or None."""
        return self._trie.get(prefix, plen)

    def remove(self, prefix: int, plen: int) -> bool:
        """Remove the entry at exactly ``prefix/plen``; return whether it was there."""
        self._hot.clear()
        self.gen += 1
        return self._trie.remove(prefix, plen)

    def remove_expired(self, now: float) -> int:
        """Remove every entry whose expiry time has passed; return how many."""
        dead = [(p, l) for p, l, e in self._trie.items() if e.expires <= now]
        for prefix, plen in dead:
            self._trie.remove(prefix, plen)
        if dead:
            self._hot.clear()
            self.gen += 1
        return len(dead)

    def entries(self) -> list[MapEntry]:
        """Return every entry (expired ones not yet removed included), in address order."""
        return [entry for _p, _l, entry in self._trie.items()]
