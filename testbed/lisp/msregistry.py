"""Map-Server registration rules (RFC 9301 section 8.2 and our hardening), sans-I/O.

:class:`Site` is what a site may register and with which keys;
:func:`check_register` turns one decoded, not yet authenticated Map-Register
into the records to apply, or a drop reason; :class:`ReplayGuard` decides what
a repeated nonce means. :mod:`testbed.lisp.mapserver` applies the result.

Rules (all-or-nothing: one violation rejects the whole register, no Map-Notify):

* the site is the one whose configured prefix covers the first IPv4 record;
* the Key ID selects one of the site's keys (``register-bad-key-id`` if unknown),
  the Algorithm ID must be allowed, the HMAC must verify with that key;
* every IPv4 record lies inside that site's prefixes; a record with TTL > 0
  has locators; no record TTL exceeds ``max_ttl`` minutes
  (``register-ttl-too-long``); every IPv4 locator lies inside the site's RLOC
  space (``register-rloc-outside``).

(S,G) records (EID: Multicast Info LCAF, RFC 8378) ride in the same register
as the ETR's own IPv4 EID-record, which names the site; they are validated by
:func:`testbed.lisp.msmulticast.check_sg_record` (group, TTL cap, one RLE entry
inside the site's RLOC space) and returned in :attr:`Accepted.multicast`.
Records whose EID-Prefix is otherwise not IPv4, and non-IPv4 locators, are skipped and
counted (``register-record-unsupported``, ``register-locator-unsupported``); a
record left with no locator is skipped too. A register with nothing left is
dropped (``register-nothing-supported``).
"""

from __future__ import annotations

import hashlib
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from testbed.lisp.msmulticast import SgRegistration, check_sg_record
from testbed.lisp.prefixes import mask, parse_prefix
from testbed.wire.lispctrl import ALG_SHA1_96, ALG_SHA256_128, EidRecord, Locator, MapRegister, is_ipv4
from testbed.wire.lispctrl.lcaf import sg_of_prefix

ANY_RLOC = ("0.0.0.0/0",)
REPLAY_WINDOW = 64
"""How many recent Map-Register nonces are remembered per site."""


@dataclass
class Site:
    """A LISP site: its keys (``key`` is Key ID 0, ``keys`` more by id), EID prefixes and RLOC space."""

    name: str
    key: bytes | None
    prefixes: list[str]
    alg_ids: frozenset[int] = frozenset({ALG_SHA1_96, ALG_SHA256_128})
    keys: dict[int, bytes] = field(default_factory=dict)
    rloc_prefixes: tuple[str, ...] | None = None
    """IPv4 prefixes every registered locator must lie in; None: the Map-Server's default."""

    def key_for(self, key_id: int) -> bytes | None:
        """The key configured for ``key_id``, None if the site has none by that id."""
        if key_id in self.keys:
            return self.keys[key_id]
        return self.key if key_id == 0 else None


@dataclass
class Accepted:
    """What an authenticated, valid Map-Register asks for."""

    site: Site
    key: bytes
    records: list[tuple[EidRecord, int, int]]
    """(record with IPv4 locators only, prefix int, mask-len) per record to apply."""
    multicast: list[SgRegistration] = field(default_factory=list)
    """Validated (S,G) records (RFC 8378) to merge into the replication lists."""


def _inside(addr: int, spaces: list[tuple[int, int]]) -> bool:
    return any(addr & mask(plen) == net for net, plen in spaces)


def rloc_spaces(texts: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """Parse RLOC prefixes (ValueError if malformed)."""
    return [parse_prefix(t) for t in texts]


def check_register(msg: MapRegister, buf: bytes, site_of: Callable[[int, int], Site | None],
                   verify: Callable[[bytes, bytes], bool], rloc_space: Callable[[Site], list[tuple[int, int]]],
                   max_ttl: int, count: Callable[..., None]) -> Accepted | tuple[str, str]:
    """Validate ``msg`` (raw bytes ``buf``); return :class:`Accepted` or (drop reason, detail).

    ``site_of(net, plen) -> Site | None``, ``verify(buf, key) -> bool``, ``rloc_space(site) -> [(net, plen)]``,
    ``count(name)`` counts skipped records/locators. Raises nothing.
    """
    if not msg.records:
        return "register-empty", ""
    supported = [rec for rec in msg.records if is_ipv4(rec.prefix.partition("/")[0])]
    if not supported:
        return "register-nothing-supported", "no IPv4 EID-record"
    parsed = [parse_prefix(rec.prefix) for rec in supported]  # the decoder normalised them
    site = site_of(*parsed[0])
    if site is None:
        return "register-prefix-not-allowed", f"{supported[0].prefix}: no site"
    if msg.alg_id not in site.alg_ids:
        return "register-bad-algorithm", f"site {site.name} alg {msg.alg_id}"
    key = site.key_for(msg.key_id)
    if key is None:
        return "register-bad-key-id", f"site {site.name} key id {msg.key_id}"
    if not verify(buf, key):
        return "register-bad-auth", f"site {site.name}"
    spaces = rloc_space(site)
    multicast = []
    for rec in msg.records:
        if rec.prefix.startswith("lcaf:") and sg_of_prefix(rec.prefix) is not None:
            sg = check_sg_record(rec, max_ttl, lambda a: _inside(a, spaces))
            if not isinstance(sg, SgRegistration):
                return sg[0], f"site {site.name} {sg[1]}"
            multicast.append(sg)
    if len(supported) + len(multicast) < len(msg.records):
        count("register-record-unsupported", len(msg.records) - len(supported) - len(multicast))
    out = []
    for rec, (net, plen) in zip(supported, parsed):
        if site_of(net, plen) is not site:
            return "register-prefix-not-allowed", f"site {site.name} {rec.prefix}"
        if rec.ttl > max_ttl:
            return "register-ttl-too-long", f"site {site.name} {rec.prefix} ttl {rec.ttl} min > {max_ttl}"
        if rec.ttl and not rec.locators:
            return "register-no-locators", f"site {site.name} {rec.prefix}"
        locs = [loc for loc in rec.locators if is_ipv4(loc.rloc)]
        if len(locs) < len(rec.locators):
            count("register-locator-unsupported", len(rec.locators) - len(locs))
        for loc in locs:
            if not _inside(int.from_bytes(socket.inet_aton(loc.rloc), "big"), spaces):
                return "register-rloc-outside", f"site {site.name} {rec.prefix} -> {loc.rloc}"
        if rec.ttl and not locs:
            count("register-record-unsupported")
            continue
        clean = [Locator(l.rloc, l.priority, l.weight, l.m_priority, l.m_weight, l.local, l.probed, l.reachable,
                         l.corecast) for l in locs]
        out.append((EidRecord(rec.prefix, rec.ttl, rec.action, rec.authoritative, rec.map_version, clean),
                    net, plen))
    if not out:
        return "register-nothing-supported", f"site {site.name}"
    return Accepted(site, key, out, multicast)


class ReplayGuard:
    """Per site: the last :data:`REPLAY_WINDOW` non-zero nonces and the digest of the last accepted register.

    :meth:`classify` returns ``"new"`` (apply, remember), ``"retransmit"`` (the
    site's latest accepted nonce with the very same bytes: an ETR that lost the
    Map-Notify; applying again is idempotent, so apply and notify) or
    ``"replay"`` (a seen nonce with other bytes, or an older one: drop, no
    Map-Notify). Nonce 0 (RFC 9301 5.6: no Map-Notify wanted) is always ``"new"``.
    """

    def __init__(self) -> None:
        self._recent: dict[str, tuple[deque, set]] = {}
        self._last: dict[str, tuple[int, bytes]] = {}

    def classify(self, site: str, nonce: int, buf: bytes) -> str:
        """Classify and (for ``new``) remember; see the class docstring."""
        if not nonce:
            return "new"
        digest = hashlib.blake2b(buf, digest_size=16).digest()
        recent, seen = self._recent.setdefault(site, (deque(), set()))
        if nonce in seen:
            return "retransmit" if self._last.get(site) == (nonce, digest) else "replay"
        recent.append(nonce)
        seen.add(nonce)
        if len(recent) > REPLAY_WINDOW:
            seen.discard(recent.popleft())
        self._last[site] = (nonce, digest)
        return "new"
