"""Combined LISP Map-Server and Map-Resolver (RFC 9301 sections 8.2, 8.3), sans-I/O.

:meth:`MapServer.on_message` takes one UDP payload received on port 4342 and
returns the datagrams to send; nothing here touches a socket or a clock.

Registration (Map-Register):
  the site is the one whose configured prefix covers the first record (a
  registered prefix must be equal to or more specific than a configured one);
  the site must allow the Algorithm ID, the HMAC must verify with the site's
  key, and every record must fall inside that same site's prefixes, else the
  whole message is dropped and counted by reason. A record TTL of 0
  deregisters. Registrations expire ``expiry`` seconds after the last refresh.
  With want-map-notify set, a Map-Notify (same records, same Key ID and
  Algorithm ID, HMAC with the site key, nonce echoed) goes back to the
  register's source address and port.
Replay:
  a register whose non-zero nonce repeats one of the site's last 64 nonces is
  counted as ``register-replay`` and not applied (nonce 0 is exempt: RFC 9301
  section 5.6 lets an ETR that wants no Map-Notify send nonce 0). A repeat of the
  site's latest nonce (an ETR retransmitting after a lost Map-Notify) still gets
  its Map-Notify, without refreshing the registration.
Resolution (Map-Request, plain or inside an ECM):
  the reply goes to the ECM's inner source address and inner UDP source port,
  or, for a plain request, to the first ITR-RLOC at the request's source port.
  Registered EID: a proxy Map-Reply with the registered locators, TTL and
  CoreCast flags; the A bit is clear (RFC 9301 section 5.4: a Map-Server
  replying as a proxy must not set it) unless ``proxy_authoritative``.
  EID outside every configured prefix: a negative Map-Reply, Natively-Forward,
  ``negative_ttl`` minutes (RFC 9301 section 8.3), for the largest prefix around
  the EID that holds no configured or registered prefix. EID inside a configured
  prefix that nobody registered: negative, Natively-Forward, 1 minute (RFC 9301
  section 8.2), for the configured prefix if no other prefix lies within it,
  else for the largest empty hole inside it. Negative replies have A set.
"""

from __future__ import annotations

import heapq
import random
import socket
import struct
from collections import deque
from dataclasses import dataclass, field

from testbed.lisp.lpm import PrefixTrie, format_prefix, mask, parse_prefix
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import (ACTION_NATIVE_FORWARD, ALG_SHA1_96, ALG_SHA256_128, Ecm, EidRecord, Locator,
                                   MapNotify, MapRegister, MapReply, MapRequest, decode_control, verify_auth)

Send = tuple[bytes, str, int]
"""(payload, destination IP, destination UDP port)."""

UNREGISTERED_TTL = 1
"""Minutes, TTL of a negative reply for a configured but unregistered prefix (RFC 9301 section 8.2)."""
REPLAY_WINDOW = 64
"""How many recent Map-Register nonces are remembered per site."""
_TEMPLATE_MAX = 4096
_NONCE = struct.Struct("!Q")


@dataclass
class Site:
    """A LISP site: its authentication key and the EID prefixes it may register."""

    name: str
    key: bytes
    prefixes: list[str]
    alg_ids: frozenset[int] = frozenset({ALG_SHA1_96, ALG_SHA256_128})


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


def _with_nonce(template: bytes, nonce: int) -> bytes:
    """Return a copy of an encoded Map-Reply with its 64-bit nonce field (bytes 4-11) set."""
    return template[:4] + _NONCE.pack(nonce) + template[12:]


class MapServer:
    """Map-Server + Map-Resolver state machine; see the module docstring for the behaviour."""

    def __init__(self, sites: list[Site], *, expiry: float = 180.0, negative_ttl: int = 15,
                 rng: random.Random | None = None, proxy_authoritative: bool = False) -> None:
        """Configure the sites; raise ValueError on a malformed or duplicated site prefix."""
        self.sites = list(sites)
        self.expiry = float(expiry)
        self.negative_ttl = int(negative_ttl)
        self.rng = rng or random.Random()
        self.proxy_authoritative = proxy_authoritative
        self.counters: dict[str, int] = {}
        self.last_drop: tuple[str, str] | None = None
        """(reason, detail) of the last message dropped by :meth:`on_message`, None if it was handled."""
        self._allowed: PrefixTrie[Site] = PrefixTrie()
        self._all: PrefixTrie[bool] = PrefixTrie()   # configured and registered prefixes (for holes)
        self._reg: PrefixTrie[Registration] = PrefixTrie()
        self._heap: list[tuple[float, int, int]] = []
        self._recent: dict[str, tuple[deque, set]] = {}
        self._negative: dict[tuple[int, int, int], tuple[bytes, EidRecord]] = {}
        for site in self.sites:
            for text in site.prefixes:
                net, plen = parse_prefix(text)
                if self._allowed.get(net, plen) is not None:
                    raise ValueError(f"prefix {text} is configured for two sites")
                self._allowed.insert(net, plen, site)
                self._all.insert(net, plen, True)

    # ------------------------------------------------------------ helpers

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _drop(self, reason: str, detail: str = "") -> list[Send]:
        self._count(reason)
        self.last_drop = (reason, detail)
        return []

    def _site_covering(self, prefix: int, plen: int) -> Site | None:
        """Return the site whose most specific configured prefix covers ``prefix/plen``."""
        for p in range(plen, -1, -1):
            site = self._allowed.get(prefix & mask(p), p)
            if site is not None:
                return site
        return None

    def __len__(self) -> int:
        """The number of registered prefixes."""
        return len(self._reg)

    def next_deadline(self) -> float:
        """Return when the next registration expires (``inf`` if none)."""
        return self._heap[0][0] if self._heap else float("inf")

    # ------------------------------------------------------------ entry points

    def on_message(self, buf: bytes, src: str, sport: int, now: float) -> list[Send]:
        """Handle one control message from ``src:sport``; return the datagrams to send."""
        self.last_drop = None
        self._count("rx")
        if self._heap and self._heap[0][0] <= now:
            self.on_timer(now)
        try:
            msg = decode_control(buf)
        except DecodeError as exc:
            return self._drop(f"decode-{exc.reason}", exc.detail)
        if isinstance(msg, Ecm):
            try:
                inner = decode_control(msg.payload)
            except DecodeError as exc:
                return self._drop(f"ecm-inner-{exc.reason}", exc.detail)
            if not isinstance(inner, MapRequest):
                return self._drop("ecm-not-request", type(inner).__name__)
            self._count("request-ecm")
            return self._on_request(inner, msg.inner_src, msg.sport, now)
        if isinstance(msg, MapRequest):
            self._count("request-plain")
            return self._on_request(msg, msg.itr_rlocs[0], sport, now)
        if isinstance(msg, MapRegister):
            return self._on_register(msg, buf, src, sport, now)
        return self._drop("unexpected-" + type(msg).__name__.lower(), f"from {src}:{sport}")

    def on_timer(self, now: float) -> None:
        """Remove every registration whose expiry time has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, prefix, plen = heapq.heappop(heap)
            reg = self._reg.get(prefix, plen)
            if reg is not None and reg.expires_at == when:
                self._unregister(reg)
                self._count("expired")

    def table(self) -> list[dict]:
        """Return the registrations (address order) as JSON-ready rows."""
        rows = []
        for _p, _l, reg in self._reg.items():
            rows.append({
                "site": reg.site,
                "prefix": format_prefix(reg.prefix, reg.plen),
                "rlocs": [{"rloc": loc.rloc, "priority": loc.priority, "weight": loc.weight,
                           "corecast": loc.corecast, "reachable": loc.reachable} for loc in reg.record.locators],
                "ttl_min": reg.record.ttl,
                "source": reg.source,
                "registered_at": reg.registered_at,
                "refreshed_at": reg.refreshed_at,
                "expires_at": reg.expires_at,
                "last_nonce": f"{reg.last_nonce:#018x}",
            })
        return rows

    # ------------------------------------------------------------ registration

    def _on_register(self, msg: MapRegister, buf: bytes, src: str, sport: int, now: float) -> list[Send]:
        if not msg.records:
            return self._drop("register-empty", f"from {src}")
        parsed = [parse_prefix(rec.prefix) for rec in msg.records]  # decoder normalised them
        site = self._site_covering(*parsed[0])
        if site is None:
            return self._drop("register-prefix-not-allowed", f"{msg.records[0].prefix} from {src}: no site")
        if msg.alg_id not in site.alg_ids:
            return self._drop("register-bad-algorithm", f"site {site.name} alg {msg.alg_id} from {src}")
        if not verify_auth(buf, site.key):
            return self._drop("register-bad-auth", f"site {site.name} from {src}")
        for rec, (net, plen) in zip(msg.records, parsed):
            if self._site_covering(net, plen) is not site:
                return self._drop("register-prefix-not-allowed", f"site {site.name} {rec.prefix} from {src}")
            if rec.ttl and not rec.locators:
                return self._drop("register-no-locators", f"site {site.name} {rec.prefix} from {src}")
        notify = self._notify(msg, site, src, sport) if msg.want_map_notify else []
        if msg.nonce:
            recent, seen = self._recent.setdefault(site.name, (deque(), set()))
            if msg.nonce in seen:
                self._count("register-replay")
                self.last_drop = ("register-replay", f"site {site.name} nonce {msg.nonce:#x} from {src}")
                if recent and recent[-1] == msg.nonce and notify:
                    self._count("notify-sent")
                    return notify
                return []
            recent.append(msg.nonce)
            seen.add(msg.nonce)
            if len(recent) > REPLAY_WINDOW:
                seen.discard(recent.popleft())
        for rec, (net, plen) in zip(msg.records, parsed):
            if rec.ttl == 0:
                old = self._reg.get(net, plen)
                if old is not None:
                    self._unregister(old)
                self._count("register-deregister")
            else:
                self._register(site, rec, net, plen, msg.nonce, src, now)
        self._count("register-ok")
        if notify:
            self._count("notify-sent")
        return notify

    def _notify(self, msg: MapRegister, site: Site, src: str, sport: int) -> list[Send]:
        note = MapNotify(msg.nonce, msg.records, key_id=msg.key_id, alg_id=msg.alg_id)
        return [(note.encode(site.key), src, sport)]

    def _register(self, site: Site, rec: EidRecord, net: int, plen: int, nonce: int, src: str,
                  now: float) -> None:
        locs = [Locator(l.rloc, l.priority, l.weight, l.m_priority, l.m_weight, local=False, probed=False,
                        reachable=l.reachable, corecast=l.corecast) for l in rec.locators]
        record = EidRecord(format_prefix(net, plen), rec.ttl, 0, self.proxy_authoritative, rec.map_version, locs)
        old = self._reg.get(net, plen)
        expires = now + self.expiry
        if old is not None and old.record == record:
            old.refreshed_at, old.expires_at, old.last_nonce, old.source = now, expires, nonce, src
            reg = old
            self._count("register-refresh")
        else:
            reg = Registration(site.name, net, plen, record, old.registered_at if old else now, now, expires,
                               nonce, src, MapReply(0, [record]).encode())
            self._reg.insert(net, plen, reg)
            self._all.insert(net, plen, True)
            self._count("register-new" if old is None else "register-changed")
        heapq.heappush(self._heap, (expires, net, plen))

    def _unregister(self, reg: Registration) -> None:
        self._reg.remove(reg.prefix, reg.plen)
        if self._allowed.get(reg.prefix, reg.plen) is None:
            self._all.remove(reg.prefix, reg.plen)

    # ------------------------------------------------------------ resolution

    def _on_request(self, req: MapRequest, dst: str, dport: int, now: float) -> list[Send]:
        if req.probe:
            return self._drop("request-probe-ignored", f"RLOC-probe from {dst}")
        if not req.eids:
            return self._drop("request-no-eid", f"from {dst}")
        if len(req.eids) == 1:
            return [(_with_nonce(self._answer(req.eids[0])[0], req.nonce), dst, dport)]
        records = [self._answer(eid)[1] for eid in req.eids]
        return [(MapReply(req.nonce, records).encode(), dst, dport)]

    def _answer(self, eid_text: str) -> tuple[bytes, EidRecord]:
        """Return (nonce-0 one-record Map-Reply, its record) for an EID ``a.b.c.d/n`` (its address is looked up)."""
        addr = int.from_bytes(socket.inet_aton(eid_text.partition("/")[0]), "big")
        found = self._reg.longest_match(addr)
        if found is not None:
            self._count("request-positive")
            return found[2].reply, found[2].record
        covering = self._allowed.longest_match(addr)
        net, plen = self._all.hole(addr)
        if covering is None:
            ttl = self.negative_ttl
            self._count("request-negative")
        else:
            cnet, cplen = covering[0], covering[1]
            if plen == cplen + 1 and self._all.hole(addr ^ (1 << (31 - cplen)))[1] == cplen + 1:
                net, plen = cnet, cplen   # nothing else inside the configured prefix
            ttl = UNREGISTERED_TTL
            self._count("request-unregistered")
        key = (net, plen, ttl)
        cached = self._negative.get(key)
        if cached is None:
            if len(self._negative) >= _TEMPLATE_MAX:
                self._negative.clear()
            record = EidRecord(format_prefix(net, plen), ttl, ACTION_NATIVE_FORWARD, True, 0, [])
            cached = self._negative[key] = (MapReply(0, [record]).encode(), record)
        return cached
