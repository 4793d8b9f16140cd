"""The control half of an xTR (RFC 9301): registration and resolution, sans-I/O.

The node (``nodes/xtr.py``) owns the socket and the clock; it calls
:meth:`XtrControl.start` once, :meth:`XtrControl.on_timer` whenever
:meth:`XtrControl.next_deadline` passes, :meth:`XtrControl.request` on a
map-cache miss, and :meth:`XtrControl.on_control` for every datagram on its
control port, and sends what they return.

ETR side: a Map-Register of all its EID prefixes with its RLOC (CoreCast flag
from the config, proxy-reply and want-map-notify set, fresh random nonce) at
start and every ``register_interval``. Until a Map-Notify with a valid HMAC
and the nonce of an outstanding register arrives, the register is retried after
``request_timeout``, doubling, at most ``request_tries`` sends per round (so a
Map-Server that starts late is caught within seconds, not a full interval).

ITR side: on a miss, a Map-Request inside an ECM to the Map-Resolver (inner
IPv4/UDP from its RLOC to the EID, ports 4342/4342; ITR-RLOC = its RLOC;
random 64-bit nonce). Concurrent misses for the same EID share one request.
A request unanswered after ``request_timeout`` is resent with the same nonce,
the timeout doubling each time; after ``request_tries`` sends it is given up
and reported as ``(eid, None)`` by :meth:`on_timer`. A Map-Reply whose nonce
matches a pending request is installed into the map-cache (records that do not
cover the requested EID are ignored, against cache poisoning), and resolves
every pending EID its records cover. Positive entries live TTL minutes (from
the reply); negative entries (no locators) live ``min(TTL, negative_ttl s)``.
Locators whose R bit is clear, and non-IPv4 locators or records, are left out.

RLOC-probes (RFC 9301 section 7.1): a Map-Request with the P bit (its EID
record may be ``mask-len 0, AFI 0``) gets a Map-Reply with the P bit, the same
nonce and a record per EID prefix of ours that the request names (all of them
for AFI 0), each with our locator set (L, p and R set, CoreCast flag as
registered), sent to the request's first IPv4 ITR-RLOC at the request's UDP
source port. At most ``probe_rate`` replies a second (token bucket) so a
forged ITR-RLOC cannot turn the xTR into a reflector; counted
``probe-reply-sent``, ``probe-rate-limited``, ``probe-no-itr-rloc``.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

from testbed.lisp.prefixes import mask, parse_prefix
from testbed.lisp.mapcache import MapCache, MapEntry
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import (Ecm, EidRecord, Locator, MapNotify, MapRegister, MapReply, MapRequest,
                                   decode_control, is_ipv4, verify_auth)

Send = tuple[bytes, str, int]
"""(payload, destination IP, destination UDP port)."""
Resolved = tuple[int, MapEntry | None]
"""(EID, installed entry) or (EID, None) when resolution was given up."""


@dataclass
class _Pending:
    """An outstanding Map-Request."""

    eid: int
    nonce: int
    tries: int
    timeout: float
    deadline: float


class XtrControl:
    """Registration and resolution state machine of one xTR."""

    def __init__(self, *, rloc: str, eid_prefixes: list[str], map_server: str, map_resolver: str, key: bytes,
                 map_cache: MapCache, alg_id: int = 2, key_id: int = 0, corecast: bool = False,
                 register_interval: float = 60.0, register_ttl: int = 1440, request_timeout: float = 1.0,
                 request_tries: int = 3, negative_ttl: float = 60.0, rng: random.Random | None = None,
                 probe_rate: float = 100.0) -> None:
        """Set up; raise ValueError on a malformed address or prefix, or a non-positive timer."""
        socket.inet_aton(rloc)
        self._prefixes = [parse_prefix(p) for p in eid_prefixes]
        if register_interval <= 0 or request_timeout <= 0 or request_tries < 1:
            raise ValueError("register_interval and request_timeout must be > 0, request_tries >= 1")
        self.rloc, self.eid_prefixes = rloc, list(eid_prefixes)
        self.map_server, self.map_resolver = map_server, map_resolver
        self.key, self.alg_id, self.key_id, self.corecast = key, alg_id, key_id, corecast
        self.map_cache = map_cache
        self.register_interval, self.register_ttl = float(register_interval), int(register_ttl)
        self.request_timeout, self.request_tries = float(request_timeout), int(request_tries)
        self.negative_ttl = float(negative_ttl)
        self.rng = rng or random.Random()
        self.counters: dict[str, int] = {}
        self.registered = False
        """True once a Map-Notify acknowledged a register of the current round."""
        self.last_notify: float | None = None
        self._pending: dict[int, _Pending] = {}
        self._by_nonce: dict[int, int] = {}
        self._next_register = float("inf")
        self._reg_nonces: set[int] = set()
        self._reg_tries = 0
        self._reg_timeout = self.request_timeout
        self._reg_retry_at = float("inf")
        self.probe_rate = float(probe_rate)
        self._probe_tokens, self._probe_at = self.probe_rate, 0.0

    # ------------------------------------------------------------ helpers

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _nonce(self) -> int:
        while True:
            nonce = self.rng.getrandbits(64)
            if nonce and nonce not in self._by_nonce and nonce not in self._reg_nonces:
                return nonce

    def next_deadline(self) -> float:
        """Return the time of the next register, register retry or request timeout (``inf`` if none)."""
        when = min(self._next_register, self._reg_retry_at)
        for pend in self._pending.values():
            if pend.deadline < when:
                when = pend.deadline
        return when

    @property
    def pending(self) -> list[int]:
        """The EIDs with an outstanding Map-Request."""
        return list(self._pending)

    # ------------------------------------------------------------ registration

    def _register_msg(self) -> Send:
        nonce = self._nonce()
        self._reg_nonces.add(nonce)
        loc = Locator(self.rloc, 1, 100, local=True, reachable=True, corecast=self.corecast)
        records = [EidRecord(p, self.register_ttl, 0, True, 0, [loc]) for p in self.eid_prefixes]
        msg = MapRegister(nonce, records, key_id=self.key_id, alg_id=self.alg_id, proxy_reply=True,
                          want_map_notify=True)
        self._count("register-sent")
        return msg.encode(self.key), self.map_server, LISP_CONTROL_PORT

    def _new_round(self, now: float) -> list[Send]:
        if not self.eid_prefixes:
            return []
        self._reg_nonces.clear()
        self._reg_tries = 1
        self._reg_timeout = self.request_timeout
        self._reg_retry_at = now + self._reg_timeout
        self._next_register = now + self.register_interval
        return [self._register_msg()]

    def start(self, now: float) -> list[Send]:
        """Return the first Map-Register (nothing if the xTR has no EID prefixes)."""
        return self._new_round(now)

    def _on_notify(self, buf: bytes, msg: MapNotify, now: float) -> None:
        if not verify_auth(buf, self.key):
            self._count("notify-bad-auth")
        elif msg.nonce not in self._reg_nonces:
            self._count("notify-unknown-nonce")
        else:
            self._count("notify-ok")
            self.registered = True
            self.last_notify = now
            self._reg_nonces.discard(msg.nonce)
            self._reg_retry_at = float("inf")

    # ------------------------------------------------------------ resolution

    def _request_msg(self, eid: int, nonce: int) -> Send:
        eid_text = socket.inet_ntoa(eid.to_bytes(4, "big"))
        req = MapRequest(nonce, [eid_text + "/32"], [self.rloc])
        ecm = Ecm(self.rloc, eid_text, LISP_CONTROL_PORT, LISP_CONTROL_PORT, req.encode())
        return ecm.encode(), self.map_resolver, LISP_CONTROL_PORT

    def request(self, eid: int, now: float) -> list[Send]:
        """Return an ECM Map-Request for ``eid`` (an int), or nothing if one is already outstanding."""
        if eid in self._pending:
            self._count("request-dedup")
            return []
        nonce = self._nonce()
        self._pending[eid] = _Pending(eid, nonce, 1, self.request_timeout, now + self.request_timeout)
        self._by_nonce[nonce] = eid
        self._count("request-sent")
        return [self._request_msg(eid, nonce)]

    def on_timer(self, now: float) -> tuple[list[Send], list[Resolved]]:
        """Re-register, retry registers and requests, give requests up; return (sends, given-up EIDs)."""
        sends: list[Send] = []
        failed: list[Resolved] = []
        if now >= self._next_register:
            sends.extend(self._new_round(now))
        elif now >= self._reg_retry_at:
            if self._reg_tries < self.request_tries:
                self._reg_tries += 1
                self._reg_timeout *= 2
                self._reg_retry_at = now + self._reg_timeout
                self._count("register-retry")
                sends.append(self._register_msg())
            else:
                self._reg_retry_at = float("inf")
                self.registered = False
                self._count("register-unacknowledged")
        for pend in [p for p in self._pending.values() if p.deadline <= now]:
            if pend.tries < self.request_tries:
                pend.tries += 1
                pend.timeout *= 2
                pend.deadline = now + pend.timeout
                self._count("request-retry")
                sends.append(self._request_msg(pend.eid, pend.nonce))
            else:
                del self._pending[pend.eid]
                del self._by_nonce[pend.nonce]
                self._count("request-giveup")
                failed.append((pend.eid, None))
        return sends, failed

    def _entry(self, rec: EidRecord, net: int, plen: int, now: float) -> MapEntry:
        if not rec.locators:
            self._count("reply-negative")
            return MapEntry(net, plen, [], now + min(rec.ttl * 60.0, self.negative_ttl), True, rec.action)
        rlocs = [(l.rloc, l.priority, l.weight, l.corecast) for l in rec.locators if l.reachable and is_ipv4(l.rloc)]
        self._count("reply-positive")
        return MapEntry(net, plen, rlocs, now + rec.ttl * 60.0, False, rec.action)

    def _on_reply(self, msg: MapReply, now: float) -> list[Resolved]:
        eid = self._by_nonce.get(msg.nonce)
        if eid is None:
            self._count("reply-unknown-nonce")
            return []
        installed = []
        for rec in msg.records:
            if not is_ipv4(rec.prefix.partition("/")[0]):
                self._count("reply-record-unsupported")
                continue
            net, plen = parse_prefix(rec.prefix)
            if eid & mask(plen) != net:
                self._count("reply-record-ignored")
                continue
            entry = self._entry(rec, net, plen, now)
            self.map_cache.install(entry)
            installed.append(entry)
        if not installed:
            self._count("reply-not-covering")
            return []
        resolved = []
        for pend in list(self._pending.values()):
            for entry in installed:
                if pend.eid & mask(entry.plen) == entry.prefix:
                    del self._pending[pend.eid]
                    del self._by_nonce[pend.nonce]
                    resolved.append((pend.eid, entry))
                    break
        return resolved

    def on_control(self, buf: bytes, src: str, sport: int, now: float) -> tuple[list[Send], list[Resolved]]:
        """Handle one datagram from the control port; return (sends, EIDs resolved by it)."""
        try:
            msg = decode_control(buf)
        except DecodeError as exc:
            self._count(f"decode-{exc.reason}")
            return [], []
        if isinstance(msg, MapReply):
            return [], self._on_reply(msg, now)
        if isinstance(msg, MapNotify):
            self._on_notify(buf, msg, now)
            return [], []
        if isinstance(msg, MapRequest) and msg.probe:
            return self._on_probe(msg, sport, now), []
        self._count("unexpected-" + type(msg).__name__.lower())
        return [], []

    # ------------------------------------------------------------ RLOC-probes

    def _on_probe(self, req: MapRequest, sport: int, now: float) -> list[Send]:
        """Answer an RLOC-probe (see the module docstring)."""
        self._count("probe-in")
        dst = req.reply_rloc()
        if dst is None:
            self._count("probe-no-itr-rloc")
            return []
        self._probe_tokens = min(self.probe_rate, self._probe_tokens + (now - self._probe_at) * self.probe_rate)
        self._probe_at = now
        if self._probe_tokens < 1.0:
            self._count("probe-rate-limited")
            return []
        self._probe_tokens -= 1.0
        wanted = []
        for eid in req.eids:
            addr = eid.partition("/")[0]
            if not addr:
                wanted = list(self.eid_prefixes)
                break
            if is_ipv4(addr):
                net, plen = parse_prefix(eid)
                wanted.extend(p for p, (pn, pl) in zip(self.eid_prefixes, self._prefixes)
                              if net & mask(min(pl, plen)) == pn & mask(min(pl, plen)) and p not in wanted)
        if not wanted:
            self._count("probe-not-ours")
            return []
        loc = Locator(self.rloc, 1, 100, local=True, probed=True, reachable=True, corecast=self.corecast)
        records = [EidRecord(p, self.register_ttl, 0, True, 0, [loc]) for p in wanted[:255]]
        self._count("probe-reply-sent")
        return [(MapReply(req.nonce, records, probe=True).encode(), dst, sport)]
