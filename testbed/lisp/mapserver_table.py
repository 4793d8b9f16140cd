"""The Map-Server's registrations and their persisted form (JSON rows), sans-I/O.

:class:`Registration` is one registered EID prefix as
:class:`testbed.lisp.mapserver.MapServer` holds it (RFC 9301 section 8.2: the
Map-Server keeps what a site registered, with its expiry). A registration goes
out as a JSON-ready row (:func:`registration_row`: what ``MapServer.table()``
lists and the map-server process writes to its table file, nodes/mapserver.py)
and comes back in through :func:`registration_of_row` (``MapServer.restore()``),
which checks the row against today's configuration. Times are the caller's
clock (seconds); TTLs are minutes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from testbed.lisp.msregistry import Site
from testbed.lisp.prefixes import format_prefix, parse_prefix
from testbed.wire.lispctrl import EidRecord, Locator, MapReply, is_ipv4

__all__ = ["Registration", "registration_of_row", "registration_row"]


@dataclass
class Registration:
    """One registered EID prefix and what the Map-Server answers for it."""

    site: str
    prefix: int
    plen: int
    record: EidRecord
    """The record as a proxy Map-Reply carries it."""
    registered_at: float
    refreshed_at: float
    expires_at: float
    last_nonce: int
    source: str
    reply: bytes = field(repr=False, default=b"")
    """An encoded one-record Map-Reply with nonce 0 (bytes 4-11 are the nonce)."""
    xtr_id: int | None = None
    site_id: int = 0


def registration_row(reg: Registration) -> dict:
    """Return ``reg`` as a JSON-ready row: prefix text, locators with their CoreCast flag, TTL in minutes,
    the three times, the last nonce, xTR-ID (32 hex digits or None) and site-ID (16 hex digits)."""
    return {
        "site": reg.site,
        "prefix": format_prefix(reg.prefix, reg.plen),
        "rlocs": [{"rloc": loc.rloc, "priority": loc.priority, "weight": loc.weight,
                   "m_priority": loc.m_priority, "m_weight": loc.m_weight,
                   "corecast": loc.corecast, "reachable": loc.reachable} for loc in reg.record.locators],
        "ttl_min": reg.record.ttl,
        "map_version": reg.record.map_version,
        "source": reg.source,
        "registered_at": reg.registered_at,
        "refreshed_at": reg.refreshed_at,
        "expires_at": reg.expires_at,
        "last_nonce": f"{reg.last_nonce:#018x}",
        "xtr_id": None if reg.xtr_id is None else f"{reg.xtr_id:032x}",
        "site_id": f"{reg.site_id:016x}",
    }


def registration_of_row(row: Any, sites: dict[str, Site], *, now: float, expiry: float,
                        proxy_authoritative: bool, max_ttl: int,
                        site_covering: Callable[[int, int], Site | None],
                        outside: Callable[[Site, list[Locator]], bool]) -> Registration | None:
    """Return the registration a :func:`registration_row` row describes, or None if it is malformed or
    today's rules reject it. Never raises.

    Rejected: an unknown site, a prefix that ``site_covering`` (most specific configured
    prefix) does not give to that site, a TTL outside 1..``max_ttl`` minutes, no locator, a
    non-IPv4 locator, a locator that ``outside`` says lies outside the site's RLOC space,
    a non-finite or non-numeric time, a nonce or site-ID beyond 64 bits or an xTR-ID beyond
    128 bits (RFC 9301 section 5.6), and any field of the wrong type. The expiry is capped at ``now + expiry`` (no
    restored row outlives a fresh registration); it may lie in the past (the caller
    counts the row expired). The record's A bit is ``proxy_authoritative``.
    """
    try:
        site = sites[row["site"]]
        net, plen = parse_prefix(row["prefix"])
        expires = float(row["expires_at"])
        if not math.isfinite(expires):
            raise ValueError("expires_at")
        expires = min(expires, now + expiry)
        locs = [Locator(r["rloc"], int(r["priority"]), int(r["weight"]), int(r.get("m_priority", 255)),
                        int(r.get("m_weight", 0)), reachable=bool(r["reachable"]),
                        corecast=bool(r["corecast"])) for r in row["rlocs"]]
        record = EidRecord(row["prefix"], int(row["ttl_min"]), 0, proxy_authoritative,
                           int(row.get("map_version", 0)), locs)
        xtr = row.get("xtr_id")
        xtr_id = None if xtr is None else int(xtr, 16)
        site_id = int(row.get("site_id", "0"), 16)
        nonce = int(row.get("last_nonce", "0"), 16)
        times = float(row.get("registered_at", now)), float(row.get("refreshed_at", now))
        reply = MapReply(0, [record]).encode()
        ok = (site_covering(net, plen) is site and 0 < record.ttl <= max_ttl and locs
              and all(is_ipv4(l.rloc) for l in locs) and not outside(site, locs)
              and 0 <= nonce < 1 << 64 and 0 <= site_id < 1 << 64 and (xtr_id is None or 0 <= xtr_id < 1 << 128)
              and all(math.isfinite(t) for t in times))
        if not ok:
            return None
        return Registration(site.name, net, plen, record, times[0], times[1], expires, nonce,
                            str(row.get("source", "")), reply, xtr_id, site_id)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, struct.error, OSError):
        return None
