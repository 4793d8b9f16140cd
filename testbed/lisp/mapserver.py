"""Combined LISP Map-Server and Map-Resolver (RFC 9301 sections 8.2, 8.3), sans-I/O.

:meth:`MapServer.on_message` takes one UDP payload received on port 4342 and
returns the datagrams to send; nothing here touches a socket or a clock.

Registration (Map-Register): validated whole by
:func:`testbed.lisp.msregistry.check_register` (site, Key ID, algorithm, HMAC,
prefixes, TTL cap, RLOC space), then checked against replays by
:class:`~testbed.lisp.msregistry.ReplayGuard`: a new nonce is applied; the
site's latest accepted register repeated byte for byte (an ETR that lost its
Map-Notify) is applied again (idempotent) and acknowledged; any other repeated
nonce is dropped as ``register-replay`` with no Map-Notify. A record TTL of 0
deregisters the prefix (not if another xTR-ID holds it: then that record is
skipped, ``register-deregister-other-xtr``). Registrations expire ``expiry``
seconds after the last refresh. With want-map-notify set, a Map-Notify goes to
the register's source address and port: same nonce, Key ID, Algorithm ID,
I bit, xTR-ID and site-ID, HMAC with the key the Key ID selected, and exactly
the records that were applied (as the table now holds them).
Resolution (Map-Request, plain or inside an ECM):
  the reply goes to the request's first IPv4 ITR-RLOC (RFC 9301 section 5.3;
  never the ECM's inner source, which another xTR sets to the EID that
  missed), at the ECM's inner UDP source port, or for a plain request its UDP
  source port; no IPv4 ITR-RLOC: dropped (``request-no-itr-rloc``). Non-IPv4
  EID records are skipped (``request-eid-unsupported``).
  Registered EID: a proxy Map-Reply with the registered locators, TTL and
  CoreCast flags; the A bit is clear (RFC 9301 section 5.4: a Map-Server
  replying as a proxy must not set it) unless ``proxy_authoritative``.
  EID outside every configured prefix: a negative Map-Reply, Natively-Forward,
  ``negative_ttl`` minutes (RFC 9301 section 8.3), for the largest prefix around
  the EID that holds no configured or registered prefix. EID inside a configured
  prefix that nobody registered: negative, Natively-Forward, 1 minute (RFC 9301
  section 8.2), for the configured prefix if no other prefix lies within it,
  else for the largest empty hole inside it. Negative replies have A set.
Signal-free multicast (RFC 8378): (S,G) records of a register are merged per
(S,G) by :class:`~testbed.lisp.msmulticast.MulticastTable` (one replication
list of ETR RLOCs); an (S,G) Map-Request gets the list as one RLE locator.
(S,G) state is soft (ETRs refresh it every register round) and not persisted.
Persistence: :meth:`table` rows (with absolute expiry times) go back in with
:meth:`restore`; :attr:`version` changes whenever the table does. The rows and
:class:`Registration` live in :mod:`testbed.lisp.mapserver_table`.
"""

from __future__ import annotations

import heapq
import random
import socket
import struct

from testbed.lisp.prefixes import PrefixTable, format_prefix, mask, parse_prefix
from testbed.lisp.mapserver_table import Registration, registration_of_row, registration_row
from testbed.lisp.msmulticast import MulticastTable
from testbed.lisp.msregistry import ANY_RLOC, Accepted, ReplayGuard, Site, check_register, rloc_spaces
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl.lcaf import sg_of_prefix
from testbed.wire.lispctrl.fast import parse_ecm_request
from testbed.wire.lispctrl import (ACTION_NATIVE_FORWARD, Ecm, EidRecord, Locator, MapNotify, MapRegister, MapReply,
                                   MapRequest, decode_control, is_ipv4, verify_auth)

__all__ = ["MapServer", "Registration", "Site", "UNREGISTERED_TTL"]

Send = tuple[bytes, str, int]
"""(payload, destination IP, destination UDP port)."""

UNREGISTERED_TTL = 1
"""Minutes, TTL of a negative reply for a configured but unregistered prefix (RFC 9301 section 8.2)."""
DEFAULT_MAX_TTL = 1440
"""Minutes (one day): the largest record TTL a register may ask for."""
_TEMPLATE_MAX = 4096
_NONCE = struct.Struct("!Q")


def _with_nonce(template: bytes, nonce: int) -> bytes:
    """Return a copy of an encoded Map-Reply with its 64-bit nonce field (bytes 4-11) set."""
    return template[:4] + _NONCE.pack(nonce) + template[12:]


class MapServer:
    """Map-Server + Map-Resolver state machine; see the module docstring for the behaviour."""

    def __init__(self, sites: list[Site], *, expiry: float = 180.0, negative_ttl: int = 15,
                 rng: random.Random | None = None, proxy_authoritative: bool = False,
                 rloc_prefixes: tuple[str, ...] | list[str] = ANY_RLOC, max_ttl: int = DEFAULT_MAX_TTL) -> None:
        """Configure the sites; raise ValueError on a malformed or duplicated site prefix or RLOC prefix.

        ``rloc_prefixes`` is the RLOC space of sites that configure none; ``max_ttl`` is in minutes.
        """
        self.sites = list(sites)
        self.expiry = float(expiry)
        self.negative_ttl = int(negative_ttl)
        self.rng = rng or random.Random()
        self.proxy_authoritative = proxy_authoritative
        self.max_ttl = int(max_ttl)
        self.counters: dict[str, int] = {}
        self.version = 0
        """Incremented on every change of the table (register, refresh, deregister, expiry, restore)."""
        self.last_drop: tuple[str, str] | None = None
        """(reason, detail) of the last message dropped by :meth:`on_message`, None if it was handled."""
        self._default_space = rloc_spaces(rloc_prefixes)
        self._spaces = {s.name: rloc_spaces(s.rloc_prefixes) for s in self.sites if s.rloc_prefixes is not None}
        self._by_name = {s.name: s for s in self.sites}
        self._allowed: PrefixTable[Site] = PrefixTable()
        self._all: PrefixTable[bool] = PrefixTable()   # configured and registered prefixes (for holes)
        self._reg: PrefixTable[Registration] = PrefixTable()
        self._heap: list[tuple[float, int, int]] = []
        self._replay = ReplayGuard()
        self.multicast = MulticastTable(self.expiry)
        """(S,G) replication lists (RFC 8378)."""
        self._negative: dict[tuple[int, int, int], tuple[bytes, EidRecord]] = {}
        self._rloc_text: dict[bytes, str] = {}  # ITR-RLOC (4 bytes) -> text, for the fast path
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

    def _space(self, site: Site) -> list[tuple[int, int]]:
        return self._spaces.get(site.name, self._default_space)

    def __len__(self) -> int:
        """The number of registered prefixes."""
        return len(self._reg)

    def next_deadline(self) -> float:
        """Return when the next registration expires (``inf`` if none)."""
        return min(self._heap[0][0] if self._heap else float("inf"), self.multicast.next_deadline())

    # ------------------------------------------------------------ entry points

    def on_message(self, buf: bytes, src: str, sport: int, now: float) -> list[Send]:
        """Handle one control message from ``src:sport``; return the datagrams to send. Never raises.

        The commonest message, a 60-byte ECM Map-Request for one IPv4 EID, takes a fast
        path (testbed/wire/lispctrl/fast.py) with the same answer and counters.
        """
        fast = parse_ecm_request(buf)
        if fast is not None:
            return self._fast_request(fast, now)
        self.last_drop = None
        self._count("rx")
        if self.next_deadline() <= now:
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
            return self._on_request(inner, msg.sport)
        if isinstance(msg, MapRequest):
            self._count("request-plain")
            return self._on_request(msg, sport)
        if isinstance(msg, MapRegister):
            return self._on_register(msg, buf, src, sport, now)
        return self._drop("unexpected-" + type(msg).__name__.lower(), f"from {src}:{sport}")

    def _fast_request(self, fast: tuple[int, bytes, int, int, int], now: float) -> list[Send]:
        """Answer a parsed ECM Map-Request (nonce, ITR-RLOC, UDP source port, EID address, mask-len)."""
        self.last_drop = None
        counters = self.counters
        counters["rx"] = counters.get("rx", 0) + 1
        if self.next_deadline() <= now:
            self.on_timer(now)
        counters["request-ecm"] = counters.get("request-ecm", 0) + 1
        nonce, rloc4, port, addr, _plen = fast
        dst = self._rloc_text.get(rloc4)
        if dst is None:
            if len(self._rloc_text) >= _TEMPLATE_MAX:
                self._rloc_text.clear()
            dst = self._rloc_text[rloc4] = socket.inet_ntoa(rloc4)
        return [(_with_nonce(self._answer_addr(addr)[0], nonce), dst, port)]

    def on_timer(self, now: float) -> None:
        """Remove every registration whose expiry time has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, prefix, plen = heapq.heappop(heap)
            reg = self._reg.get(prefix, plen)
            if reg is not None and reg.expires_at == when:
                self._unregister(reg)
                self._count("expired")
        gone = self.multicast.expire(now)
        if gone:
            self.version += 1
            self._count("sg-expired", gone)

    def table(self) -> list[dict]:
        """Return the registrations (address order) as JSON-ready rows (times are the caller's clock);
        the row format is :func:`testbed.lisp.mapserver_table.registration_row`."""
        return [registration_row(reg) for _p, _l, reg in self._reg.items()]

    def restore(self, rows: list, now: float) -> int:
        """Reload :meth:`table` rows; drop expired ones and any that today's rules reject. Never raises.

        Counts ``restore-loaded``, ``restore-expired``, ``restore-invalid``; returns how many were loaded.
        """
        loaded = 0
        for row in rows if isinstance(rows, list) else []:
            reg = registration_of_row(row, self._by_name, now=now, expiry=self.expiry,
                                      proxy_authoritative=self.proxy_authoritative, max_ttl=self.max_ttl,
                                      site_covering=self._site_covering, outside=self._outside)
            if reg is None:
                self._count("restore-invalid")
                continue
            if reg.expires_at <= now:
                self._count("restore-expired")
                continue
            self._insert(reg)
            loaded += 1
        self._count("restore-loaded", loaded)
        return loaded

    def _outside(self, site: Site, locs: list[Locator]) -> bool:
        spaces = self._space(site)
        return any(not any(int.from_bytes(socket.inet_aton(l.rloc), "big") & mask(p) == n for n, p in spaces)
                   for l in locs)

    # ------------------------------------------------------------ registration

    def _on_register(self, msg: MapRegister, buf: bytes, src: str, sport: int, now: float) -> list[Send]:
        result = check_register(msg, buf, self._site_covering, verify_auth, self._space, self.max_ttl, self._count)
        if not isinstance(result, Accepted):
            return self._drop(result[0], f"{result[1]} from {src}")
        site = result.site
        kind = self._replay.classify(site.name, msg.nonce, buf)
        if kind == "replay":
            return self._drop("register-replay", f"site {site.name} nonce {msg.nonce:#x} from {src}")
        if kind == "retransmit":
            self._count("register-retransmit")
        applied = []
        for rec, net, plen in result.records:
            if rec.ttl == 0:
                old = self._reg.get(net, plen)
                if old is not None and None not in (old.xtr_id, msg.xtr_id) and old.xtr_id != msg.xtr_id:
                    self._count("register-deregister-other-xtr")
                    continue
                if old is not None:
                    self._unregister(old)
                self._count("register-deregister")
            else:
                self._register(site, rec, net, plen, msg, src, now)
            applied.append(rec)
        for sg in result.multicast:
            self._count(self.multicast.apply(site.name, sg, now))
            self.version += 1
            applied.append(sg.record)
        self._count("register-ok")
        if not msg.want_map_notify or not applied:
            return []
        note = MapNotify(msg.nonce, applied, key_id=msg.key_id, alg_id=msg.alg_id, xtr_id=msg.xtr_id,
                         site_id=msg.site_id)
        self._count("notify-sent")
        return [(note.encode(result.key), src, sport)]

    def _register(self, site: Site, rec: EidRecord, net: int, plen: int, msg: MapRegister, src: str,
                  now: float) -> None:
        locs = [Locator(l.rloc, l.priority, l.weight, l.m_priority, l.m_weight, local=False, probed=False,
                        reachable=l.reachable, corecast=l.corecast) for l in rec.locators]
        record = EidRecord(format_prefix(net, plen), rec.ttl, 0, self.proxy_authoritative, rec.map_version, locs)
        old = self._reg.get(net, plen)
        expires = now + self.expiry
        self.version += 1
        if old is not None and old.record == record and old.xtr_id == msg.xtr_id:
            old.refreshed_at, old.expires_at, old.last_nonce, old.source = now, expires, msg.nonce, src
            old.site_id = msg.site_id
            heapq.heappush(self._heap, (expires, net, plen))
            self._count("register-refresh")
            return
        reg = Registration(site.name, net, plen, record, old.registered_at if old else now, now, expires,
                           msg.nonce, src, MapReply(0, [record]).encode(), msg.xtr_id, msg.site_id)
        self._insert(reg)
        self._count("register-new" if old is None else "register-changed")

    def _insert(self, reg: Registration) -> None:
        self.version += 1
        self._reg.insert(reg.prefix, reg.plen, reg)
        self._all.insert(reg.prefix, reg.plen, True)
        heapq.heappush(self._heap, (reg.expires_at, reg.prefix, reg.plen))

    def _unregister(self, reg: Registration) -> None:
        self.version += 1
        self._reg.remove(reg.prefix, reg.plen)
        if self._allowed.get(reg.prefix, reg.plen) is None:
            self._all.remove(reg.prefix, reg.plen)

    # ------------------------------------------------------------ resolution

    def _on_request(self, req: MapRequest, dport: int) -> list[Send]:
        dst = req.reply_rloc()
        if dst is None:
            return self._drop("request-no-itr-rloc", f"ITR-RLOCs {req.itr_rlocs}")
        if req.probe:
            return self._drop("request-probe-ignored", f"RLOC-probe from {dst}")
        eids = [e for e in req.eids if is_ipv4(e.partition("/")[0]) or sg_of_prefix(e) is not None]
        if len(eids) < len(req.eids):
            self._count("request-eid-unsupported", len(req.eids) - len(eids))
        if not eids:
            return self._drop("request-no-eid", f"from {dst}")
        if len(eids) == 1:
            return [(_with_nonce(self._answer(eids[0])[0], req.nonce), dst, dport)]
        records = [self._answer(eid)[1] for eid in eids]
        return [(MapReply(req.nonce, records).encode(), dst, dport)]

    def _answer(self, eid_text: str) -> tuple[bytes, EidRecord]:
        """Return (nonce-0 one-record Map-Reply, its record) for an EID ``a.b.c.d/n`` (its address is looked up)
        or an (S,G) EID (Multicast Info LCAF: the replication list)."""
        if eid_text.startswith("lcaf:"):
            self._count("request-sg")
            return self.multicast.answer(sg_of_prefix(eid_text))
        return self._answer_addr(int.from_bytes(socket.inet_aton(eid_text.partition("/")[0]), "big"))

    def _answer_addr(self, addr: int) -> tuple[bytes, EidRecord]:
        """:meth:`_answer` for an IPv4 EID address (int)."""
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
